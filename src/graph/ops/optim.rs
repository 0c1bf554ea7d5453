//! Optimiser updates: no outputs; they update their inputs in place (see
//! [`super::Op::mutates`]). Learning rate and step count are runtime scalars
//! the executor writes into a small `hyper` tensor before each step
//! ([`hyper_values`]), so a recorded step replays unchanged.
//!
//! - `SgdUpdate(SgdAttrs)`: `(param, grad, velocity?)`, velocity present iff
//!   `momentum != 0`. PyTorch semantics: `g = grad + wd p; v = m v + g;
//!   g = nesterov ? g + m v : v; p -= lr g`.
//! - `AdamUpdate(AdamAttrs)`: `(param, grad, m, v)`. `decoupled` (AdamW):
//!   `p -= lr wd p`, else `g += wd p`; `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//!   p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`.
//!
//! With `amp` (mixed precision) both take two more inputs, `(.., flag,
//! scaler)`: the gradient is multiplied by `1/scale` (`scaler[1]`) first, and
//! nothing is updated when `flag` (`FiniteCheck` of all gradients) is set.

use super::{foreign, Check, Op, OpSpec, Pass, Slot};
use crate::shape::{self, Shape};

/// SGD settings (dampening 0, as PyTorch's default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdAttrs {
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    /// Mixed precision: loss-scaled gradients, skipped on overflow (module docs).
    pub amp: bool,
}

/// Adam / AdamW settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamAttrs {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// AdamW: weight decay applied to the parameter, not added to the gradient.
    pub decoupled: bool,
    /// Mixed precision: loss-scaled gradients, skipped on overflow (module docs).
    pub amp: bool,
}

impl Default for AdamAttrs {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    fn default() -> Self {
        AdamAttrs {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            amp: false,
        }
    }
}

/// Length of the `hyper` tensor: `[lr, 1 - beta1^t, 1 - beta2^t, t]`.
pub const HYPER_LEN: usize = 4;

/// `hyper` values for update number `step` (1 for the first update) at learning rate `lr`:
/// `[lr, 1 - beta1^step, 1 - beta2^step, step]` (bias corrections computed in f64).
pub fn hyper_values(step: u64, lr: f32, beta1: f64, beta2: f64) -> [f32; HYPER_LEN] {
    let t = step.min(i32::MAX as u64) as i32;
    let bc = |b: f64| (1.0 - b.powi(t)) as f32;
    [lr, bc(beta1), bc(beta2), step as f32]
}

fn finite(vals: &[(&str, f32)]) -> Check<()> {
    for (what, v) in vals {
        if !v.is_finite() {
            return Err(format!("{what} must be finite, got {v}"));
        }
    }
    Ok(())
}

impl SgdAttrs {
    /// Finite settings; Nesterov needs momentum.
    pub fn check(&self) -> Check<()> {
        finite(&[
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
        ])?;
        if self.nesterov && self.momentum == 0.0 {
            return Err("Nesterov momentum needs momentum != 0".into());
        }
        Ok(())
    }
    /// Does the update keep a velocity (input 2)?
    pub fn uses_velocity(&self) -> bool {
        self.momentum != 0.0
    }
    /// `hyper` values for update number `step` at learning rate `lr`.
    pub fn hyper(&self, step: u64, lr: f32) -> [f32; HYPER_LEN] {
        hyper_values(step, lr, 0.0, 0.0)
    }
}

impl AdamAttrs {
    /// Finite settings; betas in `[0, 1)`.
    pub fn check(&self) -> Check<()> {
        finite(&[
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
        ])?;
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(format!(
                "betas must be in [0, 1), got ({}, {})",
                self.beta1, self.beta2
            ));
        }
        Ok(())
    }
    /// `hyper` values for update number `step` (1 for the first) at learning rate `lr`.
    pub fn hyper(&self, step: u64, lr: f32) -> [f32; HYPER_LEN] {
        hyper_values(step, lr, self.beta1 as f64, self.beta2 as f64)
    }
}

/// A parameter the update kernels can index (they round the grid up by 2048).
pub fn check_update_size(param: &Shape) -> Check<()> {
    if param.numel() > u32::MAX as usize - 2048 {
        return Err(format!(
            "parameter {param} has too many elements for 32-bit indexing"
        ));
    }
    Ok(())
}

const PARAM: Slot = Slot::f32("parameter");
const GRAD: Slot = Slot::f32("gradient");
const STATE: Slot = Slot::f32("optimizer state");

const fn update(name: &'static str, inputs: &'static [Slot]) -> OpSpec {
    OpSpec::new(name, Pass::Update, inputs, &[], shapes, None)
}

const FLAG: Slot = Slot::indices("overflow flag");
const SCALER: Slot = Slot::f32("loss scaler");

pub(super) fn sgd_update(a: &SgdAttrs) -> OpSpec {
    match (a.uses_velocity(), a.amp) {
        (true, false) => update("SgdUpdate", &[PARAM, GRAD, STATE]).mutating(&[0, 2]),
        (true, true) => update("SgdUpdate", &[PARAM, GRAD, STATE, FLAG, SCALER]).mutating(&[0, 2]),
        (false, false) => update("SgdUpdate", &[PARAM, GRAD]).mutating(&[0]),
        (false, true) => update("SgdUpdate", &[PARAM, GRAD, FLAG, SCALER]).mutating(&[0]),
    }
}
pub(super) fn adam_update(a: &AdamAttrs) -> OpSpec {
    if a.amp {
        update("AdamUpdate", &[PARAM, GRAD, STATE, STATE, FLAG, SCALER]).mutating(&[0, 2, 3])
    } else {
        update("AdamUpdate", &[PARAM, GRAD, STATE, STATE]).mutating(&[0, 2, 3])
    }
}

/// Inputs before the amp pair `(flag, scaler)`.
fn state_inputs(op: &Op) -> usize {
    match op {
        Op::SgdUpdate(a) => 2 + a.uses_velocity() as usize,
        _ => 4,
    }
}

/// The shape rule: gradient and state have the parameter's shape; no outputs.
fn shapes(op: &Op, ins: &[Shape]) -> Check<Vec<Shape>> {
    match op {
        Op::SgdUpdate(a) => a.check()?,
        Op::AdamUpdate(a) => a.check()?,
        op => return Err(foreign("optim", op)),
    }
    let p = &ins[0];
    check_update_size(p)?;
    let n = state_inputs(op);
    if ins.len() > n {
        shape::check_same(
            "overflow flag",
            &ins[n],
            "a one-element flag",
            &Shape::vector(1),
        )?;
        shape::check_same(
            "loss scaler",
            &ins[n + 1],
            "[scale, 1/scale, good, skipped]",
            &Shape::vector(super::amp::SCALER_LEN),
        )?;
    }
    for (i, s) in ins.iter().enumerate().take(n).skip(1) {
        let what = if i == 1 {
            "gradient"
        } else {
            "optimizer state"
        };
        shape::check_same("parameter", p, what, s)?;
    }
    Ok(vec![])
}
