//! Normalisation statistics of a volume too large to hold, measured by
//! streaming over its store box by box, with the numbers the in-memory path
//! ([`NormStats::of`]) gets for the same data:
//!
//! - z-score: sums are taken row by row in x order, then the row sums in
//!   (z, y) order ([`crate::data::normalize::row_sums`]). Boxes come in the
//!   store's chunk order, so a row's running sum carries from one box to the
//!   next in x, and the rows of a slab of sections are added once all its
//!   boxes are read: the same f64 operations in the same order.
//! - percentiles: exact order statistics from two histogram passes over the
//!   16 high and then the 16 low bits of each value's total-order key, the
//!   same ranks and interpolation as [`crate::data::normalize::percentiles`].
//!
//! - log (`normalize = log`): its three percentiles as above, then the
//!   z-score sums of the logs.
//!
//! A 2D model normalises each section on its own (`per_section`), a 3D
//! model the whole volume. Memory: one box of the store's chunk columns
//! (one slab of sections by one chunk in y and x) and the histograms.

use crate::data::normalize::{
    log_above, log_floor, NormStats, Normalize, LOG_FLOOR_PERCENTILE, LOG_HI_PERCENTILE,
    LOG_LO_PERCENTILE,
};
use crate::data::zarr::ZarrSource;
use crate::error::Result;

/// The statistics of `src` for `mode`: one entry (the volume) or, with
/// `per_section`, one per z-section.
pub fn volume_stats(
    src: &ZarrSource,
    mode: Normalize,
    per_section: bool,
) -> Result<Vec<NormStats>> {
    let groups = if per_section { src.dims[0] } else { 1 };
    match mode {
        Normalize::None => Ok(vec![NormStats::None; groups]),
        Normalize::ZScore => zscore(src, per_section),
        Normalize::Percentile { lo, hi, clip } => Ok(percentile(src, per_section, lo, hi, None)?
            .into_iter()
            .map(|s| match s {
                NormStats::Clip { lo, hi } => NormStats::percentile(lo, hi, clip),
                s => s,
            })
            .collect()),
        Normalize::Log => log(src, per_section),
        Normalize::Equalize(_) => Err(crate::error::Error::Unsupported {
            op: "predict (block-wise)",
            msg: "the checkpoint equalises its input (normalize = equalize or equalize-normal), which needs every value's rank in the volume; block-wise prediction measures only streamed statistics; predict the volume whole (a .npy or TIFF input) or use a zscore / percentile / robust / log model".into(),
        }),
    }
}

/// The z-ranges read together: slabs of the store's chunk depth.
fn slabs(src: &ZarrSource) -> Vec<(usize, usize)> {
    let h = src.chunk[0].max(1);
    (0..src.dims[0].div_ceil(h))
        .map(|i| (i * h, ((i + 1) * h).min(src.dims[0])))
        .collect()
}

/// Visit the boxes of the slab `z0..z1` in the store's chunk order (y, then
/// x), each as `(origin, dims, values)`.
fn for_each_box(
    src: &ZarrSource,
    (z0, z1): (usize, usize),
    mut f: impl FnMut([usize; 3], [usize; 3], &[f32]),
) -> Result<()> {
    let [_, ny, nx] = src.dims;
    let [_, cy, cx] = src.chunk;
    for y0 in (0..ny).step_by(cy.max(1)) {
        for x0 in (0..nx).step_by(cx.max(1)) {
            let lo = [z0, y0, x0];
            let dims = [z1 - z0, cy.min(ny - y0), cx.min(nx - x0)];
            let v = src.read_box(lo, dims)?;
            f(lo, dims, &v);
        }
    }
    Ok(())
}

/// `sum f(v)` per group in the order of [`crate::data::normalize::row_sums`],
/// and the voxel count per group.
fn grouped_sums(
    src: &ZarrSource,
    per_section: bool,
    f: impl Fn(usize, f32) -> f64,
) -> Result<Vec<(f64, usize)>> {
    let [nz, ny, nx] = src.dims;
    let mut out = vec![(0.0f64, 0usize); if per_section { nz } else { 1 }];
    for (z0, z1) in slabs(src) {
        // running sums of the slab's rows, (z - z0, y)
        let mut rows = vec![0.0f64; (z1 - z0) * ny];
        for_each_box(src, (z0, z1), |lo, d, v| {
            for z in 0..d[0] {
                let g = if per_section { lo[0] + z } else { 0 };
                for y in 0..d[1] {
                    let r = &mut rows[z * ny + lo[1] + y];
                    let s = (z * d[1] + y) * d[2];
                    *r = v[s..s + d[2]].iter().fold(*r, |a, &x| a + f(g, x));
                }
            }
        })?;
        for z in z0..z1 {
            let g = if per_section { z } else { 0 };
            for y in 0..ny {
                out[g].0 += rows[(z - z0) * ny + y];
            }
            out[g].1 += ny * nx;
        }
    }
    Ok(out)
}

