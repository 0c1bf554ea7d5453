//! Spatial and intensity augmentation, 2D and 3D, applied while a patch is
//! cut from its image so that everything is one resampling step.
//!
//! A [`SpatialTransform`] maps patch voxel `p` (in the *input* patch frame)
//! to the source position `centre + M·(p - p_c) + u(p)`, where `p_c` is the
//! patch centre, `M` a random flip / 90-degree rotation in the (y, x) plane
//! and `u` an elastic displacement field. The image is resampled with
//! (tri)linear interpolation, the labels with nearest neighbour and the
//! weight map with linear interpolation, all through the same map; positions
//! outside the source are mirrored (numpy `reflect`). The label patch of a
//! valid-convolution net is the centre of the input patch, offset by the
//! margin, so it sees exactly the same deformation.
//!
//! Elastic deformation follows the U-Net paper: displacement vectors on a
//! coarse grid of control points (3 x 3, or 3 x 3 x 3 in 3D) spanning the input
//! patch, drawn from a Gaussian with σ = 10 voxels, interpolated to every
//! voxel with cubic (Catmull-Rom, i.e. interpolating bicubic / tricubic)
//! weights. With `in_plane` (anisotropic stacks; always for 2D) the z
//! displacement is zero.

use super::synthetic::normal;
use super::{Array3, LabelVolume, Volume};
use crate::error::{Error, Result};
use rand::Rng;

/// Elastic deformation parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ElasticOptions {
    /// Control points per axis `(z, y, x)`, ends included (paper: 3).
    pub grid: [usize; 3],
    /// Standard deviation of the control-point displacements, in voxels (paper: 10).
    pub sigma: f32,
    /// No displacement along z.
    pub in_plane: bool,
    /// Probability that a patch is deformed.
    pub prob: f32,
}

impl Default for ElasticOptions {
    fn default() -> Self {
        ElasticOptions {
            grid: [3, 3, 3],
            sigma: 10.0,
            in_plane: false,
            prob: 1.0,
        }
    }
}

/// Intensity jitter: `x·s + t`, then (with `gamma_prob`) a gamma curve on the
/// patch rescaled to [0, 1] and back (as nnU-Net does for z-scored data).
#[derive(Clone, Debug, PartialEq)]
pub struct IntensityOptions {
    pub scale: (f32, f32),
    pub shift: (f32, f32),
    pub gamma: (f32, f32),
    pub gamma_prob: f32,
    /// Probability of the scale/shift step.
    pub prob: f32,
}

impl Default for IntensityOptions {
    fn default() -> Self {
        IntensityOptions {
            scale: (0.9, 1.1),
            shift: (-0.1, 0.1),
            gamma: (0.7, 1.5),
            gamma_prob: 0.3,
            prob: 1.0,
        }
    }
}

/// Which augmentations to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentOptions {
    /// Random flip per axis `(z, y, x)`, each with probability 1/2.
    pub flip: [bool; 3],
    /// Random 0/90/180/270-degree rotation in (y, x) (only when the patch's
    /// y and x sizes have equal parity, so voxels stay on the grid).
    pub rot90: bool,
    pub elastic: Option<ElasticOptions>,
    pub intensity: Option<IntensityOptions>,
}

impl AugmentOptions {
    /// No augmentation: patches are plain crops.
    pub fn none() -> Self {
        AugmentOptions {
            flip: [false; 3],
            rot90: false,
            elastic: None,
            intensity: None,
        }
    }
}

impl Default for AugmentOptions {
    /// Flips, rotations, elastic deformation (paper settings) and intensity jitter.
    fn default() -> Self {
        AugmentOptions {
            flip: [true; 3],
            rot90: true,
            elastic: Some(ElasticOptions::default()),
            intensity: Some(IntensityOptions::default()),
        }
    }
}

/// A displacement field over a patch, stored as control-point values plus
/// per-axis cubic interpolation weights.
#[derive(Clone, Debug)]
pub struct DisplacementField {
    /// Patch dims the field spans (the input patch).
    pub dims: [usize; 3],
    /// Control points per axis.
    pub grid: [usize; 3],
    /// Displacements `[z, y, x]` per control point, (gz, gy, gx) order.
    pub coarse: Vec<[f32; 3]>,
    /// `weights[a][i * grid[a] + g]`: weight of control point g at coordinate i of axis a.
    weights: [Vec<f32>; 3],
}

