//! Convolution family. Activations are `N, C, (D), H, W`; weights `O, C, k..`
//! for `Conv` and `C_in, C_out, k..` for `ConvTranspose` (PyTorch's layouts).
//!
//! Forward
//! - `Conv(ConvAttrs)`: `(x, w[O,C,k..], b[O]?) -> y`; `b` present iff `bias`.
//! - `ConvTranspose(ConvAttrs)`: `(x, w[C_in,C_out,k..], b[C_out]?) -> y`.
//! - `ConvRelu(ConvAttrs)`: as `Conv`, with `y = relu(conv(x, w) + b)` (left by
//!   `graph::fuse` for `Conv -> Relu`; its gradient rule is the pair's).
//!
//! Backward (emitted by autodiff)
//! - `ConvGradInput(WindowGradAttrs)`: `(dy, w) -> dx` of shape `input`.
//! - `ConvGradWeight(WindowAttrs)`: `(x, dy) -> dw[O,C,k..]`.
//! - `BiasGrad`: `dy -> db[C]` (sum over N and space).
//! - `ConvTransposeGradInput(WindowAttrs)`: `(dy, w[C_in,C_out,k..]) -> dx` (= conv(dy, w)).
//! - `ConvTransposeGradWeight(WindowAttrs)`: `(x, dy) -> dw[C_in,C_out,k..]`.

use super::{foreign, Check, Op, OpSpec, Pass, Slot, WindowAttrs, WindowGradAttrs};
use crate::error::Result;
use crate::graph::autodiff::Backward;
use crate::shape::{self, conv_weight_shape, Shape, Window};

/// Window of a convolution, plus whether a bias input is present.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvAttrs {
    pub window: Window,
    pub bias: bool,
}

const X: Slot = Slot::act("input");
const W: Slot = Slot::f32("weight");
const B: Slot = Slot::f32("bias");
const Y: Slot = Slot::act("output");
const DY: Slot = Slot::act("gradient");
const DX: Slot = Slot::act("input gradient");
const DW: Slot = Slot::f32("weight gradient");
const DB: Slot = Slot::f32("bias gradient");

const fn forward(name: &'static str, inputs: &'static [Slot]) -> OpSpec {
    OpSpec::new(name, Pass::Forward, inputs, &[Y], shapes, Some(grads))
}

const fn backward(name: &'static str, inputs: &'static [Slot], output: &'static [Slot]) -> OpSpec {
    OpSpec::new(name, Pass::Backward, inputs, output, shapes, None)
}

pub(super) fn conv(a: &ConvAttrs) -> OpSpec {
    forward("Conv", if a.bias { &[X, W, B] } else { &[X, W] })
}
pub(super) fn conv_relu(a: &ConvAttrs) -> OpSpec {
    forward("ConvRelu", if a.bias { &[X, W, B] } else { &[X, W] })
}
pub(super) fn conv_transpose(a: &ConvAttrs) -> OpSpec {
    forward("ConvTranspose", if a.bias { &[X, W, B] } else { &[X, W] })
}
pub(super) const CONV_GRAD_INPUT: OpSpec = backward("ConvGradInput", &[DY, W], &[DX]);
pub(super) const CONV_GRAD_WEIGHT: OpSpec = backward("ConvGradWeight", &[X, DY], &[DW]);
pub(super) const BIAS_GRAD: OpSpec = backward("BiasGrad", &[DY], &[DB]);
pub(super) const CONV_TRANSPOSE_GRAD_INPUT: OpSpec =
    backward("ConvTransposeGradInput", &[DY, W], &[DX]);
pub(super) const CONV_TRANSPOSE_GRAD_WEIGHT: OpSpec =
    backward("ConvTransposeGradWeight", &[X, DY], &[DW]);

/// The shape rule of the family.
fn shapes(op: &Op, ins: &[Shape]) -> Check<Vec<Shape>> {
    let out = match op {
        Op::Conv(a) | Op::ConvRelu(a) => {
            let y = shape::conv_out_shape(&ins[0], &ins[1], &a.window)?;
            check_bias(a, ins, &y)?;
            y
        }
        Op::ConvTranspose(a) => {
            let y = shape::conv_transpose_out_shape(&ins[0], &ins[1], &a.window)?;
            check_bias(a, ins, &y)?;
            y
        }
        Op::ConvGradInput(a) => {
            let y = shape::conv_out_shape(&a.input, &ins[1], &a.window)?;
            shape::check_grad_output(&ins[0], &y, &a.input, &a.window)?;
            a.input
        }
        Op::ConvGradWeight(a) => {
            let (x, dy) = (&ins[0], &ins[1]);
            let dw = conv_weight_shape(dy.c(), x.c(), &a.window, x.is_3d());
            let y = shape::conv_out_shape(x, &dw, &a.window)?;
            shape::check_grad_output(dy, &y, x, &a.window)?;
            dw
        }
        Op::BiasGrad => Shape::vector(ins[0].c()),
        Op::ConvTransposeGradInput(a) => {
            // dx = conv(dy, w); the forward must map dx back to dy.
            let (dy, w) = (&ins[0], &ins[1]);
            let dx = shape::conv_out_shape(dy, w, &a.window)?;
            let y = shape::conv_transpose_out_shape(&dx, w, &a.window)?;
            shape::check_grad_output(dy, &y, &dx, &a.window)?;
            dx
        }
        Op::ConvTransposeGradWeight(a) => {
            let (x, dy) = (&ins[0], &ins[1]);
            let dw = conv_weight_shape(x.c(), dy.c(), &a.window, x.is_3d());
            let y = shape::conv_transpose_out_shape(x, &dw, &a.window)?;
            shape::check_grad_output(dy, &y, x, &a.window)?;
            dw
        }
        op => return Err(foreign("conv", op)),
    };
    Ok(vec![out])
}

fn check_bias(a: &ConvAttrs, ins: &[Shape], y: &Shape) -> Check<()> {
    if a.bias {
        shape::check_vector("bias", &ins[2], y.c(), &ins[0])?;
    }
    Ok(())
}

/// The gradient rule of the family's forward ops.
fn grads(b: &mut Backward) -> Result<()> {
    let n = b.node;
    let (x, w) = (b.input(0), b.input(1));
    let (window, bias, transposed) = match &n.op {
        Op::Conv(a) | Op::ConvRelu(a) => (a.window, a.bias, false),
        Op::ConvTranspose(a) => (a.window, a.bias, true),
        _ => return Err(b.error(&foreign("conv", &n.op))),
    };
    let dy = b.dy()?;
    // ConvRelu: the ReLU's gradient first (its mask from the fused output).
    let dy = match n.op {
        Op::ConvRelu(_) => b.emit1("relu_dy", Op::ReluGrad, &[dy, b.output(0)])?,
        _ => dy,
    };
    if b.needs(0) {
        let op = if transposed {
            Op::ConvTransposeGradInput(WindowAttrs { window })
        } else {
            Op::ConvGradInput(WindowGradAttrs {
                window,
                input: b.shape(x),
            })
        };
        let dx = b.emit1("dx", op, &[dy, w])?;
        b.give(0, dx);
    }
    if b.needs(1) {
        let at = WindowAttrs { window };
        let op = if transposed {
            Op::ConvTransposeGradWeight(at)
        } else {
            Op::ConvGradWeight(at)
        };
        let dw = b.emit1("dw", op, &[x, dy])?;
        b.give(1, dw);
    }
    if bias && b.needs(2) {
        let db = b.emit1("db", Op::BiasGrad, &[dy])?;
        b.give(2, db);
    }
    Ok(())
}
