//! Tile geometry of a U-Net for overlap-tile inference (U-Net paper, Fig. 2).
//!
//! **Valid convolutions**: the network maps an input tile of `in` voxels to
//! the centred output tile of `out = in - 2·context` voxels; `in` is rounded
//! up to a size whose poolings all see even lengths. Tile origins are
//! multiples of `2^depth` (the pooling grid), so every tile sees the same
//! pooling phase as one whole-image pass over the mirror-extended image: the
//! tiled result *equals* the whole-image result (up to float rounding) and is
//! seamless whatever the overlap.
//!
//! **Same padding**: the output has the input's size, but voxels near a tile
//! edge see zero padding instead of the image. Each tile therefore keeps only
//! its centre: `context = min(in/8, 16)` (rounded up to the pooling grid) on
//! every side is read as mirrored/neighbouring image and dropped from the
//! output. The result is close to, not exactly, the whole-image result.
//!
//! Placement per axis: one tile if the image fits the output tile, else
//! origins `0, s, 2s, …` with step `s` = the output tile less the overlap,
//! rounded down to the pooling grid, until the image end is covered (the last
//! tile may reach past the end; its input there is mirrored and its output
//! discarded). Without blending each voxel comes from the tile that *owns* it
//! (neighbours split their overlap in the middle).

use crate::data::tiling::{axis_owned, grid_tiles, TilePlan};
use crate::error::{Error, Result};
use crate::models::{Padding, UNetConfig};

/// Input and output tile sizes of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileGeometry {
    /// Network input tile `(z, y, x)` (2D: z = 1).
    pub in_tile: [usize; 3],
    /// The part of the output that is kept, centred in `in_tile`.
    pub out_tile: [usize; 3],
    /// `(in_tile - out_tile) / 2`.
    pub context: [usize; 3],
    /// Pooling grid: tile origins are multiples of this.
    pub align: [usize; 3],
}

/// Geometry of one axis for a requested input length (`None`: no output).
fn axis(cfg: &UNetConfig, req: usize) -> Option<(usize, usize, usize)> {
    let a = 1usize << cfg.depth;
    match cfg.padding {
        Padding::Valid => {
            let l = cfg.seamless_input(req.max(1))?;
            let (out, _) = cfg.axis_out(l)?;
            Some((l, out, a))
        }
        Padding::Same => {
            let l = req.max(1).div_ceil(a) * a;
            let mut m = ((l / 8).div_ceil(a) * a).min(16usize.div_ceil(a) * a);
            while m > 0 && l < 2 * m + a {
                m -= a;
            }
            Some((l, l - 2 * m, a))
        }
    }
}

/// The geometry for a requested input tile (rounded up to a size that works).
pub fn tile_geometry(cfg: &UNetConfig, request: [usize; 3]) -> Result<TileGeometry> {
    let mut g = TileGeometry {
        in_tile: [1; 3],
        out_tile: [1; 3],
        context: [0; 3],
        align: [1; 3],
    };
    let first = 3 - cfg.dims;
    for a in first..3 {
        let (l, out, al) = axis(cfg, request[a]).ok_or_else(|| {
            Error::Other(format!(
                "tile {request:?}: no input size near {} gives this U-Net (depth {}, {:?} padding) an output",
                request[a], cfg.depth, cfg.padding
            ))
        })?;
        g.in_tile[a] = l;
        g.out_tile[a] = out;
        g.context[a] = (l - out) / 2;
        g.align[a] = al;
    }
    Ok(g)
}

/// The geometry for `request`, shrunk per axis to the smallest tile whose
/// output still covers `image` in one piece (small images need no big tile).
pub fn fit_geometry(
    cfg: &UNetConfig,
    request: [usize; 3],
    image: [usize; 3],
) -> Result<TileGeometry> {
    let mut g = tile_geometry(cfg, request)?;
    for (a, &n) in image.iter().enumerate().skip(3 - cfg.dims) {
        if g.out_tile[a] <= n {
            continue;
        }
        let mut l = 1;
        while l < g.in_tile[a] {
            match axis(cfg, l) {
                Some((li, out, _)) if out >= n && li < g.in_tile[a] => {
                    g.in_tile[a] = li;
                    g.out_tile[a] = out;
                    g.context[a] = (li - out) / 2;
                    break;
                }
                Some((li, _, _)) => l = li + 1,
                None => l += 1,
            }
        }
    }
    Ok(g)
}

/// Origins along one axis of length `n`.
fn origins(n: usize, out: usize, align: usize, overlap: f32) -> Result<Vec<usize>> {
    if n <= out {
        return Ok(vec![0]);
    }
    if out == 1 && align == 1 {
        // a 2D model's z axis through a volume: one tile per section
        return Ok((0..n).collect());
    }
    let keep = ((out as f32) * (1.0 - overlap.clamp(0.0, 0.9))).floor() as usize;
    let s = keep / align * align;
    if s == 0 {
        return Err(Error::Other(format!(
            "output tile {out} is smaller than the pooling grid {align} (with overlap {overlap}); use a larger tile (--tile) or a smaller --overlap"
        )));
    }
    let k = (n - out).div_ceil(s) + 1;
    Ok((0..k).map(|i| i * s).collect())
}

