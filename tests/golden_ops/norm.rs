//! Golden adapters: `batch_norm2d/3d` (training: y, batch_mean, batch_var,
//! save_invstd, running_mean_new, running_var_new; eval: y; grads x, gamma,
//! beta), `instance_norm2d/3d` and `group_norm` (y; grads x, gamma, beta), via
//! `wunet::ops::norm`. `x`, `grad_y`, `y`, `grad x` are activations (F16 in the
//! mixed run); gamma, beta, the statistics and their gradients F32.

use super::harness::{AdapterResult, Case, Data, Host, Outcome, Produced};
use wunet::ops::norm;
use wunet::{DType, Shape, Tensor};

fn eps(case: &Case) -> Result<f32, Outcome> {
    Ok(case.attr_f64("eps")? as f32)
}

/// `gamma`, `beta` of an affine norm (`attrs.affine`, else whether the case has a
/// `gamma` input); `affine = false` gives gamma 1, beta 0 and no gamma/beta gradients.
fn affine(case: &Case, c: usize) -> Result<(Tensor, Tensor, bool), Outcome> {
    let aff = match case.spec.attrs.get("affine") {
        Some(_) => case.attr_bool("affine")?,
        None => case.has_input("gamma"),
    };
    if aff {
        return Ok((case.upload_f32("gamma")?, case.upload_f32("beta")?, true));
    }
    let cv = Shape::vector(c);
    Ok((
        Tensor::from_f32(case.ctx, &vec![1.0; c], cv)?,
        Tensor::zeros(case.ctx, cv, DType::F32)?,
        false,
    ))
}

/// `batch_norm2d` / `batch_norm3d`, training or eval (`attrs.training`).
pub fn batch_norm(case: &Case) -> AdapterResult {
    let eps = eps(case)?;
    let x = case.upload_act("x")?;
    let gamma = case.upload_f32("gamma")?;
    let beta = case.upload_f32("beta")?;
    let rm = case.upload_f32("running_mean")?;
    let rv = case.upload_f32("running_var")?;
    let g = case.upload_grad_act("y")?;
    let mut out = Produced::default();
    if !case.attr_bool("training")? {
        let (y, gr) = case.ctx.run(|rec| {
            let y = norm::batch_norm_eval(rec, &x, &gamma, &beta, &rm, &rv, eps)?;
            let gr = norm::batch_norm_eval_backward(rec, &g, &x, &gamma, &rm, &rv, eps)?;
            Ok((y, gr))
        })?;
        out.outputs.insert("y".into(), case.read_act(&y)?);
        out.grads.insert("x".into(), case.read_act(&gr.dx)?);
        out.grads.insert("gamma".into(), case.read_f32(&gr.dgamma)?);
        out.grads.insert("beta".into(), case.read_f32(&gr.dbeta)?);
        return Ok(out);
    }
    let momentum = case.attr_f64("momentum")? as f32;
    // The biased batch variance as the engine computes it: a second forward
    // with zero running statistics and momentum 1 leaves the engine's unbiased
    // variance `var*m/(m-1)` in its running_var; scaled back by (m-1)/m.
    let c = x.shape.c();
    let cv = Shape::vector(c);
    let rm1 = Tensor::zeros(case.ctx, cv, DType::F32)?;
    let rv1 = Tensor::zeros(case.ctx, cv, DType::F32)?;
    let (o, gr) = case.ctx.run(|rec| {
        let o = norm::batch_norm_train(rec, &x, &gamma, &beta, &rm, &rv, momentum, eps)?;
        norm::batch_norm_train(rec, &x, &gamma, &beta, &rm1, &rv1, 1.0, eps)?;
        let gr =
            norm::batch_norm_train_backward(rec, &g, &x, &gamma, &o.save_mean, &o.save_invstd)?;
        Ok((o, gr))
    })?;
    let m = wunet::shape::batch_norm_count(&x.shape);
    let unbiased = case.read_f32(&rv1)?;
    let Data::F32(u) = &unbiased.data else {
        return Err(Outcome::Error("running_var is not f32".into()));
    };
    let var: Vec<f32> = u
        .iter()
        .map(|&v| (v as f64 * (m - 1) as f64 / m as f64) as f32)
        .collect();
    out.outputs.insert("y".into(), case.read_act(&o.y)?);
    out.outputs
        .insert("batch_mean".into(), case.read_f32(&o.save_mean)?);
    out.outputs
        .insert("batch_var".into(), Host::f32(unbiased.shape.clone(), var));
    out.outputs
        .insert("save_invstd".into(), case.read_f32(&o.save_invstd)?);
    out.outputs
        .insert("running_mean_new".into(), case.read_f32(&rm)?);
    out.outputs
        .insert("running_var_new".into(), case.read_f32(&rv)?);
    out.grads.insert("x".into(), case.read_act(&gr.dx)?);
    out.grads.insert("gamma".into(), case.read_f32(&gr.dgamma)?);
    out.grads.insert("beta".into(), case.read_f32(&gr.dbeta)?);
    Ok(out)
}

/// `instance_norm2d` / `instance_norm3d` (no running statistics).
pub fn instance_norm(case: &Case) -> AdapterResult {
    if case.spec.attrs.get("track_running_stats").is_some()
        && case.attr_bool("track_running_stats")?
    {
        return Err(Outcome::Skip(
            "track_running_stats = true is not supported".into(),
        ));
    }
    group_like(case, None)
}

/// `group_norm` (`attrs.num_groups`).
pub fn group_norm(case: &Case) -> AdapterResult {
    group_like(case, Some(case.attr_usize("num_groups")?))
}

/// Group norm with `groups`, or instance norm for `None`.
fn group_like(case: &Case, groups: Option<usize>) -> AdapterResult {
    let eps = eps(case)?;
    let x = case.upload_act("x")?;
    let (gamma, beta, aff) = affine(case, x.shape.c())?;
    let g = case.upload_grad_act("y")?;
    let (o, gr) = case.ctx.run(|rec| match groups {
        Some(gs) => {
            let o = norm::group_norm(rec, &x, &gamma, &beta, gs, eps)?;
            let gr =
                norm::group_norm_backward(rec, &g, &x, &gamma, &o.save_mean, &o.save_invstd, gs)?;
            Ok((o, gr))
        }
        None => {
            let o = norm::instance_norm(rec, &x, &gamma, &beta, eps)?;
            let gr =
                norm::instance_norm_backward(rec, &g, &x, &gamma, &o.save_mean, &o.save_invstd)?;
            Ok((o, gr))
        }
    })?;
    let mut out = Produced::default();
    out.outputs.insert("y".into(), case.read_act(&o.y)?);
    out.grads.insert("x".into(), case.read_act(&gr.dx)?);
    if aff {
        out.grads.insert("gamma".into(), case.read_f32(&gr.dgamma)?);
        out.grads.insert("beta".into(), case.read_f32(&gr.dbeta)?);
    }
    Ok(out)
}
