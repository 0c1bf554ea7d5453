//! Activation kernels (ReLU, LeakyReLU, sigmoid, dropout) against the CPU
//! reference, the reference backwards against finite differences, and the
//! statistics of the dropout mask.

mod common;
use common::{assert_close, ctx, rand_vec};
use wunet::ops::activation as act;
use wunet::reference::activation as r;
use wunet::reference::fd::{dot, numeric_grad};
use wunet::{Context, DType, Shape, Tensor};

fn up(c: &Context, v: &[f32], s: Shape) -> Tensor {
    Tensor::from_f32(c, v, s).unwrap()
}

/// Random values at least 0.01 away from 0 (so eps = 1e-3 differences never cross the kink).
fn away_from_zero(n: usize, seed: u64) -> Vec<f32> {
    rand_vec(n, seed)
        .into_iter()
        .map(|v| v + 0.01f32.copysign(v))
        .collect()
}

fn fd_check(name: &str, x: &[f32], analytic: &[f32], f: &mut dyn FnMut(&[f32]) -> f64) {
    let which: Vec<usize> = (0..x.len()).collect();
    let num: Vec<f32> = numeric_grad(f, x, &which, 1e-3)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    // Central differences: O(eps^2) truncation for sigmoid plus f32 rounding of x +- eps.
    assert_close(name, analytic, &num, 1e-3, 1e-3);
}

#[test]
fn reference_grads_match_finite_differences() {
    let x = away_from_zero(300, 1);
    let g = rand_vec(300, 2);
    fd_check("relu", &x, &r::relu_grad(&g, &x), &mut |xp| {
        dot(&g, &r::relu(xp))
    });
    for slope in [0.01, 0.2, -0.5] {
        fd_check(
            &format!("leaky {slope}"),
            &x,
            &r::leaky_relu_grad(&g, &x, slope),
            &mut |xp| dot(&g, &r::leaky_relu(xp, slope)),
        );
    }
    let xs: Vec<f32> = x.iter().map(|v| v * 6.0).collect();
    let y = r::sigmoid(&xs);
    fd_check("sigmoid", &xs, &r::sigmoid_grad(&g, &y), &mut |xp| {
        dot(&g, &r::sigmoid(xp))
    });
    for p in [0.0, 0.3, 0.5] {
        fd_check(
            &format!("dropout {p}"),
            &x,
            &r::dropout_grad(&g, p, 7),
            &mut |xp| dot(&g, &r::dropout(xp, p, 7)),
        );
    }
}

#[test]
fn reference_gradient_at_zero() {
    assert_eq!(r::relu_grad(&[3.0, 3.0], &[0.0, -0.0]), vec![0.0, 0.0]);
    assert_eq!(r::leaky_relu_grad(&[3.0], &[0.0], 0.1), vec![0.1f32 * 3.0]);
}

#[test]
fn activations_match_reference() {
    let Some(c) = ctx() else { return };
    for s in [Shape::new4(2, 3, 7, 13), Shape::new5(1, 5, 3, 4, 7)] {
        let mut xv = rand_vec(s.numel(), 3);
        // Exact zeros, and large magnitudes for the sigmoid.
        for i in (0..xv.len()).step_by(11) {
            xv[i] = 0.0;
        }
        for (i, v) in [30.0, -30.0, 100.0, -100.0, 8.0, -8.0].iter().enumerate() {
            xv[3 + 11 * i] = *v;
        }
        let gv = rand_vec(s.numel(), 4);
        let (x, g) = (up(c, &xv, s), up(c, &gv, s));
        let slope = 0.2;
        let out = c
            .run(|rec| {
                let y_relu = act::relu(rec, &x)?;
                let d_relu = act::relu_grad(rec, &g, &x)?;
                let d_relu_y = act::relu_grad(rec, &g, &y_relu)?;
                let y_leaky = act::leaky_relu(rec, &x, slope)?;
                let d_leaky = act::leaky_relu_grad(rec, &g, &x, slope)?;
                let y_sig = act::sigmoid(rec, &x)?;
                let d_sig = act::sigmoid_grad(rec, &g, &y_sig)?;
                Ok([y_relu, d_relu, d_relu_y, y_leaky, d_leaky, y_sig, d_sig])
            })
            .unwrap();
        let v: Vec<Vec<f32>> = out.iter().map(|t| t.to_f32_vec(c).unwrap()).collect();
        assert_eq!(v[0], r::relu(&xv), "{s} relu");
        assert_eq!(v[1], r::relu_grad(&gv, &xv), "{s} relu grad");
        assert_eq!(v[2], r::relu_grad(&gv, &xv), "{s} relu grad from y");
        assert_eq!(v[3], r::leaky_relu(&xv, slope), "{s} leaky");
        assert_eq!(v[4], r::leaky_relu_grad(&gv, &xv, slope), "{s} leaky grad");
        let ysig = r::sigmoid(&xv);
        assert_close(&format!("{s} sigmoid"), &v[5], &ysig, 1e-6, 1e-5);
        // The grad is computed from the GPU's y (as the executor would) and from the reference y.
        assert_close(
            &format!("{s} sigmoid grad"),
            &v[6],
            &r::sigmoid_grad(&gv, &v[5]),
            1e-6,
            1e-5,
        );
        assert_close(
            &format!("{s} sigmoid grad vs ref y"),
            &v[6],
            &r::sigmoid_grad(&gv, &ysig),
            1e-5,
            1e-4,
        );
    }
}

