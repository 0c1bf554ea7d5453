//! Activations (`kernels/activation.wgsl`): ReLU, LeakyReLU, sigmoid and
//! dropout, forward and backward, elementwise on tensors of any shape.
//! Gradients take `(dy, forward value)`, the order of the graph's `ReluGrad`,
//! `LeakyReluGrad` and `SigmoidGrad`.
//!
//! Dropout draws its mask from a counter-based hash of `(seed, element index)`
//! computed in the shader, so the backward recomputes the same mask from the
//! seed and nothing is stored; [`crate::reference::activation::dropout_hash`] is the same
//! integer hash on the CPU, so GPU and CPU masks agree exactly.

use super::tensor::distinct;
use super::{act_dtype, alloc_act, checked, expect, groups_for};
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::graph::ops::activation::check_drop_probability;
use crate::shape;
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct ActParams {
    len: u32,
    seed: u32,
    thr: u32,
    alpha: f32,
}

/// Dropout keeps element `i` iff `(dropout_hash(seed, i) >> 8) >= dropout_threshold(p)`.
pub fn dropout_threshold(p: f32) -> u32 {
    (p as f64 * 16_777_216.0).round().clamp(0.0, 16_777_216.0) as u32
}

/// Scale of kept elements, `1/(1-p)` (0 for `p = 1`, where nothing is kept).
pub fn dropout_scale(p: f32) -> f32 {
    if p >= 1.0 {
        0.0
    } else {
        (1.0 / (1.0 - p as f64)) as f32
    }
}

/// `out = entry(a, b)`: `a`, `b` and `out` of one shape and one activation
/// dtype (F32 or F16, [`act_dtype`]). `a` is the forward value (input or
/// output), `b` the gradient (kernel binding order).
fn unary(
    rec: &mut Recorder,
    op: &'static str,
    entry: &'static str,
    a: &Tensor,
    b: Option<&Tensor>,
    p: ActParams,
    out: &Tensor,
) -> Result<()> {
    let act = match b {
        Some(b) => act_dtype(op, &[("input", a), ("grad_output", b), ("output", out)])?,
        None => act_dtype(op, &[("input", a), ("output", out)])?,
    };
    if let Some(b) = b {
        checked(
            op,
            shape::check_same("gradient", &b.shape, "forward value", &a.shape),
        )?;
        expect(op, "grad_output", b, a.shape, act)?;
    }
    expect(op, "output", out, a.shape, act)?;
    let b = b.unwrap_or(a);
    distinct(op, &[a, b], out)?;
    let p = ActParams {
        len: a.numel() as u32,
        ..p
    };
    let g = rec.grid(groups_for(a.numel(), 256))?;
    rec.dispatch("activation", entry, &[], &p, &[a, b, out], g)
}

/// An output of `t`'s shape and activation dtype.
fn alloc_like(rec: &Recorder, t: &Tensor) -> Result<Tensor> {
    alloc_act(rec, t.shape, t)
}

/// `y = max(x, 0)`.
pub fn relu_into(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    unary(rec, "relu", "relu_fwd", x, None, ActParams::default(), y)
}

pub fn relu(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let y = alloc_like(rec, x)?;
    relu_into(rec, x, &y)?;
    Ok(y)
}

/// `dx = x > 0 ? dy : 0` (`x` may be the forward's input or output; the gradient at 0 is 0).
pub fn relu_grad_into(rec: &mut Recorder, dy: &Tensor, x: &Tensor, dx: &Tensor) -> Result<()> {
    unary(
        rec,
        "relu_grad",
        "relu_bwd",
        x,
        Some(dy),
        ActParams::default(),
        dx,
    )
}

pub fn relu_grad(rec: &mut Recorder, dy: &Tensor, x: &Tensor) -> Result<Tensor> {
    let dx = alloc_like(rec, x)?;
    relu_grad_into(rec, dy, x, &dx)?;
    Ok(dx)
}

