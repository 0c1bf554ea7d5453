//! GPU ops, one file per op family. Each op: check shapes -> output shape ->
//! params -> dispatch. `*_into` variants write into a given tensor (the
//! executor's planned buffers); the plain variants allocate their output.
//!
//! Dtypes: activations (x, y, dy, dx, logits and their gradient) are F32 or
//! F16, one dtype per call (`act_dtype`, the one check every wrapper uses;
//! outputs are allocated with `alloc_act`); parameters, their gradients,
//! statistics, losses and scratch are F32. Kernels read and write `act`
//! storage and do every sum in f32. The conv wrappers take F32 only for now.

pub mod activation;
pub mod amp;
pub mod conv;
pub mod coop;
pub mod fastdiv;
pub mod group_norm;
pub mod loss;
pub mod norm;
pub mod norm_relu;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod tensor;
pub mod upsample;

use crate::error::{Error, Result};
use crate::gpu::{DType, Recorder, Tensor};
use crate::graph::ops::is_activation_dtype;
use crate::shape::Shape;

/// Fail unless `t` has shape `want` and dtype `dt`.
pub(crate) fn expect(
    op: &'static str,
    what: &str,
    t: &Tensor,
    want: Shape,
    dt: DType,
) -> Result<()> {
    if t.shape.dims != want.dims {
        return Err(Error::shape(
            op,
            format!("{what} is {} but must be {want}", t.shape),
        ));
    }
    if t.dtype != dt {
        return Err(Error::shape(
            op,
            format!("{what} has dtype {:?}, expected {dt:?}", t.dtype),
        ));
    }
    Ok(())
}

/// The activation dtype of one call, the one rule every wrapper applies: all
/// activation inputs and outputs of a call (x, y, dy, dx, logits and their
/// gradient, feature maps) share one dtype, F32 or F16
/// ([`crate::graph::ops::is_activation_dtype`], the graph's rule), which the
/// first of `acts` (an input, in the op's order) decides. Parameters, their
/// gradients, statistics, losses and scratch stay F32 (checked with
/// [`expect`]). A mismatch is an error naming both tensors, e.g.
/// `add: a is F16 but b is F32`.
pub(crate) fn act_dtype(op: &'static str, acts: &[(&str, &Tensor)]) -> Result<DType> {
    let Some(&(first, t0)) = acts.first() else {
        return Ok(DType::F32);
    };
    if !is_activation_dtype(t0.dtype) {
        return Err(Error::shape(
            op,
            format!(
                "{first} {} has dtype {:?}; activations are F32 or F16",
                t0.shape, t0.dtype
            ),
        ));
    }
    for &(what, t) in &acts[1..] {
        if t.dtype != t0.dtype {
            return Err(Error::shape(
                op,
                format!("{first} is {:?} but {what} is {:?}", t0.dtype, t.dtype),
            ));
        }
    }
    Ok(t0.dtype)
}

/// An output allocated for activations like `like`: its dtype when that is an
/// activation dtype (F32 or F16), else F32 (the call's check then names the
/// offending input).
pub(crate) fn alloc_act(rec: &Recorder, shape: Shape, like: &Tensor) -> Result<Tensor> {
    let dt = if is_activation_dtype(like.dtype) {
        like.dtype
    } else {
        DType::F32
    };
    Tensor::empty(rec.ctx, shape, dt)
}

/// A shared check's message ([`crate::shape`], the attribute types) as this op's error.
pub(crate) fn checked<T>(op: &'static str, r: crate::shape::Check<T>) -> Result<T> {
    r.map_err(|m| Error::shape(op, m))
}

/// A one-element scratch tensor to fill bindings a kernel entry does not use
/// (of the binding's element type: the dispatch checks it).
pub(crate) fn dummy(rec: &Recorder, dtype: DType) -> Result<Tensor> {
    Tensor::empty(rec.ctx, Shape::scalar(), dtype)
}

/// Number of workgroups for `n` items at `per` items per workgroup.
pub(crate) fn groups_for(n: usize, per: usize) -> u64 {
    n.div_ceil(per) as u64
}

/// Lanes (invocations) that sum one item of `len` values in the reduction kernels that pack
/// several items into a workgroup (norm statistics and gradients, `reduce::channel_sum`):
/// about 16 values per lane, a power of two from 1 to `max`.
pub(crate) fn lanes_for(len: usize, max: usize) -> usize {
    len.div_ceil(16).next_power_of_two().clamp(1, max)
}
