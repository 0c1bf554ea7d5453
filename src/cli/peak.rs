//! `wunet bench peak [--runs N] [--json]`: the adapter's own ceilings.

use crate::bench::json::{to_line, Env, PeakRecord};
use crate::bench::peak::{measure, Peak};
use crate::error::Result;
use crate::gpu::Context;
use clap::Args;

/// Options of `wunet bench peak`.
#[derive(Args, Debug, Clone)]
pub struct PeakArgs {
    #[arg(long, default_value_t = 10, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub runs: usize,
    /// One JSON object (the ceilings line) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Measure every ceiling (see [`crate::bench::peak`]) and its JSON line.
pub fn measure_peak(ctx: &Context, runs: usize) -> Result<(Vec<Peak>, PeakRecord)> {
    let peaks = measure(ctx, runs.max(1))?;
    let rec = PeakRecord::new(&Env::of(ctx), &peaks, runs.max(1))?;
    Ok((peaks, rec))
}

/// The ceilings as text, one per line, with kernel and timer.
pub fn peak_text(peaks: &[Peak]) -> String {
    let mut s = String::new();
    for p in peaks {
        let (v, unit) = match p.unit {
            "GFLOP/s" if p.value >= 1000.0 => (p.value / 1000.0, "TFLOP/s"),
            u => (p.value, u),
        };
        s += &format!(
            "peak {:<12} {v:>10.2} {unit:<8} ({:.3} ms, {}; {})\n",
            p.name,
            p.median_ms,
            p.timer.name(),
            p.kernel
        );
    }
    s
}

/// Measure and print every ceiling.
pub fn bench_peak(ctx: &Context, a: &PeakArgs) -> Result<()> {
    let (peaks, rec) = measure_peak(ctx, a.runs)?;
    if a.json {
        println!("{}", to_line(&rec));
    } else {
        println!("adapter: {}", ctx.describe());
        print!("{}", peak_text(&peaks));
    }
    Ok(())
}
