//! Machine-readable bench results: `--json` prints one object per line.
//!
//! Two kinds of line. A kernel line ([`Record`]) has `adapter`, `backend`,
//! `driver`, `op`, `shape`, `variant`, `timer`, `runs`, `median_ms`,
//! `min_ms`, `max_ms`, `gflops` (compute-bound) or `gbps` (memory-bound),
//! `pct_peak`, `version`, `commit`, plus `bound`, `intensity` (FLOP/byte),
//! `flop`, `bytes` and `case` (the bench case that ran it). The ceilings
//! line of `wunet bench peak` ([`PeakRecord`], `op` = `"peak"`) has
//! `fma_gflops`, `fma_f16_gflops` and `matrix_gflops` (where the adapter has
//! them), `bandwidth_read_gbps`, `bandwidth_write_gbps`,
//! `bandwidth_copy_gbps`, and the kernel of each. `wunet bench all --json`
//! starts with the ceilings line; `bench compare` and `bench roofline` read
//! both kinds ([`read_jsonl`]).

use super::cost::{Ceilings, Cost, Roof};
use super::peak::Peak;
use super::Timer;
use crate::error::{Error, Result};
use crate::gpu::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The git commit the binary was built from (`build.rs`), or `"unknown"`.
pub fn commit() -> &'static str {
    option_env!("WUNET_COMMIT").unwrap_or("unknown")
}

/// The crate version.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Which adapter and build produced a result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Env {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub version: String,
    pub commit: String,
}

impl Env {
    /// This adapter and this build.
    pub fn of(ctx: &Context) -> Self {
        Env {
            adapter: ctx.info.name.clone(),
            backend: format!("{:?}", ctx.info.backend),
            driver: format!("{} {}", ctx.info.driver, ctx.info.driver_info)
                .trim()
                .to_string(),
            version: version().to_string(),
            commit: commit().to_string(),
        }
    }
}

/// One timed kernel (or op, or step) with its place under the roof.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub env: Env,
    /// The graph op (`Conv`, `ReluGrad`, ...) or `step` for a whole U-Net step.
    pub op: String,
    /// The op's first input shape (`NxCx[D]xHxW`), or the step's input.
    pub shape: String,
    /// Precision and the `kernel::entry` points that ran (plus the case's
    /// setting where one op has several, e.g. the pad mode).
    pub variant: String,
    /// `gpu-timestamps` or `wall-clock`.
    pub timer: String,
    pub runs: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbps: Option<f64>,
    /// Share of the binding ceiling (FMA peak or bandwidth), percent.
    pub pct_peak: f64,
    /// `compute` or `memory`: which ceiling binds at this intensity.
    pub bound: String,
    /// FLOP per byte.
    pub intensity: f64,
    pub flop: f64,
    pub bytes: f64,
    /// The bench case (`bench op <case>`), or `unet2d.step` / `unet3d.step`.
    pub case: String,
}

/// Sorted per-run milliseconds summarised: (median, min, max).
pub fn summary(sorted: &[f64]) -> (f64, f64, f64) {
    let med = super::median(sorted);
    let min = sorted.first().copied().unwrap_or(f64::NAN);
    let max = sorted.last().copied().unwrap_or(f64::NAN);
    (med, min, max)
}

/// What one measurement was: op, shape, variant, case.
#[derive(Clone, Debug)]
pub struct What {
    pub op: String,
    pub shape: String,
    pub variant: String,
    pub case: String,
}

impl Record {
    /// A record of `what`, which did `cost` in each of the sorted `times`
    /// (ms), placed under `ceil`.
    pub fn new(
        env: &Env,
        what: What,
        timer: Timer,
        times: &[f64],
        cost: Cost,
        ceil: &Ceilings,
    ) -> Self {
        let (median_ms, min_ms, max_ms) = summary(times);
        let roof: Roof = ceil.place(cost, median_ms);
        Record {
            env: env.clone(),
            op: what.op,
            shape: what.shape,
            variant: what.variant,
            timer: timer.name().to_string(),
            runs: times.len(),
            median_ms,
            min_ms,
            max_ms,
            gflops: roof.compute_bound.then_some(roof.gflops),
            gbps: (!roof.compute_bound).then_some(roof.gbps),
            pct_peak: roof.pct_peak,
            bound: if roof.compute_bound {
                "compute"
            } else {
                "memory"
            }
            .to_string(),
            intensity: roof.intensity,
            flop: cost.flop,
            bytes: cost.bytes,
            case: what.case,
        }
    }

