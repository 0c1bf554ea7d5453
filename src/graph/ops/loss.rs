//! Loss family: fused softmax cross-entropy and soft Dice over the channel
//! axis with integer label maps. Each outputs the scalar loss and its
//! gradient with respect to the logits for an upstream gradient of 1.
//!
//! - `SoftmaxCrossEntropy(CrossEntropyAttrs)`: `(logits, labels: I32 [N,1,..],
//!   weight_map[N,1,..]?) -> (loss[] scalar, grad_logits)`; `weight_map`
//!   present iff `attrs.weight_map`.
//! - `DiceLoss(DiceAttrs)`: `(logits, labels: I32) -> (loss[], grad_logits)`,
//!   soft Dice on `softmax(logits)` against one-hot labels, averaged over classes.
//!
//! A pixel takes part when its label is in `0..C` and is not the ignore label.
//! The loss reaches the objective only through `Add` and `Scale`, so autodiff
//! passes `grad_logits` (scaled) to the logits.

use super::{foreign, Check, Op, OpSpec, Pass, Slot};
use crate::error::Result;
use crate::graph::autodiff::{Backward, Grad};
use crate::shape::{self, Shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// `sum_i w_i l_i / count`, count = voxels whose label is not ignored.
    #[default]
    Mean,
    /// `sum_i w_i l_i / sum_i w_i` (PyTorch's mean with class weights).
    WeightedMean,
}

/// Per-voxel weight `w_i = class_weights[label_i] * weight_map_i` (each factor
/// 1 when absent); ignored voxels have weight 0 and do not count.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CrossEntropyAttrs {
    pub class_weights: Option<Vec<f32>>,
    pub weight_map: bool,
    pub ignore_label: Option<i32>,
    pub reduction: Reduction,
}

/// `loss = 1 - mean_c (2 sum p_c t_c + smooth) / (sum p_c + sum t_c + smooth)`,
/// sums over one sample (`batch_dice = false`, then averaged over N and C) or
/// over the whole batch (`batch_dice = true`, nnU-Net's default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiceAttrs {
    pub smooth: f32,
    pub batch_dice: bool,
    pub ignore_label: Option<i32>,
    /// Whether class 0's terms count in the mean (MONAI's
    /// `include_background`; nnU-Net leaves them out, `do_bg = False`).
    /// Without them the loss and its gradient see only classes `1..C`;
    /// class 0's Dice is still reported.
    pub include_background: bool,
}

impl Default for DiceAttrs {
    /// Batch Dice, `smooth = 1e-5`, no ignore label, background included.
    fn default() -> Self {
        DiceAttrs {
            smooth: 1e-5,
            batch_dice: true,
            ignore_label: None,
            include_background: true,
        }
    }
}

impl DiceAttrs {
    /// `smooth` must be finite and >= 0; without the background, logits
    /// `x` need a class besides it.
    pub fn check(&self, x: &Shape) -> Check<()> {
        if !(self.smooth.is_finite() && self.smooth >= 0.0) {
            return Err(format!(
                "smooth must be finite and >= 0, got {}",
                self.smooth
            ));
        }
        if !self.include_background && x.c() < 2 {
            return Err(format!(
                "include_background = false needs at least 2 classes, logits {x} have {}",
                x.c()
            ));
        }
        Ok(())
    }

    /// The terms of the mean: `(terms, counted)`, counted = the terms
    /// without class 0's when the background is left out.
    pub fn terms(&self, x: &Shape) -> (usize, usize) {
        let per = if self.batch_dice { 1 } else { x.n() };
        let terms = per * x.c();
        match self.include_background {
            true => (terms, terms),
            false => (terms, terms - per),
        }
    }
}

impl CrossEntropyAttrs {
    /// The class weights, if any, are one per class of logits `x`.
    pub fn check(&self, x: &Shape) -> Check<()> {
        if let Some(cw) = &self.class_weights {
            if cw.len() != x.c() {
                return Err(format!(
                    "{} class weights for logits {x} with {} classes",
                    cw.len(),
                    x.c()
                ));
            }
        }
        Ok(())
    }
}

const LOGITS: Slot = Slot::act("logits");
const LABELS: Slot = Slot::labels("labels");
const WEIGHT_MAP: Slot = Slot::f32("weight map");
const LOSS: Slot = Slot::f32("loss");
const GRAD: Slot = Slot::act("logits gradient");

const fn forward(name: &'static str, inputs: &'static [Slot]) -> OpSpec {
    OpSpec::new(
        name,
        Pass::Forward,
        inputs,
        &[LOSS, GRAD],
        shapes,
        Some(grads),
    )
}

pub(super) fn softmax_cross_entropy(a: &CrossEntropyAttrs) -> OpSpec {
    let inputs: &'static [Slot] = if a.weight_map {
        &[LOGITS, LABELS, WEIGHT_MAP]
    } else {
        &[LOGITS, LABELS]
    };
    forward("SoftmaxCrossEntropy", inputs)
}
pub(super) const DICE_LOSS: OpSpec = forward("DiceLoss", &[LOGITS, LABELS]);

/// The shape rule of the family: `(loss[], grad_logits)`.
fn shapes(op: &Op, ins: &[Shape]) -> Check<Vec<Shape>> {
    let x = &ins[0];
    shape::check_indexable("logits", x)?;
    shape::check_label_map("labels", &ins[1], x)?;
    match op {
        Op::SoftmaxCrossEntropy(a) => {
            if a.weight_map {
                shape::check_label_map("weight map", &ins[2], x)?;
            }
            a.check(x)?;
        }
        Op::DiceLoss(a) => a.check(x)?,
        op => return Err(foreign("loss", op)),
    }
    Ok(vec![Shape::scalar(), *x])
}

/// The gradient rule: the fused gradient output, scaled by a constant upstream gradient.
fn grads(b: &mut Backward) -> Result<()> {
    let grad_logits = b.output(1);
    match b.grad_of(0) {
        Some(Grad::Const(1.0)) => b.give(0, grad_logits),
        Some(Grad::Const(c)) => {
            let op = Op::Scale(super::ScaleAttrs { alpha: c });
            let dx = b.emit1("dx", op, &[grad_logits])?;
            b.give(0, dx);
        }
        _ => return Err(b.error("a loss may reach the objective only through Add and Scale")),
    }
    Ok(())
}
