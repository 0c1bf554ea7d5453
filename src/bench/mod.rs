//! Timing of GPU work (used by `wunet bench` and the criterion benches), and
//! the adapter ceilings of `wunet bench peak` ([`peak`]).
//! Timings are wall-clock from submission to completion, median of runs.

pub mod peak;

use crate::error::Result;
use crate::gpu::{Context, Program};
use std::time::Instant;

/// Submit `program` `warmup` times, then `runs` times, waiting for completion
/// after each; returns per-run milliseconds, sorted.
pub fn time_program(
    ctx: &Context,
    program: &Program,
    warmup: usize,
    runs: usize,
) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        program.submit(ctx);
        ctx.wait()?;
    }
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        program.submit(ctx);
        ctx.wait()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(ms)
}

pub fn median(sorted: &[f64]) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[sorted.len() / 2]
}

/// Multiply-accumulates of a convolution producing `out_numel` outputs with
/// `k` terms each; FLOPs are 2x this.
pub fn conv_macs(out_numel: usize, k: usize) -> f64 {
    out_numel as f64 * k as f64
}

/// How a benchmark was timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// GPU timestamps written around the dispatches (no submission overhead).
    Gpu,
    /// Wall clock from submission to completion.
    Wall,
}

impl Timer {
    pub fn name(self) -> &'static str {
        match self {
            Timer::Gpu => "gpu-timestamps",
            Timer::Wall => "wall-clock",
        }
    }
}

/// Per-run milliseconds of `program`, sorted: the GPU time of its dispatches
/// from timestamps where the device has them, else the wall clock (see
/// [`time_program`]).
pub fn time_program_best(
    ctx: &Context,
    program: &Program,
    warmup: usize,
    runs: usize,
) -> Result<(Timer, Vec<f64>)> {
    if !ctx.has_gpu_timestamps() {
        return Ok((Timer::Wall, time_program(ctx, program, warmup, runs)?));
    }
    for _ in 0..warmup {
        program.gpu_times(ctx)?;
    }
    let mut ms: Vec<f64> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = program.gpu_times(ctx)?.unwrap_or_default();
        ms.push(t.iter().sum());
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok((Timer::Gpu, ms))
}
