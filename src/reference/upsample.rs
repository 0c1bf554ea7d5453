//! Plain CPU upsampling (f64), argument order as in `ops::upsample`.

use crate::graph::ops::UpsampleMode;
use crate::shape::{upsample_out, Shape};

/// Source taps `(i0, i1, lambda)` of output `o` on an axis of `n` inputs upsampled by `f`.
pub fn linear_taps(o: usize, f: usize, n: usize) -> (usize, usize, f64) {
    let src = ((o as f64 + 0.5) / f as f64 - 0.5).max(0.0);
    let i0 = (src.floor() as usize).min(n - 1);
    let i1 = (i0 + 1).min(n - 1);
    (i0, i1, src - i0 as f64)
}

/// `(input index, weight)` pairs of output `o` on one axis.
fn axis_weights(o: usize, f: usize, n: usize, mode: UpsampleMode) -> [(usize, f64); 2] {
    match mode {
        UpsampleMode::Nearest => [(o / f, 1.0), (o / f, 0.0)],
        UpsampleMode::Linear => {
            let (i0, i1, l) = linear_taps(o, f, n);
            [(i0, 1.0 - l), (i1, l)]
        }
    }
}

/// Visit every (output flat index, input flat index, weight) of one plane.
fn for_each_weight(
    xs: &Shape,
    ys: &Shape,
    factor: [usize; 3],
    mode: UpsampleMode,
    mut f: impl FnMut(usize, usize, f64),
) {
    let [di, hi, wi] = xs.spatial();
    let [do_, ho, wo] = ys.spatial();
    for od in 0..do_ {
        let wd = axis_weights(od, factor[0], di, mode);
        for oh in 0..ho {
            let wh = axis_weights(oh, factor[1], hi, mode);
            for ow in 0..wo {
                let ww = axis_weights(ow, factor[2], wi, mode);
                let o = (od * ho + oh) * wo + ow;
                for (id, a) in wd {
                    for (ih, b) in wh {
                        for (iw, c) in ww {
                            f(o, (id * hi + ih) * wi + iw, a * b * c);
                        }
                    }
                }
            }
        }
    }
}

/// Upsample by integer `factor` (`[D, H, W]`).
pub fn upsample(
    x: &[f32],
    xs: &Shape,
    factor: [usize; 3],
    mode: UpsampleMode,
) -> (Vec<f32>, Shape) {
    let ys = xs.with_spatial(
        upsample_out(xs.spatial(), factor).expect("reference upsample: positive factors"),
    );
    let (isp, osp) = (xs.spatial_numel(), ys.spatial_numel());
    let mut acc = vec![0f64; ys.numel()];
    for plane in 0..xs.n() * xs.c() {
        for_each_weight(xs, &ys, factor, mode, |o, i, w| {
            acc[plane * osp + o] += w * x[plane * isp + i] as f64
        });
    }
    (acc.into_iter().map(|v| v as f32).collect(), ys)
}

/// Gradient of [`upsample`] (`xs` is the input shape).
pub fn upsample_grad(dy: &[f32], factor: [usize; 3], mode: UpsampleMode, xs: &Shape) -> Vec<f32> {
    let ys = xs.with_spatial(
        upsample_out(xs.spatial(), factor).expect("reference upsample: positive factors"),
    );
    let (isp, osp) = (xs.spatial_numel(), ys.spatial_numel());
    let mut acc = vec![0f64; xs.numel()];
    for plane in 0..xs.n() * xs.c() {
        for_each_weight(xs, &ys, factor, mode, |o, i, w| {
            acc[plane * isp + i] += w * dy[plane * osp + o] as f64
        });
    }
    acc.into_iter().map(|v| v as f32).collect()
}
