//! `wunet bench all`: every case of [`super::ops::CASES`] in 2D and 3D, the
//! convolution kernel variants, and the kernel-file [`Coverage`] of the run.

use super::cost::{op_cost, Cost};
use super::json::{Record, What};
use super::ops::{
    find_case, kernel_file, run_case, unavailable, window_tag, CaseRun, Needs, Setup, Size, CASES,
    SPECIAL_KERNELS,
};
use super::{time_program_best, Timer};
use crate::error::Result;
use crate::exec::{ExecOptions, Executor};
use crate::gpu::pipelines::KERNELS;
use crate::gpu::{Context, DType, Program, Tensor};
use crate::graph::ops::{ConvAttrs, Op, WindowAttrs, WindowGradAttrs};
use crate::infer::texture::{TextureInput, TextureOutput, TexturePredictor};
use crate::model_io::{InferMeta, ModelMeta};
use crate::models::{build_unet, Mode, Norm, Padding, UNetConfig};
use crate::ops::conv::{self, ConvKernel};
use crate::shape::{conv_weight_shape, Shape, Window};
use std::collections::{BTreeMap, BTreeSet};

/// Something `bench all` did not run, and why.
#[derive(Clone, Debug)]
pub struct Skip {
    pub what: String,
    pub reason: String,
}

/// Which kernel files a run exercised, and which it skipped (only files of
/// [`SPECIAL_KERNELS`] on adapters lacking what they need).
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    pub ran: BTreeSet<&'static str>,
    pub skipped: BTreeMap<&'static str, String>,
}

impl Coverage {
    /// Coverage of a run that dispatched `ran` on `ctx`.
    pub fn new(ctx: &Context, ran: BTreeSet<&'static str>) -> Self {
        let mut skipped = BTreeMap::new();
        for &(k, needs) in SPECIAL_KERNELS {
            if ran.contains(k) {
                continue;
            }
            if let Some(why) = unavailable(ctx, needs) {
                skipped.insert(k, why);
            }
        }
        Coverage { ran, skipped }
    }

    /// Files of `kernels/` (`gpu::pipelines::KERNELS`) neither run nor
    /// skipped for a stated reason.
    pub fn missing(&self) -> Vec<&'static str> {
        KERNELS
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !self.ran.contains(n) && !self.skipped.contains_key(n))
            .collect()
    }
}

/// Options of `bench all`.
#[derive(Clone, Debug)]
pub struct AllOptions {
    pub size: Size,
    /// 2 and/or 3.
    pub dims: Vec<usize>,
    /// Also time the explicit convolution kernels (tiled, cpu, direct, coop).
    pub conv_variants: bool,
}

/// Records of every case (and conv variant), deduplicated by
/// `(op, shape, variant)`, handed to `emit` as they come; kernel files run
/// and everything skipped.
pub fn run_cases(
    ctx: &Context,
    opts: &AllOptions,
    setup: &Setup,
    emit: &mut dyn FnMut(&Record),
) -> Result<(CaseRun, Vec<Skip>)> {
    let mut all = CaseRun::default();
    let mut skips = Vec::new();
    let mut seen = BTreeSet::new();
    let mut keep = |all: &mut CaseRun, run: CaseRun| {
        all.kernels.extend(run.kernels);
        for r in run.records {
            if seen.insert(r.key()) {
                emit(&r);
                all.records.push(r);
            }
        }
    };
    for &dims in &opts.dims {
        let base = opts.size.base_shape(dims);
        for case in CASES {
            if let Some(why) = case.needs.and_then(|n| unavailable(ctx, n)) {
                skips.push(Skip {
                    what: format!("{} {dims}D", case.name),
                    reason: why,
                });
                continue;
            }
            let run = run_case(ctx, case, (case.input)(base), setup)?;
            keep(&mut all, run);
        }
        if opts.conv_variants {
            let input = (find_case("conv3x3")?.input)(base);
            for (k, act) in conv_variants(ctx) {
                let (run, sk) = conv_variant(ctx, input, false, k, act, setup)?;
                keep(&mut all, run);
                skips.extend(sk);
            }
            // The up-convolution kernel (conv_up) for kernel == stride.
            let input = (find_case("conv_transpose")?.input)(base);
            let (run, sk) = conv_variant(ctx, input, true, ConvKernel::Up, DType::F32, setup)?;
            keep(&mut all, run);
            skips.extend(sk);
        }
    }
    // The host-texture I/O kernels of infer::texture (not graph ops).
    keep(&mut all, texture_io_case(ctx, opts.size, setup)?);
    if opts.conv_variants {
        if let Some(why) = unavailable(ctx, Needs::CoopConv) {
            skips.push(Skip {
                what: "conv3x3 coop-direct, coop-im2col".into(),
                reason: why,
            });
        }
    }
    Ok((all, skips))
}

