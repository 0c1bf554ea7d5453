//! Batch, instance and group norm: GPU against the CPU reference, and the
//! reference backward against finite differences of the reference forward.

mod common;
use common::{assert_close, ctx, rand_vec};
use wunet::ops::norm as gn;
use wunet::reference::fd::numeric_grad;
use wunet::reference::norm::{self as r, NormSets};
use wunet::shape::group_norm_stats_shape;
use wunet::{Context, DType, Shape, Tensor};

const EPS: f32 = 1e-5;
const MOMENTUM: f32 = 0.1;

fn up(c: &Context, v: &[f32], s: Shape) -> Tensor {
    Tensor::from_f32(c, v, s).unwrap()
}

fn read(c: &Context, t: &Tensor) -> Vec<f32> {
    t.to_f32_vec(c).unwrap()
}

// Sums over m values in f32 against an f64 reference: 1e-4, scaled by sqrt(m/1024) once
// m exceeds 1024 (the rule the conv tests use for long reductions).
fn tol(m: usize) -> f32 {
    1e-4 * (m as f32 / 1024.0).sqrt().max(1.0)
}

/// Standard normal values (Box-Muller on the xorshift stream).
/// GPU gradients against the reference: `dx` elementwise at 1e-4, `dgamma` and
/// `dbeta` (sums over `m` values per channel) at [`tol`]`(m)`.
fn check_grads(c: &Context, name: &str, grads: &gn::NormGrads, gref: &r::NormGrads, m: usize) {
    assert_close(
        &format!("{name} dx"),
        &read(c, &grads.dx),
        &gref.dx,
        1e-4,
        1e-4,
    );
    let t = tol(m);
    assert_close(
        &format!("{name} dgamma"),
        &read(c, &grads.dgamma),
        &gref.dgamma,
        t,
        t,
    );
    assert_close(
        &format!("{name} dbeta"),
        &read(c, &grads.dbeta),
        &gref.dbeta,
        t,
        t,
    );
}

fn normal_vec(n: usize, seed: u64) -> Vec<f32> {
    let u = rand_vec(2 * n, seed);
    (0..n)
        .map(|i| {
            let a = ((u[2 * i] as f64 + 1.0) / 2.0).max(1e-12);
            let b = (u[2 * i + 1] as f64 + 1.0) / 2.0;
            ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
        })
        .collect()
}

/// Values on the scale of real activations: N(mu, 1) plus a per-channel offset.
fn activations(s: &Shape, seed: u64, offset: f32) -> Vec<f32> {
    let sp = s.spatial_numel();
    normal_vec(s.numel(), seed)
        .iter()
        .enumerate()
        .map(|(i, v)| v + offset + 0.3 * ((i / sp) % s.c()) as f32)
        .collect()
}

fn positive(n: usize, seed: u64) -> Vec<f32> {
    rand_vec(n, seed).iter().map(|v| 0.5 + v.abs()).collect()
}

fn bn_shapes() -> Vec<Shape> {
    vec![
        Shape::new4(2, 3, 7, 13),
        Shape::new4(1, 5, 11, 9),
        Shape::new4(3, 17, 4, 3),
        Shape::new4(4, 3, 1, 1),    // m = 4
        Shape::new4(1, 5, 1, 3),    // m = 3, batch 1
        Shape::new4(3, 2, 1, 1),    // m = 3
        Shape::new4(2, 3, 97, 101), // planes longer than one chunk
        Shape::new5(2, 3, 5, 7, 6),
        Shape::new5(1, 4, 3, 2, 5),
        Shape::new5(2, 5, 1, 1, 2), // m = 4
        Shape::new4(1100, 2, 1, 3), // more planes per set than partials a set aims for
    ]
}

