//! Plain CPU losses over channels (axis 1) with integer label maps, f64
//! accumulation; argument order as in `ops::loss` (class weights are read from
//! the attributes, where the GPU ops take them uploaded). Gradients are w.r.t. the
//! logits for an upstream gradient of 1.
//!
//! A pixel takes part when its label is in `0..C` and is not the ignore
//! label; other pixels add nothing to any sum and get gradient 0.

use crate::graph::ops::{CrossEntropyAttrs, DiceAttrs, Reduction};
use crate::ops::loss::DiceCeConfig;
use crate::shape::Shape;

/// Softmax cross-entropy results.
#[derive(Clone, Debug)]
pub struct CeOut {
    pub loss: f64,
    /// Per-pixel unweighted `nll` (0 at pixels that do not take part), `N,1,(D),H,W`.
    pub nll_map: Vec<f32>,
    pub grad: Vec<f32>,
}

/// Soft Dice results.
#[derive(Clone, Debug)]
pub struct DiceOut {
    pub loss: f64,
    /// Per-class Dice: `[C]` (batch) or `[N, C]` (sample).
    pub dice: Vec<f32>,
    pub grad: Vec<f32>,
}

/// Dice + CE results.
#[derive(Clone, Debug)]
pub struct DiceCeOut {
    pub loss: f64,
    pub dice: Vec<f32>,
    pub nll_map: Vec<f32>,
    pub grad: Vec<f32>,
}

fn valid(l: i32, c: usize, ignore: Option<i32>) -> bool {
    l >= 0 && (l as usize) < c && ignore != Some(l)
}

/// Per pixel `(n, s)`: the softmax over channels in f64.
fn softmax_at(z: &[f32], xs: &Shape, n: usize, s: usize) -> Vec<f64> {
    let (c, sp) = (xs.c(), xs.spatial_numel());
    let v: Vec<f64> = (0..c).map(|k| z[(n * c + k) * sp + s] as f64).collect();
    let mx = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|a| (a - mx).exp()).collect();
    let se: f64 = e.iter().sum();
    e.iter().map(|a| a / se).collect()
}

fn logsumexp_at(z: &[f32], xs: &Shape, n: usize, s: usize) -> f64 {
    let (c, sp) = (xs.c(), xs.spatial_numel());
    let v: Vec<f64> = (0..c).map(|k| z[(n * c + k) * sp + s] as f64).collect();
    let mx = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    mx + v.iter().map(|a| (a - mx).exp()).sum::<f64>().ln()
}

/// Softmax cross-entropy: `nll = logsumexp(z) - z[label]`, weight `w = class_weights[label] *
/// weight_map[pixel]` (1 where absent); "mean": `sum(w*nll) / valid pixels`, "weighted_mean":
/// `sum(w*nll) / sum(w)`; loss 0 and gradient 0 if that denominator is 0.
pub fn softmax_cross_entropy(
    logits: &[f32],
    xs: &Shape,
    labels: &[i32],
    weight_map: Option<&[f32]>,
    cfg: &CrossEntropyAttrs,
) -> CeOut {
    let class_weight = cfg.class_weights.as_deref();
    let (c, sp) = (xs.c(), xs.spatial_numel());
    let npix = xs.n() * sp;
    let mut nll_map = vec![0f32; npix];
    let mut w = vec![0f64; npix];
    let (mut swn, mut sw, mut cnt) = (0f64, 0f64, 0f64);
    for n in 0..xs.n() {
        for s in 0..sp {
            let pix = n * sp + s;
            let l = labels[pix];
            if !valid(l, c, cfg.ignore_label) {
                continue;
            }
            let nll = logsumexp_at(logits, xs, n, s) - logits[(n * c + l as usize) * sp + s] as f64;
            let wp = class_weight.map_or(1.0, |cw| cw[l as usize] as f64)
                * weight_map.map_or(1.0, |m| m[pix] as f64);
            nll_map[pix] = nll as f32;
            w[pix] = wp;
            swn += wp * nll;
            sw += wp;
            cnt += 1.0;
        }
    }
    let norm = match cfg.reduction {
        Reduction::Mean => cnt,
        Reduction::WeightedMean => sw,
    };
    let inv = if norm != 0.0 { 1.0 / norm } else { 0.0 };
    let mut grad = vec![0f32; logits.len()];
    for n in 0..xs.n() {
        for s in 0..sp {
            let pix = n * sp + s;
            let l = labels[pix];
            if !valid(l, c, cfg.ignore_label) {
                continue;
            }
            for (k, p) in softmax_at(logits, xs, n, s).into_iter().enumerate() {
                let t = if k == l as usize { 1.0 } else { 0.0 };
                grad[(n * c + k) * sp + s] = ((p - t) * w[pix] * inv) as f32;
            }
        }
    }
    CeOut {
        loss: swn * inv,
        nll_map,
        grad,
    }
}

