//! The data side: file I/O, datasets, synthetic data, augmentation and patch
//! sampling, the U-Net border weight map, metrics and overlap-tile planning.
//!
//! Host arrays are owned [`Array3`]s in `(z, y, x)` order, C order (x
//! fastest); 2D images have `z = 1`. Images are single-channel `f32`
//! ([`Volume`]), labels are class ids or instance ids in `i32`
//! ([`LabelVolume`]); several channels (network outputs) live in a
//! [`ChannelVolume`].
//!
//! * [`io`]: PNG / TIFF / `.npy` reading and (atomic) writing.
//! * [`dataset`]: folders of image/label pairs, normalisation, splits.
//! * [`labels`]: the label convention, checked over the whole dataset.
//! * [`synthetic`]: seeded EM-like 2D cells and 3D nuclei.
//! * [`augment`], [`sampler`]: patches, flips, rotations, elastic deformation,
//!   intensity jitter, foreground oversampling, background prefetching.
//! * [`weightmap`]: connected components, exact Euclidean distance transform,
//!   the Ronneberger 2015 weight map.
//! * [`metrics`]: pixel error, ISBI 2012 foreground-restricted Rand error,
//!   Dice and IoU.
//! * [`tiling`]: overlap-tile inference planning, mirrored extraction,
//!   (Gaussian-blended) accumulation.

pub mod augment;
pub mod augment_intensity;
pub mod dataset;
pub mod instance_metrics;
pub mod instances;
pub mod io;
pub mod isbi_metrics;
pub mod labels;
pub mod metrics;
pub mod normalize;
pub mod objects;
pub mod perturb;
pub mod resize;
pub mod sampler;
pub mod synthetic;
pub mod tiling;
pub mod weightmap;
pub mod zarr;

use crate::error::{Error, Result};

/// A dense 3-D array in `(z, y, x)` order, x fastest. 2D images have `dims[0] == 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct Array3<T> {
    pub data: Vec<T>,
    pub dims: [usize; 3],
}

/// A single-channel image or volume.
pub type Volume = Array3<f32>;
/// Class ids or instance ids per voxel.
pub type LabelVolume = Array3<i32>;

/// Number of voxels of `dims`.
pub fn numel(dims: [usize; 3]) -> usize {
    dims[0] * dims[1] * dims[2]
}

impl<T: Clone> Array3<T> {
    /// An array of `dims` with every element `value`.
    pub fn filled(dims: [usize; 3], value: T) -> Self {
        Array3 {
            data: vec![value; numel(dims)],
            dims,
        }
    }
}

impl<T> Array3<T> {
    /// Wrap `data`, checking that its length is `z * y * x`.
    pub fn from_vec(dims: [usize; 3], data: Vec<T>) -> Result<Self> {
        if data.len() != numel(dims) {
            return Err(Error::shape(
                "Array3::from_vec",
                format!(
                    "{} elements for dims {:?} (needs {})",
                    data.len(),
                    dims,
                    numel(dims)
                ),
            ));
        }
        Ok(Array3 { data, dims })
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// `true` for a single-section image (`z == 1`).
    pub fn is_2d(&self) -> bool {
        self.dims[0] == 1
    }
    /// Flat index of `(z, y, x)` (no bounds check beyond the slice's own).
    #[inline]
    pub fn idx(&self, z: usize, y: usize, x: usize) -> usize {
        (z * self.dims[1] + y) * self.dims[2] + x
    }
    /// The element at `(z, y, x)`; panics when out of bounds, like slice indexing.
    #[inline]
    pub fn at(&self, z: usize, y: usize, x: usize) -> &T {
        &self.data[self.idx(z, y, x)]
    }
    /// Element-wise conversion.
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Array3<U> {
        Array3 {
            data: self.data.iter().map(f).collect(),
            dims: self.dims,
        }
    }
}

impl<T: Copy> Array3<T> {
    /// The box `origin .. origin + size`, which must lie inside the array.
    pub fn crop(&self, origin: [usize; 3], size: [usize; 3]) -> Result<Self> {
        for a in 0..3 {
            if origin[a] + size[a] > self.dims[a] {
                return Err(Error::shape(
                    "Array3::crop",
                    format!("box {:?} + {:?} exceeds dims {:?}", origin, size, self.dims),
                ));
            }
        }
        let mut data = Vec::with_capacity(numel(size));
        for z in 0..size[0] {
            for y in 0..size[1] {
                let s = self.idx(origin[0] + z, origin[1] + y, origin[2]);
                data.extend_from_slice(&self.data[s..s + size[2]]);
            }
        }
        Ok(Array3 { data, dims: size })
    }
    /// Section `z` as a 2D array (`dims[0] == 1`).
    pub fn section(&self, z: usize) -> Result<Self> {
        self.crop([z, 0, 0], [1, self.dims[1], self.dims[2]])
    }
    /// Stack equally sized arrays along z.
    pub fn stack(parts: &[Self]) -> Result<Self> {
        let first = parts
            .first()
            .ok_or_else(|| Error::shape("Array3::stack", "no arrays"))?;
        let (h, w) = (first.dims[1], first.dims[2]);
        let mut data = Vec::new();
        let mut z = 0;
        for p in parts {
            if p.dims[1] != h || p.dims[2] != w {
                return Err(Error::shape(
                    "Array3::stack",
                    format!("dims {:?} vs {:?}", p.dims, first.dims),
                ));
            }
            data.extend_from_slice(&p.data);
            z += p.dims[0];
        }
        Ok(Array3 {
            data,
            dims: [z, h, w],
        })
    }
}

/// Several channels over one grid: `data[c][z][y][x]` (channel-major), e.g.
/// per-class probabilities or logits of one image.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelVolume {
    pub data: Vec<f32>,
    pub channels: usize,
    pub dims: [usize; 3],
}