#[test]
fn batch_norm_train_matches_reference() {
    let Some(c) = ctx() else { return };
    for (ci, xs) in bn_shapes().into_iter().enumerate() {
        let ch = xs.c();
        let cv = Shape::vector(ch);
        let xv = activations(&xs, 100 + ci as u64, 0.5);
        let gamma = rand_vec(ch, 200 + ci as u64);
        let beta = rand_vec(ch, 300 + ci as u64);
        let rm0 = rand_vec(ch, 400 + ci as u64);
        let rv0 = positive(ch, 500 + ci as u64);
        let gv = rand_vec(xs.numel(), 600 + ci as u64);
        let (x, g) = (up(c, &xv, xs), up(c, &gv, xs));
        let (gm, bt) = (up(c, &gamma, cv), up(c, &beta, cv));
        let (rm, rv) = (up(c, &rm0, cv), up(c, &rv0, cv));
        let y = Tensor::empty(c, xs, DType::F32).unwrap();
        let (mean, invstd) = (
            Tensor::empty(c, cv, DType::F32).unwrap(),
            Tensor::empty(c, cv, DType::F32).unwrap(),
        );
        // One recorded step, submitted twice: the running statistics must advance twice.
        let prog = c
            .record(|rec| {
                gn::batch_norm_train_into(
                    rec, &x, &gm, &bt, &rm, &rv, MOMENTUM, EPS, &y, &mean, &invstd,
                )
            })
            .unwrap();
        prog.submit(c);
        prog.submit(c);
        let grads = c
            .run(|rec| gn::batch_norm_train_backward(rec, &g, &x, &gm, &mean, &invstd))
            .unwrap();

        let (mut rm_ref, mut rv_ref) = (rm0.clone(), rv0.clone());
        let out = r::batch_norm_train(
            &xv,
            &xs,
            &gamma,
            &beta,
            &mut rm_ref,
            &mut rv_ref,
            MOMENTUM,
            EPS,
        );
        let _ = r::batch_norm_train(
            &xv,
            &xs,
            &gamma,
            &beta,
            &mut rm_ref,
            &mut rv_ref,
            MOMENTUM,
            EPS,
        );
        let gref = r::batch_norm_train_backward(&gv, &xv, &xs, &gamma, &out.mean, &out.invstd);
        let m = xs.n() * xs.spatial_numel();
        let name = format!("batch_norm train {xs} (m = {m})");
        assert_close(&format!("{name} y"), &read(c, &y), &out.y, 1e-4, 1e-4);
        assert_close(
            &format!("{name} mean"),
            &read(c, &mean),
            &out.mean,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name} invstd"),
            &read(c, &invstd),
            &out.invstd,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name} running_mean"),
            &read(c, &rm),
            &rm_ref,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name} running_var"),
            &read(c, &rv),
            &rv_ref,
            1e-4,
            1e-4,
        );
        check_grads(c, &name, &grads, &gref, m);
    }
}

#[test]
fn batch_norm_running_var_is_unbiased() {
    // m = 3: values 0, 1, 2 -> biased var 2/3, unbiased 1. From rv = 0 with momentum 1
    // the running variance must be exactly the unbiased one.
    let Some(c) = ctx() else { return };
    let xs = Shape::new4(3, 1, 1, 1);
    let cv = Shape::vector(1);
    let x = up(c, &[0.0, 1.0, 2.0], xs);
    let (gm, bt) = (up(c, &[1.0], cv), up(c, &[0.0], cv));
    let (rm, rv) = (up(c, &[0.0], cv), up(c, &[0.0], cv));
    let o = c
        .run(|rec| gn::batch_norm_train(rec, &x, &gm, &bt, &rm, &rv, 1.0, 0.0))
        .unwrap();
    assert_close("running_mean", &read(c, &rm), &[1.0], 1e-6, 1e-6);
    assert_close("running_var", &read(c, &rv), &[1.0], 1e-6, 1e-6);
    assert_close(
        "invstd",
        &read(c, &o.save_invstd),
        &[(1.5f64).sqrt() as f32],
        1e-6,
        1e-6,
    );
}

