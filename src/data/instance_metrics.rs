//! Instance segmentation scores, 2D and 3D.
//!
//! * **AP at IoU threshold `t`**, the Data Science Bowl 2018 metric
//!   (kaggle.com/c/data-science-bowl-2018, "Evaluation"): a predicted and a
//!   true object match when their IoU is `> t`; `AP_t = TP / (TP + FP + FN)`
//!   with TP the matched pairs, FP the unmatched predictions and FN the
//!   unmatched true objects. For `t >= 0.5` a true object can overlap at most
//!   one prediction with IoU `> t`, so the matching is unique. The DSB score
//!   is the mean of `AP_t` over `t = 0.5, 0.55, ..., 0.95` (`mean_ap`), per
//!   image, averaged over images. No object on either side: AP = 1.
//! * **Splits and merges** (as in Caicedo et al. 2019, by overlap share): a
//!   prediction *lies in* a true object when at least half of the
//!   prediction's voxels are in it; a true object is **split** when two or
//!   more predictions lie in it. A true object *lies in* a prediction when at
//!   least half of its voxels are in it; a prediction is a **merge** when two
//!   or more true objects lie in it.

use super::LabelVolume;
use crate::error::{Error, Result};
use std::collections::HashMap;

/// The DSB 2018 IoU thresholds `0.5, 0.55, ..., 0.95`.
pub fn iou_thresholds() -> Vec<f64> {
    (0..10).map(|k| (50 + 5 * k) as f64 / 100.0).collect()
}

/// Scores of one image or volume (or their mean over several).
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceScores {
    /// AP at IoU 0.5.
    pub ap50: f64,
    /// Mean AP over [`iou_thresholds`].
    pub mean_ap: f64,
    /// True / predicted object counts.
    pub true_objects: usize,
    pub pred_objects: usize,
    /// Matches at IoU 0.5.
    pub tp50: usize,
    /// True objects split into two or more predictions.
    pub splits: usize,
    /// Predictions that merge two or more true objects.
    pub merges: usize,
}

/// Per-object voxel counts and their pairwise intersections.
struct Overlaps {
    gt: HashMap<i32, u64>,
    pred: HashMap<i32, u64>,
    joint: HashMap<(i32, i32), u64>,
}

fn overlaps(pred: &LabelVolume, gt: &LabelVolume) -> Result<Overlaps> {
    if pred.dims != gt.dims || pred.data.len() != gt.data.len() {
        return Err(Error::shape(
            "instance scores",
            format!("prediction {:?} vs ground truth {:?}", pred.dims, gt.dims),
        ));
    }
    let mut o = Overlaps {
        gt: HashMap::new(),
        pred: HashMap::new(),
        joint: HashMap::new(),
    };
    for (&p, &g) in pred.data.iter().zip(&gt.data) {
        if g > 0 {
            *o.gt.entry(g).or_default() += 1;
        }
        if p > 0 {
            *o.pred.entry(p).or_default() += 1;
        }
        if p > 0 && g > 0 {
            *o.joint.entry((g, p)).or_default() += 1;
        }
    }
    Ok(o)
}

/// `TP / (TP + FP + FN)` at threshold `t` (1 with no objects at all).
fn ap_at(o: &Overlaps, t: f64) -> (f64, usize) {
    let tp = o
        .joint
        .iter()
        .filter(|(&(g, p), &n)| {
            let union = o.gt[&g] + o.pred[&p] - n;
            n as f64 / union as f64 > t
        })
        .count();
    let den = o.gt.len() + o.pred.len() - tp;
    if den == 0 {
        (1.0, 0)
    } else {
        (tp as f64 / den as f64, tp)
    }
}

/// How many keys of `counts` get two or more members lying in them:
/// `member_size` the member's voxel count, `(owner, member, n)` overlaps.
fn owners_with_two(
    pairs: impl Iterator<Item = (i32, i32, u64)>,
    member_size: impl Fn(i32) -> u64,
) -> usize {
    let mut per: HashMap<i32, usize> = HashMap::new();
    for (owner, member, n) in pairs {
        if 2 * n >= member_size(member) {
            *per.entry(owner).or_default() += 1;
        }
    }
    per.values().filter(|&&c| c >= 2).count()
}

