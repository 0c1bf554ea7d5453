//! The U-Net border weight map (Ronneberger, Fischer & Brox 2015, eq. 2),
//! connected components and the exact Euclidean distance transform.
//!
//! `w(x) = w_c(x) + w0 · exp(-(d1(x) + d2(x))² / (2σ²))`, where `d1`, `d2`
//! are the distances to the nearest and second-nearest instance (cell),
//! `w0 = 10`, `σ = 5` px. The border term is added only on voxels that belong
//! to no instance (instance id 0: the membrane / background between cells),
//! as in the paper, where it makes the network learn the thin separations
//! between touching cells.
//!
//! `w_c` balances class frequencies per image: `w_c(c) = N / (K · n_c)` with
//! `N` voxels, `n_c` voxels of class `c` and `K` classes present in the image
//! (sklearn's "balanced" weights), so that `w_c` averages exactly 1 over the
//! image and the weighted loss keeps the scale of the unweighted one. With
//! [`WeightMapOptions::balance`] off, `w_c = 1`.
//!
//! Distances: per instance, an exact Euclidean distance transform
//! (Felzenszwalb & Huttenlocher 2012, separable lower envelope of parabolas,
//! with voxel spacing for anisotropic data) restricted to the instance's
//! bounding box grown by the cutoff `T = σ·sqrt(2·ln(10⁶))` (26.3 px for
//! σ = 5): when `d1 + d2 > T` the border term is below `w0 · 10⁻⁶`, and
//! `d1 + d2 ≤ T` needs both instances within `T`, so instances farther than
//! `T` never matter. Beyond the cutoff the term is set to exactly 0.

use super::{numel, Array3, LabelVolume, Volume};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Parameters of [`unet_weight_map`].
#[derive(Clone, Debug, PartialEq)]
pub struct WeightMapOptions {
    /// Border weight amplitude `w0` (paper: 10).
    pub w0: f32,
    /// Border width `σ`, in the units of `spacing` (paper: 5 px).
    pub sigma: f32,
    /// Class-balancing term `w_c` (see the module docs); off: `w_c = 1`.
    pub balance: bool,
    /// Voxel spacing `(z, y, x)`; distances are measured in these units.
    pub spacing: [f32; 3],
}

impl Default for WeightMapOptions {
    fn default() -> Self {
        WeightMapOptions {
            w0: 10.0,
            sigma: 5.0,
            balance: true,
            spacing: [1.0; 3],
        }
    }
}

impl WeightMapOptions {
    /// The distance `T` beyond which `d1 + d2` makes the border term < `w0 · 1e-6`.
    pub fn cutoff(&self) -> f32 {
        self.sigma * (2.0 * (1e6f32).ln()).sqrt()
    }
}

/// Connected components of the voxels whose label equals `class`: ids
/// `1..=n` in scan order (z, y, x), 0 elsewhere. Face connectivity (4 in 2D,
/// 6 in 3D) or, with `full`, also edges and corners (8 / 26).
pub fn instances_of_class(labels: &LabelVolume, class: i32, full: bool) -> LabelVolume {
    let mask: Vec<bool> = labels.data.iter().map(|&l| l == class).collect();
    components(&mask, labels.dims, full).0
}

/// Connected components of `mask` (dims `z, y, x`); returns the ids and their count.
pub fn connected_components(
    mask: &[bool],
    dims: [usize; 3],
    full: bool,
) -> Result<(LabelVolume, usize)> {
    if mask.len() != numel(dims) {
        return Err(Error::shape(
            "connected_components",
            format!("{} voxels for dims {dims:?}", mask.len()),
        ));
    }
    Ok(components(mask, dims, full))
}

