//! `wunet bench op <case>` and `wunet bench all`: every kernel family timed
//! through the engine's own path. Each case builds a small graph with the
//! graph builder (the op under test on a trainable input, and, for forward
//! ops, a cross-entropy "scaffold" loss and the backward pass autodiff
//! derives from the op table), runs it with the [`Executor`], and times each
//! node of the step with GPU timestamps between its dispatches
//! ([`Executor::profile_dispatches`]; per-node wall clock where the device
//! has none). Every scheduled node outside the scaffold (names starting with
//! [`SCAFFOLD`]) becomes one [`Record`] per op: forward, gradient and update
//! ops alike, with FLOPs and bytes from [`op_cost`] and its share of the
//! adapter's ceilings.
//!
//! Which kernel files ran is read from the dispatches themselves (the
//! pipeline each dispatch holds), so [`Coverage`](super::all::Coverage) can tell whether every
//! file of `kernels/` was exercised; kernels that need hardware the adapter
//! lacks are listed in [`SPECIAL_KERNELS`] and reported as skipped with the
//! reason.

use super::cost::{op_cost, Ceilings, Cost, Operand};
use super::json::{Env, Record, What};
use super::Timer;
use crate::error::{Error, Result};
use crate::exec::{DispatchInfo, ExecOptions, Executor};
use crate::gpu::pipelines::EMULATED;
use crate::gpu::{AdapterClass, Context, DType};
use crate::graph::ops::*;
use crate::graph::{
    append_optimizer, append_optimizer_amp, backward, Gradients, Graph, Init, NodeId, Op,
    Optimizer, ValueId,
};
use crate::shape::{Shape, Window};
use std::collections::{BTreeMap, BTreeSet};

/// Node names of the scaffold (the loss that gives forward ops a backward
/// pass); these nodes are run but not reported.
pub const SCAFFOLD: &str = "bench.";

/// Default sizes of the cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// The U-Nets' first level: 2D 2x32x256x256 (base 32, batch 2), 3D
    /// 1x16x64x64x64 (base 16, batch 1).
    Full,
    /// The same channels and batch at half the spatial size per axis.
    Quick,
    /// 1x4x8x8 / 1x4x4x4x4, for tests.
    Tiny,
}

