//! Upsampling family: integer factors per axis, nearest or (bi/tri)linear.
//!
//! Forward
//! - `Upsample(UpsampleAttrs)`: `x -> y`, spatial `in * factor`; `Linear` is
//!   (bi/tri)linear with `align_corners = false` (PyTorch's default).
//!
//! Backward (emitted by autodiff)
//! - `UpsampleGrad(UpsampleAttrs)`: `dy -> dx` of spatial `out / factor`.

use super::{foreign, Check, Op, OpSpec, Pass, Slot};
use crate::error::Result;
use crate::graph::autodiff::Backward;
use crate::shape::{self, Shape};

/// Interpolation of `Upsample` and of `ops::upsample::upsample`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UpsampleMode {
    /// Repeat each value `factor` times per axis.
    #[default]
    Nearest,
    /// Linear per axis (bilinear in 2D, trilinear in 3D), `align_corners = false`.
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpsampleAttrs {
    pub mode: UpsampleMode,
    /// Integer factor per axis `[D, H, W]` (2D: `factor[0] = 1`).
    pub factor: [usize; 3],
}

const X: Slot = Slot::act("input");
const Y: Slot = Slot::act("output");
const DY: Slot = Slot::act("gradient");
const DX: Slot = Slot::act("input gradient");

pub(super) const UPSAMPLE: OpSpec =
    OpSpec::new("Upsample", Pass::Forward, &[X], &[Y], shapes, Some(grads));
pub(super) const UPSAMPLE_GRAD: OpSpec =
    OpSpec::new("UpsampleGrad", Pass::Backward, &[DY], &[DX], shapes, None);

/// The shape rule of the family.
fn shapes(op: &Op, ins: &[Shape]) -> Check<Vec<Shape>> {
    Ok(vec![match op {
        Op::Upsample(a) => shape::upsample_out_shape(&ins[0], a.factor)?,
        Op::UpsampleGrad(a) => shape::downsample_out_shape(&ins[0], a.factor)?,
        op => return Err(foreign("upsample", op)),
    }])
}

/// The gradient rule of `Upsample`.
fn grads(b: &mut Backward) -> Result<()> {
    let n = b.node;
    let Op::Upsample(a) = &n.op else {
        return Err(b.error(&foreign("upsample", &n.op)));
    };
    let dy = b.dy()?;
    let dx = b.emit1("dx", Op::UpsampleGrad(*a), &[dy])?;
    b.give(0, dx);
    Ok(())
}