fn components(mask: &[bool], dims: [usize; 3], full: bool) -> (LabelVolume, usize) {
    let [d, h, w] = dims;
    let mut out = vec![0i32; numel(dims)];
    let mut offsets: Vec<[isize; 3]> = Vec::new();
    for dz in -1isize..=1 {
        for dy in -1isize..=1 {
            for dx in -1isize..=1 {
                let nz = (dz != 0) as u8 + (dy != 0) as u8 + (dx != 0) as u8;
                if nz == 1 || (full && nz > 1) {
                    offsets.push([dz, dy, dx]);
                }
            }
        }
    }
    let mut next = 0i32;
    let mut stack = Vec::new();
    for start in 0..out.len() {
        if !mask[start] || out[start] != 0 {
            continue;
        }
        next += 1;
        out[start] = next;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (z, y, x) = (i / (h * w), (i / w) % h, i % w);
            for o in &offsets {
                let (nz, ny, nx) = (z as isize + o[0], y as isize + o[1], x as isize + o[2]);
                if nz < 0
                    || ny < 0
                    || nx < 0
                    || nz >= d as isize
                    || ny >= h as isize
                    || nx >= w as isize
                {
                    continue;
                }
                let j = (nz as usize * h + ny as usize) * w + nx as usize;
                if mask[j] && out[j] == 0 {
                    out[j] = next;
                    stack.push(j);
                }
            }
        }
    }
    (Array3 { data: out, dims }, next as usize)
}

/// 1-D squared distance transform of `f` (0 at features, +inf elsewhere,
/// or any sampled function) with sample spacing `s`, into `d`.
/// Scratch: `v` (len n), `z` (len n + 1).
fn edt_1d(f: &[f64], s: f64, d: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let mut k: isize = -1;
    for q in 0..n {
        if f[q].is_infinite() {
            continue;
        }
        let xq = q as f64 * s;
        loop {
            if k < 0 {
                k = 0;
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
                break;
            }
            let p = v[k as usize];
            let xp = p as f64 * s;
            let inter = ((f[q] + xq * xq) - (f[p] + xp * xp)) / (2.0 * (xq - xp));
            if inter <= z[k as usize] {
                k -= 1;
                continue;
            }
            k += 1;
            v[k as usize] = q;
            z[k as usize] = inter;
            z[k as usize + 1] = f64::INFINITY;
            break;
        }
    }
    if k < 0 {
        d.iter_mut().for_each(|x| *x = f64::INFINITY);
        return;
    }
    let mut j = 0usize;
    for (q, dq) in d.iter_mut().enumerate().take(n) {
        let xq = q as f64 * s;
        while z[j + 1] < xq {
            j += 1;
        }
        let p = v[j];
        let dx = xq - p as f64 * s;
        *dq = dx * dx + f[p];
    }
}

/// Exact squared Euclidean distance from every voxel to the nearest `true`
/// voxel of `feature` (dims `z, y, x`, spacing `z, y, x`); +inf if there is none.
pub fn edt_sq(feature: &[bool], dims: [usize; 3], spacing: [f32; 3]) -> Result<Vec<f32>> {
    if feature.len() != numel(dims) {
        return Err(Error::shape(
            "edt_sq",
            format!("{} voxels for dims {dims:?}", feature.len()),
        ));
    }
    let mut g: Vec<f64> = feature
        .iter()
        .map(|&b| if b { 0.0 } else { f64::INFINITY })
        .collect();
    edt_sq_inplace(&mut g, dims, spacing);
    Ok(g.into_iter().map(|v| v as f32).collect())
}

