//! The op set of the graph: one enum, one attribute struct per op family.
//!
//! Every op reads its inputs in the order listed below and writes its outputs
//! in the order listed. Activations are `N, C, D, H, W` (2D: D = 1, rank 4),
//! f32 unless noted. This list is the contract with the executor: each
//! variant maps to one GPU kernel call (see [`Op::has_kernel`]).
//!
//! Forward ops
//! - `Conv(ConvAttrs)`: `(x, w[O,C,k..], b[O]?) -> y`; `b` present iff `bias`.
//! - `ConvTranspose(ConvAttrs)`: `(x, w[C_in,C_out,k..], b[C_out]?) -> y`.
//! - `MaxPool(WindowAttrs)`: `x -> (y, indices: U32)`; `indices` holds, per
//!   `(n, c)`, the flat spatial index `(d*H + h)*W + w` of the maximum in `x`
//!   (first maximum wins); padded taps never win (implicit -inf).
//! - `AvgPool(AvgPoolAttrs)`: `x -> y`; padded taps count as zeros, divided by
//!   the full window (`count_include_pad`) or by the taps inside the input.
//! - `MaxUnpool(UnpoolAttrs)`: `(x, indices: U32) -> y` of spatial `size`,
//!   zero except `y[n,c,indices[i]] = x[i]`.
//! - `BatchNorm(BatchNormAttrs)`: `(x, gamma[C], beta[C], running_mean[C],
//!   running_var[C]) -> (y, save_mean[C], save_invstd[C])`. Training: batch
//!   statistics (biased variance for normalising), running stats updated in
//!   place with `r = (1-momentum) r + momentum * batch` (unbiased variance, as
//!   PyTorch). Eval: running stats, `save_* = running_mean, 1/sqrt(var+eps)`.
//! - `InstanceNorm(NormAttrs)`: `(x, gamma[C], beta[C]) -> (y, mean[N,C], invstd[N,C])`.
//! - `GroupNorm(GroupNormAttrs)`: `(x, gamma[C], beta[C]) -> (y, mean[N,G], invstd[N,G])`.
//! - `Relu`, `LeakyRelu(LeakyReluAttrs)`, `Sigmoid`: `x -> y`.
//! - `Dropout(DropoutAttrs)`: `x -> y = x * mask / (1-p)`, mask a hash of
//!   `(seed, step, flat index)`; the executor supplies `step` so the mask
//!   changes every step and `DropoutGrad` of the same step regenerates it.
//! - `Concat`: `(x0, x1, ..) -> y` along channels (2+ inputs).
//! - `Split(SplitAttrs)`: `x -> (y0, y1, ..)` along channels.
//! - `CenterCrop(CropAttrs)`: `x -> y = x[.., offset .. offset+size]`.
//! - `Pad(PadAttrs)`: `x -> y` padded by `low`/`high` per spatial axis.
//! - `Add`: `(a, b) -> a + b` (same shape). `Scale(ScaleAttrs)`: `x -> alpha x`.
//! - `Upsample(UpsampleAttrs)`: `x -> y`, spatial `in * factor`; `Linear` is
//!   (bi/tri)linear with `align_corners = false` (PyTorch's default).
//! - `SoftmaxCrossEntropy(CrossEntropyAttrs)`: `(logits, labels: I32 [N,1,..],
//!   weight_map[N,1,..]?) -> (loss[] scalar, grad_logits)`; fused: the second
//!   output is `d loss / d logits` for upstream gradient 1.
//! - `DiceLoss(DiceAttrs)`: `(logits, labels: I32) -> (loss[], grad_logits)`,
//!   soft Dice on `softmax(logits)` against one-hot labels, averaged over classes.
//! - `Zeros(Shape)`: `() -> 0` (fills a gradient that has no contribution).
//!
//! Backward ops (emitted by autodiff)
//! - `ConvGradInput(WindowGradAttrs)`: `(dy, w) -> dx` of shape `input`.
//! - `ConvGradWeight(WindowAttrs)`: `(x, dy) -> dw[O,C,k..]`.
//! - `BiasGrad`: `dy -> db[C]` (sum over N and space).
//! - `ConvTransposeGradInput(WindowAttrs)`: `(dy, w[C_in,C_out,k..]) -> dx` (= conv(dy, w)).
//! - `ConvTransposeGradWeight(WindowAttrs)`: `(x, dy) -> dw[C_in,C_out,k..]`.
//! - `MaxPoolGrad(WindowGradAttrs)`: `(dy, indices) -> dx` of shape `input`
//!   (scatter-add of dy at the argmax; overlapping windows accumulate).
//! - `AvgPoolGrad(AvgPoolGradAttrs)`: `dy -> dx` of shape `input`.
//! - `MaxUnpoolGrad`: `(dy, indices) -> dx[i] = dy[n,c,indices[i]]` (shape of indices).
//! - `BatchNormGrad(BatchNormAttrs)`: `(dy, x, gamma, save_mean, save_invstd)
//!   -> (dx, dgamma[C], dbeta[C])`; `training = false` is the eval variant
//!   (`dx = dy * gamma * invstd`, statistics are constants).
//! - `InstanceNormGrad(NormAttrs)`, `GroupNormGrad(GroupNormAttrs)`: as
//!   BatchNormGrad with per-(n, c) / per-(n, group) statistics.
//! - `ReluGrad`: `(dy, v) -> dy * (v > 0)`; autodiff passes the forward output
//!   `y` as `v` (same sign as x), so the forward Relu may run in place.
//! - `LeakyReluGrad(LeakyReluAttrs)`: `(dy, v) -> dy * (v > 0 ? 1 : slope)`;
//!   `v` is `y` when `slope >= 0`, else `x`.
//! - `SigmoidGrad`: `(dy, y) -> dy * y * (1 - y)`.
//! - `DropoutGrad(DropoutAttrs)`: `dy -> dy * mask / (1-p)` (same seed and step).
//! - `CenterCropGrad(CropGradAttrs)`: `dy -> dx` of spatial `input`, zero outside the crop.
//! - `PadGrad(PadAttrs)`: `dy -> dx` (inner region; reflect mode adds the mirrored parts).
//! - `UpsampleGrad(UpsampleAttrs)`: `dy -> dx` of spatial `out / factor`.
//!
//! Optimiser updates (no outputs; update inputs in place, see [`Op::mutates`];
//! learning rate and step count are runtime scalars supplied by the executor)
//! - `SgdUpdate(SgdAttrs)`: `(param, grad, velocity?)`, velocity present iff
//!   `momentum != 0`. PyTorch semantics: `g = grad + wd p; v = m v + g;
//!   g = nesterov ? g + m v : v; p -= lr g`.
//! - `AdamUpdate(AdamAttrs)`: `(param, grad, m, v)`. `decoupled` (AdamW):
//!   `p -= lr wd p`, else `g += wd p`; `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//!   p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`.

