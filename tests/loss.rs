//! Cross-entropy, soft Dice and Dice + CE: GPU against the CPU reference, and
//! the reference gradients against finite differences of the reference loss.

mod common;
use common::{assert_close, ctx, rand_vec};
use wunet::graph::ops::{CrossEntropyAttrs, DiceAttrs, Reduction};
use wunet::ops::loss::{self as gl, DiceCeConfig};
use wunet::reference::fd::numeric_grad;
use wunet::reference::loss as r;
use wunet::shape::label_map_shape;
use wunet::{Context, Shape, Tensor};

fn up(c: &Context, v: &[f32], s: Shape) -> Tensor {
    Tensor::from_f32(c, v, s).unwrap()
}

fn read(c: &Context, t: &Tensor) -> Vec<f32> {
    t.to_f32_vec(c).unwrap()
}

/// Labels in 0..classes, with every `ignore_every`-th pixel set to `ignore`.
fn labels(n: usize, classes: usize, seed: u64, ignore: Option<(i32, usize)>) -> Vec<i32> {
    rand_vec(n, seed)
        .iter()
        .enumerate()
        .map(|(i, v)| match ignore {
            Some((lab, every)) if i % every == 3 => lab,
            _ => (((v + 1.0) / 2.0 * classes as f32) as usize).min(classes - 1) as i32,
        })
        .collect()
}

fn scaled(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    rand_vec(n, seed).iter().map(|v| v * scale).collect()
}

/// Gradients are O(1/pixels): compare them relative to their largest magnitude
/// (tighter than a fixed 1e-4 atol, which would pass anything this small).
fn grad_atol(v: &[f32]) -> f32 {
    1e-4 * v.iter().fold(0f32, |a, b| a.max(b.abs()))
}

struct CeCase {
    xs: Shape,
    scale: f32,
    class_w: bool,
    wmap: bool,
    ignore: Option<(i32, usize)>,
    reduction: Reduction,
}

fn ce_cases() -> Vec<CeCase> {
    let red = Reduction::Mean;
    let wm = Reduction::WeightedMean;
    vec![
        CeCase {
            xs: Shape::new4(2, 3, 7, 13),
            scale: 3.0,
            class_w: false,
            wmap: false,
            ignore: None,
            reduction: red,
        },
        CeCase {
            xs: Shape::new4(2, 5, 9, 6),
            scale: 2.0,
            class_w: true,
            wmap: true,
            ignore: Some((255, 5)),
            reduction: red,
        },
        CeCase {
            xs: Shape::new4(2, 5, 9, 6),
            scale: 2.0,
            class_w: true,
            wmap: true,
            ignore: Some((2, 7)),
            reduction: wm,
        },
        CeCase {
            xs: Shape::new4(1, 2, 11, 5),
            scale: 1.0,
            class_w: false,
            wmap: true,
            ignore: None,
            reduction: wm,
        },
        // Extreme logits (|z| up to 126) need the max-subtracted log-sum-exp.
        CeCase {
            xs: Shape::new5(2, 4, 3, 5, 6),
            scale: 126.0,
            class_w: true,
            wmap: false,
            ignore: None,
            reduction: wm,
        },
        CeCase {
            xs: Shape::new5(1, 17, 4, 6, 5),
            scale: 4.0,
            class_w: false,
            wmap: true,
            ignore: Some((-1, 4)),
            reduction: red,
        },
        // Sample planes longer than one chunk of pixels.
        CeCase {
            xs: Shape::new4(2, 3, 67, 71),
            scale: 3.0,
            class_w: true,
            wmap: false,
            ignore: None,
            reduction: red,
        },
    ]
}

