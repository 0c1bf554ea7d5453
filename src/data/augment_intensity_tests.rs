//! Tests of [`super`]: statistics of the transformed patches.

use super::*;
use crate::data::synthetic::rng_for;

/// Every probability 0.
fn off() -> IntensityOptions {
    IntensityOptions {
        noise_prob: 0.0,
        blur_prob: 0.0,
        brightness_prob: 0.0,
        contrast_prob: 0.0,
        lowres_prob: 0.0,
        gamma_invert_prob: 0.0,
        gamma_prob: 0.0,
        ..Default::default()
    }
}

/// An image of range `r` (no subsample).
fn img(range: (f32, f32)) -> ImageIntensity {
    ImageIntensity {
        range,
        sample: Vec::new(),
        levels: None,
    }
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37) % 101) as f32 / 100.0).collect()
}

#[test]
fn nothing_drawn_is_identity() {
    let mut rng = rng_for(1, 1);
    let mut p = ramp(300);
    augment_intensity(&mut rng, &mut p, [1, 10, 30], &off(), &img((0.0, 1.0)));
    assert_eq!(p, ramp(300));
}

#[test]
fn noise_has_the_drawn_variance() {
    let o = IntensityOptions {
        noise_prob: 1.0,
        noise_variance: (0.05, 0.05),
        ..off()
    };
    let mut rng = rng_for(2, 1);
    let mut p = vec![0.0f32; 40_000];
    augment_intensity(&mut rng, &mut p, [1, 200, 200], &o, &img((0.0, 0.0)));
    let (m, s) = mean_std(&p);
    assert!(m.abs() < 0.01, "mean {m}");
    assert!((s * s - 0.05).abs() < 0.003, "variance {}", s * s);
}

#[test]
fn brightness_factors_cover_the_range() {
    let o = IntensityOptions {
        brightness_prob: 1.0,
        ..off()
    };
    let (mut lo, mut hi) = (f32::INFINITY, 0.0f32);
    for seed in 0..200 {
        let mut rng = rng_for(seed, 3);
        let mut p = vec![2.0f32; 8];
        augment_intensity(&mut rng, &mut p, [1, 2, 4], &o, &img((2.0, 2.0)));
        assert!(p.iter().all(|&v| v == p[0]), "one factor per patch");
        let f = p[0] / 2.0;
        assert!((0.75..=1.25).contains(&f), "{f}");
        (lo, hi) = (lo.min(f), hi.max(f));
    }
    assert!(lo < 0.78 && hi > 1.22, "factors {lo}..{hi}");
}

#[test]
fn contrast_scales_the_spread_and_keeps_the_range() {
    let mut p = ramp(1000);
    let (m0, s0) = mean_std(&p);
    contrast(&mut p, 0.8);
    let (m1, s1) = mean_std(&p);
    assert!((m1 - m0).abs() < 1e-5 && (s1 / s0 - 0.8).abs() < 1e-4);
    let mut q = ramp(1000);
    contrast(&mut q, 1.25);
    let (_, s2) = mean_std(&q);
    assert!(s2 > s0, "more contrast");
    assert!(
        q.iter().all(|&v| (0.0..=1.0).contains(&v)),
        "clipped to the old range"
    );
}

