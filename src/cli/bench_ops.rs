//! `wunet bench op | all | compare | roofline`: op cases against the
//! adapter's ceilings, the whole set with kernel-file coverage, comparing two
//! JSON-lines result files, and the roofline plot (see [`crate::bench`]).

use super::bench::{parse_variant, profile_step, step_records, unet_bench_spec, UNetBenchArgs};
use crate::bench::json::{to_line, Env, Record};
use crate::bench::ops::Setup;
use crate::error::{Error, Result};
use crate::gpu::{Context, DType};
use crate::shape::parse_shape;
use clap::Args;

/// `wunet bench op <case>`: one case of `bench::ops::CASES`.
#[derive(Args, Debug, Clone)]
pub struct OpBenchArgs {
    /// The case (`wunet bench op list` lists them).
    pub case: String,
    /// 2 or 3 (the 2D or 3D U-Net's sizes).
    #[arg(long, default_value_t = 2)]
    pub dims: usize,
    /// Base activation shape NxCxHxW or NxCxDxHxW (overrides --dims and --size);
    /// each case derives its input from it.
    #[arg(long)]
    pub shape: Option<String>,
    /// auto (quick on CPU adapters), full (the U-Nets' first level: 2x32x256x256,
    /// 1x16x64x64x64), quick (half the spatial size per axis) or tiny.
    #[arg(long, default_value = "auto")]
    pub size: String,
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// conv3x3 and conv_transpose: also time these conv kernels, each pass on its own
    /// (comma list: tiled, cpu, direct, up, coop-direct, coop-im2col, coop-direct-emu, ...).
    #[arg(long)]
    pub variant: Option<String>,
    /// One JSON object per line (the ceilings line first).
    #[arg(long)]
    pub json: bool,
}

/// The ceilings line and the placement of kernels under it.
pub(crate) fn ceilings(ctx: &Context, json: bool) -> Result<crate::bench::json::PeakRecord> {
    let (peaks, rec) = crate::cli::peak::measure_peak(ctx, 3)?;
    if json {
        println!("{}", to_line(&rec));
    } else {
        println!("adapter: {}", ctx.describe());
        println!("timer: {}", crate::bench::all::timer_of(ctx).name());
        print!("{}", crate::cli::peak::peak_text(&peaks));
    }
    Ok(rec)
}

fn print_record(r: &Record, json: bool) {
    if json {
        println!("{}", to_line(r));
    } else {
        println!("{}", r.text());
    }
}

/// Run one case (or list them with `list`).
pub fn bench_op(ctx: &Context, a: &OpBenchArgs) -> Result<()> {
    use crate::bench::ops::{find_case, run_case, Size, CASES};
    if a.case == "list" {
        for c in CASES {
            println!("{:<18} {}", c.name, c.about);
        }
        return Ok(());
    }
    let case = find_case(&a.case)?;
    if let Some(why) = case
        .needs
        .and_then(|n| crate::bench::ops::unavailable(ctx, n))
    {
        return Err(Error::Other(format!("bench op {}: {why}", case.name)));
    }
    let base = match &a.shape {
        Some(s) => parse_shape(s)?,
        None if a.dims == 2 || a.dims == 3 => Size::parse(&a.size, ctx)?.base_shape(a.dims),
        None => return Err(Error::Other(format!("--dims {}: expected 2 or 3", a.dims))),
    };
    let variants = match (&a.variant, case.name) {
        (Some(v), "conv3x3" | "conv_transpose") => v
            .split(',')
            .map(|s| parse_variant(s.trim()))
            .collect::<Result<Vec<_>>>()?,
        (Some(_), other) => {
            return Err(Error::Other(format!(
                "--variant applies to conv3x3 and conv_transpose, not {other}"
            )))
        }
        (None, _) => Vec::new(),
    };
    let peak = ceilings(ctx, a.json)?;
    let env = Env::of(ctx);
    let setup = Setup {
        runs: a.runs.max(1),
        ceilings: peak.ceilings(),
        env: &env,
    };
    let input = (case.input)(base);
    for r in run_case(ctx, case, input, &setup)?.records {
        print_record(&r, a.json);
    }
    for k in variants {
        let act = if k.is_coop() { DType::F16 } else { DType::F32 };
        let transpose = case.name == "conv_transpose";
        let (run, skips) = crate::bench::all::conv_variant(ctx, input, transpose, k, act, &setup)?;
        for r in run.records {
            print_record(&r, a.json);
        }
        for s in skips {
            eprintln!("skip: {}: {}", s.what, s.reason);
        }
    }
    Ok(())
}

/// `wunet bench all`: every case, 2D and 3D, the conv variants and the U-Net steps.
#[derive(Args, Debug, Clone)]
pub struct AllBenchArgs {
    /// auto (quick on CPU adapters), full, quick or tiny (see `bench op --help`);
    /// the U-Net steps run at the bench configurations (full), at half (quick)
    /// or an eighth (tiny) of the spatial size per axis.
    #[arg(long, default_value = "auto")]
    pub size: String,
    /// Runs per measurement.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Leave out the U-Net step profiles.
    #[arg(long)]
    pub no_unet: bool,
    /// One JSON object per line (the ceilings line first); progress and the
    /// kernel coverage go to stderr.
    #[arg(long)]
    pub json: bool,
}

