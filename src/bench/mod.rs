//! Timing of GPU work (used by `wunet bench` and the criterion benches): the
//! adapter ceilings of `wunet bench peak` ([`peak`]), FLOP and byte counts
//! of every op and the roofline placement ([`cost`]), the per-op cases of
//! `wunet bench op|all` ([`ops`], [`all`]), U-Net step profiles ([`step`]),
//! JSON lines ([`json`]), `bench compare` ([`compare`]) and the roofline
//! plot ([`roofline`]). Timings are GPU timestamps where the device has
//! them ([`time_program_best`]), else wall clock from submission to
//! completion; medians of runs.

pub mod all;
pub mod compare;
pub mod cost;
pub mod json;
pub mod ops;
pub mod peak;
pub mod roofline;
pub mod step;

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

/// The middle value of sorted milliseconds (NaN when empty).
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
    /// GPU timestamps written at the start and end of the compute pass
    /// (devices with `TIMESTAMP_QUERY` but none inside passes).
    GpuPass,
    /// Wall clock from submission to completion.
    Wall,
}

impl Timer {
    /// `gpu-timestamps` or `wall-clock`, as printed and in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Timer::Gpu => "gpu-timestamps",
            Timer::GpuPass => "gpu-pass-timestamps",
            Timer::Wall => "wall-clock",
        }
    }
}

/// Per-run milliseconds of `program`, sorted: the GPU time of its dispatches
/// from timestamps between them where the device has them, else from
/// timestamps at the start and end of the pass (`TIMESTAMP_QUERY` alone),
/// else the wall clock (see [`time_program`]).
pub fn time_program_best(
    ctx: &Context,
    program: &Program,
    warmup: usize,
    runs: usize,
) -> Result<(Timer, Vec<f64>)> {
    if !ctx.has_gpu_timestamps() {
        if ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Ok((
                Timer::GpuPass,
                time_program_pass(ctx, program, warmup, runs)?,
            ));
        }
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

/// Per-run milliseconds of `program`, sorted, from the timestamps its compute
/// pass writes at start and end ([`Program::gpu_pass_time`]).
pub fn time_program_pass(
    ctx: &Context,
    program: &Program,
    warmup: usize,
    runs: usize,
) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        program.gpu_pass_time(ctx)?;
    }
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        ms.push(program.gpu_pass_time(ctx)?.unwrap_or(f64::NAN));
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(ms)
}
