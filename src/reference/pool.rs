//! Plain CPU pooling (f64 accumulation), argument order as in `ops::pool`.
//!
//! Floor mode, dilation 1; taps in the padding are skipped (-inf for max,
//! 0 for average). Shapes are 5-D `N, C, D, H, W` (2D: D = 1).

use crate::shape::{self, Shape, Window};

/// The real input taps `[lo, hi)` of output `o` on axis `a`.
fn taps(o: usize, a: usize, win: &Window, len: usize) -> (usize, usize) {
    let start = (o * win.stride[a]) as isize - win.pad[a] as isize;
    let lo = start.max(0) as usize;
    let hi = ((start + win.kernel[a] as isize).max(0) as usize).min(len);
    (lo, hi.max(lo))
}

/// Visit every output position (plane-relative flat index) with its clipped window.
fn for_each_window(
    xs: &Shape,
    ys: &Shape,
    win: &Window,
    mut f: impl FnMut(usize, [(usize, usize); 3]),
) {
    let [di, hi, wi] = xs.spatial();
    let [do_, ho, wo] = ys.spatial();
    for od in 0..do_ {
        for oh in 0..ho {
            for ow in 0..wo {
                let r = [
                    taps(od, 0, win, di),
                    taps(oh, 1, win, hi),
                    taps(ow, 2, win, wi),
                ];
                f((od * ho + oh) * wo + ow, r);
            }
        }
    }
}

fn out_shape(xs: &Shape, win: &Window) -> Shape {
    shape::pool_out_shape(xs, win).unwrap_or_else(|e| panic!("reference pool: {e}"))
}

/// Max pooling: `(y, indices, y_shape)`; indices are flat `(d*H + h)*W + w` within the
/// input plane of the same `(n, c)`, first maximum in row-major scan order on ties.
pub fn max_pool(x: &[f32], xs: &Shape, win: &Window) -> (Vec<f32>, Vec<u32>, Shape) {
    let ys = out_shape(xs, win);
    let (isp, osp) = (xs.spatial_numel(), ys.spatial_numel());
    let [_, hi, wi] = xs.spatial();
    let mut y = vec![0f32; ys.numel()];
    let mut ind = vec![0u32; ys.numel()];
    for plane in 0..xs.n() * xs.c() {
        let xp = &x[plane * isp..(plane + 1) * isp];
        for_each_window(xs, &ys, win, |o, r| {
            let mut m = f32::NEG_INFINITY;
            let mut mi = (r[0].0 * hi + r[1].0) * wi + r[2].0;
            for d in r[0].0..r[0].1 {
                for h in r[1].0..r[1].1 {
                    for w in r[2].0..r[2].1 {
                        let i = (d * hi + h) * wi + w;
                        if xp[i] > m {
                            m = xp[i];
                            mi = i;
                        }
                    }
                }
            }
            y[plane * osp + o] = m;
            ind[plane * osp + o] = mi as u32;
        });
    }
    (y, ind, ys)
}

/// Gradient of max pooling: `dy` scattered (summed) to the argmax positions.
pub fn max_pool_grad(dy: &[f32], indices: &[u32], ys: &Shape, xs: &Shape) -> Vec<f32> {
    let (isp, osp) = (xs.spatial_numel(), ys.spatial_numel());
    let mut acc = vec![0f64; xs.numel()];
    for (o, (g, &j)) in dy.iter().zip(indices).enumerate() {
        acc[(o / osp) * isp + j as usize] += *g as f64;
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// Max-unpooling (PyTorch `max_unpool`): zeros except `y[n, c, indices[n, c, i]] = x[n, c, i]`;
/// `out` is the output spatial size. Indices outside the output are skipped.
pub fn max_unpool(x: &[f32], xs: &Shape, indices: &[u32], out: [usize; 3]) -> (Vec<f32>, Shape) {
    let ys = xs.with_spatial(out);
    let (isp, osp) = (xs.spatial_numel(), ys.spatial_numel());
    let mut y = vec![0f32; ys.numel()];
    for (i, (v, &j)) in x.iter().zip(indices).enumerate() {
        if (j as usize) < osp {
            y[(i / isp) * osp + j as usize] = *v;
        }
    }
    (y, ys)
}

/// Gradient of max-unpooling: `dx[n, c, i] = dy[n, c, indices[n, c, i]]`.
pub fn max_unpool_grad(dy: &[f32], ys: &Shape, indices: &[u32], xs: &Shape) -> Vec<f32> {
    let (isp, osp) = (xs.spatial_numel(), ys.spatial_numel());
    indices
        .iter()
        .enumerate()
        .map(|(i, &j)| {
            if (j as usize) < osp {
                dy[(i / isp) * osp + j as usize]
            } else {
                0.0
            }
        })
        .collect()
}

/// Divisor of an average window: `prod(kernel)` with `count_include_pad`, else the real taps.
fn divisor(r: &[(usize, usize); 3], win: &Window, count_include_pad: bool) -> f64 {
    if count_include_pad {
        win.kernel_numel() as f64
    } else {
        r.iter().map(|(lo, hi)| hi - lo).product::<usize>().max(1) as f64
    }
}

/// Average pooling.
pub fn avg_pool(x: &[f32], xs: &Shape, win: &Window, count_include_pad: bool) -> (Vec<f32>, Shape) {
    let ys = out_shape(xs, win);
    let (isp, osp) = (xs.spatial_numel(), ys.spatial_numel());
    let [_, hi, wi] = xs.spatial();
    let mut y = vec![0f32; ys.numel()];
    for plane in 0..xs.n() * xs.c() {
        let xp = &x[plane * isp..(plane + 1) * isp];
        for_each_window(xs, &ys, win, |o, r| {
            let mut acc = 0f64;
            for d in r[0].0..r[0].1 {
                for h in r[1].0..r[1].1 {
                    for w in r[2].0..r[2].1 {
                        acc += xp[(d * hi + h) * wi + w] as f64;
                    }
                }
            }
            y[plane * osp + o] = (acc / divisor(&r, win, count_include_pad)) as f32;
        });
    }
    (y, ys)
}

/// Gradient of average pooling (`xs` is the input shape).
pub fn avg_pool_grad(
    dy: &[f32],
    ys: &Shape,
    win: &Window,
    count_include_pad: bool,
    xs: &Shape,
) -> Vec<f32> {
    let (isp, osp) = (xs.spatial_numel(), ys.spatial_numel());
    let [_, hi, wi] = xs.spatial();
    let mut acc = vec![0f64; xs.numel()];
    for plane in 0..xs.n() * xs.c() {
        for_each_window(xs, ys, win, |o, r| {
            let g = dy[plane * osp + o] as f64 / divisor(&r, win, count_include_pad);
            for d in r[0].0..r[0].1 {
                for h in r[1].0..r[1].1 {
                    for w in r[2].0..r[2].1 {
                        acc[plane * isp + (d * hi + h) * wi + w] += g;
                    }
                }
            }
        });
    }
    acc.into_iter().map(|v| v as f32).collect()
}