#[test]
fn batch_norm_eval_matches_reference() {
    let Some(c) = ctx() else { return };
    for (ci, xs) in [
        Shape::new4(2, 3, 7, 13),
        Shape::new4(1, 17, 5, 4),
        Shape::new5(2, 5, 3, 4, 7),
        Shape::new4(1, 3, 1, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let ch = xs.c();
        let cv = Shape::vector(ch);
        let xv = activations(&xs, 10 + ci as u64, 0.0);
        let gamma = rand_vec(ch, 20 + ci as u64);
        let beta = rand_vec(ch, 30 + ci as u64);
        let rm0 = rand_vec(ch, 40 + ci as u64);
        let rv0 = positive(ch, 50 + ci as u64);
        let gv = rand_vec(xs.numel(), 60 + ci as u64);
        let (x, g) = (up(c, &xv, xs), up(c, &gv, xs));
        let (gm, bt, rm, rv) = (
            up(c, &gamma, cv),
            up(c, &beta, cv),
            up(c, &rm0, cv),
            up(c, &rv0, cv),
        );
        let (y, grads) = c
            .run(|rec| {
                let y = gn::batch_norm_eval(rec, &x, &gm, &bt, &rm, &rv, EPS)?;
                let gr = gn::batch_norm_eval_backward(rec, &g, &x, &gm, &rm, &rv, EPS)?;
                Ok((y, gr))
            })
            .unwrap();
        let yref = r::batch_norm_eval(&xv, &xs, &gamma, &beta, &rm0, &rv0, EPS);
        let gref = r::batch_norm_eval_backward(&gv, &xv, &xs, &gamma, &rm0, &rv0, EPS);
        let m = xs.n() * xs.spatial_numel();
        let name = format!("batch_norm eval {xs}");
        assert_close(&format!("{name} y"), &read(c, &y), &yref, 1e-4, 1e-4);
        check_grads(c, &name, &grads, &gref, m);
        // Eval mode leaves the running statistics alone.
        assert_eq!(read(c, &rm), rm0, "{name}: running_mean changed");
        assert_eq!(read(c, &rv), rv0, "{name}: running_var changed");
    }
}

/// (shape, groups); groups == C is instance norm.
fn group_cases() -> Vec<(Shape, usize)> {
    vec![
        (Shape::new4(2, 6, 7, 13), 3),
        (Shape::new4(2, 17, 5, 3), 17),
        (Shape::new4(3, 5, 4, 9), 1),
        (Shape::new4(1, 3, 97, 101), 3), // planes longer than one chunk
        (Shape::new5(2, 4, 3, 5, 6), 2),
        (Shape::new5(2, 5, 4, 3, 2), 5),
        (Shape::new4(2, 4, 1, 1), 2), // one spatial value, two channels per group
    ]
}

#[test]
fn group_and_instance_norm_match_reference() {
    let Some(c) = ctx() else { return };
    for (ci, (xs, groups)) in group_cases().into_iter().enumerate() {
        let ch = xs.c();
        let cv = Shape::vector(ch);
        let xv = activations(&xs, 700 + ci as u64, -0.7);
        let gamma = rand_vec(ch, 710 + ci as u64);
        let beta = rand_vec(ch, 720 + ci as u64);
        let gv = rand_vec(xs.numel(), 730 + ci as u64);
        let (x, g, gm, bt) = (
            up(c, &xv, xs),
            up(c, &gv, xs),
            up(c, &gamma, cv),
            up(c, &beta, cv),
        );
        let instance = groups == ch && xs.spatial_numel() > 1;
        let (o, grads) = c
            .run(|rec| {
                if instance {
                    let o = gn::instance_norm(rec, &x, &gm, &bt, EPS)?;
                    let gr =
                        gn::instance_norm_backward(rec, &g, &x, &gm, &o.save_mean, &o.save_invstd)?;
                    Ok((o, gr))
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
                    Ok((o, gr))
                }
            })
            .unwrap();
        assert_eq!(o.save_mean.shape, group_norm_stats_shape(&xs, groups));
        let (out, gref) = if instance {
            let out = r::instance_norm(&xv, &xs, &gamma, &beta, EPS);
            let gref = r::instance_norm_backward(&gv, &xv, &xs, &gamma, &out.mean, &out.invstd);
            (out, gref)
        } else {
            let out = r::group_norm(&xv, &xs, &gamma, &beta, groups, EPS);
            let gref =
                r::group_norm_backward(&gv, &xv, &xs, &gamma, &out.mean, &out.invstd, groups);
            (out, gref)
        };
        let m = xs.n() * xs.spatial_numel();
        let name = format!(
            "{} {xs} groups {groups}",
            if instance {
                "instance_norm"
            } else {
                "group_norm"
            }
        );
        assert_close(&format!("{name} y"), &read(c, &o.y), &out.y, 1e-4, 1e-4);
        assert_close(
            &format!("{name} mean"),
            &read(c, &o.save_mean),
            &out.mean,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name} invstd"),
            &read(c, &o.save_invstd),
            &out.invstd,
            1e-4,
            1e-4,
        );
        check_grads(c, &name, &grads, &gref, m);
    }
}

