//! Tensor plumbing family: channel concat and split, crop, pad, add, scale, zeros.
//!
//! Forward
//! - `Concat`: `(x0, x1, ..) -> y` along channels (2+ inputs).
//! - `Split(SplitAttrs)`: `x -> (y0, y1, ..)` along channels (2+ parts).
//! - `CenterCrop(CropAttrs)`: `x -> y = x[.., offset .. offset+size]`.
//! - `Pad(PadAttrs)`: `x -> y` padded by `low`/`high` per spatial axis.
//! - `Add`: `(a, b) -> a + b` (same shape, any rank). `Scale(ScaleAttrs)`: `x -> alpha x`.
//! - `Zeros(ZerosAttrs)`: `() -> 0` of the given shape and activation dtype
//!   (fills a gradient that has no contribution).
//! - `Identity`: `x -> x`, an alias ([`OpSpec::alias`]): same buffer, no
//!   kernel. `graph::fuse` leaves it where a fused op took over the work of
//!   the op it replaces, so every value keeps its id.
//!
//! Backward (emitted by autodiff)
//! - `CenterCropGrad(CropGradAttrs)`: `dy -> dx` of spatial `input`, zero outside the crop.
//! - `PadGrad(PadAttrs)`: `dy -> dx` (inner region; reflect mode adds the mirrored parts).
//!
//! Autodiff also emits `Add` (fan-out sums), `Scale`, `Split`, `Concat` and `Zeros`.

use super::{foreign, is_activation_dtype, Check, Op, OpSpec, Pass, Slot, Slots};
use crate::error::{Error, Result};
use crate::graph::autodiff::{Backward, Grad};
use crate::graph::ir::ValueId;
use crate::shape::{self, DType, Shape};

