//! `wunet bench conv|conv-transpose ...`

use super::bench_ops::ceilings;
use crate::bench::json::{to_line, Env, Record};
use crate::bench::ops::Setup;
use crate::bench::step::StepProfile;
pub(crate) use crate::bench::step::{profile_step, step_records};
use crate::bench::{median, time_program_best, Timer};
use crate::error::{Error, Result};
use crate::gpu::{Context, DType, Tensor};
use crate::ops::conv::{self, ConvKernel};
use crate::shape::{conv_weight_shape, parse_shape, Shape, Window};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ConvBenchArgs {
    /// Input shape NxCxHxW or NxCxDxHxW.
    #[arg(long = "in", default_value = "1x64x256x256")]
    pub input: String,
    #[arg(long, default_value_t = 64, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub out_channels: usize,
    #[arg(long, default_value_t = 3, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub kernel: usize,
    #[arg(long, default_value_t = 1, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub stride: usize,
    #[arg(long, default_value_t = 1, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub pad: usize,
    /// Also time the backward (grad input + grad weight + grad bias).
    #[arg(long)]
    pub backward: bool,
    /// Kernel variant: auto, tiled, cpu, direct, coop, coop-direct, coop-im2col, coop-emu,
    /// coop-direct-emu, coop-im2col-emu, winograd2, winograd4 (stride-1 3x3(x3) forwards,
    /// grad inputs and grad weights; output tiles of edge 2 / 4), up (transposed convolutions with kernel == stride:
    /// the conv_up kernel; tiled/cpu then time the generic kernels); a comma list times each
    /// in turn (e.g. tiled,coop-im2col,coop-direct). `coop` runs the direct kernel where it
    /// applies unless WUNET_COOP_DIRECT=0; coop-direct / coop-im2col choose explicitly.
    #[arg(long, default_value = "auto")]
    pub variant: String,
    /// Activation storage: f32, or mixed (F16 input, output and gradient tensors; weights
    /// and weight gradients f32); a comma list times each in turn.
    #[arg(long, default_value = "f32")]
    pub precision: String,
    #[arg(long, default_value_t = 5, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub runs: usize,
    /// The ceilings line, then one JSON line per (variant, precision) instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ConvBenchArgs {
    /// Range-check the numeric flags (see [`crate::checks`]).
    pub fn check(&self) -> Result<()> {
        use crate::checks::check_int;
        check_int("--out-channels", self.out_channels as i128, 1, 1 << 16)?;
        check_int("--kernel", self.kernel as i128, 1, 15)?;
        check_int("--stride", self.stride as i128, 1, 16)?;
        check_int("--pad", self.pad as i128, 0, 64)?;
        check_int("--runs", self.runs as i128, 1, 10_000)
    }
}

impl UNetBenchArgs {
    /// Range-check the numeric flags (see [`crate::checks`]).
    pub fn check(&self) -> Result<()> {
        crate::checks::check_net_sizes(self.base, self.depth, None, None, self.batch)?;
        crate::checks::check_int("--runs", self.runs as i128, 1, 10_000)
    }
}

/// A `--variant` value of `bench conv`.
pub fn parse_variant(s: &str) -> Result<ConvKernel> {
    Ok(match s {
        "auto" => ConvKernel::Auto,
        "tiled" => ConvKernel::Tiled,
        "cpu" => ConvKernel::Cpu,
        "direct" => ConvKernel::Direct,
        "coop" => ConvKernel::Coop,
        "coop-emu" => ConvKernel::CoopEmulated,
        "coop-direct" => ConvKernel::CoopDirect,
        "coop-direct-emu" => ConvKernel::CoopDirectEmulated,
        "coop-im2col" => ConvKernel::CoopIm2col,
        "coop-im2col-emu" => ConvKernel::CoopIm2colEmulated,
        "up" => ConvKernel::Up,
        "winograd2" => ConvKernel::Winograd2,
        "winograd4" => ConvKernel::Winograd4,
        o => {
            return Err(Error::Other(format!(
                "unknown variant '{o}' (auto, tiled, cpu, direct, coop, coop-direct, \
                 coop-im2col, coop-emu, coop-direct-emu, coop-im2col-emu, up, winograd2, winograd4)"
            )))
        }
    })
}

