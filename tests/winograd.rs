//! Winograd convolution kernels (F(2x2,3x3), F(4x4,3x3), F(2x2x2,3x3x3), F(4x4x4,3x3x3))
//! against the f64 CPU reference: forward with bias, stride-1 grad input and grad weight,
//! H != W, borders (padding 0, 1, 2 through the grad input), 1 and 1024 channels, batch > 1,
//! anisotropic 3D sizes, weight gradients summed over hundreds of tiles.
//!
//! Error measure: `max |got - ref| / max |ref|` over the whole output (normwise relative
//! error; elementwise relative error is meaningless near zero crossings). Tolerances:
//! - `Winograd2` (F(2x2,3x3), F(2x2x2,3x3x3)): 1e-5 at small channel counts, 1e-4 at 1024
//!   (2D) and 512 (3D) channels.
//! - `Winograd4` (F(4x4,3x3), F(4x4x4,3x3x3)): 1e-4 at small channel counts, 5e-4 at 1024
//!   (2D) and 512 (3D) channels (measured on lavapipe: at most 1.7e-5 in 2D, 7.7e-5 in 3D).
//!   Within the 1e-3 bound, so it may be chosen by measurement.

mod common;
use common::{ctx, rand_vec};
use wunet::ops::conv::{self, ConvKernel};
use wunet::reference::conv as r;
use wunet::shape::conv_weight_shape;
use wunet::{DType, Shape, Tensor, Window};

fn upload(c: &wunet::Context, v: &[f32], s: Shape) -> Tensor {
    Tensor::from_f32(c, v, s).unwrap()
}

/// `max |got - want| / max |want|`.
fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let err = got.iter().zip(want).fold(0.0f64, |m, (g, w)| {
        let d = (*g as f64 - *w as f64).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            m.max(d)
        }
    });
    err / scale.max(1e-30)
}

/// Runs forward (with bias) and grad input with `k`; returns their normwise errors.
fn check(xs: Shape, o: usize, pad: usize, k: ConvKernel, seed: u64) -> [f64; 3] {
    let c = ctx().expect("adapter");
    let dims = if xs.is_3d() { 3 } else { 2 };
    let win = Window::cube(dims, 3, 1, pad);
    let ws = conv_weight_shape(o, xs.c(), &win, xs.is_3d());
    let xv = rand_vec(xs.numel(), seed);
    let wv = rand_vec(ws.numel(), seed + 1);
    let bv = rand_vec(o, seed + 2);
    let (yref, ys) = r::conv_fwd(&xv, &xs, &wv, &ws, Some(&bv), &win);
    let gv = rand_vec(ys.numel(), seed + 3);
    let dxref = r::conv_dgrad(&gv, &ys, &wv, &ws, &xs, &win);
    let dwref = r::conv_wgrad(&xv, &xs, &gv, &ys, &ws, &win);
    let (x, w, b, g) = (
        upload(c, &xv, xs),
        upload(c, &wv, ws),
        upload(c, &bv, Shape::vector(o)),
        upload(c, &gv, ys),
    );
    let y = Tensor::empty(c, ys, DType::F32).unwrap();
    let dx = Tensor::empty(c, xs, DType::F32).unwrap();
    let dw = Tensor::empty(c, ws, DType::F32).unwrap();
    c.run(|rec| {
        conv::conv_into(rec, &x, &w, Some(&b), &win, &y, k)?;
        conv::conv_grad_input_into(rec, &g, &w, &win, &dx, k)?;
        conv::conv_grad_weight_into(rec, &x, &g, &win, &dw, k)
    })
    .unwrap();
    let edw = rel_err(&dw.to_f32_vec(c).unwrap(), &dwref);
    let ey = rel_err(&y.to_f32_vec(c).unwrap(), &yref);
    let edx = rel_err(&dx.to_f32_vec(c).unwrap(), &dxref);
    eprintln!(
        "{k:?} {xs} -> {o} pad {pad}: forward {ey:.2e}, grad input {edx:.2e}, grad weight {edw:.2e}"
    );
    [ey, edx, edw]
}

