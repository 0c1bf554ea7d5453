//! The ISBI 2012 challenge's own scores of a *probability map*: pixel error,
//! Rand error (V_Rand) and information-theoretic score (V_Info), each the best
//! over a sweep of thresholds.
//!
//! # Sources
//! * I. Arganda-Carreras, S. C. Turaga et al., "Crowdsourcing the creation of
//!   image segmentation algorithms for connectomics", *Front. Neuroanat.*
//!   9:142 (2015), doi:10.3389/fnana.2015.00142 (definitions of V_Rand and
//!   V_Info as F-scores of split and merge terms).
//! * The challenge's evaluation page (brainiac2.mit.edu/isbi_challenge/evaluation):
//!   "Pixel error: 1 - the maximal F-score of pixel similarity"; "Foreground-
//!   restricted Rand error: 1 - the maximal F-score of the foreground-restricted
//!   Rand index [...] we exclude the zero component of the original labels".
//! * The organisers' Fiji code, `fiji/Trainable_Segmentation`,
//!   `trainableSegmentation/metrics/PixelError.java`
//!   (`getPixelErrorMaximalFScore`), `RandError.java`
//!   (`foregroundRestrictedStatsN2`) and `VariationOfInformation.java`
//!   (`foregroundRestrictedVI`), called by the challenge script with
//!   thresholds `0.0, 0.1, ..., 1.0` (`getMaximal...( 0.0, 1.0, 0.1 )`).
//!
//! # Definitions (as in that code)
//! * The proposal is a *cell* probability map (1 = cell, 0 = membrane); at
//!   threshold `t` the cells are the pixels with probability `> t`. The
//!   ground truth's cells are its non-membrane pixels.
//! * **Pixel score**: with cells as positives, `F = 2PR / (P + R)`,
//!   `P = TP / (TP + FP)`, `R = TP / (TP + FN)`; counts pooled over images.
//!   Pixel error = `1 - max_t F`.
//! * Segments: 4-connected components of the cells (6-connected in 3D),
//!   membrane = segment 0, in both maps. Only pixels inside a ground-truth
//!   segment count (foreground restriction). `p_ij` = pixels in ground-truth
//!   segment `i` and proposed segment `j ≥ 1`; ground-truth cell pixels the
//!   proposal calls membrane (`j = 0`) count as singleton segments.
//! * **V_Rand** `= 2 Σ p_ij² / (Σ_i t_i² + Σ_j s_j²)` (`t_i` ground-truth and
//!   `s_j` proposed segment sizes, singletons included), the F-score of
//!   `V_split = Σ p_ij² / Σ t_i²` and `V_merge = Σ p_ij² / Σ s_j²`; the sums
//!   are pooled over images (Fiji sums the per-slice counts). Rand error =
//!   `1 - max_t V_Rand`.
//! * **V_Info** `= 2 I(S;T) / (H(S) + H(T))`, the F-score of
//!   `V_split = I/H(S)` and `V_merge = I/H(T)` (`S` proposal, `T` ground
//!   truth, entropies of the segment-size distributions over the restricted
//!   pixels, natural log); per image, averaged over images, best threshold.
//!   1 when both entropies are 0 (one segment each).
//!
//! Not reproduced: the *border thinning* of the challenge's later
//! leader board (`getMaximalVRandAfterThinning`), which skeletonises the
//! membranes before scoring; these are the scores without thinning.
//! scikit-image's `adapted_rand_error` counts a proposal's label 0 as one more
//! segment instead of singletons, so it differs where the proposal has membrane
//! inside ground-truth cells.

use super::weightmap::instances_of_class;
use super::{LabelVolume, Volume};
use crate::error::{Error, Result};
use std::collections::HashMap;

/// The challenge script's thresholds: `0.0, 0.1, ..., 1.0` (11 levels).
pub fn challenge_thresholds() -> Vec<f32> {
    (0..=10).map(|k| k as f32 / 10.0).collect()
}

/// Contingency of two segment maps over the ground-truth foreground.
#[derive(Clone, Debug, Default)]
pub struct Contingency {
    joint: HashMap<(i32, i32), u64>,
    gt: HashMap<i32, u64>,
    pred: HashMap<i32, u64>,
    /// Ground-truth foreground pixels in the proposal's segment 0.
    singletons: u64,
    /// Ground-truth foreground pixels.
    n: u64,
}

impl Contingency {
    /// From segment ids (0 = membrane / background) of equal dims.
    pub fn new(pred: &LabelVolume, gt: &LabelVolume) -> Result<Self> {
        if pred.dims != gt.dims || pred.data.len() != gt.data.len() {
            return Err(Error::shape(
                "contingency",
                format!("prediction {:?} vs ground truth {:?}", pred.dims, gt.dims),
            ));
        }
        let mut c = Contingency::default();
        for (&p, &g) in pred.data.iter().zip(&gt.data) {
            if g == 0 {
                continue;
            }
            c.n += 1;
            *c.gt.entry(g).or_default() += 1;
            if p == 0 {
                c.singletons += 1;
            } else {
                *c.joint.entry((g, p)).or_default() += 1;
                *c.pred.entry(p).or_default() += 1;
            }
        }
        Ok(c)
    }