/// Soft Dice: per term (class, or (sample, class)) `dice = (2*sum(p*t) + smooth) /
/// (sum(p) + sum(t) + smooth)`, `loss = 1 - mean(dice)` over the terms, class 0's left out
/// unless `include_background` (their dice still returned).
pub fn dice_loss(logits: &[f32], xs: &Shape, labels: &[i32], cfg: &DiceAttrs) -> DiceOut {
    let (c, sp) = (xs.c(), xs.spatial_numel());
    let per_sample = !cfg.batch_dice;
    let terms = if per_sample { xs.n() * c } else { c };
    let term = |n: usize, k: usize| if per_sample { n * c + k } else { k };
    // the weight of term t in the mean: 1/counted, or 0 for class 0 without the background
    let skip = |t: usize| !cfg.include_background && t.is_multiple_of(c);
    let counted = (0..terms).filter(|&t| !skip(t)).count();
    let wt = |t: usize| if skip(t) { 0.0 } else { 1.0 / counted as f64 };
    let (mut si, mut sp_, mut st) = (vec![0f64; terms], vec![0f64; terms], vec![0f64; terms]);
    for n in 0..xs.n() {
        for s in 0..sp {
            let l = labels[n * sp + s];
            if !valid(l, c, cfg.ignore_label) {
                continue;
            }
            for (k, p) in softmax_at(logits, xs, n, s).into_iter().enumerate() {
                let t = if k == l as usize { 1.0 } else { 0.0 };
                si[term(n, k)] += p * t;
                sp_[term(n, k)] += p;
                st[term(n, k)] += t;
            }
        }
    }
    let sm = cfg.smooth as f64;
    let u: Vec<f64> = (0..terms).map(|t| sp_[t] + st[t] + sm).collect();
    let v: Vec<f64> = (0..terms).map(|t| 2.0 * si[t] + sm).collect();
    let dice: Vec<f64> = (0..terms).map(|t| v[t] / u[t]).collect();
    let loss = 1.0 - (0..terms).map(|t| dice[t] * wt(t)).sum::<f64>();
    // d loss / d p_k = -(1/terms) * (2 t U - V) / U^2, then through the softmax.
    let mut grad = vec![0f32; logits.len()];
    for n in 0..xs.n() {
        for s in 0..sp {
            let l = labels[n * sp + s];
            if !valid(l, c, cfg.ignore_label) {
                continue;
            }
            let p = softmax_at(logits, xs, n, s);
            let gp: Vec<f64> = (0..c)
                .map(|k| {
                    let (tt, t) = (term(n, k), if k == l as usize { 1.0 } else { 0.0 });
                    -(2.0 * t * u[tt] - v[tt]) / (u[tt] * u[tt]) * wt(tt)
                })
                .collect();
            let dp: f64 = (0..c).map(|k| p[k] * gp[k]).sum();
            for k in 0..c {
                grad[(n * c + k) * sp + s] = (p[k] * (gp[k] - dp)) as f32;
            }
        }
    }
    DiceOut {
        loss,
        dice: dice.iter().map(|d| *d as f32).collect(),
        grad,
    }
}

/// `weight_ce * CE + weight_dice * Dice`, gradients summed alike.
pub fn dice_ce_loss(
    logits: &[f32],
    xs: &Shape,
    labels: &[i32],
    weight_map: Option<&[f32]>,
    cfg: &DiceCeConfig,
) -> DiceCeOut {
    let ce = softmax_cross_entropy(logits, xs, labels, weight_map, &cfg.ce);
    let d = dice_loss(logits, xs, labels, &cfg.dice);
    let (a, b) = (cfg.weight_ce as f64, cfg.weight_dice as f64);
    let grad = ce
        .grad
        .iter()
        .zip(&d.grad)
        .map(|(x, y)| (a * *x as f64 + b * *y as f64) as f32)
        .collect();
    DiceCeOut {
        loss: a * ce.loss + b * d.loss,
        dice: d.dice,
        nll_map: ce.nll_map,
        grad,
    }
}