/// Scores of predicted instance ids against true ids (0 = background).
pub fn instance_scores(pred: &LabelVolume, gt: &LabelVolume) -> Result<InstanceScores> {
    let o = overlaps(pred, gt)?;
    let (ap50, tp50) = ap_at(&o, 0.5);
    let ts = iou_thresholds();
    let mean_ap = ts.iter().map(|&t| ap_at(&o, t).0).sum::<f64>() / ts.len() as f64;
    let splits = owners_with_two(o.joint.iter().map(|(&(g, p), &n)| (g, p, n)), |p| {
        o.pred[&p]
    });
    let merges = owners_with_two(o.joint.iter().map(|(&(g, p), &n)| (p, g, n)), |g| o.gt[&g]);
    Ok(InstanceScores {
        ap50,
        mean_ap,
        true_objects: o.gt.len(),
        pred_objects: o.pred.len(),
        tp50,
        splits,
        merges,
    })
}

/// Mean AP over images; counts summed.
pub fn mean_scores(all: &[InstanceScores]) -> Option<InstanceScores> {
    if all.is_empty() {
        return None;
    }
    let m = all.len() as f64;
    Some(InstanceScores {
        ap50: all.iter().map(|s| s.ap50).sum::<f64>() / m,
        mean_ap: all.iter().map(|s| s.mean_ap).sum::<f64>() / m,
        true_objects: all.iter().map(|s| s.true_objects).sum(),
        pred_objects: all.iter().map(|s| s.pred_objects).sum(),
        tp50: all.iter().map(|s| s.tp50).sum(),
        splits: all.iter().map(|s| s.splits).sum(),
        merges: all.iter().map(|s| s.merges).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Array3;

    fn lv(dims: [usize; 3], v: Vec<i32>) -> LabelVolume {
        Array3::from_vec(dims, v).unwrap()
    }

    #[test]
    fn perfect_and_empty() {
        let gt = lv([1, 1, 6], vec![1, 1, 0, 2, 2, 2]);
        // ids need not agree, only the partition
        let pr = lv([1, 1, 6], vec![7, 7, 0, 3, 3, 3]);
        let s = instance_scores(&pr, &gt).unwrap();
        assert_eq!((s.ap50, s.mean_ap, s.tp50), (1.0, 1.0, 2));
        let none = lv([1, 1, 6], vec![0; 6]);
        assert_eq!(instance_scores(&none, &none).unwrap().ap50, 1.0);
        let s = instance_scores(&none, &gt).unwrap();
        assert_eq!((s.ap50, s.true_objects, s.pred_objects), (0.0, 2, 0));
        assert!(instance_scores(&none, &lv([1, 6, 1], vec![0; 6])).is_err());
    }

    #[test]
    fn ap_thresholds_by_hand() {
        // true object 1: 4 voxels; prediction covers 3 of them (IoU 0.75);
        // true object 2 is missed; one false positive (id 9)
        let gt = lv([1, 1, 10], vec![1, 1, 1, 1, 0, 2, 2, 0, 0, 0]);
        let pr = lv([1, 1, 10], vec![5, 5, 5, 0, 0, 0, 0, 0, 9, 9]);
        let s = instance_scores(&pr, &gt).unwrap();
        // at 0.5: TP 1, FP 1, FN 1 -> 1/3
        assert!((s.ap50 - 1.0 / 3.0).abs() < 1e-12);
        // 0.5..0.70 (5 thresholds) give 1/3; 0.75 .. 0.95 give 0 (IoU must be > t)
        assert!((s.mean_ap - 5.0 / 3.0 / 10.0).abs() < 1e-12);
        assert_eq!((s.true_objects, s.pred_objects, s.tp50), (2, 2, 1));
    }

    #[test]
    fn splits_and_merges() {
        // true object 1 (6 voxels) split in two halves; true 2 and 3 merged
        let gt = lv([1, 1, 12], vec![1, 1, 1, 1, 1, 1, 0, 2, 2, 0, 3, 3]);
        let pr = lv([1, 1, 12], vec![4, 4, 4, 5, 5, 5, 0, 6, 6, 6, 6, 6]);
        let s = instance_scores(&pr, &gt).unwrap();
        assert_eq!((s.splits, s.merges), (1, 1));
        // halves have IoU 0.5 (not > 0.5); merged 2 / 5 -> no match at all
        assert_eq!(s.tp50, 0);
        let m = mean_scores(&[s.clone(), s]).unwrap();
        assert_eq!((m.splits, m.true_objects), (2, 6));
        assert!(mean_scores(&[]).is_none());
    }
}
