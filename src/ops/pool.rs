//! Pooling (`kernels/pool.wgsl`): max pooling with argmax indices, max-unpooling
//! and average pooling, forward and backward, 2D and 3D.
//!
//! Windows use [`Window`] in floor mode with dilation 1 and `pad <= kernel/2`
//! per axis ([`shape::check_pool_window`], also the graph's rule).
//! Max pooling pads with -inf; its `indices` (u32, same shape as y) are flat
//! `h*W + w` (3D `(d*H + h)*W + w`) within the input plane of the same (n, c),
//! the first maximum in row-major window order on ties (PyTorch convention; NaN
//! inputs are never selected, unlike PyTorch which propagates them).
//! Activations (`x`, `y`, `dy`, `dx`) are F32 or F16, one dtype per call
//! (`act_dtype` in `crate::ops`); indices are U32.
//! Every backward is a gather (one invocation per input element), so results
//! are deterministic and no atomics are needed, overlapping windows included.

use super::fastdiv::magic;
use super::tensor::{distinct, fill_into};
use super::{act_dtype, alloc_act, checked, dummy, expect, groups_for};
use crate::error::Result;
use crate::gpu::{DType, Recorder, Tensor};
use crate::shape::{self, Shape, Window};
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct PoolParams {
    nc: u32,
    total: u32,
    flags: u32,
    aux: u32,
    inp: [u32; 3],
    in_sp: u32,
    out: [u32; 3],
    out_sp: u32,
    k: [u32; 3],
    kk: u32,
    s: [u32; 3],
    aux1: u32,
    p: [u32; 3],
    aux2: u32,
    cnt: [u32; 3],
    aux3: u32,
    dec_w: [u32; 2],
    dec_h: [u32; 2],
    dec_d: [u32; 2],
    dec_sp: [u32; 2],
    div_s: [[u32; 2]; 3],
    aux4: [u32; 2],
}

fn u3(a: [usize; 3]) -> [u32; 3] {
    [a[0] as u32, a[1] as u32, a[2] as u32]
}

impl PoolParams {
    /// One invocation per element of `run` (the output for forwards, the input for backwards).
    fn new(xs: &Shape, ys: &Shape, win: &Window, run: &Shape, flags: u32) -> Self {
        let [d, h, w] = run.spatial();
        PoolParams {
            nc: (xs.n() * xs.c()) as u32,
            total: run.numel() as u32,
            flags,
            inp: u3(xs.spatial()),
            in_sp: xs.spatial_numel() as u32,
            out: u3(ys.spatial()),
            out_sp: ys.spatial_numel() as u32,
            k: u3(win.kernel),
            kk: win.kernel_numel() as u32,
            s: u3(win.stride),
            p: u3(win.pad),
            cnt: u3([0, 1, 2].map(|a| win.kernel[a].div_ceil(win.stride[a]))),
            dec_w: magic(w),
            dec_h: magic(h),
            dec_d: magic(d),
            dec_sp: magic(xs.spatial_numel()),
            div_s: win.stride.map(magic),
            ..Default::default()
        }
    }
}

fn launch(
    rec: &mut Recorder,
    entry: &'static str,
    p: &PoolParams,
    src: &Tensor,
    dst: &Tensor,
    idx: &Tensor,
) -> Result<()> {
    let g = rec.grid(groups_for(p.total as usize, 256))?;
    rec.dispatch("pool", entry, &[], p, &[src, dst, idx], g)
}

/// Output shape of max or average pooling `x` with `win`; checks the window
/// ([`shape::pool_out_shape`]).
pub fn pool_out_shape(x: &Shape, win: &Window) -> Result<Shape> {
    out_shape("pool", x, win)
}

fn out_shape(op: &'static str, x: &Shape, win: &Window) -> Result<Shape> {
    checked(op, shape::pool_out_shape(x, win))
}

/// `dy` must be the pooled shape of the input `xs`.
fn check_pair(op: &'static str, xs: &Shape, win: &Window, dy: &Shape) -> Result<()> {
    let want = out_shape(op, xs, win)?;
    checked(op, shape::check_grad_output(dy, &want, xs, win))
}

