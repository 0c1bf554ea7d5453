//! Segmentation losses over channels (axis 1) with integer label maps, 2D and
//! 3D: softmax cross-entropy, soft Dice, and Dice + CE. Each op writes the
//! scalar loss into a 1-element GPU tensor (read back only when the caller
//! asks) and the gradient w.r.t. the logits for an upstream gradient of 1;
//! every reduction runs on the GPU.
//!
//! Labels are an `I32` tensor `N,1,(D),H,W`. A pixel takes part when its label
//! is in `0..C` and is not the ignore label; other pixels (ignored, or out of
//! range: PyTorch would raise) add nothing and get gradient 0. When the
//! normaliser of the cross-entropy is 0 (every pixel ignored) the loss and
//! gradient are 0 (PyTorch gives NaN).
//!
//! Dtypes: `logits` are activations, F32 or F16, and `grad` takes the
//! logits' dtype (`act_dtype` in `crate::ops`); the loss, per-class Dice, NLL map,
//! class weights and weight map are F32. Every sum is taken in f32.
//!
//! | op      | dispatches                                                                  |
//! |---------|-----------------------------------------------------------------------------|
//! | CE      | `loss_ce::pixels`, `loss_ce::combine`, `loss_ce_grad::grad_logits`           |
//! | Dice    | `loss_dice::{lse_pixels, partials, combine, total, grad_logits}`             |
//! | Dice+CE | the CE three, then Dice without `lse_pixels` (reuses CE's log-sum-exp)       |

use super::norm::distinct;
use super::{act_dtype, alloc_act, checked, expect};
use crate::error::{Error, Result};
use crate::gpu::{AdapterClass, DType, Recorder, Tensor};
use crate::graph::ops::{CrossEntropyAttrs, DiceAttrs, Reduction};
use crate::shape::{self, dice_shape, label_map_shape, Shape};
use bytemuck::{Pod, Zeroable};

/// Dice + CE settings (the fused op of this module; the graph composes the
/// two loss ops instead): `loss = weight_ce * CE + weight_dice * Dice`.
#[derive(Clone, Debug)]
pub struct DiceCeConfig {
    pub ce: CrossEntropyAttrs,
    pub dice: DiceAttrs,
    pub weight_ce: f32,
    pub weight_dice: f32,
}

impl Default for DiceCeConfig {
    fn default() -> Self {
        DiceCeConfig {
            ce: CrossEntropyAttrs::default(),
            dice: DiceAttrs::default(),
            weight_ce: 1.0,
            weight_dice: 1.0,
        }
    }
}

/// Outputs of the allocating loss ops.
#[derive(Debug)]
pub struct LossOutput {
    /// 1 element.
    pub loss: Tensor,
    /// d loss / d logits.
    pub grad: Tensor,
    /// Per-pixel unweighted cross-entropy (when asked for).
    pub nll_map: Option<Tensor>,
    /// Per-class Dice (Dice losses).
    pub dice: Option<Tensor>,
}

const CE_CLASS_W: u32 = 1;
const CE_WMAP: u32 = 2;
const IGNORE: u32 = 4;
const CE_WEIGHTED: u32 = 8;
const CE_NLL_MAP: u32 = 16;
const DICE_SAMPLE: u32 = 1;
const DICE_ACC_LOSS: u32 = 32;
const DICE_ACC_GRAD: u32 = 64;
const DICE_NO_BACKGROUND: u32 = 128;

/// Uniform block of `loss_ce.wgsl` and `loss_ce_grad.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct CeParams {
    n: u32,
    c: u32,
    s: u32,
    chunk: u32,
    cpp: u32,
    flags: u32,
    ignore: i32,
    nparts: u32,
    scale: f32,
    aux_off: u32,
    pad: [u32; 2],
}

/// Uniform block of `loss_dice.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct DiceParams {
    n: u32,
    c: u32,
    s: u32,
    chunk: u32,
    cpp: u32,
    flags: u32,
    ignore: i32,
    coef_off: u32,
    smooth: f32,
    scale: f32,
    inv_terms: f32,
    terms: u32,
}

