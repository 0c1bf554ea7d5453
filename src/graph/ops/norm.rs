//! Normalisation family: batch, instance and group norm.
//!
//! Forward
//! - `BatchNorm(BatchNormAttrs)`: `(x, gamma[C], beta[C], running_mean[C],
//!   running_var[C]) -> (y, save_mean[C], save_invstd[C])`. Training: batch
//!   statistics (biased variance for normalising; more than one value per
//!   channel), running stats updated in place with `r = (1-momentum) r +
//!   momentum * batch` (unbiased variance, as PyTorch). Eval: the running
//!   stats normalise; the saved statistics are not computed (nothing may read
//!   them, see [`crate::graph::check_kernel_ops`]) and there is no backward.
//! - `InstanceNorm(NormAttrs)`: `(x, gamma[C], beta[C]) -> (y, mean[N,C], invstd[N,C])`;
//!   more than one spatial value per `(n, c)`.
//! - `GroupNorm(GroupNormAttrs)`: `(x, gamma[C], beta[C]) -> (y, mean[N,G], invstd[N,G])`.
//!
//! Backward (emitted by autodiff)
//! - `BatchNormGrad(BatchNormAttrs)`: `(dy, x, gamma, save_mean, save_invstd)
//!   -> (dx, dgamma[C], dbeta[C])`, training mode only.
//! - `InstanceNormGrad(NormAttrs)`, `GroupNormGrad(GroupNormAttrs)`: as
//!   BatchNormGrad with per-(n, c) / per-(n, group) statistics.
//!
//! Fused with a ReLU (written by `graph::fuse`, see there)
//! - `BatchNormRelu(BatchNormAttrs)`: as `BatchNorm`, with `y = relu(bn(x))`.
//! - `BatchNormReluGrad(BatchNormAttrs)`: `(dy, x, gamma, save_mean,
//!   save_invstd, y) -> (dx, dgamma, dbeta)`: `BatchNormGrad` of the masked
//!   gradient `dy * (y > 0)` (`y` the fused forward's output), without
//!   writing the masked gradient.

use super::{foreign, Check, Op, OpSpec, Pass, Slot};
use crate::error::Result;
use crate::graph::autodiff::Backward;
use crate::shape::{self, group_norm_stats_shape, Shape};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormAttrs {
    pub training: bool,
    pub momentum: f32,
    pub eps: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormAttrs {
    pub eps: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupNormAttrs {
    pub groups: usize,
    pub eps: f32,
}

/// `eps` must be finite and >= 0.
pub fn check_eps(eps: f32) -> Check<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(format!("eps must be finite and >= 0, got {eps}"));
    }
    Ok(())
}

/// The batch-norm momentum must be finite.
pub fn check_momentum(momentum: f32) -> Check<()> {
    if !momentum.is_finite() {
        return Err(format!("momentum must be finite, got {momentum}"));
    }
    Ok(())
}

const X: Slot = Slot::act("input");
const GAMMA: Slot = Slot::f32("gamma");
const BETA: Slot = Slot::f32("beta");
const RUNNING_MEAN: Slot = Slot::f32("running_mean");
const RUNNING_VAR: Slot = Slot::f32("running_var");
const Y: Slot = Slot::act("output");
const MEAN: Slot = Slot::f32("saved mean");
const INVSTD: Slot = Slot::f32("saved invstd");
const DY: Slot = Slot::act("gradient");
const DX: Slot = Slot::act("input gradient");
const DGAMMA: Slot = Slot::f32("gamma gradient");
const DBETA: Slot = Slot::f32("beta gradient");
const Y_MASK: Slot = Slot::act("output");

const fn forward(name: &'static str, inputs: &'static [Slot]) -> OpSpec {
    OpSpec::new(
        name,
        Pass::Forward,
        inputs,
        &[Y, MEAN, INVSTD],
        shapes,
        Some(grads),
    )
}

const fn backward(name: &'static str) -> OpSpec {
    OpSpec::new(
        name,
        Pass::Backward,
        &[DY, X, GAMMA, MEAN, INVSTD],
        &[DX, DGAMMA, DBETA],
        shapes,
        None,
    )
}

