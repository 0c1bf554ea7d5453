//! The up-convolution kernel `kernels/conv_up.wgsl`: transposed convolutions whose
//! kernel equals the stride on every axis (padding 0, dilation 1, no output padding),
//! such as the U-Net's 2x2 (2x2x2) stride-2 up-convolution. Every output voxel gets
//! exactly one tap, so forward, grad input and grad weight are plain GEMMs over the
//! kernel phases; see the WGSL header for the tiles and thread mappings.

use crate::error::Result;
use crate::gpu::{DType, Recorder, Scratch, Tensor};
use crate::ops::{dummy, groups_for};
use crate::shape::{Shape, Window};
use bytemuck::{Pod, Zeroable};

/// Uniform block of `conv_up` (see the WGSL header).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct UpParams {
    n: u32,
    c: u32,
    o: u32,
    flags: u32,
    inp: [u32; 3],
    in_sp: u32,
    out_h: u32,
    out_w: u32,
    out_hw: u32,
    out_sp: u32,
    m: u32,
    chunk: u32,
    aux: [u32; 2],
}

/// Whether `conv_up` computes a transposed convolution with this window: kernel ==
/// stride on every axis, padding 0, dilation 1, no output padding, and a kernel
/// width of 1, 2, 4 or 8 (its tile layout interleaves the kW phases of an output row).
pub fn qualifies(win: &Window) -> bool {
    (0..3).all(|a| {
        win.kernel[a] == win.stride[a]
            && win.pad[a] == 0
            && win.dilation[a] == 1
            && win.output_padding[a] == 0
    }) && matches!(win.kernel[2], 1 | 2 | 4 | 8)
}

/// What `qualifies` asks for, for error messages.
pub const REQUIREMENT: &str =
    "kernel == stride on every axis, kernel width 1, 2, 4 or 8, padding 0, dilation 1, output_padding 0";

/// `xs`: the transposed convolution's input (C_in channels), `ys`: its output (C_out).
fn params(xs: &Shape, ys: &Shape, win: &Window, has_bias: bool) -> UpParams {
    let [d, h, w] = xs.spatial();
    let [_, oh, ow] = ys.spatial();
    UpParams {
        n: xs.n() as u32,
        c: xs.c() as u32,
        o: ys.c() as u32,
        flags: has_bias as u32,
        inp: [d as u32, h as u32, w as u32],
        in_sp: xs.spatial_numel() as u32,
        out_h: oh as u32,
        out_w: ow as u32,
        out_hw: (oh * ow) as u32,
        out_sp: ys.spatial_numel() as u32,
        m: (ys.c() * win.kernel_numel()) as u32,
        ..Default::default()
    }
}

