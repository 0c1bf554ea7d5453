//! Every size formula of the engine, in one place.
//!
//! Tensors are 5-D `N, C, D, H, W` (row-major, W fastest). A 2D tensor has
//! `D = 1` and `rank == 4`; the rank only affects how shapes are printed and
//! how files are read and written.

use crate::error::{Error, Result};
use std::fmt;

/// Element type of a tensor. F16 holds activations and activation gradients
/// in mixed precision (see [`crate::gpu::Precision`]); everything else is 4 bytes wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    U32,
    I32,
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::F16 => 2,
            DType::F32 | DType::U32 | DType::I32 => 4,
        }
    }
}

/// Shape of an activation tensor: `[N, C, D, H, W]` plus the logical rank (4 or 5).
/// Shapes of other ranks (a weight `O,C,kD,kH,kW`, a bias `[C]`, a scalar) use
/// the same type with leading size-1 axes; `rank` records how to print them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub dims: [usize; 5],
    pub rank: u8,
}

impl Shape {
    pub fn new4(n: usize, c: usize, h: usize, w: usize) -> Self {
        Shape {
            dims: [n, c, 1, h, w],
            rank: 4,
        }
    }
    pub fn new5(n: usize, c: usize, d: usize, h: usize, w: usize) -> Self {
        Shape {
            dims: [n, c, d, h, w],
            rank: 5,
        }
    }
    /// A shape of any rank 0..=5. Rank 5 is `N, C, D, H, W`; rank 4 is
    /// `N, C, H, W` (D = 1 is inserted); lower ranks are right-aligned.
    pub fn from_slice(s: &[usize]) -> Result<Self> {
        let dims = match s.len() {
            5 => [s[0], s[1], s[2], s[3], s[4]],
            4 => [s[0], s[1], 1, s[2], s[3]],
            0..=3 => {
                let mut d = [1usize; 5];
                d[5 - s.len()..].copy_from_slice(s);
                d
            }
            _ => {
                return Err(Error::shape(
                    "shape",
                    format!("rank {} > 5 in {:?}", s.len(), s),
                ))
            }
        };
        Ok(Shape {
            dims,
            rank: s.len() as u8,
        })
    }
    /// Activation shape for `spatial` of 2 or 3 axes (`[H, W]` or `[D, H, W]`).
    pub fn activation(n: usize, c: usize, spatial: &[usize]) -> Self {
        match spatial.len() {
            2 => Self::new4(n, c, spatial[0], spatial[1]),
            _ => Self::new5(n, c, spatial[0], spatial[1], spatial[2]),
        }
    }
    pub fn n(&self) -> usize {
        self.dims[0]
    }
    pub fn c(&self) -> usize {
        self.dims[1]
    }
    pub fn d(&self) -> usize {
        self.dims[2]
    }
    pub fn h(&self) -> usize {
        self.dims[3]
    }
    pub fn w(&self) -> usize {
        self.dims[4]
    }
    /// `[D, H, W]` (D = 1 for 2D).
    pub fn spatial(&self) -> [usize; 3] {
        [self.dims[2], self.dims[3], self.dims[4]]
    }
    pub fn spatial_numel(&self) -> usize {
        self.dims[2] * self.dims[3] * self.dims[4]
    }
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
    /// Bytes of a tensor of this shape with 4-byte elements.
    pub fn bytes(&self) -> u64 {
        self.bytes_of(DType::F32)
    }
    /// Bytes of a tensor of this shape and element type.
    pub fn bytes_of(&self, dt: DType) -> u64 {
        self.numel() as u64 * dt.size()
    }
    pub fn is_3d(&self) -> bool {
        self.rank == 5
    }
    /// The logical dims, `rank` of them.
    pub fn logical(&self) -> Vec<usize> {
        match self.rank {
            5 => self.dims.to_vec(),
            4 => vec![self.dims[0], self.dims[1], self.dims[3], self.dims[4]],
            r => self.dims[5 - r as usize..].to_vec(),
        }
    }
    /// A 1-D shape `[len]`.
    pub fn vector(len: usize) -> Self {
        Shape {
            dims: [1, 1, 1, 1, len],
            rank: 1,
        }
    }
    /// The 0-D shape of a scalar.
    pub fn scalar() -> Self {
        Shape {
            dims: [1; 5],
            rank: 0,
        }
    }
    pub fn with_c(&self, c: usize) -> Self {
        let mut s = *self;
        s.dims[1] = c;
        s
    }
    pub fn with_spatial(&self, sp: [usize; 3]) -> Self {
        let mut s = *self;
        s.dims[2..].copy_from_slice(&sp);
        s
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.logical();
        if l.is_empty() {
            return write!(f, "[]");
        }
        let s: Vec<String> = l.iter().map(|d| d.to_string()).collect();
        write!(f, "{}", s.join("x"))
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Parse `1x64x256x256` (4-D) or `1x32x64x64x64` (5-D).
pub fn parse_shape(s: &str) -> Result<Shape> {
    let dims: std::result::Result<Vec<usize>, _> =
        s.split('x').map(|p| p.trim().parse::<usize>()).collect();
    match dims {
        Ok(d) if d.len() == 4 || d.len() == 5 => Shape::from_slice(&d),
        _ => Err(Error::shape(
            "parse_shape",
            format!("'{s}' is not NxCxHxW or NxCxDxHxW"),
        )),
    }
}

/// Output length of a convolution / pooling window along one axis (floor mode):
/// `floor((in + 2p - d(k-1) - 1)/s) + 1`, or `None` if the window does not fit.
pub fn conv_out_len(input: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d * (k.checked_sub(1)?) + 1;
    let padded = input + 2 * p;
    if s == 0 || padded < span {
        return None;
    }
    Some((padded - span) / s + 1)
}

/// Output length of a transposed convolution along one axis:
/// `(in-1)s - 2p + d(k-1) + output_padding + 1`, or `None` if not positive.
pub fn conv_transpose_out_len(
    input: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    op: usize,
) -> Option<usize> {
    let full = (input.checked_sub(1)?) * s + d * (k.checked_sub(1)?) + op + 1;
    full.checked_sub(2 * p).filter(|&v| v > 0)
}

/// Window geometry shared by convolution, transposed convolution and pooling.
/// Axes are `[D, H, W]`; a 2D op has `kernel[0] = stride[0] = dilation[0] = 1`, `pad[0] = 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub pad: [usize; 3],
    pub dilation: [usize; 3],
    /// Transposed convolution only: extra rows at the high end.
    pub output_padding: [usize; 3],
}

impl Window {
    /// Same settings on every axis (`dims` = 2 or 3).
    pub fn cube(dims: usize, k: usize, s: usize, p: usize) -> Self {
        Self::new(
            &vec![k; dims],
            &vec![s; dims],
            &vec![p; dims],
            &vec![1; dims],
        )
    }
    /// From per-axis lists of length 2 (`H, W`) or 3 (`D, H, W`); other lengths give the identity window.
    pub fn new(k: &[usize], s: &[usize], p: &[usize], d: &[usize]) -> Self {
        fn lift(v: &[usize], fill: usize) -> [usize; 3] {
            match v.len() {
                2 => [fill, v[0], v[1]],
                3 => [v[0], v[1], v[2]],
                _ => [fill, fill, fill],
            }
        }
        Window {
            kernel: lift(k, 1),
            stride: lift(s, 1),
            pad: lift(p, 0),
            dilation: lift(d, 1),
            output_padding: [0; 3],
        }
    }
    pub fn with_output_padding(mut self, op: &[usize]) -> Self {
        self.output_padding = match op.len() {
            2 => [0, op[0], op[1]],
            3 => [op[0], op[1], op[2]],
            _ => [0; 3],
        };
        self
    }
    pub fn kernel_numel(&self) -> usize {
        self.kernel.iter().product()
    }
    /// Output spatial size of a convolution / pooling over `input` (floor mode).
    pub fn conv_out(&self, input: [usize; 3]) -> Option<[usize; 3]> {
        let mut o = [0; 3];
        for a in 0..3 {
            o[a] = conv_out_len(
                input[a],
                self.kernel[a],
                self.stride[a],
                self.pad[a],
                self.dilation[a],
            )?;
        }
        Some(o)
    }
    /// Output spatial size of a transposed convolution over `input`.
    pub fn conv_transpose_out(&self, input: [usize; 3]) -> Option<[usize; 3]> {
        let mut o = [0; 3];
        for a in 0..3 {
            if self.output_padding[a] >= self.stride[a].max(self.dilation[a]) {
                return None;
            }
            o[a] = conv_transpose_out_len(
                input[a],
                self.kernel[a],
                self.stride[a],
                self.pad[a],
                self.dilation[a],
                self.output_padding[a],
            )?;
        }
        Some(o)
    }
    /// Is this the non-overlapping `k == s`, no padding, no dilation window
    /// (the U-Net 2x2 stride-2 up-convolution)?
    pub fn is_exact_tiling(&self) -> bool {
        (0..3).all(|a| {
            self.kernel[a] == self.stride[a]
                && self.pad[a] == 0
                && self.dilation[a] == 1
                && self.output_padding[a] == 0
        })
    }
}

/// Weight shape of a convolution `O, C, kD, kH, kW` (printed 4-D for 2D ops).
pub fn conv_weight_shape(o: usize, c: usize, win: &Window, is_3d: bool) -> Shape {
    if is_3d {
        Shape::new5(o, c, win.kernel[0], win.kernel[1], win.kernel[2])
    } else {
        Shape::new4(o, c, win.kernel[1], win.kernel[2])
    }
}

/// Centre-crop offset `floor((in - size)/2)` per axis (the U-Net skip crop).
pub fn center_crop_offset(input: [usize; 3], size: [usize; 3]) -> Option<[usize; 3]> {
    let mut o = [0; 3];
    for a in 0..3 {
        o[a] = input[a].checked_sub(size[a])? / 2;
    }
    Some(o)
}

/// Spatial size after padding `low` before and `high` after each axis.
pub fn pad_out(input: [usize; 3], low: [usize; 3], high: [usize; 3]) -> [usize; 3] {
    [
        input[0] + low[0] + high[0],
        input[1] + low[1] + high[1],
        input[2] + low[2] + high[2],
    ]
}

/// Spatial size before a pad of `low`/`high` (the pad gradient's output), or
/// `None` if the padded size is smaller than the padding.
pub fn unpad_out(padded: [usize; 3], low: [usize; 3], high: [usize; 3]) -> Option<[usize; 3]> {
    let mut o = [0; 3];
    for a in 0..3 {
        o[a] = padded[a].checked_sub(low[a] + high[a]).filter(|&v| v > 0)?;
    }
    Some(o)
}

/// Spatial size after upsampling by an integer `factor` per axis (`in * factor`).
pub fn upsample_out(input: [usize; 3], factor: [usize; 3]) -> Option<[usize; 3]> {
    if factor.contains(&0) {
        return None;
    }
    Some([
        input[0] * factor[0],
        input[1] * factor[1],
        input[2] * factor[2],
    ])
}

/// Does a crop of `size` at `offset` lie inside `input` on every axis?
pub fn crop_fits(input: [usize; 3], offset: [usize; 3], size: [usize; 3]) -> bool {
    (0..3).all(|a| size[a] > 0 && offset[a] + size[a] <= input[a])
}

/// Values one batch-norm statistic is taken over: `m = N*D*H*W` per channel.
pub fn batch_norm_count(x: &Shape) -> usize {
    x.n() * x.spatial_numel()
}

/// Values one group-norm statistic is taken over: `m = (C/G)*D*H*W` per (n, group)
/// (instance norm: `G = C`, `m = D*H*W`). `groups` must divide `C`.
pub fn group_norm_count(x: &Shape, groups: usize) -> usize {
    x.c() / groups.max(1) * x.spatial_numel()
}

/// Shape of the saved mean / inverse std of group (and instance) norm: `[N, G]`.
pub fn group_norm_stats_shape(x: &Shape, groups: usize) -> Shape {
    Shape {
        dims: [1, 1, 1, x.n(), groups],
        rank: 2,
    }
}

/// Shape of a label map, pixel weight map or per-pixel loss of logits `x`: `N,1,(D),H,W`.
pub fn label_map_shape(x: &Shape) -> Shape {
    x.with_c(1)
}

/// Shape of the per-class Dice values: `[C]` (sums over the batch) or `[N, C]` (per sample).
pub fn dice_shape(x: &Shape, per_sample: bool) -> Shape {
    if per_sample {
        Shape {
            dims: [1, 1, 1, x.n(), x.c()],
            rank: 2,
        }
    } else {
        Shape::vector(x.c())
    }
}

/// Default output length of max-unpooling along one axis, `(in-1)*s - 2p + k`
/// (PyTorch's `max_unpool` default), or `None` if not positive. An odd original
/// size cannot be recovered from this; pass the size explicitly then.
pub fn unpool_out_len(input: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    ((input.checked_sub(1)?) * s + k)
        .checked_sub(2 * p)
        .filter(|&v| v > 0)
}

impl Window {
    /// Default output spatial size of max-unpooling `input` (see [`unpool_out_len`]).
    pub fn unpool_out(&self, input: [usize; 3]) -> Option<[usize; 3]> {
        let mut o = [0; 3];
        for a in 0..3 {
            o[a] = unpool_out_len(input[a], self.kernel[a], self.stride[a], self.pad[a])?;
        }
        Some(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_sizes() {
        assert_eq!(conv_out_len(572, 3, 1, 0, 1), Some(570));
        assert_eq!(conv_out_len(7, 2, 2, 0, 1), Some(3));
        assert_eq!(conv_out_len(13, 2, 2, 0, 1), Some(6));
        assert_eq!(conv_out_len(2, 3, 1, 0, 1), None);
        assert_eq!(conv_out_len(9, 3, 2, 1, 2), Some(4));
        assert_eq!(conv_transpose_out_len(5, 2, 2, 0, 1, 0), Some(10));
        assert_eq!(conv_transpose_out_len(5, 3, 2, 1, 1, 1), Some(10));
        assert_eq!(pad_out([1, 5, 6], [0, 1, 2], [0, 3, 0]), [1, 9, 8]);
        assert_eq!(unpad_out([1, 9, 8], [0, 1, 2], [0, 3, 0]), Some([1, 5, 6]));
        assert_eq!(unpad_out([1, 4, 8], [0, 1, 2], [0, 3, 0]), None);
        assert_eq!(upsample_out([1, 3, 5], [1, 2, 2]), Some([1, 6, 10]));
        assert_eq!(
            center_crop_offset([1, 64, 65], [1, 56, 56]),
            Some([0, 4, 4])
        );
        assert!(
            crop_fits([1, 64, 65], [0, 4, 4], [1, 56, 56])
                && !crop_fits([1, 8, 8], [0, 4, 0], [1, 5, 8])
        );
    }

    #[test]
    fn unpool_upsample_pad_sizes() {
        assert_eq!(unpool_out_len(3, 2, 2, 0), Some(6));
        assert_eq!(unpool_out_len(4, 3, 2, 1), Some(7));
        assert_eq!(unpool_out_len(0, 2, 2, 0), None);
        assert_eq!(
            Window::cube(2, 2, 2, 0).unpool_out([1, 3, 6]),
            Some([1, 6, 12])
        );
        assert_eq!(upsample_out([1, 3, 5], [1, 2, 3]), Some([1, 6, 15]));
        assert_eq!(pad_out([1, 3, 5], [0, 1, 2], [0, 3, 0]), [1, 7, 7]);
    }

    #[test]
    fn shape_display() {
        assert_eq!(Shape::new4(1, 64, 256, 256).to_string(), "1x64x256x256");
        assert_eq!(
            parse_shape("1x32x64x64x64").unwrap(),
            Shape::new5(1, 32, 64, 64, 64)
        );
        assert!(parse_shape("1x2").is_err());
    }
}
