//! The up-convolution kernel (`conv_up`: transposed convolution with kernel == stride,
//! padding 0) against the CPU reference: forward, grad input, grad weight, 2D and 3D,
//! odd sizes, H != W != D, channel counts that are not multiples of 4, batch 2, bias and
//! none. Every case runs the explicit `ConvKernel::Up` (the GPU-class tiled entries, on any
//! adapter) and `Auto` (what the adapter class picks), so one `cargo test` covers both.

mod common;
use common::{assert_close, ctx, rand_vec};
use wunet::ops::conv::{self, ConvKernel};
use wunet::reference::conv as r;
use wunet::shape::conv_weight_shape;
use wunet::{DType, Shape, Tensor, Window};

const VARIANTS: [ConvKernel; 2] = [ConvKernel::Up, ConvKernel::Auto];

struct Case {
    x: Shape,
    o: usize,
    /// Kernel == stride per axis (2 entries: 2D, 3 entries: 3D).
    k: &'static [usize],
    bias: bool,
}

fn win_of(k: &[usize]) -> Window {
    Window::new(k, k, &vec![0; k.len()], &vec![1; k.len()])
}

fn cases() -> Vec<Case> {
    let c = |x, o, k, bias| Case { x, o, k, bias };
    vec![
        // The U-Net shapes, small and odd.
        c(Shape::new4(2, 5, 7, 9), 3, &[2, 2], true),
        c(Shape::new4(2, 13, 5, 11), 7, &[2, 2], false),
        c(Shape::new5(2, 5, 3, 5, 6), 3, &[2, 2, 2], true),
        c(Shape::new5(2, 13, 4, 3, 5), 7, &[2, 2, 2], false),
        // Several tiles in every GEMM dimension, K tails (70 = 4*16 + 6).
        c(Shape::new4(2, 70, 13, 17), 40, &[2, 2], true),
        // Anisotropic 3D (1, 2, 2), kernel 3 on H, 4 and 8 along W, 1x1.
        c(Shape::new5(1, 6, 3, 4, 7), 5, &[1, 2, 2], true),
        c(Shape::new4(2, 5, 4, 5), 3, &[3, 2], true),
        c(Shape::new4(1, 9, 3, 6), 5, &[4, 4], false),
        c(Shape::new4(1, 3, 2, 3), 2, &[1, 8], true),
        c(Shape::new4(2, 4, 3, 3), 5, &[1, 1], true),
        // Grad weight with several splits (2496 positions) and rows narrower than a slice.
        c(Shape::new5(2, 17, 8, 12, 13), 9, &[2, 2, 2], true),
        c(Shape::new4(3, 4, 10, 1), 3, &[2, 2], false),
    ]
}

fn upload(c: &wunet::Context, v: &[f32], s: Shape) -> Tensor {
    Tensor::from_f32(c, v, s).unwrap()
}

// f32 sums of K products against the f64 reference: atol = rtol = 1e-4, scaled by
// sqrt(K/1024) once K exceeds 1024 (the rule of tests/conv.rs and the golden schema).
fn tol(k: usize) -> f32 {
    1e-4 * (k as f32 / 1024.0).sqrt().max(1.0)
}

