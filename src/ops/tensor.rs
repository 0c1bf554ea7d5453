//! Tensor plumbing (`kernels/tensor.wgsl`): elementwise add / scale / axpy /
//! fill / copy, channel concat and split, crop, zero and reflect padding, each
//! with its backward. The graph executor uses these for skip connections and
//! for gradient accumulation at fan-out.
//!
//! Inputs and outputs of one op must live in different buffers (wgpu forbids
//! binding one buffer as read-only and read-write storage in one dispatch);
//! ops check this and return an error instead.

use super::fastdiv::magic;
use super::{act_dtype, alloc_act, checked, dummy, expect, groups_for};
use crate::error::{Error, Result};
use crate::gpu::{DType, Recorder, Tensor};
use crate::graph::ops::PadMode;
use crate::shape::{self, Shape};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct TensorParams {
    len: u32,
    alpha: f32,
    c_src: u32,
    c_dst: u32,
    c_blk: u32,
    off_src: u32,
    off_dst: u32,
    sp: u32,
    src: [u32; 3],
    src_sp: u32,
    dst: [u32; 3],
    dst_sp: u32,
    off: [i32; 3],
    aux: u32,
    dec_w: [u32; 2],
    dec_h: [u32; 2],
    dec_d: [u32; 2],
    div_sp: [u32; 2],
    div_blk: [u32; 2],
    aux2: [u32; 2],
}

fn u3(a: [usize; 3]) -> [u32; 3] {
    [a[0] as u32, a[1] as u32, a[2] as u32]
}

/// Fail if the written tensor shares a buffer with one of the read tensors.
pub(crate) fn distinct(op: &'static str, reads: &[&Tensor], write: &Tensor) -> Result<()> {
    if reads
        .iter()
        .any(|r| Arc::ptr_eq(&r.storage, &write.storage))
    {
        return Err(Error::shape(
            op,
            format!(
                "the output {} shares a buffer with an input; use separate buffers",
                write.shape
            ),
        ));
    }
    Ok(())
}

fn launch(
    rec: &mut Recorder,
    entry: &'static str,
    p: &TensorParams,
    a: &Tensor,
    b: &Tensor,
    y: &Tensor,
) -> Result<()> {
    let g = rec.grid(groups_for(p.len as usize, 256))?;
    rec.dispatch("tensor", entry, &[], p, &[a, b, y], g)
}

/// `x` and `y` of one shape and one activation dtype, separate buffers.
fn elementwise(op: &'static str, x: &Tensor, y: &Tensor) -> Result<()> {
    let act = act_dtype(op, &[("input", x), ("output", y)])?;
    expect(op, "output", y, x.shape, act)?;
    distinct(op, &[x], y)
}

// ------------------------------------------------------------------ elementwise

/// `y = a + b` (same shapes, one activation dtype).
pub fn add_into(rec: &mut Recorder, a: &Tensor, b: &Tensor, y: &Tensor) -> Result<()> {
    checked("add", shape::check_same("a", &a.shape, "b", &b.shape))?;
    act_dtype("add", &[("a", a), ("b", b), ("output", y)])?;
    elementwise("add", a, y)?;
    distinct("add", &[b], y)?;
    let p = TensorParams {
        len: y.numel() as u32,
        ..Default::default()
    };
    launch(rec, "add", &p, a, b, y)
}

pub fn add(rec: &mut Recorder, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let y = alloc_act(rec, a.shape, a)?;
    add_into(rec, a, b, &y)?;
    Ok(y)
}

/// `y = alpha * x`.
pub fn scale_into(rec: &mut Recorder, x: &Tensor, alpha: f32, y: &Tensor) -> Result<()> {
    elementwise("scale", x, y)?;
    let p = TensorParams {
        len: y.numel() as u32,
        alpha,
        ..Default::default()
    };
    launch(rec, "scale", &p, x, x, y)
}

pub fn scale(rec: &mut Recorder, x: &Tensor, alpha: f32) -> Result<Tensor> {
    let y = alloc_act(rec, x.shape, x)?;
    scale_into(rec, x, alpha, &y)?;
    Ok(y)
}

/// `y += alpha * x` in place (gradient accumulation at fan-out).
pub fn axpy_into(rec: &mut Recorder, alpha: f32, x: &Tensor, y: &Tensor) -> Result<()> {
    elementwise("axpy", x, y)?;
    let p = TensorParams {
        len: y.numel() as u32,
        alpha,
        ..Default::default()
    };
    launch(rec, "axpy", &p, x, x, y)
}

