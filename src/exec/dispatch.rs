//! Graph op -> GPU op: the one place where every [`Op`] meets its kernel call.
//! A plain table: each GPU wrapper takes the node's inputs in the graph's
//! order, then the attributes (the graph's own types), then the outputs.

use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::graph::ops::{ConvAttrs, Op};
use crate::graph::{Graph, Node, ValueId};
use crate::ops::{
    activation, amp, conv, loss, norm, norm_relu, optim, pool, reduce, tensor, upsample,
};
use conv::ConvKernel::Auto;

/// Runtime values a step supplies to ops that need them.
pub struct StepValues<'a> {
    /// Optimiser per-step values (`ops::optim::hyper_values`), rewritten before each submission.
    pub hyper: &'a Tensor,
    /// Mixed into dropout seeds so the mask changes every step.
    pub step: u64,
    /// Per-class weight tensors of cross-entropy nodes, by node index.
    pub class_weights: &'a dyn Fn(usize) -> Option<&'a Tensor>,
    /// Per-class Dice scratch of Dice nodes, by node index.
    pub dice_scratch: &'a dyn Fn(usize) -> Option<&'a Tensor>,
}

fn dropout_seed(seed: u64, step: u64) -> u32 {
    let h = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    (h ^ (h >> 32)) as u32
}

