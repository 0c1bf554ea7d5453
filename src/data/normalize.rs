//! Per-image intensity normalisation (z-score, percentile clipping, ranks,
//! log z-score) and the
//! statistics it measures, in one fixed order of additions, so that
//! block-wise prediction ([`crate::infer::blocks`]) measuring them by
//! streaming over a store gets the same numbers.

use super::Volume;

/// Per-image intensity normalisation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Normalize {
    /// `(x - mean) / std` over the image (std floored at 1e-6).
    #[default]
    ZScore,
    /// Scale the `lo`..`hi` percentiles (numpy's linear interpolation, in
    /// percent, e.g. 1 and 99) to 0..1; with `clip`, values outside that
    /// range are clipped to it first (the `percentile` key: 1-99 %, clipped;
    /// `robust`: 50-99.8 %, clipped with `norm_clip`).
    Percentile { lo: f32, hi: f32, clip: bool },
    /// Histogram equalisation (the `equalize` key): each value becomes its
    /// mid-rank in the image, `u = (rank + 0.5) / n` with tied values
    /// sharing their mean rank, mapped to `(u - 0.5) * sqrt(12)` (mean 0,
    /// std 1 like the z-score, range +-1.73). Any strictly increasing change
    /// of the raw values (gain, offset, gamma, a camera's response curve)
    /// gives the same result; noise and blur do not. With
    /// [`RankScale::Normal`] (the `equalize-normal` key) `u` goes to the
    /// standard normal quantile instead (mean 0, std 1, the top and bottom
    /// ranks spread over +-5 rather than squeezed into +-1.73).
    Equalize(RankScale),
    /// Z-score of the log intensities above the image's black level (the
    /// `log` key): `t = ln(max(x - q, e))`, `q` the image's minimum
    /// ([`LOG_LO_PERCENTILE`]), `e` the floor ([`log_floor`]: from `q` to the
    /// [`LOG_FLOOR_PERCENTILE`]), then `(t - mean(t)) / std(t)`. A gain
    /// multiplies `x - q` and `e`, a gamma over the image's min..max raises
    /// both to a power (percentiles follow any increasing map): each becomes
    /// an offset or a scale of `t`, which the z-score removes, exactly; an
    /// added offset moves `q` with the image. Unlike ranks, the distances
    /// between intensities are kept (a faint glow stays closer to the
    /// background than to the objects).
    Log,
    /// Raw values.
    None,
}

/// The `normalize` keys a training configuration accepts (`auto` is
/// resolved by [`auto_key`]; the others by [`Normalize::from_key`]).
pub const TRAINING_KEYS: &[&str] = &[
    "auto",
    "zscore",
    "percentile",
    "robust",
    "equalize",
    "equalize-normal",
    "log",
];

/// [`Normalize::Log`]: the percentile (in percent) taken as the image's
/// black level `q`: the minimum, which a gamma over the image's range
/// keeps.
pub const LOG_LO_PERCENTILE: f32 = 0.0;

/// [`Normalize::Log`]: values below this percentile (in percent) of the
/// values above the minimum are clipped to it, so the floor of the logs
/// follows the image's own levels (and any increasing map of them).
pub const LOG_FLOOR_PERCENTILE: f32 = 1.0;

/// [`Normalize::Log`]: the upper percentile of the range that scales the
/// fallback floor.
pub const LOG_HI_PERCENTILE: f32 = 99.8;

/// [`Normalize::Log`]: the floor when no value lies above the minimum, as a
/// share of the range from `q` to the [`LOG_HI_PERCENTILE`] (at least 1e-6).
pub const LOG_EPS: f32 = 1e-4;

/// The training key `normalize = auto` counts an image as dark with bright
/// objects when its median lies within this share of its 1-99.8 %
/// percentile range above the 1st percentile (fluorescence; EM and bright
/// field are not).
pub const AUTO_DARK_SHARE: f32 = 0.1;

