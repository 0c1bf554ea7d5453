//! Resizing volumes in the (y, x) plane: linear for intensities and
//! probabilities, nearest neighbour for labels. Voxel centres are aligned
//! (output voxel `i` of `m` samples the input at `(i + 0.5) · n / m - 0.5`,
//! clamped to the input), so a resize to the same size is the identity and
//! a resize there and back keeps the image where it was. Used by
//! `wunet predict --scale` ([`crate::infer::predict::PredictOptions::scale`])
//! and the zoom perturbation of `wunet eval --perturb`.

use super::{Array3, ChannelVolume, Volume};

/// The (y, x) size `round(f · n)` (at least 1) of `dims` zoomed by `f`; z is kept.
pub fn zoomed_dims(dims: [usize; 3], f: f32) -> [usize; 3] {
    let s = |n: usize| ((n as f64 * f as f64).round() as usize).max(1);
    [dims[0], s(dims[1]), s(dims[2])]
}

/// One output sample of a linear resize: the two input indices and the
/// weight of the second.
pub type Tap = (usize, usize, f32);

/// For each output index `0..m` of an axis resized from `n` samples, its
/// [`Tap`].
pub fn linear_taps(n: usize, m: usize) -> Vec<Tap> {
    (0..m)
        .map(|i| {
            let p = ((i as f64 + 0.5) * n as f64 / m as f64 - 0.5).clamp(0.0, (n - 1) as f64);
            let a = p.floor() as usize;
            (a, (a + 1).min(n - 1), (p - a as f64) as f32)
        })
        .collect()
}

/// The input range `[lo, hi)` that `taps` read.
pub fn taps_span(taps: &[Tap]) -> [usize; 2] {
    let lo = taps.iter().map(|t| t.0).min().unwrap_or(0);
    let hi = taps.iter().map(|t| t.1 + 1).max().unwrap_or(lo);
    [lo, hi]
}

/// For each output index `0..m`, the nearest input index.
fn nearest_taps(n: usize, m: usize) -> Vec<usize> {
    (0..m)
        .map(|i| (((i as f64 + 0.5) * n as f64 / m as f64) as usize).min(n - 1))
        .collect()
}

/// `src` resized (bilinearly) to `(y, x)` = `out[1..]` per z-section;
/// `out[0]` must equal the source's depth.
pub fn resize_linear(src: &Volume, out: [usize; 3]) -> Volume {
    let [d, h, w] = src.dims;
    debug_assert_eq!(d, out[0]);
    resample(
        src,
        [0, 0],
        &linear_taps(h, out[1]),
        &linear_taps(w, out[2]),
    )
}

/// `src`, a window whose (y, x) origin in a larger image is `origin`,
/// sampled per z-section at the taps `ty` and `tx` (indices of the larger
/// image, all inside the window): the part of that image's resize that the
/// taps select, bit for bit ([`resize_linear`] is the whole-image case).
pub fn resample(src: &Volume, origin: [usize; 2], ty: &[Tap], tx: &[Tap]) -> Volume {
    let [d, h, w] = src.dims;
    let (ty, tx): (Vec<Tap>, Vec<Tap>) = (
        ty.iter()
            .map(|&(a, b, f)| (a - origin[0], b - origin[0], f))
            .collect(),
        tx.iter()
            .map(|&(a, b, f)| (a - origin[1], b - origin[1], f))
            .collect(),
    );
    let mut data = Vec::with_capacity(d * ty.len() * tx.len());
    for z in 0..d {
        let plane = &src.data[z * h * w..(z + 1) * h * w];
        for &(ya, yb, fy) in &ty {
            let (ra, rb) = (&plane[ya * w..(ya + 1) * w], &plane[yb * w..(yb + 1) * w]);
            data.extend(tx.iter().map(|&(xa, xb, fx)| {
                let a = ra[xa] + fx * (ra[xb] - ra[xa]);
                let b = rb[xa] + fx * (rb[xb] - rb[xa]);
                a + fy * (b - a)
            }));
        }
    }
    Array3 {
        data,
        dims: [d, ty.len(), tx.len()],
    }
}

/// `src` resized to `(y, x)` = `out[1..]` by nearest neighbour (labels, ids).
pub fn resize_nearest<T: Copy>(src: &Array3<T>, out: [usize; 3]) -> Array3<T> {
    let [d, h, w] = src.dims;
    let (ty, tx) = (nearest_taps(h, out[1]), nearest_taps(w, out[2]));
    let mut data = Vec::with_capacity(d * out[1] * out[2]);
    for z in 0..d {
        for &y in &ty {
            let row = (z * h + y) * w;
            data.extend(tx.iter().map(|&x| src.data[row + x]));
        }
    }
    Array3 { data, dims: out }
}

