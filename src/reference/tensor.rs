//! Plain CPU tensor plumbing, argument order as in `ops::tensor`.

use crate::graph::ops::PadMode;
use crate::shape::{pad_out, Shape};

pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

pub fn scale(x: &[f32], alpha: f32) -> Vec<f32> {
    x.iter().map(|v| alpha * v).collect()
}

/// `y += alpha * x`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = (*yi as f64 + alpha as f64 * *xi as f64) as f32;
    }
}

/// Channel concat of `(data, shape)` pairs with equal N and spatial sizes.
pub fn concat_channels(xs: &[(&[f32], Shape)]) -> (Vec<f32>, Shape) {
    let c: usize = xs.iter().map(|(_, s)| s.c()).sum();
    let ys = xs[0].1.with_c(c);
    let sp = ys.spatial_numel();
    let mut y = Vec::with_capacity(ys.numel());
    for n in 0..ys.n() {
        for (x, s) in xs {
            y.extend_from_slice(&x[n * s.c() * sp..(n + 1) * s.c() * sp]);
        }
    }
    (y, ys)
}

/// Split `dy` into blocks of `sizes` channels.
pub fn split_channels(dy: &[f32], ys: &Shape, sizes: &[usize]) -> Vec<Vec<f32>> {
    let sp = ys.spatial_numel();
    let mut out: Vec<Vec<f32>> = sizes.iter().map(|_| Vec::new()).collect();
    for n in 0..ys.n() {
        let mut c0 = 0;
        for (o, &c) in out.iter_mut().zip(sizes) {
            let start = (n * ys.c() + c0) * sp;
            o.extend_from_slice(&dy[start..start + c * sp]);
            c0 += c;
        }
    }
    out
}

/// Visit every element of `s` as (flat index, plane, [d, h, w]).
fn for_each(s: &Shape, mut f: impl FnMut(usize, usize, [usize; 3])) {
    let [d_, h_, w_] = s.spatial();
    let mut i = 0;
    for plane in 0..s.n() * s.c() {
        for d in 0..d_ {
            for h in 0..h_ {
                for w in 0..w_ {
                    f(i, plane, [d, h, w]);
                    i += 1;
                }
            }
        }
    }
}

fn at(x: &[f32], s: &Shape, plane: usize, p: [usize; 3]) -> f32 {
    let [_, h_, w_] = s.spatial();
    x[plane * s.spatial_numel() + (p[0] * h_ + p[1]) * w_ + p[2]]
}

/// Crop `x` to spatial `size` at `offset`.
pub fn crop(x: &[f32], xs: &Shape, offset: [usize; 3], size: [usize; 3]) -> (Vec<f32>, Shape) {
    let ys = xs.with_spatial(size);
    let mut y = vec![0f32; ys.numel()];
    for_each(&ys, |i, plane, p| {
        y[i] = at(
            x,
            xs,
            plane,
            [p[0] + offset[0], p[1] + offset[1], p[2] + offset[2]],
        );
    });
    (y, ys)
}

/// Backward of [`crop`]: `dy` placed at `offset` in zeros of `xs`.
pub fn crop_grad(dy: &[f32], ys: &Shape, offset: [usize; 3], xs: &Shape) -> Vec<f32> {
    let mut dx = vec![0f32; xs.numel()];
    let [_, h_, w_] = xs.spatial();
    for_each(ys, |i, plane, p| {
        dx[plane * xs.spatial_numel()
            + ((p[0] + offset[0]) * h_ + p[1] + offset[1]) * w_
            + p[2]
            + offset[2]] = dy[i];
    });
    dx
}

/// Source coordinate of padded position `o` on an axis of length `n` padded by `lo`.
fn source(o: usize, lo: usize, n: usize, mode: PadMode) -> Option<usize> {
    let i = o as isize - lo as isize;
    let n = n as isize;
    match mode {
        PadMode::Zero => (0..n).contains(&i).then_some(i as usize),
        PadMode::Reflect => {
            let r = if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            };
            Some(r as usize)
        }
    }
}

/// Pad by `lo` / `hi` per spatial axis.
pub fn pad(
    x: &[f32],
    xs: &Shape,
    lo: [usize; 3],
    hi: [usize; 3],
    mode: PadMode,
) -> (Vec<f32>, Shape) {
    let ys = xs.with_spatial(pad_out(xs.spatial(), lo, hi));
    let sp = xs.spatial();
    let mut y = vec![0f32; ys.numel()];
    for_each(&ys, |i, plane, p| {
        if let (Some(d), Some(h), Some(w)) = (
            source(p[0], lo[0], sp[0], mode),
            source(p[1], lo[1], sp[1], mode),
            source(p[2], lo[2], sp[2], mode),
        ) {
            y[i] = at(x, xs, plane, [d, h, w]);
        }
    });
    (y, ys)
}

/// Backward of [`pad`] (`xs` is the input shape): each padded position adds its
/// gradient to the input it reads.
pub fn pad_grad(
    dy: &[f32],
    ys: &Shape,
    lo: [usize; 3],
    hi: [usize; 3],
    mode: PadMode,
    xs: &Shape,
) -> Vec<f32> {
    let sp = xs.spatial();
    assert_eq!(
        ys.spatial(),
        pad_out(sp, lo, hi),
        "reference pad_grad: shapes do not fit"
    );
    let mut acc = vec![0f64; xs.numel()];
    for_each(ys, |i, plane, p| {
        if let (Some(d), Some(h), Some(w)) = (
            source(p[0], lo[0], sp[0], mode),
            source(p[1], lo[1], sp[1], mode),
            source(p[2], lo[2], sp[2], mode),
        ) {
            acc[plane * xs.spatial_numel() + (d * sp[1] + h) * sp[2] + w] += dy[i] as f64;
        }
    });
    acc.into_iter().map(|v| v as f32).collect()
}