fn overrides(win: &Window) -> [(&'static str, f64); 3] {
    [
        ("KD", win.kernel[0] as f64),
        ("KH", win.kernel[1] as f64),
        ("KW", win.kernel[2] as f64),
    ]
}

/// `y = conv_transpose(x, w) + b` (x: C_in side, y: C_out side).
pub fn forward(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    win: &Window,
    y: &Tensor,
) -> Result<()> {
    let (xs, ys) = (x.shape, y.shape);
    let p = params(&xs, &ys, win, b.is_some());
    let cols = xs.n() * xs.spatial_numel();
    let groups = rec.grid(groups_for(p.m as usize, 64) * groups_for(cols, 128))?;
    let bias = b.unwrap_or(w);
    rec.dispatch(
        "conv_up",
        "main_fwd",
        &overrides(win),
        &p,
        &[x, x, w, bias, y, &dummy(rec, DType::F32)?],
        groups,
    )
}

/// `dx` of `conv_transpose` (dx: C_in side, dy: C_out side).
pub fn grad_input(
    rec: &mut Recorder,
    dy: &Tensor,
    w: &Tensor,
    win: &Window,
    dx: &Tensor,
) -> Result<()> {
    let (xs, ys) = (dx.shape, dy.shape);
    let p = params(&xs, &ys, win, false);
    let cols = xs.n() * xs.spatial_numel();
    let groups = rec.grid(groups_for(xs.c(), 64) * groups_for(cols, 128))?;
    rec.dispatch(
        "conv_up",
        "main_dgrad",
        &overrides(win),
        &p,
        &[dy, dy, w, w, dx, &dummy(rec, DType::F32)?],
        groups,
    )
}

/// Workgroups the grad-weight split-K aims at (a few per SM of a large GPU) and the
/// fewest positions a split covers.
const WGRAD_TARGET_GROUPS: usize = 256;
const WGRAD_MIN_CHUNK: usize = 256;

/// `(splits, chunk)` of the grad-weight reduction over `positions` input positions for
/// `tiles` output tiles; `chunk` is a multiple of 16 (the K slice). Depends on the
/// shapes only, so the summation order (and the result) is the same on every run.
fn wgrad_splits(tiles: usize, positions: usize) -> (usize, usize) {
    let splits = WGRAD_TARGET_GROUPS
        .div_ceil(tiles.max(1))
        .clamp(1, positions.div_ceil(WGRAD_MIN_CHUNK).max(1));
    let chunk = (positions.div_ceil(splits).div_ceil(16) * 16).max(16);
    (positions.div_ceil(chunk).max(1), chunk)
}

/// `dw` of `conv_transpose` (weight `C_in, C_out, k..`): split-K partials summed in a
/// fixed order by `reduce::sum_splits` (deterministic), or written directly when one
/// split suffices.
pub fn grad_weight(
    rec: &mut Recorder,
    x: &Tensor,
    dy: &Tensor,
    win: &Window,
    dw: &Tensor,
) -> Result<()> {
    let (xs, ys) = (x.shape, dy.shape);
    let mut p = params(&xs, &ys, win, false);
    let positions = xs.n() * xs.spatial_numel();
    let tiles = groups_for(xs.c(), 64) * groups_for(p.m as usize, 128);
    let (splits, chunk) = wgrad_splits(tiles as usize, positions);
    p.chunk = chunk as u32;
    let mut groups = rec.grid(tiles)?;
    groups[2] = splits as u32;
    let ov = overrides(win);
    if splits == 1 {
        let (w_dummy, y_dummy) = (dummy(rec, DType::F32)?, dummy(rec, x.dtype)?);
        return rec.dispatch(
            "conv_up",
            "main_wgrad",
            &ov,
            &p,
            &[x, dy, &w_dummy, &w_dummy, &y_dummy, dw],
            groups,
        );
    }
    let part = rec.scratch(Scratch::Partials, Shape::vector(splits * dw.numel()))?;
    rec.dispatch(
        "conv_up",
        "main_wgrad",
        &ov,
        &p,
        &[
            x,
            dy,
            &dummy(rec, DType::F32)?,
            &dummy(rec, DType::F32)?,
            &dummy(rec, x.dtype)?,
            &part,
        ],
        groups,
    )?;
    crate::ops::reduce::sum_splits_into(rec, &part, splits, dw, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wgrad_splits_cover_every_position_once() {
        for &(tiles, positions) in &[(4, 16384), (1, 7), (2, 300), (600, 100_000), (1, 1)] {
            let (splits, chunk) = wgrad_splits(tiles, positions);
            assert_eq!(chunk % 16, 0);
            assert!(splits * chunk >= positions && (splits - 1) * chunk < positions);
        }
        assert_eq!(wgrad_splits(4, 16384), (64, 256));
    }

    #[test]
    fn only_kernel_equals_stride_windows_qualify() {
        assert!(qualifies(&Window::cube(2, 2, 2, 0)));
        assert!(qualifies(&Window::cube(3, 2, 2, 0)));
        assert!(qualifies(&Window::new(
            &[1, 2, 2],
            &[1, 2, 2],
            &[0; 3],
            &[1; 3]
        )));
        assert!(qualifies(&Window::new(&[3, 2], &[3, 2], &[0; 2], &[1; 2])));
        assert!(!qualifies(&Window::cube(2, 3, 3, 0)));
        assert!(!qualifies(&Window::cube(2, 2, 2, 1)));
        assert!(!qualifies(&Window::cube(2, 2, 1, 0)));
        assert!(!qualifies(
            &Window::cube(2, 2, 2, 0).with_output_padding(&[1, 1])
        ));
    }
}
