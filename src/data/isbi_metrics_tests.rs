//! Hand-computed cases of the ISBI 2012 challenge scores.

use super::*;
use crate::data::Array3;

fn lv(dims: [usize; 3], v: Vec<i32>) -> LabelVolume {
    Array3::from_vec(dims, v).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn thresholds_are_the_scripts() {
    let t = challenge_thresholds();
    assert_eq!(t.len(), 11);
    assert_eq!((t[0], t[3], t[10]), (0.0, 0.3, 1.0));
}

#[test]
fn v_rand_merge_and_split() {
    let gt = lv([1, 1, 6], vec![1, 1, 1, 2, 2, 2]);
    let merged = lv([1, 1, 6], vec![5; 6]);
    let (ab, a, b) = Contingency::new(&merged, &gt).unwrap().rand_sums();
    assert_eq!((ab, a, b), (18.0, 18.0, 36.0));
    let s = v_rand(ab, a, b).unwrap();
    assert!(close(s.split, 1.0) && close(s.merge, 0.5) && close(s.f_score, 2.0 / 3.0));
    // proposal membrane inside a cell: singletons (Fiji's sum(p_i0)/n term)
    let holes = lv([1, 1, 6], vec![1, 0, 1, 2, 2, 2]);
    let (ab, a, b) = Contingency::new(&holes, &gt).unwrap().rand_sums();
    // joint 2, 3 (+1 singleton): 4 + 9 + 1; gt 9 + 9; pred 4 + 9 + 1
    assert_eq!((ab, a, b), (14.0, 18.0, 14.0));
    assert!(Contingency::new(&holes, &lv([1, 6, 1], vec![0; 6])).is_err());
}

#[test]
fn v_info_hand_cases() {
    let gt = lv([1, 1, 4], vec![1, 1, 2, 2]);
    let perfect = v_info(&Contingency::new(&gt, &gt).unwrap()).unwrap();
    assert!(close(perfect.f_score, 1.0));
    // merge: H(S) = 0, H(T) = ln 2, I = 0 -> F 0, split 1 (nothing split), merge 0
    let merged = v_info(&Contingency::new(&lv([1, 1, 4], vec![3; 4]), &gt).unwrap()).unwrap();
    assert!(close(merged.f_score, 0.0) && close(merged.split, 1.0) && close(merged.merge, 0.0));
    // joint sizes 2, 1, 1; proposal 3, 1; truth 2, 2 (n = 4)
    let pr = lv([1, 1, 4], vec![1, 1, 1, 2]);
    let s = v_info(&Contingency::new(&pr, &gt).unwrap()).unwrap();
    let l = |p: f64| -p * p.ln();
    let (hs, ht, hst) = (l(0.75) + l(0.25), 2.0 * l(0.5), l(0.5) + 2.0 * l(0.25));
    let mi = hs + ht - hst;
    assert!(close(s.f_score, 2.0 * mi / (hs + ht)));
    assert!(close(s.split, mi / hs) && close(s.merge, mi / ht));
    assert!((s.f_score - 0.343_711_0).abs() < 1e-6);
    // all proposal membrane: three singletons, H(S) = ln 3, H(T) = 0, I = 0
    let c = Contingency::new(&lv([1, 1, 3], vec![0; 3]), &lv([1, 1, 3], vec![4; 3])).unwrap();
    let (hs, ht, _) = c.entropies().unwrap();
    assert!(close(hs, 3f64.ln()) && close(ht, 0.0));
    assert!(close(v_info(&c).unwrap().f_score, 0.0));
}

#[test]
fn pixel_error_is_one_minus_best_f() {
    // class 0 = cell, 1 = membrane
    let gt = lv([1, 1, 4], vec![0, 0, 1, 1]);
    let prob = Array3::from_vec([1, 1, 4], vec![0.9f32, 0.4, 0.3, 0.05]).unwrap();
    let s = challenge_scores(&prob, &gt, 0, &challenge_thresholds())
        .unwrap()
        .unwrap();
    // t = 0.0: 4 cells, P = 1/2, R = 1, F = 2/3; t = 0.3: exactly the two cells
    assert_eq!((s.pixel_error, s.pixel_threshold), (0.0, 0.3));
    let s = challenge_scores(&prob, &gt, 0, &[0.0]).unwrap().unwrap();
    assert!(close(s.pixel_error, 1.0 / 3.0));
    assert!(close(pixel_f(0, 0, 3), 0.0));
}

#[test]
fn rand_error_best_threshold_and_pooling() {
    // a membrane column (class 1) at x = 2 with a weak pixel in row 1
    let gt = lv([1, 2, 5], vec![0, 0, 1, 0, 0, 0, 0, 1, 0, 0]);
    let prob = Array3::from_vec(
        [1, 2, 5],
        vec![0.8f32, 0.8, 0.2, 0.8, 0.8, 0.8, 0.8, 0.6, 0.8, 0.8],
    )
    .unwrap();
    let s = challenge_scores(&prob, &gt, 0, &challenge_thresholds())
        .unwrap()
        .unwrap();
    assert_eq!((s.rand_error, s.rand_threshold), (0.0, 0.6));
    assert!(close(s.v_info.f_score, 1.0));
    // at 0.5 the gap merges the two cells: 2 * 32 / (32 + 64)
    let s = challenge_scores(&prob, &gt, 0, &[0.5]).unwrap().unwrap();
    assert!(close(s.rand_error, 1.0 / 3.0));
    assert!(close(s.v_rand.merge, 0.5) && close(s.v_rand.split, 1.0));
    // pooled: add a perfectly scored 3-pixel cell (9, 9, 9)
    let mut acc = ChallengeAccumulator::new(vec![0.5]);
    acc.add(&prob, &gt, 0).unwrap();
    let gt2 = lv([1, 1, 3], vec![0; 3]);
    acc.add(
        &Array3::from_vec([1, 1, 3], vec![0.9f32; 3]).unwrap(),
        &gt2,
        0,
    )
    .unwrap();
    // an image without cells is skipped
    acc.add(
        &Array3::from_vec([1, 1, 2], vec![0.9f32; 2]).unwrap(),
        &lv([1, 1, 2], vec![1, 1]),
        0,
    )
    .unwrap();
    let s = acc.finish().unwrap();
    assert_eq!(s.images, 2);
    assert!(close(1.0 - s.rand_error, 2.0 * 41.0 / (41.0 + 73.0)));
    // the same images, one accumulator each, merged: the same scores
    let mut merged = ChallengeAccumulator::new(vec![0.5]);
    let mut one = ChallengeAccumulator::new(vec![0.5]);
    one.add(&prob, &gt, 0).unwrap();
    merged.merge(&one).unwrap();
    let mut two = ChallengeAccumulator::new(vec![0.5]);
    two.add(
        &Array3::from_vec([1, 1, 3], vec![0.9f32; 3]).unwrap(),
        &gt2,
        0,
    )
    .unwrap();
    merged.merge(&two).unwrap();
    assert_eq!(merged.finish().unwrap(), s);
    assert!(merged.merge(&ChallengeAccumulator::new(vec![0.4])).is_err());
    assert!(ChallengeAccumulator::new(vec![0.5]).finish().is_none());
    assert!(acc.add(&prob, &gt2, 0).is_err());
}
