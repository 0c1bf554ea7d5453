use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;
use wunet::cli::bench::{
    bench_all, bench_compare, bench_conv, bench_op, bench_roofline, bench_unet, AllBenchArgs,
    CompareArgs, ConvBenchArgs, OpBenchArgs, RooflineArgs, UNetBenchArgs,
};
use wunet::cli::eval::{run_eval, EvalArgs};
use wunet::cli::model::{model_report, plan_report, ModelArgs, PlanArgs};
use wunet::cli::peak::{bench_peak, PeakArgs};
use wunet::cli::predict::{run_predict, PredictArgs};
use wunet::cli::train::{check_before_gpu, help_with_defaults, run_train, TrainArgs};
use wunet::gpu::context::{adapter_report, enumerate_adapters};
use wunet::{Context, ContextOptions};

#[derive(Parser)]
#[command(
    name = "wunet",
    version,
    about = "U-Net segmentation on any GPU wgpu reaches"
)]
struct Cli {
    /// Graphics API: vulkan, metal, dx12, gl (default: WUNET_BACKEND, else any).
    #[arg(long, global = true, env = "WUNET_BACKEND")]
    backend: Option<String>,
    /// Pick the adapter whose name contains this text.
    #[arg(long, global = true, env = "WUNET_ADAPTER")]
    adapter: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List every adapter with backend, type, driver and limits.
    Devices,
    /// Time kernels.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Print a model's layer table and parameter count (no GPU needed).
    Model(ModelArgs),
    /// Print a model's memory plan (no GPU needed).
    Plan(PlanArgs),
    /// Train a U-Net (default: 2D on built-in synthetic EM-like data).
    Train(Box<TrainArgs>),
    /// Segment an image or volume of any size with a checkpoint (overlap-tile).
    Predict(Box<PredictArgs>),
    /// Print metrics of a checkpoint on labelled data, one `name: value` per line.
    Eval(EvalArgs),
    /// Measure the conv kernel variants of a model's training step and fill the tuning cache.
    #[command(subcommand)]
    Tune(TuneCmd),
}

#[derive(Subcommand)]
enum TuneCmd {
    /// The U-Net 2D training step (model flags as `bench unet2d`).
    Unet2d(UNetBenchArgs),
    /// The 3D U-Net training step (model flags as `bench unet3d`).
    Unet3d(UNetBenchArgs),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Convolution forward (and --backward).
    Conv(ConvBenchArgs),
    /// Transposed convolution forward (and --backward).
    ConvTranspose(ConvBenchArgs),
    /// One U-Net 2D training step (base 32, depth 4, BN, 2x1x256x256).
    Unet2d(UNetBenchArgs),
    /// One 3D U-Net training step (base 16, depth 3, BN, 1x1x64x64x64).
    Unet3d(UNetBenchArgs),
    /// The adapter's ceilings: f32 / f16 FMA, matrix units, memory bandwidth.
    Peak(PeakArgs),
    /// One op family (forward and backward) against the ceilings; `bench op list` lists them.
    Op(OpBenchArgs),
    /// Every op family in 2D and 3D, the conv kernels and the U-Net steps (a roofline).
    All(AllBenchArgs),
    /// Compare two `--json` result files; exit 1 on a regression, 2 on bad input.
    Compare(CompareArgs),
    /// Draw a roofline PNG from `--json` results.
    Roofline(RooflineArgs),
}

/// Exit status of a training stopped by SIGINT / SIGTERM.
const EXIT_SIGNALLED: u8 = 130;

