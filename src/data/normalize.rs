//! Per-image intensity normalisation (z-score, percentile clipping) and the
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
    /// Clip to the `lo`..`hi` percentiles (numpy's linear interpolation, in
    /// percent, e.g. 1 and 99), then scale that range to [0, 1].
    Percentile { lo: f32, hi: f32 },
    /// Raw values.
    None,
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
                let mean = row_sums(data, w, |v| v as f64) / n as f64;
                let var = row_sums(data, w, |v| (v as f64 - mean).powi(2)) / n as f64;
                NormStats::zscore(mean, var)
            }
            Normalize::Percentile { lo, hi } => {
                let (plo, phi) = percentiles(data, lo, hi);
                NormStats::Clip { lo: plo, hi: phi }
            }
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
        }
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