/// Pixels per workgroup: long runs on CPU adapters, more workgroups on GPUs.
fn pixel_chunk(rec: &Recorder, s: usize) -> usize {
    let base = match rec.ctx.class {
        AdapterClass::Cpu => 4096,
        AdapterClass::Gpu => 256,
    };
    base.min(s.max(1))
}

fn scratch(rec: &Recorder, len: usize) -> Result<Tensor> {
    Tensor::empty(rec.ctx, Shape::vector(len.max(1)), DType::F32)
}

fn check_inputs(
    op: &'static str,
    logits: &Tensor,
    labels: &Tensor,
    grad: &Tensor,
    loss: &Tensor,
) -> Result<()> {
    let act = act_dtype(op, &[("logits", logits), ("grad", grad)])?;
    checked(op, shape::check_indexable("logits", &logits.shape))?;
    checked(
        op,
        shape::check_label_map("labels", &labels.shape, &logits.shape),
    )?;
    expect(op, "labels", labels, labels.shape, DType::I32)?;
    expect(op, "grad", grad, logits.shape, act)?;
    expect(op, "loss", loss, Shape::scalar(), DType::F32)?;
    distinct(
        op,
        ("grad", grad),
        &[("logits", logits), ("labels", labels)],
    )?;
    distinct(
        op,
        ("loss", loss),
        &[("logits", logits), ("labels", labels), ("grad", grad)],
    )?;
    Ok(())
}

/// CE: per-pixel pass, combine, gradient. `lse` receives the log-sum-exp per pixel.
#[allow(clippy::too_many_arguments)]
fn dispatch_ce(
    rec: &mut Recorder,
    logits: &Tensor,
    labels: &Tensor,
    class_weight: Option<&Tensor>,
    weight_map: Option<&Tensor>,
    cfg: &CrossEntropyAttrs,
    scale: f32,
    lse: &Tensor,
    loss: &Tensor,
    grad: &Tensor,
    nll_map: Option<&Tensor>,
) -> Result<()> {
    let xs = logits.shape;
    let s = xs.spatial_numel();
    let chunk = pixel_chunk(rec, s);
    let cpp = s.div_ceil(chunk);
    let nparts = xs.n() * cpp;
    let mut flags = 0;
    if class_weight.is_some() {
        flags |= CE_CLASS_W;
    }
    if weight_map.is_some() {
        flags |= CE_WMAP;
    }
    if cfg.ignore_label.is_some() {
        flags |= IGNORE;
    }
    if cfg.reduction == Reduction::WeightedMean {
        flags |= CE_WEIGHTED;
    }
    if nll_map.is_some() {
        flags |= CE_NLL_MAP;
    }
    let p = CeParams {
        n: xs.n() as u32,
        c: xs.c() as u32,
        s: s as u32,
        chunk: chunk as u32,
        cpp: cpp as u32,
        flags,
        ignore: cfg.ignore_label.unwrap_or(0),
        nparts: nparts as u32,
        scale,
        aux_off: (3 * nparts) as u32,
        pad: [0; 2],
    };
    let part = scratch(rec, 3 * nparts + 1)?;
    // Absent weights: an F32 stand-in for their f32 bindings (never read).
    let stand_in = scratch(rec, 1)?;
    let cw = class_weight.unwrap_or(&stand_in);
    let wm = weight_map.unwrap_or(&stand_in);
    let nm = nll_map.unwrap_or(lse);
    let g = rec.grid(nparts as u64)?;
    rec.dispatch(
        "loss_ce",
        "pixels",
        &[],
        &p,
        &[logits, labels, cw, wm, lse, nm, &part, loss],
        g,
    )?;
    rec.dispatch(
        "loss_ce",
        "combine",
        &[],
        &p,
        &[logits, labels, cw, wm, lse, nm, &part, loss],
        [1, 1, 1],
    )?;
    rec.dispatch(
        "loss_ce_grad",
        "grad_logits",
        &[],
        &p,
        &[logits, labels, cw, wm, lse, &part, grad],
        g,
    )
}