#[derive(Clone, Debug, PartialEq)]
pub struct SplitAttrs {
    /// Channels of each output, in order; they sum to the input's channels.
    pub sizes: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropAttrs {
    pub offset: [usize; 3],
    pub size: [usize; 3],
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropGradAttrs {
    pub offset: [usize; 3],
    /// Spatial size of the forward input (the gradient's output).
    pub input: [usize; 3],
}

/// Padding mode of `Pad` and of `ops::tensor::pad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PadMode {
    /// Zeros outside the input.
    #[default]
    Zero,
    /// Mirror without repeating the edge (`x[1], x[0] | x[0], x[1], ..`:
    /// PyTorch's `reflect`); each pad must be smaller than its axis.
    Reflect,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PadAttrs {
    pub low: [usize; 3],
    pub high: [usize; 3],
    pub mode: PadMode,
}

/// A zero tensor: its shape and dtype (an activation dtype: the dtype of the
/// gradients it stands in for).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZerosAttrs {
    pub shape: Shape,
    pub dtype: DType,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleAttrs {
    pub alpha: f32,
}

const X: Slot = Slot::act("input");
const Y: Slot = Slot::act("output");
const DY: Slot = Slot::act("gradient");
const DX: Slot = Slot::act("input gradient");
const A: Slot = Slot::any("a");
const B: Slot = Slot::any("b");
const X_ANY: Slot = Slot::any("input");
const Y_ANY: Slot = Slot::any("output");

const fn forward(name: &'static str, inputs: &'static [Slot], outputs: &'static [Slot]) -> OpSpec {
    OpSpec::new(name, Pass::Forward, inputs, outputs, shapes, Some(grads))
}

pub(super) const CONCAT: OpSpec = forward("Concat", &[], &[Y]).with_inputs(Slots::AtLeast(2, X));
pub(super) fn split(a: &SplitAttrs) -> OpSpec {
    forward("Split", &[X], &[]).with_outputs(Slots::Repeat(a.sizes.len(), Y))
}
pub(super) const CENTER_CROP: OpSpec = forward("CenterCrop", &[X], &[Y]);
pub(super) const PAD: OpSpec = forward("Pad", &[X], &[Y]);
pub(super) const ADD: OpSpec = forward("Add", &[A, B], &[Y_ANY]).in_place(&[0, 1]);
pub(super) const SCALE: OpSpec = forward("Scale", &[X_ANY], &[Y_ANY]).in_place(&[0]);
pub(super) const ZEROS: OpSpec = forward("Zeros", &[], &[Y_ANY]);
pub(super) const IDENTITY: OpSpec = forward("Identity", &[X_ANY], &[Y_ANY]).aliasing();
pub(super) const CENTER_CROP_GRAD: OpSpec =
    OpSpec::new("CenterCropGrad", Pass::Backward, &[DY], &[DX], shapes, None);
pub(super) const PAD_GRAD: OpSpec =
    OpSpec::new("PadGrad", Pass::Backward, &[DY], &[DX], shapes, None);

/// The shape rule of the family.
fn shapes(op: &Op, ins: &[Shape]) -> Check<Vec<Shape>> {
    let y = match op {
        Op::Concat => shape::concat_out_shape(ins)?,
        Op::Split(a) => return shape::split_out_shapes(&ins[0], &a.sizes),
        Op::CenterCrop(a) => shape::crop_out_shape(&ins[0], a.offset, a.size)?,
        Op::Pad(a) => shape::pad_out_shape(&ins[0], a.low, a.high, a.mode == PadMode::Reflect)?,
        Op::Add => {
            shape::check_same("a", &ins[0], "b", &ins[1])?;
            ins[0]
        }
        Op::Scale(_) | Op::Identity => ins[0],
        Op::Zeros(a) => {
            if !is_activation_dtype(a.dtype) {
                return Err(format!(
                    "dtype {:?} is not an activation dtype (F32 or F16)",
                    a.dtype
                ));
            }
            a.shape
        }
        Op::CenterCropGrad(a) => {
            let dy = &ins[0];
            let x = dy.with_spatial(a.input);
            shape::crop_out_shape(&x, a.offset, dy.spatial())?;
            x
        }
        Op::PadGrad(a) => {
            shape::unpad_out_shape(&ins[0], a.low, a.high, a.mode == PadMode::Reflect)?
        }
        op => return Err(foreign("tensor", op)),
    };
    Ok(vec![y])
}

/// The gradient rule of the family's forward ops.
fn grads(b: &mut Backward) -> Result<()> {
    let n = b.node;
    match &n.op {
        Op::Concat => {
            let sizes: Vec<usize> = n.inputs.iter().map(|v| b.shape(*v).c()).collect();
            let dy = b.dy()?;
            let parts = b.emit("dx", Op::Split(SplitAttrs { sizes }), &[dy])?;
            for (i, p) in parts.into_iter().enumerate() {
                b.give(i, p);
            }
        }
        Op::Split(_) => {
            let parts = split_output_grads(b)?;
            let dx = b.emit1("dx", Op::Concat, &parts)?;
            b.give(0, dx);
        }
        Op::CenterCrop(a) => {
            let at = CropGradAttrs {
                offset: a.offset,
                input: b.shape(b.input(0)).spatial(),
            };
            let dy = b.dy()?;
            let dx = b.emit1("dx", Op::CenterCropGrad(at), &[dy])?;
            b.give(0, dx);
        }
        Op::Pad(a) => {
            let dy = b.dy()?;
            let dx = b.emit1("dx", Op::PadGrad(*a), &[dy])?;
            b.give(0, dx);
        }
        Op::Add => {
            let gr = b
                .grad_of(0)
                .ok_or_else(|| Error::shape(n.op.name(), "no gradient"))?;
            b.give_grad(0, gr);
            b.give_grad(1, gr);
        }
        Op::Identity => {
            let gr = b
                .grad_of(0)
                .ok_or_else(|| Error::shape(n.op.name(), "no gradient"))?;
            b.give_grad(0, gr);
        }
        Op::Scale(a) => match b.grad_of(0) {
            Some(Grad::Const(c)) => b.give_grad(0, Grad::Const(c * a.alpha)),
            _ => {
                let dy = b.dy()?;
                let dx = b.emit1("dx", Op::Scale(*a), &[dy])?;
                b.give(0, dx);
            }
        },
        Op::Zeros(_) => {}
        _ => return Err(b.error(&foreign("tensor", &n.op))),
    }
    Ok(())
}

/// The gradient of each output of a split, zeros where the loss does not depend on it.
fn split_output_grads(b: &mut Backward) -> Result<Vec<ValueId>> {
    let n = b.node;
    let mut parts = Vec::with_capacity(n.outputs.len());
    for (i, o) in n.outputs.iter().enumerate() {
        parts.push(match b.grad_of(i) {
            Some(Grad::Value(v)) => v,
            None => {
                let zeros = Op::Zeros(ZerosAttrs {
                    shape: b.shape(*o),
                    dtype: b.dtype(*o),
                });
                b.emit1(&format!("zero{i}"), zeros, &[])?
            }
            Some(Grad::Const(_)) => return Err(b.error("constant gradient on a split output")),
        });
    }
    Ok(parts)
}