#[test]
fn gamma_keeps_mean_std_and_order() {
    let src = ramp(1000);
    for (g, inv) in [(0.7, false), (1.5, false), (0.7, true), (1.5, true)] {
        let mut p = src.clone();
        gamma(&mut p, g, inv, None, None);
        let (m0, s0) = mean_std(&src);
        let (m1, s1) = mean_std(&p);
        assert!(
            (m1 - m0).abs() < 1e-4 && (s1 - s0).abs() < 1e-4,
            "{g} {inv}"
        );
        // monotone: the order of the values is kept
        for (i, j) in [(0, 1), (5, 9), (17, 3)] {
            assert_eq!(src[i] < src[j], p[i] < p[j], "{g} {inv} {i} {j}");
        }
        assert!(p.iter().zip(&src).any(|(a, b)| (a - b).abs() > 1e-3));
    }
    let mut p = src.clone();
    gamma(&mut p, 1.0, false, None, None);
    assert!(p.iter().zip(&src).all(|(a, b)| (a - b).abs() < 1e-5));
    // inverted and plain gamma bend the curve the opposite way
    let (mut a, mut b) = (src.clone(), src.clone());
    gamma(&mut a, 1.5, false, None, None);
    gamma(&mut b, 1.5, true, None, None);
    let mid = src.iter().position(|&v| (v - 0.5).abs() < 0.006).unwrap();
    assert!((a[mid] - b[mid]).abs() > 0.01);
}

/// `[1, 2, 3]`, gamma 2 over the image range 0..4 (the patch's own max is
/// 3), by hand: t = x / 4 = 0.25, 0.5, 0.75; 4 t² = 0.25, 1, 2.25 (mean
/// 7/6, std 0.824958); back to the patch's mean 2 and std 0.816497:
/// 2 + (v - 7/6) · 0.989743 = 1.092735, 1.835043, 3.072222. The middle
/// value sits at (1 - 0.25) / (2.25 - 0.25) = 0.375 of the way (over the
/// patch's range 1..3 it would be 0.25).
#[test]
fn gamma_uses_the_image_range() {
    let want = [1.092735f32, 1.835043, 3.072222];
    let mut p = vec![1.0f32, 2.0, 3.0];
    gamma(&mut p, 2.0, false, Some((0.0, 4.0)), None);
    for (a, b) in p.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{p:?} vs {want:?}");
    }
    assert!(((p[1] - p[0]) / (p[2] - p[0]) - 0.375).abs() < 1e-5);
    let mut q = vec![1.0f32, 2.0, 3.0];
    gamma(&mut q, 2.0, false, None, None);
    assert!(((q[1] - q[0]) / (q[2] - q[0]) - 0.25).abs() < 1e-5, "{q:?}");
    // a range inside the patch's is widened to it: same as the patch's
    let mut r = vec![1.0f32, 2.0, 3.0];
    gamma(&mut r, 2.0, false, Some((1.5, 2.5)), None);
    assert_eq!(r, q);
    // inverted: gamma on -x over -4..0, i.e. the mirror image, 4 - x
    // reversed: 4 - 3.072222, 4 - 1.835043, 4 - 1.092735
    let mut n = vec![1.0f32, 2.0, 3.0];
    gamma(&mut n, 2.0, true, Some((0.0, 4.0)), None);
    for (a, b) in n.iter().zip([0.927778f32, 2.164957, 2.907265]) {
        assert!((a - b).abs() < 1e-5, "{n:?}");
    }
}

#[test]
fn gamma_image_zscore_bends_a_patch_as_its_whole_image() {
    let image: Vec<f32> = (0..60)
        .map(|i| ((i * 13) % 60) as f32 * 0.1 - 1.0)
        .collect();
    let info = ImageIntensity::of(&image);
    for (g, inv) in [(2.0, false), (0.6, true)] {
        let mut whole = image.clone();
        gamma(&mut whole, g, inv, None, None);
        let mut p = image[20..35].to_vec();
        gamma(&mut p, g, inv, Some(info.range), Some(&info.sample));
        for (a, b) in p.iter().zip(&whole[20..35]) {
            assert!((a - b).abs() < 1e-4, "{g} {inv}: {a} vs {b}");
        }
    }
    let big = ImageIntensity::of(&vec![1.0f32; 3 * ImageIntensity::SAMPLE]);
    assert_eq!(big.sample.len(), ImageIntensity::SAMPLE);
    assert_eq!(big.range, (1.0, 1.0));
}