fn zscore(src: &ZarrSource, per_section: bool) -> Result<Vec<NormStats>> {
    Ok(moments(src, per_section, |_, v| v as f64)?
        .into_iter()
        .map(|(m, var)| NormStats::zscore(m, var))
        .collect())
}

/// Mean and variance of `t(group, v)` per group: the sums, then the squared
/// deviations, in the order of [`crate::data::normalize::row_sums`].
fn moments(
    src: &ZarrSource,
    per_section: bool,
    t: impl Fn(usize, f32) -> f64,
) -> Result<Vec<(f64, f64)>> {
    let sums = grouped_sums(src, per_section, &t)?;
    let mean: Vec<f64> = sums.iter().map(|&(s, n)| s / n as f64).collect();
    let sq = grouped_sums(src, per_section, |g, v| (t(g, v) - mean[g]).powi(2))?;
    Ok(sq
        .iter()
        .zip(&mean)
        .map(|(&(s, n), &m)| (m, s / n as f64))
        .collect())
}

/// [`Normalize::Log`] per group: the black level and the upper percentile
/// ([`percentile`]), the floor's percentile of the values above the black
/// level, then the z-score sums of the logs.
fn log(src: &ZarrSource, per_section: bool) -> Result<Vec<NormStats>> {
    let pair = |s: &NormStats| match *s {
        NormStats::Clip { lo, hi } => (lo, hi),
        _ => (0.0, 0.0),
    };
    let range: Vec<(f32, f32)> =
        percentile(src, per_section, LOG_LO_PERCENTILE, LOG_HI_PERCENTILE, None)?
            .iter()
            .map(pair)
            .collect();
    let q: Vec<f32> = range.iter().map(|r| r.0).collect();
    let f = LOG_FLOOR_PERCENTILE;
    let clip = percentile(src, per_section, f, f, Some(&q))?;
    let levels: Vec<(f32, f32)> = range
        .iter()
        .zip(&clip)
        .map(|(&(q, hi), c)| (q, log_floor(q, pair(c).0, hi)))
        .collect();
    let t = |g: usize, v: f32| log_above(v, levels[g].0, levels[g].1);
    Ok(moments(src, per_section, t)?
        .into_iter()
        .zip(&levels)
        .map(|((m, var), &(q, eps))| NormStats::log(q, eps, m, var))
        .collect())
}

