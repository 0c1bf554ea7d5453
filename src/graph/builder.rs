//! Builder methods that read like the model:
//! `let x = g.conv(x, w, Some(b), window)?; let x = g.relu(x)?;`
//! plus layer helpers that also create the named parameters.

use super::init::{conv_fan_in, conv_transpose_fan_in, Init};
use super::ir::{Graph, StateRole, ValueId};
use super::ops::*;
use crate::error::{Error, Result};
use crate::shape::{center_crop_offset, conv_weight_shape, DType, Shape, Window};

impl Graph {
    pub fn conv(
        &mut self,
        x: ValueId,
        w: ValueId,
        b: Option<ValueId>,
        window: Window,
    ) -> Result<ValueId> {
        let mut ins = vec![x, w];
        ins.extend(b);
        self.add1(
            Op::Conv(ConvAttrs {
                window,
                bias: b.is_some(),
            }),
            &ins,
        )
    }
    /// Transposed convolution with weight `(C_in, C_out, k..)`.
    pub fn conv_transpose(
        &mut self,
        x: ValueId,
        w: ValueId,
        b: Option<ValueId>,
        window: Window,
    ) -> Result<ValueId> {
        let mut ins = vec![x, w];
        ins.extend(b);
        self.add1(
            Op::ConvTranspose(ConvAttrs {
                window,
                bias: b.is_some(),
            }),
            &ins,
        )
    }
    /// Returns `(y, indices)`.
    pub fn max_pool(&mut self, x: ValueId, window: Window) -> Result<(ValueId, ValueId)> {
        let o = self.add_node(Op::MaxPool(WindowAttrs { window }), &[x])?;
        Ok((o[0], o[1]))
    }
    pub fn avg_pool(
        &mut self,
        x: ValueId,
        window: Window,
        count_include_pad: bool,
    ) -> Result<ValueId> {
        self.add1(
            Op::AvgPool(AvgPoolAttrs {
                window,
                count_include_pad,
            }),
            &[x],
        )
    }
    pub fn max_unpool(
        &mut self,
        x: ValueId,
        indices: ValueId,
        size: [usize; 3],
    ) -> Result<ValueId> {
        self.add1(Op::MaxUnpool(UnpoolAttrs { size }), &[x, indices])
    }
    /// Returns `y`; the saved statistics are `g.siblings(y)[1..]`.
    pub fn batch_norm(
        &mut self,
        x: ValueId,
        gamma: ValueId,
        beta: ValueId,
        running_mean: ValueId,
        running_var: ValueId,
        attrs: BatchNormAttrs,
    ) -> Result<ValueId> {
        self.add1(
            Op::BatchNorm(attrs),
            &[x, gamma, beta, running_mean, running_var],
        )
    }
    pub fn instance_norm(
        &mut self,
        x: ValueId,
        gamma: ValueId,
        beta: ValueId,
        eps: f32,
    ) -> Result<ValueId> {
        self.add1(Op::InstanceNorm(NormAttrs { eps }), &[x, gamma, beta])
    }
    pub fn group_norm(
        &mut self,
        x: ValueId,
        gamma: ValueId,
        beta: ValueId,
        groups: usize,
        eps: f32,
    ) -> Result<ValueId> {
        self.add1(
            Op::GroupNorm(GroupNormAttrs { groups, eps }),
            &[x, gamma, beta],
        )
    }
    /// `x` converted to `to` (F32 or F16); `x` itself when it already is.
    pub fn cast(&mut self, x: ValueId, to: DType) -> Result<ValueId> {
        if self.value(x).dtype == to {
            return Ok(x);
        }
        self.add1(
            Op::Cast(CastAttrs {
                to,
                scale_grad: false,
            }),
            &[x],
        )
    }
    /// Mixed precision: F16 `logits` cast to F32 for the loss; the gradient
    /// flowing back through this cast is multiplied by the loss scale held in
    /// `scaler` (see [`Graph::loss_scaler`]).
    pub fn cast_for_loss(&mut self, logits: ValueId, scaler: ValueId) -> Result<ValueId> {
        let at = CastAttrs {
            to: DType::F32,
            scale_grad: true,
        };
        self.add1(Op::Cast(at), &[logits, scaler])
    }
    /// The loss-scaler state `[scale, 1/scale, good_steps, skipped_steps]`
    /// of mixed precision (saved with the optimiser state), starting at `scale`.
    pub fn loss_scaler(&mut self, name: &str, scale: f32) -> Result<ValueId> {
        self.state(
            name,
            Shape::vector(crate::graph::ops::amp::SCALER_LEN),
            StateRole::Optimizer,
            Init::LossScaler(scale),
        )
    }
    pub fn relu(&mut self, x: ValueId) -> Result<ValueId> {
        self.add1(Op::Relu, &[x])
    }
    pub fn leaky_relu(&mut self, x: ValueId, slope: f32) -> Result<ValueId> {
        self.add1(Op::LeakyRelu(LeakyReluAttrs { slope }), &[x])
    }
    pub fn sigmoid(&mut self, x: ValueId) -> Result<ValueId> {
        self.add1(Op::Sigmoid, &[x])
    }
    pub fn dropout(&mut self, x: ValueId, p: f32, seed: u64) -> Result<ValueId> {
        self.add1(Op::Dropout(DropoutAttrs { p, seed }), &[x])
    }
    /// Channel concatenation of 2+ values, in the given order.
    pub fn concat(&mut self, xs: &[ValueId]) -> Result<ValueId> {
        self.add1(Op::Concat, xs)
    }
    pub fn split(&mut self, x: ValueId, sizes: &[usize]) -> Result<Vec<ValueId>> {
        self.add_node(
            Op::Split(SplitAttrs {
                sizes: sizes.to_vec(),
            }),
            &[x],
        )
    }
    pub fn crop(&mut self, x: ValueId, offset: [usize; 3], size: [usize; 3]) -> Result<ValueId> {
        self.add1(Op::CenterCrop(CropAttrs { offset, size }), &[x])
    }
    /// Crop the centre `size` of `x` (offset `floor((in - size)/2)`); returns
    /// `x` itself when the sizes already match.
    pub fn center_crop(&mut self, x: ValueId, size: [usize; 3]) -> Result<ValueId> {
        let xs = self.shape(x);
        if xs.spatial() == size {
            return Ok(x);
        }
        let offset = center_crop_offset(xs.spatial(), size).ok_or_else(|| {
            Error::shape(
                "CenterCrop",
                format!("cannot crop '{}' {xs} to {size:?}", self.value(x).name),
            )
        })?;
        self.crop(x, offset, size)
    }
    pub fn pad(
        &mut self,
        x: ValueId,
        low: [usize; 3],
        high: [usize; 3],
        mode: PadMode,
    ) -> Result<ValueId> {
        self.add1(Op::Pad(PadAttrs { low, high, mode }), &[x])
    }
    pub fn add(&mut self, a: ValueId, b: ValueId) -> Result<ValueId> {
        self.add1(Op::Add, &[a, b])
    }
    pub fn scale(&mut self, x: ValueId, alpha: f32) -> Result<ValueId> {
        self.add1(Op::Scale(ScaleAttrs { alpha }), &[x])
    }
    pub fn upsample(
        &mut self,
        x: ValueId,
        mode: UpsampleMode,
        factor: [usize; 3],
    ) -> Result<ValueId> {
        self.add1(Op::Upsample(UpsampleAttrs { mode, factor }), &[x])
    }
    /// Returns the scalar loss; `g.siblings(loss)[1]` is the fused logits gradient.
    pub fn softmax_cross_entropy(
        &mut self,
        logits: ValueId,
        labels: ValueId,
        weight_map: Option<ValueId>,
        mut attrs: CrossEntropyAttrs,
    ) -> Result<ValueId> {
        attrs.weight_map = weight_map.is_some();
        let mut ins = vec![logits, labels];
        ins.extend(weight_map);
        self.add1(Op::SoftmaxCrossEntropy(attrs), &ins)
    }
    pub fn dice_loss(
        &mut self,
        logits: ValueId,
        labels: ValueId,
        attrs: DiceAttrs,
    ) -> Result<ValueId> {
        self.add1(Op::DiceLoss(attrs), &[logits, labels])
    }

