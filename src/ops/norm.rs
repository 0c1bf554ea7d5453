//! Batch, instance and group normalisation, forward and backward, 2D and 3D.
//!
//! One design serves all three (see the header of `kernels/norm_stats.wgsl`):
//! x is seen as planes `(n, c)` of `S = D*H*W` values, and a "set" (what one
//! mean and variance are taken over) is a union of planes: a channel over the
//! batch (batch norm), the `C/G` channels of one group of one sample (group
//! norm), or one plane (instance norm = group norm with `G = C`).
//!
//! | step      | dispatches                                                        |
//! |-----------|-------------------------------------------------------------------|
//! | forward   | `norm_stats::partials`, `norm_stats::combine`, `norm_apply::normalize` |
//! | backward  | `norm_grad::partials`, `norm_grad::combine`, `norm_apply::grad_input`  |
//! | BN eval   | `norm_apply::normalize` (forward); backward as above with constant statistics |
//!
//! Reductions are two-level: per (plane, chunk) partials in f32 (an exact
//! two-pass mean / centred sum of squares over each chunk), then a
//! Chan-style merge per set, so large `m` and large offsets stay accurate.
//! The reduction of one set is spread over many workgroups; a small item (a short
//! plane, a set of few partials) gets fewer lanes and shares its workgroup with
//! the next items (the kernels' "Lanes"), so the deep levels of a U-Net do not
//! pay a workgroup and its barriers per 16-value plane.
//!
//! Dtypes: `x`, `y`, `dy` (`g`) and `dx` are activations, F32 or F16, one
//! dtype per call (`act_dtype` in `crate::ops`); `gamma`, `beta`, the running and
//! saved statistics, `dgamma` and `dbeta` are F32. Every sum is taken in f32.
//!
//! Arguments follow the graph's ops: inputs in the order of `BatchNorm`,
//! `BatchNormGrad` (`dy` first) etc., then attributes, then outputs. The
//! validity rules are [`crate::shape`]'s, shared with the graph.

use super::{act_dtype, alloc_act, checked, expect};
use crate::error::{Error, Result};
use crate::gpu::{AdapterClass, DType, Recorder, Tensor};
use crate::shape::{self, batch_norm_count, group_norm_count, Shape};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// PyTorch's default `eps`.
pub const NORM_EPS: f32 = 1e-5;
/// PyTorch's default batch-norm momentum (weight of the new statistic).
pub const BN_MOMENTUM: f32 = 0.1;

const UPDATE_RUNNING: u32 = 1;
pub(super) const VAR_INPUT: u32 = 2;
pub(super) const CONST_STATS: u32 = 4;

/// Uniform block of the three norm kernels (see `kernels/norm_stats.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
pub(super) struct NormParams {
    s: u32,
    c: u32,
    planes: u32,
    chunk: u32,
    pub(super) cpp: u32,
    sets: u32,
    pps: u32,
    flags: u32,
    set_a: u32,
    set_b: u32,
    set_q: u32,
    set_r: u32,
    eps: f32,
    momentum: f32,
    unbias: f32,
    inv_m: f32,
    pub(super) sums_off: u32,
    /// Offset of the copy of gamma in the backward's part buffer (`norm_grad.wgsl`).
    pub(super) gamma_off: u32,
    /// log2 of the lanes per (plane, chunk) item of partials and the elementwise passes.
    item_lanes: u32,
    /// log2 of the lanes per set (per output item) of combine.
    set_lanes: u32,
}

/// How planes group into sets.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    s: usize,
    pub(super) c: usize,
    pub(super) planes: usize,
    pub(super) sets: usize,
    pps: usize,
    set_a: usize,
    set_b: usize,
    set_q: usize,
    set_r: usize,
    m: usize,
}

impl Layout {
    pub(super) fn batch(x: &Shape) -> Self {
        let c = x.c();
        Layout {
            s: x.spatial_numel(),
            c,
            planes: x.n() * c,
            sets: c,
            pps: x.n(),
            set_a: 1,
            set_b: c,
            set_q: 1,
            set_r: c,
            m: batch_norm_count(x),
        }
    }
    pub(super) fn groups(x: &Shape, groups: usize) -> Self {
        let c = x.c();
        let cg = c / groups;
        Layout {
            s: x.spatial_numel(),
            c,
            planes: x.n() * c,
            sets: x.n() * groups,
            pps: cg,
            set_a: cg,
            set_b: 1,
            set_q: cg,
            set_r: x.n() * groups,
            m: group_norm_count(x, groups),
        }
    }

