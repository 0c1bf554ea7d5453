//! Graph op -> GPU op: the one place where every [`Op`] meets its kernel call.

use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::graph::ops::{self as gops, Op};
use crate::graph::{Graph, Node};
use crate::ops::{activation, conv, loss, norm, optim, pool, reduce, tensor, upsample};
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

fn up_mode(m: gops::UpsampleMode) -> upsample::UpsampleMode {
    match m {
        gops::UpsampleMode::Nearest => upsample::UpsampleMode::Nearest,
        gops::UpsampleMode::Linear => upsample::UpsampleMode::Linear,
    }
}

fn pad_mode(m: gops::PadMode) -> tensor::PadMode {
    match m {
        gops::PadMode::Zero => tensor::PadMode::Zero,
        gops::PadMode::Reflect => tensor::PadMode::Reflect,
    }
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
    t: &dyn Fn(crate::graph::ValueId) -> &'t Tensor,
    sv: &StepValues,
) -> Result<()> {
    let i = |k: usize| t(node.inputs[k]);
    let o = |k: usize| t(node.outputs[k]);
    let opt_in = |k: usize| node.inputs.get(k).map(|v| t(*v));
    match &node.op {
        Op::Conv(a) => conv::conv_into(
            rec,
            i(0),
            i(1),
            if a.bias { opt_in(2) } else { None },
            &a.window,
            o(0),
            Auto,
        ),
        Op::ConvTranspose(a) => conv::conv_transpose_into(
            rec,
            i(0),
            i(1),
            if a.bias { opt_in(2) } else { None },
            &a.window,
            o(0),
            Auto,
        ),
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
        Op::MaxPool(a) => pool::max_pool_into(rec, i(0), &a.window, o(0), o(1)),
        Op::MaxPoolGrad(a) => pool::max_pool_grad_into(rec, i(0), i(1), &a.window, o(0)),
        Op::AvgPool(a) => pool::avg_pool_into(rec, i(0), &a.window, a.count_include_pad, o(0)),
        Op::AvgPoolGrad(a) => {
            pool::avg_pool_grad_into(rec, i(0), &a.pool.window, a.pool.count_include_pad, o(0))
        }
        Op::MaxUnpool(_) => pool::max_unpool_into(rec, i(0), i(1), o(0)),
        Op::MaxUnpoolGrad => pool::max_unpool_grad_into(rec, i(0), i(1), o(0)),
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
            // Eval mode: the saved statistics are only needed by a backward through
            // eval-mode batch norm, which training graphs never contain.
            let cons = g.consumers();
            if node.outputs[1..].iter().any(|v| !cons[v.0].is_empty()) {
                return Err(Error::unsupported(
                    "batch_norm",
                    "backward through eval-mode batch norm",
                ));
            }
            norm::batch_norm_eval_into(rec, i(0), i(1), i(2), i(3), i(4), a.eps, o(0))
        }
        Op::BatchNormGrad(a) if a.training => norm::batch_norm_train_backward_into(
            rec,
            i(1),
            i(0),
            i(2),
            i(3),
            i(4),
            o(0),
            o(1),
            o(2),
        ),
        Op::BatchNormGrad(_) => Err(Error::unsupported(
            "batch_norm",
            "backward through eval-mode batch norm",
        )),
        Op::InstanceNorm(a) => {
            norm::instance_norm_into(rec, i(0), i(1), i(2), a.eps, o(0), o(1), o(2))
        }
        Op::InstanceNormGrad(_) => {
            norm::instance_norm_backward_into(rec, i(1), i(0), i(2), i(3), i(4), o(0), o(1), o(2))
        }
        Op::GroupNorm(a) => {
            norm::group_norm_into(rec, i(0), a.groups, i(1), i(2), a.eps, o(0), o(1), o(2))
        }
        Op::GroupNormGrad(a) => norm::group_norm_backward_into(
            rec,
            i(1),
            a.groups,
            i(0),
            i(2),
            i(3),
            i(4),
            o(0),
            o(1),
            o(2),
        ),
        Op::Relu => activation::relu_into(rec, i(0), o(0)),
        Op::ReluGrad => activation::relu_grad_into(rec, i(1), i(0), o(0)),
        Op::LeakyRelu(a) => activation::leaky_relu_into(rec, i(0), a.slope, o(0)),
        Op::LeakyReluGrad(a) => activation::leaky_relu_grad_into(rec, i(1), i(0), a.slope, o(0)),
        Op::Sigmoid => activation::sigmoid_into(rec, i(0), o(0)),
        Op::SigmoidGrad => activation::sigmoid_grad_into(rec, i(1), i(0), o(0)),
        Op::Dropout(a) => {
            activation::dropout_into(rec, i(0), a.p, dropout_seed(a.seed, sv.step), o(0))
        }
        Op::DropoutGrad(a) => {
            activation::dropout_grad_into(rec, i(0), a.p, dropout_seed(a.seed, sv.step), o(0))
        }
        Op::Concat => {
            let xs: Vec<&Tensor> = node.inputs.iter().map(|v| t(*v)).collect();
            tensor::concat_channels_into(rec, &xs, o(0))
        }
        Op::Split(_) => {
            let ys: Vec<&Tensor> = node.outputs.iter().map(|v| t(*v)).collect();
            tensor::split_channels_into(rec, i(0), &ys)
        }
        Op::CenterCrop(a) => tensor::crop_into(rec, i(0), a.offset, o(0)),
        Op::CenterCropGrad(a) => tensor::crop_grad_into(rec, i(0), a.offset, o(0)),
        Op::Pad(a) => tensor::pad_into(rec, i(0), a.low, a.high, pad_mode(a.mode), o(0)),
        Op::PadGrad(a) => tensor::pad_grad_into(rec, i(0), a.low, a.high, pad_mode(a.mode), o(0)),
        Op::Add => tensor::add_into(rec, i(0), i(1), o(0)),
        Op::Scale(a) => tensor::scale_into(rec, i(0), a.alpha, o(0)),
        Op::Zeros(_) => tensor::fill_into(rec, o(0), 0.0),
        Op::Upsample(a) => upsample::upsample_into(rec, i(0), a.factor, up_mode(a.mode), o(0)),
        Op::UpsampleGrad(a) => {
            upsample::upsample_grad_into(rec, i(0), a.factor, up_mode(a.mode), o(0))
        }
        Op::SoftmaxCrossEntropy(a) => {
            let cfg = loss::CeConfig {
                reduction: match a.reduction {
                    gops::Reduction::Mean => loss::CeReduction::Mean,
                    gops::Reduction::WeightedMean => loss::CeReduction::WeightedMean,
                },
                ignore_index: a.ignore_label,
            };
            let wmap = if a.weight_map { opt_in(2) } else { None };
            loss::softmax_cross_entropy_into(
                rec,
                i(0),
                i(1),
                (sv.class_weights)(ni),
                wmap,
                &cfg,
                o(0),
                o(1),
                None,
            )
        }
        Op::DiceLoss(a) => {
            let cfg = loss::DiceConfig {
                reduce: if a.batch_dice {
                    loss::DiceReduce::Batch
                } else {
                    loss::DiceReduce::Sample
                },
                smooth: a.smooth,
                ..Default::default()
            };
            let scratch = (sv.dice_scratch)(ni)
                .ok_or_else(|| Error::Other(format!("node {}: dice scratch missing", node.name)))?;
            loss::dice_loss_into(rec, i(0), i(1), &cfg, o(0), o(1), scratch)
        }
        Op::SgdUpdate(a) => {
            let cfg = optim::Sgd {
                momentum: a.momentum as f64,
                weight_decay: a.weight_decay as f64,
                nesterov: a.nesterov,
            };
            optim::sgd_update(rec, i(0), i(1), opt_in(2), sv.hyper, &cfg)
        }
        Op::AdamUpdate(a) => {
            let cfg = optim::Adam {
                beta1: a.beta1 as f64,
                beta2: a.beta2 as f64,
                eps: a.eps as f64,
                weight_decay: a.weight_decay as f64,
                decoupled: a.decoupled,
            };
            optim::adam_update(rec, i(0), i(1), i(2), i(3), sv.hyper, &cfg)
        }
    }
    .map_err(|e| match e {
        Error::Shape { op, msg } => Error::Shape {
            op,
            msg: format!("node '{}': {msg}", node.name),
        },
        other => other,
    })
}
