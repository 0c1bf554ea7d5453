//! Mixed precision (`kernels/cast.wgsl`, `kernels/amp.wgsl`): dtype casts,
//! the loss-scaled cast that starts the f16 backward, and dynamic loss
//! scaling kept on the GPU.
//!
//! The scaler is an F32 state tensor `[scale, 1/scale, good_steps,
//! skipped_steps]` ([`scaler_init`]). A mixed-precision step: the loss
//! gradient (f32) is cast to f16 times `scale` ([`cast_into`] with the
//! scaler), the backward runs in f16 storage, every parameter gradient (f32)
//! is checked for Inf/NaN into a one-word flag ([`finite_check_into`]), the
//! optimiser multiplies gradients by `1/scale` and skips the step when the
//! flag is set, and [`update_scale_into`] halves the scale on overflow or
//! doubles it after `interval` clean steps (PyTorch's GradScaler defaults:
//! 2^16, 0.5, 2, 2000).

use super::{dummy, expect, groups_for};
use crate::error::{Error, Result};
use crate::gpu::{DType, Recorder, Tensor};
use crate::shape::Shape;
use bytemuck::{Pod, Zeroable};

pub use crate::graph::ops::amp::{GROWTH_INTERVAL, INIT_SCALE, SCALER_LEN};

/// Scaler state for a fresh run with loss scale `scale`.
pub fn scaler_init(scale: f32) -> [f32; SCALER_LEN] {
    [scale, 1.0 / scale, 0.0, 0.0]
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct CastParams {
    len: u32,
    scaled: u32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct AmpParams {
    glen: [u32; 8],
    interval: u32,
    pad: [u32; 3],
}

fn check_scaler(op: &'static str, s: &Tensor) -> Result<()> {
    expect(op, "scaler", s, Shape::vector(SCALER_LEN), DType::F32)
}

/// `y = x` converted between F32 and F16 (either direction, same shape).
/// With `scaler`, an F32 -> F16 cast multiplies by the loss scale first.
pub fn cast_into(
    rec: &mut Recorder,
    x: &Tensor,
    y: &Tensor,
    scaler: Option<&Tensor>,
) -> Result<()> {
    const OP: &str = "cast";
    if x.shape.dims != y.shape.dims {
        return Err(Error::shape(
            OP,
            format!("input {} and output {} differ", x.shape, y.shape),
        ));
    }
    let p = CastParams {
        len: x.numel() as u32,
        scaled: scaler.is_some() as u32,
        ..Default::default()
    };
    let g = rec.grid(groups_for(x.numel(), 256))?;
    let own_scaler;
    let s = match scaler {
        Some(s) => {
            check_scaler(OP, s)?;
            s
        }
        None => {
            own_scaler = dummy(rec, DType::F32)?;
            &own_scaler
        }
    };
    match (x.dtype, y.dtype) {
        (DType::F32, DType::F16) => {
            let (xa, ya) = (dummy(rec, DType::F16)?, dummy(rec, DType::F32)?);
            rec.dispatch("cast", "cast_to", &[], &p, &[x, y, &xa, &ya, s], g)
        }
        (DType::F16, DType::F32) if scaler.is_none() => {
            let (xd, yd) = (dummy(rec, DType::F32)?, dummy(rec, DType::F16)?);
            rec.dispatch("cast", "cast_from", &[], &p, &[&xd, &yd, x, y, s], g)
        }
        (a, b) => Err(Error::shape(
            OP,
            format!(
                "casts go F32 -> F16 (optionally loss-scaled) or F16 -> F32, not {a:?} -> {b:?}"
            ),
        )),
    }
}

/// Set `flag` (U32 `[1]`) to 1 if any gradient holds an Inf or NaN, else 0.
pub fn finite_check_into(rec: &mut Recorder, grads: &[&Tensor], flag: &Tensor) -> Result<()> {
    const OP: &str = "finite_check";
    expect(OP, "flag", flag, Shape::vector(1), DType::U32)?;
    let scaler = dummy(rec, DType::F32)?;
    let pad = dummy(rec, DType::F32)?;
    rec.dispatch(
        "amp",
        "clear_flag",
        &[],
        &AmpParams::default(),
        &[&pad, &pad, &pad, &pad, &pad, &pad, flag, &scaler],
        [1, 1, 1],
    )?;
    for chunk in grads.chunks(6) {
        let mut p = AmpParams::default();
        let mut bound: Vec<&Tensor> = Vec::with_capacity(8);
        for (k, g) in chunk.iter().enumerate() {
            if g.dtype != DType::F32 {
                return Err(Error::shape(
                    OP,
                    format!(
                        "gradient {} is {:?}; parameter gradients are F32",
                        g.shape, g.dtype
                    ),
                ));
            }
            p.glen[k] = g.numel() as u32;
            bound.push(g);
        }
        while bound.len() < 6 {
            bound.push(&pad);
        }
        bound.push(flag);
        bound.push(&scaler);
        let longest = chunk.iter().map(|g| g.numel()).max().unwrap_or(0);
        let grid = rec.grid(groups_for(longest, 256))?;
        rec.dispatch("amp", "finite_check", &[], &p, &bound, grid)?;
    }
    Ok(())
}

/// Adjust the loss scale after a step from `flag` (see the module docs).
pub fn update_scale_into(
    rec: &mut Recorder,
    flag: &Tensor,
    scaler: &Tensor,
    interval: u32,
) -> Result<()> {
    const OP: &str = "update_scale";
    expect(OP, "flag", flag, Shape::vector(1), DType::U32)?;
    check_scaler(OP, scaler)?;
    if interval == 0 {
        return Err(Error::shape(
            OP,
            "the growth interval must be positive".to_string(),
        ));
    }
    let pad = dummy(rec, DType::F32)?;
    let p = AmpParams {
        interval,
        ..Default::default()
    };
    rec.dispatch(
        "amp",
        "update_scale",
        &[],
        &p,
        &[&pad, &pad, &pad, &pad, &pad, &pad, flag, scaler],
        [1, 1, 1],
    )
}
