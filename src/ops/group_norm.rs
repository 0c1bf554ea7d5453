//! Group norm (statistics per (n, group) over the group's channels and space)
//! and instance norm (per (n, c) over space; group norm with `G = C`), forward
//! and backward, 2D and 3D. Same kernels and design as batch norm (see
//! [`super::norm`]); re-exported from there. Arguments in the graph's order:
//! `GroupNorm` `(x, gamma, beta)`, `GroupNormGrad` `(dy, x, gamma, mean,
//! invstd)`, then attributes, then outputs.

use super::norm::{
    alloc_grads, alloc_out, check_backward, check_common, check_eps, check_groups,
    dispatch_backward, dispatch_normalize, dispatch_stats, distinct, Layout, NormGrads, NormOutput,
};
use super::{checked, expect};
use crate::error::Result;
use crate::gpu::{DType, Recorder, Tensor};
use crate::shape::{self, group_norm_stats_shape, Shape};

fn in_name(x: &Shape) -> &'static str {
    if x.is_3d() {
        "instance_norm3d"
    } else {
        "instance_norm2d"
    }
}

#[allow(clippy::too_many_arguments)]
fn group_norm_impl(
    op: &'static str,
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f32,
    y: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
) -> Result<()> {
    let act = check_common(op, x, &[("output", y)], gamma, &[("beta", beta)])?;
    check_groups(op, &x.shape, groups)?;
    check_eps(op, eps)?;
    expect(op, "output", y, x.shape, act)?;
    let ss = group_norm_stats_shape(&x.shape, groups);
    expect(op, "save_mean", save_mean, ss, DType::F32)?;
    expect(op, "save_invstd", save_invstd, ss, DType::F32)?;
    distinct(
        op,
        ("output", y),
        &[("input", x), ("gamma", gamma), ("beta", beta)],
    )?;
    let lay = Layout::groups(&x.shape, groups);
    dispatch_stats(rec, &lay, x, eps, None, save_mean, save_invstd)?;
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

/// Group norm into `y` and the saved statistics (`[N, G]`): statistics per
/// (n, group) over the group's `C/G` channels and space; affine per channel.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_into(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f32,
    y: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
) -> Result<()> {
    group_norm_impl(
        "group_norm",
        rec,
        x,
        gamma,
        beta,
        groups,
        eps,
        y,
        save_mean,
        save_invstd,
    )
}

pub fn group_norm(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f32,
) -> Result<NormOutput> {
    check_groups("group_norm", &x.shape, groups)?;
    let o = alloc_out(rec, x, group_norm_stats_shape(&x.shape, groups))?;
    group_norm_into(
        rec,
        x,
        gamma,
        beta,
        groups,
        eps,
        &o.y,
        &o.save_mean,
        &o.save_invstd,
    )?;
    Ok(o)
}

/// Gradients of [`group_norm_into`].
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward_into(
    rec: &mut Recorder,
    g: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
    groups: usize,
    dx: &Tensor,
    dgamma: &Tensor,
    dbeta: &Tensor,
) -> Result<()> {
    let op = "group_norm";
    check_groups(op, &x.shape, groups)?;
    check_backward(
        op,
        g,
        x,
        gamma,
        group_norm_stats_shape(&x.shape, groups),
        save_mean,
        save_invstd,
        dx,
        dgamma,
        dbeta,
    )?;
    dispatch_backward(
        rec,
        &Layout::groups(&x.shape, groups),
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

#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(
    rec: &mut Recorder,
    g: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
    groups: usize,
) -> Result<NormGrads> {
    let o = alloc_grads(rec, x)?;
    group_norm_backward_into(
        rec,
        g,
        x,
        gamma,
        save_mean,
        save_invstd,
        groups,
        &o.dx,
        &o.dgamma,
        &o.dbeta,
    )?;
    Ok(o)
}

/// Instance norm into `y` and the saved statistics (`[N, C]`): statistics per
/// (n, c) over space (nnU-Net's default); affine per channel. Needs `D*H*W > 1`.
#[allow(clippy::too_many_arguments)]
pub fn instance_norm_into(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
    y: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
) -> Result<()> {
    let op = in_name(&x.shape);
    checked(op, shape::check_instance_norm(&x.shape))?;
    group_norm_impl(
        op,
        rec,
        x,
        gamma,
        beta,
        x.shape.c(),
        eps,
        y,
        save_mean,
        save_invstd,
    )
}

pub fn instance_norm(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> Result<NormOutput> {
    let o = alloc_out(rec, x, group_norm_stats_shape(&x.shape, x.shape.c()))?;
    instance_norm_into(rec, x, gamma, beta, eps, &o.y, &o.save_mean, &o.save_invstd)?;
    Ok(o)
}

/// Gradients of [`instance_norm_into`].
#[allow(clippy::too_many_arguments)]
pub fn instance_norm_backward_into(
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
    let op = in_name(&x.shape);
    let c = x.shape.c();
    check_backward(
        op,
        g,
        x,
        gamma,
        group_norm_stats_shape(&x.shape, c),
        save_mean,
        save_invstd,
        dx,
        dgamma,
        dbeta,
    )?;
    dispatch_backward(
        rec,
        &Layout::groups(&x.shape, c),
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

pub fn instance_norm_backward(
    rec: &mut Recorder,
    g: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
) -> Result<NormGrads> {
    let o = alloc_grads(rec, x)?;
    instance_norm_backward_into(
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
