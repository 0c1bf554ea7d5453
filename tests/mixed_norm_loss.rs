//! Mixed precision through the op wrappers (issue 11): batch, group and
//! instance norm and the losses with F16 activations (x, y, dy, dx, logits,
//! their gradient) and F32 parameters, statistics and losses, against the same
//! wrappers on F32 tensors holding the same f16-rounded values and against the
//! CPU reference on those values; and their dtype errors. The method and the
//! tolerances are explained in tests/common/mixed.rs; each comparison names its
//! own. The other families: tests/mixed.rs.

mod common;

use common::mixed::{act_t, both, err, f16_ctx, f32_t, near_ref, read, round16, same, stored};
use common::{assert_close, rand_vec};
use wunet::graph::ops::{CrossEntropyAttrs, DiceAttrs, Reduction};
use wunet::ops::loss::{self as gl, DiceCeConfig};
use wunet::ops::norm as gn;
use wunet::reference::loss as rl;
use wunet::reference::norm as rn;
use wunet::shape::{group_norm_stats_shape, label_map_shape};
use wunet::{Context, DType, Shape, Tensor};

const EPS: f32 = 1e-5;
const MOMENTUM: f32 = 0.1;

/// tests/norm.rs: sums over `m` values in f32 against f64, 1e-4 scaled by sqrt(m/1024) beyond 1024.
fn tol(m: usize) -> f32 {
    1e-4 * (m as f32 / 1024.0).sqrt().max(1.0)
}

/// Values on the scale of real activations: an offset plus a per-channel shift.
fn activations(s: &Shape, seed: u64) -> Vec<f32> {
    let sp = s.spatial_numel();
    rand_vec(s.numel(), seed)
        .iter()
        .enumerate()
        .map(|(i, v)| 2.0 * v + 0.5 + 0.3 * ((i / sp) % s.c()) as f32)
        .collect()
}

fn positive(n: usize, seed: u64) -> Vec<f32> {
    rand_vec(n, seed).iter().map(|v| 0.5 + v.abs()).collect()
}

/// `[y, mean, invstd, dx, dgamma, dbeta]` of a norm and its backward against
/// the reference: y and dx (F16) at tests/norm.rs's 1e-4 plus one f16
/// rounding, the F32 statistics at 1e-4, dgamma and dbeta at [`tol`]`(m)`.
fn check_norm(
    c: &Context,
    name: &str,
    h: &[Tensor],
    out: &rn::NormOut,
    gref: &rn::NormGrads,
    m: usize,
) {
    near_ref(
        &format!("{name} y vs reference"),
        &read(c, &h[0]),
        &out.y,
        (1e-4, 1e-4),
    );
    for (i, want, what) in [(1, &out.mean, "mean"), (2, &out.invstd, "invstd")] {
        let got = read(c, &h[i]);
        assert_close(
            &format!("{name} {what} vs reference"),
            &got,
            want,
            1e-4,
            1e-4,
        );
    }
    near_ref(
        &format!("{name} dx vs reference"),
        &read(c, &h[3]),
        &gref.dx,
        (1e-4, 1e-4),
    );
    let t = tol(m);
    assert_close(
        &format!("{name} dgamma"),
        &read(c, &h[4]),
        &gref.dgamma,
        t,
        t,
    );
    assert_close(&format!("{name} dbeta"), &read(c, &h[5]), &gref.dbeta, t, t);
}

/// Outputs `acts` of the two runs are F16 activations (one rounding), the rest F32.
fn check_runs(c: &Context, name: &str, h: &[Tensor], f: &[Tensor], acts: &[usize]) {
    for i in 0..h.len() {
        let what = format!("{name} output {i}");
        if acts.contains(&i) {
            stored(c, &what, &h[i], &f[i]);
        } else {
            same(c, &what, &h[i], &f[i]);
        }
    }
}

// ------------------------------------------------------------------ norms