/// Run dropout forward on `x` and backward on `g` with one seed.
fn run_dropout(c: &Context, xv: &[f32], gv: &[f32], p: f32, seed: u32) -> (Vec<f32>, Vec<f32>) {
    let s = Shape::vector(xv.len());
    let (x, g) = (up(c, xv, s), up(c, gv, s));
    let dx = Tensor::empty(c, s, DType::F32).unwrap();
    let y = c
        .run(|rec| {
            let y = act::dropout(rec, &x, p, seed)?;
            act::dropout_grad_into(rec, &g, p, seed, &dx)?;
            Ok(y)
        })
        .unwrap();
    (y.to_f32_vec(c).unwrap(), dx.to_f32_vec(c).unwrap())
}

#[test]
fn dropout_matches_reference_and_is_reproducible() {
    let Some(c) = ctx() else { return };
    let n = 200_003;
    // Values bounded away from 0 so "kept" is exactly "nonzero".
    let xv = away_from_zero(n, 5);
    let gv = away_from_zero(n, 6);
    for p in [0.0f32, 0.2, 0.5, 0.9, 1.0] {
        let (y, dx) = run_dropout(c, &xv, &gv, p, 1234);
        assert_eq!(
            y,
            r::dropout(&xv, p, 1234),
            "p {p}: forward differs from the reference"
        );
        assert_eq!(
            dx,
            r::dropout_grad(&gv, p, 1234),
            "p {p}: backward differs from the reference"
        );
        // Same mask forward and backward.
        let kept_f: Vec<bool> = y.iter().map(|v| *v != 0.0).collect();
        let kept_b: Vec<bool> = dx.iter().map(|v| *v != 0.0).collect();
        assert_eq!(
            kept_f, kept_b,
            "p {p}: masks differ between forward and backward"
        );
        // Kept values are scaled by 1/(1-p).
        for (i, (&yi, &xi)) in y.iter().zip(&xv).enumerate() {
            if yi != 0.0 {
                let want = xi as f64 / (1.0 - p as f64);
                assert!(
                    (yi as f64 - want).abs() <= 1e-6 * want.abs(),
                    "p {p} at {i}: {yi} vs {want}"
                );
            }
        }
        // Fraction kept within 5 standard deviations of 1-p.
        let kept = kept_f.iter().filter(|k| **k).count() as f64;
        let q = 1.0 - p as f64;
        let sd = (n as f64 * q * (1.0 - q)).sqrt();
        assert!(
            (kept - n as f64 * q).abs() <= 5.0 * sd + 0.5,
            "p {p}: kept {kept} of {n}"
        );
        // Neighbours are independent: both kept ~ (1-p)^2.
        let pairs = kept_f.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        let m = (n - 1) as f64;
        assert!(
            (pairs - m * q * q).abs() <= 5.0 * (m * q * q * (1.0 - q * q)).sqrt() + 0.5,
            "p {p}: {pairs} kept pairs"
        );
    }
    // Same seed: same result; another seed: another mask (about 2p(1-p) of the elements differ).
    let (a, _) = run_dropout(c, &xv, &gv, 0.5, 1);
    let (b, _) = run_dropout(c, &xv, &gv, 0.5, 1);
    let (d, _) = run_dropout(c, &xv, &gv, 0.5, 2);
    assert_eq!(a, b);
    let diff = a
        .iter()
        .zip(&d)
        .filter(|(u, v)| (**u == 0.0) != (**v == 0.0))
        .count() as f64;
    assert!(
        (diff - 0.5 * n as f64).abs() < 5.0 * (n as f64 * 0.25).sqrt(),
        "seeds 1 and 2: {diff} of {n} differ"
    );
}

#[test]
fn bad_inputs_are_errors() {
    let Some(c) = ctx() else { return };
    let mut rec = wunet::gpu::Recorder::new(c);
    let x = Tensor::zeros(c, Shape::new4(1, 2, 3, 4), DType::F32).unwrap();
    let g = Tensor::zeros(c, Shape::new4(1, 2, 4, 3), DType::F32).unwrap();
    let e = act::relu_grad(&mut rec, &g, &x).unwrap_err();
    assert!(
        e.to_string().contains("relu_grad") && e.to_string().contains("1x2x4x3"),
        "{e}"
    );
    assert!(act::dropout(&mut rec, &x, 1.5, 0).is_err());
    assert!(act::dropout(&mut rec, &x, f32::NAN, 0).is_err());
    assert!(act::relu_into(&mut rec, &x, &x).is_err());
}