/// Naive one-pass variance in f32, E[x^2] - E[x]^2: what the two-level two-pass
/// reduction must not degrade to.
fn naive_f32_var(x: &[f32], xs: &Shape, ch: usize) -> f32 {
    let sp = xs.spatial_numel();
    let (mut s1, mut s2) = (0f32, 0f32);
    for n in 0..xs.n() {
        for &v in &x[(n * xs.c() + ch) * sp..][..sp] {
            s1 += v;
            s2 += v * v;
        }
    }
    let m = (xs.n() * sp) as f32;
    s2 / m - (s1 / m) * (s1 / m)
}

#[test]
fn batch_norm_large_m_with_offset_is_accurate() {
    let Some(c) = ctx() else { return };
    for (ci, xs) in [
        Shape::new4(2, 3, 211, 257),
        Shape::new5(1, 2, 132, 132, 116),
    ]
    .into_iter()
    .enumerate()
    {
        let ch = xs.c();
        let cv = Shape::vector(ch);
        // 1000 + N(0, 1): E[x^2] ~ 1e6, so an f32 E[x^2] - E[x]^2 loses the variance.
        let xv: Vec<f32> = normal_vec(xs.numel(), 900 + ci as u64)
            .iter()
            .map(|v| 1000.0 + v)
            .collect();
        let gamma = rand_vec(ch, 910 + ci as u64);
        let beta = rand_vec(ch, 920 + ci as u64);
        let gv = rand_vec(xs.numel(), 930 + ci as u64);
        let rm0 = vec![0.0; ch];
        let rv0 = vec![1.0; ch];
        let (x, g, gm, bt) = (
            up(c, &xv, xs),
            up(c, &gv, xs),
            up(c, &gamma, cv),
            up(c, &beta, cv),
        );
        let (rm, rv) = (up(c, &rm0, cv), up(c, &rv0, cv));
        let (o, grads) = c
            .run(|rec| {
                let o = gn::batch_norm_train(rec, &x, &gm, &bt, &rm, &rv, MOMENTUM, EPS)?;
                let gr =
                    gn::batch_norm_train_backward(rec, &g, &x, &gm, &o.save_mean, &o.save_invstd)?;
                Ok((o, gr))
            })
            .unwrap();
        let (mut rm_ref, mut rv_ref) = (rm0.clone(), rv0.clone());
        let out = r::batch_norm_train(
            &xv,
            &xs,
            &gamma,
            &beta,
            &mut rm_ref,
            &mut rv_ref,
            MOMENTUM,
            EPS,
        );
        let gref = r::batch_norm_train_backward(&gv, &xv, &xs, &gamma, &out.mean, &out.invstd);
        let m = xs.n() * xs.spatial_numel();
        let name = format!("batch_norm train {xs} (m = {m}) offset 1000");
        // The test data really defeat the naive formula (so this test can fail).
        let var_ref = 1.0 / (out.invstd[0] as f64).powi(2) - EPS as f64;
        let naive = naive_f32_var(&xv, &xs, 0) as f64;
        assert!(
            (naive - var_ref).abs() > 1e-2 * var_ref,
            "{name}: naive var {naive} vs {var_ref} is not wrong enough"
        );
        assert_close(
            &format!("{name} mean"),
            &read(c, &o.save_mean),
            &out.mean,
            0.0,
            1e-6,
        );
        assert_close(
            &format!("{name} invstd"),
            &read(c, &o.save_invstd),
            &out.invstd,
            0.0,
            1e-5,
        );
        assert_close(
            &format!("{name} running_var"),
            &read(c, &rv),
            &rv_ref,
            0.0,
            1e-5,
        );
        assert_close(
            &format!("{name} running_mean"),
            &read(c, &rm),
            &rm_ref,
            0.0,
            1e-6,
        );
        assert_close(&format!("{name} y"), &read(c, &o.y), &out.y, 1e-4, 1e-4);
        check_grads(c, &name, &grads, &gref, m);
    }
}