/// ... and picks `robust` for dark images when the labelled objects are
/// sparse: below this share of the training pixels, where the scale of a
/// z-score (of values or of logs) runs away with the object count (f = 1 %:
/// objects at 9.9 std) and changes with every image's count, which
/// `robust` does not. Above it (dense objects, e.g. NIH3T3's 15-26 %
/// nuclei) it picks `log`: the z-score of the log intensities, with the
/// objects at a steady level like the z-score (validation Dice 0.846 for
/// both, 400 steps, against 0.798 for `robust`) and exactly unchanged by a
/// gamma over the image's range, which the z-score is not (a gamma of 2
/// cost it 0.11-0.18 Dice).
pub const AUTO_SPARSE_SHARE: f64 = 0.1;

impl Normalize {
    /// The mode behind a `normalize` key: `zscore`, `percentile` (1-99 %,
    /// clipped: the original key) or `robust` (the median to 0, the 99.8th
    /// percentile to 1, clipped only with `clip`: for a dark background
    /// with sparse bright objects, the background (the median) goes to 0
    /// and the objects (the 99.8th percentile, as StarDist / CSBDeep's
    /// upper reference) to about 1, whatever the objects' share of the
    /// image above 0.2 %, its gain and offset); `none` raw values. `auto` must be resolved first
    /// ([`auto_key`]); unknown keys are refused naming the value.
    pub fn from_key(key: &str, clip: bool) -> Result<Normalize, String> {
        match key {
            "zscore" => Ok(Normalize::ZScore),
            "percentile" => Ok(Normalize::Percentile {
                lo: 1.0,
                hi: 99.0,
                clip: true,
            }),
            "robust" => Ok(Normalize::Percentile {
                lo: 50.0,
                hi: 99.8,
                clip,
            }),
            "equalize" => Ok(Normalize::Equalize(RankScale::Uniform)),
            "equalize-normal" => Ok(Normalize::Equalize(RankScale::Normal)),
            "log" => Ok(Normalize::Log),
            "none" => Ok(Normalize::None),
            k => Err(format!(
                "normalize = '{k}': expected zscore, percentile, robust, equalize, equalize-normal, log or none"
            )),
        }
    }
}

/// Whether one image is dark with sparse bright objects: its median lies
/// within [`AUTO_DARK_SHARE`] of its 1-99.8 % percentile range above the
/// 1st percentile.
pub fn is_dark_background(data: &[f32]) -> bool {
    let (p1, p998) = percentiles(data, 1.0, 99.8);
    let (med, _) = percentiles(data, 50.0, 50.0);
    p998 > p1 && med - p1 < AUTO_DARK_SHARE * (p998 - p1)
}

/// The `auto` rule over the raw training images and the share of their
/// pixels that the labels mark as objects: when most images (more than
/// half) are dark with bright objects ([`is_dark_background`]), `robust`
/// if the objects are sparse (`foreground_share` < [`AUTO_SPARSE_SHARE`])
/// and `log` if not; else (EM, bright field) `zscore`.
pub fn auto_key<'a>(
    images: impl IntoIterator<Item = &'a [f32]>,
    foreground_share: f64,
) -> &'static str {
    let (mut dark, mut n) = (0usize, 0usize);
    for im in images {
        n += 1;
        dark += usize::from(is_dark_background(im));
    }
    if n == 0 || 2 * dark <= n {
        "zscore"
    } else if foreground_share < AUTO_SPARSE_SHARE {
        "robust"
    } else {
        "log"
    }
}

/// Raw values kept per equalised image: its values at this many evenly
/// spaced ranks (see [`raw_levels`]).
pub const RAW_LEVELS: usize = 1025;

/// The sorted values of `data` at [`RAW_LEVELS`] evenly spaced ranks
/// (order statistics, NaN left out): the map from an equalised value back
/// to the raw intensity, for augmentations that act on raw intensities
/// (noise before equalising, as a noisy microscope image is equalised).
pub fn raw_levels(data: &[f32]) -> Vec<f32> {
    levels_in_order(data, &rank_order(data))
}

/// The values that [`Normalize::Equalize`] gives an image's ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RankScale {
    /// The centred mid-rank `(u - 0.5) * sqrt(12)` (uniform, range +-1.73).
    #[default]
    Uniform,
    /// The standard normal quantile of `u` (a rank-Gauss transform).
    Normal,
}

