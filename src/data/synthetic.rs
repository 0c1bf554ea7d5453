//! Procedural, seeded segmentation data: the default dataset when no data
//! folder is given.
//!
//! * [`em_cells_2d`]: an electron-microscopy-like section: Voronoi cells
//!   (seeds on a jittered grid, boundaries bent by a smooth domain warp)
//!   separated by dark membranes 2–4 px wide, textured interiors with dark
//!   round organelles (which are *not* membrane, so thresholding alone fails),
//!   Gaussian blur (σ = 1 px) and Gaussian noise. Labels: 1 = membrane,
//!   0 = cell (the ISBI 2012 convention of this crate); instances: cell ids.
//! * [`nuclei_3d`]: non-overlapping ellipsoid nuclei (radii 3–8 voxels,
//!   random in-plane orientation) with textured, unevenly bright interiors,
//!   uneven background, blur and noise; a few small unlabelled bright specks.
//!   Labels: 1 = nucleus, 0 = background; instances: nucleus ids.
//!
//! Raw intensities are roughly in [0, 1]; [`synthetic_dataset`] z-scores them
//! like a loaded dataset. Everything is a pure function of the seed.

use super::dataset::{Dataset, DatasetOptions};
use super::{numel, reflect_index, Array3, LabelVolume, Volume};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// An image with its class labels and instance ids.
#[derive(Clone, Debug)]
pub struct SyntheticSample {
    pub image: Volume,
    pub labels: LabelVolume,
    pub instances: LabelVolume,
}

/// Which generator [`synthetic_dataset`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntheticKind {
    /// [`em_cells_2d`] (dims `[1, h, w]`).
    EmCells2d,
    /// [`nuclei_3d`].
    Nuclei3d,
}

/// A seeded RNG for item `index` of a run seeded with `seed` (its own stream).
pub fn rng_for(seed: u64, index: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(index);
    r
}

/// Standard normal sample (Box-Muller).
pub fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Smooth random field in about [0, 1]: random lattice values every `scale`
/// voxels, interpolated with smoothstep weights.
struct ValueNoise {
    vals: Vec<f32>,
    g: [usize; 3],
    scale: f32,
}

impl ValueNoise {
    fn new(rng: &mut impl Rng, dims: [usize; 3], scale: f32) -> Self {
        let g: [usize; 3] = std::array::from_fn(|a| (dims[a] as f32 / scale).ceil() as usize + 2);
        let vals = (0..g[0] * g[1] * g[2])
            .map(|_| rng.random::<f32>())
            .collect();
        ValueNoise { vals, g, scale }
    }
    fn at(&self, p: [f32; 3]) -> f32 {
        let mut i0 = [0usize; 3];
        let mut t = [0f32; 3];
        for a in 0..3 {
            let u = (p[a] / self.scale).max(0.0);
            let f = u.floor();
            i0[a] = (f as usize).min(self.g[a] - 2);
            let s = (u - i0[a] as f32).clamp(0.0, 1.0);
            t[a] = s * s * (3.0 - 2.0 * s);
        }
        let mut acc = 0.0;
        for c in 0..8 {
            let o = [(c >> 2) & 1, (c >> 1) & 1, c & 1];
            let mut wgt = 1.0;
            for a in 0..3 {
                wgt *= if o[a] == 1 { t[a] } else { 1.0 - t[a] };
            }
            let idx = ((i0[0] + o[0]) * self.g[1] + i0[1] + o[1]) * self.g[2] + i0[2] + o[2];
            acc += wgt * self.vals[idx];
        }
        acc
    }
}

/// Separable Gaussian blur with per-axis sigma (0 = skip that axis), reflect boundary.
pub fn gaussian_blur(img: &mut Volume, sigma: [f32; 3]) -> Result<()> {
    if img.data.len() != numel(img.dims) {
        return Err(Error::shape(
            "gaussian_blur",
            format!("{} values for dims {:?}", img.data.len(), img.dims),
        ));
    }
    blur(img, sigma);
    Ok(())
}

