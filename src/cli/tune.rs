//! `wunet tune unet2d|unet3d [model flags]`: measure the conv kernel variants of a model's
//! training step ahead of time and keep the winners in the tuning cache
//! ([`crate::ops::conv::tune`]); and the cache lines of `wunet devices`.

use super::bench::{unet_bench_spec, UNetBenchArgs};
use crate::error::Result;
use crate::gpu::Context;
use crate::ops::conv::tune;

/// Build the training step of the model (which records every convolution: each f32
/// stride-1 3x3(x3) forward and grad input is measured without a time budget unless the
/// cache already holds it) and report the choices, one line per shape.
pub fn run_tune(ctx: &Context, dims: usize, a: &UNetBenchArgs) -> Result<String> {
    if tune::mode() == tune::Mode::Off {
        return Ok("tuning is off (WUNET_TUNE=0): nothing measured\n".into());
    }
    tune::set_mode(tune::Mode::Unbounded);
    let spec = unet_bench_spec(dims, a, ctx.precision(&a.precision)?)?;
    let t0 = std::time::Instant::now();
    let _session = crate::train::session::Session::new(ctx, &spec)?;
    let mut out = format!("adapter: {}\n", ctx.describe());
    out += &format!(
        "unet{dims}d base {} depth {} input {}x1x{}: {:.2} s (measuring {:.2} s)\n",
        spec.config.base,
        spec.config.depth,
        spec.batch,
        spec.spatial
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("x"),
        t0.elapsed().as_secs_f64(),
        tune::spent().as_secs_f64()
    );
    out += &decisions_report();
    match tune::cache_path() {
        Some(p) => out += &format!("cache: {}\n", p.display()),
        None => out += "cache: none (set WUNET_CACHE_DIR, XDG_CACHE_HOME or HOME)\n",
    }
    Ok(out)
}

/// The conv variants chosen in this process, one line each (`bench --profile` prints it).
pub fn decisions_report() -> String {
    let mut out = String::new();
    for (key, name, how) in tune::decisions() {
        out += &format!("  {key:<44} {name:<10} ({how})\n");
    }
    out
}

/// `wunet devices`: the tuning cache's path and its entries for this adapter and driver.
pub fn cache_report(info: &wgpu::AdapterInfo) -> String {
    let Some(p) = tune::cache_path() else {
        return "  conv tuning cache: none (no WUNET_CACHE_DIR, XDG_CACHE_HOME or HOME)\n".into();
    };
    let entries = tune::entries_for(info);
    let mut out = format!(
        "  conv tuning cache: {} ({} entries for this adapter and driver)\n",
        p.display(),
        entries.len()
    );
    for (key, e) in entries {
        out += &format!("    {key:<44} {:<10} {}\n", e.variant, e.times);
    }
    out
}