/// Every channel of `src` resized linearly to `out` (see [`resize_linear`]).
pub fn resize_channels(src: &ChannelVolume, out: [usize; 3]) -> ChannelVolume {
    let [_, h, w] = src.dims;
    resample_channels(
        src,
        [0, 0],
        &linear_taps(h, out[1]),
        &linear_taps(w, out[2]),
    )
}

/// Every channel of `src` sampled at the taps `ty`, `tx` (see [`resample`]).
pub fn resample_channels(
    src: &ChannelVolume,
    origin: [usize; 2],
    ty: &[Tap],
    tx: &[Tap],
) -> ChannelVolume {
    let n = src.dims[0] * src.dims[1] * src.dims[2];
    let out = [src.dims[0], ty.len(), tx.len()];
    let mut r = ChannelVolume::zeros(src.channels, out);
    let m = out[0] * out[1] * out[2];
    for c in 0..src.channels {
        let ch = Array3 {
            data: src.data[c * n..(c + 1) * n].to_vec(),
            dims: src.dims,
        };
        r.data[c * m..(c + 1) * m].copy_from_slice(&resample(&ch, origin, ty, tx).data);
    }
    r
}

/// The (y, x) resize of a whole volume by a factor, taken window by window:
/// block-wise prediction with `--scale` (see [`crate::infer::blocks`]) runs
/// the network on the resized volume's tiles and resizes the probabilities
/// back, chunk by chunk, with the same taps as [`resize_linear`] on the
/// whole volume, so the result equals the in-memory one bit for bit.
#[derive(Clone, Debug)]
pub struct Zoom {
    /// The source volume `(z, y, x)`.
    pub source: [usize; 3],
    /// The resized volume ([`zoomed_dims`]).
    pub resized: [usize; 3],
    /// y and x taps of each resized index (source indices).
    there: [Vec<Tap>; 2],
    /// y and x taps of each source index (resized indices).
    back: [Vec<Tap>; 2],
}

impl Zoom {
    /// The zoom of `source` by `f`; `None` when it keeps the size.
    pub fn new(source: [usize; 3], f: f32) -> Option<Zoom> {
        let resized = zoomed_dims(source, f);
        (resized != source).then(|| Zoom {
            source,
            resized,
            there: [1, 2].map(|a| linear_taps(source[a], resized[a])),
            back: [1, 2].map(|a| linear_taps(resized[a], source[a])),
        })
    }

    /// The resized box `[lo, hi)` whose probabilities the source box
    /// `[lo, hi)` is resampled from (z is kept).
    pub fn resized_box(&self, lo: [usize; 3], hi: [usize; 3]) -> ([usize; 3], [usize; 3]) {
        span_of(&self.back, lo, hi)
    }

    /// The source box `[lo, hi)` that the resized box `[lo, hi)` reads.
    pub fn source_box(&self, lo: [usize; 3], hi: [usize; 3]) -> ([usize; 3], [usize; 3]) {
        span_of(&self.there, lo, hi)
    }

    /// The resized box `[lo, hi)` from `src`, the source box at `src_lo`
    /// (at least [`Zoom::source_box`] of it).
    pub fn resize_box(
        &self,
        src: &Volume,
        src_lo: [usize; 3],
        lo: [usize; 3],
        hi: [usize; 3],
    ) -> Volume {
        let (ty, tx) = (&self.there[0][lo[1]..hi[1]], &self.there[1][lo[2]..hi[2]]);
        resample(src, [src_lo[1], src_lo[2]], ty, tx)
    }

    /// The source box `[lo, hi)` of `probs`, the resized box at `probs_lo`
    /// (at least [`Zoom::resized_box`] of it).
    pub fn back_box(
        &self,
        probs: &ChannelVolume,
        probs_lo: [usize; 3],
        lo: [usize; 3],
        hi: [usize; 3],
    ) -> ChannelVolume {
        let (ty, tx) = (&self.back[0][lo[1]..hi[1]], &self.back[1][lo[2]..hi[2]]);
        resample_channels(probs, [probs_lo[1], probs_lo[2]], ty, tx)
    }
}

