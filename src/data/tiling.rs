//! Overlap-tile inference planning (U-Net paper, Fig. 2), 2D and 3D.
//!
//! A network maps an input tile of `in_tile` voxels to an output tile of
//! `out_tile` voxels centred in it (valid convolutions: `out < in`, the
//! difference `2·context` per axis; same padding: `out == in`). A
//! [`TilePlan`] places output tiles so that they cover the image; each input
//! window is the output tile grown by `context` on every side, read from the
//! image extended by mirroring (numpy `reflect`) where it leaves the image, so
//! images of any size, including smaller than one tile, work.
//!
//! Placement per axis: one tile if the image fits, otherwise
//! `k = ceil((n - out) / (out - overlap)) + 1` tiles spread evenly from 0 to
//! `n - out` (so tiles stay inside the image and overlap by at least
//! `overlap`). Without blending, each voxel is written by exactly one tile:
//! the tile that *owns* it, neighbours splitting their overlap at its middle.
//! With Gaussian blending (nnU-Net) every tile adds its whole output
//! weighted by a Gaussian with σ = tile / 8 per axis (max 1, floored at its
//! smallest positive value) and the sum is divided by the summed weights.

use super::augment::crop_reflect;
use super::{numel, ChannelVolume, Volume};
use crate::error::{Error, Result};

/// One tile of a [`TilePlan`].
#[derive(Clone, Debug, PartialEq)]
pub struct Tile {
    /// Image position of the output tile's first voxel.
    pub out_origin: [usize; 3],
    /// Image position of the input window's first voxel (`out_origin - context`;
    /// negative or past the end means mirrored).
    pub in_origin: [isize; 3],
    /// The part of the output tile this tile owns (written without blending),
    /// `own_lo..own_hi` relative to `out_origin`; always inside the image.
    pub own_lo: [usize; 3],
    pub own_hi: [usize; 3],
}

/// The tiles covering an image.
#[derive(Clone, Debug, PartialEq)]
pub struct TilePlan {
    pub image_dims: [usize; 3],
    pub in_tile: [usize; 3],
    pub out_tile: [usize; 3],
    /// `(in_tile - out_tile) / 2` per axis.
    pub context: [usize; 3],
    pub tiles: Vec<Tile>,
}

/// Tile origins along one axis of length `n`.
fn axis_origins(n: usize, out: usize, overlap: usize) -> Vec<usize> {
    if n <= out {
        return vec![0];
    }
    let step = out - overlap;
    let k = (n - out).div_ceil(step) + 1;
    (0..k)
        .map(|i| ((i * (n - out)) as f64 / (k - 1) as f64).round() as usize)
        .collect()
}

/// Owned ranges `[lo, hi)` (image coordinates) for the origins of one axis:
/// each tile owns the voxels up to the middle of its overlap with the next.
pub fn axis_owned(n: usize, out: usize, origins: &[usize]) -> Vec<(usize, usize)> {
    let k = origins.len();
    let starts: Vec<usize> = (0..k)
        .map(|i| {
            if i == 0 {
                0
            } else {
                (origins[i] + (origins[i - 1] + out).min(n)).div_ceil(2)
            }
        })
        .collect();
    (0..k)
        .map(|i| (starts[i], if i + 1 < k { starts[i + 1] } else { n }))
        .collect()
}

/// The tiles of the grid `origins[z] x origins[y] x origins[x]` (output
/// origins per axis, with the ranges each owns), whose inputs start
/// `context` voxels before their outputs.
pub fn grid_tiles(
    origins: &[Vec<usize>; 3],
    owned: &[Vec<(usize, usize)>; 3],
    context: [usize; 3],
) -> Vec<Tile> {
    let mut tiles = Vec::new();
    for (iz, &oz) in origins[0].iter().enumerate() {
        for (iy, &oy) in origins[1].iter().enumerate() {
            for (ix, &ox) in origins[2].iter().enumerate() {
                let o = [oz, oy, ox];
                let own = [owned[0][iz], owned[1][iy], owned[2][ix]];
                tiles.push(Tile {
                    out_origin: o,
                    in_origin: std::array::from_fn(|a| o[a] as isize - context[a] as isize),
                    own_lo: std::array::from_fn(|a| own[a].0 - o[a]),
                    own_hi: std::array::from_fn(|a| own[a].1 - o[a]),
                });
            }
        }
    }
    tiles
}