    /// Values per workgroup: reductions (`reduce`) or elementwise passes. CPU
    /// adapters get long chunks (few workgroups, few barriers); GPUs shorter
    /// ones (many workgroups in flight). Reductions grow the chunk so a set
    /// has at most ~1024 partials.
    pub(super) fn chunk(&self, class: AdapterClass, reduce: bool) -> usize {
        let base = match (class, reduce) {
            (AdapterClass::Cpu, _) => 8192,
            (AdapterClass::Gpu, true) => 2048,
            (AdapterClass::Gpu, false) => 1024,
        };
        let mut chunk = base;
        if reduce {
            while chunk < self.s && self.pps * self.s.div_ceil(chunk) > 1024 {
                chunk *= 2;
            }
        }
        chunk.min(self.s.max(1))
    }

    pub(super) fn params(&self, chunk: usize, flags: u32, eps: f32) -> NormParams {
        NormParams {
            s: self.s as u32,
            c: self.c as u32,
            planes: self.planes as u32,
            chunk: chunk as u32,
            cpp: self.s.div_ceil(chunk) as u32,
            sets: self.sets as u32,
            pps: self.pps as u32,
            flags,
            set_a: self.set_a as u32,
            set_b: self.set_b as u32,
            set_q: self.set_q as u32,
            set_r: self.set_r as u32,
            eps,
            momentum: 0.0,
            unbias: if self.m > 1 {
                (self.m as f64 / (self.m - 1) as f64) as f32
            } else {
                1.0
            },
            inv_m: (1.0 / self.m as f64) as f32,
            sums_off: 0,
            gamma_off: 0,
            item_lanes: lanes_log2(chunk.min(self.s)),
            set_lanes: lanes_log2(
                self.pps.max(self.planes / self.c.max(1)) * self.s.div_ceil(chunk),
            ),
        }
    }
}

/// log2 of [`super::lanes_for`] an item of `len` values, at most 64 (the kernels' headers,
/// "Lanes").
fn lanes_log2(len: usize) -> u32 {
    super::lanes_for(len, 64).trailing_zeros()
}

impl NormParams {
    /// Workgroups (64 invocations) for the (plane, chunk) items of partials and the
    /// elementwise passes.
    pub(super) fn item_groups(&self) -> u64 {
        (self.planes as u64 * self.cpp as u64).div_ceil(64 >> self.item_lanes)
    }

    /// Workgroups for `items` items of combine (sets, or sets + channels).
    pub(super) fn set_groups(&self, items: usize) -> u64 {
        (items as u64).div_ceil(64 >> self.set_lanes)
    }
}

pub(super) fn scratch(rec: &Recorder, len: usize) -> Result<Tensor> {
    Tensor::empty(rec.ctx, Shape::vector(len.max(1)), DType::F32)
}

pub(super) fn distinct(
    op: &'static str,
    out: (&str, &Tensor),
    inputs: &[(&str, &Tensor)],
) -> Result<()> {
    for (name, t) in inputs {
        if Arc::ptr_eq(&out.1.storage, &t.storage) {
            return Err(Error::shape(
                op,
                format!(
                    "{} must not share storage with {name} (in-place is not supported)",
                    out.0
                ),
            ));
        }
    }
    Ok(())
}

/// `x` (indexable) and the other activations of the call (`acts`: y, or dy
/// and dx) share one activation dtype, returned; the per-channel tensors
/// (`gamma`, `extra`) are `[C]`, F32.
pub(super) fn check_common(
    op: &'static str,
    x: &Tensor,
    acts: &[(&str, &Tensor)],
    gamma: &Tensor,
    extra: &[(&str, &Tensor)],
) -> Result<DType> {
    let mut all = vec![("input", x)];
    all.extend_from_slice(acts);
    let act = act_dtype(op, &all)?;
    checked(op, shape::check_indexable("input", &x.shape))?;
    let cv = Shape::vector(x.shape.c());
    for (what, t) in std::iter::once(&("gamma", gamma)).chain(extra) {
        checked(
            op,
            shape::check_vector(what, &t.shape, x.shape.c(), &x.shape),
        )?;
        expect(op, what, t, cv, DType::F32)?;
    }
    Ok(act)
}