// ------------------------------------------------------------------ max pooling

/// Max pooling into `y` (`x`'s activation dtype) and `indices` (u32), both of the output shape.
pub fn max_pool_into(
    rec: &mut Recorder,
    x: &Tensor,
    win: &Window,
    y: &Tensor,
    indices: &Tensor,
) -> Result<()> {
    let op = "max_pool";
    let ys = out_shape(op, &x.shape, win)?;
    let act = act_dtype(op, &[("input", x), ("output", y)])?;
    expect(op, "output", y, ys, act)?;
    expect(op, "indices", indices, ys, DType::U32)?;
    distinct(op, &[x], y)?;
    distinct(op, &[x, y], indices)?;
    let p = PoolParams::new(&x.shape, &ys, win, &ys, 0);
    launch(rec, "max_fwd", &p, x, y, indices)
}

/// Max pooling: `(y, indices)`.
pub fn max_pool(rec: &mut Recorder, x: &Tensor, win: &Window) -> Result<(Tensor, Tensor)> {
    let ys = out_shape("max_pool", &x.shape, win)?;
    let y = alloc_act(rec, ys, x)?;
    let indices = Tensor::empty(rec.ctx, ys, DType::U32)?;
    max_pool_into(rec, x, win, &y, &indices)?;
    Ok((y, indices))
}

/// Gradient of max pooling into `dx` (the input's shape): each input sums `dy`
/// over the windows whose argmax it is.
pub fn max_pool_grad_into(
    rec: &mut Recorder,
    dy: &Tensor,
    indices: &Tensor,
    win: &Window,
    dx: &Tensor,
) -> Result<()> {
    let op = "max_pool_grad";
    check_pair(op, &dx.shape, win, &dy.shape)?;
    act_dtype(op, &[("grad_output", dy), ("grad_input", dx)])?;
    expect(op, "indices", indices, dy.shape, DType::U32)?;
    distinct(op, &[dy, indices], dx)?;
    let p = PoolParams::new(&dx.shape, &dy.shape, win, &dx.shape, 0);
    launch(rec, "max_bwd", &p, dy, dx, indices)
}

pub fn max_pool_grad(
    rec: &mut Recorder,
    dy: &Tensor,
    indices: &Tensor,
    win: &Window,
    x_shape: Shape,
) -> Result<Tensor> {
    let dx = alloc_act(rec, x_shape, dy)?;
    max_pool_grad_into(rec, dy, indices, win, &dx)?;
    Ok(dx)
}

// ------------------------------------------------------------------ max-unpooling

/// [`shape::check_unpool`] and the dtype of the indices.
fn check_unpool(op: &'static str, xs: &Shape, indices: &Tensor, ys: &Shape) -> Result<()> {
    checked(op, shape::check_unpool(xs, &indices.shape, ys))?;
    expect(op, "indices", indices, *xs, DType::U32)
}

/// Max-unpooling (PyTorch `max_unpool`) into `y`, whose spatial size is the
/// unpooled size (see [`Window::unpool_out`] for the default; odd original
/// sizes need it given explicitly): `y` is zero except
/// `y[n, c, indices[n, c, i]] = x[n, c, i]`. Zero-fill, then a scatter: with
/// non-overlapping windows (kernel <= stride, the U-Net case) every index is
/// unique and the result deterministic; duplicate indices leave an unspecified
/// winner (as in PyTorch). Indices outside `y`'s plane are skipped.
pub fn max_unpool_into(rec: &mut Recorder, x: &Tensor, indices: &Tensor, y: &Tensor) -> Result<()> {
    let op = "max_unpool";
    checked(op, shape::unpool_out_shape(&x.shape, y.shape.spatial()))?;
    check_unpool(op, &x.shape, indices, &y.shape)?;
    act_dtype(op, &[("input", x), ("output", y)])?;
    distinct(op, &[x, indices], y)?;
    fill_into(rec, y, 0.0)?;
    let p = PoolParams::new(&x.shape, &y.shape, &Window::cube(3, 1, 1, 0), &x.shape, 0);
    launch(rec, "unpool_fwd", &p, x, y, indices)
}

