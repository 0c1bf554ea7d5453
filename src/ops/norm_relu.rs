//! Batch norm fused with a ReLU (the graph's `BatchNormRelu` and
//! `BatchNormReluGrad`, written by `graph::fuse`): the same kernels as
//! [`super::norm`] with flag 8 of their params (`kernels/norm_apply.wgsl`,
//! `kernels/norm_grad.wgsl`). The forward stores `y = relu(bn(x))`; the
//! backward takes the ReLU's output gradient `dy` and the fused output `y`
//! and masks `dy` with `y > 0` as it loads it, so neither the ReLU pass nor
//! the ReLU-gradient pass (nor their buffers) exist. Results are those of
//! `batch_norm_train_into` + `relu_into` (and `relu_grad_into` +
//! `batch_norm_train_backward_into`) exactly: the same operations on the
//! same values (see `graph::fuse`).

use super::checked;
use super::norm::{
    bn_name, check_backward, check_eval, check_train, dispatch_stats, scratch, Layout, CONST_STATS,
    VAR_INPUT,
};
use crate::error::Result;
use crate::gpu::{DType, Recorder, Tensor};
use crate::shape::{self, Shape};

/// Fused ReLU flag of the norm kernels: the forward stores `relu(y)`; the
/// backward reads `g * (mask > 0)`.
const RELU: u32 = 8;

/// `batch_norm_train_into` followed by a ReLU, into `y` (one pass less).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_train_into(
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
    let lay = check_train(x, gamma, beta, running, eps, y, (save_mean, save_invstd))?;
    dispatch_stats(rec, &lay, x, eps, Some(running), save_mean, save_invstd)?;
    let stats = (save_mean, save_invstd, false);
    dispatch_normalize_relu(rec, &lay, x, stats, gamma, beta, eps, true, y)
}

/// `batch_norm_eval_into` followed by a ReLU, into `y`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_eval_into(
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
    let lay = Layout::batch(&x.shape);
    let stats = (running_mean, running_var, true);
    dispatch_normalize_relu(rec, &lay, x, stats, gamma, beta, eps, true, y)
}

/// Gradients of [`batch_norm_relu_train_into`]: `batch_norm_train_backward_into`
/// of `g = dy * (y > 0)`, `y` the fused forward's output.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu_train_backward_into(
    rec: &mut Recorder,
    dy: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
    y: &Tensor,
    dx: &Tensor,
    dgamma: &Tensor,
    dbeta: &Tensor,
) -> Result<()> {
    let op = bn_name(&x.shape);
    let stats = Shape::vector(x.shape.c());
    check_backward(
        op,
        dy,
        x,
        gamma,
        stats,
        save_mean,
        save_invstd,
        dx,
        dgamma,
        dbeta,
    )?;
    checked(op, shape::check_same("output", &y.shape, "input", &x.shape))?;
    super::expect(op, "output", y, x.shape, dy.dtype)?;
    super::norm::distinct(op, ("grad_input", dx), &[("output", y)])?;
    let lay = Layout::batch(&x.shape);
    let grads = (dx, dgamma, dbeta);
    let stats = (save_mean, save_invstd);
    dispatch_backward_masked(rec, &lay, x, dy, Some(y), gamma, stats, 0.0, false, grads)
}

/// `norm::dispatch_normalize`, with `relu` the output through a ReLU; `stats`
/// is `(mean, invstd, var_input)`.
#[allow(clippy::too_many_arguments)]
pub(super) fn dispatch_normalize_relu(
    rec: &mut Recorder,
    lay: &Layout,
    x: &Tensor,
    stats: (&Tensor, &Tensor, bool),
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
    relu: bool,
    y: &Tensor,
) -> Result<()> {
    let (mean, invstd, var_input) = stats;
    let chunk = lay.chunk(rec.ctx.class, false);
    let flags = if var_input { VAR_INPUT } else { 0 } | if relu { RELU } else { 0 };
    let p = lay.params(chunk, flags, eps);
    let g = rec.grid(p.item_groups())?;
    rec.dispatch(
        "norm_apply",
        "normalize",
        &[],
        &p,
        &[x, x, mean, invstd, gamma, beta, x, y],
        g,
    )
}

/// `norm::dispatch_backward` of the masked gradient `g * (mask > 0)` when `mask`
/// is given (the fused ReLU's output); `stats` is `(mean, invstd)`, `grads`
/// `(dx, dgamma, dbeta)`.
#[allow(clippy::too_many_arguments)]
pub(super) fn dispatch_backward_masked(
    rec: &mut Recorder,
    lay: &Layout,
    x: &Tensor,
    g: &Tensor,
    mask: Option<&Tensor>,
    gamma: &Tensor,
    stats: (&Tensor, &Tensor),
    eps: f32,
    eval: bool,
    grads: (&Tensor, &Tensor, &Tensor),
) -> Result<()> {
    let ((mean, invstd), (dx, dgamma, dbeta)) = (stats, grads);
    let chunk = lay.chunk(rec.ctx.class, true);
    let flags = if eval { VAR_INPUT | CONST_STATS } else { 0 } | mask.map_or(0, |_| RELU);
    let m = mask.unwrap_or(g);
    let mut p = lay.params(chunk, flags, eps);
    let nparts = lay.planes * p.cpp as usize;
    p.sums_off = (2 * nparts) as u32;
    // gamma is read from a copy at the end of `part` (aligned for a binding),
    // which keeps norm_grad at 8 storage buffers with the mask
    let words = (rec.ctx.limits.min_storage_buffer_offset_alignment.max(4) / 4) as usize;
    let gamma_off = (2 * nparts + 2 * lay.sets).next_multiple_of(words);
    p.gamma_off = gamma_off as u32;
    let part = scratch(rec, gamma_off + lay.c)?;
    let gamma_copy = Tensor {
        storage: part.storage.clone(),
        offset: part.offset + 4 * gamma_off as u64,
        shape: Shape::vector(lay.c),
        dtype: DType::F32,
    };
    super::tensor::copy_into(rec, gamma, &gamma_copy)?;
    let grid = rec.grid(p.item_groups())?;
    rec.dispatch(
        "norm_grad",
        "partials",
        &[],
        &p,
        &[x, g, mean, invstd, &part, dgamma, dbeta, m],
        grid,
    )?;
    let grid = rec.grid(p.set_groups(lay.sets + lay.c))?;
    rec.dispatch(
        "norm_grad",
        "combine",
        &[],
        &p,
        &[x, g, mean, invstd, &part, dgamma, dbeta, m],
        grid,
    )?;
    let chunk = lay.chunk(rec.ctx.class, false);
    let mut pa = lay.params(chunk, flags, eps);
    pa.sums_off = p.sums_off;
    let grid = rec.grid(pa.item_groups())?;
    rec.dispatch(
        "norm_apply",
        "grad_input",
        &[],
        &pa,
        &[x, g, mean, invstd, gamma, &part, m, dx],
        grid,
    )
}