/// Dice: (log-sum-exp unless `lse_ready`), partials, combine, total, gradient.
#[allow(clippy::too_many_arguments)]
fn dispatch_dice(
    rec: &mut Recorder,
    logits: &Tensor,
    labels: &Tensor,
    cfg: &DiceAttrs,
    scale: f32,
    accumulate: bool,
    lse: &Tensor,
    lse_ready: bool,
    loss: &Tensor,
    grad: &Tensor,
    dice: &Tensor,
) -> Result<()> {
    let xs = logits.shape;
    let (n, c, s) = (xs.n(), xs.c(), xs.spatial_numel());
    let chunk = pixel_chunk(rec, s);
    let cpp = s.div_ceil(chunk);
    let nparts = c * n * cpp;
    let per_sample = !cfg.batch_dice;
    let (terms, counted) = cfg.terms(&xs);
    let mut flags = 0;
    if per_sample {
        flags |= DICE_SAMPLE;
    }
    if !cfg.include_background {
        flags |= DICE_NO_BACKGROUND;
    }
    if cfg.ignore_label.is_some() {
        flags |= IGNORE;
    }
    if accumulate {
        flags |= DICE_ACC_LOSS | DICE_ACC_GRAD;
    }
    let p = DiceParams {
        n: n as u32,
        c: c as u32,
        s: s as u32,
        chunk: chunk as u32,
        cpp: cpp as u32,
        flags,
        ignore: cfg.ignore_label.unwrap_or(0),
        coef_off: (3 * nparts) as u32,
        smooth: cfg.smooth,
        scale,
        inv_terms: (1.0 / counted as f64) as f32,
        terms: terms as u32,
    };
    let part = scratch(rec, 3 * nparts + 2 * terms)?;
    let b = [logits, labels, lse, &part, dice, loss, grad];
    let pix = rec.grid((n * cpp) as u64)?;
    if !lse_ready {
        rec.dispatch("loss_dice", "lse_pixels", &[], &p, &b, pix)?;
    }
    let g = rec.grid(nparts as u64)?;
    rec.dispatch("loss_dice", "partials", &[], &p, &b, g)?;
    let g = rec.grid(terms as u64)?;
    rec.dispatch("loss_dice", "combine", &[], &p, &b, g)?;
    rec.dispatch("loss_dice", "total", &[], &p, &b, [1, 1, 1])?;
    rec.dispatch("loss_dice", "grad_logits", &[], &p, &b, pix)
}

/// The optional inputs agree with `cfg` (a weight map iff `cfg.weight_map`, a
/// class-weight tensor iff `cfg.class_weights`) and fit the logits.
fn check_ce_extras(
    op: &'static str,
    logits: &Tensor,
    weight_map: Option<&Tensor>,
    class_weight: Option<&Tensor>,
    cfg: &CrossEntropyAttrs,
    nll_map: Option<&Tensor>,
    grad: &Tensor,
) -> Result<()> {
    checked(op, cfg.check(&logits.shape))?;
    if cfg.weight_map != weight_map.is_some()
        || cfg.class_weights.is_some() != class_weight.is_some()
    {
        return Err(Error::shape(
            op,
            format!(
                "weight_map: {}, class_weight: {} do not match the settings (weight_map {}, class_weights {})",
                weight_map.is_some(),
                class_weight.is_some(),
                cfg.weight_map,
                cfg.class_weights.is_some()
            ),
        ));
    }
    let ls = label_map_shape(&logits.shape);
    if let Some(cw) = class_weight {
        expect(
            op,
            "class_weight",
            cw,
            Shape::vector(logits.shape.c()),
            DType::F32,
        )?;
    }
    if let Some(wm) = weight_map {
        checked(
            op,
            shape::check_label_map("weight map", &wm.shape, &logits.shape),
        )?;
        expect(op, "weight_map", wm, ls, DType::F32)?;
    }
    if let Some(nm) = nll_map {
        expect(op, "nll_map", nm, ls, DType::F32)?;
        distinct(op, ("nll_map", nm), &[("logits", logits), ("grad", grad)])?;
    }
    for (what, t) in [("class_weight", class_weight), ("weight_map", weight_map)] {
        if let Some(t) = t {
            distinct(op, ("grad", grad), &[(what, t)])?;
        }
    }
    Ok(())
}