/// Max-unpooling to spatial size `out` (`[D, H, W]`, D = 1 in 2D).
pub fn max_unpool(
    rec: &mut Recorder,
    x: &Tensor,
    indices: &Tensor,
    out: [usize; 3],
) -> Result<Tensor> {
    let y = alloc_act(rec, x.shape.with_spatial(out), x)?;
    max_unpool_into(rec, x, indices, &y)?;
    Ok(y)
}

/// Gradient of max-unpooling into `dx` (the pooled shape): `dx[n, c, i] = dy[n, c, indices[n, c, i]]`.
pub fn max_unpool_grad_into(
    rec: &mut Recorder,
    dy: &Tensor,
    indices: &Tensor,
    dx: &Tensor,
) -> Result<()> {
    let op = "max_unpool_grad";
    check_unpool(op, &dx.shape, indices, &dy.shape)?;
    act_dtype(op, &[("grad_output", dy), ("grad_input", dx)])?;
    distinct(op, &[dy, indices], dx)?;
    let p = PoolParams::new(
        &dx.shape,
        &dy.shape,
        &Window::cube(3, 1, 1, 0),
        &dx.shape,
        0,
    );
    launch(rec, "unpool_bwd", &p, dy, dx, indices)
}

pub fn max_unpool_grad(rec: &mut Recorder, dy: &Tensor, indices: &Tensor) -> Result<Tensor> {
    let dx = alloc_act(rec, indices.shape, dy)?;
    max_unpool_grad_into(rec, dy, indices, &dx)?;
    Ok(dx)
}

// ------------------------------------------------------------------ average pooling

/// Average pooling into `y`. `count_include_pad`: divide by `prod(kernel)`;
/// otherwise by the number of real (non-padding) elements in the window.
pub fn avg_pool_into(
    rec: &mut Recorder,
    x: &Tensor,
    win: &Window,
    count_include_pad: bool,
    y: &Tensor,
) -> Result<()> {
    let op = "avg_pool";
    let ys = out_shape(op, &x.shape, win)?;
    let act = act_dtype(op, &[("input", x), ("output", y)])?;
    expect(op, "output", y, ys, act)?;
    distinct(op, &[x], y)?;
    let p = PoolParams::new(&x.shape, &ys, win, &ys, count_include_pad as u32);
    let d = dummy(rec, DType::U32)?;
    launch(rec, "avg_fwd", &p, x, y, &d)
}

pub fn avg_pool(
    rec: &mut Recorder,
    x: &Tensor,
    win: &Window,
    count_include_pad: bool,
) -> Result<Tensor> {
    let y = alloc_act(rec, out_shape("avg_pool", &x.shape, win)?, x)?;
    avg_pool_into(rec, x, win, count_include_pad, &y)?;
    Ok(y)
}

/// Gradient of average pooling into `dx` (the input's shape).
pub fn avg_pool_grad_into(
    rec: &mut Recorder,
    dy: &Tensor,
    win: &Window,
    count_include_pad: bool,
    dx: &Tensor,
) -> Result<()> {
    let op = "avg_pool_grad";
    check_pair(op, &dx.shape, win, &dy.shape)?;
    act_dtype(op, &[("grad_output", dy), ("grad_input", dx)])?;
    distinct(op, &[dy], dx)?;
    let p = PoolParams::new(
        &dx.shape,
        &dy.shape,
        win,
        &dx.shape,
        count_include_pad as u32,
    );
    let d = dummy(rec, DType::U32)?;
    launch(rec, "avg_bwd", &p, dy, dx, &d)
}

pub fn avg_pool_grad(
    rec: &mut Recorder,
    dy: &Tensor,
    win: &Window,
    count_include_pad: bool,
    x_shape: Shape,
) -> Result<Tensor> {
    let dx = alloc_act(rec, x_shape, dy)?;
    avg_pool_grad_into(rec, dy, win, count_include_pad, &dx)?;
    Ok(dx)
}
