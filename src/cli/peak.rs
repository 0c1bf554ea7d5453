//! `wunet bench peak [--runs N] [--json]`: the adapter's own ceilings.

use crate::bench::peak::measure;
use crate::error::Result;
use crate::gpu::Context;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct PeakArgs {
    #[arg(long, default_value_t = 10, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub runs: usize,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Measure and print every ceiling (see [`crate::bench::peak`]).
pub fn bench_peak(ctx: &Context, a: &PeakArgs) -> Result<()> {
    let peaks = measure(ctx, a.runs.max(1))?;
    if !a.json {
        println!("adapter: {}", ctx.describe());
    }
    for p in &peaks {
        if a.json {
            let obj = serde_json::json!({
                "adapter": ctx.info.name,
                "backend": format!("{:?}", ctx.info.backend),
                "driver": format!("{} {}", ctx.info.driver, ctx.info.driver_info),
                "op": format!("peak.{}", p.name),
                "value": p.value,
                "unit": p.unit,
                if p.unit == "GB/s" { "gbps" } else { "gflops" }: p.value,
                "median_ms": p.median_ms,
                "kernel": p.kernel,
                "timer": p.timer.name(),
                "runs": a.runs,
                "version": env!("CARGO_PKG_VERSION"),
            });
            println!("{obj}");
        } else {
            let (v, unit) = match p.unit {
                "GFLOP/s" if p.value >= 1000.0 => (p.value / 1000.0, "TFLOP/s"),
                u => (p.value, u),
            };
            println!(
                "peak {:<12} {v:>10.2} {unit:<8} ({:.3} ms, {}; {})",
                p.name,
                p.median_ms,
                p.timer.name(),
                p.kernel
            );
        }
    }
    Ok(())
}
