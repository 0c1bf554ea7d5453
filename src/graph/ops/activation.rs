//! Activation family: elementwise on values of any shape; outputs take the
//! shape and dtype of their input.
//!
//! Forward
//! - `Relu`, `LeakyRelu(LeakyReluAttrs)`, `Sigmoid`: `x -> y`.
//! - `Dropout(DropoutAttrs)`: `x -> y = x * mask / (1-p)`, mask a hash of
//!   `(seed, step, flat index)`; the executor supplies `step` so the mask
//!   changes every step and `DropoutGrad` of the same step regenerates it.
//!
//! Backward (emitted by autodiff)
//! - `ReluGrad`: `(dy, v) -> dy * (v > 0)`; autodiff passes the forward output
//!   `y` as `v` (same sign as x), so the forward Relu may run in place.
//! - `LeakyReluGrad(LeakyReluAttrs)`: `(dy, v) -> dy * (v > 0 ? 1 : slope)`;
//!   `v` is `y` when `slope >= 0`, else `x`.
//! - `SigmoidGrad`: `(dy, y) -> dy * y * (1 - y)`.
//! - `DropoutGrad(DropoutAttrs)`: `dy -> dy * mask / (1-p)` (same seed and step).

use super::{foreign, Check, Op, OpSpec, Pass, Slot};
use crate::error::Result;
use crate::graph::autodiff::Backward;
use crate::shape::{self, Shape};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyReluAttrs {
    pub slope: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutAttrs {
    /// Drop probability, in `[0, 1]` ([`check_drop_probability`]).
    pub p: f32,
    pub seed: u64,
}

/// A drop probability must lie in `[0, 1]` (1 drops everything).
pub fn check_drop_probability(p: f32) -> Check<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("drop probability {p} is outside [0, 1]"));
    }
    Ok(())
}

const X: Slot = Slot::any("input");
const Y: Slot = Slot::any("output");
const DY: Slot = Slot::any("gradient");
const V: Slot = Slot::any("forward value");
const DX: Slot = Slot::any("input gradient");

/// A forward op `x -> y`; `y` may take over `x`'s buffer.
const fn forward(name: &'static str) -> OpSpec {
    OpSpec::new(name, Pass::Forward, &[X], &[Y], shapes, Some(grads)).in_place(&[0])
}

/// A backward op `(dy, v) -> dx`; `dx` may take over either buffer.
const fn backward(name: &'static str) -> OpSpec {
    OpSpec::new(name, Pass::Backward, &[DY, V], &[DX], shapes, None).in_place(&[0, 1])
}

pub(super) const RELU: OpSpec = forward("Relu");
pub(super) const LEAKY_RELU: OpSpec = forward("LeakyRelu");
pub(super) const SIGMOID: OpSpec = forward("Sigmoid");
pub(super) const DROPOUT: OpSpec = forward("Dropout");
pub(super) const RELU_GRAD: OpSpec = backward("ReluGrad");
pub(super) const LEAKY_RELU_GRAD: OpSpec = backward("LeakyReluGrad");
pub(super) const SIGMOID_GRAD: OpSpec = backward("SigmoidGrad");
pub(super) const DROPOUT_GRAD: OpSpec =
    OpSpec::new("DropoutGrad", Pass::Backward, &[DY], &[DX], shapes, None).in_place(&[0]);

/// The shape rule of the family: the output has the first input's shape.
fn shapes(op: &Op, ins: &[Shape]) -> Check<Vec<Shape>> {
    match op {
        Op::Relu | Op::LeakyRelu(_) | Op::Sigmoid => {}
        Op::Dropout(a) | Op::DropoutGrad(a) => check_drop_probability(a.p)?,
        Op::ReluGrad | Op::LeakyReluGrad(_) | Op::SigmoidGrad => {
            shape::check_same("gradient", &ins[0], "forward value", &ins[1])?
        }
        op => return Err(foreign("activation", op)),
    }
    Ok(vec![ins[0]])
}

/// The gradient rule of the family's forward ops.
fn grads(b: &mut Backward) -> Result<()> {
    let n = b.node;
    let (x, y) = (b.input(0), b.output(0));
    let dy = b.dy()?;
    let (op, ins) = match &n.op {
        Op::Relu => (Op::ReluGrad, vec![dy, y]),
        // y has the sign of x when slope >= 0; reading y lets the forward run in place.
        Op::LeakyRelu(a) => {
            let v = if a.slope >= 0.0 { y } else { x };
            (Op::LeakyReluGrad(*a), vec![dy, v])
        }
        Op::Sigmoid => (Op::SigmoidGrad, vec![dy, y]),
        Op::Dropout(a) => (Op::DropoutGrad(*a), vec![dy]),
        _ => return Err(b.error(&foreign("activation", &n.op))),
    };
    let dx = b.emit1("dx", op, &ins)?;
    b.give(0, dx);
    Ok(())
}
