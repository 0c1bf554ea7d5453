//! The op set of the graph: one enum ([`Op`]), one spec per op ([`Op::spec`]),
//! one module per op family.
//!
//! Each family module ([`conv`], [`pool`], [`norm`], [`activation`],
//! [`tensor`], [`upsample`], [`loss`], [`optim`]) holds, for its ops: the
//! attribute types, one [`OpSpec`] per op (name, input and output slots with
//! their [`Role`]s, inputs updated in place, inputs whose buffer the output may
//! take over, pass), the shape rule and the gradient rule. The module docs list
//! each op's inputs and outputs in order; that order is the contract with the
//! executor (`crate::exec::dispatch`), whose GPU wrappers take their inputs in
//! the same order. Nothing here touches the GPU.
//!
//! Shape rules call the checks of [`crate::shape`], the same functions the GPU
//! wrappers in `crate::ops` call, so a graph that builds is a graph that runs.
//! Dtypes follow from the slots' roles (see [`Role`] and
//! [`is_activation_dtype`]); shape rules only see shapes.
//!
//! Adding an op: its variant below and its arm in [`Op::spec`]; in its family
//! module its attributes, spec, shape rule and (forward ops) gradient rule; its
//! arm in `exec/dispatch.rs`; and, outside the graph, its kernel, `ops/`
//! wrapper, CPU reference and tests (DEVELOPERS.md lists them).

pub mod activation;
pub mod amp;
pub mod conv;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod tensor;
pub mod upsample;

pub use activation::{DropoutAttrs, LeakyReluAttrs};
pub use amp::{CastAttrs, UpdateScaleAttrs};
pub use conv::ConvAttrs;
pub use loss::{CrossEntropyAttrs, DiceAttrs, Reduction};
pub use norm::{BatchNormAttrs, GroupNormAttrs, NormAttrs};
pub use optim::{AdamAttrs, SgdAttrs};
pub use pool::{AvgPoolAttrs, AvgPoolGradAttrs, UnpoolAttrs};
pub use tensor::{CropAttrs, CropGradAttrs, PadAttrs, PadMode, ScaleAttrs, SplitAttrs, ZerosAttrs};
pub use upsample::{UpsampleAttrs, UpsampleMode};

use super::autodiff::Backward;
use crate::error::Result;
pub use crate::shape::Check;
use crate::shape::{DType, Shape, Window};

/// Every op of the graph with its attributes, grouped by family (see each
/// family module for the inputs and outputs).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    // conv
    Conv(ConvAttrs),
    ConvRelu(ConvAttrs),
    ConvTranspose(ConvAttrs),
    ConvGradInput(WindowGradAttrs),
    ConvGradWeight(WindowAttrs),
    BiasGrad,
    ConvTransposeGradInput(WindowAttrs),
    ConvTransposeGradWeight(WindowAttrs),
    // pool
    MaxPool(WindowAttrs),
    AvgPool(AvgPoolAttrs),
    MaxUnpool(UnpoolAttrs),
    MaxPoolGrad(WindowGradAttrs),
    AvgPoolGrad(AvgPoolGradAttrs),
    MaxUnpoolGrad,
    // norm
    BatchNorm(BatchNormAttrs),
    InstanceNorm(NormAttrs),
    GroupNorm(GroupNormAttrs),
    BatchNormGrad(BatchNormAttrs),
    InstanceNormGrad(NormAttrs),
    GroupNormGrad(GroupNormAttrs),
    // norm, fused with a ReLU (made by `graph::fuse`, never by autodiff alone)
    BatchNormRelu(BatchNormAttrs),
    BatchNormReluGrad(BatchNormAttrs),
    // activation
    Relu,
    LeakyRelu(LeakyReluAttrs),
    Sigmoid,
    Dropout(DropoutAttrs),
    ReluGrad,
    LeakyReluGrad(LeakyReluAttrs),
    SigmoidGrad,
    DropoutGrad(DropoutAttrs),
    // tensor
    Concat,
    Split(SplitAttrs),
    CenterCrop(CropAttrs),
    Pad(PadAttrs),
    Add,
    Scale(ScaleAttrs),
    Zeros(ZerosAttrs),
    Identity,
    CenterCropGrad(CropGradAttrs),
    PadGrad(PadAttrs),
    // upsample
    Upsample(UpsampleAttrs),
    UpsampleGrad(UpsampleAttrs),
    // loss
    SoftmaxCrossEntropy(CrossEntropyAttrs),
    DiceLoss(DiceAttrs),
    // optim
    SgdUpdate(SgdAttrs),
    AdamUpdate(AdamAttrs),
    // amp (mixed precision)
    Cast(CastAttrs),
    CastGrad(CastAttrs),
    FiniteCheck,
    UpdateScale(UpdateScaleAttrs),
}

