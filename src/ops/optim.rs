//! Optimiser updates, fused per parameter tensor (`kernels/optim.wgsl`),
//! PyTorch semantics: SGD (momentum, Nesterov, weight decay), Adam and AdamW
//! (bias-corrected, eps outside the square root).
//!
//! The updates work in place on the parameter and its state tensors, so they
//! have no allocating variant. Values that change every step (learning rate,
//! bias corrections) are read from a small `hyper` storage tensor that the
//! host rewrites before each submission ([`write_hyper`]); a training step
//! recorded once as a [`crate::gpu::Program`] is then replayed unchanged.
//! Static settings (the graph's [`SgdAttrs`], [`AdamAttrs`]) go into the
//! uniform params; they are checked by the same rules as the graph's update
//! nodes. One `hyper` tensor can serve every parameter of a model.

use super::norm::distinct;
use super::{checked, dummy, expect};
use crate::error::{Error, Result};
use crate::gpu::{Context, DType, Recorder, Tensor};
use crate::graph::ops::optim::check_update_size;
use crate::graph::ops::{AdamAttrs, SgdAttrs};
use crate::shape::{self, Shape};
use bytemuck::{Pod, Zeroable};

pub use crate::graph::ops::optim::{hyper_values, HYPER_LEN};

/// A zeroed `hyper` tensor (`[HYPER_LEN]` f32).
pub fn hyper_tensor(ctx: &Context) -> Result<Tensor> {
    Tensor::zeros(ctx, Shape::vector(HYPER_LEN), DType::F32)
}

/// Write `values` into `hyper` with `queue.write_buffer`; the write lands
/// before the next submission.
pub fn write_hyper(ctx: &Context, hyper: &Tensor, values: [f32; HYPER_LEN]) -> Result<()> {
    expect(
        "write_hyper",
        "hyper",
        hyper,
        Shape::vector(HYPER_LEN),
        DType::F32,
    )?;
    ctx.queue
        .write_buffer(hyper.buffer(), hyper.offset, bytemuck::cast_slice(&values));
    Ok(())
}

const NESTEROV: u32 = 1;
const MOMENTUM: u32 = 2;
const DECOUPLED: u32 = 4;
const AMP: u32 = 8;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct OptimParams {
    n: u32,
    flags: u32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
}

fn check(
    op: &'static str,
    param: &Tensor,
    grad: &Tensor,
    state: &[(&str, &Tensor)],
    hyper: &Tensor,
) -> Result<()> {
    expect(op, "param", param, param.shape, DType::F32)?;
    checked(op, check_update_size(&param.shape))?;
    let same =
        |what: &str, t: &Tensor| shape::check_same("parameter", &param.shape, what, &t.shape);
    checked(op, same("gradient", grad))?;
    expect(op, "grad", grad, param.shape, DType::F32)?;
    expect(op, "hyper", hyper, Shape::vector(HYPER_LEN), DType::F32)?;
    for (what, t) in state {
        checked(op, same("optimizer state", t))?;
        expect(op, what, t, param.shape, DType::F32)?;
        distinct(
            op,
            (what, t),
            &[("param", param), ("grad", grad), ("hyper", hyper)],
        )?;
    }
    distinct(op, ("param", param), &[("grad", grad), ("hyper", hyper)])
}