/// Catmull-Rom weights for control points at `0, step, 2·step, …` (`g` points,
/// ends clamped) at every coordinate `0..n`.
fn cubic_weights(n: usize, g: usize) -> Vec<f32> {
    let mut w = vec![0.0f32; n * g];
    if g == 1 || n == 1 {
        for i in 0..n {
            w[i * g] = 1.0;
        }
        return w;
    }
    let step = (n - 1) as f32 / (g - 1) as f32;
    for i in 0..n {
        let u = i as f32 / step;
        let k = (u.floor() as isize).clamp(0, g as isize - 2);
        let t = u - k as f32;
        let (t2, t3) = (t * t, t * t * t);
        let cw = [
            0.5 * (-t3 + 2.0 * t2 - t),
            0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
            0.5 * (-3.0 * t3 + 4.0 * t2 + t),
            0.5 * (t3 - t2),
        ];
        for (j, c) in cw.iter().enumerate() {
            let idx = (k + j as isize - 1).clamp(0, g as isize - 1) as usize;
            w[i * g + idx] += c;
        }
    }
    w
}

impl DisplacementField {
    /// Random field over `dims`: control displacements ~ N(0, sigma²) per
    /// component; the z component is 0 with `in_plane` or for 2D (`dims[0] == 1`).
    pub fn random(rng: &mut impl Rng, dims: [usize; 3], opts: &ElasticOptions) -> Self {
        let grid: [usize; 3] =
            std::array::from_fn(|a| if dims[a] == 1 { 1 } else { opts.grid[a].max(2) });
        let n = grid[0] * grid[1] * grid[2];
        let no_z = opts.in_plane || dims[0] == 1;
        let coarse = (0..n)
            .map(|_| {
                let z = normal(rng) * opts.sigma;
                let y = normal(rng) * opts.sigma;
                let x = normal(rng) * opts.sigma;
                [if no_z { 0.0 } else { z }, y, x]
            })
            .collect();
        Self::build(dims, grid, coarse)
    }

    /// A field with given control-point displacements (`grid[a] >= 1` points
    /// per axis, (gz, gy, gx) order, `coarse.len()` = product of `grid`).
    pub fn from_coarse(dims: [usize; 3], grid: [usize; 3], coarse: Vec<[f32; 3]>) -> Result<Self> {
        if grid.contains(&0) || dims.contains(&0) || coarse.len() != grid.iter().product::<usize>()
        {
            return Err(Error::shape(
                "DisplacementField::from_coarse",
                format!(
                    "{} displacements for grid {grid:?} over dims {dims:?}",
                    coarse.len()
                ),
            ));
        }
        Ok(Self::build(dims, grid, coarse))
    }

    fn build(dims: [usize; 3], grid: [usize; 3], coarse: Vec<[f32; 3]>) -> Self {
        let weights = std::array::from_fn(|a| cubic_weights(dims[a], grid[a]));
        DisplacementField {
            dims,
            grid,
            coarse,
            weights,
        }
    }

    /// The displacement at patch voxel `(z, y, x)` (slow path, for tests and tools).
    pub fn at(&self, z: usize, y: usize, x: usize) -> [f32; 3] {
        let g = self.grid;
        let mut out = [0.0f32; 3];
        for gz in 0..g[0] {
            let wz = self.weights[0][z * g[0] + gz];
            for gy in 0..g[1] {
                let wy = self.weights[1][y * g[1] + gy];
                for gx in 0..g[2] {
                    let wx = self.weights[2][x * g[2] + gx];
                    let d = self.coarse[(gz * g[1] + gy) * g[2] + gx];
                    for c in 0..3 {
                        out[c] += wz * wy * wx * d[c];
                    }
                }
            }
        }
        out
    }