#[test]
fn up_convolution_matches_reference() {
    let Some(c) = ctx() else { return };
    for (ci, case) in cases().iter().enumerate() {
        let win = win_of(case.k);
        let ws = conv_weight_shape(case.x.c(), case.o, &win, case.x.is_3d());
        let xv = rand_vec(case.x.numel(), 110 + ci as u64);
        let wv = rand_vec(ws.numel(), 120 + ci as u64);
        let bv = rand_vec(case.o, 130 + ci as u64);
        let (yref, ys) =
            r::conv_transpose_fwd(&xv, &case.x, &wv, &ws, case.bias.then_some(&bv[..]), &win);
        let gv = rand_vec(ys.numel(), 140 + ci as u64);
        let (dxref, _) = r::conv_transpose_dgrad(&gv, &ys, &wv, &ws, &win);
        let dwref = r::conv_transpose_wgrad(&xv, &case.x, &gv, &ys, &ws, &win);
        let (x, w, b, g) = (
            upload(c, &xv, case.x),
            upload(c, &wv, ws),
            upload(c, &bv, Shape::vector(case.o)),
            upload(c, &gv, ys),
        );
        for k in VARIANTS {
            let y = Tensor::empty(c, ys, DType::F32).unwrap();
            let dx = Tensor::empty(c, case.x, DType::F32).unwrap();
            let dw = Tensor::empty(c, ws, DType::F32).unwrap();
            c.run(|rec| {
                conv::conv_transpose_into(rec, &x, &w, case.bias.then_some(&b), &win, &y, k)?;
                conv::conv_transpose_grad_input_into(rec, &g, &w, &win, &dx, k)?;
                conv::conv_transpose_grad_weight_into(rec, &x, &g, &win, &dw, k)
            })
            .unwrap();
            let name = format!("case {ci} {} -> {ys} k {:?} {k:?}", case.x, case.k);
            // Forward: K = C_in terms per output.
            let kf = case.x.c();
            let got = y.to_f32_vec(c).unwrap();
            assert_close(&format!("{name} y"), &got, &yref, tol(kf), tol(kf));
            // Grad input: K = C_out * kernel phases.
            let kd = case.o * win.kernel_numel();
            let got = dx.to_f32_vec(c).unwrap();
            assert_close(&format!("{name} dx"), &got, &dxref, tol(kd), tol(kd));
            // Grad weight: K = batch * input positions.
            let kw = case.x.n() * case.x.spatial_numel();
            let got = dw.to_f32_vec(c).unwrap();
            assert_close(&format!("{name} dw"), &got, &dwref, tol(kw), tol(kw));
        }
    }
}

/// Training resume is bitwise-tested: the split-K grad weight must not depend on timing.
#[test]
fn up_convolution_grad_weight_is_deterministic() {
    let Some(c) = ctx() else { return };
    let xs = Shape::new5(2, 17, 8, 12, 13);
    let win = win_of(&[2, 2, 2]);
    let ws = conv_weight_shape(xs.c(), 9, &win, true);
    let ys = conv::conv_transpose_out_shape(&xs, &ws, &win).unwrap();
    let x = upload(c, &rand_vec(xs.numel(), 1), xs);
    let g = upload(c, &rand_vec(ys.numel(), 2), ys);
    let run = || {
        let dw = Tensor::empty(c, ws, DType::F32).unwrap();
        c.run(|rec| conv::conv_transpose_grad_weight_into(rec, &x, &g, &win, &dw, ConvKernel::Up))
            .unwrap();
        dw.to_f32_vec(c).unwrap()
    };
    let first: Vec<u32> = run().iter().map(|v| v.to_bits()).collect();
    for _ in 0..3 {
        let again: Vec<u32> = run().iter().map(|v| v.to_bits()).collect();
        assert_eq!(first, again, "grad weight differs between runs");
    }
}

/// `Up` on a window it cannot run is a clear error naming the op; `Auto` falls back to the
/// generic kernels there (kernel 3 stride 3 along W, and a padded 2x2 stride 2).
#[test]
fn up_variant_rejects_other_windows_and_auto_falls_back() {
    let Some(c) = ctx() else { return };
    for (xs, win) in [
        (Shape::new4(2, 5, 4, 5), win_of(&[3, 3])),
        (
            Shape::new4(1, 3, 4, 6),
            Window::new(&[2, 2], &[2, 2], &[1, 1], &[1, 1]),
        ),
    ] {
        let ws = conv_weight_shape(xs.c(), 3, &win, false);
        let ys = conv::conv_transpose_out_shape(&xs, &ws, &win).unwrap();
        let xv = rand_vec(xs.numel(), 7);
        let wv = rand_vec(ws.numel(), 8);
        let (x, w) = (upload(c, &xv, xs), upload(c, &wv, ws));
        let y = Tensor::empty(c, ys, DType::F32).unwrap();
        let err = c
            .run(|rec| conv::conv_transpose_into(rec, &x, &w, None, &win, &y, ConvKernel::Up))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("conv_transpose2d") && err.contains("kernel == stride"),
            "{err}"
        );
        c.run(|rec| conv::conv_transpose_into(rec, &x, &w, None, &win, &y, ConvKernel::Auto))
            .unwrap();
        let (yref, _) = r::conv_transpose_fwd(&xv, &xs, &wv, &ws, None, &win);
        let kf = xs.c();
        assert_close(
            &format!("{xs} {win:?} Auto y"),
            &y.to_f32_vec(c).unwrap(),
            &yref,
            tol(kf),
            tol(kf),
        );
    }
}

