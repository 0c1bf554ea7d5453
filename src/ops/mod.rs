//! GPU ops, one file per op family. Each op: check shapes -> output shape ->
//! params -> dispatch. `*_into` variants write into a given tensor (the
//! executor's planned buffers); the plain variants allocate their output.

pub mod activation;
pub mod amp;
pub mod conv;
pub mod coop;
pub mod fastdiv;
pub mod group_norm;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod tensor;
pub mod upsample;

use crate::error::{Error, Result};
use crate::gpu::{DType, Tensor};
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

/// A shared check's message ([`crate::shape`], the attribute types) as this op's error.
pub(crate) fn checked<T>(op: &'static str, r: crate::shape::Check<T>) -> Result<T> {
    r.map_err(|m| Error::shape(op, m))
}

/// Number of workgroups for `n` items at `per` items per workgroup.
pub(crate) fn groups_for(n: usize, per: usize) -> u64 {
    n.div_ceil(per) as u64
}