/// The explicit conv kernels `bench all` times: tiled, cpu, direct and
/// Winograd F(2x2) / F(4x4) in f32; the matrix-unit ones (f16 activations) where they pass the self-test.
pub fn conv_variants(ctx: &Context) -> Vec<(ConvKernel, DType)> {
    let mut v = vec![
        (ConvKernel::Tiled, DType::F32),
        (ConvKernel::Cpu, DType::F32),
        (ConvKernel::Direct, DType::F32),
        (ConvKernel::Winograd2, DType::F32),
        (ConvKernel::Winograd4, DType::F32),
    ];
    if unavailable(ctx, Needs::CoopConv).is_none() {
        v.push((ConvKernel::CoopDirect, DType::F16));
        v.push((ConvKernel::CoopIm2col, DType::F16));
    }
    v
}

/// One pass of a conv variant: op, operands, and how to record it.
type ConvPass<'a> = (
    Op,
    Vec<(Shape, DType)>,
    Vec<(Shape, DType)>,
    Box<dyn Fn(&mut crate::gpu::Recorder) -> Result<()> + 'a>,
);

/// The tensors of a conv variant run.
struct ConvTensors {
    x: Tensor,
    w: Tensor,
    b: Tensor,
    y: Tensor,
    dy: Tensor,
    dx: Tensor,
    dw: Tensor,
}

impl ConvTensors {
    fn new(ctx: &Context, xs: Shape, ws: Shape, ys: Shape, act: DType) -> Result<Self> {
        Ok(ConvTensors {
            x: Tensor::zeros(ctx, xs, act)?,
            w: Tensor::zeros(ctx, ws, DType::F32)?,
            b: Tensor::zeros(ctx, Shape::vector(ys.c()), DType::F32)?,
            y: Tensor::zeros(ctx, ys, act)?,
            dy: Tensor::zeros(ctx, ys, act)?,
            dx: Tensor::zeros(ctx, xs, act)?,
            dw: Tensor::zeros(ctx, ws, DType::F32)?,
        })
    }
}

/// Forward, grad input and grad weight of a convolution: `transpose` false,
/// 3x3 same C -> C (case conv3x3); true, 2x2 stride 2 C -> C/2 (case
/// conv_transpose, input from that case's shape).
fn conv_passes<'a>(
    t: &'a ConvTensors,
    win: Window,
    transpose: bool,
    k: ConvKernel,
    act: DType,
) -> Vec<ConvPass<'a>> {
    let (xs, ws, ys) = (t.x.shape, t.w.shape, t.y.shape);
    let f = DType::F32;
    let fwd_in = vec![(xs, act), (ws, f), (t.b.shape, f)];
    let attrs = ConvAttrs {
        window: win,
        bias: true,
    };
    if transpose {
        return vec![
            (
                Op::ConvTranspose(attrs),
                fwd_in,
                vec![(ys, act)],
                Box::new(move |rec| {
                    conv::conv_transpose_into(rec, &t.x, &t.w, Some(&t.b), &win, &t.y, k)
                }),
            ),
            (
                Op::ConvTransposeGradInput(WindowAttrs { window: win }),
                vec![(ys, act), (ws, f)],
                vec![(xs, act)],
                Box::new(move |rec| {
                    conv::conv_transpose_grad_input_into(rec, &t.dy, &t.w, &win, &t.dx, k)
                }),
            ),
            (
                Op::ConvTransposeGradWeight(WindowAttrs { window: win }),
                vec![(xs, act), (ys, act)],
                vec![(ws, f)],
                Box::new(move |rec| {
                    conv::conv_transpose_grad_weight_into(rec, &t.x, &t.dy, &win, &t.dw, k)
                }),
            ),
        ];
    }
    vec![
        (
            Op::Conv(attrs),
            fwd_in,
            vec![(ys, act)],
            Box::new(move |rec| conv::conv_into(rec, &t.x, &t.w, Some(&t.b), &win, &t.y, k)),
        ),
        (
            Op::ConvGradInput(WindowGradAttrs {
                window: win,
                input: xs,
            }),
            vec![(ys, act), (ws, f)],
            vec![(xs, act)],
            Box::new(move |rec| conv::conv_grad_input_into(rec, &t.dy, &t.w, &win, &t.dx, k)),
        ),
        (
            Op::ConvGradWeight(WindowAttrs { window: win }),
            vec![(xs, act), (ys, act)],
            vec![(ws, f)],
            Box::new(move |rec| conv::conv_grad_weight_into(rec, &t.x, &t.dy, &win, &t.dw, k)),
        ),
    ]
}

