//! Sums shared by several ops (`kernels/reduce.wgsl`).

use super::{act_dtype, groups_for};
use crate::error::{Error, Result};
use crate::gpu::{DType, Recorder, Tensor};
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    len: u32,
    splits: u32,
    c: u32,
    flags: u32,
    /// channel_sum: log2 of the lanes per channel.
    lanes: u32,
    pad: [u32; 3],
}

/// Fail unless `t` is F32 (sums and partials are stored in f32).
fn expect_f32(op: &'static str, what: &str, t: &Tensor) -> Result<()> {
    if t.dtype != DType::F32 {
        return Err(Error::shape(
            op,
            format!("{what} {} has dtype {:?}, expected F32", t.shape, t.dtype),
        ));
    }
    Ok(())
}

/// `out[i] = sum_s part[s*len + i]` (plus `out[i]` if `accumulate`), len = out.numel();
/// `part` and `out` are F32.
pub fn sum_splits_into(
    rec: &mut Recorder,
    part: &Tensor,
    splits: usize,
    out: &Tensor,
    accumulate: bool,
) -> Result<()> {
    expect_f32("sum_splits", "partials", part)?;
    expect_f32("sum_splits", "output", out)?;
    let len = out.numel();
    if part.numel() != splits * len {
        return Err(Error::shape(
            "sum_splits",
            format!(
                "{} partial values for {splits} x {}",
                part.numel(),
                out.shape
            ),
        ));
    }
    let p = ReduceParams {
        len: len as u32,
        splits: splits as u32,
        c: 0,
        flags: accumulate as u32,
        lanes: 0,
        pad: [0; 3],
    };
    let g = rec.grid(groups_for(len, 256))?;
    rec.dispatch("reduce", "sum_splits", &[], &p, &[part, out], g)
}

/// `out[c] = sum over batch and space of x[:, c]` (plus `out[c]` if `accumulate`).
/// `x` is an activation gradient (F32 or F16); the sum is taken in f32 and
/// `out` (a bias gradient) is F32.
pub fn channel_sum_into(
    rec: &mut Recorder,
    x: &Tensor,
    out: &Tensor,
    accumulate: bool,
) -> Result<()> {
    act_dtype("channel_sum", &[("input", x)])?;
    expect_f32("channel_sum", "output", out)?;
    if out.numel() != x.shape.c() {
        return Err(Error::shape(
            "channel_sum",
            format!(
                "input {} needs an output of {} values, got {}",
                x.shape,
                x.shape.c(),
                out.shape
            ),
        ));
    }
    let lanes = super::lanes_for(x.shape.n() * x.shape.spatial_numel(), 256);
    let p = ReduceParams {
        len: x.shape.spatial_numel() as u32,
        splits: x.shape.n() as u32,
        c: x.shape.c() as u32,
        flags: accumulate as u32,
        lanes: lanes.trailing_zeros(),
        pad: [0; 3],
    };
    let g = rec.grid(groups_for(x.shape.c() * lanes, 256))?;
    rec.dispatch("reduce", "channel_sum", &[], &p, &[x, out], g)
}