#[test]
fn batch_norm_in_f16() {
    let Some(c) = f16_ctx() else { return };
    for xs in [Shape::new4(2, 5, 7, 9), Shape::new5(2, 3, 5, 6, 7)] {
        let (ch, cv) = (xs.c(), Shape::vector(xs.c()));
        let xv = activations(&xs, 1);
        let gv = rand_vec(xs.numel(), 2);
        let (gamma, beta) = (rand_vec(ch, 3), rand_vec(ch, 4));
        let (rm0, rv0) = (rand_vec(ch, 5), positive(ch, 6));
        let [h, f] = both(|dt| {
            let (x, g) = (act_t(c, &xv, xs, dt), act_t(c, &gv, xs, dt));
            let (gm, bt) = (f32_t(c, &gamma, cv), f32_t(c, &beta, cv));
            let (rm, rv) = (f32_t(c, &rm0, cv), f32_t(c, &rv0, cv));
            let y = Tensor::empty(c, xs, dt)?;
            let mean = Tensor::empty(c, cv, DType::F32)?;
            let invstd = Tensor::empty(c, cv, DType::F32)?;
            c.run(|rec| {
                gn::batch_norm_train_into(
                    rec, &x, &gm, &bt, &rm, &rv, MOMENTUM, EPS, &y, &mean, &invstd,
                )?;
                let tg = gn::batch_norm_train_backward(rec, &g, &x, &gm, &mean, &invstd)?;
                // Eval mode with the initial running statistics (separate tensors).
                let (erm, erv) = (f32_t(c, &rm0, cv), f32_t(c, &rv0, cv));
                let ye = gn::batch_norm_eval(rec, &x, &gm, &bt, &erm, &erv, EPS)?;
                let eg = gn::batch_norm_eval_backward(rec, &g, &x, &gm, &erm, &erv, EPS)?;
                Ok(vec![
                    y.clone(),
                    mean.clone(),
                    invstd.clone(),
                    tg.dx,
                    tg.dgamma,
                    tg.dbeta,
                    rm,
                    rv,
                    ye,
                    eg.dx,
                    eg.dgamma,
                    eg.dbeta,
                ])
            })
        });
        let name = format!("batch_norm {xs}");
        // y and dx: f32 from the same sums, rounded once; the rest F32.
        check_runs(c, &name, &h, &f, &[0, 3, 8, 9]);
        let (x, g) = (round16(&xv), round16(&gv));
        let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
        let out = rn::batch_norm_train(&x, &xs, &gamma, &beta, &mut rm, &mut rv, MOMENTUM, EPS);
        let gref = rn::batch_norm_train_backward(&g, &x, &xs, &gamma, &out.mean, &out.invstd);
        let m = xs.n() * xs.spatial_numel();
        check_norm(c, &format!("{name} train"), &h[..6], &out, &gref, m);
        assert_close(
            &format!("{name} running_mean"),
            &read(c, &h[6]),
            &rm,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name} running_var"),
            &read(c, &h[7]),
            &rv,
            1e-4,
            1e-4,
        );
        let ye = rn::batch_norm_eval(&x, &xs, &gamma, &beta, &rm0, &rv0, EPS);
        near_ref(
            &format!("{name} eval y"),
            &read(c, &h[8]),
            &ye,
            (1e-4, 1e-4),
        );
        let eg = rn::batch_norm_eval_backward(&g, &x, &xs, &gamma, &rm0, &rv0, EPS);
        near_ref(
            &format!("{name} eval dx"),
            &read(c, &h[9]),
            &eg.dx,
            (1e-4, 1e-4),
        );
        let t = tol(m);
        assert_close(
            &format!("{name} eval dgamma"),
            &read(c, &h[10]),
            &eg.dgamma,
            t,
            t,
        );
        assert_close(
            &format!("{name} eval dbeta"),
            &read(c, &h[11]),
            &eg.dbeta,
            t,
            t,
        );
    }
}

