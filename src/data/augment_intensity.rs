//! Intensity augmentation of a training patch at nnU-Net's ranges (its v2
//! default training transforms), applied after the patch is resampled:
//!
//! | transform | what | range | default probability |
//! | --- | --- | --- | --- |
//! | Gaussian noise | `x + N(0, v)` | variance `v` in 0..0.1 | 0.1 |
//! | Gaussian blur | separable, every axis of the patch longer than 1 | σ 0.5..1 voxel | 0.2 |
//! | brightness | `x · f` | f in 0.75..1.25 | 0.15 |
//! | contrast | `(x - mean) · f + mean`, clipped to the patch's old min..max | f in 0.75..1.25 | 0.15 |
//! | low resolution | nearest-neighbour down to `zoom · n` voxels per axis, linear back up | zoom 0.5..1 | 0.25 |
//! | inverted gamma | gamma on `-x` (range negated) | γ 0.7..1.5 | 0.1 |
//! | gamma | `min + r · ((x - min) / r)^γ`, mean and std kept | γ 0.7..1.5 | 0.3 |
//!
//! (in this order, as nnU-Net). A gamma is drawn from `lo..1` or `1..hi`
//! with even odds (as batchgenerators), so darkening and brightening curves
//! are equally frequent.
//!
//! The gamma's `min..max` (`r = max - min`) is set by [`GammaRangeOf`]:
//! `Image`: the whole source image's (volume's) range, computed
//! once when the sampler is built, the range a microscope's gamma acts on
//! (and `wunet eval --perturb gamma:G`); it follows the brightness and
//! contrast factors drawn before it, and is widened to the patch's own
//! range where noise or contrast left the patch outside it. `Patch`
//! (default): nnU-Net's, the patch's own range, which bends a patch without the
//! image's brightest (or darkest) voxels more mildly. `ImageZscore`: the
//! image's range, and instead of the patch's mean and std, the patch is
//! mapped as the z-score of the whole bent image would map it (mean / std
//! before and after from a fixed subsample of the image), as normalising a
//! gamma-perturbed image does.

use super::normalize::{log_to_raw, NormStats, Normalize, RankScale, RawLevels};
use super::synthetic::normal;
use rand::Rng;

/// Which intensity transforms to draw, with their ranges (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct IntensityOptions {
    pub noise_prob: f32,
    /// Variance range of the additive Gaussian noise.
    pub noise_variance: (f32, f32),
    pub blur_prob: f32,
    /// Blur σ range, in voxels.
    pub blur_sigma: (f32, f32),
    pub brightness_prob: f32,
    /// Multiplicative brightness factor range.
    pub brightness: (f32, f32),
    pub contrast_prob: f32,
    /// Contrast factor range.
    pub contrast: (f32, f32),
    pub lowres_prob: f32,
    /// Simulated low resolution: zoom factor range (< 1: coarser).
    pub lowres_zoom: (f32, f32),
    /// Probability of a gamma on the inverted patch.
    pub gamma_invert_prob: f32,
    pub gamma_prob: f32,
    /// Gamma range.
    pub gamma: (f32, f32),
    /// Which intensity range the gamma curves act on.
    pub gamma_range_of: GammaRangeOf,
}

/// The `min..max` that the gamma curves map onto themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GammaRangeOf {
    /// The source image's (volume's) min and max.
    Image,
    /// The patch's own min and max (nnU-Net).
    Patch,
    /// The image's min and max, and the image's mean / std kept.
    ImageZscore,
}

/// What the gamma needs of a source image, computed once per image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageIntensity {
    /// The image's `(min, max)`.
    pub range: (f32, f32),
    /// All voxels up to [`ImageIntensity::SAMPLE`], else that many drawn
    /// with a fixed seed (for the image's mean / std).
    pub sample: Vec<f32>,
    /// An equalised image's raw values at evenly spaced ranks
    /// ([`crate::data::normalize::raw_levels`]): then the noise is drawn on
    /// the raw intensities and the noisy values equalised again
    /// ([`noise_before_equalize`]), as normalising a noisy raw image does.
    pub levels: Option<RawLevels>,
}

impl ImageIntensity {
    /// Voxels kept for the image's mean / std.
    pub const SAMPLE: usize = 8192;

    /// The range and subsample of one image's (or volume's) values.
    pub fn of(data: &[f32]) -> ImageIntensity {
        let sample = if data.len() <= Self::SAMPLE {
            data.to_vec()
        } else {
            let mut rng = super::synthetic::rng_for(0, 0);
            (0..Self::SAMPLE)
                .map(|_| data[rng.random_range(0..data.len())])
                .collect()
        };
        ImageIntensity {
            range: min_max(data),
            sample,
            levels: None,
        }
    }
}