/// Plan the tiles for an image of `image` voxels `(z, y, x)`. `overlap`
/// (per axis, `< out_tile`) is the minimum overlap of neighbouring output tiles.
pub fn plan_tiles(
    image: [usize; 3],
    in_tile: [usize; 3],
    out_tile: [usize; 3],
    overlap: [usize; 3],
) -> Result<TilePlan> {
    let op = "plan_tiles";
    for a in 0..3 {
        if image[a] == 0
            || out_tile[a] == 0
            || out_tile[a] > in_tile[a]
            || !(in_tile[a] - out_tile[a]).is_multiple_of(2)
        {
            return Err(Error::shape(
                op,
                format!(
                    "image {image:?}, input tile {in_tile:?}, output tile {out_tile:?}: sizes must be nonzero, output <= input, and input - output even"
                ),
            ));
        }
        if overlap[a] >= out_tile[a] {
            return Err(Error::shape(
                op,
                format!("overlap {overlap:?} must be smaller than the output tile {out_tile:?}"),
            ));
        }
    }
    let context: [usize; 3] = std::array::from_fn(|a| (in_tile[a] - out_tile[a]) / 2);
    let origins: [Vec<usize>; 3] =
        std::array::from_fn(|a| axis_origins(image[a], out_tile[a], overlap[a]));
    let owned: [Vec<(usize, usize)>; 3] =
        std::array::from_fn(|a| axis_owned(image[a], out_tile[a], &origins[a]));
    let tiles = grid_tiles(&origins, &owned, context);
    Ok(TilePlan {
        image_dims: image,
        in_tile,
        out_tile,
        context,
        tiles,
    })
}

impl TilePlan {
    /// The mirrored input window of `tile` (`in_tile` voxels, x fastest).
    pub fn extract(&self, image: &Volume, tile: &Tile) -> Result<Vec<f32>> {
        if image.dims != self.image_dims {
            return Err(Error::shape(
                "TilePlan::extract",
                format!(
                    "image {:?} but the plan is for {:?}",
                    image.dims, self.image_dims
                ),
            ));
        }
        Ok(crop_reflect(image, tile.in_origin, self.in_tile)?.data)
    }
}

/// How overlapping outputs are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blend {
    /// Each voxel comes from the tile that owns it.
    None,
    /// Gaussian-weighted average of all tiles covering the voxel (σ = tile / 8).
    Gaussian,
}

/// Gaussian importance weights over a tile: `exp(-d²/(2σ²))` per axis with
/// `σ = sigma_scale · size` around the tile centre, max 1, zeros and
/// underflows replaced by the smallest positive value.
pub fn gaussian_weights(tile: [usize; 3], sigma_scale: f32) -> Vec<f32> {
    let axis = |n: usize| -> Vec<f32> {
        let s = (sigma_scale * n as f32).max(1e-6);
        let c = (n as f32 - 1.0) * 0.5;
        (0..n)
            .map(|i| (-((i as f32 - c).powi(2)) / (2.0 * s * s)).exp())
            .collect()
    };
    let (wz, wy, wx) = (axis(tile[0]), axis(tile[1]), axis(tile[2]));
    let mut w = Vec::with_capacity(numel(tile));
    for a in &wz {
        for b in &wy {
            for c in &wx {
                w.push(a * b * c);
            }
        }
    }
    let max = w.iter().copied().fold(0.0f32, f32::max);
    let min_pos = w
        .iter()
        .copied()
        .filter(|&v| v > 0.0)
        .fold(f32::INFINITY, f32::min);
    for v in &mut w {
        *v = if *v > 0.0 { *v / max } else { min_pos / max };
    }
    w
}

/// Collects output tiles into a multi-channel result over the whole image,
/// or over one box of it ([`Accumulator::region`]: block-wise prediction).
/// A voxel's value depends only on the tiles covering it and their order, so
/// a box assembled from the same tiles in the same order equals the same box
/// of the whole-image result bit for bit.
pub struct Accumulator {
    /// Image size and tile sizes (the tiles themselves are not kept).
    image_dims: [usize; 3],
    out_tile: [usize; 3],
    /// The box assembled: `origin .. origin + dims` in image coordinates.
    origin: [usize; 3],
    dims: [usize; 3],
    channels: usize,
    blend: Blend,
    sum: Vec<f32>,
    wsum: Vec<f32>,
    weights: Vec<f32>,
}

impl Accumulator {
    /// Assemble the whole image of `plan`.
    pub fn new(plan: &TilePlan, channels: usize, blend: Blend) -> Self {
        Self::region(plan, [0; 3], plan.image_dims, channels, blend)
    }

    /// Assemble only the box `origin .. origin + dims` of `plan`'s image
    /// (tiles are clipped to it; the caller keeps the box inside the image).
    pub fn region(
        plan: &TilePlan,
        origin: [usize; 3],
        dims: [usize; 3],
        channels: usize,
        blend: Blend,
    ) -> Self {
        let n = numel(dims);
        let (wsum, weights) = match blend {
            Blend::None => (Vec::new(), Vec::new()),
            Blend::Gaussian => (vec![0.0; n], gaussian_weights(plan.out_tile, 1.0 / 8.0)),
        };
        Accumulator {
            image_dims: plan.image_dims,
            out_tile: plan.out_tile,
            origin,
            dims,
            channels,
            blend,
            sum: vec![0.0; channels * n],
            wsum,
            weights,
        }
    }