    /// Fold the z and y weights of row `(z, y)` into per-x-control-point values.
    fn row(&self, z: usize, y: usize, r: &mut Vec<[f32; 3]>) {
        let g = self.grid;
        r.clear();
        r.resize(g[2], [0.0; 3]);
        for gz in 0..g[0] {
            let wz = self.weights[0][z * g[0] + gz];
            for gy in 0..g[1] {
                let w = wz * self.weights[1][y * g[1] + gy];
                if w == 0.0 {
                    continue;
                }
                for (gx, rv) in r.iter_mut().enumerate() {
                    let d = self.coarse[(gz * g[1] + gy) * g[2] + gx];
                    for c in 0..3 {
                        rv[c] += w * d[c];
                    }
                }
            }
        }
    }
}

/// A patch-to-source coordinate map (see the module docs).
#[derive(Clone, Debug)]
pub struct SpatialTransform {
    /// Source position of the patch centre.
    pub centre: [f32; 3],
    /// `source_offset[a] = Σ_b matrix[a][b] · patch_offset[b]` (a signed permutation).
    pub matrix: [[f32; 3]; 3],
    /// Input patch dims (the frame of `field` and of the centre).
    pub dims: [usize; 3],
    pub field: Option<DisplacementField>,
}

impl SpatialTransform {
    /// Identity crop of `dims` centred at `centre`.
    pub fn crop(centre: [f32; 3], dims: [usize; 3]) -> Self {
        let matrix = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        SpatialTransform {
            centre,
            matrix,
            dims,
            field: None,
        }
    }

    /// Draw flips, a rotation and a deformation per `opts` for a patch of `dims` at `centre`.
    pub fn random(
        rng: &mut impl Rng,
        centre: [f32; 3],
        dims: [usize; 3],
        opts: &AugmentOptions,
    ) -> Self {
        let mut t = Self::crop(centre, dims);
        if opts.rot90 && (dims[1] + dims[2]).is_multiple_of(2) {
            let k = rng.random_range(0..4u32);
            // rotate (y, x) offsets by k * 90 degrees: (y, x) -> (x, -y)
            for _ in 0..k {
                for row in t.matrix.iter_mut() {
                    let (my, mx) = (row[1], row[2]);
                    row[1] = mx;
                    row[2] = -my;
                }
            }
        }
        for (a, row) in t.matrix.iter_mut().enumerate() {
            if opts.flip[a] && dims[a] > 1 && rng.random::<bool>() {
                row.iter_mut().for_each(|v| *v = -*v);
            }
        }
        if let Some(e) = &opts.elastic {
            if rng.random::<f32>() < e.prob {
                t.field = Some(DisplacementField::random(rng, dims, e));
            }
        }
        t
    }

    /// Call `f(i, source_position)` for every voxel `i` of an output grid of
    /// `out_dims` placed at `offset` inside the input patch frame.
    fn for_each(
        &self,
        out_dims: [usize; 3],
        offset: [usize; 3],
        mut f: impl FnMut(usize, [f32; 3]),
    ) {
        let pc: [f32; 3] = std::array::from_fn(|a| (self.dims[a] as f32 - 1.0) * 0.5);
        let m = &self.matrix;
        let mut row = Vec::new();
        let mut i = 0;
        for z in 0..out_dims[0] {
            for y in 0..out_dims[1] {
                let (pz, py) = (z + offset[0], y + offset[1]);
                let (rz, ry) = (pz as f32 - pc[0], py as f32 - pc[1]);
                if let Some(fld) = &self.field {
                    fld.row(pz, py, &mut row);
                }
                for x in 0..out_dims[2] {
                    let px = x + offset[2];
                    let rx = px as f32 - pc[2];
                    let mut s = [0.0f32; 3];
                    for a in 0..3 {
                        s[a] = self.centre[a] + m[a][0] * rz + m[a][1] * ry + m[a][2] * rx;
                    }
                    if let Some(fld) = &self.field {
                        let g = fld.grid[2];
                        let w = &fld.weights[2][px * g..px * g + g];
                        for (wx, r) in w.iter().zip(&row) {
                            s[0] += wx * r[0];
                            s[1] += wx * r[1];
                            s[2] += wx * r[2];
                        }
                    }
                    f(i, s);
                    i += 1;
                }
            }
        }
    }