/// The span over the (y, x) `taps` of the indices `[lo, hi)`; z is kept.
fn span_of(taps: &[Vec<Tap>; 2], lo: [usize; 3], hi: [usize; 3]) -> ([usize; 3], [usize; 3]) {
    let [y0, y1] = taps_span(&taps[0][lo[1]..hi[1]]);
    let [x0, x1] = taps_span(&taps[1][lo[2]..hi[2]]);
    ([lo[0], y0, x0], [hi[0], y1, x1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity_and_linear_ramps_stay_linear() {
        let v = Array3::from_vec([2, 3, 5], (0..30).map(|i| i as f32).collect()).unwrap();
        assert_eq!(resize_linear(&v, v.dims).data, v.data);
        assert_eq!(resize_nearest(&v, v.dims).data, v.data);
        // x ramp 0..8 sampled at 2x: centre-aligned positions (i + 0.5) / 2 - 0.5
        let r = Array3::from_vec([1, 1, 8], (0..8).map(|i| i as f32).collect()).unwrap();
        let up = resize_linear(&r, [1, 1, 16]);
        for i in 1..15 {
            let want = ((i as f32 + 0.5) / 2.0 - 0.5).clamp(0.0, 7.0);
            assert!((up.data[i] - want).abs() < 1e-5, "{i}");
        }
        assert_eq!(zoomed_dims([3, 10, 7], 1.33), [3, 13, 9]);
        assert_eq!(zoomed_dims([1, 10, 7], 0.01), [1, 1, 1]);
    }

    #[test]
    fn nearest_keeps_the_label_set_and_halving_picks_every_other() {
        let l = Array3::from_vec([1, 4, 4], (0..16).map(|i| i % 3).collect()).unwrap();
        let h = resize_nearest(&l, [1, 2, 2]);
        assert_eq!(h.data, vec![l.data[5], l.data[7], l.data[13], l.data[15]]);
        let u = resize_nearest(&l, [1, 7, 9]);
        assert!(u.data.iter().all(|v| (0..3).contains(v)));
        let c = ChannelVolume {
            channels: 2,
            dims: [1, 2, 2],
            data: vec![0.2; 4].into_iter().chain(vec![0.8; 4]).collect(),
        };
        let rc = resize_channels(&c, [1, 3, 5]);
        assert!(rc.data[..15].iter().all(|&v| (v - 0.2).abs() < 1e-6));
        assert!(rc.data[15..].iter().all(|&v| (v - 0.8).abs() < 1e-6));
    }

    /// The `[lo, hi)` box of `v` (channels kept).
    fn cut(v: &ChannelVolume, lo: [usize; 3], hi: [usize; 3]) -> ChannelVolume {
        let d: [usize; 3] = std::array::from_fn(|a| hi[a] - lo[a]);
        let mut r = ChannelVolume::zeros(v.channels, d);
        let mut k = 0;
        for c in 0..v.channels {
            for z in lo[0]..hi[0] {
                for y in lo[1]..hi[1] {
                    for x in lo[2]..hi[2] {
                        r.data[k] = v.data[((c * v.dims[0] + z) * v.dims[1] + y) * v.dims[2] + x];
                        k += 1;
                    }
                }
            }
        }
        r
    }

    #[test]
    fn zoom_by_windows_equals_the_whole_resize_bit_for_bit() {
        let dims = [2, 13, 17];
        let vals = (0..numel3(dims)).map(|i| ((i * 7919) % 101) as f32 / 7.0 - 3.0);
        let v = ChannelVolume {
            channels: 1,
            dims,
            data: vals.collect(),
        };
        for f in [1.7f32, 0.6, 3.0] {
            let z = Zoom::new(dims, f).expect("a zoom that changes the size");
            let whole = resize_channels(&v, z.resized);
            let back = resize_channels(&whole, dims);
            let [_, m1, m2] = z.resized;
            for (lo, hi) in [
                ([0, 0, 0], [2, m1, m2]),
                ([1, 2, 3], [2, m1 / 2 + 1, m2 - 1]),
                ([0, m1 - 1, 0], [1, m1, 1]),
            ] {
                let (slo, shi) = z.source_box(lo, hi);
                let src = cut(&v, slo, shi);
                let vol = Array3 {
                    data: src.data.clone(),
                    dims: src.dims,
                };
                let got = z.resize_box(&vol, slo, lo, hi);
                assert_eq!(
                    got.data,
                    cut(&whole, lo, hi).data,
                    "f {f} box {lo:?}..{hi:?}"
                );
            }
            for (lo, hi) in [
                ([0, 0, 0], dims),
                ([1, 5, 2], [2, 11, 16]),
                ([0, 12, 16], [1, 13, 17]),
            ] {
                let (rlo, rhi) = z.resized_box(lo, hi);
                let got = z.back_box(&cut(&whole, rlo, rhi), rlo, lo, hi);
                assert_eq!(
                    got.data,
                    cut(&back, lo, hi).data,
                    "back, f {f} box {lo:?}..{hi:?}"
                );
            }
        }
        assert!(
            Zoom::new(dims, 1.01).is_none(),
            "13 and 17 samples stay 13 and 17"
        );
    }

    fn numel3(d: [usize; 3]) -> usize {
        d[0] * d[1] * d[2]
    }
}