#[test]
fn gamma_on_a_constant_image_does_not_panic() {
    for (g, inv) in [(0.7, false), (1.5, true)] {
        // constant patch of a constant image (range 0): unchanged
        let mut p = vec![5.0f32; 10];
        gamma(&mut p, g, inv, Some((5.0, 5.0)), None);
        assert_eq!(p, vec![5.0f32; 10]);
        // noise on a constant image: the patch's range is used, finite
        let mut q: Vec<f32> = (0..10).map(|i| 5.0 + 0.01 * i as f32).collect();
        gamma(&mut q, g, inv, Some((5.0, 5.0)), None);
        assert!(q.iter().all(|v| v.is_finite()), "{q:?}");
        // an empty image's range falls back to the patch's (two values:
        // kept by the mean and std); a non-finite one leaves it alone
        let mut e = vec![1.0f32, 2.0];
        gamma(&mut e, g, inv, Some(min_max(&[])), None);
        assert!((e[0] - 1.0).abs() < 1e-5 && (e[1] - 2.0).abs() < 1e-5);
        let mut f = vec![1.0f32, 2.0];
        gamma(&mut f, g, inv, Some((0.0, f32::INFINITY)), None);
        assert_eq!(f, vec![1.0, 2.0]);
    }
    let o = IntensityOptions {
        noise_prob: 1.0,
        gamma_prob: 1.0,
        gamma_invert_prob: 1.0,
        brightness_prob: 1.0,
        contrast_prob: 1.0,
        ..off()
    };
    for seed in 0..20 {
        let mut rng = rng_for(seed, 5);
        let p = vec![0.0f32; 64];
        for of in [GammaRangeOf::Image, GammaRangeOf::ImageZscore] {
            let o = IntensityOptions {
                gamma_range_of: of,
                ..o.clone()
            };
            let mut q = p.clone();
            let im = ImageIntensity::of(&[0.0; 16]);
            augment_intensity(&mut rng, &mut q, [1, 8, 8], &o, &im);
            assert!(q.iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn gamma_draws_both_sides_of_one() {
    let o = IntensityOptions {
        gamma_prob: 1.0,
        ..off()
    };
    let src: Vec<f32> = (0..100).map(|i| i as f32 / 99.0).collect();
    let (mut darker, mut brighter) = (0, 0);
    for seed in 0..100 {
        let mut rng = rng_for(seed, 4);
        let mut p = src.clone();
        augment_intensity(&mut rng, &mut p, [1, 10, 10], &o, &img((0.0, 1.0)));
        // with mean and std restored, gamma < 1 lifts the low values relative to the middle
        if p[10] - p[0] > p[60] - p[50] {
            brighter += 1;
        } else {
            darker += 1;
        }
    }
    assert!(darker > 25 && brighter > 25, "{darker} {brighter}");
}

#[test]
fn blur_spreads_an_impulse_by_sigma_and_keeps_its_sum() {
    let dims = [1, 21, 21];
    let mut p = vec![0.0f32; 441];
    p[10 * 21 + 10] = 1.0;
    gaussian_blur(&mut p, dims, 1.0);
    let sum: f32 = p.iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "sum {sum}");
    let var_x: f32 = (0..441)
        .map(|i| p[i] * ((i % 21) as f32 - 10.0).powi(2))
        .sum();
    assert!((var_x - 1.0).abs() < 0.02, "variance along x {var_x}");
    assert!(p[10 * 21 + 10] < 0.2 && p[10 * 21 + 11] > 0.05);
    // a 2D patch of a stack is not blurred across sections; constants stay
    let mut c = vec![3.0f32; 2 * 5 * 5];
    c[..25].iter_mut().for_each(|v| *v = 1.0);
    gaussian_blur(&mut c, [2, 5, 5], 0.0);
    assert_eq!(c[0], 1.0);
    let mut k = vec![3.0f32; 50];
    gaussian_blur(&mut k, [2, 5, 5], 0.8);
    assert!(k.iter().all(|v| (v - 3.0).abs() < 1e-5));
}

#[test]
fn low_resolution_is_identity_at_zoom_one_and_coarsens_below() {
    let src: Vec<f32> = (0..64).map(|i| (i % 2) as f32).collect();
    let mut p = src.clone();
    low_resolution(&mut p, [1, 8, 8], 1.0);
    assert_eq!(p, src);
    let mut q = src.clone();
    low_resolution(&mut q, [1, 8, 8], 0.5);
    assert_ne!(q, src);
    // a stripe pattern of period 2 along x collapses to one value per row
    for row in q.chunks(8) {
        assert!(row.iter().all(|&v| v == row[0]), "{row:?}");
    }
    let mut k = vec![2.5f32; 3 * 6 * 7];
    low_resolution(&mut k, [3, 6, 7], 0.6);
    assert!(k.iter().all(|&v| v == 2.5));
}

/// A dark image (background 20 +- 2) with bright blobs (60 +- 5) on a
/// quarter of it: NIH3T3-like, where equalising stretches the background.
fn fluorescence(n: usize, rng: &mut impl Rng) -> (Vec<f32>, Vec<bool>) {
    let fg: Vec<bool> = (0..n).map(|i| i % 4 == 0).collect();
    let raw = fg
        .iter()
        .map(|&f| {
            if f {
                60.0 + 5.0 * normal(rng)
            } else {
                20.0 + 2.0 * normal(rng)
            }
        })
        .collect();
    (raw, fg)
}

/// Mean and std of the values where `keep` holds.
fn stats_where(v: &[f32], keep: &[bool], want: bool) -> (f64, f64) {
    let s: Vec<f32> = v
        .iter()
        .zip(keep)
        .filter(|(_, &k)| k == want)
        .map(|(&x, _)| x)
        .collect();
    mean_std(&s)
}

#[test]
fn noise_on_an_equalised_image_matches_equalising_the_noisy_raw_image() {
    use crate::data::normalize::RankScale;
    for scale in [RankScale::Uniform, RankScale::Normal] {
        noise_through_levels_matches_the_truth(scale);
    }
}

fn noise_through_levels_matches_the_truth(scale: crate::data::normalize::RankScale) {
    use crate::data::normalize::{equalize_to, raw_levels};
    let mut rng = rng_for(3, 0);
    let (raw, fg) = fluorescence(20_000, &mut rng);
    let (_, raw_std) = mean_std(&raw);
    // noise sd as a share of the raw image's std, as on a z-scored image
    let sd = 0.3f32;
    // the truth: noise on the raw image, then equalised
    let mut truth: Vec<f32> = raw
        .iter()
        .map(|&x| x + (sd as f64 * raw_std) as f32 * normal(&mut rng))
        .collect();
    equalize_to(&mut truth, scale);
    // the augmentation: equalised first, noise through the raw levels
    let levels = raw_levels(&raw);
    let mut aug = raw.clone();
    equalize_to(&mut aug, scale);
    let clean = aug.clone();
    noise_before_equalize(&mut rng, &mut aug, &levels, scale, sd);
    for want in [false, true] {
        let (tm, ts) = stats_where(&truth, &fg, want);
        let (am, as_) = stats_where(&aug, &fg, want);
        assert!(
            (tm - am).abs() < 0.03,
            "{scale:?} fg {want}: mean {am} vs {tm}"
        );
        // within 0.03, or 10 % of the spread on the normal scale, whose
        // top ranks spread further and come from a 4100-value table (a
        // measured 0.534 against 0.491 for the nuclei)
        let tol = 0.03f64.max(0.1 * ts);
        assert!(
            (ts - as_).abs() < tol,
            "{scale:?} fg {want}: std {as_} vs {ts}"
        );
    }
    // how far background values move: as far as in the truth (the noise
    // scrambles the narrow background's ranks), where noise added after
    // equalising, at the same share of the std, moves them far less
    let moved = |v: &[f32]| {
        let d: Vec<f32> = v.iter().zip(&clean).map(|(a, b)| (a - b).abs()).collect();
        stats_where(&d, &fg, false).0
    };
    let mut after = clean.clone();
    after.iter_mut().for_each(|v| *v += sd * normal(&mut rng));
    let (t, a, f) = (moved(&truth), moved(&aug), moved(&after));
    assert!(
        (t - a).abs() < 0.1 * t,
        "moved: augmentation {a}, truth {t}"
    );
    assert!(t > 2.0 * f, "moved: truth {t}, noise after equalising {f}");
}

#[test]
fn noise_on_a_log_normalised_image_matches_normalising_the_noisy_raw_image() {
    use crate::data::normalize::{normalize_keeping_levels, NormStats, Normalize};
    use crate::data::Volume;
    let mut rng = rng_for(6, 0);
    let (raw, fg) = fluorescence(20_000, &mut rng);
    let (_, raw_std) = mean_std(&raw);
    let sd = 0.3f32;
    let vol = |v: Vec<f32>| Volume::from_vec([1, 1, v.len()], v).unwrap();
    // the truth: noise on the raw image, then normalised
    let mut truth = vol(raw
        .iter()
        .map(|&x| x + (sd as f64 * raw_std) as f32 * normal(&mut rng))
        .collect());
    normalize_keeping_levels(&mut truth, Normalize::Log);
    // the augmentation: normalised first, noise through the raw levels
    let mut aug = vol(raw.clone());
    let levels = normalize_keeping_levels(&mut aug, Normalize::Log).unwrap();
    assert!(matches!(levels.stats, NormStats::Log { .. }));
    let clean = aug.data.clone();
    noise_before_log(&mut rng, &mut aug.data, &levels.values, levels.stats, sd);
    for want in [false, true] {
        let (tm, ts) = stats_where(&truth.data, &fg, want);
        let (am, as_) = stats_where(&aug.data, &fg, want);
        assert!((tm - am).abs() < 0.05, "fg {want}: mean {am} vs {tm}");
        assert!((ts - as_).abs() < 0.1 * ts, "fg {want}: std {as_} vs {ts}");
    }
    // the log stretches the dark background's noise: noise added after the
    // log, at the same share of the std, moves the background far less
    let moved = |v: &[f32]| {
        let d: Vec<f32> = v.iter().zip(&clean).map(|(a, b)| (a - b).abs()).collect();
        stats_where(&d, &fg, false).0
    };
    let mut after = clean.clone();
    after.iter_mut().for_each(|v| *v += sd * normal(&mut rng));
    let (t, a, f) = (moved(&truth.data), moved(&aug.data), moved(&after));
    assert!(
        (t - a).abs() < 0.1 * t,
        "moved: augmentation {a}, truth {t}"
    );
    assert!(t > 1.5 * f, "moved: truth {t}, noise after the log {f}");
}

#[test]
fn equalised_images_take_their_noise_through_the_levels() {
    use crate::data::normalize::{equalize, raw_levels, NormStats, RankScale, RawLevels};
    let mut rng = rng_for(4, 0);
    let (raw, _) = fluorescence(4096, &mut rng);
    let mut eq = raw.clone();
    equalize(&mut eq);
    let opts = IntensityOptions {
        noise_prob: 1.0,
        noise_variance: (0.09, 0.09),
        ..off()
    };
    let image = ImageIntensity {
        levels: Some(RawLevels {
            values: raw_levels(&raw),
            stats: NormStats::Ranks(RankScale::Uniform),
        }),
        ..ImageIntensity::of(&eq)
    };
    let mut p = eq.clone();
    augment_intensity(&mut rng_for(5, 0), &mut p, [1, 64, 64], &opts, &image);
    // still within the equalised range, and changed
    let r = 12f32.sqrt() / 2.0;
    assert!(p.iter().all(|v| (-r..=r).contains(v)), "outside +-{r}");
    assert!(p.iter().zip(&eq).filter(|(a, b)| a != b).count() > 2000);
}
