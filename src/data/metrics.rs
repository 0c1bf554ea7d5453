//! Segmentation metrics, 2D and 3D: pixel error, Dice and IoU per class, and
//! the ISBI 2012 challenge's foreground-restricted Rand error.
//!
//! # Rand error (ISBI 2012)
//! As defined for the challenge by I. Arganda-Carreras, S. C. Turaga et al.,
//! "Crowdsourcing the creation of image segmentation algorithms for
//! connectomics", *Front. Neuroanat.* 9:142 (2015), doi:10.3389/fnana.2015.00142,
//! and computed by the organisers' Fiji code (`trainableSegmentation.metrics.RandError`,
//! foreground-restricted statistics with N² normalisation):
//!
//! * both label maps are turned into segments: connected components
//!   (4-connectivity in 2D, 6 in 3D) of the *cell* (non-membrane) class;
//!   membrane pixels get segment 0;
//! * with `p_ij` the joint frequency of ground-truth segment `i` and proposed
//!   segment `j` over the pixels that are *inside a ground-truth segment*
//!   (ground-truth membrane pixels are excluded), `t_i = Σ_j p_ij`,
//!   `s_j = Σ_{i} p_ij` (j ≥ 1), and ground-truth cell pixels that the
//!   proposal calls membrane (`j = 0`) counted as singleton segments;
//! * `V_split = Σ p_ij² / Σ t_i²`, `V_merge = Σ p_ij² / Σ s_j²`,
//!   `V_Rand = 2 / (1/V_split + 1/V_merge)` and the **Rand error** is `1 - V_Rand`.
//!
//! The challenge thresholded each submitted probability map at several
//! levels and reported the best score; [`isbi_rand_error_thresholds`] does that.

use super::weightmap::instances_of_class;
use super::{LabelVolume, Volume};
use crate::error::{Error, Result};
use std::collections::HashMap;

fn same_dims(op: &'static str, a: &LabelVolume, b: &LabelVolume) -> Result<()> {
    if a.dims != b.dims || a.data.len() != b.data.len() {
        return Err(Error::shape(
            op,
            format!("prediction {:?} vs ground truth {:?}", a.dims, b.dims),
        ));
    }
    if a.data.is_empty() {
        return Err(Error::shape(op, "empty label maps"));
    }
    Ok(())
}

/// Fraction of voxels whose predicted class differs from the ground truth (1 - accuracy).
pub fn pixel_error(pred: &LabelVolume, gt: &LabelVolume) -> Result<f64> {
    same_dims("pixel_error", pred, gt)?;
    let wrong = pred
        .data
        .iter()
        .zip(&gt.data)
        .filter(|(p, g)| p != g)
        .count();
    Ok(wrong as f64 / pred.data.len() as f64)
}

/// `n x n` confusion counts, `[truth * n + predicted]`; classes outside `0..n` are an error.
pub fn confusion_matrix(
    pred: &LabelVolume,
    gt: &LabelVolume,
    n_classes: usize,
) -> Result<Vec<u64>> {
    same_dims("confusion_matrix", pred, gt)?;
    let mut m = vec![0u64; n_classes * n_classes];
    for (&p, &g) in pred.data.iter().zip(&gt.data) {
        if p < 0 || g < 0 || p as usize >= n_classes || g as usize >= n_classes {
            return Err(Error::shape(
                "confusion_matrix",
                format!("class {p} / {g} outside 0..{n_classes}"),
            ));
        }
        m[g as usize * n_classes + p as usize] += 1;
    }
    Ok(m)
}

/// Overlap scores of one class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassScore {
    pub class: usize,
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    /// `2TP / (2TP + FP + FN)`; `None` when the class is absent from both maps.
    pub dice: Option<f64>,
    /// `TP / (TP + FP + FN)`; `None` when the class is absent from both maps.
    pub iou: Option<f64>,
}

/// Dice and IoU for every class `0..n_classes`.
pub fn dice_iou(pred: &LabelVolume, gt: &LabelVolume, n_classes: usize) -> Result<Vec<ClassScore>> {
    let m = confusion_matrix(pred, gt, n_classes)?;
    Ok((0..n_classes)
        .map(|c| {
            let tp = m[c * n_classes + c];
            let fn_: u64 = (0..n_classes)
                .filter(|&p| p != c)
                .map(|p| m[c * n_classes + p])
                .sum();
            let fp: u64 = (0..n_classes)
                .filter(|&g| g != c)
                .map(|g| m[g * n_classes + c])
                .sum();
            let den = tp + fp + fn_;
            let (dice, iou) = if den == 0 {
                (None, None)
            } else {
                (
                    Some(2.0 * tp as f64 / (2 * tp + fp + fn_) as f64),
                    Some(tp as f64 / den as f64),
                )
            };
            ClassScore {
                class: c,
                tp,
                fp,
                fn_,
                dice,
                iou,
            }
        })
        .collect())
}

