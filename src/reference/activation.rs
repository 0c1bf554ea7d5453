//! Plain CPU activations, argument order as in `ops::activation`.

use crate::ops::activation::{dropout_scale, dropout_threshold};

pub fn relu(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect()
}

/// `dx = x > 0 ? dy : 0` (gradient 0 at exactly 0).
pub fn relu_grad(dy: &[f32], x: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(dy)
        .map(|(&v, &g)| if v > 0.0 { g } else { 0.0 })
        .collect()
}

pub fn leaky_relu(x: &[f32], slope: f32) -> Vec<f32> {
    x.iter()
        .map(|&v| if v > 0.0 { v } else { slope * v })
        .collect()
}

/// `dx = x > 0 ? dy : slope*dy` (gradient `slope` at exactly 0).
pub fn leaky_relu_grad(dy: &[f32], x: &[f32], slope: f32) -> Vec<f32> {
    x.iter()
        .zip(dy)
        .map(|(&v, &g)| if v > 0.0 { g } else { slope * g })
        .collect()
}

pub fn sigmoid(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| (1.0 / (1.0 + (-(v as f64)).exp())) as f32)
        .collect()
}

/// `dx = dy * y * (1 - y)` from the output `y`.
pub fn sigmoid_grad(dy: &[f32], y: &[f32]) -> Vec<f32> {
    y.iter()
        .zip(dy)
        .map(|(&s, &g)| (g as f64 * s as f64 * (1.0 - s as f64)) as f32)
        .collect()
}

/// PCG-RXS-M-XS output hash of one 32-bit word (the same as `pcg` in `activation.wgsl`).
pub fn pcg(v: u32) -> u32 {
    let s = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let w = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277_803_737);
    (w >> 22) ^ w
}

/// The dropout hash of element `i` under `seed`: `pcg(pcg(i) ^ pcg(seed))`.
pub fn dropout_hash(seed: u32, i: u32) -> u32 {
    pcg(pcg(i) ^ pcg(seed))
}

/// Whether dropout with probability `p` keeps element `i`.
pub fn dropout_keep(seed: u32, i: u32, p: f32) -> bool {
    (dropout_hash(seed, i) >> 8) >= dropout_threshold(p)
}

/// `y = keep ? x/(1-p) : 0`, computed as `x * scale` in f32 like the kernel.
pub fn dropout(x: &[f32], p: f32, seed: u32) -> Vec<f32> {
    let s = dropout_scale(p);
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            if dropout_keep(seed, i as u32, p) {
                v * s
            } else {
                0.0
            }
        })
        .collect()
}

/// Backward of dropout: the same mask and scale on `dy`.
pub fn dropout_grad(dy: &[f32], p: f32, seed: u32) -> Vec<f32> {
    dropout(dy, p, seed)
}