    /// `(Σ p_ij², Σ t_i², Σ s_j²)` in pixel counts, singletons included.
    pub fn rand_sums(&self) -> (f64, f64, f64) {
        let s = self.singletons as f64;
        (
            sum_sq(self.joint.values()) + s,
            sum_sq(self.gt.values()),
            sum_sq(self.pred.values()) + s,
        )
    }

    /// `(H(S), H(T), H(S,T))`, natural log; `None` without foreground.
    pub fn entropies(&self) -> Option<(f64, f64, f64)> {
        if self.n == 0 {
            return None;
        }
        let n = self.n as f64;
        // each singleton: -(1/n) ln(1/n)
        let single = self.singletons as f64 / n * n.ln();
        Some((
            entropy(self.pred.values(), n) + single,
            entropy(self.gt.values(), n),
            entropy(self.joint.values(), n) + single,
        ))
    }
}

fn sum_sq<'a>(counts: impl Iterator<Item = &'a u64>) -> f64 {
    counts.map(|&v| (v as f64) * (v as f64)).sum()
}

/// `-Σ (c/n) ln(c/n)` over the counts `c`.
fn entropy<'a>(counts: impl Iterator<Item = &'a u64>, n: f64) -> f64 {
    counts
        .map(|&v| {
            let p = v as f64 / n;
            -p * p.ln()
        })
        .sum()
}

/// Split, merge and their F-score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitMerge {
    pub split: f64,
    pub merge: f64,
    pub f_score: f64,
}

fn f_of(split: f64, merge: f64) -> f64 {
    if split + merge > 0.0 {
        2.0 * split * merge / (split + merge)
    } else {
        0.0
    }
}

/// V_Rand from pooled `(Σ p_ij², Σ t_i², Σ s_j²)`; `None` when `Σ t_i² = 0`.
pub fn v_rand(sum_ab: f64, sum_a: f64, sum_b: f64) -> Option<SplitMerge> {
    (sum_a > 0.0 && sum_b > 0.0).then(|| {
        let (split, merge) = (sum_ab / sum_a, sum_ab / sum_b);
        SplitMerge {
            split,
            merge,
            f_score: 2.0 * sum_ab / (sum_a + sum_b),
        }
    })
}

/// V_Info of one contingency; `None` without ground-truth foreground.
pub fn v_info(c: &Contingency) -> Option<SplitMerge> {
    let (hs, ht, hst) = c.entropies()?;
    let mi = (hs + ht - hst).max(0.0);
    let ratio = |h: f64| if h > 0.0 { mi / h } else { 1.0 };
    let (split, merge) = (ratio(hs), ratio(ht));
    let f_score = if hs + ht > 0.0 {
        2.0 * mi / (hs + ht)
    } else {
        1.0
    };
    Some(SplitMerge {
        split,
        merge,
        f_score,
    })
}

/// The challenge's scores of a dataset, each at its best threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct ChallengeScores {
    /// `1 - max_t F(pixels)`.
    pub pixel_error: f64,
    pub pixel_threshold: f32,
    /// `1 - max_t V_Rand`.
    pub rand_error: f64,
    pub rand_threshold: f32,
    /// V_Rand's split and merge terms at `rand_threshold`.
    pub v_rand: SplitMerge,
    /// `max_t V_Info`.
    pub v_info: SplitMerge,
    pub info_threshold: f32,
    pub images: usize,
}

/// Per-threshold sums over the images seen so far.
#[derive(Clone, Debug, Default)]
struct Level {
    tp: u64,
    fp: u64,
    fn_: u64,
    rand: (f64, f64, f64),
    info: (f64, f64, f64),
}

/// Accumulates the challenge's scores image by image (see the module docs).
#[derive(Clone, Debug)]
pub struct ChallengeAccumulator {
    thresholds: Vec<f32>,
    levels: Vec<Level>,
    images: usize,
}

impl ChallengeAccumulator {
    /// Sweep `thresholds` (the challenge: [`challenge_thresholds`]).
    pub fn new(thresholds: Vec<f32>) -> Self {
        let levels = vec![Level::default(); thresholds.len()];
        ChallengeAccumulator {
            thresholds,
            levels,
            images: 0,
        }
    }

