//! Golden adapters: `softmax_cross_entropy` (loss, nll_map; grad logits;
//! `mean`, `weighted_mean`, `mean` with a weight map, an optional ignore label)
//! and `dice_loss` (loss, per-class dice; grad logits; `batch` / `sample`), via
//! `wunet::ops::loss`. The engine's gradient is for an upstream gradient of 1;
//! it is scaled by the case's `grad_loss` (1.0 in these cases). `logits` and
//! their gradient are activations (F16 in the mixed run); the weight map, loss,
//! `nll_map` and `dice` F32.

use super::harness::{AdapterResult, Case, Data, Host, Outcome, Produced};
use wunet::graph::ops::{CrossEntropyAttrs, DiceAttrs, Reduction};
use wunet::ops::loss as l;

/// The case's upstream gradient of the scalar loss.
fn grad_scale(case: &Case) -> Result<f32, Outcome> {
    let h = case.grad_output("loss")?;
    match &h.data {
        Data::F32(v) if v.len() == 1 => Ok(v[0]),
        _ => Err(Outcome::Error("grad_loss is not one float".into())),
    }
}

fn scaled(mut h: Host, s: f32) -> Host {
    if let Data::F32(v) = &mut h.data {
        v.iter_mut().for_each(|x| *x *= s);
    }
    h
}

fn check_axis(case: &Case) -> Result<(), Outcome> {
    let axis = case.attr_usize("axis")?;
    if axis != 1 {
        return Err(Outcome::Skip(format!("class axis {axis} (only 1)")));
    }
    Ok(())
}

fn ignore_index(case: &Case) -> Result<Option<i32>, Outcome> {
    match case.spec.attrs.get("ignore_index") {
        None => Ok(None),
        Some(v) if v.is_null() => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(Some)
            .ok_or_else(|| Outcome::Error(format!("attrs.ignore_index is not an i32: {v}"))),
    }
}

pub fn softmax_cross_entropy(case: &Case) -> AdapterResult {
    check_axis(case)?;
    let reduction = match case.attr_str("reduction")?.as_str() {
        "mean" => Reduction::Mean,
        "weighted_mean" => Reduction::WeightedMean,
        r => return Err(Outcome::Skip(format!("reduction {r:?} is not supported"))),
    };
    let logits = case.upload_act("logits")?;
    let labels = case.upload_labels("labels")?;
    let wmap = if case.attr_bool("has_weight_map")? {
        Some(case.upload_map_f32("weight_map")?)
    } else {
        None
    };
    let cfg = CrossEntropyAttrs {
        class_weights: None,
        weight_map: wmap.is_some(),
        ignore_label: ignore_index(case)?,
        reduction,
    };
    let s = grad_scale(case)?;
    let o = case.ctx.run(|rec| {
        l::softmax_cross_entropy(rec, &logits, &labels, wmap.as_ref(), None, &cfg, true)
    })?;
    let nll = o
        .nll_map
        .as_ref()
        .ok_or_else(|| Outcome::Error("the engine returned no nll_map".into()))?;
    let mut out = Produced::default();
    out.outputs.insert("loss".into(), case.read_f32(&o.loss)?);
    out.outputs
        .insert("nll_map".into(), case.read_f32(nll)?.squeeze_c()?);
    out.grads
        .insert("logits".into(), scaled(case.read_act(&o.grad)?, s));
    Ok(out)
}

pub fn dice_loss(case: &Case) -> AdapterResult {
    check_axis(case)?;
    let batch_dice = match case.attr_str("reduce_over")?.as_str() {
        "batch" => true,
        "sample" => false,
        r => return Err(Outcome::Skip(format!("reduce_over {r:?} is not supported"))),
    };
    let cfg = DiceAttrs {
        batch_dice,
        smooth: case.attr_f64("smooth")? as f32,
        ignore_label: ignore_index(case)?,
        include_background: case.attr_bool("include_background")?,
    };
    let logits = case.upload_act("logits")?;
    let labels = case.upload_labels("labels")?;
    let s = grad_scale(case)?;
    let o = case
        .ctx
        .run(|rec| l::dice_loss(rec, &logits, &labels, &cfg))?;
    let dice = o
        .dice
        .as_ref()
        .ok_or_else(|| Outcome::Error("the engine returned no dice".into()))?;
    let mut out = Produced::default();
    out.outputs.insert("loss".into(), case.read_f32(&o.loss)?);
    out.outputs.insert("dice".into(), case.read_f32(dice)?);
    out.grads
        .insert("logits".into(), scaled(case.read_act(&o.grad)?, s));
    Ok(out)
}