impl Op {
    /// The op table: each op's spec, declared in its family module. Besides
    /// the enum, this is the only place that lists every op.
    pub fn spec(&self) -> OpSpec {
        use Op::*;
        match self {
            Conv(a) => conv::conv(a),
            ConvRelu(a) => conv::conv_relu(a),
            ConvTranspose(a) => conv::conv_transpose(a),
            ConvGradInput(_) => conv::CONV_GRAD_INPUT,
            ConvGradWeight(_) => conv::CONV_GRAD_WEIGHT,
            BiasGrad => conv::BIAS_GRAD,
            ConvTransposeGradInput(_) => conv::CONV_TRANSPOSE_GRAD_INPUT,
            ConvTransposeGradWeight(_) => conv::CONV_TRANSPOSE_GRAD_WEIGHT,
            MaxPool(_) => pool::MAX_POOL,
            AvgPool(_) => pool::AVG_POOL,
            MaxUnpool(_) => pool::MAX_UNPOOL,
            MaxPoolGrad(_) => pool::MAX_POOL_GRAD,
            AvgPoolGrad(_) => pool::AVG_POOL_GRAD,
            MaxUnpoolGrad => pool::MAX_UNPOOL_GRAD,
            BatchNorm(a) => norm::batch_norm(a),
            InstanceNorm(_) => norm::INSTANCE_NORM,
            GroupNorm(_) => norm::GROUP_NORM,
            BatchNormGrad(_) => norm::BATCH_NORM_GRAD,
            InstanceNormGrad(_) => norm::INSTANCE_NORM_GRAD,
            GroupNormGrad(_) => norm::GROUP_NORM_GRAD,
            BatchNormRelu(a) => norm::batch_norm_relu(a),
            BatchNormReluGrad(_) => norm::BATCH_NORM_RELU_GRAD,
            Relu => activation::RELU,
            LeakyRelu(_) => activation::LEAKY_RELU,
            Sigmoid => activation::SIGMOID,
            Dropout(_) => activation::DROPOUT,
            ReluGrad => activation::RELU_GRAD,
            LeakyReluGrad(_) => activation::LEAKY_RELU_GRAD,
            SigmoidGrad => activation::SIGMOID_GRAD,
            DropoutGrad(_) => activation::DROPOUT_GRAD,
            Concat => tensor::CONCAT,
            Split(a) => tensor::split(a),
            CenterCrop(_) => tensor::CENTER_CROP,
            Pad(_) => tensor::PAD,
            Add => tensor::ADD,
            Scale(_) => tensor::SCALE,
            Zeros(_) => tensor::ZEROS,
            Identity => tensor::IDENTITY,
            CenterCropGrad(_) => tensor::CENTER_CROP_GRAD,
            PadGrad(_) => tensor::PAD_GRAD,
            Upsample(_) => upsample::UPSAMPLE,
            UpsampleGrad(_) => upsample::UPSAMPLE_GRAD,
            SoftmaxCrossEntropy(a) => loss::softmax_cross_entropy(a),
            DiceLoss(_) => loss::DICE_LOSS,
            SgdUpdate(a) => optim::sgd_update(a),
            AdamUpdate(a) => optim::adam_update(a),
            Cast(a) => amp::cast(a),
            CastGrad(a) => amp::cast_grad(a),
            FiniteCheck => amp::FINITE_CHECK,
            UpdateScale(_) => amp::UPDATE_SCALE,
        }
    }

