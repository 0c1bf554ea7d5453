//! The size of the objects a model was trained on, so that `wunet predict
//! --diameter D` can resize new images to it (Cellpose's `diameter`).
//!
//! An object's diameter is that of the disc with the area of its largest
//! (y, x) section, `2 sqrt(area / pi)`, in pixels: the axes `--scale`
//! resizes. The model's figure is the median over the training objects.
//!
//! ```
//! use wunet::data::objects::median_diameter;
//! use wunet::data::Array3;
//! // one 10x10 square: the disc of area 100 has diameter 11.28
//! let mut ids = Array3::filled([1, 20, 20], 0i32);
//! for y in 5..15 {
//!     for x in 5..15 {
//!         let i = ids.idx(0, y, x);
//!         ids.data[i] = 1;
//!     }
//! }
//! let d = median_diameter([&ids], true).unwrap();
//! assert!((d.diameter - 11.28).abs() < 0.01 && d.objects == 1);
//!
//! // objects 8 px across in a new image: the factor that brings them to 11.28
//! let f = wunet::data::objects::scale_for_diameter(d.diameter, 8.0).unwrap();
//! assert!((f - 1.41).abs() < 0.01);
//! ```

use super::weightmap::instances_of_class;
use super::{Array3, LabelVolume};
use std::borrow::Borrow;
use std::collections::HashMap;

/// The (y, x) resize factors prediction accepts (`--scale`, and the factor
/// `--diameter` works out), inclusive.
pub const SCALE_RANGE: [f32; 2] = [0.05, 20.0];

/// Why [`scale_for_diameter`] has no factor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DiameterError {
    /// The model's training diameter is unknown (0: a checkpoint written
    /// before it was recorded, or training labels with no object).
    Unknown,
    /// The given diameter is not a positive finite number.
    NotPositive,
    /// The factor is outside [`SCALE_RANGE`].
    OutOfRange(f32),
}

/// The (y, x) resize factor that brings objects `d` pixels across to the
/// size of a model's training objects, `trained` pixels across
/// (`InferMeta::object_diameter`): `trained / d`, as Cellpose's diameter.
pub fn scale_for_diameter(trained: f32, d: f32) -> Result<f32, DiameterError> {
    if trained.is_nan() || trained <= 0.0 {
        return Err(DiameterError::Unknown);
    }
    if !d.is_finite() || d <= 0.0 {
        return Err(DiameterError::NotPositive);
    }
    let f = trained / d;
    if (SCALE_RANGE[0]..=SCALE_RANGE[1]).contains(&f) {
        Ok(f)
    } else {
        Err(DiameterError::OutOfRange(f))
    }
}

/// The median object diameter of a set of label volumes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Diameter {
    /// Median over the objects, pixels in (y, x).
    pub diameter: f32,
    /// How many objects it is the median of.
    pub objects: usize,
}

/// The median diameter of the objects in `ids` (0 = background, other
/// values = objects); `None` with no object. With `sections` each z section
/// holds its own objects (a 2D model's images: an id in two sections is two
/// objects); else an id is one object through z, measured at its largest
/// section. Each volume is read once, in turn (an iterator that makes
/// them, e.g. [`class_objects`] per sample, holds one at a time).
pub fn median_diameter(
    ids: impl IntoIterator<Item = impl Borrow<LabelVolume>>,
    sections: bool,
) -> Option<Diameter> {
    let mut diameters = Vec::new();
    for v in ids {
        diameters.extend(
            largest_sections(v.borrow(), sections)
                .into_values()
                .map(disc_diameter),
        );
    }
    if diameters.is_empty() {
        return None;
    }
    diameters.sort_unstable_by(f64::total_cmp);
    Some(Diameter {
        diameter: diameters[diameters.len() / 2] as f32,
        objects: diameters.len(),
    })
}

/// The objects of class `class` in `labels`: face-connected components,
/// each z section on its own with `sections` (ids stay unique over the
/// volume).
pub fn class_objects(labels: &LabelVolume, class: i32, sections: bool) -> LabelVolume {
    let [d, h, w] = labels.dims;
    if !sections || d == 1 {
        return instances_of_class(labels, class, false);
    }
    let plane = h * w;
    let mut data = Vec::with_capacity(labels.data.len());
    let mut offset = 0;
    for z in 0..d {
        let section = Array3 {
            dims: [1, h, w],
            data: labels.data[z * plane..(z + 1) * plane].to_vec(),
        };
        let ids = instances_of_class(&section, class, false);
        data.extend(ids.data.iter().map(|&i| if i > 0 { i + offset } else { 0 }));
        offset += ids.data.iter().copied().max().unwrap_or(0);
    }
    Array3 {
        dims: labels.dims,
        data,
    }
}