/// Record the kernels of `node` (index `ni`). `t(v)` is the tensor of value `v`.
pub fn encode_node<'t>(
    rec: &mut Recorder,
    g: &Graph,
    ni: usize,
    node: &Node,
    t: &dyn Fn(ValueId) -> &'t Tensor,
    sv: &StepValues,
) -> Result<()> {
    let i = |k: usize| t(node.inputs[k]);
    let o = |k: usize| t(node.outputs[k]);
    // Optional input `k`, present when the attributes say so.
    let opt_in = |present: bool, k: usize| {
        if present {
            node.inputs.get(k).map(|v| t(*v))
        } else {
            None
        }
    };
    let bias = |a: &ConvAttrs| opt_in(a.bias, 2);
    let all = |vs: &[ValueId]| -> Vec<&Tensor> { vs.iter().map(|v| t(*v)).collect() };
    match &node.op {
        // conv
        Op::Conv(a) => conv::conv_into(rec, i(0), i(1), bias(a), &a.window, o(0), Auto),
        Op::ConvRelu(a) => conv::conv_relu_into(rec, i(0), i(1), bias(a), &a.window, o(0), Auto),
        Op::ConvTranspose(a) => {
            conv::conv_transpose_into(rec, i(0), i(1), bias(a), &a.window, o(0), Auto)
        }
        Op::ConvGradInput(a) => conv::conv_grad_input_into(rec, i(0), i(1), &a.window, o(0), Auto),
        Op::ConvGradWeight(a) => {
            conv::conv_grad_weight_into(rec, i(0), i(1), &a.window, o(0), Auto)
        }
        Op::BiasGrad => reduce::channel_sum_into(rec, i(0), o(0), false),
        Op::ConvTransposeGradInput(a) => {
            conv::conv_transpose_grad_input_into(rec, i(0), i(1), &a.window, o(0), Auto)
        }
        Op::ConvTransposeGradWeight(a) => {
            conv::conv_transpose_grad_weight_into(rec, i(0), i(1), &a.window, o(0), Auto)
        }
        // pool
        Op::MaxPool(a) => pool::max_pool_into(rec, i(0), &a.window, o(0), o(1)),
        Op::AvgPool(a) => pool::avg_pool_into(rec, i(0), &a.window, a.count_include_pad, o(0)),
        Op::MaxUnpool(_) => pool::max_unpool_into(rec, i(0), i(1), o(0)),
        Op::MaxPoolGrad(a) => pool::max_pool_grad_into(rec, i(0), i(1), &a.window, o(0)),
        Op::AvgPoolGrad(a) => {
            pool::avg_pool_grad_into(rec, i(0), &a.pool.window, a.pool.count_include_pad, o(0))
        }
        Op::MaxUnpoolGrad => pool::max_unpool_grad_into(rec, i(0), i(1), o(0)),
        // norm
        Op::BatchNorm(a) if a.training => norm::batch_norm_train_into(
            rec,
            i(0),
            i(1),
            i(2),
            i(3),
            i(4),
            a.momentum,
            a.eps,
            o(0),
            o(1),
            o(2),
        ),
        Op::BatchNorm(a) => {
            crate::graph::check_kernel_ops(g)?;
            norm::batch_norm_eval_into(rec, i(0), i(1), i(2), i(3), i(4), a.eps, o(0))
        }
        Op::InstanceNorm(a) => {
            norm::instance_norm_into(rec, i(0), i(1), i(2), a.eps, o(0), o(1), o(2))
        }
        Op::GroupNorm(a) => {
            norm::group_norm_into(rec, i(0), i(1), i(2), a.groups, a.eps, o(0), o(1), o(2))
        }
        // Eval mode has no BatchNormGrad: the graph rejects it.
        Op::BatchNormGrad(_) => norm::batch_norm_train_backward_into(
            rec,
            i(0),
            i(1),
            i(2),
            i(3),
            i(4),
            o(0),
            o(1),
            o(2),
        ),
        Op::InstanceNormGrad(_) => {
            norm::instance_norm_backward_into(rec, i(0), i(1), i(2), i(3), i(4), o(0), o(1), o(2))
        }
        Op::GroupNormGrad(a) => norm::group_norm_backward_into(
            rec,
            i(0),
            i(1),
            i(2),
            i(3),
            i(4),
            a.groups,
            o(0),
            o(1),
            o(2),
        ),
        Op::BatchNormRelu(a) if a.training => norm_relu::batch_norm_relu_train_into(
            rec,
            i(0),
            i(1),
            i(2),
            i(3),
            i(4),
            a.momentum,
            a.eps,
            o(0),
            o(1),
            o(2),
        ),
        Op::BatchNormRelu(a) => {
            crate::graph::check_kernel_ops(g)?;
            norm_relu::batch_norm_relu_eval_into(rec, i(0), i(1), i(2), i(3), i(4), a.eps, o(0))
        }
        Op::BatchNormReluGrad(_) => norm_relu::batch_norm_relu_train_backward_into(
            rec,
            i(0),
            i(1),
            i(2),
            i(3),
            i(4),
            i(5),
            o(0),
            o(1),
            o(2),
        ),
        // activation
        Op::Relu => activation::relu_into(rec, i(0), o(0)),
        Op::LeakyRelu(a) => activation::leaky_relu_into(rec, i(0), a.slope, o(0)),
        Op::Sigmoid => activation::sigmoid_into(rec, i(0), o(0)),
        Op::Dropout(a) => {
            activation::dropout_into(rec, i(0), a.p, dropout_seed(a.seed, sv.step), o(0))
        }
        Op::ReluGrad => activation::relu_grad_into(rec, i(0), i(1), o(0)),
        Op::LeakyReluGrad(a) => activation::leaky_relu_grad_into(rec, i(0), i(1), a.slope, o(0)),
        Op::SigmoidGrad => activation::sigmoid_grad_into(rec, i(0), i(1), o(0)),
        Op::DropoutGrad(a) => {
            activation::dropout_grad_into(rec, i(0), a.p, dropout_seed(a.seed, sv.step), o(0))
        }
        // tensor
        Op::Concat => tensor::concat_channels_into(rec, &all(&node.inputs), o(0)),
        Op::Split(_) => tensor::split_channels_into(rec, i(0), &all(&node.outputs)),
        Op::CenterCrop(a) => tensor::crop_into(rec, i(0), a.offset, o(0)),
        Op::Pad(a) => tensor::pad_into(rec, i(0), a.low, a.high, a.mode, o(0)),
        Op::Add => tensor::add_into(rec, i(0), i(1), o(0)),
        Op::Scale(a) => tensor::scale_into(rec, i(0), a.alpha, o(0)),
        Op::Zeros(_) => tensor::fill_into(rec, o(0), 0.0),
        Op::Identity => tensor::identity_into(rec, i(0), o(0)),
        Op::CenterCropGrad(a) => tensor::crop_grad_into(rec, i(0), a.offset, o(0)),
        Op::PadGrad(a) => tensor::pad_grad_into(rec, i(0), a.low, a.high, a.mode, o(0)),
        // upsample
        Op::Upsample(a) => upsample::upsample_into(rec, i(0), a.factor, a.mode, o(0)),
        Op::UpsampleGrad(a) => upsample::upsample_grad_into(rec, i(0), a.factor, a.mode, o(0)),
        // loss
        Op::SoftmaxCrossEntropy(a) => loss::softmax_cross_entropy_into(
            rec,
            i(0),
            i(1),
            opt_in(a.weight_map, 2),
            (sv.class_weights)(ni),
            a,
            o(0),
            o(1),
            None,
        ),
        Op::DiceLoss(a) => {
            let scratch = (sv.dice_scratch)(ni)
                .ok_or_else(|| Error::Other(format!("node {}: dice scratch missing", node.name)))?;
            loss::dice_loss_into(rec, i(0), i(1), a, o(0), o(1), scratch)
        }
        // optim (with amp, the last two inputs are the overflow flag and the loss scaler)
        Op::SgdUpdate(a) => {
            let k = 2 + a.uses_velocity() as usize;
            let amp = a.amp.then(|| (i(k), i(k + 1)));
            optim::sgd_update(
                rec,
                i(0),
                i(1),
                opt_in(a.uses_velocity(), 2),
                sv.hyper,
                amp,
                a,
            )
        }
        Op::AdamUpdate(a) => {
            let amp = a.amp.then(|| (i(4), i(5)));
            optim::adam_update(rec, i(0), i(1), i(2), i(3), sv.hyper, amp, a)
        }
        // amp
        Op::Cast(_) => amp::cast_into(rec, i(0), o(0), None),
        Op::CastGrad(a) => amp::cast_into(rec, i(0), o(0), opt_in(a.scale_grad, 1)),
        Op::FiniteCheck => amp::finite_check_into(rec, &all(&node.inputs), o(0)),
        Op::UpdateScale(a) => amp::update_scale_into(rec, i(1), i(0), a.interval),
    }
    .map_err(|e| match e {
        Error::Shape { op, msg } => Error::Shape {
            op,
            msg: format!("node '{}': {msg}", node.name),
        },
        other => other,
    })
}