    fn check<T>(
        &self,
        op: &'static str,
        src: &Array3<T>,
        out_dims: [usize; 3],
        offset: [usize; 3],
        out_len: usize,
    ) -> Result<()> {
        let fits = (0..3).all(|a| offset[a] + out_dims[a] <= self.dims[a]);
        if src.data.is_empty()
            || src.data.len() != super::numel(src.dims)
            || !fits
            || out_len != super::numel(out_dims)
        {
            return Err(Error::shape(
                op,
                format!(
                    "source {:?} ({} values), output {out_dims:?} at {offset:?} ({out_len} values) in a patch of {:?}",
                    src.dims,
                    src.data.len(),
                    self.dims
                ),
            ));
        }
        Ok(())
    }

    /// Resample `src` (linear, mirrored) on a grid of `out_dims` placed at
    /// `offset` inside the patch frame (`offset + out_dims <= dims`) into
    /// `out` (length `out_dims` product).
    pub fn warp_linear(
        &self,
        src: &Volume,
        out_dims: [usize; 3],
        offset: [usize; 3],
        out: &mut [f32],
    ) -> Result<()> {
        self.check(
            "SpatialTransform::warp_linear",
            src,
            out_dims,
            offset,
            out.len(),
        )?;
        self.warp_linear_unchecked(src, out_dims, offset, out);
        Ok(())
    }

    pub(crate) fn warp_linear_unchecked(
        &self,
        src: &Volume,
        out_dims: [usize; 3],
        offset: [usize; 3],
        out: &mut [f32],
    ) {
        self.for_each(out_dims, offset, |i, s| out[i] = sample_linear(src, s));
    }

    /// Resample labels (nearest neighbour, mirrored); see [`Self::warp_linear`].
    pub fn warp_nearest(
        &self,
        src: &LabelVolume,
        out_dims: [usize; 3],
        offset: [usize; 3],
        out: &mut [i32],
    ) -> Result<()> {
        self.check(
            "SpatialTransform::warp_nearest",
            src,
            out_dims,
            offset,
            out.len(),
        )?;
        self.warp_nearest_unchecked(src, out_dims, offset, out);
        Ok(())
    }

    pub(crate) fn warp_nearest_unchecked(
        &self,
        src: &LabelVolume,
        out_dims: [usize; 3],
        offset: [usize; 3],
        out: &mut [i32],
    ) {
        let d = src.dims;
        self.for_each(out_dims, offset, |i, s| {
            let z = super::reflect_index(floor_i(s[0] + 0.5), d[0]);
            let y = super::reflect_index(floor_i(s[1] + 0.5), d[1]);
            let x = super::reflect_index(floor_i(s[2] + 0.5), d[2]);
            out[i] = src.data[(z * d[1] + y) * d[2] + x];
        });
    }
}

/// `floor(v)` as an integer without a libm call (`f32::floor` is not inlined
/// on baseline x86-64); saturates for huge values, 0 for NaN.
#[inline(always)]
fn floor_i(v: f32) -> isize {
    let i = v as isize;
    i - ((i as f32) > v) as isize
}

/// (Tri)linear sample of `src` at continuous position `s` with mirrored borders.
#[inline]
pub fn sample_linear(src: &Volume, s: [f32; 3]) -> f32 {
    let d = src.dims;
    let (y0, x0) = (floor_i(s[1]), floor_i(s[2]));
    let (fy, fx) = (s[1] - y0 as f32, s[2] - x0 as f32);
    let inside = |i: isize, n: usize| i >= 0 && i + 1 < n as isize;
    let (ya, yb, xa, xb) = if inside(y0, d[1]) && inside(x0, d[2]) {
        (y0 as usize, y0 as usize + 1, x0 as usize, x0 as usize + 1)
    } else {
        (
            super::reflect_index(y0, d[1]),
            super::reflect_index(y0 + 1, d[1]),
            super::reflect_index(x0, d[2]),
            super::reflect_index(x0 + 1, d[2]),
        )
    };
    let plane = |z: usize| -> f32 {
        let base = z * d[1];
        let r0 = (base + ya) * d[2];
        let r1 = (base + yb) * d[2];
        let a = src.data[r0 + xa] + fx * (src.data[r0 + xb] - src.data[r0 + xa]);
        let b = src.data[r1 + xa] + fx * (src.data[r1 + xb] - src.data[r1 + xa]);
        a + fy * (b - a)
    };
    if d[0] == 1 {
        return plane(0);
    }
    let z0 = floor_i(s[0]);
    let fz = s[0] - z0 as f32;
    let za = super::reflect_index(z0, d[0]);
    if fz == 0.0 {
        return plane(za);
    }
    let zb = super::reflect_index(z0 + 1, d[0]);
    let a = plane(za);
    a + fz * (plane(zb) - a)
}

