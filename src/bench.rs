//! Timing of GPU work (used by `wunet bench` and the criterion benches).
//! Timings are wall-clock from submission to completion, median of runs.

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