impl RankScale {
    /// The value of a rank's share `u` in [0, 1].
    pub fn from_unit(self, u: f64) -> f64 {
        match self {
            RankScale::Uniform => (u - 0.5) * 12f64.sqrt(),
            RankScale::Normal => probit(u),
        }
    }

    /// The rank's share in [0, 1] of a value ([`Self::from_unit`] inverted).
    pub fn to_unit(self, v: f64) -> f64 {
        match self {
            RankScale::Uniform => v / 12f64.sqrt() + 0.5,
            RankScale::Normal => normal_cdf(v),
        }
    }
}

/// A training image's [`raw_levels`] and the statistics it was normalised
/// with ([`NormStats::Ranks`] or [`NormStats::Log`]), for the training
/// noise drawn on raw intensities.
#[derive(Clone, Debug, PartialEq)]
pub struct RawLevels {
    pub values: Vec<f32>,
    pub stats: NormStats,
}

/// Normalise a training image in place; for the modes that do not act on
/// raw values linearly ([`Normalize::Equalize`], [`Normalize::Log`]) also
/// return its [`raw_levels`] (taken before) and its statistics.
pub fn normalize_keeping_levels(img: &mut Volume, mode: Normalize) -> Option<RawLevels> {
    match mode {
        Normalize::Equalize(scale) => {
            let order = rank_order(&img.data);
            let values = levels_in_order(&img.data, &order);
            assign_ranks(&mut img.data, &order, scale);
            Some(RawLevels {
                values,
                stats: NormStats::Ranks(scale),
            })
        }
        Normalize::Log => {
            let values = raw_levels(&img.data);
            let stats = NormStats::of(&img.data, img.dims[2], mode);
            stats.apply(&mut img.data);
            Some(RawLevels { values, stats })
        }
        _ => {
            normalize(img, mode);
            None
        }
    }
}

/// The indices of `data` in `total_cmp` order.
fn rank_order(data: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.sort_unstable_by(|&a, &b| data[a].total_cmp(&data[b]));
    order
}

/// [`raw_levels`] from the sorted `order` of `data`.
fn levels_in_order(data: &[f32], order: &[usize]) -> Vec<f32> {
    let s: Vec<f32> = order
        .iter()
        .map(|&i| data[i])
        .filter(|v| !v.is_nan())
        .collect();
    if s.is_empty() {
        return Vec::new();
    }
    let last = (s.len() - 1) as f64;
    (0..RAW_LEVELS)
        .map(|k| s[(k as f64 * last / (RAW_LEVELS - 1) as f64).round() as usize])
        .collect()
}

/// Normalise `img` in place.
pub fn normalize(img: &mut Volume, mode: Normalize) {
    let stats = NormStats::of(&img.data, img.dims[2], mode);
    stats.apply(&mut img.data);
}

/// Normalise each z-section of `img` on its own (a 2D model on a stack: its
/// training images were normalised one by one).
pub fn normalize_sections(img: &mut Volume, mode: Normalize) {
    let n = img.dims[1] * img.dims[2];
    for s in img.data.chunks_mut(n.max(1)) {
        NormStats::of(s, img.dims[2], mode).apply(s);
    }
}

/// What a [`Normalize`] mode measured on one image and applies to it.
/// Block-wise prediction measures it by streaming over a store
/// ([`crate::infer::blocks`]) and gets the same numbers.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormStats {
    /// Raw values.
    None,
    /// `(x - mean) * inv`, in f64, rounded to f32.
    ZScore { mean: f64, inv: f64 },
    /// Clip to `lo..hi`, then scale that range to [0, 1].
    Clip { lo: f32, hi: f32 },
    /// Scale `lo..hi` to [0, 1] without clipping (values outside it go
    /// below 0 or above 1).
    Scale { lo: f32, hi: f32 },
    /// The mid-rank transform of [`Normalize::Equalize`], of the very data
    /// it is applied to: measured and applied in one step, so it holds for
    /// whole images and sections only (block-wise and texture prediction
    /// refuse equalising checkpoints).
    Ranks(RankScale),
    /// [`Normalize::Log`]: `(ln(max(x - q, eps)) - mean) * inv`.
    Log {
        q: f32,
        eps: f32,
        mean: f64,
        inv: f64,
    },
}