#[test]
fn norm_errors_name_the_op() {
    let Some(c) = ctx() else { return };
    let t = |s: Shape| Tensor::zeros(c, s, DType::F32).unwrap();
    let xs = Shape::new4(1, 4, 1, 1);
    let (x, v4, v3) = (t(xs), t(Shape::vector(4)), t(Shape::vector(3)));
    let (y, m4, i4) = (t(xs), t(Shape::vector(4)), t(Shape::vector(4)));
    let err = |r: wunet::Result<()>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let mut rec = wunet::gpu::Recorder::new(c);
    // m = N*H*W = 1 in training mode.
    let e = err(gn::batch_norm_train_into(
        &mut rec,
        &x,
        &v4,
        &v4,
        &m4,
        &i4,
        MOMENTUM,
        EPS,
        &y,
        &t(Shape::vector(4)),
        &t(Shape::vector(4)),
    ));
    assert!(
        e.contains("batch_norm2d") && e.contains("m = N*D*H*W = 1"),
        "{e}"
    );
    // gamma of the wrong length.
    let e = err(gn::batch_norm_eval_into(
        &mut rec, &x, &v3, &v4, &m4, &i4, EPS, &y,
    ));
    assert!(
        e.contains("batch_norm2d") && e.contains("gamma 3 does not fit input 1x4x1x1"),
        "{e}"
    );
    // groups that do not divide C.
    let e = err(gn::group_norm_into(
        &mut rec,
        &x,
        &v4,
        &v4,
        3,
        EPS,
        &y,
        &t(Shape::vector(3)),
        &t(Shape::vector(3)),
    ));
    assert!(e.contains("group_norm") && e.contains("3 groups"), "{e}");
    // instance norm over one spatial value.
    let ss = group_norm_stats_shape(&xs, 4);
    let e = err(gn::instance_norm_into(
        &mut rec,
        &x,
        &v4,
        &v4,
        EPS,
        &y,
        &t(ss),
        &t(ss),
    ));
    assert!(e.contains("instance_norm2d"), "{e}");
    // in place.
    let xs2 = Shape::new4(2, 4, 3, 3);
    let x2 = t(xs2);
    let e = err(gn::batch_norm_eval_into(
        &mut rec, &x2, &v4, &v4, &m4, &i4, EPS, &x2,
    ));
    assert!(e.contains("must not share storage"), "{e}");
    assert!(
        rec.program.is_empty(),
        "failed ops must not record dispatches"
    );
}

// ------------------------------------------------------------------ finite differences

fn fd_check(what: &str, analytic: &[f32], f: &mut dyn FnMut(&[f32]) -> f64, at: &[f32]) {
    let which: Vec<usize> = (0..at.len()).collect();
    let num = numeric_grad(f, at, &which, 1e-3);
    let num: Vec<f32> = num.iter().map(|v| *v as f32).collect();
    // Central differences with h = 1e-3 in f32 inputs: truncation error O(h^2) and the
    // f32 rounding of the perturbed inputs; 1e-3 is far below any real mistake.
    assert_close(what, analytic, &num, 1e-3, 1e-3);
}

