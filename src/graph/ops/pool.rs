//! Pooling family. Windows are floor mode with dilation 1 and `pad <= kernel/2`
//! per axis ([`crate::shape::check_pool_window`]).
//!
//! Forward
//! - `MaxPool(WindowAttrs)`: `x -> (y, indices: U32)`; `indices` holds, per
//!   `(n, c)`, the flat spatial index `(d*H + h)*W + w` of the maximum in `x`
//!   (first maximum wins); padded taps never win (implicit -inf).
//! - `AvgPool(AvgPoolAttrs)`: `x -> y`; padded taps count as zeros, divided by
//!   the full window (`count_include_pad`) or by the taps inside the input.
//! - `MaxUnpool(UnpoolAttrs)`: `(x, indices: U32) -> y` of spatial `size`,
//!   zero except `y[n,c,indices[i]] = x[i]`.
//!
//! Backward (emitted by autodiff)
//! - `MaxPoolGrad(WindowGradAttrs)`: `(dy, indices) -> dx` of shape `input`
//!   (scatter-add of dy at the argmax; overlapping windows accumulate).
//! - `AvgPoolGrad(AvgPoolGradAttrs)`: `dy -> dx` of shape `input`.
//! - `MaxUnpoolGrad`: `(dy, indices) -> dx[i] = dy[n,c,indices[i]]` (shape of indices).

use super::{foreign, Check, Op, OpSpec, Pass, Slot, WindowGradAttrs};
use crate::error::Result;
use crate::graph::autodiff::Backward;
use crate::shape::{self, Shape, Window};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPoolAttrs {
    pub window: Window,
    /// Divide by the full window size (true) or by the taps inside the input (false).
    pub count_include_pad: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPoolGradAttrs {
    pub pool: AvgPoolAttrs,
    pub input: Shape,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnpoolAttrs {
    /// Output spatial size `[D, H, W]`.
    pub size: [usize; 3],
}

const X: Slot = Slot::act("input");
const Y: Slot = Slot::act("output");
const IDX: Slot = Slot::indices("indices");
const DY: Slot = Slot::act("gradient");
const DX: Slot = Slot::act("input gradient");

const fn forward(name: &'static str, inputs: &'static [Slot], outputs: &'static [Slot]) -> OpSpec {
    OpSpec::new(name, Pass::Forward, inputs, outputs, shapes, Some(grads))
}

const fn backward(name: &'static str, inputs: &'static [Slot]) -> OpSpec {
    OpSpec::new(name, Pass::Backward, inputs, &[DX], shapes, None)
}

pub(super) const MAX_POOL: OpSpec = forward("MaxPool", &[X], &[Y, IDX]);
pub(super) const AVG_POOL: OpSpec = forward("AvgPool", &[X], &[Y]);
pub(super) const MAX_UNPOOL: OpSpec = forward("MaxUnpool", &[X, IDX], &[Y]);
pub(super) const MAX_POOL_GRAD: OpSpec = backward("MaxPoolGrad", &[DY, IDX]);
pub(super) const AVG_POOL_GRAD: OpSpec = backward("AvgPoolGrad", &[DY]);
pub(super) const MAX_UNPOOL_GRAD: OpSpec = backward("MaxUnpoolGrad", &[DY, IDX]);

/// The shape rule of the family.
fn shapes(op: &Op, ins: &[Shape]) -> Check<Vec<Shape>> {
    Ok(match op {
        Op::MaxPool(a) => {
            let y = shape::pool_out_shape(&ins[0], &a.window)?;
            vec![y, y]
        }
        Op::AvgPool(a) => vec![shape::pool_out_shape(&ins[0], &a.window)?],
        Op::MaxUnpool(a) => {
            let y = shape::unpool_out_shape(&ins[0], a.size)?;
            shape::check_unpool(&ins[0], &ins[1], &y)?;
            vec![y]
        }
        Op::MaxPoolGrad(a) => {
            shape::check_same("gradient", &ins[0], "indices", &ins[1])?;
            vec![pool_grad(&ins[0], &a.input, &a.window)?]
        }
        Op::AvgPoolGrad(a) => vec![pool_grad(&ins[0], &a.input, &a.pool.window)?],
        Op::MaxUnpoolGrad => {
            shape::check_unpool(&ins[1], &ins[1], &ins[0])?;
            vec![ins[1]]
        }
        op => return Err(foreign("pool", op)),
    })
}

/// The forward input `x` pooled with `win` must give `dy`; returns `x`.
fn pool_grad(dy: &Shape, x: &Shape, win: &Window) -> Check<Shape> {
    let y = shape::pool_out_shape(x, win)?;
    shape::check_grad_output(dy, &y, x, win)?;
    Ok(*x)
}

/// The gradient rule of the family's forward ops.
fn grads(b: &mut Backward) -> Result<()> {
    let n = b.node;
    let xs = b.shape(b.input(0));
    let (op, ins) = match &n.op {
        Op::MaxPool(a) => {
            let at = WindowGradAttrs {
                window: a.window,
                input: xs,
            };
            (Op::MaxPoolGrad(at), vec![b.dy()?, b.output(1)])
        }
        Op::AvgPool(a) => {
            let at = AvgPoolGradAttrs {
                pool: *a,
                input: xs,
            };
            (Op::AvgPoolGrad(at), vec![b.dy()?])
        }
        Op::MaxUnpool(_) => (Op::MaxUnpoolGrad, vec![b.dy()?, b.input(1)]),
        _ => return Err(b.error(&foreign("pool", &n.op))),
    };
    let dx = b.emit1("dx", op, &ins)?;
    b.give(0, dx);
    Ok(())
}