pub(super) fn check_eps(op: &'static str, eps: f32) -> Result<()> {
    checked(op, crate::graph::ops::norm::check_eps(eps))
}

pub(super) fn bn_name(x: &Shape) -> &'static str {
    if x.is_3d() {
        "batch_norm3d"
    } else {
        "batch_norm2d"
    }
}

pub(super) fn check_groups(op: &'static str, x: &Shape, groups: usize) -> Result<()> {
    checked(op, shape::check_groups(x, groups))
}

// ------------------------------------------------------------------ dispatch

/// Statistics of every set into `mean`, `invstd`; with `running` also the
/// batch-norm running-statistics update.
pub(super) fn dispatch_stats(
    rec: &mut Recorder,
    lay: &Layout,
    x: &Tensor,
    eps: f32,
    running: Option<(&Tensor, &Tensor, f32)>,
    mean: &Tensor,
    invstd: &Tensor,
) -> Result<()> {
    let chunk = lay.chunk(rec.ctx.class, true);
    let mut p = lay.params(
        chunk,
        if running.is_some() { UPDATE_RUNNING } else { 0 },
        eps,
    );
    let part = scratch(rec, lay.planes * p.cpp as usize * 2)?;
    let dummy;
    let (rm, rv) = match running {
        Some((rm, rv, mo)) => {
            p.momentum = mo;
            (rm, rv)
        }
        None => {
            dummy = scratch(rec, 1)?;
            (&dummy, &dummy)
        }
    };
    let g = rec.grid(p.item_groups())?;
    rec.dispatch(
        "norm_stats",
        "partials",
        &[],
        &p,
        &[x, &part, mean, invstd, rm, rv],
        g,
    )?;
    let g = rec.grid(p.set_groups(lay.sets))?;
    rec.dispatch(
        "norm_stats",
        "combine",
        &[],
        &p,
        &[x, &part, mean, invstd, rm, rv],
        g,
    )
}

/// `y = (x - mean)*invstd*gamma + beta`; with `var_input` the `invstd` tensor holds variances.
#[allow(clippy::too_many_arguments)]
pub(super) fn dispatch_normalize(
    rec: &mut Recorder,
    lay: &Layout,
    x: &Tensor,
    mean: &Tensor,
    invstd: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
    var_input: bool,
    y: &Tensor,
) -> Result<()> {
    let stats = (mean, invstd, var_input);
    super::norm_relu::dispatch_normalize_relu(rec, lay, x, stats, gamma, beta, eps, false, y)
}

/// Backward; `eval` = batch norm with the running statistics (constants; `invstd` holds variances).
#[allow(clippy::too_many_arguments)]
pub(super) fn dispatch_backward(
    rec: &mut Recorder,
    lay: &Layout,
    x: &Tensor,
    g: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    invstd: &Tensor,
    eps: f32,
    eval: bool,
    dx: &Tensor,
    dgamma: &Tensor,
    dbeta: &Tensor,
) -> Result<()> {
    let grads = (dx, dgamma, dbeta);
    let stats = (mean, invstd);
    super::norm_relu::dispatch_backward_masked(rec, lay, x, g, None, gamma, stats, eps, eval, grads)
}

// ------------------------------------------------------------------ batch norm

/// Batch norm, training mode, into `y` (x's shape) and the saved `save_mean`,
/// `save_invstd` (`[C]`, for the backward); `running_mean` / `running_var`
/// (`[C]`) are updated in place: `r = (1-momentum)*r + momentum*stat`, the
/// variance unbiased (`var*m/(m-1)`). `m = N*D*H*W` must be at least 2.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train_into(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    momentum: f32,
    eps: f32,
    y: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
) -> Result<()> {
    let running = (running_mean, running_var, momentum);
    let saved = (save_mean, save_invstd);
    let lay = check_train(x, gamma, beta, running, eps, y, saved)?;
    dispatch_stats(rec, &lay, x, eps, Some(running), save_mean, save_invstd)?;
    dispatch_normalize(
        rec,
        &lay,
        x,
        save_mean,
        save_invstd,
        gamma,
        beta,
        eps,
        false,
        y,
    )
}