    /// Name used in errors and reports (the variant name).
    pub fn name(&self) -> &'static str {
        self.spec().name
    }

    /// Number of inputs, given the attributes.
    pub fn num_inputs(&self) -> Arity {
        self.spec().inputs.arity()
    }

    /// Number of outputs, given the attributes.
    pub fn num_outputs(&self) -> usize {
        self.spec().outputs.count()
    }

    /// Inputs this op overwrites in place (parameters, running statistics,
    /// optimiser state). The scheduler runs every other reader first.
    pub fn mutates(&self) -> &'static [usize] {
        self.spec().mutates
    }

    /// Inputs whose buffer output 0 may take over when the input dies at this
    /// node: the op is elementwise (output `i` depends only on inputs at `i`)
    /// and has the shape of that input.
    pub fn in_place_inputs(&self) -> &'static [usize] {
        self.spec().in_place
    }

    /// Is output 0 input 0 itself (same buffer, no kernel; see [`OpSpec::alias`])?
    pub fn is_alias(&self) -> bool {
        self.spec().alias
    }

    /// Is this one of the gradient or update ops autodiff emits?
    pub fn is_backward(&self) -> bool {
        self.spec().pass != Pass::Forward
    }
}

// ------------------------------------------------------------------ the spec

/// Which pass an op belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Forward,
    /// A gradient op emitted by autodiff (not differentiable itself).
    Backward,
    /// An optimiser update (no outputs; updates its inputs in place).
    Update,
}

/// What a value is to the op that reads or writes it; the role decides the dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An activation or activation gradient `N, C, (D), H, W`: an activation
    /// dtype ([`is_activation_dtype`]).
    Act,
    /// An elementwise operand of any shape (activations, their gradients,
    /// losses, parameter gradients being summed): an activation dtype.
    Any,
    /// A parameter, parameter gradient, statistic, optimiser state, loss or
    /// pixel weight map: always F32.
    F32,
    /// The F16 side of a mixed-precision cast: always F16.
    F16,
    /// Class labels: I32.
    Labels,
    /// Argmax indices, flags: U32.
    Indices,
}

impl Role {
    /// Does a value of dtype `dt` fit this role?
    pub fn accepts(self, dt: DType) -> bool {
        match self {
            Role::Act | Role::Any => is_activation_dtype(dt),
            Role::F32 => dt == DType::F32,
            Role::F16 => dt == DType::F16,
            Role::Labels => dt == DType::I32,
            Role::Indices => dt == DType::U32,
        }
    }

    /// Dtype of an output with this role; activation outputs take `act`, the
    /// dtype of the op's activation inputs.
    pub fn output_dtype(self, act: DType) -> DType {
        match self {
            Role::Act | Role::Any => act,
            Role::F32 => DType::F32,
            Role::F16 => DType::F16,
            Role::Labels => DType::I32,
            Role::Indices => DType::U32,
        }
    }

    pub(crate) fn expected(self) -> &'static str {
        match self {
            Role::Act | Role::Any => "an activation dtype",
            Role::F32 => "F32",
            Role::F16 => "F16",
            Role::Labels => "I32",
            Role::Indices => "U32",
        }
    }
}

/// The one activation-dtype rule: the dtypes activations and their gradients
/// may have, F32 or F16 (mixed precision: f16 storage, f32 arithmetic).
/// Parameters, their gradients, statistics and losses stay F32
/// ([`Role::F32`]). The GPU wrappers (`crate::ops`) apply the same rule.
pub fn is_activation_dtype(dt: DType) -> bool {
    matches!(dt, DType::F32 | DType::F16)
}

/// Can a value of dtype `dt` carry a gradient (an activation or F32 value,
/// not labels or indices)?
pub fn is_differentiable_dtype(dt: DType) -> bool {
    dt == DType::F32 || is_activation_dtype(dt)
}

/// One input or output of an op: its name in messages and its role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub name: &'static str,
    pub role: Role,
}

impl Slot {
    pub const fn act(name: &'static str) -> Self {
        Slot {
            name,
            role: Role::Act,
        }
    }
    pub const fn any(name: &'static str) -> Self {
        Slot {
            name,
            role: Role::Any,
        }
    }
    pub const fn f32(name: &'static str) -> Self {
        Slot {
            name,
            role: Role::F32,
        }
    }
    pub const fn f16(name: &'static str) -> Self {
        Slot {
            name,
            role: Role::F16,
        }
    }
    pub const fn labels(name: &'static str) -> Self {
        Slot {
            name,
            role: Role::Labels,
        }
    }
    pub const fn indices(name: &'static str) -> Self {
        Slot {
            name,
            role: Role::Indices,
        }
    }
}

