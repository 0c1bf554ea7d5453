//! `wunet model unet2d|unet3d ...` (layer table and parameter count) and
//! `wunet plan unet2d|unet3d ... [--train]` (memory plan).

use crate::error::{Error, Result};
use crate::exec::{fmt_bytes, plan, Plan, PlanOptions, Strategy};
use crate::graph::{append_optimizer, backward, check_kernel_ops, Optimizer};
use crate::models::{
    build_unet, summary, Act, Loss, Mode, Norm, Padding, UNet, UNetConfig, Upsampling,
};
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    Unet2d,
    Unet3d,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    Ronneberger2015,
    Cicek2016,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PaddingArg {
    Valid,
    Same,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NormArg {
    None,
    Batch,
    Instance,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ActArg {
    Relu,
    Leaky,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UpsampleArg {
    Convt,
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    Sgd,
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    Arena,
    Buffers,
}

/// The network: an architecture, an optional preset, and overrides.
/// Without a preset, unet2d starts from ronneberger2015 and unet3d from cicek2016.
#[derive(Args, Debug, Clone)]
pub struct NetArgs {
    #[arg(value_enum)]
    pub arch: Arch,
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Channels of the first level.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub base: Option<usize>,
    /// Number of poolings.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub depth: Option<usize>,
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub in_channels: Option<usize>,
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub classes: Option<usize>,
    #[arg(long, value_enum)]
    pub padding: Option<PaddingArg>,
    #[arg(long, value_enum)]
    pub norm: Option<NormArg>,
    #[arg(long, value_enum)]
    pub act: Option<ActArg>,
    /// Negative slope of --act leaky.
    #[arg(long, default_value_t = 0.01, allow_hyphen_values = true)]
    pub slope: f32,
    #[arg(long, value_enum)]
    pub upsample: Option<UpsampleArg>,
    /// Residual (ResNet-style) blocks.
    #[arg(long)]
    pub residual: bool,
    /// Spatial input size, `HxW` or `DxHxW` (default: the preset's tile).
    #[arg(long)]
    pub input: Option<String>,
    #[arg(long, default_value_t = 1, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub batch: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    #[command(flatten)]
    pub net: NetArgs,
    /// Plan a training step (forward, loss, backward, optimizer) instead of inference.
    #[arg(long)]
    pub train: bool,
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerArg,
    /// SGD momentum (the U-Net paper uses 0.99).
    #[arg(long, default_value_t = 0.99, allow_hyphen_values = true)]
    pub momentum: f32,
    #[arg(long, default_value_t = 256, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<u64>)]
    pub alignment: u64,
    /// Largest tensor one binding may hold (default: wgpu's default limit, 128 MiB).
    #[arg(long, default_value_t = 128 << 20, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<u64>)]
    pub max_binding_bytes: u64,
    /// Largest arena; more arenas are used beyond it.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<u64>)]
    pub max_arena_bytes: Option<u64>,
    /// Layout: `buffers` (whole buffers reused over time: what the GPU executor
    /// uses, since wgpu tracks usage per buffer) or `arena` (offsets in one arena).
    #[arg(long, value_enum, default_value = "buffers")]
    pub strategy: StrategyArg,
    /// Let elementwise ops overwrite an input that dies there (the executor does
    /// not: one dispatch cannot bind a buffer read-only and writable).
    #[arg(long)]
    pub in_place: bool,
}

/// Parse `572x572` or `132x132x116`.
pub fn parse_spatial(s: &str) -> Result<Vec<usize>> {
    let v: std::result::Result<Vec<usize>, _> =
        s.split('x').map(|p| p.trim().parse::<usize>()).collect();
    match v {
        Ok(v) if (v.len() == 2 || v.len() == 3) && !v.contains(&0) => Ok(v),
        _ => Err(Error::Other(format!(
            "--input '{s}' is not HxW or DxHxW with positive sizes"
        ))),
    }
}

/// The configuration, batch and spatial input size the arguments describe.
pub fn config_from_args(a: &NetArgs) -> Result<(UNetConfig, usize, Vec<usize>)> {
    crate::checks::check_net_sizes(a.base, a.depth, a.in_channels, a.classes, Some(a.batch))?;
    crate::checks::check_f64(
        "--slope",
        a.slope as f64,
        crate::checks::Range::Closed(-1e3, 1e3),
    )?;
    let dims = if a.arch == Arch::Unet3d { 3 } else { 2 };
    let mut cfg = match (a.preset, a.arch) {
        (Some(Preset::Ronneberger2015) | None, Arch::Unet2d) => UNetConfig::ronneberger2015(),
        (Some(Preset::Cicek2016) | None, Arch::Unet3d) => UNetConfig::cicek2016(),
        (Some(p), _) => {
            return Err(Error::Other(format!(
                "preset {p:?} does not fit {:?}",
                a.arch
            )))
        }
    };
    let or = |o: Option<usize>, d: usize| o.unwrap_or(d);
    cfg.base = or(a.base, cfg.base);
    cfg.depth = or(a.depth, cfg.depth);
    cfg.in_channels = or(a.in_channels, cfg.in_channels);
    cfg.classes = or(a.classes, cfg.classes);
    if let Some(p) = a.padding {
        cfg.padding = if p == PaddingArg::Same {
            Padding::Same
        } else {
            Padding::Valid
        };
    }
    if let Some(n) = a.norm {
        cfg.norm = match n {
            NormArg::None => Norm::None,
            NormArg::Batch => Norm::Batch,
            NormArg::Instance => Norm::Instance,
        };
    }
    if let Some(act) = a.act {
        cfg.act = if act == ActArg::Leaky {
            Act::LeakyRelu(a.slope)
        } else {
            Act::Relu
        };
    }
    if let Some(u) = a.upsample {
        cfg.upsample = if u == UpsampleArg::Linear {
            Upsampling::LinearConv
        } else {
            Upsampling::ConvTranspose
        };
    }
    cfg.residual |= a.residual;
    let spatial = match &a.input {
        Some(s) => parse_spatial(s)?,
        None => cfg.default_input(),
    };
    if spatial.len() != dims {
        return Err(Error::Other(format!(
            "{:?} needs a {dims}-axis --input, got {spatial:?}",
            a.arch
        )));
    }
    Ok((cfg, a.batch, spatial))
}

/// Build, adding to a failure the nearest input sizes that work.
fn build(cfg: &UNetConfig, batch: usize, spatial: &[usize], mode: &Mode) -> Result<UNet> {
    build_unet(cfg, batch, spatial, mode).map_err(|e| {
        let fit: Vec<String> = spatial
            .iter()
            .map(|&l| cfg.seamless_input(l).map_or("-".into(), |v| v.to_string()))
            .collect();
        Error::Other(format!(
            "{e}\n(nearest input sizes with even poolings: {})",
            fit.join("x")
        ))
    })
}

/// The text of `wunet model`: a header, the layer table and totals; the last
/// line is `parameters: <total>`.
pub fn model_report(a: &ModelArgs) -> Result<String> {
    let (cfg, batch, spatial) = config_from_args(&a.net)?;
    let net = build(&cfg, batch, &spatial, &Mode::Inference)?;
    let g = &net.graph;
    let mut s = format!("{cfg:?}\n");
    s += &format!(
        "input {} -> logits {}\n",
        g.shape(net.input),
        g.shape(net.logits)
    );
    s += &summary(g);
    Ok(s)
}

/// Build the graph `wunet plan` describes (training: CE loss, backward and
/// the optimizer) and plan it.
pub fn build_plan(a: &PlanArgs) -> Result<(UNet, Plan)> {
    let (cfg, batch, spatial) = config_from_args(&a.net)?;
    let mode = if a.train {
        Mode::Training(Loss::cross_entropy())
    } else {
        Mode::Inference
    };
    let mut net = build(&cfg, batch, &spatial, &mode)?;
    let keep = match net.loss {
        Some(loss) => {
            let grads = backward(&mut net.graph, loss)?;
            let opt = match a.optimizer {
                OptimizerArg::Sgd => Optimizer::sgd(a.momentum),
                OptimizerArg::Adam => Optimizer::adam(),
            };
            append_optimizer(&mut net.graph, &grads.params, &opt)?;
            vec![loss]
        }
        None => vec![net.logits],
    };
    check_kernel_ops(&net.graph)?;
    let opts = PlanOptions {
        alignment: a.alignment,
        max_binding_bytes: a.max_binding_bytes,
        max_arena_bytes: a.max_arena_bytes,
        strategy: if a.strategy == StrategyArg::Buffers {
            Strategy::SharedBuffers
        } else {
            Strategy::Arena
        },
        in_place: a.in_place,
        slices: true,
        keep,
    };
    let p = plan(&net.graph, &opts)?;
    Ok((net, p))
}

/// The text of `wunet plan`.
pub fn plan_report(a: &PlanArgs) -> Result<String> {
    use crate::checks::{check_f64, check_int, Range};
    check_f64("--momentum", a.momentum as f64, Range::HalfOpen(0.0, 1.0))?;
    check_int("--alignment", a.alignment as i128, 4, 1 << 16)?;
    if !a.alignment.is_power_of_two() {
        return Err(crate::error::Error::Other(format!(
            "--alignment = {}: must be a power of two",
            a.alignment
        )));
    }
    check_int(
        "--max-binding-bytes",
        a.max_binding_bytes as i128,
        4,
        u64::MAX as i128,
    )?;
    let (net, p) = build_plan(a)?;
    let g = &net.graph;
    let what = if a.train {
        "training step (activations + gradients)"
    } else {
        "inference (activations)"
    };
    let mut s = format!(
        "{:?} {}: input {} -> logits {}\n",
        a.net.arch,
        what,
        g.shape(net.input),
        g.shape(net.logits)
    );
    s += &format!("nodes: {}, values: {}\n", g.nodes().len(), g.values().len());
    s += &p.report.to_string();
    let saved = p
        .report
        .unplanned_bytes
        .saturating_sub(p.report.planned_bytes);
    s += &format!("saving: {}\n", fmt_bytes(saved));
    Ok(s)
}
