//! Golden adapters: `relu`, `leaky_relu`, `sigmoid` (y; grad x), via
//! `wunet::ops::activation`. Every tensor is an activation (F16 in the mixed run).

use super::harness::{AdapterResult, Case, Produced};
use wunet::ops::activation as act;

#[derive(Clone, Copy)]
enum Kind {
    Relu,
    Leaky(f32),
    Sigmoid,
}

fn run(case: &Case, kind: Kind) -> AdapterResult {
    let x = case.upload_act("x")?;
    let g = case.upload_grad_act("y")?;
    let (y, dx) = case.ctx.run(|rec| match kind {
        Kind::Relu => Ok((act::relu(rec, &x)?, act::relu_grad(rec, &g, &x)?)),
        Kind::Leaky(s) => Ok((
            act::leaky_relu(rec, &x, s)?,
            act::leaky_relu_grad(rec, &g, &x, s)?,
        )),
        Kind::Sigmoid => {
            let y = act::sigmoid(rec, &x)?;
            let dx = act::sigmoid_grad(rec, &g, &y)?;
            Ok((y, dx))
        }
    })?;
    let mut out = Produced::default();
    out.outputs.insert("y".into(), case.read_act(&y)?);
    out.grads.insert("x".into(), case.read_act(&dx)?);
    Ok(out)
}

/// `relu`: gradient 0 at x == 0 (PyTorch).
pub fn relu(case: &Case) -> AdapterResult {
    run(case, Kind::Relu)
}

/// `leaky_relu` (`attrs.negative_slope`): gradient `slope*g` at x == 0 (PyTorch).
pub fn leaky_relu(case: &Case) -> AdapterResult {
    run(case, Kind::Leaky(case.attr_f64("negative_slope")? as f32))
}

/// `sigmoid`: the gradient from the forward output, `g*y*(1-y)`.
pub fn sigmoid(case: &Case) -> AdapterResult {
    run(case, Kind::Sigmoid)
}
