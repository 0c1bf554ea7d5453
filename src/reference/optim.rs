//! Plain CPU optimiser updates (f64 arithmetic, f32 state), argument order as
//! in `ops::optim`. `step` counts updates from 1.

use crate::graph::ops::{AdamAttrs, SgdAttrs};

/// One SGD step in place (PyTorch semantics, dampening 0): `d = g + wd*p`;
/// with momentum `buf = momentum*buf + d` (the buffer starts at zero, so the first
/// step gives `buf = d`), `upd = buf` or, Nesterov, `d + momentum*buf`; `p -= lr*upd`.
pub fn sgd_update(
    param: &mut [f32],
    grad: &[f32],
    mut momentum_buf: Option<&mut [f32]>,
    lr: f32,
    cfg: &SgdAttrs,
) {
    let (lr, mo, wd) = (lr as f64, cfg.momentum as f64, cfg.weight_decay as f64);
    for i in 0..param.len() {
        let p = param[i] as f64;
        let d = grad[i] as f64 + wd * p;
        let upd = match momentum_buf.as_deref_mut() {
            Some(buf) if mo != 0.0 => {
                let b = mo * buf[i] as f64 + d;
                buf[i] = b as f32;
                if cfg.nesterov {
                    d + mo * b
                } else {
                    b
                }
            }
            _ => d,
        };
        param[i] = (p - lr * upd) as f32;
    }
}

/// One Adam / AdamW step in place (PyTorch semantics): AdamW decays `p *= 1 - lr*wd`
/// first, Adam adds `wd*p` to the gradient; `m = b1*m + (1-b1)*g`, `v = b2*v + (1-b2)*g^2`,
/// `p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`.
pub fn adam_update(
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    step: u64,
    lr: f32,
    cfg: &AdamAttrs,
) {
    let (lr, b1, b2) = (lr as f64, cfg.beta1 as f64, cfg.beta2 as f64);
    let (eps, wd) = (cfg.eps as f64, cfg.weight_decay as f64);
    let t = step as i32;
    let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
    for i in 0..param.len() {
        let mut p = param[i] as f64;
        let mut g = grad[i] as f64;
        if cfg.decoupled {
            p *= 1.0 - lr * wd;
        } else {
            g += wd * p;
        }
        let m = b1 * exp_avg[i] as f64 + (1.0 - b1) * g;
        let v = b2 * exp_avg_sq[i] as f64 + (1.0 - b2) * g * g;
        exp_avg[i] = m as f32;
        exp_avg_sq[i] = v as f32;
        param[i] = (p - lr / bc1 * m / (v.sqrt() / bc2.sqrt() + eps)) as f32;
    }
}
