//! Golden adapters: `sgd_step`, `adam_step`, `adamw_step` (T steps of one
//! parameter tensor; outputs the parameter and the optimiser state after them),
//! via `wunet::ops::optim`. As in the executor, the update is recorded once and
//! the program replayed per step, with that step's gradient and `hyper` values
//! (`[lr, 1 - beta1^t, 1 - beta2^t, t]`) written before each submission.
//! Every tensor is F32 in both runs: the updates have no F16 path (the mixed
//! run runs them as the f32 run and reports them so; `f32_only` in `runner.rs`).

use super::harness::{AdapterResult, Case, Data, Outcome, Produced};
use wunet::graph::ops::{AdamAttrs, SgdAttrs};
use wunet::ops::optim as o;
use wunet::{DType, Shape, Tensor};

/// Skip the PyTorch options the engine does not implement.
fn unsupported_flags(case: &Case, flags: &[&str]) -> Result<(), Outcome> {
    for f in flags {
        if case.spec.attrs.get(*f).is_some() && case.attr_bool(f)? {
            return Err(Outcome::Skip(format!("{f} = true is not supported")));
        }
    }
    Ok(())
}

/// The recorded gradients `[T, P...]` as T host vectors of P's size, plus P's shape.
fn step_grads(case: &Case, steps: usize) -> Result<(Vec<Vec<f32>>, Shape), Outcome> {
    let ps = case
        .spec
        .inputs
        .get("param")
        .ok_or_else(|| Outcome::Error("case has no input 'param'".into()))?
        .shape
        .clone();
    let g = case.input("grad")?;
    let Data::F32(v) = g.data else {
        return Err(Outcome::Error("grad is not float32".into()));
    };
    let n: usize = ps.iter().product();
    if g.shape.first() != Some(&steps) || v.len() != steps * n || g.shape[1..] != ps[..] {
        return Err(Outcome::Error(format!(
            "grad {:?} is not [steps = {steps}] + param {ps:?}",
            g.shape
        )));
    }
    Ok((
        v.chunks(n).map(<[f32]>::to_vec).collect(),
        Shape::from_slice(&ps)?,
    ))
}

fn write(case: &Case, t: &Tensor, v: &[f32]) {
    case.ctx
        .queue
        .write_buffer(t.buffer(), t.offset, bytemuck::cast_slice(v));
}

pub fn sgd_step(case: &Case) -> AdapterResult {
    unsupported_flags(case, &["maximize"])?;
    let dampening = case.attr_f64("dampening")?;
    if dampening != 0.0 {
        return Err(Outcome::Skip(format!("dampening {dampening} (only 0)")));
    }
    let steps = case.attr_usize("steps")?;
    let lr = case.attr_f64("lr")? as f32;
    let cfg = SgdAttrs {
        momentum: case.attr_f64("momentum")? as f32,
        weight_decay: case.attr_f64("weight_decay")? as f32,
        nesterov: case.attr_bool("nesterov")?,
        amp: false,
    };
    let (grads, ps) = step_grads(case, steps)?;
    let param = case.upload_f32("param")?;
    // PyTorch's first step sets buf = d; the engine's `momentum*buf + d` does the
    // same from a zero buffer, so an uninitialised buffer starts at zero.
    let buf = if case.attr_bool("buffer_initialized")? {
        case.upload_f32("momentum_buffer")?
    } else {
        Tensor::zeros(case.ctx, ps, DType::F32)?
    };
    let grad = Tensor::zeros(case.ctx, ps, DType::F32)?;
    let hyper = o::hyper_tensor(case.ctx)?;
    let uses_buf = cfg.uses_velocity();
    let prog = case.ctx.record(|rec| {
        o::sgd_update(
            rec,
            &param,
            &grad,
            uses_buf.then_some(&buf),
            &hyper,
            None,
            &cfg,
        )
    })?;
    for (t, gv) in grads.iter().enumerate() {
        write(case, &grad, gv);
        o::write_hyper(case.ctx, &hyper, cfg.hyper(t as u64 + 1, lr))?;
        prog.submit(case.ctx);
    }
    let mut out = Produced::default();
    out.outputs
        .insert("param_new".into(), case.read_f32(&param)?);
    out.outputs
        .insert("momentum_buffer_new".into(), case.read_f32(&buf)?);
    Ok(out)
}

/// `adam_step` (L2 weight decay) and `adamw_step` (decoupled).
pub fn adam_step(case: &Case) -> AdapterResult {
    unsupported_flags(case, &["amsgrad", "maximize"])?;
    let decoupled = case.spec.op == "adamw_step";
    let betas = case
        .spec
        .attrs
        .get("betas")
        .and_then(|v| v.as_array())
        .and_then(|a| a.iter().map(|b| b.as_f64()).collect::<Option<Vec<f64>>>())
        .filter(|b| b.len() == 2)
        .ok_or_else(|| Outcome::Error("attrs.betas is not two numbers".into()))?;
    let cfg = AdamAttrs {
        beta1: betas[0] as f32,
        beta2: betas[1] as f32,
        eps: case.attr_f64("eps")? as f32,
        weight_decay: case.attr_f64("weight_decay")? as f32,
        decoupled,
        amp: false,
    };
    let steps = case.attr_usize("steps")?;
    let step0 = case.attr_usize("step0")? as u64;
    let lr = case.attr_f64("lr")? as f32;
    let (grads, ps) = step_grads(case, steps)?;
    let param = case.upload_f32("param")?;
    let m = case.upload_f32("exp_avg")?;
    let v = case.upload_f32("exp_avg_sq")?;
    let grad = Tensor::zeros(case.ctx, ps, DType::F32)?;
    let hyper = o::hyper_tensor(case.ctx)?;
    let prog = case
        .ctx
        .record(|rec| o::adam_update(rec, &param, &grad, &m, &v, &hyper, None, &cfg))?;
    for (t, gv) in grads.iter().enumerate() {
        write(case, &grad, gv);
        // Bias corrections from the case's f64 betas (PyTorch's Python floats).
        let hv = o::hyper_values(step0 + t as u64 + 1, lr, betas[0], betas[1]);
        o::write_hyper(case.ctx, &hyper, hv)?;
        prog.submit(case.ctx);
    }
    let mut out = Produced::default();
    out.outputs
        .insert("param_new".into(), case.read_f32(&param)?);
    out.outputs.insert("exp_avg_new".into(), case.read_f32(&m)?);
    out.outputs
        .insert("exp_avg_sq_new".into(), case.read_f32(&v)?);
    Ok(out)
}