fn blur(img: &mut Volume, sigma: [f32; 3]) {
    let dims = img.dims;
    let strides = [dims[1] * dims[2], dims[2], 1];
    let mut line = Vec::new();
    for axis in 0..3 {
        let s = sigma[axis];
        let n = dims[axis];
        if s <= 0.0 || n < 2 {
            continue;
        }
        let r = (3.0 * s).ceil() as isize;
        let k: Vec<f32> = (-r..=r)
            .map(|i| (-(i * i) as f32 / (2.0 * s * s)).exp())
            .collect();
        let ks: f32 = k.iter().sum();
        let k: Vec<f32> = k.iter().map(|v| v / ks).collect();
        let st = strides[axis];
        let others: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
        for i1 in 0..dims[others[0]] {
            for i2 in 0..dims[others[1]] {
                let base = i1 * strides[others[0]] + i2 * strides[others[1]];
                line.clear();
                line.extend((0..n).map(|q| img.data[base + q * st]));
                for q in 0..n {
                    let mut acc = 0.0;
                    for (j, kv) in k.iter().enumerate() {
                        acc += kv * line[reflect_index(q as isize + j as isize - r, n)];
                    }
                    img.data[base + q * st] = acc;
                }
            }
        }
    }
}

/// An EM-like 2D section of `h` x `w` pixels (see the module docs).
pub fn em_cells_2d(seed: u64, h: usize, w: usize) -> SyntheticSample {
    let mut rng = rng_for(seed, 0);
    let dims = [1, h, w];
    let cell = 24.0f32; // grid step = mean cell diameter
    let gh = (h as f32 / cell).ceil() as isize + 2;
    let gw = (w as f32 / cell).ceil() as isize + 2;
    // one seed per grid cell (with one extra ring outside the image)
    let mut seeds = Vec::with_capacity((gh * gw) as usize);
    for gy in 0..gh {
        for gx in 0..gw {
            let y = ((gy - 1) as f32 + 0.15 + 0.7 * rng.random::<f32>()) * cell;
            let x = ((gx - 1) as f32 + 0.15 + 0.7 * rng.random::<f32>()) * cell;
            seeds.push((y, x));
        }
    }
    let n_seeds = seeds.len();
    let cell_bright: Vec<f32> = (0..n_seeds)
        .map(|_| 0.55 + 0.25 * rng.random::<f32>())
        .collect();
    let warp_y = ValueNoise::new(&mut rng, dims, 18.0);
    let warp_x = ValueNoise::new(&mut rng, dims, 18.0);
    let thick = ValueNoise::new(&mut rng, dims, 30.0);
    let texture = ValueNoise::new(&mut rng, dims, 3.0);
    let shade = ValueNoise::new(&mut rng, dims, 60.0);

    let mut img = Array3::filled(dims, 0.0f32);
    let mut labels = Array3::filled(dims, 0i32);
    let mut owner = vec![0usize; h * w];
    let mut bdist = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let p = [0.0, y as f32, x as f32];
            let py = y as f32 + 6.0 * (warp_y.at(p) - 0.5);
            let px = x as f32 + 6.0 * (warp_x.at(p) - 0.5);
            let (a, bd) = nearest_seed(&seeds, (gh, gw), cell, (py, px));
            let i = y * w + x;
            owner[i] = a;
            bdist[i] = bd;
            let half = 1.0 + thick.at(p); // half width 1..2 px: membranes 2-4 px
            let v;
            if bd < half {
                labels.data[i] = 1;
                v = 0.12 + 0.08 * (bd / half);
            } else {
                let tex = 0.12 * (texture.at(p) - 0.5);
                v = cell_bright[a] + tex;
            }
            img.data[i] = v * (0.85 + 0.3 * shade.at(p));
        }
    }
    add_organelles(&mut rng, &mut img, &labels, &owner, &bdist);
    blur(&mut img, [0.0, 1.0, 1.0]);
    for v in &mut img.data {
        *v += 0.05 * normal(&mut rng);
    }
    let inst = compact_instances(&labels, &owner, n_seeds);
    SyntheticSample {
        image: img,
        labels,
        instances: inst,
    }
}

