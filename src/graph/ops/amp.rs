//! Mixed-precision family: dtype casts and dynamic loss scaling.
//!
//! In a mixed-precision graph activations and their gradients are F16;
//! parameters, their gradients, statistics and losses are F32. The loss runs
//! in F32 on logits cast from F16; the backward starts from the loss gradient
//! times the loss scale, cast to F16; the optimiser divides the (F32)
//! parameter gradients by the scale and skips the step when any of them is
//! not finite, and the scale adapts (see `ops::amp` and `kernels/amp.wgsl`).
//! The scaler is an F32 state value `[scale, 1/scale, good_steps,
//! skipped_steps]` (`Init::LossScaler`), saved with the optimiser state.
//!
//! Forward
//! - `Cast(CastAttrs)`: `(x, scaler?) -> y` of dtype `to` (F32 <-> F16). With
//!   `scale_grad`, the scaler is an input (read by the backward only) and the
//!   gradient that flows back through the cast is multiplied by the scale.
//!
//! Backward and update (emitted by autodiff and `append_optimizer`)
//! - `CastGrad(CastAttrs)`: `(dy, scaler?) -> dx` in the forward input's dtype
//!   (times the scale when `scale_grad`).
//! - `FiniteCheck`: `(g0, g1, ..) -> flag` (U32 `[1]`): 1 if any parameter
//!   gradient holds an Inf or NaN, else 0.
//! - `UpdateScale(UpdateScaleAttrs)`: `(scaler, flag)`, updates the scaler in
//!   place: halve on overflow, double after `interval` clean steps.

use super::{foreign, Check, Op, OpSpec, Pass, Slot, Slots};
use crate::error::Result;
use crate::graph::autodiff::Backward;
use crate::shape::{self, DType, Shape};

/// A cast to `to` (F32 or F16).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CastAttrs {
    pub to: DType,
    /// The cast in front of the loss: its gradient is multiplied by the loss
    /// scale (the scaler is its second input).
    pub scale_grad: bool,
}

impl CastAttrs {
    pub fn check(&self) -> Check<()> {
        match self.to {
            DType::F32 | DType::F16 => Ok(()),
            other => Err(format!("casts go to F32 or F16, not {other:?}")),
        }
    }
    /// The dtype of the cast's input (the other of F32 / F16).
    pub fn from(&self) -> DType {
        if self.to == DType::F16 {
            DType::F32
        } else {
            DType::F16
        }
    }
}

/// Clean steps before the loss scale doubles.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateScaleAttrs {
    pub interval: u32,
}

/// Length of the scaler state `[scale, 1/scale, good_steps, skipped_steps]`.
pub const SCALER_LEN: usize = 4;
/// Initial loss scale (PyTorch's GradScaler: 2^16).
pub const INIT_SCALE: f32 = 65536.0;
/// Clean steps before the scale doubles (PyTorch's default).
pub const GROWTH_INTERVAL: u32 = 2000;
/// The name of the U-Net's loss-scaler state (saved with the optimiser state).
pub const LOSS_SCALER: &str = "amp.loss_scale";

const SCALER: Slot = Slot::f32("scaler");
const FLAG: Slot = Slot::indices("flag");

/// Slots of a cast from `from` to `to` (input first), with the scaler when scaled.
fn cast_slots(from: DType, scaled: bool) -> (&'static [Slot], &'static [Slot]) {
    const F32_IN: &[Slot] = &[Slot::f32("input")];
    const F16_IN: &[Slot] = &[Slot::f16("input")];
    const F32_IN_S: &[Slot] = &[Slot::f32("input"), SCALER];
    const F16_IN_S: &[Slot] = &[Slot::f16("input"), SCALER];
    const F32_OUT: &[Slot] = &[Slot::f32("output")];
    const F16_OUT: &[Slot] = &[Slot::f16("output")];
    match (from == DType::F16, scaled) {
        (true, false) => (F16_IN, F32_OUT),
        (true, true) => (F16_IN_S, F32_OUT),
        (false, false) => (F32_IN, F16_OUT),
        (false, true) => (F32_IN_S, F16_OUT),
    }
}

pub(super) fn cast(a: &CastAttrs) -> OpSpec {
    let (ins, outs) = cast_slots(a.from(), a.scale_grad);
    OpSpec::new("Cast", Pass::Forward, ins, outs, shapes, Some(grads))
}

/// The gradient goes back from `to` to the forward input's dtype.
pub(super) fn cast_grad(a: &CastAttrs) -> OpSpec {
    let (ins, outs) = cast_slots(a.to, a.scale_grad);
    OpSpec::new("CastGrad", Pass::Backward, ins, outs, shapes, None)
}

pub(super) const FINITE_CHECK: OpSpec =
    OpSpec::new("FiniteCheck", Pass::Backward, &[], &[FLAG], shapes, None)
        .with_inputs(Slots::AtLeast(1, Slot::f32("gradient")));

pub(super) const UPDATE_SCALE: OpSpec = OpSpec::new(
    "UpdateScale",
    Pass::Update,
    &[SCALER, FLAG],
    &[],
    shapes,
    None,
)
.mutating(&[0]);

/// The shape rule of the family.
fn shapes(op: &Op, ins: &[Shape]) -> Check<Vec<Shape>> {
    match op {
        Op::Cast(a) | Op::CastGrad(a) => {
            a.check()?;
            if a.scale_grad {
                check_scaler(&ins[1])?;
            }
            Ok(vec![ins[0]])
        }
        Op::FiniteCheck => Ok(vec![Shape::vector(1)]),
        Op::UpdateScale(a) => {
            if a.interval == 0 {
                return Err("the loss-scale growth interval must be positive".into());
            }
            check_scaler(&ins[0])?;
            shape::check_same("flag", &ins[1], "a one-element flag", &Shape::vector(1))?;
            Ok(vec![])
        }
        op => Err(foreign("amp", op)),
    }
}

fn check_scaler(s: &Shape) -> Check<()> {
    shape::check_same(
        "scaler",
        s,
        "[scale, 1/scale, good, skipped]",
        &Shape::vector(SCALER_LEN),
    )
}

/// The gradient of a cast is the cast back (times the loss scale for the
/// cast in front of the loss).
fn grads(b: &mut Backward) -> Result<()> {
    let n = b.node;
    match &n.op {
        Op::Cast(a) => {
            let dy = b.dy()?;
            let mut ins = vec![dy];
            if a.scale_grad {
                ins.push(b.input(1));
            }
            let dx = b.emit1("dx", Op::CastGrad(*a), &ins)?;
            b.give(0, dx);
        }
        _ => return Err(b.error(&foreign("amp", &n.op))),
    }
    Ok(())
}