    /// Add the network output of `tile`: `channels x out_tile` values.
    pub fn add(&mut self, tile: &Tile, data: &[f32]) -> Result<()> {
        let ot = self.out_tile;
        let tn = numel(ot);
        if data.len() != self.channels * tn {
            return Err(Error::shape(
                "Accumulator::add",
                format!(
                    "{} values for {} channels x tile {:?}",
                    data.len(),
                    self.channels,
                    ot
                ),
            ));
        }
        let d = self.image_dims;
        let (ro, rd) = (self.origin, self.dims);
        let n = numel(rd);
        let fits = (0..3).all(|a| {
            tile.out_origin[a] < d[a]
                && tile.own_lo[a] <= tile.own_hi[a]
                && tile.own_hi[a] <= ot[a]
                && tile.out_origin[a] + tile.own_hi[a] <= d[a]
        });
        if !fits {
            return Err(Error::shape(
                "Accumulator::add",
                format!("tile {tile:?} does not belong to a plan for {d:?} with tiles {ot:?}"),
            ));
        }
        let (lo, hi) = match self.blend {
            Blend::None => (tile.own_lo, tile.own_hi),
            Blend::Gaussian => (
                [0; 3],
                std::array::from_fn(|a| ot[a].min(d[a] - tile.out_origin[a])),
            ),
        };
        // clip to the box (tile coordinates); `o + t - ro` is the box coordinate
        let o = tile.out_origin;
        let lo: [usize; 3] = std::array::from_fn(|a| lo[a].max(ro[a].saturating_sub(o[a])));
        let hi: [usize; 3] =
            std::array::from_fn(|a| hi[a].min((ro[a] + rd[a]).saturating_sub(o[a])));
        for z in lo[0]..hi[0] {
            for y in lo[1]..hi[1] {
                let trow = (z * ot[1] + y) * ot[2];
                let irow = ((o[0] + z - ro[0]) * rd[1] + o[1] + y - ro[1]) * rd[2];
                for x in lo[2]..hi[2] {
                    let (ti, ii) = (trow + x, irow + o[2] + x - ro[2]);
                    match self.blend {
                        Blend::None => {
                            for c in 0..self.channels {
                                self.sum[c * n + ii] = data[c * tn + ti];
                            }
                        }
                        Blend::Gaussian => {
                            let w = self.weights[ti];
                            self.wsum[ii] += w;
                            for c in 0..self.channels {
                                self.sum[c * n + ii] += w * data[c * tn + ti];
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The assembled result (`channels` x the box's dims).
    pub fn finish(mut self) -> ChannelVolume {
        if self.blend == Blend::Gaussian {
            let n = self.wsum.len();
            for c in 0..self.channels {
                for i in 0..n {
                    if self.wsum[i] > 0.0 {
                        self.sum[c * n + i] /= self.wsum[i];
                    }
                }
            }
        }
        ChannelVolume {
            data: self.sum,
            channels: self.channels,
            dims: self.dims,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_rules() {
        assert_eq!(axis_origins(5, 8, 0), vec![0]);
        assert_eq!(axis_origins(16, 8, 0), vec![0, 8]);
        assert_eq!(axis_origins(17, 8, 0), vec![0, 5, 9]);
        assert_eq!(axis_origins(20, 8, 4), vec![0, 4, 8, 12]);
        let o = axis_origins(17, 8, 0);
        let own = axis_owned(17, 8, &o);
        assert_eq!(own, vec![(0, 7), (7, 11), (11, 17)]);
    }

    #[test]
    fn errors() {
        assert!(plan_tiles([1, 10, 10], [1, 8, 8], [1, 9, 8], [0; 3]).is_err());
        assert!(
            plan_tiles([1, 10, 10], [1, 9, 8], [1, 8, 8], [0; 3]).is_err(),
            "odd context"
        );
        assert!(plan_tiles([1, 10, 10], [1, 8, 8], [1, 8, 8], [0, 8, 0]).is_err());
        assert!(plan_tiles([1, 0, 10], [1, 8, 8], [1, 8, 8], [0; 3]).is_err());
    }

    #[test]
    fn gaussian_is_peaked_and_positive() {
        let w = gaussian_weights([1, 8, 9], 0.125);
        assert!(w.iter().all(|&v| v > 0.0 && v <= 1.0));
        assert_eq!(w[3 * 9 + 4], w[4 * 9 + 4]); // symmetric around 3.5 in y
        assert!(w[3 * 9 + 4] > w[0]);
    }
}