fn check_dice(
    op: &'static str,
    logits: &Tensor,
    cfg: &DiceAttrs,
    dice: &Tensor,
    grad: &Tensor,
) -> Result<()> {
    checked(op, cfg.check(&logits.shape))?;
    let ds = dice_shape(&logits.shape, !cfg.batch_dice);
    expect(op, "dice", dice, ds, DType::F32)?;
    distinct(op, ("dice", dice), &[("logits", logits), ("grad", grad)])
}

fn lse_scratch(rec: &Recorder, logits: &Tensor) -> Result<Tensor> {
    Tensor::empty(rec.ctx, label_map_shape(&logits.shape), DType::F32)
}

/// Softmax cross-entropy over channels into `loss` (1 element) and `grad`
/// (logits' shape), optionally the per-pixel unweighted `nll_map` (`N,1,(D),H,W`).
/// Inputs as the graph's `SoftmaxCrossEntropy`: `weight_map` `N,1,(D),H,W`
/// (e.g. the U-Net border weights) iff `cfg.weight_map`; then `class_weight`,
/// `cfg.class_weights` uploaded (`[C]`), iff those are set.
#[allow(clippy::too_many_arguments)]
pub fn softmax_cross_entropy_into(
    rec: &mut Recorder,
    logits: &Tensor,
    labels: &Tensor,
    weight_map: Option<&Tensor>,
    class_weight: Option<&Tensor>,
    cfg: &CrossEntropyAttrs,
    loss: &Tensor,
    grad: &Tensor,
    nll_map: Option<&Tensor>,
) -> Result<()> {
    let op = "softmax_cross_entropy";
    check_inputs(op, logits, labels, grad, loss)?;
    check_ce_extras(op, logits, weight_map, class_weight, cfg, nll_map, grad)?;
    let lse = lse_scratch(rec, logits)?;
    dispatch_ce(
        rec,
        logits,
        labels,
        class_weight,
        weight_map,
        cfg,
        1.0,
        &lse,
        loss,
        grad,
        nll_map,
    )
}

/// The loss (F32) and the gradient (the logits' activation dtype).
fn alloc(rec: &Recorder, logits: &Tensor) -> Result<(Tensor, Tensor)> {
    Ok((
        Tensor::empty(rec.ctx, Shape::scalar(), DType::F32)?,
        alloc_act(rec, logits.shape, logits)?,
    ))
}

/// Allocating variant of [`softmax_cross_entropy_into`].
pub fn softmax_cross_entropy(
    rec: &mut Recorder,
    logits: &Tensor,
    labels: &Tensor,
    weight_map: Option<&Tensor>,
    class_weight: Option<&Tensor>,
    cfg: &CrossEntropyAttrs,
    want_nll_map: bool,
) -> Result<LossOutput> {
    let (loss, grad) = alloc(rec, logits)?;
    let nll_map = if want_nll_map {
        Some(Tensor::empty(
            rec.ctx,
            label_map_shape(&logits.shape),
            DType::F32,
        )?)
    } else {
        None
    };
    softmax_cross_entropy_into(
        rec,
        logits,
        labels,
        weight_map,
        class_weight,
        cfg,
        &loss,
        &grad,
        nll_map.as_ref(),
    )?;
    Ok(LossOutput {
        loss,
        grad,
        nll_map,
        dice: None,
    })
}

