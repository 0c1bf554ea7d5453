//! The augmentation keys of issue 13: their defaults (serde defaults for
//! configurations written before them) and the `lo,hi` range parser.

use crate::error::{Error, Result};

/// Defaults of the augmentation keys added with issue 13 (nnU-Net's
/// probabilities and ranges), also the values a `config.toml` written
/// before they existed resolves to.
pub(super) mod aug_default {
    use crate::data::augment::{AffineOptions, IntensityOptions};
    pub fn rotate_prob() -> f32 {
        AffineOptions::default().rotate_prob
    }
    pub fn rotate_degrees() -> f32 {
        AffineOptions::default().max_degrees
    }
    pub fn zoom_prob() -> f32 {
        AffineOptions::default().zoom_prob
    }
    pub fn zoom_range() -> String {
        let (a, b) = AffineOptions::default().zoom;
        format!("{a},{b}")
    }
    pub fn noise_prob() -> f32 {
        IntensityOptions::default().noise_prob
    }
    pub fn noise_variance() -> String {
        let (a, b) = IntensityOptions::default().noise_variance;
        format!("{a},{b}")
    }
    pub fn blur_prob() -> f32 {
        IntensityOptions::default().blur_prob
    }
    pub fn brightness_prob() -> f32 {
        IntensityOptions::default().brightness_prob
    }
    pub fn contrast_prob() -> f32 {
        IntensityOptions::default().contrast_prob
    }
    pub fn lowres_prob() -> f32 {
        IntensityOptions::default().lowres_prob
    }
    pub fn gamma_prob() -> f32 {
        IntensityOptions::default().gamma_prob
    }
    pub fn gamma_invert_prob() -> f32 {
        IntensityOptions::default().gamma_invert_prob
    }
    pub fn gamma_range() -> String {
        let (a, b) = IntensityOptions::default().gamma;
        format!("{a},{b}")
    }
    /// `"patch"` (nnU-Net's): configurations written before the key
    /// resolve to the range they trained with.
    pub fn gamma_range_of() -> String {
        "patch".into()
    }
}

/// The values of `gamma_range_of` (see [`crate::data::augment::GammaRangeOf`]).
pub(super) const GAMMA_RANGE_OF: &[&str] = &["image", "patch", "image-zscore"];

/// Parse a range key `lo,hi` (two finite numbers, `0 < lo <= hi <= 10`);
/// the error names the key, the text and an example.
pub(super) fn range_key(key: &str, text: &str, example: &str) -> Result<(f32, f32)> {
    bounded_range(key, text, example, false)
}

/// As [`range_key`], `lo` may be 0: `0 <= lo <= hi <= 10`.
pub(super) fn range_key_from_zero(key: &str, text: &str, example: &str) -> Result<(f32, f32)> {
    bounded_range(key, text, example, true)
}

fn bounded_range(key: &str, text: &str, example: &str, zero: bool) -> Result<(f32, f32)> {
    let lowest = if zero { "0 <= lo" } else { "0 < lo" };
    let bad = || {
        Error::Other(format!(
            "{key} = '{text}': expected two numbers 'lo,hi' with {lowest} <= hi <= 10, e.g. '{example}'"
        ))
    };
    let v: Vec<f32> = text
        .split(',')
        .map(|p| p.trim().parse::<f32>().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    match v.as_slice() {
        [a, b]
            if a.is_finite()
                && b.is_finite()
                && (*a > 0.0 || zero && *a == 0.0)
                && a <= b
                && *b <= 10.0 =>
        {
            Ok((*a, *b))
        }
        _ => Err(bad()),
    }
}