impl GammaRangeOf {
    /// `"image"`, `"patch"` or `"image-zscore"`; `None` for anything else.
    pub fn parse(s: &str) -> Option<GammaRangeOf> {
        match s {
            "image" => Some(GammaRangeOf::Image),
            "patch" => Some(GammaRangeOf::Patch),
            "image-zscore" => Some(GammaRangeOf::ImageZscore),
            _ => None,
        }
    }
}

impl Default for IntensityOptions {
    /// nnU-Net's ranges and probabilities (gamma over the patch's range).
    fn default() -> Self {
        IntensityOptions {
            noise_prob: 0.1,
            noise_variance: (0.0, 0.1),
            blur_prob: 0.2,
            blur_sigma: (0.5, 1.0),
            brightness_prob: 0.15,
            brightness: (0.75, 1.25),
            contrast_prob: 0.15,
            contrast: (0.75, 1.25),
            lowres_prob: 0.25,
            lowres_zoom: (0.5, 1.0),
            gamma_invert_prob: 0.1,
            gamma_prob: 0.3,
            gamma: (0.7, 1.5),
            gamma_range_of: GammaRangeOf::Patch,
        }
    }
}

fn uniform(rng: &mut impl Rng, r: (f32, f32)) -> f32 {
    r.0 + (r.1 - r.0) * rng.random::<f32>()
}

/// Draw and apply the transforms of `opts` to a patch of `dims` `(z, y, x)`
/// in place. `image`: the source image's range and subsample (used by the
/// gamma unless [`GammaRangeOf::Patch`]).
pub fn augment_intensity(
    rng: &mut impl Rng,
    patch: &mut [f32],
    dims: [usize; 3],
    opts: &IntensityOptions,
    image: &ImageIntensity,
) {
    // `a x + b`: the brightness and contrast drawn below, for the image
    let (mut a, mut b) = (1.0f32, 0.0f32);
    if rng.random::<f32>() < opts.noise_prob {
        let sd = uniform(rng, opts.noise_variance).max(0.0).sqrt();
        match &image.levels {
            Some(l) if l.values.len() > 1 => match l.stats {
                NormStats::Ranks(scale) => noise_before_equalize(rng, patch, &l.values, scale, sd),
                clean => noise_before_log(rng, patch, &l.values, clean, sd),
            },
            _ => {
                for v in patch.iter_mut() {
                    *v += sd * normal(rng);
                }
            }
        }
    }
    if rng.random::<f32>() < opts.blur_prob {
        gaussian_blur(patch, dims, uniform(rng, opts.blur_sigma));
    }
    if rng.random::<f32>() < opts.brightness_prob {
        let f = uniform(rng, opts.brightness);
        patch.iter_mut().for_each(|v| *v *= f);
        (a, b) = (a * f, b * f);
    }
    if rng.random::<f32>() < opts.contrast_prob {
        let f = uniform(rng, opts.contrast);
        let m = contrast(patch, f);
        (a, b) = (a * f, (b - m) * f + m);
    }
    if rng.random::<f32>() < opts.lowres_prob {
        low_resolution(patch, dims, uniform(rng, opts.lowres_zoom));
    }
    for (p, invert) in [(opts.gamma_invert_prob, true), (opts.gamma_prob, false)] {
        if rng.random::<f32>() < p {
            let lo = opts.gamma.0;
            let g = if rng.random::<bool>() && lo < 1.0 {
                uniform(rng, (lo, 1.0))
            } else {
                uniform(rng, (lo.max(1.0), opts.gamma.1))
            };
            let range = (a * image.range.0 + b, a * image.range.1 + b);
            match opts.gamma_range_of {
                GammaRangeOf::Image => gamma(patch, g, invert, Some(range), None),
                GammaRangeOf::Patch => gamma(patch, g, invert, None, None),
                GammaRangeOf::ImageZscore => {
                    let s: Vec<f32> = image.sample.iter().map(|&v| a * v + b).collect();
                    gamma(patch, g, invert, Some(range), Some(&s))
                }
            }
        }
    }
}

/// Draws of noise per raw level for the noisy image's rank table.
const NOISY_DRAWS: usize = 4;