#[test]
fn cross_entropy_matches_reference() {
    let Some(c) = ctx() else { return };
    for (ci, k) in ce_cases().into_iter().enumerate() {
        let ls = label_map_shape(&k.xs);
        let zv = scaled(k.xs.numel(), 10 + ci as u64, k.scale);
        let lv = labels(ls.numel(), k.xs.c(), 20 + ci as u64, k.ignore);
        let cwv: Vec<f32> = rand_vec(k.xs.c(), 30 + ci as u64)
            .iter()
            .map(|v| 0.2 + v.abs())
            .collect();
        let wmv: Vec<f32> = rand_vec(ls.numel(), 40 + ci as u64)
            .iter()
            .map(|v| 1.0 + 4.0 * v.abs())
            .collect();
        let cfg = CrossEntropyAttrs {
            class_weights: k.class_w.then(|| cwv.clone()),
            weight_map: k.wmap,
            ignore_label: k.ignore.map(|i| i.0),
            reduction: k.reduction,
        };
        let z = up(c, &zv, k.xs);
        let lab = Tensor::from_i32(c, &lv, ls).unwrap();
        let cw = up(c, &cwv, Shape::vector(k.xs.c()));
        let wm = up(c, &wmv, ls);
        let (cwo, wmo) = (k.class_w.then_some(&cw), k.wmap.then_some(&wm));
        let out = c
            .run(|rec| gl::softmax_cross_entropy(rec, &z, &lab, wmo, cwo, &cfg, true))
            .unwrap();
        let want = r::softmax_cross_entropy(&zv, &k.xs, &lv, k.wmap.then_some(&wmv[..]), &cfg);
        let name = format!("ce case {ci} {} {:?}", k.xs, k.reduction);
        assert!(
            want.loss > 0.1,
            "{name}: reference loss {} too small to test",
            want.loss
        );
        assert_close(
            &format!("{name} loss"),
            &read(c, &out.loss),
            &[want.loss as f32],
            1e-4,
            1e-4,
        );
        let nm = out.nll_map.as_ref().unwrap();
        assert_close(
            &format!("{name} nll_map"),
            &read(c, nm),
            &want.nll_map,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name} grad"),
            &read(c, &out.grad),
            &want.grad,
            grad_atol(&want.grad),
            1e-4,
        );
    }
}

#[test]
fn cross_entropy_all_ignored_is_zero() {
    let Some(c) = ctx() else { return };
    let xs = Shape::new4(1, 3, 4, 5);
    let z = up(c, &scaled(xs.numel(), 1, 2.0), xs);
    let lab = Tensor::from_i32(c, &[7; 20], label_map_shape(&xs)).unwrap();
    let cfg = CrossEntropyAttrs {
        ignore_label: Some(7),
        ..Default::default()
    };
    let out = c
        .run(|rec| gl::softmax_cross_entropy(rec, &z, &lab, None, None, &cfg, false))
        .unwrap();
    assert_eq!(read(c, &out.loss), vec![0.0]);
    assert!(read(c, &out.grad).iter().all(|v| *v == 0.0));
}

#[derive(Clone)]
struct DiceCase {
    xs: Shape,
    batch_dice: bool,
    /// Labels only use classes 0..present (the rest are absent).
    present: usize,
    ignore: Option<(i32, usize)>,
}

fn dice_cases() -> Vec<DiceCase> {
    vec![
        DiceCase {
            xs: Shape::new4(2, 3, 7, 13),
            batch_dice: true,
            present: 3,
            ignore: None,
        },
        DiceCase {
            xs: Shape::new4(2, 3, 7, 13),
            batch_dice: false,
            present: 3,
            ignore: None,
        },
        DiceCase {
            xs: Shape::new4(3, 5, 6, 9),
            batch_dice: true,
            present: 4,
            ignore: None,
        }, // absent class
        DiceCase {
            xs: Shape::new4(2, 4, 5, 7),
            batch_dice: false,
            present: 3,
            ignore: Some((9, 4)),
        },
        DiceCase {
            xs: Shape::new5(2, 3, 3, 5, 4),
            batch_dice: true,
            present: 3,
            ignore: Some((1, 6)),
        },
        DiceCase {
            xs: Shape::new5(2, 2, 4, 3, 5),
            batch_dice: false,
            present: 2,
            ignore: None,
        },
        DiceCase {
            xs: Shape::new4(2, 2, 67, 71),
            batch_dice: true,
            present: 2,
            ignore: None,
        },
    ]
}

#[test]
fn dice_matches_reference() {
    let Some(c) = ctx() else { return };
    let cases = dice_cases().into_iter().enumerate();
    // every case with and without the background's terms
    for ((ci, k), include_background) in cases.flat_map(|c| [(c.clone(), true), (c, false)]) {
        let ls = label_map_shape(&k.xs);
        let zv = scaled(k.xs.numel(), 50 + ci as u64, 3.0);
        let lv = labels(ls.numel(), k.present, 60 + ci as u64, k.ignore);
        let cfg = DiceAttrs {
            batch_dice: k.batch_dice,
            smooth: 1e-5,
            ignore_label: k.ignore.map(|i| i.0),
            include_background,
        };
        let z = up(c, &zv, k.xs);
        let lab = Tensor::from_i32(c, &lv, ls).unwrap();
        let out = c.run(|rec| gl::dice_loss(rec, &z, &lab, &cfg)).unwrap();
        let want = r::dice_loss(&zv, &k.xs, &lv, &cfg);
        let name = format!(
            "dice case {ci} {} batch_dice {} background {include_background}",
            k.xs, k.batch_dice
        );
        assert_close(
            &format!("{name} loss"),
            &read(c, &out.loss),
            &[want.loss as f32],
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name} dice"),
            &read(c, out.dice.as_ref().unwrap()),
            &want.dice,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name} grad"),
            &read(c, &out.grad),
            &want.grad,
            grad_atol(&want.grad),
            1e-4,
        );
    }
}