/// Each object's largest (y, x) section, in pixels; keyed by (section, id)
/// with `sections`, else by (0, id).
fn largest_sections(v: &LabelVolume, sections: bool) -> HashMap<(usize, i32), u64> {
    let [d, h, w] = v.dims;
    let plane = h * w;
    let mut largest = HashMap::new();
    for z in 0..d {
        let mut area = HashMap::<i32, u64>::new();
        for &id in v.data[z * plane..(z + 1) * plane]
            .iter()
            .filter(|&&id| id > 0)
        {
            *area.entry(id).or_default() += 1;
        }
        for (id, a) in area {
            let key = (if sections { z } else { 0 }, id);
            let e = largest.entry(key).or_default();
            *e = a.max(*e);
        }
    }
    largest
}

/// The diameter of the disc of `area` pixels.
fn disc_diameter(area: u64) -> f64 {
    2.0 * (area as f64 / std::f64::consts::PI).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Discs / balls of the given radii, spaced apart, as ids `1..`.
    fn balls(dims: [usize; 3], radii: &[f32]) -> LabelVolume {
        let mut v = Array3::filled(dims, 0i32);
        let [d, h, w] = dims;
        for (k, &r) in radii.iter().enumerate() {
            let (cz, cy, cx) = (d as f32 / 2.0, h as f32 / 2.0, 12.0 + 24.0 * k as f32);
            for z in 0..d {
                for y in 0..h {
                    for x in 0..w {
                        let q = (z as f32 + 0.5 - cz).powi(2)
                            + (y as f32 + 0.5 - cy).powi(2)
                            + (x as f32 + 0.5 - cx).powi(2);
                        if q <= r * r {
                            let i = v.idx(z, y, x);
                            v.data[i] = k as i32 + 1;
                        }
                    }
                }
            }
        }
        v
    }

    #[test]
    fn discs_give_their_diameter_and_the_median_is_the_middle_one() {
        let v = balls([1, 24, 72], &[4.0, 6.0, 9.0]);
        let d = median_diameter([&v], true).unwrap();
        assert_eq!(d.objects, 3);
        assert!((d.diameter - 12.0).abs() < 0.3, "{d:?}");
        assert_eq!(median_diameter([&Array3::filled([1, 5, 5], 0)], true), None);
    }

    #[test]
    fn a_ball_is_measured_at_its_largest_section_unless_sections_are_images() {
        let v = balls([15, 24, 24], &[7.0]);
        let whole = median_diameter([&v], false).unwrap();
        assert_eq!(whole.objects, 1);
        assert!((whole.diameter - 14.0).abs() < 0.4, "{whole:?}");
        // as a 2D model's stack: each of the 13 sections the ball crosses
        // (its poles fall between pixel centres) a disc, the median smaller
        let per = median_diameter([&v], true).unwrap();
        assert_eq!(per.objects, 13);
        assert!(
            per.diameter < whole.diameter && per.diameter > 10.0,
            "{per:?}"
        );
    }

    #[test]
    fn the_factor_is_trained_over_given_within_the_range() {
        assert_eq!(scale_for_diameter(30.0, 15.0), Ok(2.0));
        assert_eq!(scale_for_diameter(0.0, 15.0), Err(DiameterError::Unknown));
        assert_eq!(
            scale_for_diameter(f32::NAN, 15.0),
            Err(DiameterError::Unknown)
        );
        for d in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert_eq!(scale_for_diameter(30.0, d), Err(DiameterError::NotPositive));
        }
        assert_eq!(
            scale_for_diameter(30.0, 1.0),
            Err(DiameterError::OutOfRange(30.0))
        );
        assert_eq!(scale_for_diameter(1.0, 20.0), Ok(0.05));
    }

    #[test]
    fn class_objects_split_sections_and_keep_ids_unique() {
        // a column through 3 sections: one object in 3D, three in sections
        let mut labels = Array3::filled([3, 4, 4], 0i32);
        for z in 0..3 {
            let i = labels.idx(z, 1, 1);
            labels.data[i] = 1;
        }
        let i = labels.idx(1, 3, 3);
        labels.data[i] = 1;
        let count = |v: &LabelVolume| {
            let mut ids: Vec<i32> = v.data.iter().copied().filter(|&i| i > 0).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        };
        assert_eq!(count(&class_objects(&labels, 1, false)), 2);
        assert_eq!(count(&class_objects(&labels, 1, true)), 4);
        assert_eq!(count(&class_objects(&labels, 0, false)), 1);
    }
}