impl NormStats {
    /// The statistics of `data` (rows of `w` values, x fastest) for `mode`.
    pub fn of(data: &[f32], w: usize, mode: Normalize) -> NormStats {
        let n = data.len();
        if n == 0 {
            return NormStats::None;
        }
        match mode {
            Normalize::None => NormStats::None,
            Normalize::ZScore => {
                let (mean, var) = moments(data, w, |v| v as f64);
                NormStats::zscore(mean, var)
            }
            Normalize::Percentile { lo, hi, clip } => {
                let (plo, phi) = percentiles(data, lo, hi);
                NormStats::percentile(plo, phi, clip)
            }
            Normalize::Equalize(s) => NormStats::Ranks(s),
            Normalize::Log => {
                let (q, hi) = percentiles(data, LOG_LO_PERCENTILE, LOG_HI_PERCENTILE);
                let above: Vec<f32> = data.iter().copied().filter(|&v| v > q).collect();
                let (clip, _) = percentiles(&above, LOG_FLOOR_PERCENTILE, LOG_FLOOR_PERCENTILE);
                let eps = log_floor(q, clip, hi);
                let (mean, var) = moments(data, w, |v| log_above(v, q, eps));
                NormStats::log(q, eps, mean, var)
            }
        }
    }

    /// [`NormStats::Log`] from the black level, the floor and the mean and
    /// variance of the logs (std floored at 1e-6).
    pub fn log(q: f32, eps: f32, mean: f64, var: f64) -> NormStats {
        NormStats::Log {
            q,
            eps,
            mean,
            inv: 1.0 / var.sqrt().max(1e-6),
        }
    }

    /// The statistics of percentile scaling from the two measured values.
    pub fn percentile(lo: f32, hi: f32, clip: bool) -> NormStats {
        if clip {
            NormStats::Clip { lo, hi }
        } else {
            NormStats::Scale { lo, hi }
        }
    }

    /// Z-score statistics from a mean and a variance (std floored at 1e-6).
    pub fn zscore(mean: f64, var: f64) -> NormStats {
        NormStats::ZScore {
            mean,
            inv: 1.0 / var.sqrt().max(1e-6),
        }
    }

    /// Normalise `data` in place.
    pub fn apply(&self, data: &mut [f32]) {
        match *self {
            NormStats::None => {}
            NormStats::ZScore { mean, inv } => {
                for v in data.iter_mut() {
                    *v = ((*v as f64 - mean) * inv) as f32;
                }
            }
            NormStats::Clip { lo, hi } => {
                let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
                for v in data.iter_mut() {
                    *v = (v.clamp(lo, hi) - lo) * scale;
                }
            }
            NormStats::Scale { lo, hi } => {
                let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
                for v in data.iter_mut() {
                    *v = (*v - lo) * scale;
                }
            }
            NormStats::Ranks(s) => equalize_to(data, s),
            NormStats::Log { q, eps, mean, inv } => {
                for v in data.iter_mut() {
                    *v = ((log_above(*v, q, eps) - mean) * inv) as f32;
                }
            }
        }
    }
}

/// Mean and variance of `t(v)` over `data` (rows of `w`), summed in the
/// order of [`row_sums`]; `data` must not be empty.
fn moments(data: &[f32], w: usize, t: impl Fn(f32) -> f64) -> (f64, f64) {
    let n = data.len() as f64;
    let mean = row_sums(data, w, &t) / n;
    let var = row_sums(data, w, |v| (t(v) - mean).powi(2)) / n;
    (mean, var)
}

/// The floor of [`Normalize::Log`] for a black level `q`, the
/// [`LOG_FLOOR_PERCENTILE`] of the values above it `clip` and the
/// [`LOG_HI_PERCENTILE`] `hi`:
/// `clip - q`; when nothing lies above `q` (`hi <= q`: `clip` is then
/// that of no values), [`LOG_EPS`] of `hi - q`, at least 1e-6.
pub fn log_floor(q: f32, clip: f32, hi: f32) -> f32 {
    if hi > q && clip > q {
        clip - q
    } else {
        (LOG_EPS * (hi - q)).max(1e-6)
    }
}

