//! Spatial and intensity augmentation, 2D and 3D, applied while a patch is
//! cut from its image so that everything is one resampling step
//! (intensity transforms: [`super::augment_intensity`], after it).
//!
//! A [`SpatialTransform`] maps patch voxel `p` (in the *input* patch frame)
//! to the source position `centre + M·(p - p_c) + u(p)`, where `p_c` is the
//! patch centre, `M` a random flip / 90-degree rotation times a rotation by
//! any angle and a zoom (nnU-Net's ranges, [`AffineOptions`]) in the (y, x)
//! plane and `u` an elastic displacement field. The image is resampled with
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

pub use super::augment_intensity::{augment_intensity, GammaRangeOf, IntensityOptions};
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

/// Rotation by any angle and scaling in the (y, x) plane (nnU-Net: each
/// with probability 0.2, any angle in 2D, zoom 0.7-1.4). 3D stacks are
/// rotated and scaled in-plane only (they are usually anisotropic, as for
/// the elastic deformation).
#[derive(Clone, Debug, PartialEq)]
pub struct AffineOptions {
    /// Probability of a rotation.
    pub rotate_prob: f32,
    /// Largest rotation angle either way, in degrees (180: any angle).
    pub max_degrees: f32,
    /// Probability of a zoom.
    pub zoom_prob: f32,
    /// Zoom factor range (> 1: objects appear larger).
    pub zoom: (f32, f32),
}

impl Default for AffineOptions {
    fn default() -> Self {
        AffineOptions {
            rotate_prob: 0.2,
            max_degrees: 180.0,
            zoom_prob: 0.2,
            zoom: (0.7, 1.4),
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
    /// Rotation by any angle and zoom.
    pub affine: Option<AffineOptions>,
    pub elastic: Option<ElasticOptions>,
    pub intensity: Option<IntensityOptions>,
}

impl AugmentOptions {
    /// No augmentation: patches are plain crops.
    pub fn none() -> Self {
        AugmentOptions {
            flip: [false; 3],
            rot90: false,
            affine: None,
            elastic: None,
            intensity: None,
        }
    }
}

impl Default for AugmentOptions {
    /// Flips, rotations (90 degrees and any angle), zoom, elastic
    /// deformation (paper settings) and nnU-Net's intensity transforms.
    fn default() -> Self {
        AugmentOptions {
            flip: [true; 3],
            rot90: true,
            affine: Some(AffineOptions::default()),
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
    /// `source_offset[a] = Σ_b matrix[a][b] · patch_offset[b]`: a signed
    /// permutation (flips, 90-degree rotations) times a rotation by any
    /// angle and a zoom in (y, x).
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
        if let Some(a) = &opts.affine {
            let angle = if rng.random::<f32>() < a.rotate_prob {
                (rng.random::<f32>() * 2.0 - 1.0) * a.max_degrees.to_radians()
            } else {
                0.0
            };
            let zoom = if rng.random::<f32>() < a.zoom_prob {
                a.zoom.0 + (a.zoom.1 - a.zoom.0) * rng.random::<f32>()
            } else {
                1.0
            };
            t.rotate_zoom(angle, zoom);
        }
        if let Some(e) = &opts.elastic {
            if rng.random::<f32>() < e.prob {
                t.field = Some(DisplacementField::random(rng, dims, e));
            }
        }
        t
    }

    /// Rotate the patch by `angle` radians in (y, x) and zoom it by `zoom`
    /// (> 0; > 1 magnifies: a patch offset `r` reads the source at `r / zoom`),
    /// composed after the current matrix. `(0, 1)` leaves it unchanged.
    pub fn rotate_zoom(&mut self, angle: f32, zoom: f32) {
        if angle == 0.0 && zoom == 1.0 {
            return;
        }
        let (s, c) = angle.sin_cos();
        let k = 1.0 / zoom;
        // a = [[1, 0, 0], [0, c, -s], [0, s, c]] / zoom on (y, x)
        let a = [[1.0, 0.0, 0.0], [0.0, c * k, -s * k], [0.0, s * k, c * k]];
        let m = self.matrix;
        for (i, row) in self.matrix.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (0..3).map(|l| m[i][l] * a[l][j]).sum();
            }
        }
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
#[path = "augment_tests.rs"]
mod tests;