/// The seed nearest to (`py`, `px`) among the 5x5 grid cells around it, and
/// the distance to the nearest Voronoi boundary (bisector) over those
/// neighbours. `grid` = (rows, columns) of the seed grid, one seed per cell of
/// edge `cell` with one extra ring outside the image.
fn nearest_seed(
    seeds: &[(f32, f32)],
    (gh, gw): (isize, isize),
    cell: f32,
    (py, px): (f32, f32),
) -> (usize, f32) {
    let gy = (py / cell).floor() as isize + 1;
    let gx = (px / cell).floor() as isize + 1;
    let mut cand = [(0usize, 0f32); 25];
    let mut nc = 0;
    for dy in -2..=2 {
        for dx in -2..=2 {
            let (cy, cx) = (gy + dy, gx + dx);
            if cy < 0 || cx < 0 || cy >= gh || cx >= gw {
                continue;
            }
            let s = (cy * gw + cx) as usize;
            let (sy, sx) = seeds[s];
            cand[nc] = (s, (py - sy).powi(2) + (px - sx).powi(2));
            nc += 1;
        }
    }
    let (a, da2) =
        cand[..nc]
            .iter()
            .copied()
            .fold((0, f32::INFINITY), |b, c| if c.1 < b.1 { c } else { b });
    let (ay, ax) = seeds[a];
    let mut bd = f32::INFINITY;
    for &(s, d2) in &cand[..nc] {
        if s == a {
            continue;
        }
        let (sy, sx) = seeds[s];
        let sep = ((sy - ay).powi(2) + (sx - ax).powi(2)).sqrt().max(1e-3);
        bd = bd.min((d2 - da2) / (2.0 * sep));
    }
    (a, bd)
}

/// Dark round organelles well inside cells (unlabelled: still class 0):
/// discs kept within their cell (`owner`) and away from its membrane (`bdist`).
fn add_organelles(
    rng: &mut impl Rng,
    img: &mut Array3<f32>,
    labels: &Array3<i32>,
    owner: &[usize],
    bdist: &[f32],
) {
    let (h, w) = (img.dims[1], img.dims[2]);
    let n_org = (h * w) / 180;
    for _ in 0..n_org {
        let cy = rng.random::<f32>() * h as f32;
        let cx = rng.random::<f32>() * w as f32;
        let r = 1.5 + 3.0 * rng.random::<f32>();
        let dark = 0.15 + 0.2 * rng.random::<f32>();
        let ci = (cy as usize).min(h - 1) * w + (cx as usize).min(w - 1);
        if bdist[ci] < r + 2.5 {
            continue;
        }
        let (y0, y1) = (
            (cy - r - 1.0).max(0.0) as usize,
            ((cy + r + 1.0) as usize).min(h - 1),
        );
        let (x0, x1) = (
            (cx - r - 1.0).max(0.0) as usize,
            ((cx + r + 1.0) as usize).min(w - 1),
        );
        for y in y0..=y1 {
            for x in x0..=x1 {
                let d = ((y as f32 - cy).powi(2) + (x as f32 - cx).powi(2)).sqrt();
                let i = y * w + x;
                if d < r && labels.data[i] == 0 && owner[i] == owner[ci] {
                    img.data[i] = dark;
                }
            }
        }
    }
}

/// Instances: cell pixels (class 0) by owner seed, ids compacted to 1..n in
/// scan order.
fn compact_instances(labels: &Array3<i32>, owner: &[usize], n_seeds: usize) -> Array3<i32> {
    let mut map = vec![0i32; n_seeds];
    let mut next = 0;
    let mut inst = Array3::filled(labels.dims, 0i32);
    for (i, &l) in labels.data.iter().enumerate() {
        if l == 0 {
            if map[owner[i]] == 0 {
                next += 1;
                map[owner[i]] = next;
            }
            inst.data[i] = map[owner[i]];
        }
    }
    inst
}

