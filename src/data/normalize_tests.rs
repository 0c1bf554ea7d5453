//! Tests of [`super`]: normalisation modes, the auto rule, ranks and levels.

use super::*;

/// Sparse bright discs on a dark, noisy background, `scale · x + offset`.
fn nuclei(scale: f32, offset: f32) -> Vec<f32> {
    (0..64 * 64)
        .map(|i| {
            let (y, x) = ((i / 64) as f32, (i % 64) as f32);
            let disc = |cy: f32, cx: f32, r: f32, v: f32| {
                if (y - cy).powi(2) + (x - cx).powi(2) < r * r {
                    v
                } else {
                    0.0
                }
            };
            let v = 10.0
                + ((i * 7919) % 13) as f32 * 0.3
                + disc(16.0, 16.0, 6.0, 200.0)
                + disc(40.0, 44.0, 5.0, 60.0);
            v * scale + offset
        })
        .collect()
}

#[test]
fn auto_rule_picks_robust_or_log_for_dark_images_only() {
    let dark = nuclei(1.0, 0.0);
    assert!(is_dark_background(&dark));
    // a mid-grey texture (EM-like) is not dark
    let grey: Vec<f32> = (0..4096).map(|i| 100.0 + ((i * 31) % 97) as f32).collect();
    assert!(!is_dark_background(&grey));
    assert_eq!(auto_key([dark.as_slice(), dark.as_slice()], 0.03), "robust");
    assert_eq!(auto_key([dark.as_slice(), dark.as_slice()], 0.2), "log");
    assert_eq!(auto_key([dark.as_slice(), grey.as_slice()], 0.03), "zscore");
    assert_eq!(auto_key(std::iter::empty(), 0.0), "zscore");
}