/// `Winograd2` then `Winograd4` on one case (seeds `seeds`), each within its tolerance.
fn check_both(what: &str, (xs, o, pad): (Shape, usize, usize), seeds: [u64; 2], tol: [f64; 2]) {
    for ((k, name), (seed, tol)) in [
        (ConvKernel::Winograd2, "winograd2"),
        (ConvKernel::Winograd4, "winograd4"),
    ]
    .into_iter()
    .zip(seeds.into_iter().zip(tol))
    {
        let e = check(xs, o, pad, k, seed);
        assert_within(&format!("{name} {what}{xs} -> {o} pad {pad}"), e, tol);
    }
}

fn assert_within(what: &str, [ey, edx, edw]: [f64; 3], tol: f64) {
    assert!(
        ey <= tol && edx <= tol && edw <= tol,
        "{what}: forward {ey:.2e}, grad input {edx:.2e}, grad weight {edw:.2e}, tolerance {tol:.0e}"
    );
}

/// Small shapes: borders (pad 0 and 1; the grad input runs pad 2 and 1), H != W, sizes not
/// multiples of the tile, 1 channel, batch > 1, output channels not multiples of 8.
fn small_2d() -> Vec<(Shape, usize, usize)> {
    vec![
        (Shape::new4(2, 3, 7, 13), 5, 1),
        (Shape::new4(1, 1, 9, 6), 3, 0),
        (Shape::new4(3, 6, 5, 11), 17, 1),
        (Shape::new4(1, 13, 4, 4), 1, 0),
        (Shape::new4(2, 8, 16, 9), 16, 1),
    ]
}

#[test]
fn winograd2_matches_reference_2d() {
    if ctx().is_none() {
        return;
    }
    for (i, (xs, o, pad)) in small_2d().into_iter().enumerate() {
        let e = check(xs, o, pad, ConvKernel::Winograd2, 100 + i as u64 * 10);
        assert_within(&format!("winograd2 {xs} -> {o} pad {pad}"), e, 1e-5);
    }
}

#[test]
fn winograd4_matches_reference_2d() {
    if ctx().is_none() {
        return;
    }
    for (i, (xs, o, pad)) in small_2d().into_iter().enumerate() {
        let e = check(xs, o, pad, ConvKernel::Winograd4, 200 + i as u64 * 10);
        assert_within(&format!("winograd4 {xs} -> {o} pad {pad}"), e, 1e-4);
    }
}

#[test]
fn winograd_1024_channels_2d() {
    if ctx().is_none() {
        return;
    }
    // Forward reduces over 1024 input channels; the grad input over 1024 output channels.
    let cases = [
        (Shape::new4(1, 1024, 10, 7), 16, 1),
        (Shape::new4(2, 16, 7, 10), 1024, 0),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let s = i as u64;
        check_both("", case, [300 + s, 310 + s], [1e-4, 5e-4]);
    }
}

#[test]
fn winograd_matches_reference_3d() {
    if ctx().is_none() {
        return;
    }
    let cases = [
        (Shape::new5(2, 3, 5, 7, 6), 4, 1),
        (Shape::new5(1, 1, 4, 9, 5), 3, 0),
        (Shape::new5(1, 5, 7, 3, 8), 9, 1),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let s = i as u64 * 10;
        check_both("3D ", case, [400 + s, 450 + s], [1e-5, 1e-4]);
    }
    let big = [
        (Shape::new5(1, 512, 5, 6, 4), 8, 1),
        (Shape::new5(1, 8, 4, 6, 5), 512, 1),
    ];
    for (i, case) in big.into_iter().enumerate() {
        let s = i as u64;
        check_both("3D ", case, [500 + s, 550 + s], [1e-4, 5e-4]);
    }
}

/// Where the window does not qualify, the Winograd variants run the default kernels.
#[test]
fn winograd_falls_back_outside_its_windows() {
    let Some(c) = ctx() else { return };
    let xs = Shape::new4(1, 3, 9, 8);
    let win = Window::cube(2, 3, 2, 1);
    let ws = conv_weight_shape(4, 3, &win, false);
    let xv = rand_vec(xs.numel(), 1);
    let wv = rand_vec(ws.numel(), 2);
    let (yref, ys) = r::conv_fwd(&xv, &xs, &wv, &ws, None, &win);
    let (x, w) = (upload(c, &xv, xs), upload(c, &wv, ws));
    let y = Tensor::empty(c, ys, DType::F32).unwrap();
    c.run(|rec| conv::conv_into(rec, &x, &w, None, &win, &y, ConvKernel::Winograd2))
        .unwrap();
    assert!(rel_err(&y.to_f32_vec(c).unwrap(), &yref) < 1e-5);
}