/// `y[i] = value` for every element (`value` rounded to `y`'s activation dtype).
pub fn fill_into(rec: &mut Recorder, y: &Tensor, value: f32) -> Result<()> {
    let act = act_dtype("fill", &[("output", y)])?;
    // The unused input bindings are `act` too: a stand-in of the output's dtype.
    let d = dummy(rec, act)?;
    let p = TensorParams {
        len: y.numel() as u32,
        alpha: value,
        ..Default::default()
    };
    launch(rec, "fill", &p, &d, &d, y)
}

/// `y = x` (same shapes, one activation dtype; values move unchanged).
pub fn copy_into(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    elementwise("copy", x, y)?;
    let p = TensorParams {
        len: y.numel() as u32,
        ..Default::default()
    };
    launch(rec, "copy", &p, x, x, y)
}

/// The graph's `Identity`: nothing when `y` is `x`'s own range (the
/// executor's planner gives an alias the buffer of its input), else a copy.
pub fn identity_into(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    if std::sync::Arc::ptr_eq(&x.storage, &y.storage) && x.offset == y.offset {
        let act = act_dtype("identity", &[("input", x), ("output", y)])?;
        return expect("identity", "output", y, x.shape, act);
    }
    copy_into(rec, x, y)
}

pub fn copy(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let y = alloc_act(rec, x.shape, x)?;
    copy_into(rec, x, &y)?;
    Ok(y)
}

// ------------------------------------------------------------------ channel concat / split

/// Shape of the channel concat of `xs` ([`shape::concat_out_shape`]).
pub fn concat_channels_out_shape(xs: &[Shape]) -> Result<Shape> {
    checked("concat_channels", shape::concat_out_shape(xs))
}

/// Which channels a `channel_block` dispatch moves: `count` channels from
/// channel `src_off` of a `src_c`-channel tensor to channel `dst_off` of a `dst_c`-channel one.
struct Block {
    src_c: usize,
    src_off: usize,
    dst_c: usize,
    dst_off: usize,
    count: usize,
}

/// Whether `part` is already the channel block of `whole` starting at channel `off`: the
/// same buffer at the block's byte offset, batch 1 (the memory planner's channel slices).
fn is_slice(part: &Tensor, whole: &Tensor, off: usize) -> bool {
    let block = (off * whole.shape.spatial_numel()) as u64 * whole.dtype.size();
    Arc::ptr_eq(&part.storage, &whole.storage)
        && whole.shape.n() == 1
        && part.dtype == whole.dtype
        && part.offset == whole.offset + block
}

/// The channel block of `whole` at channel `off` moved from or to `part`, unless `part` is
/// that block already ([`is_slice`]); any other sharing of one buffer is an error.
fn channel_block_unless_slice(
    rec: &mut Recorder,
    op: &'static str,
    (part, whole): (&Tensor, &Tensor),
    off: usize,
    into_whole: bool,
) -> Result<()> {
    if is_slice(part, whole, off) {
        return Ok(());
    }
    let (src, dst) = if into_whole {
        (part, whole)
    } else {
        (whole, part)
    };
    distinct(op, &[src], dst)?;
    let (c, whole_c) = (part.shape.c(), whole.shape.c());
    let b = match into_whole {
        true => Block {
            src_c: c,
            src_off: 0,
            dst_c: whole_c,
            dst_off: off,
            count: c,
        },
        false => Block {
            src_c: whole_c,
            src_off: off,
            dst_c: c,
            dst_off: 0,
            count: c,
        },
    };
    channel_block(rec, src, dst, b)
}

fn channel_block(rec: &mut Recorder, src: &Tensor, dst: &Tensor, b: Block) -> Result<()> {
    let sp = dst.shape.spatial_numel();
    let p = TensorParams {
        len: (dst.shape.n() * b.count * sp) as u32,
        c_src: b.src_c as u32,
        c_dst: b.dst_c as u32,
        c_blk: b.count as u32,
        off_src: b.src_off as u32,
        off_dst: b.dst_off as u32,
        sp: sp as u32,
        div_sp: magic(sp),
        div_blk: magic(b.count),
        ..Default::default()
    };
    launch(rec, "channel_block", &p, src, src, dst)
}

/// Concatenate `xs` along the channel axis into `y` (one dispatch per input).
pub fn concat_channels_into(rec: &mut Recorder, xs: &[&Tensor], y: &Tensor) -> Result<()> {
    let shapes: Vec<Shape> = xs.iter().map(|t| t.shape).collect();
    let ys = concat_channels_out_shape(&shapes)?;
    let names: Vec<String> = (0..xs.len()).map(|i| format!("input {i}")).collect();
    let mut acts: Vec<(&str, &Tensor)> = names
        .iter()
        .map(|n| n.as_str())
        .zip(xs.iter().copied())
        .collect();
    acts.push(("output", y));
    let act = act_dtype("concat_channels", &acts)?;
    expect("concat_channels", "output", y, ys, act)?;
    let mut off = 0;
    for x in xs {
        channel_block_unless_slice(rec, "concat_channels", (x, y), off, true)?;
        off += x.shape.c();
    }
    Ok(())
}