/// The checks of [`batch_norm_train_into`] (`running`: mean, variance,
/// momentum; `saved`: mean, invstd); its layout.
pub(super) fn check_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running: (&Tensor, &Tensor, f32),
    eps: f32,
    y: &Tensor,
    saved: (&Tensor, &Tensor),
) -> Result<Layout> {
    let ((running_mean, running_var, momentum), (save_mean, save_invstd)) = (running, saved);
    let op = bn_name(&x.shape);
    let act = check_common(
        op,
        x,
        &[("output", y)],
        gamma,
        &[
            ("beta", beta),
            ("running_mean", running_mean),
            ("running_var", running_var),
        ],
    )?;
    check_eps(op, eps)?;
    checked(op, crate::graph::ops::norm::check_momentum(momentum))?;
    checked(op, shape::check_batch_norm_train(&x.shape))?;
    expect(op, "output", y, x.shape, act)?;
    let cv = Shape::vector(x.shape.c());
    expect(op, "save_mean", save_mean, cv, DType::F32)?;
    expect(op, "save_invstd", save_invstd, cv, DType::F32)?;
    distinct(
        op,
        ("output", y),
        &[("input", x), ("gamma", gamma), ("beta", beta)],
    )?;
    Ok(Layout::batch(&x.shape))
}

/// A forward's outputs: `y` and the saved statistics for the backward.
#[derive(Debug)]
pub struct NormOutput {
    pub y: Tensor,
    pub save_mean: Tensor,
    pub save_invstd: Tensor,
}

/// A backward's outputs.
#[derive(Debug)]
pub struct NormGrads {
    pub dx: Tensor,
    pub dgamma: Tensor,
    pub dbeta: Tensor,
}

/// Outputs for input `x`: `y` in `x`'s activation dtype, F32 statistics of shape `stats`.
pub(super) fn alloc_out(rec: &Recorder, x: &Tensor, stats: Shape) -> Result<NormOutput> {
    Ok(NormOutput {
        y: alloc_act(rec, x.shape, x)?,
        save_mean: Tensor::empty(rec.ctx, stats, DType::F32)?,
        save_invstd: Tensor::empty(rec.ctx, stats, DType::F32)?,
    })
}

/// Gradients for input `x`: `dx` in `x`'s activation dtype, F32 `dgamma`, `dbeta`.
pub(super) fn alloc_grads(rec: &Recorder, x: &Tensor) -> Result<NormGrads> {
    let cv = Shape::vector(x.shape.c());
    Ok(NormGrads {
        dx: alloc_act(rec, x.shape, x)?,
        dgamma: Tensor::empty(rec.ctx, cv, DType::F32)?,
        dbeta: Tensor::empty(rec.ctx, cv, DType::F32)?,
    })
}

/// Batch norm, training mode (allocating variant of [`batch_norm_train_into`]).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    momentum: f32,
    eps: f32,
) -> Result<NormOutput> {
    let o = alloc_out(rec, x, Shape::vector(x.shape.c()))?;
    batch_norm_train_into(
        rec,
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        momentum,
        eps,
        &o.y,
        &o.save_mean,
        &o.save_invstd,
    )?;
    Ok(o)
}

/// Batch norm, eval mode, into `y`: `y = (x - running_mean)/sqrt(running_var + eps)*gamma + beta`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_eval_into(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f32,
    y: &Tensor,
) -> Result<()> {
    check_eval(x, gamma, beta, (running_mean, running_var), eps, y)?;
    dispatch_normalize(
        rec,
        &Layout::batch(&x.shape),
        x,
        running_mean,
        running_var,
        gamma,
        beta,
        eps,
        true,
        y,
    )
}

/// The checks of [`batch_norm_eval_into`] (`running`: mean, variance).
pub(super) fn check_eval(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running: (&Tensor, &Tensor),
    eps: f32,
    y: &Tensor,
) -> Result<()> {
    let (running_mean, running_var) = running;
    let op = bn_name(&x.shape);
    let act = check_common(
        op,
        x,
        &[("output", y)],
        gamma,
        &[
            ("beta", beta),
            ("running_mean", running_mean),
            ("running_var", running_var),
        ],
    )?;
    check_eps(op, eps)?;
    expect(op, "output", y, x.shape, act)?;
    distinct(
        op,
        ("output", y),
        &[
            ("input", x),
            ("gamma", gamma),
            ("beta", beta),
            ("running_mean", running_mean),
            ("running_var", running_var),
        ],
    )
}