/// The inputs or outputs of an op, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slots {
    /// These slots.
    List(&'static [Slot]),
    /// At least `min` of one slot (Concat's inputs).
    AtLeast(usize, Slot),
    /// Exactly `n` of one slot (Split's outputs).
    Repeat(usize, Slot),
}

impl Slots {
    pub fn arity(&self) -> Arity {
        match *self {
            Slots::List(l) => Arity::Exactly(l.len()),
            Slots::AtLeast(min, _) => Arity::AtLeast(min),
            Slots::Repeat(n, _) => Arity::Exactly(n),
        }
    }
    /// The number of slots (the minimum for [`Slots::AtLeast`]).
    pub fn count(&self) -> usize {
        match self.arity() {
            Arity::Exactly(k) | Arity::AtLeast(k) => k,
        }
    }
    /// Slot `i`, if the op has one.
    pub fn get(&self, i: usize) -> Option<Slot> {
        match *self {
            Slots::List(l) => l.get(i).copied(),
            Slots::AtLeast(_, s) => Some(s),
            Slots::Repeat(n, s) => (i < n).then_some(s),
        }
    }
    /// How messages call slot `i` (`"weight"`, or `"input 2"` for a repeated slot).
    pub fn name(&self, i: usize) -> String {
        match (self, self.get(i)) {
            (Slots::List(_), Some(s)) => s.name.to_string(),
            (_, Some(s)) => format!("{} {i}", s.name),
            (_, None) => format!("slot {i}"),
        }
    }
}

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

/// A family's shape rule: output shapes from input shapes (inputs already
/// counted and dtype-checked against the spec's slots).
pub type ShapeRule = fn(&Op, &[Shape]) -> Check<Vec<Shape>>;

/// A family's gradient rule: emits the backward nodes of one forward node.
pub type GradRule = fn(&mut Backward) -> Result<()>;

/// Everything the graph, the planner and autodiff know about one op.
#[derive(Clone, Copy, Debug)]
pub struct OpSpec {
    pub name: &'static str,
    pub pass: Pass,
    pub inputs: Slots,
    pub outputs: Slots,
    /// Inputs updated in place (see [`Op::mutates`]).
    pub mutates: &'static [usize],
    /// Inputs whose buffer output 0 may take over (see [`Op::in_place_inputs`]).
    pub in_place: &'static [usize],
    /// Output 0 is input 0 itself: the planner gives both one buffer and the
    /// op records no kernel (`Identity`, which `graph::fuse` leaves where a
    /// fused op already wrote the value).
    pub alias: bool,
    /// The family's shape rule.
    pub shapes: ShapeRule,
    /// The family's gradient rule; `None` for ops that are not differentiated
    /// (gradient and update ops).
    pub grads: Option<GradRule>,
}

impl OpSpec {
    /// An op of `pass` with fixed input and output slots.
    pub const fn new(
        name: &'static str,
        pass: Pass,
        inputs: &'static [Slot],
        outputs: &'static [Slot],
        shapes: ShapeRule,
        grads: Option<GradRule>,
    ) -> Self {
        OpSpec {
            name,
            pass,
            inputs: Slots::List(inputs),
            outputs: Slots::List(outputs),
            mutates: &[],
            in_place: &[],
            alias: false,
            shapes,
            grads,
        }
    }
    pub const fn with_inputs(mut self, inputs: Slots) -> Self {
        self.inputs = inputs;
        self
    }
    pub const fn with_outputs(mut self, outputs: Slots) -> Self {
        self.outputs = outputs;
        self
    }
    pub const fn mutating(mut self, inputs: &'static [usize]) -> Self {
        self.mutates = inputs;
        self
    }
    pub const fn in_place(mut self, inputs: &'static [usize]) -> Self {
        self.in_place = inputs;
        self
    }
    pub const fn aliasing(mut self) -> Self {
        self.alias = true;
        self
    }
}

/// The error of a family rule reached with an op of another family (a wiring
/// mistake in [`Op::spec`]; never a user error).
pub(crate) fn foreign(family: &str, op: &Op) -> String {
    format!(
        "internal: the {family} family has no rule for {}",
        op.name()
    )
}

// ------------------------------------------------------------------ shared attributes

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