/// `ln(max(v - q, eps))` in f64 (NaN stays NaN).
pub fn log_above(v: f32, q: f32, eps: f32) -> f64 {
    if v.is_nan() {
        return f64::NAN;
    }
    (v as f64 - q as f64).max(eps as f64).ln()
}

/// A value [`NormStats::Log`] gave, back to the raw intensity (values at
/// the floor come back as `q + eps`).
pub fn log_to_raw(v: f32, q: f32, mean: f64, inv: f64) -> f64 {
    (v as f64 / inv + mean).exp() + q as f64
}

/// Replace each value of `data` by its centred mid-rank (see
/// [`Normalize::Equalize`]); NaN sorts last and stays NaN.
pub fn equalize(data: &mut [f32]) {
    equalize_to(data, RankScale::Uniform)
}

/// [`equalize`] with the ranks mapped to `scale`.
pub fn equalize_to(data: &mut [f32], scale: RankScale) {
    let order = rank_order(data);
    assign_ranks(data, &order, scale);
}

/// Each value of `data` to its mid-rank's value on `to`, given its sorted
/// `order`.
fn assign_ranks(data: &mut [f32], order: &[usize], to: RankScale) {
    let n = data.len();
    let scale = 12f64.sqrt() / n as f64;
    let mut i = 0;
    while i < n {
        let v = data[order[i]];
        let mut j = i + 1;
        while j < n && data[order[j]].total_cmp(&v).is_eq() {
            j += 1;
        }
        // ranks i..j share the middle one; centred: (mid + 0.5) / n - 0.5
        let u = ((i + j) as f64 * 0.5 - n as f64 * 0.5) * scale;
        // the centred value is the uniform scale's; another scale maps its share
        let u = match to {
            RankScale::Uniform => u,
            _ => to.from_unit(RankScale::Uniform.to_unit(u)),
        };
        let out = if v.is_nan() { f32::NAN } else { u as f32 };
        for &k in &order[i..j] {
            data[k] = out;
        }
        i = j;
    }
}

/// The standard normal quantile of `p` (P. J. Acklam's rational
/// approximation, relative error below 1.2e-9; `p` clamped to
/// [1e-12, 1 - 1e-12], so the result stays within +-7.03).
pub fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const LOW: f64 = 0.02425;
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// The standard normal distribution function (Abramowitz and Stegun
/// 7.1.26 for erf, absolute error below 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / 2f64.sqrt();
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly =
        ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592;
    let erf = 1.0 - poly * t * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// `sum f(v)` taken in one fixed order that does not depend on how the data
/// is read: each row of `w` values summed from its start (f64), then the row
/// sums added in row order. A reader that streams a volume chunk by chunk
/// keeps per-row sums and gets the same bits.
pub fn row_sums(data: &[f32], w: usize, f: impl Fn(f32) -> f64) -> f64 {
    data.chunks(w.max(1))
        .map(|r| r.iter().fold(0.0f64, |a, &v| a + f(v)))
        .fold(0.0f64, |a, r| a + r)
}

/// The `lo` and `hi` percentiles (in percent) of `v`, numpy's default linear interpolation.
pub fn percentiles(v: &[f32], lo: f32, hi: f32) -> (f32, f32) {
    let mut s: Vec<f32> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return (0.0, 0.0);
    }
    let mut q = |p: f32| -> f32 {
        let pos = (p.clamp(0.0, 100.0) as f64 / 100.0) * (s.len() - 1) as f64;
        let i = pos.floor() as usize;
        let f = pos - i as f64;
        let (_, a, rest) = s.select_nth_unstable_by(i, |a, b| a.total_cmp(b));
        let a = *a;
        let b = if f > 0.0 {
            rest.iter().copied().fold(f32::INFINITY, f32::min)
        } else {
            a
        };
        (a as f64 + f * (b as f64 - a as f64)) as f32
    };
    let a = q(lo);
    let b = q(hi);
    (a, b)
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