/// Mixed precision: the up-convolution on F16 activations (x, dy, y, dx) with f32
/// weights and f32 accumulation, against the CPU reference on the f16-rounded inputs.
/// Tolerance: the f32 rule plus the rounding of the stored f16 output (rtol 2^-10 on
/// y and dx; dw is stored in f32, so it keeps the f32 rule).
#[test]
fn up_convolution_on_f16_activations() {
    let Some(c) = ctx() else { return };
    if !c.has_f16() {
        eprintln!("skip: {} has no SHADER_F16", c.describe());
        return;
    }
    let round =
        |v: &[f32]| -> Vec<f32> { v.iter().map(|&a| half::f16::from_f32(a).to_f32()).collect() };
    for (ci, case) in cases().iter().enumerate().take(5) {
        let win = win_of(case.k);
        let ws = conv_weight_shape(case.x.c(), case.o, &win, case.x.is_3d());
        let xv = round(&rand_vec(case.x.numel(), 210 + ci as u64));
        let wv = rand_vec(ws.numel(), 220 + ci as u64);
        let bv = rand_vec(case.o, 230 + ci as u64);
        let (yref, ys) =
            r::conv_transpose_fwd(&xv, &case.x, &wv, &ws, case.bias.then_some(&bv[..]), &win);
        let gv = round(&rand_vec(ys.numel(), 240 + ci as u64));
        let (dxref, _) = r::conv_transpose_dgrad(&gv, &ys, &wv, &ws, &win);
        let dwref = r::conv_transpose_wgrad(&xv, &case.x, &gv, &ys, &ws, &win);
        let x = Tensor::from_f32_as_f16(c, &xv, case.x).unwrap();
        let g = Tensor::from_f32_as_f16(c, &gv, ys).unwrap();
        let (w, b) = (upload(c, &wv, ws), upload(c, &bv, Shape::vector(case.o)));
        let y = Tensor::empty(c, ys, DType::F16).unwrap();
        let dx = Tensor::empty(c, case.x, DType::F16).unwrap();
        let dw = Tensor::empty(c, ws, DType::F32).unwrap();
        let bias = case.bias.then_some(&b);
        c.run(|rec| {
            conv::conv_transpose_into(rec, &x, &w, bias, &win, &y, ConvKernel::Up)?;
            conv::conv_transpose_grad_input_into(rec, &g, &w, &win, &dx, ConvKernel::Up)?;
            conv::conv_transpose_grad_weight_into(rec, &x, &g, &win, &dw, ConvKernel::Up)
        })
        .unwrap_or_else(|e| panic!("case {ci}: {e}"));
        let kf = case.x.c();
        let kd = case.o * win.kernel_numel();
        let kw = case.x.n() * case.x.spatial_numel();
        let h = 1.0 / 1024.0;
        let name = |w: &str| format!("case {ci} f16 {w}");
        assert_close(
            &name("y"),
            &y.to_f32_vec(c).unwrap(),
            &yref,
            tol(kf),
            tol(kf) + h,
        );
        assert_close(
            &name("dx"),
            &dx.to_f32_vec(c).unwrap(),
            &dxref,
            tol(kd),
            tol(kd) + h,
        );
        assert_close(
            &name("dw"),
            &dw.to_f32_vec(c).unwrap(),
            &dwref,
            tol(kw),
            tol(kw),
        );
    }
}