/// Separable transform along x, then y, then z, in place on `g`.
fn edt_sq_inplace(g: &mut [f64], dims: [usize; 3], spacing: [f32; 3]) {
    let [d, h, w] = dims;
    let m = d.max(h).max(w);
    let (mut f, mut out) = (vec![0.0f64; m], vec![0.0f64; m]);
    let (mut v, mut z) = (vec![0usize; m], vec![0.0f64; m + 1]);
    let strides = [h * w, w, 1];
    for axis in [2usize, 1, 0] {
        let n = dims[axis];
        if n == 1 && axis != 2 {
            continue;
        }
        let st = strides[axis];
        let s = spacing[axis] as f64;
        // every line along `axis`: iterate over the other two coordinates
        let (a1, a2) = match axis {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        for i1 in 0..dims[a1] {
            for i2 in 0..dims[a2] {
                let base = i1 * strides[a1] + i2 * strides[a2];
                for q in 0..n {
                    f[q] = g[base + q * st];
                }
                edt_1d(&f[..n], s, &mut out[..n], &mut v[..n], &mut z[..n + 1]);
                for q in 0..n {
                    g[base + q * st] = out[q];
                }
            }
        }
    }
}

/// Balanced class weights `N / (K · n_c)` over the classes present in
/// `labels` (0 for absent classes), length `n_classes`.
pub fn class_weights(labels: &LabelVolume, n_classes: usize) -> Vec<f32> {
    let mut counts = vec![0u64; n_classes];
    for &l in &labels.data {
        if let Some(c) = counts.get_mut(l as usize) {
            *c += 1;
        }
    }
    let k = counts.iter().filter(|&&c| c > 0).count() as f64;
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if c > 0 {
                (n as f64 / (k * c as f64)) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// The U-Net weight map of eq. 2 (see the module docs). `labels` holds class
/// ids `0..n_classes`, `instances` the cell ids (0 = no cell), same dims.
pub fn unet_weight_map(
    labels: &LabelVolume,
    n_classes: usize,
    instances: &LabelVolume,
    opts: &WeightMapOptions,
) -> Result<Volume> {
    if labels.dims != instances.dims || labels.data.len() != numel(labels.dims) {
        return Err(Error::shape(
            "unet_weight_map",
            format!("labels {:?} vs instances {:?}", labels.dims, instances.dims),
        ));
    }
    if let Some(&bad) = labels
        .data
        .iter()
        .find(|&&l| l < 0 || l as usize >= n_classes)
    {
        return Err(Error::shape(
            "unet_weight_map",
            format!("label {bad} outside 0..{n_classes}"),
        ));
    }
    if opts.sigma.is_nan()
        || opts.sigma <= 0.0
        || opts.spacing.iter().any(|&s| s.is_nan() || s <= 0.0)
    {
        return Err(Error::shape(
            "unet_weight_map",
            format!(
                "sigma {} and spacing {:?} must be > 0",
                opts.sigma, opts.spacing
            ),
        ));
    }
    let dims = labels.dims;
    let wc = if opts.balance {
        class_weights(labels, n_classes)
    } else {
        vec![1.0; n_classes]
    };
    let mut out: Vec<f32> = labels.data.iter().map(|&l| wc[l as usize]).collect();
    if opts.w0 == 0.0 {
        return Ok(Array3 { data: out, dims });
    }
    let (d1, d2) = two_nearest(instances, opts.spacing, opts.cutoff());
    let two_s2 = 2.0 * opts.sigma * opts.sigma;
    for i in 0..out.len() {
        if instances.data[i] == 0 && d2[i].is_finite() {
            let s = d1[i] + d2[i];
            out[i] += opts.w0 * (-(s * s) / two_s2).exp();
        }
    }
    Ok(Array3 { data: out, dims })
}

/// Distances to the nearest and second-nearest instance (different ids) for
/// every voxel, +inf where fewer instances lie within `cutoff`.
pub fn two_nearest(
    instances: &LabelVolume,
    spacing: [f32; 3],
    cutoff: f32,
) -> (Vec<f32>, Vec<f32>) {
    let dims = instances.dims;
    let [d, h, w] = dims;
    let n = numel(dims);
    let (mut d1, mut d2) = (vec![f32::INFINITY; n], vec![f32::INFINITY; n]);
    // bounding boxes per instance id: (lo, hi) inclusive
    let mut boxes: BTreeMap<i32, ([usize; 3], [usize; 3])> = BTreeMap::new();
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let id = instances.data[(z * h + y) * w + x];
                if id == 0 {
                    continue;
                }
                let b = boxes.entry(id).or_insert(([z, y, x], [z, y, x]));
                for (a, c) in [z, y, x].into_iter().enumerate() {
                    b.0[a] = b.0[a].min(c);
                    b.1[a] = b.1[a].max(c);
                }
            }
        }
    }
    let grow: [usize; 3] = std::array::from_fn(|a| (cutoff / spacing[a]).ceil().max(0.0) as usize);
    let mut g = Vec::new();
    for (&id, (lo, hi)) in &boxes {
        let blo: [usize; 3] = std::array::from_fn(|a| lo[a].saturating_sub(grow[a]));
        let bhi: [usize; 3] = std::array::from_fn(|a| (hi[a] + grow[a]).min(dims[a] - 1));
        let bd: [usize; 3] = std::array::from_fn(|a| bhi[a] - blo[a] + 1);
        g.clear();
        for z in blo[0]..=bhi[0] {
            for y in blo[1]..=bhi[1] {
                let row = (z * h + y) * w;
                g.extend(
                    instances.data[row + blo[2]..=row + bhi[2]]
                        .iter()
                        .map(|&v| if v == id { 0.0 } else { f64::INFINITY }),
                );
            }
        }
        edt_sq_inplace(&mut g, bd, spacing);
        let mut k = 0;
        for z in blo[0]..=bhi[0] {
            for y in blo[1]..=bhi[1] {
                let row = (z * h + y) * w;
                for x in blo[2]..=bhi[2] {
                    let dist = (g[k] as f32).sqrt();
                    k += 1;
                    if dist > cutoff {
                        continue;
                    }
                    let i = row + x;
                    if dist < d1[i] {
                        d2[i] = d1[i];
                        d1[i] = dist;
                    } else if dist < d2[i] {
                        d2[i] = dist;
                    }
                }
            }
        }
    }
    (d1, d2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_edt(feature: &[bool], dims: [usize; 3], sp: [f32; 3]) -> Vec<f32> {
        let [_, h, w] = dims;
        let coord = |i: usize| [(i / (h * w)) as f32, ((i / w) % h) as f32, (i % w) as f32];
        let feats: Vec<[f32; 3]> = feature
            .iter()
            .enumerate()
            .filter(|(_, &f)| f)
            .map(|(j, _)| coord(j))
            .collect();
        (0..feature.len())
            .map(|i| {
                let p = coord(i);
                feats.iter().fold(f32::INFINITY, |m, q| {
                    let d: [f32; 3] = std::array::from_fn(|a| (p[a] - q[a]) * sp[a]);
                    m.min(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
                })
            })
            .collect()
    }

    #[test]
    fn edt_matches_brute_force_2d_3d_anisotropic() {
        let mut s = 12345u64;
        for &(dims, sp) in &[
            ([1, 7, 11], [1.0, 1.0, 1.0]),
            ([5, 6, 9], [2.5, 1.0, 0.7]),
            ([4, 1, 13], [1.3, 1.0, 1.0]),
        ] {
            let n = numel(dims);
            let feature: Vec<bool> = (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    s.is_multiple_of(11)
                })
                .collect();
            let got = edt_sq(&feature, dims, sp).unwrap();
            let want = brute_edt(&feature, dims, sp);
            for i in 0..n {
                assert!(
                    (got[i] - want[i]).abs() <= 1e-4 * (1.0 + want[i])
                        || (got[i].is_infinite() && want[i].is_infinite()),
                    "dims {dims:?} at {i}: {} vs {}",
                    got[i],
                    want[i]
                );
            }
        }
        assert!(edt_sq(&[false; 6], [1, 2, 3], [1.0; 3])
            .unwrap()
            .iter()
            .all(|v| v.is_infinite()));
    }

    #[test]
    fn components_4_vs_8() {
        // diagonal touch: two components with 4-connectivity, one with 8
        let mask = [true, false, false, true];
        assert_eq!(connected_components(&mask, [1, 2, 2], false).unwrap().1, 2);
        assert_eq!(connected_components(&mask, [1, 2, 2], true).unwrap().1, 1);
        // 3D: stacked voxels connect through z
        let (ids, n) = connected_components(&[true, false, true, false], [2, 1, 2], false).unwrap();
        assert!(connected_components(&[true], [1, 1, 2], false).is_err());
        assert!(edt_sq(&[true], [1, 1, 2], [1.0; 3]).is_err());
        assert_eq!(n, 1);
        assert_eq!(ids.data, vec![1, 0, 1, 0]);
    }

    /// Two 5x5 squares with a 4 px gap: in the gap d1 + d2 = 5 everywhere.
    #[test]
    fn two_squares_hand_checked() {
        let dims = [1, 15, 40];
        let mut inst = Array3::filled(dims, 0i32);
        for y in 5..10 {
            for x in 5..10 {
                inst.data[y * 40 + x] = 1;
            }
            for x in 14..19 {
                inst.data[y * 40 + x] = 2;
            }
        }
        let labels = inst.map(|&v| (v > 0) as i32);
        let opts = WeightMapOptions {
            balance: false,
            ..Default::default()
        };
        let wm = unet_weight_map(&labels, 2, &inst, &opts).unwrap();
        let expect = 1.0 + 10.0 * (-25.0f32 / 50.0).exp(); // 7.0653
        for x in 10..14 {
            assert!(
                (wm.data[7 * 40 + x] - expect).abs() < 1e-5,
                "x={x}: {}",
                wm.data[7 * 40 + x]
            );
        }
        // inside a cell: w_c only
        assert_eq!(wm.data[7 * 40 + 7], 1.0);
        // far right (x = 39, y = 7): d1 = 21, d2 = 30 -> beyond the cutoff, w_c only
        assert_eq!(wm.data[7 * 40 + 39], 1.0);
        // diagonal pixel (y=3, x=11): d1 = sqrt(2^2+2^2), d2 = sqrt(2^2+3^2)
        let s = 8f32.sqrt() + 13f32.sqrt();
        let e = 1.0 + 10.0 * (-(s * s) / 50.0).exp();
        assert!((wm.data[3 * 40 + 11] - e).abs() < 1e-5);
        // balanced: 50 cell pixels of 600
        let wb = unet_weight_map(&labels, 2, &inst, &WeightMapOptions::default()).unwrap();
        let wc = class_weights(&labels, 2);
        assert!(
            (wc[0] - 600.0 / (2.0 * 550.0)).abs() < 1e-6 && (wc[1] - 600.0 / 100.0).abs() < 1e-6
        );
        assert!((wb.data[7 * 40 + 39] - wc[0]).abs() < 1e-6);
        assert!((wb.data[7 * 40 + 7] - wc[1]).abs() < 1e-6);
    }

    #[test]
    fn matches_brute_force_without_cutoff() {
        // random small blobs; compare d1, d2 to brute force within the cutoff
        let dims = [3, 20, 23];
        let sp = [2.0, 1.0, 1.0];
        let mut inst = Array3::filled(dims, 0i32);
        let centres = [(0, 3, 4), (1, 10, 10), (2, 15, 3), (1, 4, 18), (0, 17, 20)];
        for (k, &(z, y, x)) in centres.iter().enumerate() {
            for dy in 0..3 {
                for dx in 0..2 {
                    let i = inst.idx(z, y + dy, x + dx);
                    inst.data[i] = k as i32 + 1;
                }
            }
        }
        let cutoff = 26.28;
        let (d1, d2) = two_nearest(&inst, sp, cutoff);
        let n = numel(dims);
        let per_id: Vec<Vec<f32>> = (1..=5)
            .map(|id| {
                let f: Vec<bool> = inst.data.iter().map(|&v| v == id).collect();
                brute_edt(&f, dims, sp)
            })
            .collect();
        for i in 0..n {
            let mut ds: Vec<f32> = per_id
                .iter()
                .map(|e| e[i].sqrt())
                .filter(|&d| d <= cutoff)
                .collect();
            ds.sort_by(|a, b| a.total_cmp(b));
            let w1 = ds.first().copied().unwrap_or(f32::INFINITY);
            let w2 = ds.get(1).copied().unwrap_or(f32::INFINITY);
            assert!(
                (d1[i] - w1).abs() < 1e-4 || d1[i] == w1,
                "{i}: {} vs {w1}",
                d1[i]
            );
            assert!(
                (d2[i] - w2).abs() < 1e-4 || d2[i] == w2,
                "{i}: {} vs {w2}",
                d2[i]
            );
        }
    }

    #[test]
    fn errors() {
        let l = Array3::filled([1, 2, 2], 0i32);
        let i = Array3::filled([1, 2, 3], 0i32);
        assert!(unet_weight_map(&l, 2, &i, &Default::default()).is_err());
        let bad = Array3::from_vec([1, 1, 2], vec![0, 5]).unwrap();
        assert!(unet_weight_map(&bad, 2, &bad.map(|_| 0), &Default::default()).is_err());
    }
}