use crate::shape::{Shape, Window};

/// Window of a convolution or pooling, plus whether a bias input is present.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvAttrs {
    pub window: Window,
    pub bias: bool,
}

/// A window alone (max pooling, conv weight gradients).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowAttrs {
    pub window: Window,
}

/// A window and the shape of the forward input (gradients whose output size
/// cannot be recovered from `dy`, since pooling and strided conv floor).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowGradAttrs {
    pub window: Window,
    pub input: Shape,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPoolAttrs {
    pub window: Window,
    /// Divide by the full window size (true) or by the taps inside the input (false).
    pub count_include_pad: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPoolGradAttrs {
    pub pool: AvgPoolAttrs,
    pub input: Shape,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnpoolAttrs {
    /// Output spatial size `[D, H, W]`.
    pub size: [usize; 3],
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormAttrs {
    pub training: bool,
    pub momentum: f32,
    pub eps: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormAttrs {
    pub eps: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupNormAttrs {
    pub groups: usize,
    pub eps: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyReluAttrs {
    pub slope: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutAttrs {
    pub p: f32,
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SplitAttrs {
    /// Channels of each output, in order; they sum to the input's channels.
    pub sizes: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropAttrs {
    pub offset: [usize; 3],
    pub size: [usize; 3],
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropGradAttrs {
    pub offset: [usize; 3],
    /// Spatial size of the forward input (the gradient's output).
    pub input: [usize; 3],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    Zero,
    /// Mirror without repeating the edge (`x[1], x[0] | x[0], x[1], ..`:
    /// PyTorch's `reflect`); each pad must be smaller than its axis.
    Reflect,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PadAttrs {
    pub low: [usize; 3],
    pub high: [usize; 3],
    pub mode: PadMode,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleAttrs {
    pub alpha: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleMode {
    Nearest,
    /// Linear per axis (bilinear in 2D, trilinear in 3D), `align_corners = false`.
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpsampleAttrs {
    pub mode: UpsampleMode,
    /// Integer factor per axis `[D, H, W]` (2D: `factor[0] = 1`).
    pub factor: [usize; 3],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// `sum_i w_i l_i / count`, count = voxels whose label is not ignored.
    Mean,
    /// `sum_i w_i l_i / sum_i w_i` (PyTorch's mean with class weights).
    WeightedMean,
}

/// Per-voxel weight `w_i = class_weights[label_i] * weight_map_i` (each factor
/// 1 when absent); ignored voxels have weight 0 and do not count.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropyAttrs {
    pub class_weights: Option<Vec<f32>>,
    pub weight_map: bool,
    pub ignore_label: Option<i32>,
    pub reduction: Reduction,
}

/// `loss = 1 - mean_c (2 sum p_c t_c + smooth) / (sum p_c + sum t_c + smooth)`,
/// sums over one sample (`batch_dice = false`, then averaged over N) or over
/// the whole batch (`batch_dice = true`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiceAttrs {
    pub smooth: f32,
    pub batch_dice: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdAttrs {
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamAttrs {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// AdamW: weight decay applied to the parameter, not added to the gradient.
    pub decoupled: bool,
}

/// Every op of the graph with its attributes. See the module docs for the
/// inputs and outputs of each.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Conv(ConvAttrs),
    ConvTranspose(ConvAttrs),
    MaxPool(WindowAttrs),
    AvgPool(AvgPoolAttrs),
    MaxUnpool(UnpoolAttrs),
    BatchNorm(BatchNormAttrs),
    InstanceNorm(NormAttrs),
    GroupNorm(GroupNormAttrs),
    Relu,
    LeakyRelu(LeakyReluAttrs),
    Sigmoid,
    Dropout(DropoutAttrs),
    Concat,
    Split(SplitAttrs),
    CenterCrop(CropAttrs),
    Pad(PadAttrs),
    Add,
    Scale(ScaleAttrs),
    Upsample(UpsampleAttrs),
    SoftmaxCrossEntropy(CrossEntropyAttrs),
    DiceLoss(DiceAttrs),
    Zeros(Shape),
    ConvGradInput(WindowGradAttrs),
    ConvGradWeight(WindowAttrs),
    BiasGrad,
    ConvTransposeGradInput(WindowAttrs),
    ConvTransposeGradWeight(WindowAttrs),
    MaxPoolGrad(WindowGradAttrs),
    AvgPoolGrad(AvgPoolGradAttrs),
    MaxUnpoolGrad,
    BatchNormGrad(BatchNormAttrs),
    InstanceNormGrad(NormAttrs),
    GroupNormGrad(GroupNormAttrs),
    ReluGrad,
    LeakyReluGrad(LeakyReluAttrs),
    SigmoidGrad,
    DropoutGrad(DropoutAttrs),
    CenterCropGrad(CropGradAttrs),
    PadGrad(PadAttrs),
    UpsampleGrad(UpsampleAttrs),
    SgdUpdate(SgdAttrs),
    AdamUpdate(AdamAttrs),
}

/// The variant of an [`Op`] without its attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    Conv,
    ConvTranspose,
    MaxPool,
    AvgPool,
    MaxUnpool,
    BatchNorm,
    InstanceNorm,
    GroupNorm,
    Relu,
    LeakyRelu,
    Sigmoid,
    Dropout,
    Concat,
    Split,
    CenterCrop,
    Pad,
    Add,
    Scale,
    Upsample,
    SoftmaxCrossEntropy,
    DiceLoss,
    Zeros,
    ConvGradInput,
    ConvGradWeight,
    BiasGrad,
    ConvTransposeGradInput,
    ConvTransposeGradWeight,
    MaxPoolGrad,
    AvgPoolGrad,
    MaxUnpoolGrad,
    BatchNormGrad,
    InstanceNormGrad,
    GroupNormGrad,
    ReluGrad,
    LeakyReluGrad,
    SigmoidGrad,
    DropoutGrad,
    CenterCropGrad,
    PadGrad,
    UpsampleGrad,
    SgdUpdate,
    AdamUpdate,
}

/// The ops the executor has a kernel for (all of them).
pub const SUPPORTED: &[OpKind] = &[
    OpKind::Conv,
    OpKind::ConvTranspose,
    OpKind::MaxPool,
    OpKind::AvgPool,
    OpKind::MaxUnpool,
    OpKind::BatchNorm,
    OpKind::InstanceNorm,
    OpKind::GroupNorm,
    OpKind::Relu,
    OpKind::LeakyRelu,
    OpKind::Sigmoid,
    OpKind::Dropout,
    OpKind::Concat,
    OpKind::Split,
    OpKind::CenterCrop,
    OpKind::Pad,
    OpKind::Add,
    OpKind::Scale,
    OpKind::Upsample,
    OpKind::SoftmaxCrossEntropy,
    OpKind::DiceLoss,
    OpKind::Zeros,
    OpKind::ConvGradInput,
    OpKind::ConvGradWeight,
    OpKind::BiasGrad,
    OpKind::ConvTransposeGradInput,
    OpKind::ConvTransposeGradWeight,
    OpKind::MaxPoolGrad,
    OpKind::AvgPoolGrad,
    OpKind::MaxUnpoolGrad,
    OpKind::BatchNormGrad,
    OpKind::InstanceNormGrad,
    OpKind::GroupNormGrad,
    OpKind::ReluGrad,
    OpKind::LeakyReluGrad,
    OpKind::SigmoidGrad,
    OpKind::DropoutGrad,
    OpKind::CenterCropGrad,
    OpKind::PadGrad,
    OpKind::UpsampleGrad,
    OpKind::SgdUpdate,
    OpKind::AdamUpdate,
];

/// How many inputs an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

impl Arity {
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::AtLeast(k) => n >= k,
        }
    }
}

impl std::fmt::Display for Arity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arity::Exactly(k) => write!(f, "{k}"),
            Arity::AtLeast(k) => write!(f, "at least {k}"),
        }
    }
}

impl Op {
    pub fn kind(&self) -> OpKind {
        use Op::*;
        match self {
            Conv(_) => OpKind::Conv,
            ConvTranspose(_) => OpKind::ConvTranspose,
            MaxPool(_) => OpKind::MaxPool,
            AvgPool(_) => OpKind::AvgPool,
            MaxUnpool(_) => OpKind::MaxUnpool,
            BatchNorm(_) => OpKind::BatchNorm,
            InstanceNorm(_) => OpKind::InstanceNorm,
            GroupNorm(_) => OpKind::GroupNorm,
            Relu => OpKind::Relu,
            LeakyRelu(_) => OpKind::LeakyRelu,
            Sigmoid => OpKind::Sigmoid,
            Dropout(_) => OpKind::Dropout,
            Concat => OpKind::Concat,
            Split(_) => OpKind::Split,
            CenterCrop(_) => OpKind::CenterCrop,
            Pad(_) => OpKind::Pad,
            Add => OpKind::Add,
            Scale(_) => OpKind::Scale,
            Upsample(_) => OpKind::Upsample,
            SoftmaxCrossEntropy(_) => OpKind::SoftmaxCrossEntropy,
            DiceLoss(_) => OpKind::DiceLoss,
            Zeros(_) => OpKind::Zeros,
            ConvGradInput(_) => OpKind::ConvGradInput,
            ConvGradWeight(_) => OpKind::ConvGradWeight,
            BiasGrad => OpKind::BiasGrad,
            ConvTransposeGradInput(_) => OpKind::ConvTransposeGradInput,
            ConvTransposeGradWeight(_) => OpKind::ConvTransposeGradWeight,
            MaxPoolGrad(_) => OpKind::MaxPoolGrad,
            AvgPoolGrad(_) => OpKind::AvgPoolGrad,
            MaxUnpoolGrad => OpKind::MaxUnpoolGrad,
            BatchNormGrad(_) => OpKind::BatchNormGrad,
            InstanceNormGrad(_) => OpKind::InstanceNormGrad,
            GroupNormGrad(_) => OpKind::GroupNormGrad,
            ReluGrad => OpKind::ReluGrad,
            LeakyReluGrad(_) => OpKind::LeakyReluGrad,
            SigmoidGrad => OpKind::SigmoidGrad,
            DropoutGrad(_) => OpKind::DropoutGrad,
            CenterCropGrad(_) => OpKind::CenterCropGrad,
            PadGrad(_) => OpKind::PadGrad,
            UpsampleGrad(_) => OpKind::UpsampleGrad,
            SgdUpdate(_) => OpKind::SgdUpdate,
            AdamUpdate(_) => OpKind::AdamUpdate,
        }
    }

    /// Name used in errors and reports (the variant name).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Is there a GPU kernel for this op?
    pub fn has_kernel(&self) -> bool {
        SUPPORTED.contains(&self.kind())
    }

    /// Number of inputs, given the attributes.
    pub fn num_inputs(&self) -> Arity {
        use Arity::*;
        use Op::*;
        match self {
            Conv(a) | ConvTranspose(a) => Exactly(2 + a.bias as usize),
            SoftmaxCrossEntropy(a) => Exactly(2 + a.weight_map as usize),
            SgdUpdate(a) => Exactly(2 + (a.momentum != 0.0) as usize),
            AdamUpdate(_) => Exactly(4),
            BatchNorm(_) | BatchNormGrad(_) | InstanceNormGrad(_) | GroupNormGrad(_) => Exactly(5),
            InstanceNorm(_) | GroupNorm(_) => Exactly(3),
            Concat => AtLeast(2),
            Zeros(_) => Exactly(0),
            MaxUnpool(_)
            | Add
            | DiceLoss(_)
            | ConvGradInput(_)
            | ConvGradWeight(_)
            | ConvTransposeGradInput(_)
            | ConvTransposeGradWeight(_)
            | MaxPoolGrad(_)
            | MaxUnpoolGrad
            | ReluGrad
            | LeakyReluGrad(_)
            | SigmoidGrad => Exactly(2),
            MaxPool(_) | AvgPool(_) | Relu | LeakyRelu(_) | Sigmoid | Dropout(_) | Split(_)
            | CenterCrop(_) | Pad(_) | Scale(_) | Upsample(_) | BiasGrad | AvgPoolGrad(_)
            | DropoutGrad(_) | CenterCropGrad(_) | PadGrad(_) | UpsampleGrad(_) => Exactly(1),
        }
    }

    /// Number of outputs, given the attributes.
    pub fn num_outputs(&self) -> usize {
        use Op::*;
        match self {
            MaxPool(_) | SoftmaxCrossEntropy(_) | DiceLoss(_) => 2,
            BatchNorm(_) | InstanceNorm(_) | GroupNorm(_) | BatchNormGrad(_)
            | InstanceNormGrad(_) | GroupNormGrad(_) => 3,
            Split(a) => a.sizes.len(),
            SgdUpdate(_) | AdamUpdate(_) => 0,
            _ => 1,
        }
    }

    /// Inputs this op overwrites in place (parameters, running statistics,
    /// optimiser state). The scheduler runs every other reader first.
    pub fn mutates(&self) -> &'static [usize] {
        match self {
            Op::BatchNorm(a) if a.training => &[3, 4],
            Op::SgdUpdate(a) if a.momentum != 0.0 => &[0, 2],
            Op::SgdUpdate(_) => &[0],
            Op::AdamUpdate(_) => &[0, 2, 3],
            _ => &[],
        }
    }

    /// Inputs whose buffer output 0 may take over when the input dies at this
    /// node: the op is elementwise (output `i` depends only on inputs at `i`)
    /// and has the shape of that input.
    pub fn in_place_inputs(&self) -> &'static [usize] {
        use Op::*;
        match self {
            Relu | LeakyRelu(_) | Sigmoid | Dropout(_) | Scale(_) | DropoutGrad(_) => &[0],
            Add | ReluGrad | LeakyReluGrad(_) | SigmoidGrad => &[0, 1],
            _ => &[],
        }
    }

    /// Is this one of the gradient or update ops autodiff emits?
    pub fn is_backward(&self) -> bool {
        self.kind() >= OpKind::ConvGradInput
    }
}

impl OpKind {
    pub fn name(self) -> &'static str {
        use OpKind::*;
        match self {
            Conv => "Conv",
            ConvTranspose => "ConvTranspose",
            MaxPool => "MaxPool",
            AvgPool => "AvgPool",
            MaxUnpool => "MaxUnpool",
            BatchNorm => "BatchNorm",
            InstanceNorm => "InstanceNorm",
            GroupNorm => "GroupNorm",
            Relu => "Relu",
            LeakyRelu => "LeakyRelu",
            Sigmoid => "Sigmoid",
            Dropout => "Dropout",
            Concat => "Concat",
            Split => "Split",
            CenterCrop => "CenterCrop",
            Pad => "Pad",
            Add => "Add",
            Scale => "Scale",
            Upsample => "Upsample",
            SoftmaxCrossEntropy => "SoftmaxCrossEntropy",
            DiceLoss => "DiceLoss",
            Zeros => "Zeros",
            ConvGradInput => "ConvGradInput",
            ConvGradWeight => "ConvGradWeight",
            BiasGrad => "BiasGrad",
            ConvTransposeGradInput => "ConvTransposeGradInput",
            ConvTransposeGradWeight => "ConvTransposeGradWeight",
            MaxPoolGrad => "MaxPoolGrad",
            AvgPoolGrad => "AvgPoolGrad",
            MaxUnpoolGrad => "MaxUnpoolGrad",
            BatchNormGrad => "BatchNormGrad",
            InstanceNormGrad => "InstanceNormGrad",
            GroupNormGrad => "GroupNormGrad",
            ReluGrad => "ReluGrad",
            LeakyReluGrad => "LeakyReluGrad",
            SigmoidGrad => "SigmoidGrad",
            DropoutGrad => "DropoutGrad",
            CenterCropGrad => "CenterCropGrad",
            PadGrad => "PadGrad",
            UpsampleGrad => "UpsampleGrad",
            SgdUpdate => "SgdUpdate",
            AdamUpdate => "AdamUpdate",
        }
    }
}