fn run(cli: Cli) -> wunet::Result<ExitCode> {
    let opts = ContextOptions {
        backend: cli.backend.clone(),
        adapter: cli.adapter.clone(),
    };
    match cli.cmd {
        Cmd::Model(a) => print!("{}", model_report(&a)?),
        Cmd::Plan(a) => print!("{}", plan_report(&a)?),
        Cmd::Train(a) => {
            check_before_gpu(&a)?;
            let ctx = Context::new(&opts)?;
            eprintln!("adapter: {}", ctx.describe());
            let (summary, signalled) = run_train(&ctx, &a)?;
            print!("{summary}");
            if signalled {
                return Ok(ExitCode::from(EXIT_SIGNALLED));
            }
        }
        Cmd::Predict(a) => {
            if let Some(store) = &a.zarr.status {
                print!("{}", wunet::infer::blocks::store::status(store)?);
            } else {
                a.check_before_gpu()?;
                let ctx = Context::new(&opts)?;
                print!("{}", run_predict(&ctx, &a)?);
            }
        }
        Cmd::Eval(a) => {
            a.check_before_gpu()?;
            let ctx = Context::new(&opts)?;
            print!("{}", run_eval(&ctx, &a)?.to_text());
        }
        Cmd::Tune(t) => {
            let ctx = Context::new(&opts)?;
            let (dims, a) = match t {
                TuneCmd::Unet2d(a) => (2, a),
                TuneCmd::Unet3d(a) => (3, a),
            };
            print!("{}", wunet::cli::tune::run_tune(&ctx, dims, &a)?);
        }
        Cmd::Devices => {
            let adapters = enumerate_adapters(&opts)?;
            if adapters.is_empty() {
                return Err(wunet::Error::Gpu(format!(
                    "no adapter found (backend: {}). Install a Vulkan driver; without a GPU install Mesa's lavapipe (Debian: mesa-vulkan-drivers libvulkan1)",
                    opts.backend.as_deref().unwrap_or("any")
                )));
            }
            for a in adapters {
                println!("{}", adapter_report(&a));
                // The coop conv line: decided from the adapter's facts where they rule the
                // kernels out, else by opening the device and running the self-test.
                let line = match wunet::ops::coop::hardware_support(
                    a.features(),
                    &a.cooperative_matrix_properties(),
                    &a.get_info(),
                ) {
                    Err(why) => wunet::ops::coop::CoopConv::Unavailable(why).to_string(),
                    Ok(_) => match Context::open(&a) {
                        Ok(ctx) => wunet::ops::coop::status(&ctx).to_string(),
                        Err(e) => format!("cooperative matrix conv: not used (device: {e})"),
                    },
                };
                println!("  {line}");
                print!("{}", wunet::cli::tune::cache_report(&a.get_info()));
            }
        }
        Cmd::Bench(BenchCmd::Compare(a)) => {
            return Ok(match bench_compare(&a) {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            });
        }
        Cmd::Bench(BenchCmd::Roofline(a)) => bench_roofline(&a)?,
        Cmd::Bench(b) => {
            match &b {
                BenchCmd::Conv(a) | BenchCmd::ConvTranspose(a) => a.check()?,
                BenchCmd::Unet2d(a) | BenchCmd::Unet3d(a) => a.check()?,
                BenchCmd::Peak(_)
                | BenchCmd::Op(_)
                | BenchCmd::All(_)
                | BenchCmd::Compare(_)
                | BenchCmd::Roofline(_) => {}
            }
            let ctx = Context::new(&opts)?;
            match b {
                BenchCmd::Conv(a) => {
                    bench_conv(&ctx, &a, false)?;
                }
                BenchCmd::Unet2d(a) => {
                    bench_unet(&ctx, 2, &a)?;
                }
                BenchCmd::Unet3d(a) => {
                    bench_unet(&ctx, 3, &a)?;
                }
                BenchCmd::ConvTranspose(a) => {
                    bench_conv(&ctx, &a, true)?;
                }
                BenchCmd::Peak(a) => {
                    bench_peak(&ctx, &a)?;
                }
                BenchCmd::Op(a) => bench_op(&ctx, &a)?,
                BenchCmd::All(a) => bench_all(&ctx, &a)?,
                BenchCmd::Compare(_) | BenchCmd::Roofline(_) => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writing to a closed pipe (`wunet ... | head`) ends the process quietly,
/// as it does for other command-line tools, instead of a panic in `print!`.
fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default action of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    let cmd = Cli::command().mut_subcommand("train", help_with_defaults);
    let cli = match Cli::from_arg_matches(&cmd.get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