/// The weight gradient sums over every output tile: a long reduction in the transform
/// domain (2304 tiles of 2x2 / 576 of 4x4 in 2D, 1680 of 2x2x2 / 210 of 4x4x4 in 3D).
#[test]
fn winograd_weight_gradient_over_many_tiles() {
    if ctx().is_none() {
        return;
    }
    let cases = [
        (Shape::new4(2, 4, 64, 72), 6, 1),
        (Shape::new5(1, 3, 24, 20, 28), 5, 1),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let s = i as u64;
        check_both("", case, [600 + s, 610 + s], [1e-5, 1e-4]);
    }
}

/// Every op of a recording shares the scratch slots (`wunet::gpu::Scratch`): a chain of
/// Winograd convolutions of different sizes and tiles (forwards, a grad input, weight
/// gradients) in one program, each result checked against the reference, with the shared
/// slots holding less than the ops asked for in all.
#[test]
fn winograd_ops_share_scratch_in_one_recording() {
    let Some(c) = ctx() else { return };
    let win = Window::cube(2, 3, 1, 1);
    let x0s = Shape::new4(2, 5, 23, 17);
    let (o1, o2) = (12, 7);
    let w1s = conv_weight_shape(o1, 5, &win, false);
    let w2s = conv_weight_shape(o2, o1, &win, false);
    let (x0v, w1v, w2v) = (
        rand_vec(x0s.numel(), 701),
        rand_vec(w1s.numel(), 702),
        rand_vec(w2s.numel(), 703),
    );
    let (y1r, y1s) = r::conv_fwd(&x0v, &x0s, &w1v, &w1s, None, &win);
    let (y2r, y2s) = r::conv_fwd(&y1r, &y1s, &w2v, &w2s, None, &win);
    let gv = rand_vec(y2s.numel(), 704);
    let dy1r = r::conv_dgrad(&gv, &y2s, &w2v, &w2s, &y1s, &win);
    let dw2r = r::conv_wgrad(&y1r, &y1s, &gv, &y2s, &w2s, &win);
    let dw1r = r::conv_wgrad(&x0v, &x0s, &dy1r, &y1s, &w1s, &win);
    let (x0, w1, w2, g) = (
        upload(c, &x0v, x0s),
        upload(c, &w1v, w1s),
        upload(c, &w2v, w2s),
        upload(c, &gv, y2s),
    );
    let empty = |s: Shape| Tensor::empty(c, s, DType::F32).unwrap();
    let (y1, y2, dy1, dw1, dw2) = (empty(y1s), empty(y2s), empty(y1s), empty(w1s), empty(w2s));
    let (k2, k4) = (ConvKernel::Winograd2, ConvKernel::Winograd4);
    let ops = |rec: &mut wunet::gpu::Recorder| {
        conv::conv_into(rec, &x0, &w1, None, &win, &y1, k4)?;
        conv::conv_into(rec, &y1, &w2, None, &win, &y2, k2)?;
        conv::conv_grad_input_into(rec, &g, &w2, &win, &dy1, k4)?;
        conv::conv_grad_weight_into(rec, &y1, &g, &win, &dw2, k4)?;
        conv::conv_grad_weight_into(rec, &x0, &dy1, &win, &dw1, k2)
    };
    let grown = c.record(ops).unwrap();
    // Recorded again with the slots sized up front: nothing grows, same results.
    let prog = c.record_presized(&grown.scratch.largest, ops).unwrap();
    assert_eq!(prog.scratch.allocated_bytes, grown.scratch.largest_bytes());
    prog.submit(c);
    let got = |t: &Tensor| t.to_f32_vec(c).unwrap();
    for (name, t, want) in [
        ("y1", &y1, &y1r),
        ("y2", &y2, &y2r),
        ("dy1", &dy1, &dy1r),
        ("dw2", &dw2, &dw2r),
        ("dw1", &dw1, &dw1r),
    ] {
        let e = rel_err(&got(t), want);
        assert!(e <= 1e-4, "{name}: normwise error {e:.2e}");
    }
    let s = prog.scratch;
    assert!(s.requests >= 14, "{s:?}");
    assert!(s.allocated_bytes < s.requested_bytes, "{s:?}");
    assert!(grown.scratch.allocated_bytes >= s.allocated_bytes, "{s:?}");
}