    /// Add one image: `cell_prob` the probability of the cell class,
    /// `gt` a class map in which `cell_class` marks cells. Images whose
    /// ground truth has no cell are skipped (they define no segment).
    pub fn add(&mut self, cell_prob: &Volume, gt: &LabelVolume, cell_class: i32) -> Result<()> {
        if cell_prob.dims != gt.dims || cell_prob.data.len() != gt.data.len() {
            return Err(Error::shape(
                "challenge metrics",
                format!(
                    "probabilities {:?} vs ground truth {:?}",
                    cell_prob.dims, gt.dims
                ),
            ));
        }
        let gt_seg = instances_of_class(gt, cell_class, false);
        if gt_seg.data.iter().all(|&v| v == 0) {
            return Ok(());
        }
        self.images += 1;
        for (t, lv) in self.thresholds.iter().zip(&mut self.levels) {
            let cells = cell_prob.map(|&p| (p > *t) as i32);
            for (&c, &g) in cells.data.iter().zip(&gt.data) {
                match (c == 1, g == cell_class) {
                    (true, true) => lv.tp += 1,
                    (true, false) => lv.fp += 1,
                    (false, true) => lv.fn_ += 1,
                    (false, false) => {}
                }
            }
            let cont = Contingency::new(&instances_of_class(&cells, 1, false), &gt_seg)?;
            let (ab, a, b) = cont.rand_sums();
            lv.rand = (lv.rand.0 + ab, lv.rand.1 + a, lv.rand.2 + b);
            if let Some(s) = v_info(&cont) {
                lv.info = (
                    lv.info.0 + s.f_score,
                    lv.info.1 + s.split,
                    lv.info.2 + s.merge,
                );
            }
        }
        Ok(())
    }

    /// Add the sums of `other` (the same thresholds), e.g. one image's
    /// accumulator into the dataset's.
    pub fn merge(&mut self, other: &ChallengeAccumulator) -> Result<()> {
        if other.thresholds != self.thresholds {
            return Err(Error::shape(
                "challenge metrics",
                format!(
                    "merging thresholds {:?} into {:?}",
                    other.thresholds, self.thresholds
                ),
            ));
        }
        for (a, b) in self.levels.iter_mut().zip(&other.levels) {
            a.tp += b.tp;
            a.fp += b.fp;
            a.fn_ += b.fn_;
            a.rand = (
                a.rand.0 + b.rand.0,
                a.rand.1 + b.rand.1,
                a.rand.2 + b.rand.2,
            );
            a.info = (
                a.info.0 + b.info.0,
                a.info.1 + b.info.1,
                a.info.2 + b.info.2,
            );
        }
        self.images += other.images;
        Ok(())
    }

    /// The best threshold of each score; `None` before any image with cells.
    pub fn finish(&self) -> Option<ChallengeScores> {
        if self.images == 0 || self.thresholds.is_empty() {
            return None;
        }
        let m = self.images as f64;
        let mut best: Option<ChallengeScores> = None;
        for (&t, lv) in self.thresholds.iter().zip(&self.levels) {
            let pixel = pixel_f(lv.tp, lv.fp, lv.fn_);
            let rand = v_rand(lv.rand.0, lv.rand.1, lv.rand.2).unwrap_or(SplitMerge {
                split: 0.0,
                merge: 0.0,
                f_score: 0.0,
            });
            let info = SplitMerge {
                f_score: lv.info.0 / m,
                split: lv.info.1 / m,
                merge: lv.info.2 / m,
            };
            let b = best.get_or_insert(ChallengeScores {
                pixel_error: 1.0 - pixel,
                pixel_threshold: t,
                rand_error: 1.0 - rand.f_score,
                rand_threshold: t,
                v_rand: rand,
                v_info: info,
                info_threshold: t,
                images: self.images,
            });
            // strict: the first (lowest) threshold wins ties, as in Fiji
            if 1.0 - pixel < b.pixel_error {
                (b.pixel_error, b.pixel_threshold) = (1.0 - pixel, t);
            }
            if 1.0 - rand.f_score < b.rand_error {
                (b.rand_error, b.rand_threshold, b.v_rand) = (1.0 - rand.f_score, t, rand);
            }
            if info.f_score > b.v_info.f_score {
                (b.v_info, b.info_threshold) = (info, t);
            }
        }
        best
    }
}

/// Pixel F-score with cells as positives (0 without true or predicted cells).
pub fn pixel_f(tp: u64, fp: u64, fn_: u64) -> f64 {
    let (p, r) = (
        if tp + fp > 0 {
            tp as f64 / (tp + fp) as f64
        } else {
            0.0
        },
        if tp + fn_ > 0 {
            tp as f64 / (tp + fn_) as f64
        } else {
            0.0
        },
    );
    f_of(p, r)
}

/// The challenge's scores of one probability map (see [`ChallengeAccumulator`]).
pub fn challenge_scores(
    cell_prob: &Volume,
    gt: &LabelVolume,
    cell_class: i32,
    thresholds: &[f32],
) -> Result<Option<ChallengeScores>> {
    let mut acc = ChallengeAccumulator::new(thresholds.to_vec());
    acc.add(cell_prob, gt, cell_class)?;
    Ok(acc.finish())
}

#[cfg(test)]
#[path = "isbi_metrics_tests.rs"]
mod tests;