/// Training mode updates the running statistics (inputs 3 and 4) in place.
pub(super) fn batch_norm(a: &BatchNormAttrs) -> OpSpec {
    let spec = forward("BatchNorm", &[X, GAMMA, BETA, RUNNING_MEAN, RUNNING_VAR]);
    if a.training {
        spec.mutating(&[3, 4])
    } else {
        spec
    }
}
/// As [`batch_norm`], the output through a ReLU.
pub(super) fn batch_norm_relu(a: &BatchNormAttrs) -> OpSpec {
    let spec = forward(
        "BatchNormRelu",
        &[X, GAMMA, BETA, RUNNING_MEAN, RUNNING_VAR],
    );
    if a.training {
        spec.mutating(&[3, 4])
    } else {
        spec
    }
}
pub(super) const BATCH_NORM_RELU_GRAD: OpSpec = OpSpec::new(
    "BatchNormReluGrad",
    Pass::Backward,
    &[DY, X, GAMMA, MEAN, INVSTD, Y_MASK],
    &[DX, DGAMMA, DBETA],
    shapes,
    None,
);
pub(super) const INSTANCE_NORM: OpSpec = forward("InstanceNorm", &[X, GAMMA, BETA]);
pub(super) const GROUP_NORM: OpSpec = forward("GroupNorm", &[X, GAMMA, BETA]);
pub(super) const BATCH_NORM_GRAD: OpSpec = backward("BatchNormGrad");
pub(super) const INSTANCE_NORM_GRAD: OpSpec = backward("InstanceNormGrad");
pub(super) const GROUP_NORM_GRAD: OpSpec = backward("GroupNormGrad");

/// The shape rule of the family.
fn shapes(op: &Op, ins: &[Shape]) -> Check<Vec<Shape>> {
    match op {
        Op::BatchNorm(a) | Op::BatchNormRelu(a) => {
            let x = &ins[0];
            check_input(x, ins)?;
            shape::check_vector("running_mean", &ins[3], x.c(), x)?;
            shape::check_vector("running_var", &ins[4], x.c(), x)?;
            check_eps(a.eps)?;
            if a.training {
                check_momentum(a.momentum)?;
                shape::check_batch_norm_train(x)?;
            }
            Ok(outputs(x, Shape::vector(x.c())))
        }
        Op::InstanceNorm(a) => {
            let x = &ins[0];
            check_input(x, ins)?;
            check_eps(a.eps)?;
            shape::check_instance_norm(x)?;
            Ok(outputs(x, group_norm_stats_shape(x, x.c())))
        }
        Op::GroupNorm(a) => {
            let x = &ins[0];
            check_input(x, ins)?;
            check_eps(a.eps)?;
            shape::check_groups(x, a.groups)?;
            Ok(outputs(x, group_norm_stats_shape(x, a.groups)))
        }
        Op::BatchNormGrad(a) | Op::BatchNormReluGrad(a) => {
            if !a.training {
                return Err("backward through eval-mode batch norm is not supported".into());
            }
            if let Some(y) = ins.get(5) {
                shape::check_same("output", y, "input", &ins[1])?;
            }
            grad_shapes(ins, Shape::vector(ins[1].c()))
        }
        Op::InstanceNormGrad(_) => grad_shapes(ins, group_norm_stats_shape(&ins[1], ins[1].c())),
        Op::GroupNormGrad(a) => {
            shape::check_groups(&ins[1], a.groups)?;
            grad_shapes(ins, group_norm_stats_shape(&ins[1], a.groups))
        }
        op => Err(foreign("norm", op)),
    }
}

/// `x` (indexable) and its per-channel affine parameters `ins[1..3]`.
fn check_input(x: &Shape, ins: &[Shape]) -> Check<()> {
    shape::check_indexable("input", x)?;
    shape::check_vector("gamma", &ins[1], x.c(), x)?;
    shape::check_vector("beta", &ins[2], x.c(), x)
}

/// `(y, mean, invstd)`.
fn outputs(x: &Shape, stats: Shape) -> Vec<Shape> {
    vec![*x, stats, stats]
}

/// `(dy, x, gamma, mean, invstd) -> (dx, dgamma, dbeta)` with statistics of shape `stats`.
fn grad_shapes(ins: &[Shape], stats: Shape) -> Check<Vec<Shape>> {
    let (dy, x) = (&ins[0], &ins[1]);
    shape::check_indexable("input", x)?;
    shape::check_same("gradient", dy, "input", x)?;
    shape::check_vector("gamma", &ins[2], x.c(), x)?;
    shape::check_stats("saved mean", &ins[3], &stats, x)?;
    shape::check_stats("saved invstd", &ins[4], &stats, x)?;
    let cv = Shape::vector(x.c());
    Ok(vec![*x, cv, cv])
}

/// The gradient rule of the family's forward ops: one gradient node for the
/// input, gamma and beta.
fn grads(b: &mut Backward) -> Result<()> {
    let n = b.node;
    let op = match &n.op {
        Op::BatchNorm(a) => Op::BatchNormGrad(*a),
        Op::BatchNormRelu(a) => Op::BatchNormReluGrad(*a),
        Op::InstanceNorm(a) => Op::InstanceNormGrad(*a),
        Op::GroupNorm(a) => Op::GroupNormGrad(*a),
        _ => return Err(b.error(&foreign("norm", &n.op))),
    };
    let mut ins = vec![b.dy()?, b.input(0), b.input(1), b.output(1), b.output(2)];
    if matches!(op, Op::BatchNormReluGrad(_)) {
        ins.push(b.output(0));
    }
    let d = b.emit("d", op, &ins)?;
    for (i, v) in d.into_iter().enumerate() {
        b.give(i, v);
    }
    Ok(())
}