/// Mean Dice over classes `from..` that are defined (e.g. `from = 1` skips the background).
pub fn mean_dice(scores: &[ClassScore], from: usize) -> Option<f64> {
    let v: Vec<f64> = scores.iter().skip(from).filter_map(|s| s.dice).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The foreground-restricted Rand scores (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct RandScore {
    /// `1 - V_Rand`.
    pub error: f64,
    /// `V_Rand`, the F-score of split and merge.
    pub f_score: f64,
    /// `V_split` (Rand recall: high when true segments are not split).
    pub split: f64,
    /// `V_merge` (Rand precision: high when segments are not merged).
    pub merge: f64,
}

/// Foreground-restricted Rand scores of two *segment* maps (instance ids,
/// 0 = boundary/background): `gt` pixels with id 0 are excluded, `pred`
/// pixels with id 0 count as singletons.
pub fn adapted_rand(pred: &LabelVolume, gt: &LabelVolume) -> Result<RandScore> {
    same_dims("adapted_rand", pred, gt)?;
    let mut joint: HashMap<(i32, i32), u64> = HashMap::new();
    let mut gt_sizes: HashMap<i32, u64> = HashMap::new();
    let mut pred_sizes: HashMap<i32, u64> = HashMap::new();
    let mut singletons = 0u64;
    for (&p, &g) in pred.data.iter().zip(&gt.data) {
        if g == 0 {
            continue;
        }
        *gt_sizes.entry(g).or_default() += 1;
        if p == 0 {
            singletons += 1;
        } else {
            *joint.entry((g, p)).or_default() += 1;
            *pred_sizes.entry(p).or_default() += 1;
        }
    }
    if gt_sizes.is_empty() {
        return Err(Error::shape(
            "adapted_rand",
            "the ground truth has no segments (all 0)",
        ));
    }
    let sum_ab = sum_sq(joint.values()) + singletons as f64;
    let sum_a = sum_sq(gt_sizes.values());
    let sum_b = sum_sq(pred_sizes.values()) + singletons as f64;
    let split = sum_ab / sum_a;
    let merge = sum_ab / sum_b;
    let f = 2.0 * split * merge / (split + merge);
    Ok(RandScore {
        error: 1.0 - f,
        f_score: f,
        split,
        merge,
    })
}

fn sum_sq<'a>(counts: impl Iterator<Item = &'a u64>) -> f64 {
    counts.map(|&c| (c as f64) * (c as f64)).sum()
}

/// The ISBI 2012 Rand error of a predicted class map against the ground
/// truth: segments are the connected components (4 / 6-connectivity) of
/// `cell_class` in each (0 for this crate's ISBI convention, where class 1
/// is membrane), then [`adapted_rand`].
pub fn isbi_rand_error(pred: &LabelVolume, gt: &LabelVolume, cell_class: i32) -> Result<RandScore> {
    same_dims("isbi_rand_error", pred, gt)?;
    adapted_rand(
        &instances_of_class(pred, cell_class, false),
        &instances_of_class(gt, cell_class, false),
    )
}

/// The challenge protocol on a cell-probability map (for a membrane
/// probability `p` pass `1 - p`): for every threshold `t` the cells are the
/// voxels with probability `> t`; returns the threshold with the lowest Rand
/// error and its scores.
pub fn isbi_rand_error_thresholds(
    cell_prob: &Volume,
    gt: &LabelVolume,
    cell_class: i32,
    thresholds: &[f32],
) -> Result<(f32, RandScore)> {
    if cell_prob.dims != gt.dims {
        return Err(Error::shape(
            "isbi_rand_error_thresholds",
            format!(
                "probabilities {:?} vs ground truth {:?}",
                cell_prob.dims, gt.dims
            ),
        ));
    }
    let gt_seg = instances_of_class(gt, cell_class, false);
    let mut best: Option<(f32, RandScore)> = None;
    for &t in thresholds {
        let cells = cell_prob.map(|&p| (p > t) as i32);
        let s = adapted_rand(&instances_of_class(&cells, 1, false), &gt_seg)?;
        if best.as_ref().is_none_or(|b| s.error < b.1.error) {
            best = Some((t, s));
        }
    }
    best.ok_or_else(|| Error::shape("isbi_rand_error_thresholds", "no thresholds"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Array3;

    fn lv(dims: [usize; 3], v: Vec<i32>) -> LabelVolume {
        Array3::from_vec(dims, v).unwrap()
    }

    #[test]
    fn pixel_error_and_dice() {
        let gt = lv([1, 2, 3], vec![0, 1, 1, 0, 0, 2]);
        let pr = lv([1, 2, 3], vec![0, 1, 0, 0, 1, 2]);
        assert!((pixel_error(&pr, &gt).unwrap() - 2.0 / 6.0).abs() < 1e-12);
        let s = dice_iou(&pr, &gt, 3).unwrap();
        // class 1: tp 1, fp 1, fn 1 -> dice 0.5, iou 1/3
        assert_eq!((s[1].tp, s[1].fp, s[1].fn_), (1, 1, 1));
        assert!(
            (s[1].dice.unwrap() - 0.5).abs() < 1e-12
                && (s[1].iou.unwrap() - 1.0 / 3.0).abs() < 1e-12
        );
        // class 0: tp 2, fp 1 (pred 0 at gt 1), fn 1 (gt 0 pred 1) -> 4/6
        assert!((s[0].dice.unwrap() - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(s[2].dice, Some(1.0));
        let s4 = dice_iou(&pr, &gt, 4).unwrap();
        assert_eq!(s4[3].dice, None);
        assert!((mean_dice(&s4, 1).unwrap() - 0.75).abs() < 1e-12);
        assert!(dice_iou(&pr, &gt, 2).is_err(), "class 2 outside 0..2");
        assert!(pixel_error(&pr, &lv([1, 3, 2], vec![0; 6])).is_err());
    }

    #[test]
    fn rand_perfect_split_merge() {
        let gt = lv([1, 1, 6], vec![1, 1, 1, 2, 2, 2]);
        assert_eq!(adapted_rand(&gt, &gt).unwrap().error, 0.0);
        // merge both segments: split = 1, merge = 18 / 36 = 0.5, F = 2/3
        let merged = lv([1, 1, 6], vec![5; 6]);
        let s = adapted_rand(&merged, &gt).unwrap();
        assert!((s.split - 1.0).abs() < 1e-12 && (s.merge - 0.5).abs() < 1e-12);
        assert!((s.error - 1.0 / 3.0).abs() < 1e-12);
        // split segment 1 into 1 + 2 pixels: sum p^2 = 1 + 4 + 9 = 14, gt 18
        let split = lv([1, 1, 6], vec![3, 4, 4, 2, 2, 2]);
        let s = adapted_rand(&split, &gt).unwrap();
        assert!((s.split - 14.0 / 18.0).abs() < 1e-12 && (s.merge - 1.0).abs() < 1e-12);
    }

    #[test]
    fn rand_excludes_gt_background_and_counts_pred_boundary_as_singletons() {
        // gt: 0 = membrane (excluded whatever pred says there)
        let gt = lv([1, 1, 5], vec![0, 1, 1, 1, 0]);
        let pr = lv([1, 1, 5], vec![7, 1, 0, 1, 7]);
        // n_11 = 2, one singleton: sum_ab = 4 + 1 = 5, sum_a = 9, sum_b = 4 + 1 = 5
        let s = adapted_rand(&pr, &gt).unwrap();
        assert!((s.split - 5.0 / 9.0).abs() < 1e-12 && (s.merge - 1.0).abs() < 1e-12);
        assert!(adapted_rand(&pr, &lv([1, 1, 5], vec![0; 5])).is_err());
    }

    #[test]
    fn isbi_on_class_maps_2d_and_3d() {
        // 2D: class 1 = membrane column splits gt into two cells; the
        // prediction misses the membrane, merging them.
        let gt = lv([1, 2, 5], vec![0, 0, 1, 0, 0, 0, 0, 1, 0, 0]);
        let pr = lv([1, 2, 5], vec![0; 10]);
        let s = isbi_rand_error(&pr, &gt, 0).unwrap();
        // gt segments 4 + 4 pixels, pred one segment of 8: merge = 32 / 64
        assert!((s.merge - 0.5).abs() < 1e-12 && (s.split - 1.0).abs() < 1e-12);
        assert_eq!(isbi_rand_error(&gt, &gt, 0).unwrap().error, 0.0);
        // 3D: two cells separated by a membrane section connect nowhere
        let gt3 = lv([3, 1, 2], vec![0, 0, 1, 1, 0, 0]);
        let pr3 = lv([3, 1, 2], vec![0, 0, 0, 0, 0, 0]);
        let s = isbi_rand_error(&pr3, &gt3, 0).unwrap();
        assert!((s.merge - 8.0 / 16.0).abs() < 1e-12);
        // thresholds: cell probability map, best threshold recovers the membrane
        let prob = gt.map(|&c| if c == 1 { 0.2 } else { 0.8 });
        let (t, s) = isbi_rand_error_thresholds(&prob, &gt, 0, &[0.1, 0.5, 0.9]).unwrap();
        assert_eq!((t, s.error), (0.5, 0.0));
    }
}