#[test]
fn group_and_instance_norm_in_f16() {
    let Some(c) = f16_ctx() else { return };
    // groups = 0: instance norm.
    for (xs, groups) in [
        (Shape::new4(2, 6, 7, 9), 3),
        (Shape::new5(2, 6, 3, 5, 4), 2),
        (Shape::new4(2, 5, 7, 9), 0),
        (Shape::new5(2, 3, 5, 6, 7), 0),
    ] {
        let (ch, cv) = (xs.c(), Shape::vector(xs.c()));
        let xv = activations(&xs, 10);
        let gv = rand_vec(xs.numel(), 11);
        let (gamma, beta) = (rand_vec(ch, 12), rand_vec(ch, 13));
        let [h, f] = both(|dt| {
            let (x, g) = (act_t(c, &xv, xs, dt), act_t(c, &gv, xs, dt));
            let (gm, bt) = (f32_t(c, &gamma, cv), f32_t(c, &beta, cv));
            c.run(|rec| {
                let (o, gr) = if groups == 0 {
                    // The `_into` path, with outputs allocated here.
                    let ss = group_norm_stats_shape(&xs, ch);
                    let o = gn::NormOutput {
                        y: Tensor::empty(c, xs, dt)?,
                        save_mean: Tensor::empty(c, ss, DType::F32)?,
                        save_invstd: Tensor::empty(c, ss, DType::F32)?,
                    };
                    gn::instance_norm_into(
                        rec,
                        &x,
                        &gm,
                        &bt,
                        EPS,
                        &o.y,
                        &o.save_mean,
                        &o.save_invstd,
                    )?;
                    let gr = gn::NormGrads {
                        dx: Tensor::empty(c, xs, dt)?,
                        dgamma: Tensor::empty(c, cv, DType::F32)?,
                        dbeta: Tensor::empty(c, cv, DType::F32)?,
                    };
                    gn::instance_norm_backward_into(
                        rec,
                        &g,
                        &x,
                        &gm,
                        &o.save_mean,
                        &o.save_invstd,
                        &gr.dx,
                        &gr.dgamma,
                        &gr.dbeta,
                    )?;
                    (o, gr)
                } else {
                    let o = gn::group_norm(rec, &x, &gm, &bt, groups, EPS)?;
                    let gr = gn::group_norm_backward(
                        rec,
                        &g,
                        &x,
                        &gm,
                        &o.save_mean,
                        &o.save_invstd,
                        groups,
                    )?;
                    (o, gr)
                };
                Ok(vec![
                    o.y,
                    o.save_mean,
                    o.save_invstd,
                    gr.dx,
                    gr.dgamma,
                    gr.dbeta,
                ])
            })
        });
        let name = format!("{xs} groups {groups}");
        check_runs(c, &name, &h, &f, &[0, 3]);
        let (x, g) = (round16(&xv), round16(&gv));
        let (out, gref) = if groups == 0 {
            let out = rn::instance_norm(&x, &xs, &gamma, &beta, EPS);
            let gref = rn::instance_norm_backward(&g, &x, &xs, &gamma, &out.mean, &out.invstd);
            (out, gref)
        } else {
            let out = rn::group_norm(&x, &xs, &gamma, &beta, groups, EPS);
            let gref = rn::group_norm_backward(&g, &x, &xs, &gamma, &out.mean, &out.invstd, groups);
            (out, gref)
        };
        // dgamma and dbeta sum over the batch and space of a channel.
        check_norm(c, &name, &h, &out, &gref, xs.n() * xs.spatial_numel());
    }
}

// ------------------------------------------------------------------ losses

/// Labels in 0..classes, every `every`-th pixel (from 3) set to `ignore`.
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

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |a, b| a.max(b.abs()))
}