/// Soft Dice loss over `softmax(logits)` into `loss` (1 element), `grad`
/// (logits' shape) and the per-class `dice` (`[C]`, or `[N, C]` per sample).
#[allow(clippy::too_many_arguments)]
pub fn dice_loss_into(
    rec: &mut Recorder,
    logits: &Tensor,
    labels: &Tensor,
    cfg: &DiceAttrs,
    loss: &Tensor,
    grad: &Tensor,
    dice: &Tensor,
) -> Result<()> {
    let op = "dice_loss";
    check_inputs(op, logits, labels, grad, loss)?;
    check_dice(op, logits, cfg, dice, grad)?;
    let lse = lse_scratch(rec, logits)?;
    dispatch_dice(
        rec, logits, labels, cfg, 1.0, false, &lse, false, loss, grad, dice,
    )
}

/// Allocating variant of [`dice_loss_into`].
pub fn dice_loss(
    rec: &mut Recorder,
    logits: &Tensor,
    labels: &Tensor,
    cfg: &DiceAttrs,
) -> Result<LossOutput> {
    let (loss, grad) = alloc(rec, logits)?;
    let dice = Tensor::empty(
        rec.ctx,
        dice_shape(&logits.shape, !cfg.batch_dice),
        DType::F32,
    )?;
    dice_loss_into(rec, logits, labels, cfg, &loss, &grad, &dice)?;
    Ok(LossOutput {
        loss,
        grad,
        nll_map: None,
        dice: Some(dice),
    })
}

/// Dice + CE as in nnU-Net: `loss = weight_ce * CE + weight_dice * Dice` (this Dice
/// loss is `1 - mean(dice)` over all classes, background included), gradients summed.
#[allow(clippy::too_many_arguments)]
pub fn dice_ce_loss_into(
    rec: &mut Recorder,
    logits: &Tensor,
    labels: &Tensor,
    weight_map: Option<&Tensor>,
    class_weight: Option<&Tensor>,
    cfg: &DiceCeConfig,
    loss: &Tensor,
    grad: &Tensor,
    dice: &Tensor,
    nll_map: Option<&Tensor>,
) -> Result<()> {
    let op = "dice_ce_loss";
    check_inputs(op, logits, labels, grad, loss)?;
    check_ce_extras(op, logits, weight_map, class_weight, &cfg.ce, nll_map, grad)?;
    check_dice(op, logits, &cfg.dice, dice, grad)?;
    for (what, w) in [
        ("weight_ce", cfg.weight_ce),
        ("weight_dice", cfg.weight_dice),
    ] {
        if !w.is_finite() {
            return Err(Error::shape(op, format!("{what} must be finite, got {w}")));
        }
    }
    let lse = lse_scratch(rec, logits)?;
    dispatch_ce(
        rec,
        logits,
        labels,
        class_weight,
        weight_map,
        &cfg.ce,
        cfg.weight_ce,
        &lse,
        loss,
        grad,
        nll_map,
    )?;
    dispatch_dice(
        rec,
        logits,
        labels,
        &cfg.dice,
        cfg.weight_dice,
        true,
        &lse,
        true,
        loss,
        grad,
        dice,
    )
}

/// Allocating variant of [`dice_ce_loss_into`].
pub fn dice_ce_loss(
    rec: &mut Recorder,
    logits: &Tensor,
    labels: &Tensor,
    weight_map: Option<&Tensor>,
    class_weight: Option<&Tensor>,
    cfg: &DiceCeConfig,
    want_nll_map: bool,
) -> Result<LossOutput> {
    let (loss, grad) = alloc(rec, logits)?;
    let dice = Tensor::empty(
        rec.ctx,
        dice_shape(&logits.shape, !cfg.dice.batch_dice),
        DType::F32,
    )?;
    let nll_map = if want_nll_map {
        Some(Tensor::empty(
            rec.ctx,
            label_map_shape(&logits.shape),
            DType::F32,
        )?)
    } else {
        None
    };
    dice_ce_loss_into(
        rec,
        logits,
        labels,
        weight_map,
        class_weight,
        cfg,
        &loss,
        &grad,
        &dice,
        nll_map.as_ref(),
    )?;
    Ok(LossOutput {
        loss,
        grad,
        nll_map,
        dice: Some(dice),
    })
}