/// A fluorescence-like volume of `dims` (z, y, x) with ellipsoid nuclei.
pub fn nuclei_3d(seed: u64, dims: [usize; 3]) -> SyntheticSample {
    let mut rng = rng_for(seed, 0);
    let n = numel(dims);
    let [d, h, w] = dims;
    let mut img = Array3::filled(dims, 0.0f32);
    let mut labels = Array3::filled(dims, 0i32);
    let mut inst = Array3::filled(dims, 0i32);
    let bg = ValueNoise::new(&mut rng, dims, 24.0);
    let tex = ValueNoise::new(&mut rng, dims, 2.5);
    for (i, v) in img.data.iter_mut().enumerate() {
        let p = [(i / (h * w)) as f32, ((i / w) % h) as f32, (i % w) as f32];
        *v = 0.08 + 0.08 * bg.at(p);
    }
    // target about 12 % nucleus voxels
    let target = n as f32 * 0.12;
    let mut placed: Vec<([f32; 3], f32)> = Vec::new();
    let mut volume = 0.0;
    let mut id = 0;
    for _ in 0..400 {
        if volume >= target {
            break;
        }
        let rmax_z = (d as f32 / 2.0 - 0.5).max(0.5);
        let r = [
            (3.0 + 4.0 * rng.random::<f32>()).min(rmax_z),
            3.0 + 5.0 * rng.random::<f32>(),
            3.0 + 5.0 * rng.random::<f32>(),
        ];
        let c = [
            rng.random::<f32>() * d as f32,
            rng.random::<f32>() * h as f32,
            rng.random::<f32>() * w as f32,
        ];
        let rb = r[0].max(r[1]).max(r[2]);
        let clear = placed.iter().all(|(pc, pr)| {
            let dist =
                ((pc[0] - c[0]).powi(2) + (pc[1] - c[1]).powi(2) + (pc[2] - c[2]).powi(2)).sqrt();
            dist > pr + rb + 1.5
        });
        if !clear {
            continue;
        }
        placed.push((c, rb));
        id += 1;
        let theta = rng.random::<f32>() * std::f32::consts::PI;
        let (st, ct) = theta.sin_cos();
        let bright = 0.45 + 0.5 * rng.random::<f32>();
        let lo: [usize; 3] = std::array::from_fn(|a| (c[a] - rb - 1.0).max(0.0) as usize);
        let hi: [usize; 3] =
            std::array::from_fn(|a| ((c[a] + rb + 1.0).max(0.0) as usize).min(dims[a] - 1));
        for z in lo[0]..=hi[0] {
            for y in lo[1]..=hi[1] {
                for x in lo[2]..=hi[2] {
                    let (dz, dy, dx) = (z as f32 - c[0], y as f32 - c[1], x as f32 - c[2]);
                    let (u, v) = (ct * dy + st * dx, -st * dy + ct * dx);
                    let q = (dz / r[0]).powi(2) + (u / r[1]).powi(2) + (v / r[2]).powi(2);
                    if q <= 1.0 {
                        let i = (z * h + y) * w + x;
                        labels.data[i] = 1;
                        inst.data[i] = id;
                        volume += 1.0;
                        let t = tex.at([z as f32, y as f32, x as f32]);
                        img.data[i] = bright * (0.75 + 0.5 * t) * (1.0 - 0.25 * q);
                    }
                }
            }
        }
    }
    // small unlabelled bright specks (debris) in the background
    for _ in 0..(n / 6000).max(1) {
        let (z, y, x) = (
            rng.random_range(0..d),
            rng.random_range(0..h),
            rng.random_range(0..w),
        );
        let i = (z * h + y) * w + x;
        if labels.data[i] == 0 {
            img.data[i] += 0.6 + 0.4 * rng.random::<f32>();
        }
    }
    let zs = if d > 1 { 1.0 } else { 0.0 };
    blur(&mut img, [zs, 1.0, 1.0]);
    for v in &mut img.data {
        *v += 0.04 * normal(&mut rng);
    }
    SyntheticSample {
        image: img,
        labels,
        instances: inst,
    }
}