/// `y = x > 0 ? x : slope*x`.
pub fn leaky_relu_into(rec: &mut Recorder, x: &Tensor, slope: f32, y: &Tensor) -> Result<()> {
    unary(
        rec,
        "leaky_relu",
        "leaky_fwd",
        x,
        None,
        ActParams {
            alpha: slope,
            ..Default::default()
        },
        y,
    )
}

pub fn leaky_relu(rec: &mut Recorder, x: &Tensor, slope: f32) -> Result<Tensor> {
    let y = alloc_like(rec, x)?;
    leaky_relu_into(rec, x, slope, &y)?;
    Ok(y)
}

/// `dx = x > 0 ? dy : slope*dy` (`x` is the forward's input; the gradient at 0 is `slope`).
pub fn leaky_relu_grad_into(
    rec: &mut Recorder,
    dy: &Tensor,
    x: &Tensor,
    slope: f32,
    dx: &Tensor,
) -> Result<()> {
    unary(
        rec,
        "leaky_relu_grad",
        "leaky_bwd",
        x,
        Some(dy),
        ActParams {
            alpha: slope,
            ..Default::default()
        },
        dx,
    )
}

pub fn leaky_relu_grad(rec: &mut Recorder, dy: &Tensor, x: &Tensor, slope: f32) -> Result<Tensor> {
    let dx = alloc_like(rec, x)?;
    leaky_relu_grad_into(rec, dy, x, slope, &dx)?;
    Ok(dx)
}

/// `y = 1 / (1 + exp(-x))`.
pub fn sigmoid_into(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    unary(
        rec,
        "sigmoid",
        "sigmoid_fwd",
        x,
        None,
        ActParams::default(),
        y,
    )
}

pub fn sigmoid(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let y = alloc_like(rec, x)?;
    sigmoid_into(rec, x, &y)?;
    Ok(y)
}

/// `dx = dy * y * (1 - y)` from the forward's output `y`.
pub fn sigmoid_grad_into(rec: &mut Recorder, dy: &Tensor, y: &Tensor, dx: &Tensor) -> Result<()> {
    unary(
        rec,
        "sigmoid_grad",
        "sigmoid_bwd",
        y,
        Some(dy),
        ActParams::default(),
        dx,
    )
}

pub fn sigmoid_grad(rec: &mut Recorder, dy: &Tensor, y: &Tensor) -> Result<Tensor> {
    let dx = alloc_like(rec, y)?;
    sigmoid_grad_into(rec, dy, y, &dx)?;
    Ok(dx)
}

fn dropout_params(op: &'static str, p: f32, seed: u32) -> Result<ActParams> {
    checked(op, check_drop_probability(p))?;
    Ok(ActParams {
        len: 0,
        seed,
        thr: dropout_threshold(p),
        alpha: dropout_scale(p),
    })
}

/// Dropout with drop probability `p`: `y = keep ? x/(1-p) : 0`, the mask a
/// function of `(seed, element index)` only (reproducible on the same adapter
/// and equal to the CPU reference's).
pub fn dropout_into(rec: &mut Recorder, x: &Tensor, p: f32, seed: u32, y: &Tensor) -> Result<()> {
    let params = dropout_params("dropout", p, seed)?;
    unary(rec, "dropout", "dropout", x, None, params, y)
}

pub fn dropout(rec: &mut Recorder, x: &Tensor, p: f32, seed: u32) -> Result<Tensor> {
    let y = alloc_like(rec, x)?;
    dropout_into(rec, x, p, seed, &y)?;
    Ok(y)
}

/// Backward of dropout: the same mask and scale applied to `dy` (pass the forward's `p` and `seed`).
pub fn dropout_grad_into(
    rec: &mut Recorder,
    dy: &Tensor,
    p: f32,
    seed: u32,
    dx: &Tensor,
) -> Result<()> {
    let params = dropout_params("dropout_grad", p, seed)?;
    unary(rec, "dropout_grad", "dropout", dy, None, params, dx)
}

pub fn dropout_grad(rec: &mut Recorder, dy: &Tensor, p: f32, seed: u32) -> Result<Tensor> {
    let dx = alloc_like(rec, dy)?;
    dropout_grad_into(rec, dy, p, seed, &dx)?;
    Ok(dx)
}