#[test]
fn dice_ce_matches_reference_and_replays() {
    let Some(c) = ctx() else { return };
    for (ci, xs) in [Shape::new4(2, 3, 9, 11), Shape::new5(1, 4, 3, 4, 5)]
        .into_iter()
        .enumerate()
    {
        let ls = label_map_shape(&xs);
        let zv = scaled(xs.numel(), 70 + ci as u64, 3.0);
        let lv = labels(ls.numel(), xs.c(), 80 + ci as u64, Some((-100, 9)));
        let wmv: Vec<f32> = rand_vec(ls.numel(), 90)
            .iter()
            .map(|v| 1.0 + v.abs())
            .collect();
        let cfg = DiceCeConfig {
            ce: CrossEntropyAttrs {
                class_weights: None,
                weight_map: true,
                ignore_label: Some(-100),
                reduction: Reduction::WeightedMean,
            },
            dice: DiceAttrs {
                batch_dice: true,
                smooth: 1e-5,
                ignore_label: Some(-100),
                include_background: true,
            },
            weight_ce: 0.7,
            weight_dice: 1.3,
        };
        let z = up(c, &zv, xs);
        let lab = Tensor::from_i32(c, &lv, ls).unwrap();
        let wm = up(c, &wmv, ls);
        let (loss, grad) = (
            Tensor::zeros(c, Shape::scalar(), wunet::DType::F32).unwrap(),
            Tensor::zeros(c, xs, wunet::DType::F32).unwrap(),
        );
        let dice = Tensor::zeros(c, Shape::vector(xs.c()), wunet::DType::F32).unwrap();
        let nll = Tensor::zeros(c, ls, wunet::DType::F32).unwrap();
        let prog = c
            .record(|rec| {
                gl::dice_ce_loss_into(
                    rec,
                    &z,
                    &lab,
                    Some(&wm),
                    None,
                    &cfg,
                    &loss,
                    &grad,
                    &dice,
                    Some(&nll),
                )
            })
            .unwrap();
        let want = r::dice_ce_loss(&zv, &xs, &lv, Some(&wmv), &cfg);
        let name = format!("dice_ce {xs}");
        // Replaying the recorded program must not accumulate across submissions.
        for round in 0..2 {
            prog.submit(c);
            assert_close(
                &format!("{name} loss (round {round})"),
                &read(c, &loss),
                &[want.loss as f32],
                1e-4,
                1e-4,
            );
        }
        assert_close(
            &format!("{name} dice"),
            &read(c, &dice),
            &want.dice,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name} nll_map"),
            &read(c, &nll),
            &want.nll_map,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name} grad"),
            &read(c, &grad),
            &want.grad,
            grad_atol(&want.grad),
            1e-4,
        );
    }
}

#[test]
fn loss_errors_name_the_op() {
    let Some(c) = ctx() else { return };
    let xs = Shape::new4(2, 3, 4, 5);
    let z = up(c, &vec![0.0; xs.numel()], xs);
    let ls = label_map_shape(&xs);
    let err = |r: wunet::Result<gl::LossOutput>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let mut rec = wunet::gpu::Recorder::new(c);
    let f32_labels = up(c, &vec![0.0; ls.numel()], ls);
    let e = err(gl::softmax_cross_entropy(
        &mut rec,
        &z,
        &f32_labels,
        None,
        None,
        &CrossEntropyAttrs::default(),
        false,
    ));
    assert!(
        e.contains("softmax_cross_entropy") && e.contains("I32"),
        "{e}"
    );
    let wrong = Tensor::from_i32(c, &[0; 2 * 4 * 4], Shape::new4(2, 1, 4, 4)).unwrap();
    let e = err(gl::dice_loss(&mut rec, &z, &wrong, &DiceAttrs::default()));
    assert!(
        e.contains("dice_loss") && e.contains("2x1x4x4") && e.contains("2x1x4x5"),
        "{e}"
    );
    let lab = Tensor::from_i32(c, &vec![0; ls.numel()], ls).unwrap();
    let cw = up(c, &[1.0, 1.0], Shape::vector(2));
    let mut cfg = DiceCeConfig::default();
    cfg.ce.class_weights = Some(vec![1.0, 1.0]);
    let e = err(gl::dice_ce_loss(
        &mut rec,
        &z,
        &lab,
        None,
        Some(&cw),
        &cfg,
        false,
    ));
    assert!(
        e.contains("dice_ce_loss") && e.contains("2 class weights for logits 2x3x4x5"),
        "{e}"
    );
    assert!(
        rec.program.is_empty(),
        "failed ops must not record dispatches"
    );
}