impl Size {
    /// `full`, `quick`, `tiny`, or `auto` (quick on CPU adapters, full on GPUs).
    pub fn parse(s: &str, ctx: &Context) -> Result<Size> {
        match s {
            "full" => Ok(Size::Full),
            "quick" => Ok(Size::Quick),
            "tiny" => Ok(Size::Tiny),
            "auto" if ctx.class == AdapterClass::Cpu => Ok(Size::Quick),
            "auto" => Ok(Size::Full),
            o => Err(Error::Other(format!(
                "--size '{o}': expected auto, full, quick or tiny"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Size::Full => "full",
            Size::Quick => "quick",
            Size::Tiny => "tiny",
        }
    }

    /// The base activation shape of the 2D or 3D U-Net at this size.
    pub fn base_shape(self, dims: usize) -> Shape {
        match (self, dims) {
            (Size::Full, 2) => Shape::new4(2, 32, 256, 256),
            (Size::Quick, 2) => Shape::new4(2, 32, 128, 128),
            (Size::Tiny, 2) => Shape::new4(1, 4, 8, 8),
            (Size::Full, _) => Shape::new5(1, 16, 64, 64, 64),
            (Size::Quick, _) => Shape::new5(1, 16, 32, 32, 32),
            (Size::Tiny, _) => Shape::new5(1, 4, 4, 4, 4),
        }
    }
}

/// Hardware a kernel or case needs beyond the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// f16 storage (`SHADER_F16`).
    F16,
    /// The matrix-unit convolutions (cooperative matrices that pass the self-test).
    CoopConv,
    /// A 16x16x16 f16 -> f32 cooperative-matrix configuration with a fixed subgroup size.
    MatrixUnits,
}

/// Why the adapter cannot run what needs `n`, or `None` when it can.
pub fn unavailable(ctx: &Context, n: Needs) -> Option<String> {
    match n {
        Needs::F16 if !ctx.has_f16() => Some(format!("{} lacks SHADER_F16", ctx.info.name)),
        Needs::F16 => None,
        Needs::CoopConv => crate::ops::coop::device_support(ctx).err(),
        Needs::MatrixUnits => {
            let sg = ctx.info.subgroup_min_size;
            let fixed = sg != 0 && sg == ctx.info.subgroup_max_size;
            (!(ctx.has_matrix_units() && fixed)).then(|| {
                format!(
                    "{} has no 16x16x16 f16 cooperative-matrix configuration with a fixed subgroup size",
                    ctx.info.name
                )
            })
        }
    }
}

/// Kernel files that run only on some hardware, with what they need. The
/// coverage test checks this list is exact: each of these is either run or
/// skipped with its reason, and no other file may be skipped.
pub const SPECIAL_KERNELS: &[(&str, Needs)] = &[
    ("conv_coop", Needs::CoopConv),
    ("conv_coop_wgrad", Needs::CoopConv),
    ("conv_coop_direct", Needs::CoopConv),
    ("conv_coop_direct_wgrad", Needs::CoopConv),
    ("peak_coop", Needs::MatrixUnits),
    ("cast", Needs::F16),
    ("amp", Needs::F16),
];

/// One benchmark case: a family's op(s) on a shape derived from the base shape.
pub struct Case {
    pub name: &'static str,
    pub about: &'static str,
    /// The input shape from the U-Net's base activation shape.
    pub input: fn(Shape) -> Shape,
    /// Hardware the case needs.
    pub needs: Option<Needs>,
    /// Appended to the variant where one op runs in several settings.
    pub tag: &'static str,
    build: fn(&mut Graph, ValueId) -> Result<()>,
}

fn same(s: Shape) -> Shape {
    s
}
/// Half the spatial size, twice the channels (the level below).
fn lower(s: Shape) -> Shape {
    let sp = s.spatial();
    let d = if s.is_3d() { (sp[0] / 2).max(1) } else { 1 };
    s.with_c(2 * s.c())
        .with_spatial([d, (sp[1] / 2).max(1), (sp[2] / 2).max(1)])
}
/// Two classes (logits of the U-Net head).
fn logits(s: Shape) -> Shape {
    s.with_c(2)
}

fn cube(x: Shape, k: usize, s: usize, p: usize) -> Window {
    Window::cube(if x.is_3d() { 3 } else { 2 }, k, s, p)
}

/// The scaffold loss on `y` (cross-entropy, `y`'s channels as classes) and
/// the backward pass of the whole graph.
fn train(g: &mut Graph, y: ValueId) -> Result<Gradients> {
    let s = g.shape(y);
    let labels = g.label("bench.labels", s.with_c(1), DType::I32)?;
    let ce = Op::SoftmaxCrossEntropy(CrossEntropyAttrs::default());
    let loss = g.add_node_named("bench.loss", ce, &[y, labels])?[0];
    backward(g, loss)
}

fn fwd_bwd(g: &mut Graph, y: ValueId) -> Result<()> {
    train(g, y).map(|_| ())
}

fn conv3x3(g: &mut Graph, x: ValueId) -> Result<()> {
    let s = g.shape(x);
    let y = g.conv_layer("conv", x, s.c(), cube(s, 3, 1, 1), true)?;
    fwd_bwd(g, y)
}
fn conv1x1(g: &mut Graph, x: ValueId) -> Result<()> {
    let s = g.shape(x);
    let y = g.conv_layer("head", x, 2, cube(s, 1, 1, 0), true)?;
    fwd_bwd(g, y)
}
fn conv_transpose(g: &mut Graph, x: ValueId) -> Result<()> {
    let s = g.shape(x);
    let y = g.conv_transpose_layer("up", x, s.c() / 2, cube(s, 2, 2, 0), true)?;
    fwd_bwd(g, y)
}
fn max_pool(g: &mut Graph, x: ValueId) -> Result<()> {
    let s = g.shape(x);
    let (y, _) = g.max_pool(x, cube(s, 2, 2, 0))?;
    fwd_bwd(g, y)
}
fn avg_pool(g: &mut Graph, x: ValueId) -> Result<()> {
    let s = g.shape(x);
    let y = g.avg_pool(x, cube(s, 2, 2, 0), false)?;
    fwd_bwd(g, y)
}
fn max_unpool(g: &mut Graph, x: ValueId) -> Result<()> {
    let s = g.shape(x);
    let (p, idx) = g.max_pool(x, cube(s, 2, 2, 0))?;
    let y = g.max_unpool(p, idx, s.spatial())?;
    fwd_bwd(g, y)
}
fn bn_attrs(training: bool) -> BatchNormAttrs {
    BatchNormAttrs {
        training,
        momentum: 0.1,
        eps: 1e-5,
    }
}
fn batch_norm(g: &mut Graph, x: ValueId) -> Result<()> {
    let y = g.batch_norm_layer("bn", x, bn_attrs(true))?;
    fwd_bwd(g, y)
}
fn batch_norm_eval(g: &mut Graph, x: ValueId) -> Result<()> {
    g.batch_norm_layer("bn", x, bn_attrs(false))?;
    Ok(())
}
fn instance_norm(g: &mut Graph, x: ValueId) -> Result<()> {
    let y = g.instance_norm_layer("in", x, 1e-5)?;
    fwd_bwd(g, y)
}
fn group_norm(g: &mut Graph, x: ValueId) -> Result<()> {
    let c = g.shape(x).c();
    let groups = [8, 4, 2]
        .into_iter()
        .find(|k| c.is_multiple_of(*k))
        .unwrap_or(1);
    let y = g.group_norm_layer("gn", x, groups, 1e-5)?;
    fwd_bwd(g, y)
}
fn relu(g: &mut Graph, x: ValueId) -> Result<()> {
    let y = g.relu(x)?;
    fwd_bwd(g, y)
}
fn leaky_relu(g: &mut Graph, x: ValueId) -> Result<()> {
    let y = g.leaky_relu(x, 0.01)?;
    fwd_bwd(g, y)
}
fn sigmoid(g: &mut Graph, x: ValueId) -> Result<()> {
    let y = g.sigmoid(x)?;
    fwd_bwd(g, y)
}
fn dropout(g: &mut Graph, x: ValueId) -> Result<()> {
    let y = g.dropout(x, 0.5, 7)?;
    fwd_bwd(g, y)
}
fn concat(g: &mut Graph, x: ValueId) -> Result<()> {
    let s = g.shape(x);
    let x2 = g.param("x2", s, Init::Normal { std: 1.0 })?;
    let y = g.concat(&[x, x2])?;
    fwd_bwd(g, y)
}
fn split(g: &mut Graph, x: ValueId) -> Result<()> {
    let c = g.shape(x).c();
    let parts = g.split(x, &[c / 2, c - c / 2])?;
    fwd_bwd(g, parts[0])
}
fn crop(g: &mut Graph, x: ValueId) -> Result<()> {
    let sp = g.shape(x).spatial();
    let size = sp.map(|v| if v > 1 { v - v / 8 } else { v });
    let y = g.center_crop(x, size)?;
    fwd_bwd(g, y)
}
fn pad_with(g: &mut Graph, x: ValueId, mode: PadMode) -> Result<()> {
    let s = g.shape(x);
    let p = if s.is_3d() { [1, 1, 1] } else { [0, 1, 1] };
    let y = g.pad(x, p, p, mode)?;
    fwd_bwd(g, y)
}
fn pad_zero(g: &mut Graph, x: ValueId) -> Result<()> {
    pad_with(g, x, PadMode::Zero)
}
fn pad_reflect(g: &mut Graph, x: ValueId) -> Result<()> {
    pad_with(g, x, PadMode::Reflect)
}
fn add(g: &mut Graph, x: ValueId) -> Result<()> {
    let s = g.shape(x);
    let x2 = g.param("x2", s, Init::Normal { std: 1.0 })?;
    let y = g.add(x, x2)?;
    fwd_bwd(g, y)
}
fn scale(g: &mut Graph, x: ValueId) -> Result<()> {
    let y = g.scale(x, 0.5)?;
    fwd_bwd(g, y)
}
fn upsample_with(g: &mut Graph, x: ValueId, mode: UpsampleMode) -> Result<()> {
    let s = g.shape(x);
    let f = if s.is_3d() { [2, 2, 2] } else { [1, 2, 2] };
    let y = g.upsample(x, mode, f)?;
    fwd_bwd(g, y)
}
fn upsample_nearest(g: &mut Graph, x: ValueId) -> Result<()> {
    upsample_with(g, x, UpsampleMode::Nearest)
}
fn upsample_linear(g: &mut Graph, x: ValueId) -> Result<()> {
    upsample_with(g, x, UpsampleMode::Linear)
}
fn labels_for(g: &mut Graph, x: ValueId) -> Result<ValueId> {
    let s = g.shape(x);
    g.label("labels", s.with_c(1), DType::I32)
}
fn cross_entropy(g: &mut Graph, x: ValueId) -> Result<()> {
    let l = labels_for(g, x)?;
    g.softmax_cross_entropy(x, l, None, CrossEntropyAttrs::default())?;
    Ok(())
}
fn dice(g: &mut Graph, x: ValueId) -> Result<()> {
    let l = labels_for(g, x)?;
    let a = DiceAttrs {
        smooth: 1.0,
        batch_dice: false,
        ignore_label: None,
        include_background: true,
    };
    g.dice_loss(x, l, a)?;
    Ok(())
}
fn sgd(g: &mut Graph, x: ValueId) -> Result<()> {
    let gr = train(g, x)?;
    append_optimizer(g, &gr.params, &Optimizer::sgd(0.99)).map(|_| ())
}
fn adam(g: &mut Graph, x: ValueId) -> Result<()> {
    let gr = train(g, x)?;
    append_optimizer(g, &gr.params, &Optimizer::adam()).map(|_| ())
}
/// Mixed precision: casts both ways, an f16 ReLU, the loss-scaled gradient,
/// the overflow check, the scale update and the amp SGD update.
fn amp(g: &mut Graph, x: ValueId) -> Result<()> {
    let h = g.cast(x, DType::F16)?;
    let r = g.relu(h)?;
    let scaler = g.loss_scaler("amp.loss_scale", 1024.0)?;
    let y = g.cast_for_loss(r, scaler)?;
    let gr = train(g, y)?;
    append_optimizer_amp(g, &gr.params, &Optimizer::sgd(0.9), scaler, 2000).map(|_| ())
}

const fn case(
    name: &'static str,
    about: &'static str,
    input: fn(Shape) -> Shape,
    build: fn(&mut Graph, ValueId) -> Result<()>,
) -> Case {
    Case {
        name,
        about,
        input,
        needs: None,
        tag: "",
        build,
    }
}

/// Every case, in `bench all` order.
pub const CASES: &[Case] = &[
    case(
        "conv3x3",
        "3x3 convolution, C -> C, bias; fwd + bwd",
        same,
        conv3x3,
    ),
    case(
        "conv1x1",
        "1x1 head convolution, C -> 2; fwd + bwd",
        same,
        conv1x1,
    ),
    case(
        "conv_transpose",
        "2x2 stride-2 up-convolution, 2C at half size -> C; fwd + bwd",
        lower,
        conv_transpose,
    ),
    case(
        "max_pool",
        "2x2 max pooling with argmax; fwd + bwd",
        same,
        max_pool,
    ),
    case("avg_pool", "2x2 average pooling; fwd + bwd", same, avg_pool),
    case(
        "max_unpool",
        "max pooling then max-unpooling; fwd + bwd",
        same,
        max_unpool,
    ),
    case(
        "batch_norm",
        "batch norm, training; fwd + bwd",
        same,
        batch_norm,
    ),
    case(
        "batch_norm_eval",
        "batch norm, eval (running statistics); fwd",
        same,
        batch_norm_eval,
    ),
    case(
        "instance_norm",
        "instance norm; fwd + bwd",
        same,
        instance_norm,
    ),
    case(
        "group_norm",
        "group norm (8 groups where C allows); fwd + bwd",
        same,
        group_norm,
    ),
    case("relu", "ReLU; fwd + bwd", same, relu),
    case("leaky_relu", "leaky ReLU 0.01; fwd + bwd", same, leaky_relu),
    case("sigmoid", "sigmoid; fwd + bwd", same, sigmoid),
    case("dropout", "dropout p = 0.5; fwd + bwd", same, dropout),
    case(
        "concat",
        "channel concat of two tensors; fwd + bwd (split)",
        same,
        concat,
    ),
    case(
        "split",
        "channel split in halves, one used; fwd + bwd (zeros, concat)",
        same,
        split,
    ),
    case("crop", "centre crop by 1/8 per axis; fwd + bwd", same, crop),
    Case {
        tag: "zero",
        ..case("pad_zero", "zero padding by 1; fwd + bwd", same, pad_zero)
    },
    Case {
        tag: "reflect",
        ..case(
            "pad_reflect",
            "reflect padding by 1; fwd + bwd",
            same,
            pad_reflect,
        )
    },
    case("add", "elementwise add; fwd + bwd", same, add),
    case("scale", "scale by a constant; fwd + bwd", same, scale),
    Case {
        tag: "nearest",
        ..case(
            "upsample_nearest",
            "nearest x2 upsampling of the level below; fwd + bwd",
            lower,
            upsample_nearest,
        )
    },
    Case {
        tag: "linear",
        ..case(
            "upsample_linear",
            "(bi/tri)linear x2 upsampling of the level below; fwd + bwd",
            lower,
            upsample_linear,
        )
    },
    case(
        "cross_entropy",
        "softmax cross-entropy with its fused gradient, 2 classes",
        logits,
        cross_entropy,
    ),
    case(
        "dice",
        "soft Dice loss with its gradient, 2 classes",
        logits,
        dice,
    ),
    case(
        "sgd",
        "SGD update, momentum 0.99, as many parameters as activations",
        same,
        sgd,
    ),
    case(
        "adam",
        "Adam update, as many parameters as activations",
        same,
        adam,
    ),
    Case {
        needs: Some(Needs::F16),
        ..case(
            "amp",
            "mixed precision: casts, f16 ReLU, overflow check, loss-scale update, amp SGD",
            same,
            amp,
        )
    },
];

/// The case called `name`, or an error listing them all.
pub fn find_case(name: &str) -> Result<&'static Case> {
    CASES.iter().find(|c| c.name == name).ok_or_else(|| {
        let all: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        Error::Other(format!(
            "unknown bench op '{name}'; cases: {}",
            all.join(", ")
        ))
    })
}

/// The kernel file a dispatched module comes from (emulated variants map
/// to their coop file).
pub fn kernel_file(module: &'static str) -> &'static str {
    EMULATED
        .iter()
        .find(|(emu, _)| *emu == module)
        .map(|(_, base)| *base)
        .unwrap_or(module)
}

/// The result of one case: its records and the kernel files its reported
/// nodes dispatched.
#[derive(Debug, Default)]
pub struct CaseRun {
    pub records: Vec<Record>,
    pub kernels: BTreeSet<&'static str>,
}

/// How to time: runs per measurement, the ceilings, who ran it.
pub struct Setup<'a> {
    pub runs: usize,
    pub ceilings: Ceilings,
    pub env: &'a Env,
}

/// Build the case's graph on input `shape` and executor.
fn build_case(ctx: &Context, case: &Case, shape: Shape) -> Result<Executor> {
    let mut g = Graph::new();
    let x = g.param("x", shape, Init::Normal { std: 1.0 })?;
    (case.build)(&mut g, x)
        .map_err(|e| Error::Other(format!("bench op {} on {shape}: {e}", case.name)))?;
    // Unfused: each op runs its own kernels (fusion would fold a batch-norm's ReLU away
    // and turn a batch-1 concatenation into slices that move nothing).
    let opts = ExecOptions {
        fuse: Some(false),
        ..Default::default()
    };
    Executor::new(ctx, g, &opts)
}

/// Node times of `runs` steps of `ex`.
pub struct NodeTimes {
    pub timer: Timer,
    /// Milliseconds per run (in run order), by node.
    pub per_node: BTreeMap<NodeId, Vec<f64>>,
    /// Every dispatch of the last run with its GPU time (GPU timer only).
    pub last: Option<Vec<DispatchInfo>>,
}

/// Time every node of `runs` steps: GPU timestamps between the dispatches of
/// the step's own submission where the device has them, else each node
/// submitted alone and timed by the wall clock.
pub fn time_nodes(ctx: &Context, ex: &mut Executor, runs: usize) -> Result<NodeTimes> {
    let mut per: BTreeMap<NodeId, Vec<f64>> = BTreeMap::new();
    let mut timer = Timer::Gpu;
    let mut last = None;
    for _ in 0..runs.max(1) {
        let mut this: BTreeMap<NodeId, f64> = BTreeMap::new();
        match ex.profile_dispatches(ctx, 1e-3)? {
            Some(ds) => {
                for d in &ds {
                    *this.entry(d.node).or_default() += d.ms;
                }
                last = Some(ds);
            }
            None => {
                timer = Timer::Wall;
                let times = ex.profile(ctx, 1e-3)?;
                for (&nid, (_, _, ms)) in ex.plan.schedule.iter().zip(times) {
                    this.insert(nid, ms);
                }
            }
        }
        for (n, ms) in this {
            per.entry(n).or_default().push(ms);
        }
    }
    Ok(NodeTimes {
        timer,
        per_node: per,
        last,
    })
}

/// Shapes and dtypes of `vs`.
pub fn operands(g: &Graph, vs: &[ValueId]) -> Vec<Operand> {
    vs.iter()
        .map(|v| (g.shape(*v), g.value(*v).dtype))
        .collect()
}

/// The FLOPs and bytes of every scheduled node of `ex`'s step (the dense formulas of
/// [`op_cost`]; aliases cost nothing).
pub fn step_cost(ex: &Executor) -> Cost {
    let g = &ex.graph;
    let mut total = Cost::default();
    for &nid in &ex.plan.schedule {
        let node = g.node(nid);
        if !node.op.is_alias() {
            total += op_cost(
                &node.op,
                &operands(g, &node.inputs),
                &operands(g, &node.outputs),
            );
        }
    }
    total
}

/// One op's nodes in a step: their cost, summed per-run times, kernels, first input.
#[derive(Default)]
pub struct OpGroup {
    pub cost: Cost,
    pub times: Vec<f64>,
    pub kernels: BTreeSet<String>,
    pub files: BTreeSet<&'static str>,
    pub nodes: usize,
    pub shape: String,
    pub act: String,
    /// The window of the first node (`k3x3 s1`) for windowed ops, else empty.
    pub window: String,
}

/// `k<kernel> s<stride>` of a windowed op (conv and pooling families), else empty.
pub fn window_tag(op: &Op) -> String {
    let w = match op {
        Op::Conv(a) | Op::ConvRelu(a) | Op::ConvTranspose(a) => a.window,
        Op::ConvGradInput(a) | Op::MaxPoolGrad(a) => a.window,
        Op::ConvGradWeight(a)
        | Op::ConvTransposeGradInput(a)
        | Op::ConvTransposeGradWeight(a)
        | Op::MaxPool(a) => a.window,
        Op::AvgPool(a) => a.window,
        Op::AvgPoolGrad(a) => a.pool.window,
        _ => return String::new(),
    };
    let axes = |v: [usize; 3]| {
        let used = if w.kernel[0] > 1 || w.stride[0] > 1 {
            &v[..]
        } else {
            &v[1..]
        };
        used.iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join("x")
    };
    format!("k{} s{}", axes(w.kernel), axes(w.stride))
}

/// Group the timed nodes of `ex`'s schedule by op name (nodes named with
/// `skip_prefix` left out): costs from the graph, times summed per run.
pub fn group_by_op(
    ex: &Executor,
    dispatches: &[DispatchInfo],
    times: &BTreeMap<NodeId, Vec<f64>>,
    skip_prefix: Option<&str>,
) -> Vec<(&'static str, OpGroup)> {
    let g = &ex.graph;
    let mut groups: Vec<(&'static str, OpGroup)> = Vec::new();
    for &nid in &ex.plan.schedule {
        let node = g.node(nid);
        // Aliases (`Identity`, left by fusion) record nothing and cost nothing.
        if node.op.is_alias() || skip_prefix.is_some_and(|p| node.name.starts_with(p)) {
            continue;
        }
        let name = node.op.name();
        let at = match groups.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                let ins = operands(g, &node.inputs);
                let outs = operands(g, &node.outputs);
                let first = ins.first().or(outs.first()).copied();
                groups.push((
                    name,
                    OpGroup {
                        shape: first.map(|(s, _)| s.to_string()).unwrap_or_default(),
                        act: act_name(&ins, &outs),
                        window: window_tag(&node.op),
                        ..Default::default()
                    },
                ));
                groups.len() - 1
            }
        };
        let grp = &mut groups[at].1;
        grp.nodes += 1;
        grp.cost += op_cost(
            &node.op,
            &operands(g, &node.inputs),
            &operands(g, &node.outputs),
        );
        for d in dispatches.iter().filter(|d| d.node == nid) {
            grp.kernels.insert(format!("{}::{}", d.kernel, d.entry));
            grp.files.insert(kernel_file(d.kernel));
        }
        if let Some(ts) = times.get(&nid) {
            if grp.times.is_empty() {
                grp.times = ts.clone();
            } else {
                for (a, b) in grp.times.iter_mut().zip(ts) {
                    *a += b;
                }
            }
        }
    }
    for (_, grp) in &mut groups {
        grp.times.sort_by(|a, b| a.total_cmp(b));
    }
    groups
}