/// tests/loss.rs: gradients are O(1/pixels), compared at 1e-4 of their largest magnitude.
fn grad_atol(v: &[f32]) -> f32 {
    1e-4 * max_abs(v)
}

#[test]
fn cross_entropy_in_f16() {
    let Some(c) = f16_ctx() else { return };
    // (shape, class weights, weight map, ignore, reduction). Absent weights are
    // bound as F32 stand-ins: the second case has none, the third only a map.
    for (ci, (xs, class_w, wmap, ignore, reduction)) in [
        (
            Shape::new4(2, 5, 9, 6),
            true,
            true,
            Some((2, 7)),
            Reduction::WeightedMean,
        ),
        (
            Shape::new5(2, 3, 3, 5, 4),
            false,
            false,
            None,
            Reduction::Mean,
        ),
        (
            Shape::new4(2, 3, 7, 13),
            false,
            true,
            Some((255, 5)),
            Reduction::Mean,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let ls = label_map_shape(&xs);
        let zv = scaled(xs.numel(), 20 + ci as u64, 3.0);
        let lv = labels(ls.numel(), xs.c(), 21 + ci as u64, ignore);
        let cwv: Vec<f32> = positive(xs.c(), 22);
        let wmv: Vec<f32> = rand_vec(ls.numel(), 23)
            .iter()
            .map(|v| 1.0 + 4.0 * v.abs())
            .collect();
        let cfg = CrossEntropyAttrs {
            class_weights: class_w.then(|| cwv.clone()),
            weight_map: wmap,
            ignore_label: ignore.map(|i| i.0),
            reduction,
        };
        let [h, f] = both(|dt| {
            let z = act_t(c, &zv, xs, dt);
            let lab = Tensor::from_i32(c, &lv, ls)?;
            let (cw, wm) = (f32_t(c, &cwv, Shape::vector(xs.c())), f32_t(c, &wmv, ls));
            let (cwo, wmo) = (class_w.then_some(&cw), wmap.then_some(&wm));
            let o = c.run(|rec| gl::softmax_cross_entropy(rec, &z, &lab, wmo, cwo, &cfg, true))?;
            Ok(vec![o.loss, o.nll_map.expect("asked for"), o.grad])
        });
        let name = format!("ce case {ci} {xs}");
        // The loss and the NLL map are F32 sums of the same values; the gradient
        // is stored once.
        check_runs(c, &name, &h, &f, &[2]);
        let want =
            rl::softmax_cross_entropy(&round16(&zv), &xs, &lv, wmap.then_some(&wmv[..]), &cfg);
        // tests/loss.rs: loss and NLL map at 1e-4; the gradient at 1e-4 of its
        // largest magnitude and 1e-4 rel, plus one f16 rounding.
        let loss = [want.loss as f32];
        assert_close(&format!("{name} loss"), &read(c, &h[0]), &loss, 1e-4, 1e-4);
        assert_close(
            &format!("{name} nll_map"),
            &read(c, &h[1]),
            &want.nll_map,
            1e-4,
            1e-4,
        );
        let fam = (grad_atol(&want.grad), 1e-4);
        near_ref(&format!("{name} grad"), &read(c, &h[2]), &want.grad, fam);
    }
}

#[test]
fn dice_in_f16() {
    let Some(c) = f16_ctx() else { return };
    for (ci, (xs, batch_dice, ignore, include_background)) in [
        (Shape::new4(2, 3, 5, 6), true, Some((1, 6)), true),
        (Shape::new5(2, 2, 3, 4, 5), false, None, true),
        (Shape::new4(2, 3, 5, 6), false, Some((1, 6)), false),
    ]
    .into_iter()
    .enumerate()
    {
        let ls = label_map_shape(&xs);
        let zv = scaled(xs.numel(), 30 + ci as u64, 3.0);
        let lv = labels(ls.numel(), xs.c(), 31 + ci as u64, ignore);
        let cfg = DiceAttrs {
            batch_dice,
            smooth: 1e-5,
            ignore_label: ignore.map(|i| i.0),
            include_background,
        };
        let [h, f] = both(|dt| {
            let z = act_t(c, &zv, xs, dt);
            let lab = Tensor::from_i32(c, &lv, ls)?;
            let o = c.run(|rec| gl::dice_loss(rec, &z, &lab, &cfg))?;
            Ok(vec![o.loss, o.dice.expect("dice"), o.grad])
        });
        let name = format!("dice case {ci} {xs}");
        check_runs(c, &name, &h, &f, &[2]);
        let want = rl::dice_loss(&round16(&zv), &xs, &lv, &cfg);
        // tests/loss.rs tolerances, plus one f16 rounding of the gradient.
        let loss = [want.loss as f32];
        assert_close(&format!("{name} loss"), &read(c, &h[0]), &loss, 1e-4, 1e-4);
        assert_close(
            &format!("{name} dice"),
            &read(c, &h[1]),
            &want.dice,
            1e-4,
            1e-4,
        );
        let fam = (grad_atol(&want.grad), 1e-4);
        near_ref(&format!("{name} grad"), &read(c, &h[2]), &want.grad, fam);
    }
}

#[test]
fn dice_ce_in_f16() {
    let Some(c) = f16_ctx() else { return };
    for (ci, xs) in [Shape::new4(2, 3, 9, 11), Shape::new5(2, 5, 3, 4, 5)]
        .into_iter()
        .enumerate()
    {
        let ls = label_map_shape(&xs);
        let zv = scaled(xs.numel(), 40 + ci as u64, 3.0);
        let lv = labels(ls.numel(), xs.c(), 41 + ci as u64, Some((-100, 9)));
        let wmv: Vec<f32> = positive(ls.numel(), 42);
        let cfg = DiceCeConfig {
            ce: CrossEntropyAttrs {
                class_weights: None,
                weight_map: true,
                ignore_label: Some(-100),
                reduction: Reduction::WeightedMean,
            },
            dice: DiceAttrs {
                batch_dice: ci == 0,
                smooth: 1e-5,
                ignore_label: Some(-100),
                include_background: true,
            },
            weight_ce: 0.7,
            weight_dice: 1.3,
        };
        let [h, f] = both(|dt| {
            let z = act_t(c, &zv, xs, dt);
            let lab = Tensor::from_i32(c, &lv, ls)?;
            let wm = f32_t(c, &wmv, ls);
            let o = c.run(|rec| gl::dice_ce_loss(rec, &z, &lab, Some(&wm), None, &cfg, true))?;
            Ok(vec![
                o.loss,
                o.dice.expect("dice"),
                o.nll_map.expect("asked for"),
                o.grad,
            ])
        });
        let name = format!("dice_ce case {ci} {xs}");
        for i in 0..3 {
            same(c, &format!("{name} output {i}"), &h[i], &f[i]);
        }
        // The CE gradient is stored (rounded), then the Dice pass adds its own
        // to it and stores again: two roundings, the first of the CE part, so
        // beyond one rounding of the result allow 2^-11 of the largest CE term.
        let x = round16(&zv);
        let ce = rl::softmax_cross_entropy(&x, &xs, &lv, Some(&wmv), &cfg.ce);
        let first = cfg.weight_ce * max_abs(&ce.grad) / 2048.0;
        let (got, want32) = (read(c, &h[3]), read(c, &f[3]));
        assert_eq!((h[3].dtype, f[3].dtype), (DType::F16, DType::F32));
        assert_close(
            &format!("{name} grad"),
            &got,
            &want32,
            first + 1.0 / 16_777_216.0,
            1.0 / 1024.0,
        );
        let want = rl::dice_ce_loss(&x, &xs, &lv, Some(&wmv), &cfg);
        let loss = [want.loss as f32];
        assert_close(&format!("{name} loss"), &read(c, &h[0]), &loss, 1e-4, 1e-4);
        assert_close(
            &format!("{name} dice"),
            &read(c, &h[1]),
            &want.dice,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name} nll_map"),
            &read(c, &h[2]),
            &want.nll_map,
            1e-4,
            1e-4,
        );
        let fam = (grad_atol(&want.grad) + first, 1e-4);
        near_ref(&format!("{name} grad vs reference"), &got, &want.grad, fam);
    }
}