// ------------------------------------------------------------------ finite differences

fn fd_check(what: &str, analytic: &[f32], f: &mut dyn FnMut(&[f32]) -> f64, at: &[f32]) {
    let which: Vec<usize> = (0..at.len()).collect();
    let num: Vec<f32> = numeric_grad(f, at, &which, 1e-3)
        .iter()
        .map(|v| *v as f32)
        .collect();
    // Central differences (h = 1e-3) of an f64 loss: truncation error O(h^2); the
    // gradients are O(1/pixels), so compare relative to their largest magnitude.
    assert_close(
        what,
        analytic,
        &num,
        1e-3 * analytic.iter().fold(0f32, |a, b| a.max(b.abs())),
        1e-3,
    );
}

#[test]
fn reference_gradients_match_finite_differences() {
    let xs = Shape::new4(2, 3, 2, 3);
    let ls = label_map_shape(&xs);
    let zv = scaled(xs.numel(), 1, 2.0);
    let lv = labels(ls.numel(), 3, 2, Some((5, 4)));
    let cw = [0.5f32, 2.0, 1.2];
    let wm: Vec<f32> = rand_vec(ls.numel(), 3)
        .iter()
        .map(|v| 1.0 + v.abs())
        .collect();
    for reduction in [Reduction::Mean, Reduction::WeightedMean] {
        let cfg = CrossEntropyAttrs {
            class_weights: Some(cw.to_vec()),
            weight_map: true,
            ignore_label: Some(5),
            reduction,
        };
        let an = r::softmax_cross_entropy(&zv, &xs, &lv, Some(&wm), &cfg);
        let mut f = |z: &[f32]| r::softmax_cross_entropy(z, &xs, &lv, Some(&wm), &cfg).loss;
        fd_check(&format!("fd ce {reduction:?}"), &an.grad, &mut f, &zv);
    }
    // Absent class (labels use 0..2 of 4 classes).
    let xs4 = Shape::new5(2, 4, 2, 1, 3);
    let z4 = scaled(xs4.numel(), 4, 2.0);
    let l4 = labels(label_map_shape(&xs4).numel(), 2, 5, None);
    for (batch_dice, include_background) in
        [(true, true), (false, true), (true, false), (false, false)]
    {
        let cfg = DiceAttrs {
            batch_dice,
            smooth: 1e-5,
            ignore_label: None,
            include_background,
        };
        let an = r::dice_loss(&z4, &xs4, &l4, &cfg);
        let mut f = |z: &[f32]| r::dice_loss(z, &xs4, &l4, &cfg).loss;
        fd_check(
            &format!("fd dice batch {batch_dice} background {include_background}"),
            &an.grad,
            &mut f,
            &z4,
        );
    }
    let cfg = DiceCeConfig {
        ce: CrossEntropyAttrs {
            class_weights: None,
            weight_map: true,
            ignore_label: Some(5),
            reduction: Reduction::Mean,
        },
        dice: DiceAttrs {
            batch_dice: false,
            smooth: 1e-5,
            ignore_label: Some(5),
            include_background: true,
        },
        weight_ce: 0.5,
        weight_dice: 2.0,
    };
    let an = r::dice_ce_loss(&zv, &xs, &lv, Some(&wm), &cfg);
    let mut f = |z: &[f32]| r::dice_ce_loss(z, &xs, &lv, Some(&wm), &cfg).loss;
    fd_check("fd dice_ce", &an.grad, &mut f, &zv);
}

#[test]
fn cross_entropy_uniform_logits_give_ln_c() {
    // Sanity check from the field: zero logits give loss ln C.
    let xs = Shape::new4(1, 5, 3, 4);
    let lv = labels(12, 5, 9, None);
    let out = r::softmax_cross_entropy(
        &vec![0.0; xs.numel()],
        &xs,
        &lv,
        None,
        &CrossEntropyAttrs::default(),
    );
    assert!((out.loss - 5f64.ln()).abs() < 1e-12, "{}", out.loss);
}
