//! Integer-factor upsampling (`kernels/upsample.wgsl`), nearest and
//! bi/trilinear (`align_corners = false`), forward and backward, 2D and 3D.
//!
//! `factor` is `[D, H, W]` (D = 1 for 2D inputs); the output is `in * factor`
//! per axis. Nearest is PyTorch's legacy `nearest` (source `o / f`); linear
//! uses PyTorch's `area_pixel_compute_source_index`:
//! `src = max((o + 0.5)/f - 0.5, 0)`, `i0 = floor(src)`, `i1 = min(i0+1, in-1)`,
//! `lambda = src - i0`. Backwards are gathers (no atomics). Input and output
//! are F32 or F16, one dtype per call (`act_dtype` in `crate::ops`).

use super::fastdiv::magic;
use super::tensor::distinct;
use super::{act_dtype, alloc_act, checked, expect, groups_for};
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::graph::ops::UpsampleMode;
use crate::shape::{self, Shape};
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct UpsampleParams {
    nc: u32,
    total: u32,
    aux0: u32,
    aux1: u32,
    inp: [u32; 3],
    in_sp: u32,
    out: [u32; 3],
    out_sp: u32,
    f: [u32; 3],
    aux2: u32,
    dec_w: [u32; 2],
    dec_h: [u32; 2],
    dec_d: [u32; 2],
    div_f: [[u32; 2]; 3],
}

fn u3(a: [usize; 3]) -> [u32; 3] {
    [a[0] as u32, a[1] as u32, a[2] as u32]
}

/// Output shape of upsampling `x` by `factor` ([`shape::upsample_out_shape`]).
pub fn upsample_out_shape(x: &Shape, factor: [usize; 3]) -> Result<Shape> {
    checked("upsample", shape::upsample_out_shape(x, factor))
}

/// Dispatch `entry` with one invocation per element of `dst`; `xs`/`ys` are the
/// input and output shapes of the forward upsampling.
fn launch(
    rec: &mut Recorder,
    entry: &'static str,
    xs: &Shape,
    ys: &Shape,
    factor: [usize; 3],
    src: &Tensor,
    dst: &Tensor,
) -> Result<()> {
    let total = dst.numel();
    let [d, h, w] = dst.shape.spatial();
    let p = UpsampleParams {
        nc: (xs.n() * xs.c()) as u32,
        total: total as u32,
        inp: u3(xs.spatial()),
        in_sp: xs.spatial_numel() as u32,
        out: u3(ys.spatial()),
        out_sp: ys.spatial_numel() as u32,
        f: u3(factor),
        dec_w: magic(w),
        dec_h: magic(h),
        dec_d: magic(d),
        div_f: factor.map(magic),
        ..Default::default()
    };
    let g = rec.grid(groups_for(total, 256))?;
    rec.dispatch("upsample", entry, &[], &p, &[src, dst], g)
}

/// Upsample `x` by `factor` into `y`.
pub fn upsample_into(
    rec: &mut Recorder,
    x: &Tensor,
    factor: [usize; 3],
    mode: UpsampleMode,
    y: &Tensor,
) -> Result<()> {
    let ys = upsample_out_shape(&x.shape, factor)?;
    let act = act_dtype("upsample", &[("input", x), ("output", y)])?;
    expect("upsample", "output", y, ys, act)?;
    distinct("upsample", &[x], y)?;
    let entry = match mode {
        UpsampleMode::Nearest => "nearest_fwd",
        UpsampleMode::Linear => "linear_fwd",
    };
    launch(rec, entry, &x.shape, &ys, factor, x, y)
}

pub fn upsample(
    rec: &mut Recorder,
    x: &Tensor,
    factor: [usize; 3],
    mode: UpsampleMode,
) -> Result<Tensor> {
    let y = alloc_act(rec, upsample_out_shape(&x.shape, factor)?, x)?;
    upsample_into(rec, x, factor, mode, &y)?;
    Ok(y)
}

/// Gradient of [`upsample_into`] into `dx` (the input's shape).
pub fn upsample_grad_into(
    rec: &mut Recorder,
    dy: &Tensor,
    factor: [usize; 3],
    mode: UpsampleMode,
    dx: &Tensor,
) -> Result<()> {
    let xs = checked(
        "upsample_grad",
        shape::downsample_out_shape(&dy.shape, factor),
    )?;
    let act = act_dtype("upsample_grad", &[("grad_output", dy), ("grad_input", dx)])?;
    expect("upsample_grad", "grad_input", dx, xs, act)?;
    let ys = dy.shape;
    distinct("upsample_grad", &[dy], dx)?;
    let entry = match mode {
        UpsampleMode::Nearest => "nearest_bwd",
        UpsampleMode::Linear => "linear_bwd",
    };
    launch(rec, entry, &dx.shape, &ys, factor, dy, dx)
}

pub fn upsample_grad(
    rec: &mut Recorder,
    dy: &Tensor,
    factor: [usize; 3],
    mode: UpsampleMode,
    x_shape: Shape,
) -> Result<Tensor> {
    let dx = alloc_act(rec, x_shape, dy)?;
    upsample_grad_into(rec, dy, factor, mode, &dx)?;
    Ok(dx)
}