/// One SGD step in place: `d = g + wd*p`; with momentum `buf = momentum*buf + d` and
/// `upd = buf` (Nesterov: `d + momentum*buf`); `p -= lr*upd`, lr from `hyper[0]`.
/// `momentum_buf` (param's shape, zero-initialised) is required when `momentum != 0`.
pub fn sgd_update(
    rec: &mut Recorder,
    param: &Tensor,
    grad: &Tensor,
    momentum_buf: Option<&Tensor>,
    hyper: &Tensor,
    amp: Option<(&Tensor, &Tensor)>,
    cfg: &SgdAttrs,
) -> Result<()> {
    let op = "sgd";
    checked(op, cfg.check())?;
    let (flag, scaler) = amp_inputs(rec, op, cfg.amp, amp)?;
    let uses_buf = cfg.uses_velocity();
    let buf = match (uses_buf, momentum_buf) {
        (true, Some(b)) => Some(b),
        (true, None) => return Err(Error::shape(op, "momentum != 0 needs a momentum buffer")),
        (false, _) => None,
    };
    let state: Vec<(&str, &Tensor)> = buf.map(|b| ("momentum_buf", b)).into_iter().collect();
    check(op, param, grad, &state, hyper)?;
    let mut flags = 0;
    if uses_buf {
        flags |= MOMENTUM;
    }
    if cfg.nesterov {
        flags |= NESTEROV;
    }
    if cfg.amp {
        flags |= AMP;
    }
    let p = OptimParams {
        n: param.numel() as u32,
        flags,
        beta1: cfg.momentum,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    // Unused state bindings get a tiny scratch tensor (bound read_write twice, which is allowed).
    let unused = dummy(rec, DType::F32)?;
    let s1 = buf.unwrap_or(&unused);
    let g = rec.grid(param.numel().div_ceil(1024) as u64)?;
    rec.dispatch(
        "optim",
        "sgd",
        &[],
        &p,
        &[param, grad, s1, &unused, hyper, &flag, &scaler],
        g,
    )
}

/// The `(flag, scaler)` pair of a mixed-precision update (see `ops::amp`), or
/// one-word stand-ins the kernel does not read when `amp` is off.
fn amp_inputs(
    rec: &Recorder,
    op: &'static str,
    amp: bool,
    given: Option<(&Tensor, &Tensor)>,
) -> Result<(Tensor, Tensor)> {
    match (amp, given) {
        (true, Some((flag, scaler))) => {
            expect(op, "overflow flag", flag, Shape::vector(1), DType::U32)?;
            expect(op, "loss scaler", scaler, Shape::vector(4), DType::F32)?;
            Ok((flag.clone(), scaler.clone()))
        }
        (true, None) => Err(Error::shape(
            op,
            "a mixed-precision update needs the overflow flag and the loss scaler",
        )),
        (false, Some(_)) => Err(Error::shape(
            op,
            "overflow flag and loss scaler given to an update without amp",
        )),
        (false, None) => Ok((dummy(rec, DType::U32)?, dummy(rec, DType::F32)?)),
    }
}

/// One Adam / AdamW step in place, PyTorch semantics (see [`AdamAttrs`]); `exp_avg` and
/// `exp_avg_sq` (param's shape) start at zero; lr and the bias corrections come from `hyper`.
#[allow(clippy::too_many_arguments)] // the graph op's inputs, in order, then attributes
pub fn adam_update(
    rec: &mut Recorder,
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    hyper: &Tensor,
    amp: Option<(&Tensor, &Tensor)>,
    cfg: &AdamAttrs,
) -> Result<()> {
    let op = if cfg.decoupled { "adamw" } else { "adam" };
    checked(op, cfg.check())?;
    let (flag, scaler) = amp_inputs(rec, op, cfg.amp, amp)?;
    check(
        op,
        param,
        grad,
        &[("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)],
        hyper,
    )?;
    let p = OptimParams {
        n: param.numel() as u32,
        flags: if cfg.decoupled { DECOUPLED } else { 0 } | if cfg.amp { AMP } else { 0 },
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        one_minus_beta1: (1.0 - cfg.beta1 as f64) as f32,
        one_minus_beta2: (1.0 - cfg.beta2 as f64) as f32,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
    };
    let g = rec.grid(param.numel().div_ceil(1024) as u64)?;
    rec.dispatch(
        "optim",
        "adam",
        &[],
        &p,
        &[param, grad, exp_avg, exp_avg_sq, hyper, &flag, &scaler],
        g,
    )
}
