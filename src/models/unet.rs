//! One configurable U-Net for 2D and 3D (Ronneberger et al. 2015; Cicek et al. 2016).
//!
//! Encoder level `l` (0..depth): block `enc{l}`, then 2x2(x2) max pooling.
//! Bottom block `bottom` (dropout after it when training, if configured).
//! Decoder level `l` (depth-1..0): up-sampling `up{l}`, centre crop of the
//! skip (`floor((in - out)/2)`, identity when sizes match), `Concat([skip, up])`
//! (skip first, as in the paper's figure), block `dec{l}`. Head: 1x1 conv
//! `head` to the class logits.
//!
//! A block is conv1 -> \[norm1\] -> act -> conv2 -> \[norm2\] -> act; with
//! `residual` the second activation follows `h + shortcut(x)` (ResNet v1 basic
//! block; the shortcut is a 1x1 conv `{block}.skip` when the channels change,
//! centre-cropped for valid padding). Parameter names:
//! `{block}.conv{1,2}.weight/.bias`, `{block}.bn{1,2}.weight/.bias` (state
//! `.running_mean/.running_var`; `in`/`gn` for instance/group norm),
//! `up{l}.weight/.bias`, `head.weight/.bias`.

use crate::error::{Error, Result};
use crate::graph::ops::amp::{INIT_SCALE, LOSS_SCALER};
use crate::graph::ops::{BatchNormAttrs, CrossEntropyAttrs, DiceAttrs, UpsampleMode};
use crate::graph::{Graph, Init, ValueId};
use crate::shape::{DType, Precision, Shape, Window};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Unpadded 3x3 convs: each conv shrinks every axis by 2 (the papers).
    Valid,
    /// Zero padding 1: convs keep the size.
    Same,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Norm {
    None,
    Batch,
    Instance,
    /// Group norm with this many groups.
    Group(usize),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Relu,
    LeakyRelu(f32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsampling {
    /// 2x2(x2) stride-2 transposed convolution.
    ConvTranspose,
    /// (Bi/tri)linear x2, then a 1x1 convolution.
    LinearConv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelScheme {
    /// Both convs of level `l` output `base*2^l`; up-convs halve the channels.
    Ronneberger,
    /// Encoder level `l`: conv1 -> `base*2^l`, conv2 -> `base*2^(l+1)`;
    /// up-convs keep the channels; decoder level `l` convs -> `base*2^(l+1)`.
    Cicek,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UNetConfig {
    /// 2 or 3.
    pub dims: usize,
    pub in_channels: usize,
    pub classes: usize,
    pub base: usize,
    /// Number of poolings.
    pub depth: usize,
    pub padding: Padding,
    pub norm: Norm,
    pub act: Act,
    pub upsample: Upsampling,
    pub conv_bias: bool,
    pub upconv_bias: bool,
    pub channels: ChannelScheme,
    pub residual: bool,
    /// Dropout probability after the bottom block in training graphs (0: none).
    pub dropout: f32,
    pub bn_momentum: f32,
    pub norm_eps: f32,
}

impl UNetConfig {
    /// The original U-Net: 2D, 1 -> 2 classes, 64..1024 channels, valid
    /// convs, no norm, biases everywhere, dropout 0.5 at the end of the
    /// contracting path. 31,030,658 parameters; 572x572 -> 388x388.
    pub fn ronneberger2015() -> Self {
        UNetConfig {
            dims: 2,
            in_channels: 1,
            classes: 2,
            base: 64,
            depth: 4,
            padding: Padding::Valid,
            norm: Norm::None,
            act: Act::Relu,
            upsample: Upsampling::ConvTranspose,
            conv_bias: true,
            upconv_bias: true,
            channels: ChannelScheme::Ronneberger,
            residual: false,
            dropout: 0.5,
            bn_momentum: 0.1,
            norm_eps: 1e-5,
        }
    }
    /// 3D U-Net: 3 -> 3 classes, 32-64 / 64-128 / 128-256 / 256-512, batch
    /// norm, up-convs without bias keeping the channels. 132x132x116 ->
    /// 44x44x28; 19,069,955 parameters without the norms' affine parameters
    /// (19,074,627 with them).
    pub fn cicek2016() -> Self {
        UNetConfig {
            dims: 3,
            in_channels: 3,
            classes: 3,
            base: 32,
            depth: 3,
            padding: Padding::Valid,
            norm: Norm::Batch,
            act: Act::Relu,
            upsample: Upsampling::ConvTranspose,
            conv_bias: true,
            upconv_bias: false,
            channels: ChannelScheme::Cicek,
            residual: false,
            dropout: 0.0,
            bn_momentum: 0.1,
            norm_eps: 1e-5,
        }
    }
    /// The preset's tile: 572x572 (2D) or 132x132x116 (3D).
    pub fn default_input(&self) -> Vec<usize> {
        if self.dims == 3 {
            vec![132, 132, 116]
        } else {
            vec![572, 572]
        }
    }
    /// Output length along one axis for an input of `len`, and whether every
    /// pooling saw an even length (the paper's condition for seamless
    /// overlap-tile output); `None` if some layer gets no output.
    pub fn axis_out(&self, len: usize) -> Option<(usize, bool)> {
        let shrink = if self.padding == Padding::Valid { 4 } else { 0 };
        let mut s = len;
        let mut even = true;
        for _ in 0..self.depth {
            s = s.checked_sub(shrink).filter(|&v| v > 0)?;
            even &= s.is_multiple_of(2);
            s /= 2;
        }
        s = s.checked_sub(shrink).filter(|&v| v > 0)?;
        for _ in 0..self.depth {
            s = (2 * s).checked_sub(shrink).filter(|&v| v > 0)?;
        }
        Some((s, even))
    }
    /// The smallest input length `>= len` with an output and even poolings.
    pub fn seamless_input(&self, len: usize) -> Option<usize> {
        (len.max(1)..len.max(1) + (64 << self.depth.min(8)))
            .find(|&l| self.axis_out(l).is_some_and(|(_, e)| e))
    }
    fn lvl(&self, l: usize) -> usize {
        self.base << l
    }
    /// Output channels of (conv1, conv2) of encoder level `l` (`l == depth`: bottom).
    pub fn encoder_channels(&self, l: usize) -> (usize, usize) {
        match self.channels {
            ChannelScheme::Ronneberger => (self.lvl(l), self.lvl(l)),
            ChannelScheme::Cicek => (self.lvl(l), self.lvl(l + 1)),
        }
    }
    /// Output channels of the up-sampling into decoder level `l`, from `c_in`.
    pub fn up_channels(&self, l: usize, c_in: usize) -> usize {
        match self.channels {
            ChannelScheme::Ronneberger => self.lvl(l),
            ChannelScheme::Cicek => c_in,
        }
    }
    /// Output channels of both convs of decoder level `l`.
    pub fn decoder_channels(&self, l: usize) -> usize {
        match self.channels {
            ChannelScheme::Ronneberger => self.lvl(l),
            ChannelScheme::Cicek => self.lvl(l + 1),
        }
    }
    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::shape("unet", m));
        if self.dims != 2 && self.dims != 3 {
            return bad(format!("dims must be 2 or 3, got {}", self.dims));
        }
        if self.in_channels == 0 || self.classes == 0 || self.base == 0 {
            return bad("in_channels, classes and base must be positive".into());
        }
        if self.depth > 8 {
            return bad(format!("depth {} is too large (at most 8)", self.depth));
        }
        if let Norm::Group(gr) = self.norm {
            if gr == 0 || !self.base.is_multiple_of(gr) {
                return bad(format!("{gr} groups must divide base {}", self.base));
            }
        }
        Ok(())
    }
}

/// Training objective.
#[derive(Clone, Debug, PartialEq)]
pub enum Loss {
    /// Softmax cross entropy; `weight_map: true` adds a `weight_map` input.
    CrossEntropy(CrossEntropyAttrs),
    Dice(DiceAttrs),
    /// `CE + dice_weight * Dice`.
    DiceCe {
        ce: CrossEntropyAttrs,
        dice: DiceAttrs,
        dice_weight: f32,
    },
}

impl Loss {
    /// Plain mean cross entropy.
    pub fn cross_entropy() -> Self {
        Loss::CrossEntropy(CrossEntropyAttrs {
            class_weights: None,
            weight_map: false,
            ignore_label: None,
            reduction: crate::graph::ops::Reduction::Mean,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Forward only; norms use running statistics, no dropout.
    Inference,
    /// Forward and loss; batch norm in training mode, dropout if configured.
    Training(Loss),
}

/// A built U-Net graph and its named endpoints.
#[derive(Clone, Debug)]
pub struct UNet {
    pub graph: Graph,
    pub config: UNetConfig,
    /// `input`: `N, in_channels, spatial..`.
    pub input: ValueId,
    /// `N, classes, out..`.
    pub logits: ValueId,
    /// `labels` (I32 `N, 1, out..`), training only.
    pub labels: Option<ValueId>,
    /// `weight_map` (F32 `N, 1, out..`), when the CE loss uses one.
    pub weight_map: Option<ValueId>,
    /// The scalar loss, training only.
    pub loss: Option<ValueId>,
    /// Mixed-precision training: the loss-scaler state (see `graph::ops::amp`).
    pub scaler: Option<ValueId>,
    pub precision: Precision,
}

struct Ctx<'a> {
    g: &'a mut Graph,
    cfg: &'a UNetConfig,
    training: bool,
    conv: Window,
}

impl Ctx<'_> {
    fn norm(&mut self, block: &str, k: usize, x: ValueId) -> Result<ValueId> {
        let eps = self.cfg.norm_eps;
        match self.cfg.norm {
            Norm::None => Ok(x),
            Norm::Batch => {
                let at = BatchNormAttrs {
                    training: self.training,
                    momentum: self.cfg.bn_momentum,
                    eps,
                };
                self.g.batch_norm_layer(&format!("{block}.bn{k}"), x, at)
            }
            Norm::Instance => self
                .g
                .instance_norm_layer(&format!("{block}.in{k}"), x, eps),
            Norm::Group(gr) => self
                .g
                .group_norm_layer(&format!("{block}.gn{k}"), x, gr, eps),
        }
    }
    fn act(&mut self, x: ValueId) -> Result<ValueId> {
        match self.cfg.act {
            Act::Relu => self.g.relu(x),
            Act::LeakyRelu(s) => self.g.leaky_relu(x, s),
        }
    }
    /// Level `l`'s upsampling of `h`: a 2x2 stride-2 transposed convolution,
    /// or linear upsampling and a 1x1 convolution.
    fn up(&mut self, l: usize, h: ValueId) -> Result<ValueId> {
        let cfg = self.cfg;
        let name = format!("up{l}");
        self.g.set_scope(&name);
        let up_c = cfg.up_channels(l, self.g.shape(h).c());
        match cfg.upsample {
            Upsampling::ConvTranspose => {
                let two = Window::cube(cfg.dims, 2, 2, 0);
                self.g
                    .conv_transpose_layer(&name, h, up_c, two, cfg.upconv_bias)
            }
            Upsampling::LinearConv => {
                let factor = if cfg.dims == 3 { [2, 2, 2] } else { [1, 2, 2] };
                let u = self.g.upsample(h, UpsampleMode::Linear, factor)?;
                let one = Window::cube(cfg.dims, 1, 1, 0);
                self.g.conv_layer(&name, u, up_c, one, cfg.upconv_bias)
            }
        }
    }
    /// The 1x1 head. It is a linear layer whose logits should start near 0, so
    /// the initial loss is ln(classes) (the sanity check every training run
    /// makes): LeCun-normal scaled by 0.1 instead of He (He makes the initial
    /// logits ~N(0, 1) after batch norm, and the initial loss ~1.4x ln 2).
    fn head(&mut self, h: ValueId) -> Result<ValueId> {
        self.g.set_scope("head");
        let one = Window::cube(self.cfg.dims, 1, 1, 0);
        let head = self.g.conv_layer("head", h, self.cfg.classes, one, true)?;
        let head_w = self
            .g
            .find("head.weight")
            .ok_or_else(|| Error::shape("unet", "head.weight missing"))?;
        let fan_in = self.g.shape(h).c();
        let std = 0.1 / (fan_in as f32).sqrt();
        self.g.set_init(head_w, Init::Normal { std })?;
        Ok(head)
    }
    fn block(&mut self, name: &str, x: ValueId, c1: usize, c2: usize) -> Result<ValueId> {
        self.g.set_scope(name);
        let bias = self.cfg.conv_bias;
        let h = self
            .g
            .conv_layer(&format!("{name}.conv1"), x, c1, self.conv, bias)?;
        let h = self.norm(name, 1, h)?;
        let h = self.act(h)?;
        let h = self
            .g
            .conv_layer(&format!("{name}.conv2"), h, c2, self.conv, bias)?;
        let mut h = self.norm(name, 2, h)?;
        if self.cfg.residual {
            let mut s = x;
            if self.g.shape(x).c() != c2 {
                let one = Window::cube(self.cfg.dims, 1, 1, 0);
                s = self
                    .g
                    .conv_layer(&format!("{name}.skip"), x, c2, one, bias)?;
            }
            let s = self.g.center_crop(s, self.g.shape(h).spatial())?;
            h = self.g.add(h, s)?;
        }
        self.act(h)
    }
}

/// Build the U-Net for inputs `batch x in_channels x spatial` (`spatial` has
/// `dims` axes, `[H, W]` or `[D, H, W]`), in f32.
pub fn build_unet(cfg: &UNetConfig, batch: usize, spatial: &[usize], mode: &Mode) -> Result<UNet> {
    build_unet_with(cfg, batch, spatial, mode, Precision::F32)
}

/// [`build_unet`] in the given precision. Mixed: the F32 input is cast to
/// F16, every layer runs on F16 activations (F32 parameters), and the head's
/// logits are cast back to F32, so `logits` is F32 in both precisions; a
/// training graph casts them with the loss scale on the gradient and holds
/// the loss-scaler state (`scaler`, starting at `ops::amp::INIT_SCALE`).
pub fn build_unet_with(
    cfg: &UNetConfig,
    batch: usize,
    spatial: &[usize],
    mode: &Mode,
    precision: Precision,
) -> Result<UNet> {
    cfg.check()?;
    if spatial.len() != cfg.dims || batch == 0 || spatial.contains(&0) {
        return Err(Error::shape(
            "unet",
            format!(
                "a {}D U-Net needs {} positive sizes and batch > 0, got {spatial:?} (batch {batch})",
                cfg.dims, cfg.dims
            ),
        ));
    }
    let training = matches!(mode, Mode::Training(_));
    let mut g = Graph::new();
    let input = g.input("input", Shape::activation(batch, cfg.in_channels, spatial))?;
    let pad = if cfg.padding == Padding::Same { 1 } else { 0 };
    let mut c = Ctx {
        g: &mut g,
        cfg,
        training,
        conv: Window::cube(cfg.dims, 3, 1, pad),
    };
    let two = Window::cube(cfg.dims, 2, 2, 0);

    let mut h = c.g.cast(input, precision.act())?;
    let mut skips = Vec::new();
    for l in 0..cfg.depth {
        let (c1, c2) = cfg.encoder_channels(l);
        h = c.block(&format!("enc{l}"), h, c1, c2)?;
        skips.push(h);
        h = c.g.max_pool(h, two)?.0;
    }
    let (c1, c2) = cfg.encoder_channels(cfg.depth);
    h = c.block("bottom", h, c1, c2)?;
    if training && cfg.dropout > 0.0 {
        h = c.g.dropout(h, cfg.dropout, 0x5eed)?;
    }
    for l in (0..cfg.depth).rev() {
        h = c.up(l, h)?;
        c.g.set_scope(&format!("dec{l}"));
        let skip = c.g.center_crop(skips[l], c.g.shape(h).spatial())?;
        h = c.g.concat(&[skip, h])?;
        let dc = cfg.decoder_channels(l);
        h = c.block(&format!("dec{l}"), h, dc, dc)?;
    }
    let head = c.head(h)?;
    c.g.set_scope("loss");
    let scaler = match (precision, training) {
        (Precision::Mixed, true) => Some(c.g.loss_scaler(LOSS_SCALER, INIT_SCALE)?),
        _ => None,
    };
    let logits = match scaler {
        Some(s) => c.g.cast_for_loss(head, s)?,
        None => c.g.cast(head, DType::F32)?,
    };
    let (labels, weight_map, loss) = match mode {
        Mode::Training(obj) => attach_loss(c.g, logits, obj)?,
        _ => (None, None, None),
    };
    g.set_scope("");
    Ok(UNet {
        graph: g,
        config: cfg.clone(),
        input,
        logits,
        labels,
        weight_map,
        loss,
        scaler,
        precision,
    })
}

/// The labels (and the weight map where the cross entropy takes one) and the
/// objective's loss on `logits`.
#[allow(clippy::type_complexity)]
fn attach_loss(
    g: &mut Graph,
    logits: ValueId,
    obj: &Loss,
) -> Result<(Option<ValueId>, Option<ValueId>, Option<ValueId>)> {
    let ls = g.shape(logits).with_c(1);
    let lab = g.label("labels", ls, DType::I32)?;
    let mut weight_map = None;
    let mut ce = |g: &mut Graph, a: &CrossEntropyAttrs| -> Result<ValueId> {
        if a.weight_map {
            weight_map = Some(g.label("weight_map", ls, DType::F32)?);
        }
        g.softmax_cross_entropy(logits, lab, weight_map, a.clone())
    };
    let loss = match obj {
        Loss::CrossEntropy(a) => ce(g, a)?,
        Loss::Dice(d) => g.dice_loss(logits, lab, *d)?,
        Loss::DiceCe {
            ce: a,
            dice,
            dice_weight,
        } => {
            let l1 = ce(g, a)?;
            let l2 = g.dice_loss(logits, lab, *dice)?;
            let l2 = g.scale(l2, *dice_weight)?;
            g.add(l1, l2)?
        }
    };
    Ok((Some(lab), weight_map, Some(loss)))
}
