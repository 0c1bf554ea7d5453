//! Every size formula of the engine, in one place.
//!
//! Tensors are 5-D `N, C, D, H, W` (row-major, W fastest). A 2D tensor has
//! `D = 1` and `rank == 4`; the rank only affects how shapes are printed and
//! how files are read and written.

use crate::error::{Error, Result};
use std::fmt;

/// Element type of a tensor. F16 holds activations and activation gradients
/// in mixed precision (see [`crate::graph::ops::is_activation_dtype`]); everything else is 4 bytes wide.
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

/// How a network stores its activations: all in f32, or mixed precision
/// (activations and activation gradients in f16; parameters, their gradients,
/// statistics, losses and optimiser state in f32; every sum in f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    Mixed,
}

impl Precision {
    /// The dtype of activations and their gradients.
    pub fn act(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Mixed => DType::F16,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Mixed => "mixed",
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

// ------------------------------------------------------------------ checks
//
// Every rule that decides whether an op can run on given shapes, shared by the
// graph's shape rules (`crate::graph::ops`) and the GPU wrappers (`crate::ops`):
// a graph that builds is a graph that runs. Messages name the shapes; callers
// add the op (and the graph adds the node).

/// A check's outcome: `Err` holds a message naming the shapes involved.
pub type Check<T> = std::result::Result<T, String>;

/// Largest element count the kernels index with 32-bit integers.
pub const MAX_INDEXED: usize = u32::MAX as usize / 2;

/// `what` must be NxCxHxW or NxCxDxHxW.
pub fn check_activation(what: &str, s: &Shape) -> Check<()> {
    if s.rank < 4 {
        return Err(format!("{what} {s} must be NxCxHxW or NxCxDxHxW"));
    }
    Ok(())
}

/// `what` must be non-empty and small enough for 32-bit indexing.
pub fn check_indexable(what: &str, s: &Shape) -> Check<()> {
    if s.numel() == 0 {
        return Err(format!("{what} {s} is empty"));
    }
    if s.numel() > MAX_INDEXED {
        return Err(format!(
            "{what} {s} has too many elements for 32-bit indexing"
        ));
    }
    Ok(())
}

/// `a` and `b` must have the same dims.
pub fn check_same(what_a: &str, a: &Shape, what_b: &str, b: &Shape) -> Check<()> {
    if a.dims != b.dims {
        return Err(format!(
            "{what_a} {a} and {what_b} {b} must have the same shape"
        ));
    }
    Ok(())
}

/// `v` must be the vector `[len]` (a per-channel parameter or statistic of `x`).
pub fn check_vector(what: &str, v: &Shape, len: usize, x: &Shape) -> Check<()> {
    if v.dims != Shape::vector(len).dims {
        return Err(format!(
            "{what} {v} does not fit input {x} (must be [{len}])"
        ));
    }
    Ok(())
}

/// Saved statistics `s` of input `x` must have the shape `want` (`[C]` or `[N, G]`).
pub fn check_stats(what: &str, s: &Shape, want: &Shape, x: &Shape) -> Check<()> {
    if s.dims != want.dims {
        return Err(format!(
            "{what} {s} does not fit input {x} (must be {want})"
        ));
    }
    Ok(())
}

/// A 2D input `x` has size 1 (or `neutral`) along D for a per-axis setting `v`.
pub fn check_axes_2d(x: &Shape, what: &str, v: [usize; 3], neutral: usize) -> Check<()> {
    if !x.is_3d() && v[0] != neutral {
        return Err(format!(
            "a 2D input {x} cannot have {what} {} along D",
            v[0]
        ));
    }
    Ok(())
}

/// 2D inputs need windows that do nothing along D; kernel, stride and dilation must be positive.
pub fn check_window(x: &Shape, win: &Window) -> Check<()> {
    if !x.is_3d()
        && (win.kernel[0] != 1 || win.stride[0] != 1 || win.pad[0] != 0 || win.dilation[0] != 1)
    {
        return Err(format!("a 2D input {x} needs a 2D window, got {win:?}"));
    }
    if win.stride.contains(&0) || win.dilation.contains(&0) || win.kernel.contains(&0) {
        return Err(format!(
            "kernel, stride and dilation must be positive: {win:?}"
        ));
    }
    Ok(())
}

/// Output shape of a convolution of `x` with weight `w` (`O, C, k..`).
pub fn conv_out_shape(x: &Shape, w: &Shape, win: &Window) -> Check<Shape> {
    check_window(x, win)?;
    let want = conv_weight_shape(w.dims[0], x.c(), win, x.is_3d());
    if w.dims != want.dims {
        return Err(format!(
            "input {x} and weight {w} do not fit (weight must be {want})"
        ));
    }
    let sp = win
        .conv_out(x.spatial())
        .ok_or_else(|| format!("input {x} is smaller than the window of weight {w} ({win:?})"))?;
    Ok(x.with_c(w.dims[0]).with_spatial(sp))
}

/// Output shape of a transposed convolution of `x` with weight `w` (`C_in, C_out, k..`).
pub fn conv_transpose_out_shape(x: &Shape, w: &Shape, win: &Window) -> Check<Shape> {
    check_window(x, win)?;
    let want = conv_weight_shape(x.c(), w.dims[1], win, x.is_3d());
    if w.dims != want.dims {
        return Err(format!(
            "input {x} and weight {w} do not fit (weight must be {want})"
        ));
    }
    let sp = win.conv_transpose_out(x.spatial()).ok_or_else(|| {
        format!(
            "input {x}, weight {w}: no positive output size, or output_padding >= stride ({win:?})"
        )
    })?;
    Ok(x.with_c(w.dims[1]).with_spatial(sp))
}

/// `dy` must be the output shape `want` of the forward op whose input was `x`.
pub fn check_grad_output(dy: &Shape, want: &Shape, x: &Shape, win: &Window) -> Check<()> {
    if dy.dims != want.dims {
        return Err(format!(
            "gradient {dy} does not match forward input {x} under window {win:?} (output {want})"
        ));
    }
    Ok(())
}

/// Pooling windows: a valid window, dilation 1 and `pad <= kernel/2` per axis
/// (PyTorch's rule; it guarantees every window holds a real element).
pub fn check_pool_window(x: &Shape, win: &Window) -> Check<()> {
    check_window(x, win)?;
    if win.dilation != [1; 3] {
        return Err(format!(
            "pooling dilation {:?} is not supported (only 1)",
            win.dilation
        ));
    }
    if (0..3).any(|a| 2 * win.pad[a] > win.kernel[a]) {
        return Err(format!(
            "padding {:?} must be at most half the kernel {:?}",
            win.pad, win.kernel
        ));
    }
    Ok(())
}

/// Output shape of max or average pooling `x` with `win` (floor mode).
pub fn pool_out_shape(x: &Shape, win: &Window) -> Check<Shape> {
    check_pool_window(x, win)?;
    let sp = win
        .conv_out(x.spatial())
        .ok_or_else(|| format!("input {x} is smaller than the pooling window {win:?}"))?;
    Ok(x.with_spatial(sp))
}

/// Max-unpooling of `x` (indices of `x`'s shape) into `y`: same batch, channels and rank.
pub fn check_unpool(x: &Shape, indices: &Shape, y: &Shape) -> Check<()> {
    check_same("input", x, "indices", indices)?;
    if x.n() != y.n() || x.c() != y.c() || x.rank != y.rank {
        return Err(format!(
            "pooled {x} and unpooled {y} differ in batch, channels or rank"
        ));
    }
    Ok(())
}

/// Output shape of max-unpooling `x` to spatial `size`.
pub fn unpool_out_shape(x: &Shape, size: [usize; 3]) -> Check<Shape> {
    check_axes_2d(x, "output size", size, 1)?;
    if size.contains(&0) {
        return Err(format!("output size {size:?} must be positive"));
    }
    Ok(x.with_spatial(size))
}

/// Shape of the channel concatenation of `xs` (2+ inputs, equal outside the channel axis).
pub fn concat_out_shape(xs: &[Shape]) -> Check<Shape> {
    let Some(first) = xs.first() else {
        return Err("no inputs".to_string());
    };
    if xs.len() < 2 {
        return Err(format!("needs at least 2 inputs, got 1 ({first})"));
    }
    let mut c = 0;
    for (i, s) in xs.iter().enumerate() {
        if s.with_c(1) != first.with_c(1) {
            return Err(format!(
                "input 0 {first} and input {i} {s} differ outside the channel axis"
            ));
        }
        c += s.c();
    }
    Ok(first.with_c(c))
}

/// Shapes of splitting `x` along channels into parts of `sizes` channels (2+ parts).
pub fn split_out_shapes(x: &Shape, sizes: &[usize]) -> Check<Vec<Shape>> {
    if sizes.len() < 2 || sizes.contains(&0) || sizes.iter().sum::<usize>() != x.c() {
        return Err(format!(
            "sizes {sizes:?} do not split the {} channels of input {x} into 2 or more parts",
            x.c()
        ));
    }
    Ok(sizes.iter().map(|&c| x.with_c(c)).collect())
}

/// A crop of spatial `size` at `offset` must lie inside `x`.
pub fn crop_out_shape(x: &Shape, offset: [usize; 3], size: [usize; 3]) -> Check<Shape> {
    let y = x.with_spatial(size);
    if !crop_fits(x.spatial(), offset, size) {
        return Err(format!(
            "crop to {y} at offset {offset:?} does not fit input {x}"
        ));
    }
    Ok(y)
}

/// Output shape of padding `x` by `low` / `high` per spatial axis; reflect
/// padding must be smaller than the input on every axis.
pub fn pad_out_shape(x: &Shape, low: [usize; 3], high: [usize; 3], reflect: bool) -> Check<Shape> {
    check_axes_2d(x, "padding", low, 0)?;
    check_axes_2d(x, "padding", high, 0)?;
    let sp = x.spatial();
    if reflect && (0..3).any(|a| low[a] >= sp[a] || high[a] >= sp[a]) {
        return Err(format!(
            "reflect padding {low:?}/{high:?} must be smaller than input {x}"
        ));
    }
    Ok(x.with_spatial(pad_out(sp, low, high)))
}

/// Shape of the input that padding by `low` / `high` maps to the padded `dy`.
pub fn unpad_out_shape(
    dy: &Shape,
    low: [usize; 3],
    high: [usize; 3],
    reflect: bool,
) -> Check<Shape> {
    let sp = unpad_out(dy.spatial(), low, high)
        .ok_or_else(|| format!("gradient {dy} is smaller than the padding {low:?}/{high:?}"))?;
    let x = dy.with_spatial(sp);
    pad_out_shape(&x, low, high, reflect)?;
    Ok(x)
}

/// Output shape of upsampling `x` by `factor` (`[D, H, W]`, positive; D = 1 in 2D).
pub fn upsample_out_shape(x: &Shape, factor: [usize; 3]) -> Check<Shape> {
    check_axes_2d(x, "factor", factor, 1)?;
    let sp = upsample_out(x.spatial(), factor)
        .ok_or_else(|| format!("factor {factor:?} must be positive"))?;
    Ok(x.with_spatial(sp))
}

/// Shape of the input that upsampling by `factor` maps to `dy`.
pub fn downsample_out_shape(dy: &Shape, factor: [usize; 3]) -> Check<Shape> {
    let sp = dy.spatial();
    if factor.contains(&0) || (0..3).any(|a| !sp[a].is_multiple_of(factor[a])) {
        return Err(format!(
            "gradient {dy} is not a multiple of the factor {factor:?}"
        ));
    }
    let x = dy.with_spatial([0, 1, 2].map(|a| sp[a] / factor[a]));
    upsample_out_shape(&x, factor)?;
    Ok(x)
}

/// Batch norm in training mode needs more than one value per channel.
pub fn check_batch_norm_train(x: &Shape) -> Check<()> {
    let m = batch_norm_count(x);
    if m < 2 {
        return Err(format!(
            "input {x}: training needs more than one value per channel (m = N*D*H*W = {m})"
        ));
    }
    Ok(())
}

/// `groups` must divide the channels of `x`.
pub fn check_groups(x: &Shape, groups: usize) -> Check<()> {
    if groups == 0 || !x.c().is_multiple_of(groups) {
        return Err(format!(
            "{groups} groups do not divide the {} channels of input {x}",
            x.c()
        ));
    }
    Ok(())
}

/// Instance norm needs more than one spatial value per (n, c).
pub fn check_instance_norm(x: &Shape) -> Check<()> {
    if x.spatial_numel() < 2 {
        return Err(format!(
            "input {x} needs more than one spatial value per (n, c)"
        ));
    }
    Ok(())
}

/// Labels (or a pixel weight map) of logits `x` are `N,1,(D),H,W`.
pub fn check_label_map(what: &str, l: &Shape, x: &Shape) -> Check<()> {
    let want = label_map_shape(x);
    if l.dims != want.dims {
        return Err(format!(
            "logits {x} and {what} {l} do not fit ({what} must be {want})"
        ));
    }
    Ok(())
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