#[test]
fn reference_backward_matches_finite_differences() {
    for (xs, sets) in [
        (Shape::new4(2, 3, 2, 3), NormSets::Batch),
        (Shape::new4(3, 2, 1, 1), NormSets::Batch), // m = 3
        (Shape::new5(2, 4, 2, 1, 3), NormSets::Groups(2)),
        (Shape::new4(2, 3, 3, 2), NormSets::Groups(3)), // instance norm
    ] {
        let ch = xs.c();
        let xv = activations(&xs, 1, 0.2);
        let gamma = rand_vec(ch, 2);
        let beta = rand_vec(ch, 3);
        let g = rand_vec(xs.numel(), 4);
        let fwd = |x: &[f32], gm: &[f32], bt: &[f32]| {
            dot_f64(&g, &r::normalize_f64(x, &xs, sets, gm, bt, EPS).0)
        };
        let (mean, var) = r::set_stats(&xv, &xs, sets);
        let invstd: Vec<f32> = var
            .iter()
            .map(|v| (1.0 / (v + EPS as f64).sqrt()) as f32)
            .collect();
        let mean: Vec<f32> = mean.iter().map(|v| *v as f32).collect();
        let an = r::norm_backward(&xv, &xs, sets, &g, &gamma, &mean, &invstd);
        let name = format!("fd {xs} {sets:?}");
        fd_check(
            &format!("{name} dx"),
            &an.dx,
            &mut |x| fwd(x, &gamma, &beta),
            &xv,
        );
        fd_check(
            &format!("{name} dgamma"),
            &an.dgamma,
            &mut |gm| fwd(&xv, gm, &beta),
            &gamma,
        );
        fd_check(
            &format!("{name} dbeta"),
            &an.dbeta,
            &mut |bt| fwd(&xv, &gamma, bt),
            &beta,
        );
        // The public wrappers agree with the generic backward.
        let wrapped = match sets {
            NormSets::Batch => r::batch_norm_train_backward(&g, &xv, &xs, &gamma, &mean, &invstd),
            NormSets::Groups(gr) if gr == ch => {
                r::instance_norm_backward(&g, &xv, &xs, &gamma, &mean, &invstd)
            }
            NormSets::Groups(gr) => {
                r::group_norm_backward(&g, &xv, &xs, &gamma, &mean, &invstd, gr)
            }
        };
        assert_eq!(wrapped.dx, an.dx);
    }
    // Eval mode: the statistics are constants.
    let xs = Shape::new4(2, 3, 2, 3);
    let xv = activations(&xs, 5, 0.0);
    let (gamma, beta, rm, rv) = (
        rand_vec(3, 6),
        rand_vec(3, 7),
        rand_vec(3, 8),
        positive(3, 9),
    );
    let g = rand_vec(xs.numel(), 10);
    let fwd = |x: &[f32], gm: &[f32], bt: &[f32]| {
        dot_f64(&g, &r::batch_norm_eval_f64(x, &xs, gm, bt, &rm, &rv, EPS))
    };
    let an = r::batch_norm_eval_backward(&g, &xv, &xs, &gamma, &rm, &rv, EPS);
    fd_check("fd eval dx", &an.dx, &mut |x| fwd(x, &gamma, &beta), &xv);
    fd_check(
        "fd eval dgamma",
        &an.dgamma,
        &mut |gm| fwd(&xv, gm, &beta),
        &gamma,
    );
    fd_check(
        "fd eval dbeta",
        &an.dbeta,
        &mut |bt| fwd(&xv, &gamma, bt),
        &beta,
    );
}

fn dot_f64(g: &[f32], y: &[f64]) -> f64 {
    g.iter().zip(y).map(|(a, b)| *a as f64 * b).sum()
}