/// `n` synthetic samples of `dims` (for [`SyntheticKind::EmCells2d`] `dims[0]`
/// must be 1), sample `i` generated from `(seed, i)`, z-scored, as a
/// [`Dataset`] with 2 classes (class 1 = membrane / nucleus).
pub fn synthetic_dataset(
    kind: SyntheticKind,
    n: usize,
    dims: [usize; 3],
    seed: u64,
) -> Result<Dataset> {
    if n == 0 || dims.contains(&0) || (kind == SyntheticKind::EmCells2d && dims[0] != 1) {
        return Err(Error::shape(
            "synthetic_dataset",
            format!("{kind:?} x {n} of dims {dims:?}: needs n > 0, nonzero dims, z = 1 for 2D"),
        ));
    }
    let items = (0..n)
        .map(|i| {
            let s = seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i as u64);
            let smp = match kind {
                SyntheticKind::EmCells2d => em_cells_2d(s, dims[1], dims[2]),
                SyntheticKind::Nuclei3d => nuclei_3d(s, dims),
            };
            (format!("synthetic-{i:03}"), smp.image, smp.labels)
        })
        .collect();
    let opts = DatasetOptions {
        invert: Some(false),
        ..Default::default()
    };
    Dataset::from_arrays(items, &opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn em_is_deterministic_and_plausible() {
        let a = em_cells_2d(7, 96, 80);
        let b = em_cells_2d(7, 96, 80);
        assert_eq!(a.image, b.image);
        assert_eq!(a.labels, b.labels);
        let c = em_cells_2d(8, 96, 80);
        assert_ne!(a.image, c.image);
        let frac = a.labels.data.iter().filter(|&&l| l == 1).count() as f32 / a.labels.len() as f32;
        assert!(frac > 0.08 && frac < 0.35, "membrane fraction {frac}");
        let mean = |cls: i32| {
            let v: Vec<f32> = a
                .image
                .data
                .iter()
                .zip(&a.labels.data)
                .filter(|(_, &l)| l == cls)
                .map(|(&v, _)| v)
                .collect();
            v.iter().sum::<f32>() / v.len() as f32
        };
        assert!(
            mean(1) + 0.2 < mean(0),
            "membranes {} must be darker than cells {}",
            mean(1),
            mean(0)
        );
        let n_cells = *a.instances.data.iter().max().unwrap();
        assert!((8..60).contains(&n_cells), "{n_cells} cells");
        // instances cover exactly the cell class
        assert!(a
            .instances
            .data
            .iter()
            .zip(&a.labels.data)
            .all(|(&i, &l)| (i > 0) == (l == 0)));
    }

    #[test]
    fn nuclei_fraction_and_contrast() {
        let s = nuclei_3d(3, [20, 48, 40]);
        let frac = s.labels.data.iter().filter(|&&l| l == 1).count() as f32 / s.labels.len() as f32;
        assert!(frac > 0.04 && frac < 0.2, "nucleus fraction {frac}");
        let n = *s.instances.data.iter().max().unwrap();
        assert!(n >= 3, "{n} nuclei");
        assert_eq!(nuclei_3d(3, [20, 48, 40]).image, s.image);
    }

    #[test]
    fn blur_preserves_constant_and_mass() {
        let mut c = Array3::filled([3, 5, 6], 2.0f32);
        gaussian_blur(&mut c, [1.0, 1.0, 1.0]).unwrap();
        assert!(c.data.iter().all(|v| (v - 2.0).abs() < 1e-5));
    }

    #[test]
    fn dataset_builder() {
        let d = synthetic_dataset(SyntheticKind::EmCells2d, 2, [1, 40, 48], 1).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.n_classes, 2);
        assert_ne!(d.samples[0].image.data, d.samples[1].image.data);
        assert!(synthetic_dataset(SyntheticKind::EmCells2d, 1, [2, 40, 48], 1).is_err());
    }
}