/// Run everything; prints every record, what was skipped and the kernel coverage.
pub fn bench_all(ctx: &Context, a: &AllBenchArgs) -> Result<()> {
    use crate::bench::all::{run_cases, AllOptions, Coverage};
    use crate::bench::ops::Size;
    let t0 = std::time::Instant::now();
    let size = Size::parse(&a.size, ctx)?;
    let peak = ceilings(ctx, a.json)?;
    eprintln!("bench all: size {}, 2D and 3D", size.name());
    let env = Env::of(ctx);
    let setup = Setup {
        runs: a.runs.max(1),
        ceilings: peak.ceilings(),
        env: &env,
    };
    let opts = AllOptions {
        size,
        dims: vec![2, 3],
        conv_variants: true,
    };
    let mut lines = 0usize;
    let mut emit = |r: &Record| {
        lines += 1;
        print_record(r, a.json)
    };
    let (mut run, skips) = run_cases(ctx, &opts, &setup, &mut emit)?;
    if !a.no_unet {
        for dims in [2, 3] {
            run.kernels
                .extend(bench_all_step(ctx, dims, size, &setup, &mut emit)?);
        }
    }
    run.kernels.insert("peak");
    if peak.matrix_gflops.is_some() {
        run.kernels.insert("peak_coop");
    }
    for s in &skips {
        eprintln!("skip: {}: {}", s.what, s.reason);
    }
    let cov = Coverage::new(ctx, run.kernels);
    for (k, why) in &cov.skipped {
        eprintln!("skip: kernels/{k}.wgsl: {why}");
    }
    eprintln!(
        "kernel files run: {} ({}); skipped: {}; missing: {:?}",
        cov.ran.len(),
        cov.ran.iter().copied().collect::<Vec<_>>().join(", "),
        cov.skipped.len(),
        cov.missing()
    );
    eprintln!(
        "bench all: {lines} lines in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The U-Net step of `bench all` (bench configuration; half size per axis
/// unless `size` is full), its per-op records emitted; returns its kernel files.
fn bench_all_step(
    ctx: &Context,
    dims: usize,
    size: crate::bench::ops::Size,
    setup: &Setup,
    emit: &mut dyn FnMut(&Record),
) -> Result<std::collections::BTreeSet<&'static str>> {
    let full = if dims == 2 { 256 } else { 64 };
    let side = match size {
        crate::bench::ops::Size::Full => full,
        crate::bench::ops::Size::Quick => full / 2,
        crate::bench::ops::Size::Tiny => full / if dims == 2 { 8 } else { 4 },
    };
    let args = UNetBenchArgs {
        base: None,
        depth: None,
        input: Some(vec![side.to_string(); dims].join("x")),
        batch: None,
        runs: setup.runs,
        profile: true,
        precision: "f32".into(),
        json: false,
    };
    let spec = unet_bench_spec(dims, &args, crate::shape::Precision::F32)?;
    let mut s = crate::bench::step::session(ctx, &spec)?;
    let prof = profile_step(ctx, &mut s, setup.runs)?;
    let input = format!("{}x1x{}", spec.batch, args.input.unwrap_or_default());
    for r in step_records(&format!("unet{dims}d.step"), &input, &prof, setup) {
        emit(&r);
    }
    Ok(prof
        .dispatches
        .iter()
        .map(|d| crate::bench::ops::kernel_file(d.kernel))
        .collect())
}

/// `wunet bench compare A.jsonl B.jsonl`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Baseline results (`--json` output).
    pub a: std::path::PathBuf,
    /// New results.
    pub b: std::path::PathBuf,
    /// A regression is a median time above A's by more than this fraction.
    #[arg(long, default_value_t = 0.10)]
    pub threshold: f64,
}

/// Print the comparison; returns the number of regressions.
pub fn bench_compare(a: &CompareArgs) -> Result<usize> {
    let c = crate::bench::compare::compare_files(&a.a, &a.b, a.threshold)?;
    print!("{}", c.text(a.threshold));
    Ok(c.regressions())
}

/// `wunet bench roofline --json results.jsonl --out roofline.png`.
#[derive(Args, Debug, Clone)]
pub struct RooflineArgs {
    /// Results with a ceilings line (`wunet bench all --json`).
    #[arg(long = "json")]
    pub json: std::path::PathBuf,
    #[arg(long, default_value = "roofline.png")]
    pub out: std::path::PathBuf,
}

/// Draw the roofline PNG.
pub fn bench_roofline(a: &RooflineArgs) -> Result<()> {
    let n = crate::bench::roofline::plot_file(&a.json, &a.out)?;
    println!("roofline: {n} kernels -> {}", a.out.display());
    Ok(())
}