pub fn concat_channels(rec: &mut Recorder, xs: &[&Tensor]) -> Result<Tensor> {
    let shapes: Vec<Shape> = xs.iter().map(|t| t.shape).collect();
    let ys = concat_channels_out_shape(&shapes)?;
    let y = match xs.first() {
        Some(x) => alloc_act(rec, ys, x)?,
        None => Tensor::empty(rec.ctx, ys, DType::F32)?,
    };
    concat_channels_into(rec, xs, &y)?;
    Ok(y)
}

/// Split `dy` along the channel axis into `dxs` (the backward of the concat);
/// the channel counts of `dxs` must add up to `dy`'s.
pub fn split_channels_into(rec: &mut Recorder, dy: &Tensor, dxs: &[&Tensor]) -> Result<()> {
    let shapes: Vec<Shape> = dxs.iter().map(|t| t.shape).collect();
    let ys = concat_channels_out_shape(&shapes)?;
    let names: Vec<String> = (0..dxs.len()).map(|i| format!("output {i}")).collect();
    let mut acts: Vec<(&str, &Tensor)> = vec![("input", dy)];
    acts.extend(names.iter().map(|n| n.as_str()).zip(dxs.iter().copied()));
    let act = act_dtype("split_channels", &acts)?;
    expect("split_channels", "input", dy, ys, act)?;
    let mut off = 0;
    for dx in dxs {
        channel_block_unless_slice(rec, "split_channels", (dx, dy), off, false)?;
        off += dx.shape.c();
    }
    Ok(())
}

/// Split `dy` into tensors of `sizes` channels each.
pub fn split_channels(rec: &mut Recorder, dy: &Tensor, sizes: &[usize]) -> Result<Vec<Tensor>> {
    let shapes = checked("split_channels", shape::split_out_shapes(&dy.shape, sizes))?;
    let dxs: Vec<Tensor> = shapes
        .into_iter()
        .map(|s| alloc_act(rec, s, dy))
        .collect::<Result<_>>()?;
    let refs: Vec<&Tensor> = dxs.iter().collect();
    split_channels_into(rec, dy, &refs)?;
    Ok(dxs)
}

// ------------------------------------------------------------------ crop and pad

fn shift_params(src: &Shape, dst: &Shape, off: [i64; 3]) -> TensorParams {
    TensorParams {
        len: dst.numel() as u32,
        src: u3(src.spatial()),
        src_sp: src.spatial_numel() as u32,
        dst: u3(dst.spatial()),
        dst_sp: dst.spatial_numel() as u32,
        off: [off[0] as i32, off[1] as i32, off[2] as i32],
        dec_w: magic(dst.w()),
        dec_h: magic(dst.h()),
        dec_d: magic(dst.d()),
        ..Default::default()
    }
}

fn signed(a: [usize; 3], sign: i64) -> [i64; 3] {
    [a[0] as i64 * sign, a[1] as i64 * sign, a[2] as i64 * sign]
}

/// A crop of `xs` at `offset` to `ys`'s spatial size must fit ([`shape::crop_out_shape`])
/// and give `ys`.
fn check_crop(op: &'static str, xs: &Shape, offset: [usize; 3], ys: &Shape) -> Result<()> {
    let want = checked(op, shape::crop_out_shape(xs, offset, ys.spatial()))?;
    if want.dims != ys.dims {
        return Err(Error::shape(
            op,
            format!("a {ys} crop of {xs} must be {want}"),
        ));
    }
    Ok(())
}

/// `y = x[.., off_d.., off_h.., off_w..]` with `y`'s size (`offset` is `[D, H, W]`, D = 0 in 2D).
pub fn crop_into(rec: &mut Recorder, x: &Tensor, offset: [usize; 3], y: &Tensor) -> Result<()> {
    check_crop("crop", &x.shape, offset, &y.shape)?;
    elementwise_pair("crop", x, y)?;
    let p = shift_params(&x.shape, &y.shape, signed(offset, 1));
    launch(rec, "shift_copy", &p, x, x, y)
}

/// Crop `x` to spatial `size` at `offset`.
pub fn crop(
    rec: &mut Recorder,
    x: &Tensor,
    offset: [usize; 3],
    size: [usize; 3],
) -> Result<Tensor> {
    let y = alloc_act(rec, x.shape.with_spatial(size), x)?;
    crop_into(rec, x, offset, &y)?;
    Ok(y)
}