impl ChannelVolume {
    /// Zeros.
    pub fn zeros(channels: usize, dims: [usize; 3]) -> Self {
        ChannelVolume {
            data: vec![0.0; channels * numel(dims)],
            channels,
            dims,
        }
    }
    /// Channel `c` as a [`Volume`].
    pub fn channel(&self, c: usize) -> Result<Volume> {
        if c >= self.channels {
            return Err(Error::shape(
                "ChannelVolume::channel",
                format!("channel {c} of {}", self.channels),
            ));
        }
        let n = numel(self.dims);
        Ok(Array3 {
            data: self.data[c * n..(c + 1) * n].to_vec(),
            dims: self.dims,
        })
    }
    /// Index of the largest channel per voxel (first one on ties).
    pub fn argmax(&self) -> LabelVolume {
        let n = numel(self.dims);
        let mut best = vec![0i32; n];
        if self.channels == 0 {
            return Array3 {
                data: best,
                dims: self.dims,
            };
        }
        let mut val = self.data[..n].to_vec();
        for c in 1..self.channels {
            let ch = &self.data[c * n..(c + 1) * n];
            for i in 0..n {
                if ch[i] > val[i] {
                    val[i] = ch[i];
                    best[i] = c as i32;
                }
            }
        }
        Array3 {
            data: best,
            dims: self.dims,
        }
    }
}

/// Index of `i` in `0..n` after numpy-style `reflect` extension (the edge
/// voxel is not repeated: `… 2 1 | 0 1 2 … n-1 | n-2 …`), for any `i`
/// (repeated reflection, period `2(n-1)`). `n == 1` always gives 0.
#[inline]
pub fn reflect_index(i: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let n = n as isize;
    if i >= 0 && i < n {
        return i as usize;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - m }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        // np.pad(np.arange(3), 5, 'reflect') == [1 0 1 2 1 0 1 2 1 0 1 2 1]
        let got: Vec<usize> = (-5..8).map(|i| reflect_index(i, 3)).collect();
        assert_eq!(got, vec![1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]);
        assert_eq!(reflect_index(-7, 1), 0);
        assert_eq!(reflect_index(2, 2), 0);
        assert_eq!(reflect_index(-1, 2), 1);
    }

    #[test]
    fn crop_stack_section() {
        let a = Array3::from_vec([2, 2, 3], (0..12).collect::<Vec<i32>>()).unwrap();
        assert_eq!(
            a.crop([1, 0, 1], [1, 2, 2]).unwrap().data,
            vec![7, 8, 10, 11]
        );
        assert!(a.crop([1, 1, 1], [1, 2, 2]).is_err());
        let s = a.section(1).unwrap();
        let b = Array3::stack(&[a.section(0).unwrap(), s]).unwrap();
        assert_eq!(a, b);
        assert!(Array3::<i32>::from_vec([1, 2, 2], vec![0; 3]).is_err());
    }

    #[test]
    fn argmax_first_on_ties() {
        let cv = ChannelVolume {
            data: vec![1.0, 0.0, 2.0, 1.0, 0.5, 2.0],
            channels: 2,
            dims: [1, 1, 3],
        };
        assert_eq!(cv.argmax().data, vec![0, 1, 0]);
        assert_eq!(cv.channel(1).unwrap().data, vec![1.0, 0.5, 2.0]);
    }
}
