//! The one-time self-test of the matrix-unit conv kernels on a device: small
//! convolutions run by the coop kernels (im2col and direct, forward, stride-1
//! input gradient, weight gradient) against the tiled f32 kernels, within f16
//! tolerance. Its verdict decides [`super::status`].

use super::*;
use crate::shape::conv_weight_shape;

/// Deterministic values in [-1, 1), exactly representable in f16.
fn test_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32 ^ seed.wrapping_mul(0x9E37_79B9)).wrapping_mul(2_654_435_761);
            let v = (h >> 8) as f32 / 8_388_608.0 - 1.0;
            half::f16::from_f32(v).to_f32()
        })
        .collect()
}

/// Worst `|got - want| / (atol + rtol*|want|)`.
fn worst_ratio(got: &[f32], want: &[f32], atol: f32, rtol: f32) -> f32 {
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            let r = (g - w).abs() / (atol + rtol * w.abs());
            if r.is_finite() {
                r
            } else {
                f32::INFINITY
            }
        })
        .fold(0.0, f32::max)
}

/// The self-test: coop (or, with `emulated`, the emulated coop) kernels against the tiled
/// f32 kernels (the CPU ones on CPU adapters) on f16-exact data. The im2col kernels:
/// forward 2x24x9x13 -> 40 (3x3, pad 1, bias; 64 x 256 blocks), forward 1x20x11x10 -> 72
/// (3x3, stride 2; 128 x 128 blocks), and the weight gradient of both. The direct kernels:
/// the first forward (BM 64, 2D box), grad input (BM 32) and weight gradient (BM 64), and a
/// 3D forward 1x6x5x7x9 -> 40 (3x3x3, pad 1; BM 64, 3D box) and weight gradient (BM 32). The coop runs read and write F16 activations;
/// tolerance: f16 rounding of the output (2^-10 relative) plus f32 summation-order noise.
/// `Ok` only if every kernel passes.
pub fn self_test(ctx: &Context, emulated: bool) -> std::result::Result<(), String> {
    match self_test_parts(ctx, emulated) {
        (Ok(()), Ok(())) => Ok(()),
        (a, b) => Err([a.err(), b.err()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

/// [`self_test`] per kernel family: (im2col kernels, direct kernel).
pub fn self_test_parts(
    ctx: &Context,
    emulated: bool,
) -> (
    std::result::Result<(), String>,
    std::result::Result<(), String>,
) {
    super::tuned::with_rule_tiles(|| parts(ctx, emulated))
}

/// One self-test case: input, out channels, window, kernel, and what it
/// checks (forward, grad input, grad weight).
type SelfCase = (Shape, usize, Window, ConvKernel, [bool; 3]);

/// [`self_test_parts`] on the rule's tiles.
fn parts(
    ctx: &Context,
    emulated: bool,
) -> (
    std::result::Result<(), String>,
    std::result::Result<(), String>,
) {
    let (im2col, direct) = if emulated {
        (
            ConvKernel::CoopIm2colEmulated,
            ConvKernel::CoopDirectEmulated,
        )
    } else {
        (ConvKernel::CoopIm2col, ConvKernel::CoopDirect)
    };
    let cases: [SelfCase; 4] = [
        (
            Shape::new4(2, 24, 9, 13),
            40,
            Window::cube(2, 3, 1, 1),
            im2col,
            [true, false, true],
        ),
        (
            Shape::new4(1, 20, 11, 10),
            72,
            Window::cube(2, 3, 2, 1),
            im2col,
            [true, false, true],
        ),
        (
            Shape::new4(2, 24, 9, 13),
            40,
            Window::cube(2, 3, 1, 1),
            direct,
            [true, true, false],
        ),
        (
            Shape::new5(1, 6, 5, 7, 9),
            40,
            Window::cube(3, 3, 1, 1),
            direct,
            [true, false, false],
        ),
    ];
    let run = |family: ConvKernel| -> Result<Vec<String>> {
        let mut bad = Vec::new();
        for (i, case) in cases.iter().enumerate() {
            if case.3 == family {
                bad.extend(check_case(ctx, i as u32, case, family == direct)?);
            }
        }
        Ok(bad)
    };
    let verdict = |r: Result<Vec<String>>| match r {
        Ok(bad) if bad.is_empty() => Ok(()),
        Ok(bad) => Err(bad.join("; ")),
        Err(e) => Err(e.to_string()),
    };
    (verdict(run(im2col)), verdict(run(direct)))
}

/// Case `i` on f16 activations against the f32 reference kernel (the CPU
/// kernel on CPU adapters, the tiled one on GPUs): one line per failed check.
fn check_case(ctx: &Context, i: u32, case: &SelfCase, direct: bool) -> Result<Vec<String>> {
    let (xs, o, win, k, what) = case;
    let (xs, o, win, k) = (*xs, *o, win, *k);
    let reference = match ctx.class {
        crate::gpu::AdapterClass::Cpu => ConvKernel::Cpu,
        crate::gpu::AdapterClass::Gpu => ConvKernel::Tiled,
    };
    let ys = conv_out(&xs, o, win)?;
    if direct && direct_plan(ctx, &ys, win)?.is_none() {
        return Ok(vec![format!("direct kernel does not fit {xs} -> {o}")]);
    }
    let ws = conv_weight_shape(o, xs.c(), win, xs.is_3d());
    let xv = test_values(xs.numel(), 1 + i);
    let wv = test_values(ws.numel(), 11 + i);
    let bv = test_values(o, 21 + i);
    let gv = test_values(ys.numel(), 31 + i);
    let w = Tensor::from_f32(ctx, &wv, ws)?;
    let b = Tensor::from_f32(ctx, &bv, Shape::vector(o))?;
    let (x32, g32) = (
        Tensor::from_f32(ctx, &xv, xs)?,
        Tensor::from_f32(ctx, &gv, ys)?,
    );
    let (x16, g16) = (
        Tensor::from_f32_as_f16(ctx, &xv, xs)?,
        Tensor::from_f32_as_f16(ctx, &gv, ys)?,
    );
    let y_ref = Tensor::empty(ctx, ys, DType::F32)?;
    let dx_ref = Tensor::empty(ctx, xs, DType::F32)?;
    let dw_ref = Tensor::empty(ctx, ws, DType::F32)?;
    let y = Tensor::empty(ctx, ys, DType::F16)?;
    let dx = Tensor::empty(ctx, xs, DType::F16)?;
    let dw = Tensor::empty(ctx, ws, DType::F32)?;
    ctx.run(|rec| {
        use crate::ops::conv::{conv_grad_input_into, conv_grad_weight_into, conv_into};
        if what[0] {
            conv_into(rec, &x32, &w, Some(&b), win, &y_ref, reference)?;
            conv_into(rec, &x16, &w, Some(&b), win, &y, k)?;
        }
        if what[1] {
            conv_grad_input_into(rec, &g32, &w, win, &dx_ref, reference)?;
            conv_grad_input_into(rec, &g16, &w, win, &dx, k)?;
        }
        if what[2] {
            conv_grad_weight_into(rec, &x32, &g32, win, &dw_ref, reference)?;
            conv_grad_weight_into(rec, &x16, &g16, win, &dw, k)?;
        }
        Ok(())
    })?;
    // tolerance: 1e-3 x sqrt(reduction length) absolute, 2e-3 relative
    let kf = (xs.c() * win.kernel_numel()) as f32;
    let kx = (o * win.kernel_numel()) as f32;
    let kw = (ys.n() * ys.spatial_numel()) as f32;
    let checks = [
        ("forward", &y, &y_ref, kf),
        ("grad input", &dx, &dx_ref, kx),
        ("weight gradient", &dw, &dw_ref, kw),
    ];
    let mut bad = Vec::new();
    for (j, (name, got, want, kdim)) in checks.into_iter().enumerate() {
        if !what[j] {
            continue;
        }
        let (got, want) = (got.to_f32_vec(ctx)?, want.to_f32_vec(ctx)?);
        let r = worst_ratio(&got, &want, 1e-3 * kdim.sqrt(), 2e-3);
        if r > 1.0 {
            bad.push(format!(
                "{k:?} {name} {xs} -> {o} {win:?}: worst error {r:.2}x the tolerance"
            ));
        }
    }
    Ok(bad)
}

fn conv_out(xs: &Shape, o: usize, win: &Window) -> Result<Shape> {
    let ws = conv_weight_shape(o, xs.c(), win, xs.is_3d());
    crate::ops::conv::conv_out_shape(xs, &ws, win)
}