/// Forward, grad input and grad weight of the conv3x3 case (or, with
/// `transpose`, the conv_transpose case) on input `xs` with kernel `k`,
/// each timed as its own program; a pass the kernel does not support is
/// skipped with the error.
pub fn conv_variant(
    ctx: &Context,
    xs: Shape,
    transpose: bool,
    k: ConvKernel,
    act: DType,
    setup: &Setup,
) -> Result<(CaseRun, Vec<Skip>)> {
    let dims = if xs.is_3d() { 3 } else { 2 };
    let (win, ws, ys) = if transpose {
        let win = Window::cube(dims, 2, 2, 0);
        let ws = conv_weight_shape(xs.c(), xs.c() / 2, &win, xs.is_3d());
        (win, ws, conv::conv_transpose_out_shape(&xs, &ws, &win)?)
    } else {
        let win = Window::cube(dims, 3, 1, 1);
        let ws = conv_weight_shape(xs.c(), xs.c(), &win, xs.is_3d());
        (win, ws, conv::conv_out_shape(&xs, &ws, &win)?)
    };
    let tensors = ConvTensors::new(ctx, xs, ws, ys, act)?;
    let case = if transpose {
        "conv_transpose"
    } else {
        "conv3x3"
    };
    let mut run = CaseRun::default();
    let mut skips = Vec::new();
    let prec = if act == DType::F16 { "f16" } else { "f32" };
    for (op, ins, outs, rec_fn) in conv_passes(&tensors, win, transpose, k, act) {
        let prog = match ctx.record(|rec| rec_fn(rec)) {
            Ok(p) => p,
            Err(e) => {
                skips.push(Skip {
                    what: format!("{case} {} variant {k:?} on {xs}", op.name()),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let (timer, times) = time_program_best(ctx, &prog, 1, setup.runs.max(1))?;
        let what = What {
            op: op.name().to_string(),
            shape: ins[0].0.to_string(),
            variant: format!(
                "{prec} {} {k:?} {}",
                window_tag(&op),
                program_kernels(&prog, &mut run.kernels)
            ),
            case: case.into(),
        };
        let cost = op_cost(&op, &ins, &outs);
        run.records.push(Record::new(
            setup.env,
            what,
            timer,
            &times,
            cost,
            &setup.ceilings,
        ));
    }
    Ok((run, skips))
}

/// `kernel::entry` of every dispatch of `prog`, comma-joined; the kernel
/// files go into `files`.
fn program_kernels(prog: &Program, files: &mut BTreeSet<&'static str>) -> String {
    let mut names = BTreeSet::new();
    for d in &prog.dispatches {
        files.insert(kernel_file(d.pipeline.kernel.name));
        names.insert(format!("{}::{}", d.pipeline.kernel.name, d.pipeline.entry));
    }
    names.into_iter().collect::<Vec<_>>().join(",")
}

/// The timer `bench all` uses on this device.
pub fn timer_of(ctx: &Context) -> Timer {
    if ctx.has_gpu_timestamps() {
        Timer::Gpu
    } else {
        Timer::Wall
    }
}

/// The `texture_io` kernels of [`crate::infer::texture::TexturePredictor`]
/// on an R8Unorm texture of the 2D base size (at least 32 x 32) into an
/// R8Uint mask, through a small same-padded U-Net (seeded weights, 64 x 64
/// tiles): decode, statistics, every tile's extract and accumulate, the
/// output rows, timed as one program without the network.
pub fn texture_io_case(ctx: &Context, size: Size, setup: &Setup) -> Result<CaseRun> {
    let base = size.base_shape(2);
    let (h, w) = (base.h().max(32) as u32, base.w().max(32) as u32);
    let mut seg = small_texture_model(ctx)?;
    let usage = wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::COPY_DST;
    let texture = |format| {
        ctx.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("bench texture"),
            size: wgpu::Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage,
            view_formats: &[],
        })
    };
    let (input, mask) = (
        texture(wgpu::TextureFormat::R8Unorm),
        texture(wgpu::TextureFormat::R8Uint),
    );
    let (prog, bytes) =
        seg.io_program(ctx, TextureInput::new(&input), TextureOutput::Mask(&mask))?;
    let (timer, times) = time_program_best(ctx, &prog, 1, setup.runs.max(1))?;
    let mut run = CaseRun::default();
    let what = What {
        op: "texture_io".into(),
        shape: format!("{h}x{w} R8Unorm"),
        variant: format!(
            "f32 mask R8Uint {}",
            program_kernels(&prog, &mut run.kernels)
        ),
        case: "texture".into(),
    };
    let cost = Cost { flop: 0.0, bytes };
    run.records.push(Record::new(
        setup.env,
        what,
        timer,
        &times,
        cost,
        &setup.ceilings,
    ));
    Ok(run)
}

/// A 2D U-Net (base 8, depth 2, same padding, batch norm, 2 classes) with
/// seeded weights, as a texture predictor with 64 x 64 tiles.
fn small_texture_model(ctx: &Context) -> Result<TexturePredictor> {
    let mut cfg = UNetConfig::ronneberger2015();
    cfg.base = 8;
    cfg.depth = 2;
    cfg.padding = Padding::Same;
    cfg.norm = Norm::Batch;
    cfg.dropout = 0.0;
    let net = build_unet(&cfg, 1, &[64, 64], &Mode::Inference)?;
    let exec = Executor::new(
        ctx,
        net.graph,
        &ExecOptions {
            seed: 1,
            keep: vec![],
            ..Default::default()
        },
    )?;
    let meta = InferMeta::for_model(ModelMeta::from(&cfg), "64x64");
    let opts = crate::infer::PredictOptions::default();
    let path = std::path::Path::new("(bench model)");
    TexturePredictor::from_loaded(ctx, exec.export(ctx)?, meta, path, &opts)
}