/// Crop `x` to spatial `size` at the centre (offset `floor((in - size)/2)`).
pub fn center_crop(rec: &mut Recorder, x: &Tensor, size: [usize; 3]) -> Result<Tensor> {
    let off = crate::shape::center_crop_offset(x.shape.spatial(), size).ok_or_else(|| {
        Error::shape(
            "crop",
            format!("crop size {size:?} is larger than {}", x.shape),
        )
    })?;
    crop(rec, x, off, size)
}

/// Backward of [`crop_into`]: `dx` is `dy` at `offset`, zero elsewhere.
pub fn crop_grad_into(
    rec: &mut Recorder,
    dy: &Tensor,
    offset: [usize; 3],
    dx: &Tensor,
) -> Result<()> {
    check_crop("crop_grad", &dx.shape, offset, &dy.shape)?;
    elementwise_pair("crop_grad", dy, dx)?;
    let p = shift_params(&dy.shape, &dx.shape, signed(offset, -1));
    launch(rec, "shift_copy", &p, dy, dy, dx)
}

pub fn crop_grad(
    rec: &mut Recorder,
    dy: &Tensor,
    offset: [usize; 3],
    x_shape: Shape,
) -> Result<Tensor> {
    let dx = alloc_act(rec, x_shape, dy)?;
    crop_grad_into(rec, dy, offset, &dx)?;
    Ok(dx)
}

/// One activation dtype and separate buffers for a (source, destination) pair of any shapes.
fn elementwise_pair(op: &'static str, src: &Tensor, dst: &Tensor) -> Result<DType> {
    let act = act_dtype(op, &[("input", src), ("output", dst)])?;
    distinct(op, &[src], dst)?;
    Ok(act)
}

/// Shape of `x` padded by `lo` / `hi` (`[D, H, W]`; [`shape::pad_out_shape`]).
pub fn pad_out_shape(x: &Shape, lo: [usize; 3], hi: [usize; 3], mode: PadMode) -> Result<Shape> {
    checked(
        "pad",
        shape::pad_out_shape(x, lo, hi, mode == PadMode::Reflect),
    )
}

/// Pad `x` by `lo` before and `hi` after each spatial axis into `y`.
pub fn pad_into(
    rec: &mut Recorder,
    x: &Tensor,
    lo: [usize; 3],
    hi: [usize; 3],
    mode: PadMode,
    y: &Tensor,
) -> Result<()> {
    let ys = pad_out_shape(&x.shape, lo, hi, mode)?;
    let act = elementwise_pair("pad", x, y)?;
    expect("pad", "output", y, ys, act)?;
    let p = shift_params(&x.shape, &ys, signed(lo, -1));
    let entry = match mode {
        PadMode::Zero => "shift_copy",
        PadMode::Reflect => "reflect_fwd",
    };
    launch(rec, entry, &p, x, x, y)
}

pub fn pad(
    rec: &mut Recorder,
    x: &Tensor,
    lo: [usize; 3],
    hi: [usize; 3],
    mode: PadMode,
) -> Result<Tensor> {
    let y = alloc_act(rec, pad_out_shape(&x.shape, lo, hi, mode)?, x)?;
    pad_into(rec, x, lo, hi, mode, &y)?;
    Ok(y)
}

/// Backward of [`pad_into`] into `dx` (the input's shape): a crop for zero
/// padding; for reflect padding each input sums every padded position reading it.
pub fn pad_grad_into(
    rec: &mut Recorder,
    dy: &Tensor,
    lo: [usize; 3],
    hi: [usize; 3],
    mode: PadMode,
    dx: &Tensor,
) -> Result<()> {
    let xs = checked(
        "pad_grad",
        shape::unpad_out_shape(&dy.shape, lo, hi, mode == PadMode::Reflect),
    )?;
    let ys = dy.shape;
    let act = elementwise_pair("pad_grad", dy, dx)?;
    expect("pad_grad", "grad_input", dx, xs, act)?;
    let p = shift_params(&ys, &dx.shape, signed(lo, 1));
    let entry = match mode {
        PadMode::Zero => "shift_copy",
        PadMode::Reflect => "reflect_bwd",
    };
    launch(rec, entry, &p, dy, dy, dx)
}

pub fn pad_grad(
    rec: &mut Recorder,
    dy: &Tensor,
    lo: [usize; 3],
    hi: [usize; 3],
    mode: PadMode,
    x_shape: Shape,
) -> Result<Tensor> {
    let dx = alloc_act(rec, x_shape, dy)?;
    pad_grad_into(rec, dy, lo, hi, mode, &dx)?;
    Ok(dx)
}