/// Refuse a bench shape that cannot fit host memory or one device binding
/// (overflow-safe), with a message naming the flag and the shape.
fn fits(ctx: &Context, flag: &str, dims: &[usize]) -> Result<()> {
    let d: Vec<u64> = dims.iter().map(|&v| v as u64).collect();
    let n = crate::checks::checked_count(&d, 4)
        .map_err(|m| Error::Other(format!("bench {flag}: {m}")))?;
    ctx.check_binding_size("bench", &format!("{flag} tensor {d:?}"), n as u64 * 4)
}

fn filled(ctx: &Context, s: Shape, seed: u32, dt: DType) -> Result<Tensor> {
    let v: Vec<f32> = (0..s.numel())
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 16777216.0 - 0.5
        })
        .collect();
    match dt {
        DType::F16 => Tensor::from_f32_as_f16(ctx, &v, s),
        _ => Tensor::from_f32(ctx, &v, s),
    }
}

/// Activation dtype of a `--precision` value.
pub fn parse_precision(s: &str) -> Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "mixed" => Ok(DType::F16),
        o => Err(Error::Other(format!(
            "unknown precision '{o}' (f32, mixed)"
        ))),
    }
}

/// Times every (variant, precision) of the comma lists in turn; each prints adapter, the
/// configuration with the kernel that ran, median ms and GFLOP/s (a failing combination
/// prints `skip: ...` instead). Returns (ms, GFLOP/s) of the last one that ran.
pub fn bench_conv(ctx: &Context, a: &ConvBenchArgs, transpose: bool) -> Result<(f64, f64)> {
    let mut last = None;
    let mut first_err = None;
    let peak = match a.json {
        true => Some(ceilings(ctx, true)?),
        false => None,
    };
    for v in a.variant.split(',') {
        for p in a.precision.split(',') {
            let variant = parse_variant(v.trim())?;
            let act = parse_precision(p.trim())?;
            match bench_conv_one(ctx, a, transpose, variant, act, peak.as_ref()) {
                Ok(r) => last = Some(r),
                Err(e) => {
                    eprintln!("skip: variant {v} precision {p}: {e}");
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    match (last, first_err) {
        (Some(r), _) => Ok(r),
        (None, Some(e)) => Err(e),
        (None, None) => Err(Error::Other("no variant given".into())),
    }
}

fn bench_conv_one(
    ctx: &Context,
    a: &ConvBenchArgs,
    transpose: bool,
    variant: ConvKernel,
    act: DType,
    peak: Option<&crate::bench::json::PeakRecord>,
) -> Result<(f64, f64)> {
    if let Some(m) = crate::ops::coop::coop_mode(variant) {
        if let (false, Err(why)) = (m.emulated, crate::ops::coop::device_support(ctx)) {
            return Err(Error::Other(format!("no matrix-unit kernels here: {why}")));
        }
    }
    let (xs, ws, ys, win) = conv_bench_shapes(ctx, a, transpose)?;
    let prog = record_conv_bench(ctx, a, transpose, variant, act, (xs, ws, ys), &win)?;
    let (timer, times) = time_program_best(ctx, &prog, 1, a.runs.max(1))?;
    let ms = median(&times);
    let gflops = 2.0 * conv_bench_macs(a.backward, transpose, &xs, &ys, &win) / (ms * 1e6);
    if let Some(peak) = peak {
        let shapes = (xs, ws, ys);
        let rec = conv_record(
            ctx, a, transpose, variant, act, &win, shapes, timer, &times, peak,
        );
        println!("{}", to_line(&rec));
        return Ok((ms, gflops));
    }
    let what = if transpose { "conv_transpose" } else { "conv" };
    println!("adapter: {}", ctx.describe());
    let (ran, detail) = conv_bench_kernels(ctx, a, transpose, variant, act, (&xs, &ws, &ys), &win);
    println!(
        "{what} {} -> {} kernel {} stride {} pad {}{} variant {:?} (ran {ran:?}{detail}, precision {})",
        xs,
        ys,
        a.kernel,
        a.stride,
        a.pad,
        if a.backward {
            " forward+backward"
        } else {
            " forward"
        },
        variant,
        if act == DType::F16 { "mixed" } else { "f32" },
    );
    println!("timer: {}", timer.name());
    println!("median_ms: {ms:.3}");
    println!("gflops: {gflops:.2}");
    Ok((ms, gflops))
}

/// Input, weight and output shapes and the window of `bench conv|conv_transpose`,
/// each checked against the device's limits.
fn conv_bench_shapes(
    ctx: &Context,
    a: &ConvBenchArgs,
    transpose: bool,
) -> Result<(Shape, Shape, Shape, Window)> {
    let xs = parse_shape(&a.input)?;
    fits(ctx, "--in", &xs.dims)?;
    fits(
        ctx,
        "--out-channels",
        &[a.out_channels, xs.c(), a.kernel, a.kernel, a.kernel],
    )?;
    let dims = if xs.is_3d() { 3 } else { 2 };
    let win = Window::cube(dims, a.kernel, a.stride, a.pad);
    let (ws, ys) = if transpose {
        let ws = conv_weight_shape(xs.c(), a.out_channels, &win, xs.is_3d());
        (ws, conv::conv_transpose_out_shape(&xs, &ws, &win)?)
    } else {
        let ws = conv_weight_shape(a.out_channels, xs.c(), &win, xs.is_3d());
        (ws, conv::conv_out_shape(&xs, &ws, &win)?)
    };
    fits(ctx, "output", &ys.dims)?;
    Ok((xs, ws, ys, win))
}

/// The timed program: the forward, and with `--backward` both gradients (and
/// the bias gradient in f32) on filled tensors.
fn record_conv_bench(
    ctx: &Context,
    a: &ConvBenchArgs,
    transpose: bool,
    variant: ConvKernel,
    act: DType,
    (xs, ws, ys): (Shape, Shape, Shape),
    win: &Window,
) -> Result<crate::gpu::Program> {
    let x = filled(ctx, xs, 1, act)?;
    let w = filled(ctx, ws, 2, DType::F32)?;
    let b = filled(ctx, Shape::vector(ys.c()), 3, DType::F32)?;
    let y = Tensor::empty(ctx, ys, act)?;
    let g = filled(ctx, ys, 4, act)?;
    let dx = Tensor::empty(ctx, xs, act)?;
    let dw = Tensor::empty(ctx, ws, DType::F32)?;
    let db = Tensor::empty(ctx, Shape::vector(ys.c()), DType::F32)?;
    ctx.record(|rec| {
        if transpose {
            conv::conv_transpose_into(rec, &x, &w, Some(&b), win, &y, variant)?;
            if a.backward {
                conv::conv_transpose_grad_input_into(rec, &g, &w, win, &dx, variant)?;
                conv::conv_transpose_grad_weight_into(rec, &x, &g, win, &dw, variant)?;
            }
        } else {
            conv::conv_into(rec, &x, &w, Some(&b), win, &y, variant)?;
            if a.backward {
                conv::conv_grad_input_into(rec, &g, &w, win, &dx, variant)?;
                conv::conv_grad_weight_into(rec, &x, &g, win, &dw, variant)?;
            }
        }
        // The bias gradient (not in the FLOP count) reads dy as f32; skipped in mixed mode.
        if a.backward && act == DType::F32 {
            crate::ops::reduce::channel_sum_into(rec, &g, &db, false)?;
        }
        Ok(())
    })
}

/// MACs of the dense formula: forward = every (output, tap) pair; the backward
/// adds the same count twice (grad input, grad weight).
fn conv_bench_macs(backward: bool, transpose: bool, xs: &Shape, ys: &Shape, win: &Window) -> f64 {
    let k_per_out = xs.c() * win.kernel_numel();
    let fwd_macs = if transpose {
        (xs.numel() / xs.c()) as f64 * ys.c() as f64 * k_per_out as f64
    } else {
        ys.numel() as f64 * k_per_out as f64
    };
    if backward {
        3.0 * fwd_macs
    } else {
        fwd_macs
    }
}

/// The forward's kernel as run (grad input of a strided conv and
/// transposed-conv forwards fall back from Coop to the adapter default), and
/// for matrix-unit kernels which ones ran the forward, grad input (the forward
/// kernel on dy where the stride is 1) and weight gradient.
fn conv_bench_kernels(
    ctx: &Context,
    a: &ConvBenchArgs,
    transpose: bool,
    variant: ConvKernel,
    act: DType,
    (xs, ws, ys): (&Shape, &Shape, &Shape),
    win: &Window,
) -> (ConvKernel, String) {
    use crate::ops::coop::{coop_mode, describe_fwd, describe_up, describe_wgrad};
    let ran = if transpose {
        conv::transposed_kernel(ctx, variant, win, act)
    } else {
        let op = conv::tune::ConvOp::Forward;
        conv::tune::resolve(ctx, variant, op, xs, ws, win, act)
    };
    let detail = match coop_mode(ran) {
        Some(mode) if !transpose => {
            let mut d = format!(": fwd {}", describe_fwd(ctx, mode, (xs, ys), win, act));
            if a.backward {
                if let Some(fwin) = conv::flipped_window(win) {
                    d += &format!("; dx {}", describe_fwd(ctx, mode, (ys, xs), &fwin, act));
                }
                d += &format!("; dw {}", describe_wgrad(ctx, mode, ys, win));
            }
            d
        }
        Some(mode) if variant.is_coop() && conv::up::qualifies(win) => {
            let mut d = format!(": fwd {}", describe_up(ctx, mode, xs, ys, win));
            if a.backward {
                d += "; dx conv_coop; dw conv_coop_wgrad";
            }
            d
        }
        _ if !transpose && a.backward => grads_detail(ctx, variant, act, xs, ws, win),
        _ => String::new(),
    };
    (ran, detail)
}

/// Without matrix units: the kernels the two gradients ran after `Auto`'s tuning
/// ([`conv::tune::resolve`]; the cache already holds the choices the timed program made),
/// e.g. `: dx Winograd4; dw Winograd2`.
fn grads_detail(
    ctx: &Context,
    variant: ConvKernel,
    act: DType,
    xs: &Shape,
    ws: &Shape,
    win: &Window,
) -> String {
    use conv::tune::{resolve, ConvOp};
    let dx = resolve(ctx, variant, ConvOp::GradInput, xs, ws, win, act);
    let dw = resolve(ctx, variant, ConvOp::GradWeight, xs, ws, win, act);
    format!(": dx {dx:?}; dw {dw:?}")
}

/// The JSON line of one `bench conv` measurement: the forward (and with
/// `--backward` the two gradient ops) costed by `bench::cost::op_cost`.
#[allow(clippy::too_many_arguments)]
fn conv_record(
    ctx: &Context,
    a: &ConvBenchArgs,
    transpose: bool,
    variant: ConvKernel,
    act: DType,
    win: &Window,
    (xs, ws, ys): (Shape, Shape, Shape),
    timer: Timer,
    times: &[f64],
    peak: &crate::bench::json::PeakRecord,
) -> Record {
    let ops = conv_ops(transpose, a.backward, win, xs);
    let mut cost = crate::bench::cost::Cost::default();
    for op in &ops {
        let (ins, outs) = conv_operands(op, xs, ws, ys, act);
        cost += crate::bench::cost::op_cost(op, &ins, &outs);
    }
    let what = crate::bench::json::What {
        op: ops.iter().map(|o| o.name()).collect::<Vec<_>>().join("+"),
        shape: xs.to_string(),
        variant: format!(
            "{} {variant:?} k{} s{} p{} out {}",
            if act == DType::F16 { "f16" } else { "f32" },
            a.kernel,
            a.stride,
            a.pad,
            ys.c()
        ),
        case: if transpose { "conv-transpose" } else { "conv" }.into(),
    };
    Record::new(&Env::of(ctx), what, timer, times, cost, &peak.ceilings())
}

/// The graph ops `bench conv` times: the forward, and with `backward` the
/// input and weight gradients (the bias gradient is left out of the count).
fn conv_ops(transpose: bool, backward: bool, win: &Window, xs: Shape) -> Vec<crate::graph::Op> {
    use crate::graph::ops::{ConvAttrs, WindowAttrs, WindowGradAttrs};
    use crate::graph::Op;
    let window = *win;
    let mut ops = vec![if transpose {
        Op::ConvTranspose(ConvAttrs { window, bias: true })
    } else {
        Op::Conv(ConvAttrs { window, bias: true })
    }];
    if backward {
        if transpose {
            ops.push(Op::ConvTransposeGradInput(WindowAttrs { window }));
            ops.push(Op::ConvTransposeGradWeight(WindowAttrs { window }));
        } else {
            ops.push(Op::ConvGradInput(WindowGradAttrs { window, input: xs }));
            ops.push(Op::ConvGradWeight(WindowAttrs { window }));
        }
    }
    ops
}

type Operands = Vec<(Shape, DType)>;

/// Inputs and outputs of one of [`conv_ops`] for input `xs`, weight `ws`, output `ys`.
fn conv_operands(
    op: &crate::graph::Op,
    xs: Shape,
    ws: Shape,
    ys: Shape,
    act: DType,
) -> (Operands, Operands) {
    use crate::graph::Op;
    let f = DType::F32;
    let bs = Shape::vector(ys.c());
    match op {
        Op::Conv(_) | Op::ConvTranspose(_) => (vec![(xs, act), (ws, f), (bs, f)], vec![(ys, act)]),
        Op::ConvGradInput(_) | Op::ConvTransposeGradInput(_) => {
            (vec![(ys, act), (ws, f)], vec![(xs, act)])
        }
        _ => (vec![(xs, act), (ys, act)], vec![(ws, f)]),
    }
}

/// `wunet bench unet2d|unet3d`: one full training step (forward, loss,
/// backward, SGD update) of the benchmark configurations.
#[derive(Args, Debug, Clone)]
pub struct UNetBenchArgs {
    /// Base channels (default: 32 in 2D, 16 in 3D).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub base: Option<usize>,
    /// Poolings (default: 4 in 2D, 3 in 3D).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub depth: Option<usize>,
    /// Input spatial size, HxW or DxHxW (default: 256x256 / 64x64x64).
    #[arg(long)]
    pub input: Option<String>,
    /// Batch (default: 2 in 2D, 1 in 3D).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub batch: Option<usize>,
    #[arg(long, default_value_t = 5, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub runs: usize,
    /// Also time every node separately and print the time per op.
    #[arg(long)]
    pub profile: bool,
    /// f32, mixed (f16 activations, loss scaling) or auto.
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// The ceilings line and one JSON line per op of the profiled step (and
    /// the whole step) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The benchmark spec of issue 4: 2D base 32, depth 4, same padding, BN,
/// 2x1x256x256, 2 classes; 3D base 16, depth 3, BN, 1x1x64x64x64.
pub fn unet_bench_spec(
    dims: usize,
    a: &UNetBenchArgs,
    precision: crate::shape::Precision,
) -> Result<crate::train::session::SessionSpec> {
    use crate::graph::Optimizer;
    use crate::models::{Loss, Norm, Padding, UNetConfig};
    let mut cfg = if dims == 2 {
        UNetConfig::ronneberger2015()
    } else {
        UNetConfig::cicek2016()
    };
    cfg.base = a.base.unwrap_or(if dims == 2 { 32 } else { 16 });
    cfg.depth = a.depth.unwrap_or(if dims == 2 { 4 } else { 3 });
    cfg.padding = Padding::Same;
    cfg.norm = Norm::Batch;
    cfg.in_channels = 1;
    cfg.classes = 2;
    cfg.dropout = 0.0;
    let spatial = match &a.input {
        Some(s) => s
            .split('x')
            .map(|p| p.parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::Other(format!("--input '{s}' is not HxW or DxHxW")))?,
        None => vec![if dims == 2 { 256 } else { 64 }; dims],
    };
    if spatial.len() != dims {
        return Err(Error::Other(format!(
            "--input needs {dims} sizes for unet{dims}d"
        )));
    }
    Ok(crate::train::session::SessionSpec {
        config: cfg,
        batch: a.batch.unwrap_or(if dims == 2 { 2 } else { 1 }),
        spatial,
        loss: Loss::cross_entropy(),
        optimizer: Some(Optimizer::sgd(0.99)),
        seed: 1,
        keep_grads: false,
        precision,
    })
}

/// Prints adapter, configuration, ms per step (and with `--profile` every
/// dispatch and the per-op table; with `--json` the ceilings line and the
/// step's per-op lines instead); returns the median ms.
pub fn bench_unet(ctx: &Context, dims: usize, a: &UNetBenchArgs) -> Result<f64> {
    let spec = unet_bench_spec(dims, a, ctx.precision(&a.precision)?)?;
    let mut input = vec![spec.batch, spec.config.base];
    input.extend(&spec.spatial);
    fits(ctx, "--input (first layer)", &input)?;
    let t0 = std::time::Instant::now();
    let mut s = crate::bench::step::session(ctx, &spec)?;
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;
    // First step: pipeline compilation and first-touch allocations.
    let t1 = std::time::Instant::now();
    s.step(ctx, 1e-3)?;
    ctx.wait()?;
    let first_ms = t1.elapsed().as_secs_f64() * 1e3;
    let mut ms = Vec::new();
    for _ in 0..a.runs.max(1) {
        let t = std::time::Instant::now();
        s.step(ctx, 1e-3)?;
        ctx.wait()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(|x, y| x.total_cmp(y));
    let med = median(&ms);
    if !a.json {
        print_step_summary(ctx, dims, &spec, &s, setup_ms, first_ms, med)?;
    }
    if a.profile || a.json {
        let (_, peak) = crate::cli::peak::measure_peak(ctx, 3)?;
        let env = Env::of(ctx);
        let setup = Setup {
            runs: a.runs.max(1),
            ceilings: peak.ceilings(),
            env: &env,
        };
        let prof = profile_step(ctx, &mut s, a.runs)?;
        let input = format!(
            "{}x1x{}",
            spec.batch,
            spec.spatial
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("x")
        );
        let recs = step_records(&format!("unet{dims}d.step"), &input, &prof, &setup);
        if a.json {
            println!("{}", to_line(&peak));
            for r in &recs {
                println!("{}", to_line(r));
            }
        } else {
            print_profile(&s.exec, &prof, &recs, &peak);
            println!("conv variants (shape, variant, source):");
            print!("{}", super::tune::decisions_report());
        }
    }
    Ok(med)
}

fn print_step_summary(
    ctx: &Context,
    dims: usize,
    spec: &crate::train::session::SessionSpec,
    s: &crate::train::session::Session,
    setup_ms: f64,
    first_ms: f64,
    med: f64,
) -> Result<()> {
    let loss = s.read_loss(ctx)?;
    let r = &s.exec.plan.report;
    println!("adapter: {}", ctx.describe());
    println!(
        "unet{dims}d base {} depth {} BN same-padding, input {}x1x{}, {} classes: one training step (forward, loss, backward, SGD)",
        spec.config.base,
        spec.config.depth,
        spec.batch,
        spec.spatial.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("x"),
        spec.config.classes
    );
    println!("precision: {}", spec.precision.name());
    println!("dispatches per step: {}", s.exec.dispatches());
    let f = &s.exec.fused;
    println!(
        "fusion: {} batch norm + ReLU, {} backward pairs, {} conv + ReLU, {} concatenations / splits as channel slices (WUNET_FUSE=0 turns it off)",
        f.bn_relu, f.bn_relu_grad, f.conv_relu, r.slices
    );
    println!(
        "planned activation+gradient memory: {} (unplanned {})",
        crate::exec::fmt_bytes(r.planned_bytes),
        crate::exec::fmt_bytes(r.unplanned_bytes)
    );
    let sc = s.exec.scratch();
    println!(
        "op scratch: {} in shared slots ({} requests, {} if each op kept its own)",
        crate::exec::fmt_bytes(sc.allocated_bytes),
        sc.requests,
        crate::exec::fmt_bytes(sc.requested_bytes)
    );
    println!("setup_ms: {setup_ms:.0} (graph, plan, allocation, recording)");
    println!("first_step_ms: {first_ms:.0} (includes pipeline compilation)");
    println!("loss: {loss:.4}");
    if let Some((scale, skipped)) = s.read_loss_scale(ctx)? {
        println!("loss scale: {scale} ({skipped} steps skipped for a non-finite gradient)");
    }
    println!("median_ms_per_step: {med:.2} (wall clock)");
    let flop = crate::bench::ops::step_cost(&s.exec).flop;
    println!(
        "step_gflop: {:.3} (dense formulas); {:.2} GFLOP/s by the wall clock",
        flop / 1e9,
        flop / (med * 1e-3).max(1e-12) / 1e9
    );
    Ok(())
}

/// Every dispatch of the step with its time, then the step grouped by op
/// (each op's share of the step and of its ceiling), then the step's share
/// of the FMA peak.
fn print_profile(
    ex: &crate::exec::Executor,
    prof: &StepProfile,
    recs: &[Record],
    peak: &crate::bench::json::PeakRecord,
) {
    let timer = match prof.times.timer {
        Timer::Gpu => "GPU timestamps between the dispatches of one submission",
        Timer::Wall | Timer::GpuPass => {
            "wall clock, each node submitted alone (no per-dispatch times)"
        }
    };
    println!("timer: {}", prof.times.timer.name());
    println!("dispatches ({timer}; last run):");
    for (i, d) in prof.dispatches.iter().enumerate() {
        let node = ex.graph.node(d.node);
        println!(
            "  {i:>4} {:<40} {:<24} {:<36} {:>9.3} ms",
            node.name,
            node.op.name(),
            format!("{}::{}", d.kernel, d.entry),
            d.ms
        );
    }
    let total = median(&prof.total_ms);
    let c = peak.ceilings();
    println!(
        "by op (median of {} runs; ceilings f32 FMA {:.1} GFLOP/s, bandwidth {:.1} GB/s):",
        prof.total_ms.len(),
        c.gflops,
        c.gbps
    );
    for r in recs {
        let share = 100.0 * r.median_ms / total.max(1e-12);
        println!("  {:>5.1}% of step  {}", share, r.text());
    }
    if let Some(step) = recs.iter().find(|r| r.op == "step") {
        let g = step.achieved_gflops();
        println!(
            "step: {:.3} ms GPU, {g:.2} GFLOP/s = {:.1}% of the f32 FMA peak ({:.1} GFLOP/s)",
            step.median_ms,
            100.0 * g / c.gflops,
            c.gflops
        );
    }
}

pub use super::bench_ops::{
    bench_all, bench_compare, bench_op, bench_roofline, AllBenchArgs, CompareArgs, OpBenchArgs,
    RooflineArgs,
};