/// Gaussian noise of `sd` times the raw image's standard deviation (what
/// `sd` is on a z-scored image) added to the raw intensities of an
/// equalised patch, then equalised by the noisy image's ranks: each value
/// goes back to raw through `levels` (the raw image's values at evenly
/// spaced ranks), gets its noise, and takes its mid-rank among the levels
/// plus noise (4 draws each), as equalising the whole noisy
/// image would give; ranks are read and written on `scale`. On an
/// equalised image, noise added afterwards would miss that equalising
/// stretches the dense background's noise most.
pub fn noise_before_equalize(
    rng: &mut impl Rng,
    patch: &mut [f32],
    levels: &[f32],
    scale: RankScale,
    sd: f32,
) {
    let (mut noisy, sd) = noisy_levels(rng, levels, sd);
    noisy.sort_unstable_by(f32::total_cmp);
    let last = (levels.len() - 1) as f64;
    let n = noisy.len() as f64;
    for v in patch.iter_mut() {
        // back to raw: the level at the value's rank, interpolated
        let pos = scale.to_unit(*v as f64).clamp(0.0, 1.0) * last;
        let i = (pos.floor() as usize).min(levels.len() - 2);
        let f = pos - i as f64;
        let raw = levels[i] as f64 * (1.0 - f) + levels[i + 1] as f64 * f;
        let y = (raw + sd * normal(rng) as f64) as f32;
        // mid-rank among the noisy levels, on `scale` as `normalize::equalize_to`
        let below = noisy.partition_point(|&x| x < y);
        let upto = noisy.partition_point(|&x| x <= y);
        *v = scale.from_unit((below + upto) as f64 * 0.5 / n) as f32;
    }
}

/// The raw `levels` plus Gaussian noise, [`NOISY_DRAWS`] draws each (in
/// level order, unsorted), as a sample of the noisy image; and the noise's
/// standard deviation in raw units: `sd` times the levels' std.
fn noisy_levels(rng: &mut impl Rng, levels: &[f32], sd: f32) -> (Vec<f32>, f64) {
    let (_, std) = mean_std(levels);
    let sd = sd as f64 * std;
    let mut noisy = Vec::with_capacity(NOISY_DRAWS * levels.len());
    for _ in 0..NOISY_DRAWS {
        for &l in levels {
            noisy.push((l as f64 + sd * normal(rng) as f64) as f32);
        }
    }
    (noisy, sd)
}

/// Gaussian noise of `sd` times the raw image's standard deviation added
/// to the raw intensities of a patch normalised by `clean` (a
/// [`NormStats::Log`]; other statistics leave the patch as it is), then
/// normalised again with the statistics of the noisy image: each value goes
/// back to raw ([`log_to_raw`]), gets its noise, and is normalised with the
/// [`Normalize::Log`] statistics of the raw levels plus noise (4 draws each),
/// as normalising the whole noisy image would give. Noise added after the
/// log would miss that the log stretches the dark background's noise most.
pub fn noise_before_log(
    rng: &mut impl Rng,
    patch: &mut [f32],
    levels: &[f32],
    clean: NormStats,
    sd: f32,
) {
    let NormStats::Log { q, mean, inv, .. } = clean else {
        return;
    };
    let (noisy, sd) = noisy_levels(rng, levels, sd);
    let stats = NormStats::of(&noisy, noisy.len(), Normalize::Log);
    for v in patch.iter_mut() {
        *v = (log_to_raw(*v, q, mean, inv) + sd * normal(rng) as f64) as f32;
    }
    stats.apply(patch);
}

/// `(min, max)` of the values (NaNs skipped); `(inf, -inf)` when empty.
pub fn min_max(patch: &[f32]) -> (f32, f32) {
    patch
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        })
}

