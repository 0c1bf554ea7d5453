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

/// For each output index `0..m`, the two input indices and the weight of the second.
fn linear_taps(n: usize, m: usize) -> Vec<(usize, usize, f32)> {
    (0..m)
        .map(|i| {
            let p = ((i as f64 + 0.5) * n as f64 / m as f64 - 0.5).clamp(0.0, (n - 1) as f64);
            let a = p.floor() as usize;
            (a, (a + 1).min(n - 1), (p - a as f64) as f32)
        })
        .collect()
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
    let (ty, tx) = (linear_taps(h, out[1]), linear_taps(w, out[2]));
    let mut data = Vec::with_capacity(d * out[1] * out[2]);
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
    Array3 { data, dims: out }
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
    let n = src.dims[0] * src.dims[1] * src.dims[2];
    let mut r = ChannelVolume::zeros(src.channels, out);
    let m = out[0] * out[1] * out[2];
    for c in 0..src.channels {
        let ch = Array3 {
            data: src.data[c * n..(c + 1) * n].to_vec(),
            dims: src.dims,
        };
        r.data[c * m..(c + 1) * m].copy_from_slice(&resize_linear(&ch, out).data);
    }
    r
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
}