pub fn batch_norm_eval(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    let y = alloc_act(rec, x.shape, x)?;
    batch_norm_eval_into(rec, x, gamma, beta, running_mean, running_var, eps, &y)?;
    Ok(y)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn check_backward(
    op: &'static str,
    g: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    stats: Shape,
    mean: &Tensor,
    invstd: &Tensor,
    dx: &Tensor,
    dgamma: &Tensor,
    dbeta: &Tensor,
) -> Result<()> {
    let act = check_common(
        op,
        x,
        &[("grad_output", g), ("grad_input", dx)],
        gamma,
        &[("dgamma", dgamma), ("dbeta", dbeta)],
    )?;
    checked(
        op,
        shape::check_same("gradient", &g.shape, "input", &x.shape),
    )?;
    expect(op, "grad_output", g, x.shape, act)?;
    expect(op, "grad_input", dx, x.shape, act)?;
    checked(
        op,
        shape::check_stats("saved mean", &mean.shape, &stats, &x.shape),
    )?;
    checked(
        op,
        shape::check_stats("saved invstd", &invstd.shape, &stats, &x.shape),
    )?;
    expect(op, "mean", mean, stats, DType::F32)?;
    expect(op, "invstd", invstd, stats, DType::F32)?;
    distinct(
        op,
        ("grad_input", dx),
        &[("input", x), ("grad_output", g), ("gamma", gamma)],
    )?;
    Ok(())
}

/// Gradients of [`batch_norm_train_into`] (through the batch statistics):
/// `dx = gamma*invstd/m*(m*g - sum(g) - xhat*sum(g*xhat))`, `dgamma = sum(g*xhat)`, `dbeta = sum(g)`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train_backward_into(
    rec: &mut Recorder,
    g: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
    dx: &Tensor,
    dgamma: &Tensor,
    dbeta: &Tensor,
) -> Result<()> {
    let op = bn_name(&x.shape);
    check_backward(
        op,
        g,
        x,
        gamma,
        Shape::vector(x.shape.c()),
        save_mean,
        save_invstd,
        dx,
        dgamma,
        dbeta,
    )?;
    dispatch_backward(
        rec,
        &Layout::batch(&x.shape),
        x,
        g,
        gamma,
        save_mean,
        save_invstd,
        0.0,
        false,
        dx,
        dgamma,
        dbeta,
    )
}

pub fn batch_norm_train_backward(
    rec: &mut Recorder,
    g: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
) -> Result<NormGrads> {
    let o = alloc_grads(rec, x)?;
    batch_norm_train_backward_into(
        rec,
        g,
        x,
        gamma,
        save_mean,
        save_invstd,
        &o.dx,
        &o.dgamma,
        &o.dbeta,
    )?;
    Ok(o)
}

/// Gradients of [`batch_norm_eval_into`]: `dx = g*gamma*invstd`, `dgamma = sum(g*xhat)`, `dbeta = sum(g)`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_eval_backward_into(
    rec: &mut Recorder,
    g: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f32,
    dx: &Tensor,
    dgamma: &Tensor,
    dbeta: &Tensor,
) -> Result<()> {
    let op = bn_name(&x.shape);
    check_eps(op, eps)?;
    check_backward(
        op,
        g,
        x,
        gamma,
        Shape::vector(x.shape.c()),
        running_mean,
        running_var,
        dx,
        dgamma,
        dbeta,
    )?;
    dispatch_backward(
        rec,
        &Layout::batch(&x.shape),
        x,
        g,
        gamma,
        running_mean,
        running_var,
        eps,
        true,
        dx,
        dgamma,
        dbeta,
    )
}

#[allow(clippy::too_many_arguments)]
pub fn batch_norm_eval_backward(
    rec: &mut Recorder,
    g: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f32,
) -> Result<NormGrads> {
    let o = alloc_grads(rec, x)?;
    batch_norm_eval_backward_into(
        rec,
        g,
        x,
        gamma,
        running_mean,
        running_var,
        eps,
        &o.dx,
        &o.dgamma,
        &o.dbeta,
    )?;
    Ok(o)
}

pub use super::group_norm::{
    group_norm, group_norm_backward, group_norm_backward_into, group_norm_into, instance_norm,
    instance_norm_backward, instance_norm_backward_into, instance_norm_into,
};