    // ------------------------------------------------------------ layers

    /// Convolution layer `name` with weight `name.weight` (He normal) and,
    /// if `bias`, `name.bias` (zeros); `out_c` output channels.
    pub fn conv_layer(
        &mut self,
        name: &str,
        x: ValueId,
        out_c: usize,
        window: Window,
        bias: bool,
    ) -> Result<ValueId> {
        let xs = self.shape(x);
        let w = self.param(
            &format!("{name}.weight"),
            conv_weight_shape(out_c, xs.c(), &window, xs.is_3d()),
            Init::HeNormal {
                fan_in: conv_fan_in(xs.c(), &window),
            },
        )?;
        let b = if bias {
            Some(self.param(&format!("{name}.bias"), Shape::vector(out_c), Init::Zeros)?)
        } else {
            None
        };
        self.conv(x, w, b, window)
    }
    /// Transposed convolution layer with weight `name.weight` `(C_in, out_c, k..)`.
    pub fn conv_transpose_layer(
        &mut self,
        name: &str,
        x: ValueId,
        out_c: usize,
        window: Window,
        bias: bool,
    ) -> Result<ValueId> {
        let xs = self.shape(x);
        let w = self.param(
            &format!("{name}.weight"),
            conv_weight_shape(xs.c(), out_c, &window, xs.is_3d()),
            Init::HeNormal {
                fan_in: conv_transpose_fan_in(xs.c(), &window),
            },
        )?;
        let b = if bias {
            Some(self.param(&format!("{name}.bias"), Shape::vector(out_c), Init::Zeros)?)
        } else {
            None
        };
        self.conv_transpose(x, w, b, window)
    }
    /// `name.weight` (ones) and `name.bias` (zeros) of a norm layer over `c` channels.
    fn affine(&mut self, name: &str, c: usize) -> Result<(ValueId, ValueId)> {
        let gamma = self.param(&format!("{name}.weight"), Shape::vector(c), Init::Ones)?;
        let beta = self.param(&format!("{name}.bias"), Shape::vector(c), Init::Zeros)?;
        Ok((gamma, beta))
    }
    /// Batch norm layer: parameters `name.weight/.bias`, state `name.running_mean` (0) and `name.running_var` (1).
    pub fn batch_norm_layer(
        &mut self,
        name: &str,
        x: ValueId,
        attrs: BatchNormAttrs,
    ) -> Result<ValueId> {
        let c = self.shape(x).c();
        let (gamma, beta) = self.affine(name, c)?;
        let rm = self.state(
            &format!("{name}.running_mean"),
            Shape::vector(c),
            StateRole::NormStats,
            Init::Zeros,
        )?;
        let rv = self.state(
            &format!("{name}.running_var"),
            Shape::vector(c),
            StateRole::NormStats,
            Init::Ones,
        )?;
        self.batch_norm(x, gamma, beta, rm, rv, attrs)
    }
    pub fn instance_norm_layer(&mut self, name: &str, x: ValueId, eps: f32) -> Result<ValueId> {
        let c = self.shape(x).c();
        let (gamma, beta) = self.affine(name, c)?;
        self.instance_norm(x, gamma, beta, eps)
    }
    pub fn group_norm_layer(
        &mut self,
        name: &str,
        x: ValueId,
        groups: usize,
        eps: f32,
    ) -> Result<ValueId> {
        let c = self.shape(x).c();
        let (gamma, beta) = self.affine(name, c)?;
        self.group_norm(x, gamma, beta, groups, eps)
    }
}