/// A monotone map of f32 onto u32 in `total_cmp` order.
fn key(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

fn unkey(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// Percentiles per group; groups are processed a slab at a time (sections)
/// or all at once (the volume).
///
/// With `above`, only the values above `above[group]` (groups numbered
/// over the whole volume) count, as the in-memory path filters them.
fn percentile(
    src: &ZarrSource,
    per_section: bool,
    lo: f32,
    hi: f32,
    above: Option<&[f32]>,
) -> Result<Vec<NormStats>> {
    // sections: at most 4 at a time (their histograms take 2.5 MiB each)
    let ranges: Vec<(usize, usize)> = if per_section {
        (0..src.dims[0])
            .step_by(4)
            .map(|z| (z, (z + 4).min(src.dims[0])))
            .collect()
    } else {
        vec![(0, src.dims[0])]
    };
    let mut out = Vec::new();
    for (z0, z1) in ranges {
        let groups = if per_section { z1 - z0 } else { 1 };
        let group_of = |z: usize| if per_section { z - z0 } else { 0 };
        // NaN never counts; with `above`, neither does a value at or below it
        let counts = |z: usize, x: f32| match above {
            Some(a) => x > a[if per_section { z } else { 0 }],
            None => !x.is_nan(),
        };
        let zr = if per_section {
            vec![(z0, z1)]
        } else {
            slabs(src)
        };
        // pass 1: counts of the high 16 key bits
        let mut high = vec![vec![0u64; 1 << 16]; groups];
        for &r in &zr {
            for_each_box(src, r, |lo_, d, v| {
                for (i, &x) in v.iter().enumerate() {
                    let z = lo_[0] + i / (d[1] * d[2]);
                    if counts(z, x) {
                        high[group_of(z)][(key(x) >> 16) as usize] += 1;
                    }
                }
            })?;
        }
        // the ranks each group needs, located in a high bin
        let wants: Vec<Ranks> = high.iter().map(|h| Ranks::new(h, lo, hi)).collect();
        // pass 2: counts of the low 16 bits inside the bins that hold them
        let mut low: Vec<Vec<(u32, Vec<u64>)>> = wants
            .iter()
            .map(|w| {
                w.bins()
                    .into_iter()
                    .map(|b| (b, vec![0u64; 1 << 16]))
                    .collect()
            })
            .collect();
        for &r in &zr {
            for_each_box(src, r, |lo_, d, v| {
                for (i, &x) in v.iter().enumerate() {
                    let z = lo_[0] + i / (d[1] * d[2]);
                    if !counts(z, x) {
                        continue;
                    }
                    let k = key(x);
                    let g = group_of(z);
                    if let Some((_, h)) = low[g].iter_mut().find(|(b, _)| *b == k >> 16) {
                        h[(k & 0xffff) as usize] += 1;
                    }
                }
            })?;
        }
        out.extend(wants.iter().zip(&low).map(|(w, l)| w.stats(l)));
    }
    Ok(out)
}

/// The order statistics one group needs: rank, and (once located) its high
/// bin and the rank inside that bin.
struct Ranks {
    n: u64,
    /// (position in percent, floor rank, interpolation share)
    q: [(usize, f64); 2],
    located: Vec<(u64, u32, u64)>,
}

impl Ranks {
    fn new(high: &[u64], lo: f32, hi: f32) -> Ranks {
        let n: u64 = high.iter().sum();
        let q = [lo, hi].map(|p| {
            let pos = (p.clamp(0.0, 100.0) as f64 / 100.0) * (n.max(1) - 1) as f64;
            (pos.floor() as usize, pos - pos.floor())
        });
        let mut ranks: Vec<u64> = Vec::new();
        for &(i, f) in &q {
            ranks.push(i as u64);
            if f > 0.0 {
                ranks.push(i as u64 + 1);
            }
        }
        let mut located = Vec::new();
        for r in ranks {
            let mut before = 0u64;
            for (b, &c) in high.iter().enumerate() {
                if r < before + c {
                    located.push((r, b as u32, r - before));
                    break;
                }
                before += c;
            }
        }
        Ranks { n, q, located }
    }

    fn bins(&self) -> Vec<u32> {
        let mut b: Vec<u32> = self.located.iter().map(|l| l.1).collect();
        b.sort_unstable();
        b.dedup();
        b
    }

    /// The value of rank `r` from the low-bit counts.
    fn value(&self, r: u64, low: &[(u32, Vec<u64>)]) -> f32 {
        let Some(&(_, bin, mut rest)) = self.located.iter().find(|l| l.0 == r) else {
            return 0.0;
        };
        let Some((_, h)) = low.iter().find(|(b, _)| *b == bin) else {
            return 0.0;
        };
        for (k, &c) in h.iter().enumerate() {
            if rest < c {
                return unkey(bin << 16 | k as u32);
            }
            rest -= c;
        }
        0.0
    }

    fn stats(&self, low: &[(u32, Vec<u64>)]) -> NormStats {
        if self.n == 0 {
            return NormStats::Clip { lo: 0.0, hi: 0.0 };
        }
        let [a, b] = self.q.map(|(i, f)| {
            let x = self.value(i as u64, low);
            let y = if f > 0.0 {
                self.value(i as u64 + 1, low)
            } else {
                x
            };
            (x as f64 + f * (y as f64 - x as f64)) as f32
        });
        NormStats::Clip { lo: a, hi: b }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_total_order() {
        let v = [
            -3.5f32,
            -0.0,
            0.0,
            1e-40,
            2.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        for a in v {
            assert_eq!(unkey(key(a)).to_bits(), a.to_bits());
            for b in v {
                assert_eq!(key(a).cmp(&key(b)), a.total_cmp(&b), "{a} {b}");
            }
        }
    }
}