fn mean_std(patch: &[f32]) -> (f64, f64) {
    let n = patch.len().max(1) as f64;
    let m = patch.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = patch.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// `(x - mean) · f + mean`, clipped to the patch's range before the change;
/// returns the mean.
pub fn contrast(patch: &mut [f32], f: f32) -> f32 {
    let (lo, hi) = min_max(patch);
    let (m, _) = mean_std(patch);
    let m = m as f32;
    for v in patch.iter_mut() {
        *v = ((*v - m) * f + m).clamp(lo, hi);
    }
    m
}

/// The gamma curve on `min..max` (on `-x` with `invert`, the range negated
/// too), then the patch's mean and standard deviation restored (nnU-Net's
/// `retain_stats`). `range`: `Some((min, max))` of the source image,
/// widened to the patch's own range where the patch leaves it; `None`: the
/// patch's range. `stats_of`: `Some(values)`: their mean and std before
/// and after the curve set the restoring map instead of the patch's. A
/// zero or non-finite range (a constant patch of a constant image) leaves
/// the patch alone.
pub fn gamma(
    patch: &mut [f32],
    g: f32,
    invert: bool,
    range: Option<(f32, f32)>,
    stats_of: Option<&[f32]>,
) {
    let sign = if invert { -1.0 } else { 1.0 };
    patch.iter_mut().for_each(|v| *v *= sign);
    let mut refv: Option<Vec<f32>> = stats_of.map(|s| s.iter().map(|v| v * sign).collect());
    let (m0, s0) = mean_std(refv.as_deref().unwrap_or(patch));
    let (mut lo, mut hi) = min_max(patch);
    if let Some((a, b)) = range {
        let (a, b) = if invert { (-b, -a) } else { (a, b) };
        (lo, hi) = (lo.min(a), hi.max(b));
    }
    let r = hi - lo;
    if r > 1e-12 && r.is_finite() {
        let bend = |v: &mut f32| *v = ((*v - lo) / r).max(0.0).powf(g) * r + lo;
        patch.iter_mut().for_each(bend);
        if let Some(rv) = refv.as_mut() {
            rv.iter_mut().for_each(bend);
        }
        let (m1, s1) = mean_std(refv.as_deref().unwrap_or(patch));
        let k = if s1 > 1e-12 { s0 / s1 } else { 1.0 };
        for v in patch.iter_mut() {
            *v = ((*v as f64 - m1) * k + m0) as f32;
        }
    }
    patch.iter_mut().for_each(|v| *v *= sign);
}

/// Separable Gaussian blur of σ voxels along every axis longer than 1
/// (kernel radius ⌈3σ⌉, mirrored borders).
pub fn gaussian_blur(patch: &mut [f32], dims: [usize; 3], sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    let mut line = Vec::new();
    for axis in 0..3 {
        if dims[axis] > 1 {
            for_each_line(patch, dims, axis, &mut line, |l, out| {
                let n = l.len();
                for (i, o) in out.iter_mut().enumerate() {
                    *o = k
                        .iter()
                        .enumerate()
                        .map(|(j, w)| w * l[super::reflect_index(i as isize + j as isize - r, n)])
                        .sum();
                }
            });
        }
    }
}

/// Simulated low resolution: every axis longer than 1 is sampled down to
/// `round(zoom · n)` voxels (nearest neighbour), then back up to `n`
/// (linear). `zoom >= 1` leaves the patch unchanged.
pub fn low_resolution(patch: &mut [f32], dims: [usize; 3], zoom: f32) {
    if zoom >= 1.0 {
        return;
    }
    let mut line = Vec::new();
    for axis in 0..3 {
        let n = dims[axis];
        let m = ((n as f32 * zoom).round() as usize).clamp(1, n);
        if n <= 1 || m == n {
            continue;
        }
        for_each_line(patch, dims, axis, &mut line, |l, out| {
            let coarse: Vec<f32> = (0..m)
                .map(|i| l[(((i as f32 + 0.5) * n as f32 / m as f32) as usize).min(n - 1)])
                .collect();
            for (i, o) in out.iter_mut().enumerate() {
                let p = ((i as f32 + 0.5) * m as f32 / n as f32 - 0.5).clamp(0.0, (m - 1) as f32);
                let a = p.floor() as usize;
                let b = (a + 1).min(m - 1);
                let f = p - a as f32;
                *o = coarse[a] + f * (coarse[b] - coarse[a]);
            }
        });
    }
}

/// Call `f(line, out)` on every line of the patch along `axis` and write
/// `out` back in place.
fn for_each_line(
    patch: &mut [f32],
    dims: [usize; 3],
    axis: usize,
    line: &mut Vec<f32>,
    mut f: impl FnMut(&[f32], &mut [f32]),
) {
    let n = dims[axis];
    let stride = match axis {
        0 => dims[1] * dims[2],
        1 => dims[2],
        _ => 1,
    };
    let mut out = vec![0.0f32; n];
    for start in 0..patch.len() {
        // the first voxel of each line: its coordinate along `axis` is 0
        if (start / stride) % n != 0 {
            continue;
        }
        line.clear();
        line.extend((0..n).map(|i| patch[start + i * stride]));
        f(line, &mut out);
        for (i, &v) in out.iter().enumerate() {
            patch[start + i * stride] = v;
        }
    }
}

#[cfg(test)]
#[path = "augment_intensity_tests.rs"]
mod tests;