    /// Achieved GFLOP/s (from `flop` and the median).
    pub fn achieved_gflops(&self) -> f64 {
        self.flop / (self.median_ms * 1e-3).max(1e-12) / 1e9
    }

    /// The key `bench compare` matches lines on.
    pub fn key(&self) -> (String, String, String) {
        (self.op.clone(), self.shape.clone(), self.variant.clone())
    }

    /// One human-readable line.
    pub fn text(&self) -> String {
        let rate = match (self.gflops, self.gbps) {
            (Some(g), _) => format!("{g:>9.2} GFLOP/s"),
            (_, Some(b)) => format!("{b:>9.2} GB/s   "),
            _ => String::new(),
        };
        format!(
            "{:<24} {:<18} {:>10.3} ms {rate} {:>6.1}% of {} peak  AI {:>7.2}  {}",
            self.op,
            self.shape,
            self.median_ms,
            self.pct_peak,
            self.bound,
            self.intensity,
            self.variant
        )
    }
}

/// The ceilings line of `wunet bench peak --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeakRecord {
    #[serde(flatten)]
    pub env: Env,
    /// Always `"peak"`.
    pub op: String,
    pub timer: String,
    pub runs: usize,
    pub fma_gflops: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fma_f16_gflops: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_gflops: Option<f64>,
    pub bandwidth_read_gbps: f64,
    pub bandwidth_write_gbps: f64,
    pub bandwidth_copy_gbps: f64,
    /// Kernel and parameters of each ceiling, by ceiling name.
    pub kernels: BTreeMap<String, String>,
}

impl PeakRecord {
    /// The ceilings line of `peaks` (as measured by `peak::measure`).
    pub fn new(env: &Env, peaks: &[Peak], runs: usize) -> Result<Self> {
        let get = |name: &str| peaks.iter().find(|p| p.name == name).map(|p| p.value);
        let need = |name: &str| {
            get(name).ok_or_else(|| Error::Other(format!("bench peak: no '{name}' ceiling")))
        };
        Ok(PeakRecord {
            env: env.clone(),
            op: "peak".into(),
            timer: peaks
                .first()
                .map(|p| p.timer.name())
                .unwrap_or("none")
                .into(),
            runs,
            fma_gflops: need("fma_f32")?,
            fma_f16_gflops: get("fma_f16"),
            matrix_gflops: get("mma_f16_f32"),
            bandwidth_read_gbps: need("read")?,
            bandwidth_write_gbps: need("write")?,
            bandwidth_copy_gbps: need("copy")?,
            kernels: peaks
                .iter()
                .map(|p| (p.name.to_string(), p.kernel.clone()))
                .collect(),
        })
    }

    /// The ceilings kernels are placed under: f32 FMA, and the best of the
    /// three bandwidths.
    pub fn ceilings(&self) -> Ceilings {
        Ceilings {
            gflops: self.fma_gflops,
            gbps: self
                .bandwidth_read_gbps
                .max(self.bandwidth_write_gbps)
                .max(self.bandwidth_copy_gbps),
        }
    }
}

/// One line of a results file.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Peak(PeakRecord),
    Kernel(Record),
}

/// Parse one line (`op` = `"peak"` is the ceilings line).
pub fn parse_line(s: &str) -> std::result::Result<Line, String> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
    if v.get("op").and_then(|o| o.as_str()) == Some("peak") {
        serde_json::from_value(v)
            .map(Line::Peak)
            .map_err(|e| e.to_string())
    } else {
        serde_json::from_value(v)
            .map(Line::Kernel)
            .map_err(|e| e.to_string())
    }
}

/// Every line of a `--json` results file (blank lines and lines that are
/// not JSON objects, such as progress text, are an error naming the file
/// and line).
pub fn read_jsonl(path: &Path) -> Result<Vec<Line>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line = parse_line(l).map_err(|e| {
            Error::Other(format!(
                "{}:{}: not a wunet bench JSON line: {e}",
                path.display(),
                i + 1
            ))
        })?;
        out.push(line);
    }
    if out.is_empty() {
        return Err(Error::Other(format!(
            "{}: no bench results in the file",
            path.display()
        )));
    }
    Ok(out)
}

/// One JSON line of `rec`.
pub fn to_line<T: Serialize>(rec: &T) -> String {
    serde_json::to_string(rec).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
