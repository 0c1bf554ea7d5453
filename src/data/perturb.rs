//! Perturbations of raw (not yet normalised) evaluation images, for
//! robustness tests (`wunet eval --perturb NAME[:VALUE]`, `tools/robustness.sh`):
//!
//! | name | what |
//! | --- | --- |
//! | `gamma:G` | `lo + (hi - lo) · ((x - lo) / (hi - lo))^G`, lo / hi the image's min / max |
//! | `gain:F` | `x · F` (intensity scaled) |
//! | `offset:V` | `x + V · max` (V a share of the image's maximum) |
//! | `noise:S` | `x + N(0, (S · (max - min))²)`, fixed seed |
//! | `zoom:F` | (y, x) resized by F: image linear, labels and ids nearest |
//! | `background0` | voxels whose label is class 0 set to 0 (objects kept) |
//!
//! All in f32: nothing saturates or is rounded to the file's bit depth.

use super::dataset::Sample;
use super::resize::{resize_linear, resize_nearest, zoomed_dims};
use super::synthetic::{normal, rng_for};
use crate::error::{Error, Result};

/// One perturbation (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Perturb {
    Gamma(f32),
    Gain(f32),
    Offset(f32),
    Noise(f32),
    Zoom(f32),
    Background0,
}

impl Perturb {
    /// Parse `NAME[:VALUE]`; errors name `flag` and the text.
    pub fn parse(flag: &str, s: &str) -> Result<Perturb> {
        let bad = |why: &str| {
            Error::Other(format!(
                "{flag} {s}: {why}; expected gamma:G, gain:F, offset:V, noise:S, zoom:F (G, F, S > 0, V finite) or background0"
            ))
        };
        let (name, value) = match s.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        if name == "background0" {
            return match value {
                None => Ok(Perturb::Background0),
                Some(_) => Err(bad("background0 takes no value")),
            };
        }
        let v: f32 = value
            .ok_or_else(|| bad("missing value"))?
            .trim()
            .parse()
            .map_err(|_| bad("the value is not a number"))?;
        if !v.is_finite() {
            return Err(bad("the value is not finite"));
        }
        let positive = |p: Perturb| {
            if v > 0.0 {
                Ok(p)
            } else {
                Err(bad("the value must be > 0"))
            }
        };
        match name {
            "gamma" => positive(Perturb::Gamma(v)),
            "gain" => positive(Perturb::Gain(v)),
            "offset" => Ok(Perturb::Offset(v)),
            "noise" => positive(Perturb::Noise(v)),
            "zoom" if v > 0.0 && v <= 8.0 => Ok(Perturb::Zoom(v)),
            "zoom" => Err(bad("zoom must be in (0, 8]")),
            _ => Err(bad("unknown perturbation")),
        }
    }

    /// Apply to one raw sample (image, labels, instance ids); `index`
    /// seeds the noise.
    pub fn apply(&self, s: &mut Sample, index: u64) {
        let (lo, hi) = s
            .image
            .data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let img = &mut s.image.data;
        match *self {
            Perturb::Gamma(g) => {
                let r = hi - lo;
                if r > 0.0 {
                    img.iter_mut()
                        .for_each(|v| *v = lo + r * ((*v - lo) / r).max(0.0).powf(g));
                }
            }
            Perturb::Gain(f) => img.iter_mut().for_each(|v| *v *= f),
            Perturb::Offset(o) => img.iter_mut().for_each(|v| *v += o * hi),
            Perturb::Noise(sd) => {
                let mut rng = rng_for(0x5eed, index);
                let sd = sd * (hi - lo);
                img.iter_mut().for_each(|v| *v += sd * normal(&mut rng));
            }
            Perturb::Background0 => {
                for (v, &l) in img.iter_mut().zip(&s.labels.data) {
                    if l == 0 {
                        *v = 0.0;
                    }
                }
            }
            Perturb::Zoom(f) => {
                let d = zoomed_dims(s.image.dims, f);
                s.image = resize_linear(&s.image, d);
                s.labels = resize_nearest(&s.labels, d);
                s.instances = s.instances.as_ref().map(|i| resize_nearest(i, d));
                s.weights = s.weights.as_ref().map(|w| resize_linear(w, d));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Array3;

    fn sample() -> Sample {
        let labels =
            Array3::from_vec([1, 4, 4], (0..16).map(|i| (i % 5 == 0) as i32).collect()).unwrap();
        let image = labels.map(|&l| 10.0 + 90.0 * l as f32);
        Sample {
            name: "s".into(),
            image,
            labels,
            weights: None,
            instances: None,
            raw_levels: None,
        }
    }

    #[test]
    fn perturbations_do_what_they_say() {
        let p = |t: &str| {
            let mut s = sample();
            Perturb::parse("--perturb", t).unwrap().apply(&mut s, 0);
            s
        };
        assert!(p("gain:4")
            .image
            .data
            .iter()
            .all(|&v| v == 40.0 || v == 400.0));
        assert!(p("offset:0.5")
            .image
            .data
            .iter()
            .all(|&v| v == 60.0 || v == 150.0));
        let g = p("gamma:2");
        assert_eq!(
            (g.image.data[0], g.image.data[1]),
            (100.0, 10.0),
            "ends kept"
        );
        let b = p("background0");
        assert!(b
            .image
            .data
            .iter()
            .zip(&b.labels.data)
            .all(|(&v, &l)| (l == 0) == (v == 0.0)));
        let z = p("zoom:0.5");
        assert_eq!((z.image.dims, z.labels.dims), ([1, 2, 2], [1, 2, 2]));
        let n = p("noise:0.1");
        let dev: f32 = n
            .image
            .data
            .iter()
            .zip(&sample().image.data)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / 16.0;
        assert!(dev > 1.0 && dev < 20.0, "{dev}");
        for bad in [
            "gamma",
            "gamma:-1",
            "zoom:0",
            "blur:2",
            "background0:1",
            "gain:x",
        ] {
            let e = Perturb::parse("--perturb", bad).unwrap_err().to_string();
            assert!(e.contains("--perturb") && e.contains(bad), "{e}");
        }
    }
}