#[test]
fn robust_scaling_ignores_gain_and_offset_and_clips_on_request() {
    let mode = Normalize::from_key("robust", false).unwrap();
    let norm = |v: Vec<f32>, m: Normalize| {
        let mut v = v;
        NormStats::of(&v, 64, m).apply(&mut v);
        v
    };
    let a = norm(nuclei(1.0, 0.0), mode);
    let b = norm(nuclei(4.0, 30.0), mode);
    let c = norm(nuclei(0.25, 0.0), mode);
    for i in 0..a.len() {
        assert!(
            (a[i] - b[i]).abs() < 1e-4 && (a[i] - c[i]).abs() < 1e-4,
            "{i}"
        );
    }
    // the brightest voxel is above the 99.8th percentile: > 1 unclipped, 1 clipped
    let i = (0..a.len()).fold(0, |m, j| if a[j] > a[m] { j } else { m });
    assert!(a[i] > 1.0, "{}", a[i]);
    let clipped = norm(
        nuclei(1.0, 0.0),
        Normalize::from_key("robust", true).unwrap(),
    );
    assert_eq!(clipped[i], 1.0);
    assert!(clipped.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(Normalize::from_key("auto", false).is_err());
    assert_eq!(
        Normalize::from_key("percentile", false).unwrap(),
        Normalize::Percentile {
            lo: 1.0,
            hi: 99.0,
            clip: true
        }
    );
}

/// `v` through the statistics of `equalize` on `scale`.
fn equalized(mut v: Vec<f32>, scale: RankScale) -> Vec<f32> {
    NormStats::of(&v, 64, Normalize::Equalize(scale)).apply(&mut v);
    v
}

#[test]
fn equalize_is_unchanged_by_increasing_maps_and_centred() {
    let eq = |v| equalized(v, RankScale::Uniform);
    let raw = nuclei(1.0, 0.0);
    let a = eq(raw.clone());
    // gain and offset, gamma 2 and 0.5 over 0..max: the same ranks, the same output
    let max = raw.iter().copied().fold(0.0f32, f32::max);
    for changed in [
        nuclei(4.0, 30.0),
        raw.iter().map(|v| max * (v / max).powi(2)).collect(),
        raw.iter().map(|v| max * (v / max).sqrt()).collect(),
    ] {
        assert_eq!(eq(changed), a);
    }
    // mean 0, std 1 for distinct values; ties share their mid-rank
    let n = a.len() as f64;
    let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    assert!(mean.abs() < 1e-6, "mean {mean}");
    assert!(var < 1.0 && var > 0.9, "var {var} (ties lower it)");
    let mut three = vec![5.0, 1.0, 5.0, f32::NAN];
    equalize(&mut three);
    let s = 12f32.sqrt();
    // ranks: 1.0 -> 0, the two 5.0 -> 1.5 (mean of 1 and 2), NaN last and NaN
    assert!((three[1] - (0.5 / 4.0 - 0.5) * s).abs() < 1e-6, "{three:?}");
    assert!((three[0] - (2.0 / 4.0 - 0.5) * s).abs() < 1e-6, "{three:?}");
    assert_eq!(three[0], three[2]);
    assert!(three[3].is_nan());
    assert_eq!(
        Normalize::from_key("equalize", false),
        Ok(Normalize::Equalize(RankScale::Uniform))
    );
}

#[test]
fn equalize_normal_gives_normal_quantiles_unchanged_by_increasing_maps() {
    let eq = |v| equalized(v, RankScale::Normal);
    let raw = nuclei(1.0, 0.0);
    let a = eq(raw.clone());
    let max = raw.iter().copied().fold(0.0f32, f32::max);
    let gamma2: Vec<f32> = raw.iter().map(|v| max * (v / max).powi(2)).collect();
    assert_eq!(eq(nuclei(4.0, 30.0)), a);
    assert_eq!(eq(gamma2), a);
    // the same order as the uniform ranks, through the normal quantile
    let mut u = raw.clone();
    equalize(&mut u);
    for (&g, &x) in a.iter().zip(&u) {
        let want = probit(x as f64 / 12f64.sqrt() + 0.5) as f32;
        assert!((g - want).abs() < 1e-6, "{g} vs {want}");
    }
    // five distinct values: mid-ranks 0.1, 0.3, .., 0.9
    let mut five = vec![3.0, 1.0, 2.0, 5.0, 4.0];
    equalize_to(&mut five, RankScale::Normal);
    let q = [-1.2815516, -0.5244005, 0.0, 0.5244005, 1.2815516];
    for (v, w) in five.iter().zip([q[2], q[0], q[1], q[4], q[3]]) {
        assert!((v - w).abs() < 1e-6, "{five:?}");
    }
    assert_eq!(
        Normalize::from_key("equalize-normal", false),
        Ok(Normalize::Equalize(RankScale::Normal))
    );
}

/// [`Normalize::Log`] of `v`.
fn logged(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.len();
    NormStats::of(&v, n, Normalize::Log).apply(&mut v);
    v
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn log_is_unchanged_by_gain_offset_and_gamma_over_the_range() {
    let raw = nuclei(1.0, 0.0);
    let a = logged(raw.clone());
    let (m, s) = (
        a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64,
        (a.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / a.len() as f64).sqrt(),
    );
    assert!(
        m.abs() < 1e-5 && (s - 1.0).abs() < 1e-5,
        "mean {m}, std {s}"
    );
    assert!(max_diff(&logged(nuclei(4.0, 30.0)), &a) < 1e-4);
    // gamma over min..max as `wunet eval --perturb gamma:G` does
    let (lo, hi) = raw
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    for g in [0.5f32, 2.0] {
        let t: Vec<f32> = raw
            .iter()
            .map(|&v| lo + (hi - lo) * ((v - lo) / (hi - lo)).powf(g))
            .collect();
        let d = max_diff(&logged(t), &a);
        assert!(d < 1e-3, "gamma {g}: {d}");
    }
    // distances kept: the dim disc sits between background and bright disc
    let at = |y: usize, x: usize| a[y * 64 + x];
    assert!(at(0, 0) < at(40, 44) && at(40, 44) < at(16, 16));
    assert_eq!(Normalize::from_key("log", false), Ok(Normalize::Log));
}

#[test]
fn log_floors_at_the_first_percentile_and_round_trips() {
    // 5 % of the image at 0 (a background set to 0), the rest 10..99:
    // the floor is the first percentile of the values above 0
    let v: Vec<f32> = (0..1000)
        .map(|i| if i < 50 { 0.0 } else { 10.0 + (i % 90) as f32 })
        .collect();
    let NormStats::Log { q, eps, mean, inv } = NormStats::of(&v, 1000, Normalize::Log) else {
        panic!("not log stats");
    };
    assert_eq!(q, 0.0);
    assert!(eps == 10.0, "floor {eps}");
    // one value only: the least floor
    for k in [7.0, -7.0] {
        let c = NormStats::of(&[k; 10], 10, Normalize::Log);
        assert!(
            matches!(c, NormStats::Log { eps, .. } if eps == 1e-6),
            "{c:?}"
        );
    }
    let mut n = v.clone();
    NormStats::Log { q, eps, mean, inv }.apply(&mut n);
    assert!(n.iter().all(|x| x.is_finite()));
    for (&x, &y) in v.iter().zip(&n).skip(50) {
        let back = log_to_raw(y, q, mean, inv);
        assert!(
            (back - x as f64).abs() < 1e-3 * x as f64,
            "{x} -> {y} -> {back}"
        );
    }
    // a 1 % floor above the minimum: values below it share the floor
    let w: Vec<f32> = (0..1000).map(|i| 5.0 + i as f32).collect();
    let NormStats::Log { eps, .. } = NormStats::of(&w, 1000, Normalize::Log) else {
        panic!("not log stats");
    };
    assert!((eps - 10.98).abs() < 1e-3, "floor {eps}");
    assert!(log_above(f32::NAN, 0.0, 1.0).is_nan());
}

#[test]
fn every_training_key_but_auto_is_a_mode() {
    for k in TRAINING_KEYS.iter().filter(|&&k| k != "auto") {
        assert!(Normalize::from_key(k, false).is_ok(), "{k}");
    }
    let err = Normalize::from_key("logg", false).unwrap_err();
    assert!(err.contains("'logg'") && err.contains("log"), "{err}");
}

#[test]
fn probit_and_normal_cdf_invert_each_other() {
    // tabulated quantiles: 0.5, 0.975, 0.999, and the lower tail
    assert!(probit(0.5).abs() < 1e-12);
    assert!((probit(0.975) - 1.959963985).abs() < 1e-8);
    assert!((probit(0.999) - 3.090232306).abs() < 1e-8);
    assert!((probit(0.001) + 3.090232306).abs() < 1e-8);
    assert!(probit(0.0).is_finite() && probit(1.0) < 7.1);
    for k in 1..200 {
        let p = k as f64 / 200.0;
        let back = normal_cdf(probit(p));
        assert!((back - p).abs() < 2e-7, "p {p}: {back}");
        let s = RankScale::Normal;
        assert!((s.to_unit(s.from_unit(p)) - p).abs() < 2e-7);
        let s = RankScale::Uniform;
        assert!((s.to_unit(s.from_unit(p)) - p).abs() < 1e-12);
    }
}