/// The tile grid of an image: output origins per axis and the range
/// `[lo, hi)` each owns (a few numbers per axis, whatever the image size).
#[derive(Clone, Debug, PartialEq)]
pub struct TileGrid {
    pub image: [usize; 3],
    pub origins: [Vec<usize>; 3],
    pub owned: [Vec<(usize, usize)>; 3],
}

/// The grid of [`plan`] for an image of `image` voxels.
pub fn grid(image: [usize; 3], g: &TileGeometry, overlap: f32) -> Result<TileGrid> {
    if image.contains(&0) {
        return Err(Error::Other(format!("empty image {image:?}")));
    }
    let mut org: [Vec<usize>; 3] = Default::default();
    let mut own: [Vec<(usize, usize)>; 3] = Default::default();
    for a in 0..3 {
        org[a] = origins(image[a], g.out_tile[a], g.align[a], overlap)?;
        own[a] = axis_owned(image[a], g.out_tile[a], &org[a]);
    }
    Ok(TileGrid {
        image,
        origins: org,
        owned: own,
    })
}

/// Tiles covering an image of `image` voxels; `overlap` is the share of the
/// output tile that neighbours overlap (at least; 0 is fine for valid convs).
pub fn plan(image: [usize; 3], g: &TileGeometry, overlap: f32) -> Result<TilePlan> {
    let grid = grid(image, g, overlap)?;
    Ok(plan_of(&grid, g, &grid.origins, &grid.owned))
}

/// The tiles of [`plan`] that write into the box `lo .. hi` of the image
/// (with `blend`: every tile whose output reaches into it; without: the
/// tiles owning a voxel of it), in the order of [`plan`]. Assembling the box
/// from these tiles gives the box of the whole-image result.
pub fn plan_box(
    grid: &TileGrid,
    g: &TileGeometry,
    lo: [usize; 3],
    hi: [usize; 3],
    blend: bool,
) -> TilePlan {
    let mut org: [Vec<usize>; 3] = Default::default();
    let mut own: [Vec<(usize, usize)>; 3] = Default::default();
    for a in 0..3 {
        for (i, &o) in grid.origins[a].iter().enumerate() {
            let (w0, w1) = if blend {
                (o, (o + g.out_tile[a]).min(grid.image[a]))
            } else {
                grid.owned[a][i]
            };
            if w0 < hi[a] && w1 > lo[a] {
                org[a].push(o);
                own[a].push(grid.owned[a][i]);
            }
        }
    }
    plan_of(grid, g, &org, &own)
}

fn plan_of(
    grid: &TileGrid,
    g: &TileGeometry,
    org: &[Vec<usize>; 3],
    own: &[Vec<(usize, usize)>; 3],
) -> TilePlan {
    TilePlan {
        image_dims: grid.image,
        in_tile: g.in_tile,
        out_tile: g.out_tile,
        context: g.context,
        tiles: grid_tiles(org, own, g.context),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Norm;

    fn small(padding: Padding) -> UNetConfig {
        let mut c = UNetConfig::ronneberger2015();
        c.base = 4;
        c.depth = 2;
        c.padding = padding;
        c.norm = Norm::Batch;
        c
    }

    #[test]
    fn valid_geometry_and_alignment() {
        let c = small(Padding::Valid);
        let g = tile_geometry(&c, [1, 60, 50]).unwrap();
        // depth 2 valid: in 60 -> 56/2=28 -> 24/2=12 -> 8 -> 16-4=12 -> 24-4=20
        assert_eq!(g.in_tile, [1, 60, 52]);
        assert_eq!(g.out_tile, [1, 20, 12]);
        assert_eq!(g.context, [0, 20, 20]);
        let p = plan([1, 50, 37], &g, 0.25).unwrap();
        for t in &p.tiles {
            assert!(t.out_origin.iter().zip(g.align).all(|(o, a)| o % a == 0));
        }
        // every pixel owned exactly once
        let mut seen = vec![0; 50 * 37];
        for t in &p.tiles {
            for y in t.own_lo[1]..t.own_hi[1] {
                for x in t.own_lo[2]..t.own_hi[2] {
                    seen[(t.out_origin[1] + y) * 37 + t.out_origin[2] + x] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
        let f = fit_geometry(&c, [1, 200, 200], [1, 17, 9]).unwrap();
        assert!(f.out_tile[1] >= 17 && f.out_tile[2] >= 9);
        assert!(f.in_tile[1] < 200);
    }

    #[test]
    fn same_geometry_keeps_the_centre() {
        let c = small(Padding::Same);
        let g = tile_geometry(&c, [1, 64, 30]).unwrap();
        assert_eq!(g.in_tile, [1, 64, 32]);
        assert_eq!(g.context, [0, 8, 4]);
        assert_eq!(g.out_tile, [1, 48, 24]);
    }
}