// ------------------------------------------------------------------ errors

#[test]
fn norm_and_loss_dtype_errors_name_op_and_tensors() {
    let Some(c) = f16_ctx() else { return };
    let mut rec = wunet::gpu::Recorder::new(c);
    let xs = Shape::new4(2, 3, 5, 7);
    let cv = Shape::vector(3);
    let v = vec![0.5; xs.numel()];
    let (h, f) = (act_t(c, &v, xs, DType::F16), f32_t(c, &v, xs));
    let one = f32_t(c, &[1.0; 3], cv);
    let (rm, rv) = (f32_t(c, &[0.0; 3], cv), f32_t(c, &[1.0; 3], cv));
    let (m, s) = (f32_t(c, &[0.0; 3], cv), f32_t(c, &[1.0; 3], cv));
    let e = err(
        "bn y",
        gn::batch_norm_train_into(&mut rec, &h, &one, &one, &rm, &rv, 0.1, EPS, &f, &m, &s),
    );
    assert!(
        e.contains("batch_norm2d: input is F16 but output is F32"),
        "{e}"
    );
    let half_gamma = act_t(c, &[1.0; 3], cv, DType::F16);
    let e = err(
        "bn gamma",
        gn::batch_norm_train(&mut rec, &h, &half_gamma, &one, &rm, &rv, 0.1, EPS),
    );
    assert!(
        e.contains("batch_norm2d: gamma has dtype F16, expected F32"),
        "{e}"
    );
    let e = err(
        "gn backward",
        gn::group_norm_backward(&mut rec, &f, &h, &one, &m, &s, 3),
    );
    assert!(
        e.contains("group_norm: input is F16 but grad_output is F32"),
        "{e}"
    );
    let ls = label_map_shape(&xs);
    let lab = Tensor::from_i32(c, &vec![0; ls.numel()], ls).unwrap();
    let loss = Tensor::empty(c, Shape::scalar(), DType::F32).unwrap();
    let e = err(
        "ce grad",
        gl::softmax_cross_entropy_into(
            &mut rec,
            &h,
            &lab,
            None,
            None,
            &CrossEntropyAttrs::default(),
            &loss,
            &f,
            None,
        ),
    );
    assert!(
        e.contains("softmax_cross_entropy: logits is F16 but grad is F32"),
        "{e}"
    );
    let wm = act_t(c, &vec![1.0; ls.numel()], ls, DType::F16);
    let cfg = CrossEntropyAttrs {
        weight_map: true,
        ..Default::default()
    };
    let e = err(
        "ce weight map",
        gl::softmax_cross_entropy(&mut rec, &h, &lab, Some(&wm), None, &cfg, false),
    );
    assert!(
        e.contains("softmax_cross_entropy: weight_map has dtype F16, expected F32"),
        "{e}"
    );
    let half_loss = Tensor::empty(c, Shape::scalar(), DType::F16).unwrap();
    let grad = Tensor::empty(c, xs, DType::F16).unwrap();
    let dice = Tensor::empty(c, cv, DType::F32).unwrap();
    let e = err(
        "dice loss dtype",
        gl::dice_loss_into(
            &mut rec,
            &h,
            &lab,
            &DiceAttrs::default(),
            &half_loss,
            &grad,
            &dice,
        ),
    );
    assert!(
        e.contains("dice_loss: loss has dtype F16, expected F32"),
        "{e}"
    );
    assert!(rec.finish().is_empty());
}