/// `f16` where any activation operand is F16, else `f32`.
fn act_name(ins: &[Operand], outs: &[Operand]) -> String {
    let f16 = ins.iter().chain(outs).any(|(_, dt)| *dt == DType::F16);
    if f16 { "f16" } else { "f32" }.to_string()
}

/// Time `case` on input `shape` and return one record per op.
pub fn run_case(ctx: &Context, case: &Case, shape: Shape, setup: &Setup) -> Result<CaseRun> {
    let mut ex = build_case(ctx, case, shape)?;
    let dispatches = ex.step_dispatches(ctx)?;
    ex.run(ctx, 1e-3)?;
    ctx.wait()?;
    let t = time_nodes(ctx, &mut ex, setup.runs)?;
    let mut out = CaseRun::default();
    for (op, grp) in group_by_op(&ex, &dispatches, &t.per_node, Some(SCAFFOLD)) {
        out.kernels.extend(grp.files.iter().copied());
        let kernels: Vec<&str> = grp.kernels.iter().map(|s| s.as_str()).collect();
        let mut variant = format!("{} {}", grp.act, kernels.join(","));
        if !grp.window.is_empty() {
            variant = format!("{} {} {}", grp.act, grp.window, kernels.join(","));
        }
        if !case.tag.is_empty() {
            variant += &format!(" {}", case.tag);
        }
        let what = What {
            op: op.to_string(),
            shape: grp.shape.clone(),
            variant,
            case: case.name.to_string(),
        };
        out.records.push(Record::new(
            setup.env,
            what,
            t.timer,
            &grp.times,
            grp.cost,
            &setup.ceilings,
        ));
    }
    Ok(out)
}
