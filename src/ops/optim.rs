//! Optimiser updates, fused per parameter tensor (`kernels/optim.wgsl`),
//! PyTorch semantics: SGD (momentum, Nesterov, weight decay), Adam and AdamW
//! (bias-corrected, eps outside the square root).
//!
//! The updates work in place on the parameter and its state tensors, so they
//! have no allocating variant. Values that change every step (learning rate,
//! bias corrections) are read from a small `hyper` storage tensor that the
//! host rewrites before each submission ([`write_hyper`]); a training step
//! recorded once as a [`crate::gpu::Program`] is then replayed unchanged.
//! Static settings ([`Sgd`], [`Adam`]; f64 like PyTorch's Python floats, so the
//! bias corrections match) go into the uniform params. One
//! `hyper` tensor can serve every parameter of a model.

use super::expect;
use super::norm::distinct;
use crate::error::{Error, Result};
use crate::gpu::{Context, DType, Recorder, Tensor};
use crate::shape::Shape;
use bytemuck::{Pod, Zeroable};

/// Length of the `hyper` tensor: `[lr, 1 - beta1^t, 1 - beta2^t, t]`.
pub const HYPER_LEN: usize = 4;

/// SGD settings (dampening 0, as PyTorch's default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl Default for Sgd {
    /// nnU-Net's choice: momentum 0.99, Nesterov, weight decay 3e-5.
    fn default() -> Self {
        Sgd {
            momentum: 0.99,
            weight_decay: 3e-5,
            nesterov: true,
        }
    }
}

/// Adam / AdamW settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW: decay the parameter by `lr*weight_decay` instead of adding
    /// `weight_decay*p` to the gradient.
    pub decoupled: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

/// `hyper` values for update number `step` (1 for the first update) at learning rate `lr`:
/// `[lr, 1 - beta1^step, 1 - beta2^step, step]` (bias corrections computed in f64).
pub fn hyper_values(step: u64, lr: f32, beta1: f64, beta2: f64) -> [f32; HYPER_LEN] {
    let t = step.min(i32::MAX as u64) as i32;
    let bc = |b: f64| (1.0 - b.powi(t)) as f32;
    [lr, bc(beta1), bc(beta2), step as f32]
}

impl Sgd {
    /// `hyper` values for update number `step` at learning rate `lr`.
    pub fn hyper(&self, step: u64, lr: f32) -> [f32; HYPER_LEN] {
        hyper_values(step, lr, 0.0, 0.0)
    }
}

impl Adam {
    /// `hyper` values for update number `step` (1 for the first) at learning rate `lr`.
    pub fn hyper(&self, step: u64, lr: f32) -> [f32; HYPER_LEN] {
        hyper_values(step, lr, self.beta1, self.beta2)
    }
}

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
    if param.numel() > u32::MAX as usize - 2048 {
        return Err(Error::shape(
            op,
            format!(
                "param {} has too many elements for 32-bit indexing",
                param.shape
            ),
        ));
    }
    expect(op, "grad", grad, param.shape, DType::F32)?;
    expect(op, "hyper", hyper, Shape::vector(HYPER_LEN), DType::F32)?;
    for (what, t) in state {
        expect(op, what, t, param.shape, DType::F32)?;
        distinct(
            op,
            (what, t),
            &[("param", param), ("grad", grad), ("hyper", hyper)],
        )?;
    }
    distinct(op, ("param", param), &[("grad", grad), ("hyper", hyper)])
}

fn finite(op: &'static str, vals: &[(&str, f64)]) -> Result<()> {
    for (what, v) in vals {
        if !v.is_finite() {
            return Err(Error::shape(op, format!("{what} must be finite, got {v}")));
        }
    }
    Ok(())
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
    cfg: &Sgd,
) -> Result<()> {
    let op = "sgd";
    finite(
        op,
        &[
            ("momentum", cfg.momentum),
            ("weight_decay", cfg.weight_decay),
        ],
    )?;
    let uses_buf = cfg.momentum != 0.0;
    let buf = match (uses_buf, momentum_buf) {
        (true, Some(b)) => Some(b),
        (true, None) => return Err(Error::shape(op, "momentum != 0 needs a momentum buffer")),
        (false, _) => None,
    };
    let state: Vec<(&str, &Tensor)> = buf.map(|b| ("momentum_buf", b)).into_iter().collect();
    check(op, param, grad, &state, hyper)?;
    if cfg.nesterov && !uses_buf {
        return Err(Error::shape(op, "Nesterov momentum needs momentum != 0"));
    }
    let mut flags = 0;
    if uses_buf {
        flags |= MOMENTUM;
    }
    if cfg.nesterov {
        flags |= NESTEROV;
    }
    let p = OptimParams {
        n: param.numel() as u32,
        flags,
        beta1: cfg.momentum as f32,
        weight_decay: cfg.weight_decay as f32,
        ..Default::default()
    };
    // Unused state bindings get a tiny scratch tensor (bound read_write twice, which is allowed).
    let dummy = Tensor::empty(rec.ctx, Shape::vector(1), DType::F32)?;
    let s1 = buf.unwrap_or(&dummy);
    let g = rec.grid(param.numel().div_ceil(1024) as u64)?;
    rec.dispatch(
        "optim",
        "sgd",
        &[],
        &p,
        &[param, grad, s1, &dummy, hyper],
        g,
    )
}

/// One Adam / AdamW step in place, PyTorch semantics (see [`Adam`]); `exp_avg` and
/// `exp_avg_sq` (param's shape) start at zero; lr and the bias corrections come from `hyper`.
pub fn adam_update(
    rec: &mut Recorder,
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    hyper: &Tensor,
    cfg: &Adam,
) -> Result<()> {
    let op = if cfg.decoupled { "adamw" } else { "adam" };
    finite(
        op,
        &[
            ("beta1", cfg.beta1),
            ("beta2", cfg.beta2),
            ("eps", cfg.eps),
            ("weight_decay", cfg.weight_decay),
        ],
    )?;
    if !(0.0..1.0).contains(&cfg.beta1) || !(0.0..1.0).contains(&cfg.beta2) {
        return Err(Error::shape(
            op,
            format!(
                "betas must be in [0, 1), got ({}, {})",
                cfg.beta1, cfg.beta2
            ),
        ));
    }
    check(
        op,
        param,
        grad,
        &[("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)],
        hyper,
    )?;
    let p = OptimParams {
        n: param.numel() as u32,
        flags: if cfg.decoupled { DECOUPLED } else { 0 },
        beta1: cfg.beta1 as f32,
        beta2: cfg.beta2 as f32,
        one_minus_beta1: (1.0 - cfg.beta1) as f32,
        one_minus_beta2: (1.0 - cfg.beta2) as f32,
        eps: cfg.eps as f32,
        weight_decay: cfg.weight_decay as f32,
    };
    let g = rec.grid(param.numel().div_ceil(1024) as u64)?;
    rec.dispatch(
        "optim",
        "adam",
        &[],
        &p,
        &[param, grad, exp_avg, exp_avg_sq, hyper],
        g,
    )
}