/// Apply intensity jitter to a patch in place.
pub fn jitter_intensity(rng: &mut impl Rng, patch: &mut [f32], opts: &IntensityOptions) {
    if rng.random::<f32>() < opts.prob {
        let s = opts.scale.0 + (opts.scale.1 - opts.scale.0) * rng.random::<f32>();
        let t = opts.shift.0 + (opts.shift.1 - opts.shift.0) * rng.random::<f32>();
        for v in patch.iter_mut() {
            *v = *v * s + t;
        }
    }
    if rng.random::<f32>() < opts.gamma_prob {
        let g = opts.gamma.0 + (opts.gamma.1 - opts.gamma.0) * rng.random::<f32>();
        let (lo, hi) = patch
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let r = hi - lo;
        if r > 1e-12 {
            for v in patch.iter_mut() {
                *v = ((*v - lo) / r).max(0.0).powf(g) * r + lo;
            }
        }
    }
}

/// A plain crop of `arr` with mirrored borders (no augmentation): the box
/// starting at `origin` (may be negative or beyond the array) of `size`.
pub fn crop_reflect<T: Copy>(
    arr: &Array3<T>,
    origin: [isize; 3],
    size: [usize; 3],
) -> Result<Array3<T>> {
    let d = arr.dims;
    if arr.data.is_empty() || arr.data.len() != super::numel(d) {
        return Err(Error::shape(
            "crop_reflect",
            format!("source {:?} with {} values", d, arr.data.len()),
        ));
    }
    let mut data = Vec::with_capacity(size[0] * size[1] * size[2]);
    let xs: Vec<usize> = (0..size[2])
        .map(|x| super::reflect_index(origin[2] + x as isize, d[2]))
        .collect();
    for z in 0..size[0] {
        let sz = super::reflect_index(origin[0] + z as isize, d[0]);
        for y in 0..size[1] {
            let sy = super::reflect_index(origin[1] + y as isize, d[1]);
            let row = (sz * d[1] + sy) * d[2];
            data.extend(xs.iter().map(|&x| arr.data[row + x]));
        }
    }
    Ok(Array3 { data, dims: size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::rng_for;

    fn ramp(dims: [usize; 3]) -> Volume {
        let n = dims[0] * dims[1] * dims[2];
        Array3::from_vec(dims, (0..n).map(|i| i as f32).collect()).unwrap()
    }

    #[test]
    fn cubic_weights_interpolate_and_sum_to_one() {
        let w = cubic_weights(11, 3);
        for i in 0..11 {
            let s: f32 = w[i * 3..i * 3 + 3].iter().sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
        // control points at 0, 5, 10 are hit exactly
        assert_eq!(&w[0..3], &[1.0, 0.0, 0.0]);
        assert_eq!(&w[15..18], &[0.0, 1.0, 0.0]);
        assert_eq!(&w[30..33], &[0.0, 0.0, 1.0]);
    }

    #[test]
    fn field_reproduces_control_points_and_constants() {
        let grid = [1, 3, 3];
        let coarse: Vec<[f32; 3]> = (0..9).map(|i| [0.0, i as f32, -(i as f32)]).collect();
        let f = DisplacementField::from_coarse([1, 9, 5], grid, coarse).unwrap();
        assert_eq!(f.at(0, 4, 2), [0.0, 4.0, -4.0]);
        assert_eq!(f.at(0, 8, 4), [0.0, 8.0, -8.0]);
        let c = DisplacementField::from_coarse([4, 7, 6], [3, 3, 3], vec![[1.5, -2.0, 0.25]; 27])
            .unwrap();
        assert!(DisplacementField::from_coarse([4, 7, 6], [3, 3, 3], vec![[0.0; 3]; 26]).is_err());
        let v = c.at(2, 3, 5);
        assert!(
            (v[0] - 1.5).abs() < 1e-6 && (v[1] + 2.0).abs() < 1e-6 && (v[2] - 0.25).abs() < 1e-6
        );
    }

    #[test]
    fn identity_crop_is_exact() {
        let src = ramp([3, 7, 9]);
        let t = SpatialTransform::crop([1.0, 3.0, 4.0], [3, 7, 9]);
        let mut out = vec![0.0; src.len()];
        t.warp_linear(&src, [3, 7, 9], [0; 3], &mut out).unwrap();
        assert_eq!(out, src.data);
        // offset window and mirrored border vs crop_reflect
        let t = SpatialTransform::crop([0.5, 1.5, 0.0], [2, 6, 5]);
        let mut out = vec![0.0; 2 * 6 * 5];
        t.warp_linear(&src, [2, 6, 5], [0; 3], &mut out).unwrap();
        let want = crop_reflect(&src, [0, -1, -2], [2, 6, 5]).unwrap();
        assert!(
            t.warp_linear(&src, [2, 6, 5], [0, 1, 0], &mut out).is_err(),
            "window past the patch"
        );
        assert!(
            t.warp_linear(&src, [2, 6, 4], [0; 3], &mut out).is_err(),
            "output length"
        );
        assert_eq!(out, want.data);
    }

    #[test]
    fn rotation_and_flip_are_permutations() {
        let src = ramp([1, 6, 6]);
        let opts = AugmentOptions {
            flip: [true; 3],
            rot90: true,
            elastic: None,
            intensity: None,
        };
        for seed in 0..8 {
            let mut rng = rng_for(seed, 0);
            let t = SpatialTransform::random(&mut rng, [0.0, 2.5, 2.5], [1, 6, 6], &opts);
            let mut out = vec![0.0; 36];
            t.warp_linear(&src, [1, 6, 6], [0; 3], &mut out).unwrap();
            let mut sorted = out.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            assert_eq!(sorted, src.data, "seed {seed}");
            let mut lab = vec![0; 36];
            t.warp_nearest(&src.map(|&v| v as i32), [1, 6, 6], [0; 3], &mut lab)
                .unwrap();
            assert_eq!(lab.iter().map(|&v| v as f32).collect::<Vec<_>>(), out);
        }
    }

    #[test]
    fn labels_follow_image_under_deformation() {
        // image = 10 * labels: nearest-sampled labels must agree with the
        // linearly sampled image wherever the image is not between classes.
        let mut lab = Array3::filled([1, 40, 40], 0i32);
        for y in 0..40 {
            for x in 0..40 {
                if (x / 8 + y / 8) % 2 == 0 {
                    lab.data[y * 40 + x] = 1;
                }
            }
        }
        let img = lab.map(|&v| v as f32 * 10.0);
        let opts = AugmentOptions {
            elastic: Some(ElasticOptions::default()),
            ..AugmentOptions::none()
        };
        let mut rng = rng_for(5, 1);
        let t = SpatialTransform::random(&mut rng, [0.0, 19.5, 19.5], [1, 40, 40], &opts);
        assert!(t.field.is_some());
        let (mut oi, mut ol) = (vec![0.0; 30 * 30], vec![0; 30 * 30]);
        let mut full = vec![0.0; 1600];
        t.warp_linear(&img, [1, 40, 40], [0; 3], &mut full).unwrap();
        t.warp_nearest(&lab, [1, 30, 30], [0, 5, 5], &mut ol)
            .unwrap();
        t.warp_linear(&img, [1, 30, 30], [0, 5, 5], &mut oi)
            .unwrap();
        let mut moved = false;
        for y in 0..30 {
            for x in 0..30 {
                let i = y * 30 + x;
                assert_eq!(
                    oi[i],
                    full[(y + 5) * 40 + x + 5],
                    "offset window must match the full patch"
                );
                if oi[i] < 0.1 || oi[i] > 9.9 {
                    assert_eq!(ol[i], (oi[i] > 5.0) as i32);
                }
                moved |= ol[i] != lab.data[(y + 5) * 40 + x + 5];
            }
        }
        assert!(moved, "the deformation should move something");
    }

    #[test]
    fn trilinear_is_exact_on_linear_functions_and_mirrors() {
        let f = |z: f32, y: f32, x: f32| 3.0 * z + 2.0 * y + x;
        let d = [4, 5, 6];
        let src = ramp(d).map(|&i| {
            let i = i as usize;
            f((i / 30) as f32, ((i / 6) % 5) as f32, (i % 6) as f32)
        });
        for p in [[0.5, 1.25, 2.75], [2.9, 3.99, 0.01], [1.0, 0.5, 4.5]] {
            assert!(
                (sample_linear(&src, p) - f(p[0], p[1], p[2])).abs() < 1e-4,
                "{p:?}"
            );
        }
        // mirrored: position -0.5 along z reads like +0.5
        let a = sample_linear(&src, [-0.5, 1.0, 2.0]);
        assert!((a - f(0.5, 1.0, 2.0)).abs() < 1e-4);
        // past the end (z = 3.5 of 0..=3) reads like 2.5
        let b = sample_linear(&src, [3.5, 1.0, 2.0]);
        assert!((b - f(2.5, 1.0, 2.0)).abs() < 1e-4);
    }

    #[test]
    fn elastic_3d_moves_z_unless_in_plane() {
        let dims = [9, 11, 10];
        let mut rng = rng_for(3, 3);
        let full = DisplacementField::random(&mut rng, dims, &ElasticOptions::default());
        assert!(
            full.coarse.iter().any(|d| d[0].abs() > 0.5),
            "z displacements drawn"
        );
        assert_eq!(full.coarse.len(), 27);
        let plane = DisplacementField::random(
            &mut rng,
            dims,
            &ElasticOptions {
                in_plane: true,
                ..Default::default()
            },
        );
        assert!(
            plane.coarse.iter().all(|d| d[0] == 0.0) && plane.coarse.iter().any(|d| d[1] != 0.0)
        );
        // a constant z shift of 1.5 applied to a z ramp: every voxel reads z + 1.5
        // (mirrored past the last section)
        let src = ramp(dims).map(|&i| (i as usize / 110) as f32);
        let shift =
            DisplacementField::from_coarse(dims, [3, 3, 3], vec![[1.5, 0.0, 0.0]; 27]).unwrap();
        let t = SpatialTransform {
            field: Some(shift),
            ..SpatialTransform::crop([4.0, 5.0, 4.5], dims)
        };
        let mut out = vec![0.0; 990];
        t.warp_linear(&src, dims, [0; 3], &mut out).unwrap();
        for z in 0..9 {
            let zs = z as f32 + 1.5;
            let want = if zs <= 8.0 { zs } else { 16.0 - zs };
            assert!(
                (out[z * 110 + 37] - want).abs() < 1e-4,
                "z {z}: {} vs {want}",
                out[z * 110 + 37]
            );
        }
    }

    #[test]
    fn intensity_jitter_ranges() {
        let opts = IntensityOptions {
            gamma_prob: 0.0,
            ..Default::default()
        };
        let mut rng = rng_for(1, 2);
        let mut p = vec![1.0f32; 10];
        jitter_intensity(&mut rng, &mut p, &opts);
        assert!(p.iter().all(|&v| (0.8..=1.2).contains(&v) && v == p[0]));
        let opts = IntensityOptions {
            prob: 0.0,
            gamma_prob: 1.0,
            ..Default::default()
        };
        let mut p = vec![-1.0, 0.0, 3.0];
        jitter_intensity(&mut rng, &mut p, &opts);
        assert_eq!((p[0], p[2]), (-1.0, 3.0), "gamma keeps the range");
        assert!(p[1] > -1.0 && p[1] < 3.0);
    }
}
