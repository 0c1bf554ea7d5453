//! Plain CPU convolutions (f64 accumulation), argument order as in `ops::conv`.
//!
//! Shapes are 5-D `N, C, D, H, W` (2D: D = 1); weights `O, C, kD, kH, kW`.
//! Transposed convolutions are the adjoint of convolution: the ConvTranspose
//! weight `(C_in, C_out, k..)` is the conv weight `(O = C_in, C = C_out, k..)`.

use crate::shape::{self, Shape, Window};

/// Index of `[n, c, d, h, w]` in a row-major 5-D tensor of `s`.
#[inline]
pub fn idx5(s: &Shape, n: usize, c: usize, d: usize, h: usize, w: usize) -> usize {
    (((n * s.dims[1] + c) * s.dims[2] + d) * s.dims[3] + h) * s.dims[4] + w
}

/// Input coordinate of output position `o` and tap `k` on one axis, if inside `0..len`.
#[inline]
fn tap(o: usize, k: usize, a: usize, win: &Window, len: usize) -> Option<usize> {
    let i = (o * win.stride[a] + k * win.dilation[a]) as isize - win.pad[a] as isize;
    (i >= 0 && (i as usize) < len).then_some(i as usize)
}

/// Visit every (output position, tap, input position) triple of a convolution.
fn for_each_tap(
    xs: &Shape,
    ys: &Shape,
    win: &Window,
    mut f: impl FnMut([usize; 3], [usize; 3], [usize; 3]),
) {
    let [di, hi, wi] = xs.spatial();
    let [do_, ho, wo] = ys.spatial();
    for od in 0..do_ {
        for oh in 0..ho {
            for ow in 0..wo {
                for kd in 0..win.kernel[0] {
                    let Some(id) = tap(od, kd, 0, win, di) else {
                        continue;
                    };
                    for kh in 0..win.kernel[1] {
                        let Some(ih) = tap(oh, kh, 1, win, hi) else {
                            continue;
                        };
                        for kw in 0..win.kernel[2] {
                            let Some(iw) = tap(ow, kw, 2, win, wi) else {
                                continue;
                            };
                            f([od, oh, ow], [kd, kh, kw], [id, ih, iw]);
                        }
                    }
                }
            }
        }
    }
}

/// `y = conv(x, w) + b`.
pub fn conv_fwd(
    x: &[f32],
    xs: &Shape,
    w: &[f32],
    ws: &Shape,
    b: Option<&[f32]>,
    win: &Window,
) -> (Vec<f32>, Shape) {
    let (o_ch, c_ch) = (ws.dims[0], ws.dims[1]);
    let ys =
        shape::conv_out_shape(xs, ws, win).unwrap_or_else(|e| panic!("reference conv_fwd: {e}"));
    let mut acc = vec![0f64; ys.numel()];
    for n in 0..xs.n() {
        for o in 0..o_ch {
            for c in 0..c_ch {
                for_each_tap(xs, &ys, win, |op, k, ip| {
                    let wv = w[idx5(ws, o, c, k[0], k[1], k[2])] as f64;
                    let xv = x[idx5(xs, n, c, ip[0], ip[1], ip[2])] as f64;
                    acc[idx5(&ys, n, o, op[0], op[1], op[2])] += wv * xv;
                });
            }
        }
    }
    if let Some(b) = b {
        let sp = ys.spatial_numel();
        for (i, a) in acc.iter_mut().enumerate() {
            *a += b[(i / sp) % o_ch] as f64;
        }
    }
    (acc.into_iter().map(|v| v as f32).collect(), ys)
}

/// `dx` of a convolution: the adjoint of `conv_fwd` in `x` (`xs` is the input shape).
pub fn conv_dgrad(
    dy: &[f32],
    ys: &Shape,
    w: &[f32],
    ws: &Shape,
    xs: &Shape,
    win: &Window,
) -> Vec<f32> {
    let (o_ch, c_ch) = (ws.dims[0], ws.dims[1]);
    let mut acc = vec![0f64; xs.numel()];
    for n in 0..xs.n() {
        for o in 0..o_ch {
            for c in 0..c_ch {
                for_each_tap(xs, ys, win, |op, k, ip| {
                    let wv = w[idx5(ws, o, c, k[0], k[1], k[2])] as f64;
                    let g = dy[idx5(ys, n, o, op[0], op[1], op[2])] as f64;
                    acc[idx5(xs, n, c, ip[0], ip[1], ip[2])] += wv * g;
                });
            }
        }
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// `dw` of a convolution (`ws` is the weight shape).
pub fn conv_wgrad(
    x: &[f32],
    xs: &Shape,
    dy: &[f32],
    ys: &Shape,
    ws: &Shape,
    win: &Window,
) -> Vec<f32> {
    let (o_ch, c_ch) = (ws.dims[0], ws.dims[1]);
    let mut acc = vec![0f64; ws.numel()];
    for n in 0..xs.n() {
        for o in 0..o_ch {
            for c in 0..c_ch {
                for_each_tap(xs, ys, win, |op, k, ip| {
                    let g = dy[idx5(ys, n, o, op[0], op[1], op[2])] as f64;
                    let xv = x[idx5(xs, n, c, ip[0], ip[1], ip[2])] as f64;
                    acc[idx5(ws, o, c, k[0], k[1], k[2])] += g * xv;
                });
            }
        }
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// Sum over batch and space per channel (the bias gradient).
pub fn channel_sum(dy: &[f32], ys: &Shape) -> Vec<f32> {
    let sp = ys.spatial_numel();
    let mut acc = vec![0f64; ys.c()];
    for (i, v) in dy.iter().enumerate() {
        acc[(i / sp) % ys.c()] += *v as f64;
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// `y = conv_transpose(x, w) + b` with PyTorch's ConvTranspose weight `(C_in, C_out, k..)`.
pub fn conv_transpose_fwd(
    x: &[f32],
    xs: &Shape,
    w: &[f32],
    ws: &Shape,
    b: Option<&[f32]>,
    win: &Window,
) -> (Vec<f32>, Shape) {
    let ys = shape::conv_transpose_out_shape(xs, ws, win)
        .unwrap_or_else(|e| panic!("reference conv_transpose_fwd: {e}"));
    let mut y = conv_dgrad(x, xs, w, ws, &ys, win);
    if let Some(b) = b {
        let sp = ys.spatial_numel();
        for (i, v) in y.iter_mut().enumerate() {
            *v = (*v as f64 + b[(i / sp) % ys.c()] as f64) as f32;
        }
    }
    (y, ys)
}

/// `dx` of a transposed convolution: a convolution of `dy` with the same weight.
pub fn conv_transpose_dgrad(
    dy: &[f32],
    ys: &Shape,
    w: &[f32],
    ws: &Shape,
    win: &Window,
) -> (Vec<f32>, Shape) {
    let mut win = *win;
    win.output_padding = [0; 3];
    conv_fwd(dy, ys, w, ws, None, &win)
}

/// `dw` of a transposed convolution, weight `(C_in, C_out, k..)`.
pub fn conv_transpose_wgrad(
    x: &[f32],
    xs: &Shape,
    dy: &[f32],
    ys: &Shape,
    ws: &Shape,
    win: &Window,
) -> Vec<f32> {
    conv_wgrad(dy, ys, x, xs, ws, win)
}
