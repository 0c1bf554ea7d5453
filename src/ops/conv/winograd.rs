//! Winograd convolution for stride-1, dilation-1 3x3 (2D) and 3x3x3 (3D) windows with
//! padding <= 2 (`kernels/winograd.wgsl`, `kernels/winograd_gemm.wgsl`): F(2x2,3x3) and
//! F(4x4,3x3) in 2D, F(2x2x2,3x3x3) and F(4x4x4,3x3x3) in 3D. Used for forwards and, through
//! the forward on `dy` with the flipped, transposed weight, for stride-1 grad inputs; weight
//! gradients run the same tiles in the transposed form (`grad_weight`).
//!
//! Steps per call: transform the weights once (`U`, they change every training step), then
//! for each chunk of output tiles: transform the input (`V`), multiply per transform point
//! (the batched register-blocked GEMM), transform back with the bias (`y`). Chunks keep
//! the scratch buffers `V` and `M` near [`CHUNK_BYTES`] each.

use super::{ConvKernel, Epilogue};
use crate::error::Result;
use crate::gpu::{Recorder, Scratch, Tensor};
use crate::ops::fastdiv::magic;
use crate::ops::groups_for;
use crate::shape::{Shape, Window};
use bytemuck::{Pod, Zeroable};

/// Target size of each per-chunk scratch buffer (`V` and `M`); `WUNET_WINOGRAD_CHUNK_MB`
/// overrides it (for experiments).
pub const CHUNK_BYTES: usize = 16 << 20;

/// Output tile edge `m` of a Winograd variant: 2 for `Winograd2` (F(2x2,3x3),
/// F(2x2x2,3x3x3)), 4 for `Winograd4` (F(4x4,3x3), F(4x4x4,3x3x3)).
pub fn tile_edge(k: ConvKernel) -> Option<usize> {
    match k {
        ConvKernel::Winograd2 => Some(2),
        ConvKernel::Winograd4 => Some(4),
        _ => None,
    }
}

/// Whether the Winograd kernels compute this convolution: 3x3 (2D) or 3x3x3 (3D), stride 1,
/// dilation 1, padding <= 2 on every axis.
pub fn applies(win: &Window, is_3d: bool) -> bool {
    // 2D windows carry a neutral depth axis (kernel 1, pad 0).
    let depth_ok = is_3d || (win.kernel[0] == 1 && win.pad[0] == 0);
    let axes = if is_3d { 0..3 } else { 1..3 };
    depth_ok
        && axes.into_iter().all(|a| {
            win.kernel[a] == 3 && win.stride[a] == 1 && win.dilation[a] == 1 && win.pad[a] <= 2
        })
}

/// Uniform block of both Winograd kernels (see the WGSL headers).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct WinoParams {
    n: u32,
    c: u32,
    o: u32,
    flags: u32,
    inp: [u32; 3],
    cp: u32,
    out: [u32; 3],
    op: u32,
    p: [u32; 3],
    tc: u32,
    tiles: [u32; 3],
    t0: u32,
    /// [`magic`]s of the tile grid's w, h, d, of tc, cp and c (index decoding).
    magics: [[u32; 2]; 6],
}

/// The sizes of one Winograd convolution: tile edge, points, padded channels, tiles, chunk.
struct Plan {
    m: usize,
    dims: usize,
    np: usize,
    cp: usize,
    op: usize,
    tiles: [usize; 3],
    ntiles: usize,
    chunk: usize,
}

fn plan(m: usize, xs: &Shape, ys: &Shape) -> Plan {
    let dims = if xs.is_3d() { 3 } else { 2 };
    let alpha = m + 2;
    let np = alpha.pow(dims as u32);
    let cp = xs.c().div_ceil(4) * 4;
    let op = ys.c().div_ceil(8) * 8;
    let sp = ys.spatial();
    let tiles = [
        sp[0].div_ceil(if dims == 3 { m } else { 1 }),
        sp[1].div_ceil(m),
        sp[2].div_ceil(m),
    ];
    let ntiles = ys.n() * tiles[0] * tiles[1] * tiles[2];
    let budget = std::env::var("WUNET_WINOGRAD_CHUNK_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(CHUNK_BYTES, |mb| mb.max(1) << 20);
    let per_tile = np * cp.max(op) * 4;
    let chunk = (budget / per_tile / 8 * 8)
        .max(8)
        .min(ntiles.div_ceil(8) * 8);
    Plan {
        m,
        dims,
        np,
        cp,
        op,
        tiles,
        ntiles,
        chunk,
    }
}

fn u3(a: [usize; 3]) -> [u32; 3] {
    [a[0] as u32, a[1] as u32, a[2] as u32]
}

fn params(pl: &Plan, xs: &Shape, ys: &Shape, win: &Window, flags: u32) -> WinoParams {
    WinoParams {
        n: xs.n() as u32,
        c: xs.c() as u32,
        o: ys.c() as u32,
        flags,
        inp: u3(xs.spatial()),
        cp: pl.cp as u32,
        out: u3(ys.spatial()),
        op: pl.op as u32,
        p: u3(win.pad),
        tc: pl.chunk as u32,
        tiles: u3(pl.tiles),
        t0: 0,
        magics: [
            magic(pl.tiles[2]),
            magic(pl.tiles[1]),
            magic(pl.tiles[0]),
            magic(pl.chunk),
            magic(pl.cp),
            magic(xs.c()),
        ],
    }
}

fn transform_overrides(pl: &Plan) -> Vec<(&'static str, f64)> {
    vec![("MT", pl.m as f64), ("DIMS", pl.dims as f64)]
}

/// Rows of 8 output channels per GEMM workgroup: up to 8, fewer for narrow layers.
fn gemm_rows(op: usize) -> usize {
    (op / 8).next_power_of_two().clamp(1, 8)
}

/// Flags bit of `weights`: read the forward's weight flipped and transposed.
const FLIPPED_WEIGHT: u32 = 16;

/// `y = conv(x, w) + b` by Winograd with output tiles of edge `m` (2 or 4).
/// The caller has checked the shapes and [`applies`].
pub(super) fn forward(
    rec: &mut Recorder,
    m: usize,
    x: &Tensor,
    w: &Tensor,
    ep: Epilogue,
    win: &Window,
    y: &Tensor,
) -> Result<()> {
    convolve(rec, m, (x, w), ep, win, y, 0)
}

/// `dx = dgrad(dy, w) + b` of a stride-1 convolution as the forward on `dy` with the
/// flipped, transposed weight, which the weight transform reads from `w` itself (no flipped
/// copy). `fwin` is the forward's window ([`super::flipped_window`]); the caller has checked
/// the shapes and [`applies`] to `fwin`.
pub(super) fn grad_input(
    rec: &mut Recorder,
    m: usize,
    dy: &Tensor,
    w: &Tensor,
    ep: Epilogue,
    fwin: &Window,
    dx: &Tensor,
) -> Result<()> {
    convolve(rec, m, (dy, w), ep, fwin, dx, FLIPPED_WEIGHT)
}

/// The steps of [`forward`]; `weight_flags` tells the weight transform how `w` is laid out.
fn convolve(
    rec: &mut Recorder,
    m: usize,
    (x, w): (&Tensor, &Tensor),
    ep: Epilogue,
    win: &Window,
    y: &Tensor,
    weight_flags: u32,
) -> Result<()> {
    let (xs, ys) = (x.shape, y.shape);
    let pl = plan(m, &xs, &ys);
    let mut p = params(&pl, &xs, &ys, win, ep.flags() | weight_flags);
    let u = rec.scratch(Scratch::WinogradU, Shape::vector(pl.np * pl.op * pl.cp))?;
    let v = rec.scratch(Scratch::WinogradV, Shape::vector(pl.np * pl.cp * pl.chunk))?;
    let mm = rec.scratch(Scratch::WinogradM, Shape::vector(pl.np * pl.op * pl.chunk))?;
    let bias = ep.bias_or(w);
    let ov = transform_overrides(&pl);
    let g = rec.grid(groups_for(pl.op * pl.cp, 64))?;
    rec.dispatch("winograd", "weights", &ov, &p, &[x, w, bias, &u, y], g)?;
    let mut t0 = 0;
    while t0 < pl.ntiles {
        p.t0 = t0 as u32;
        transform_input(rec, &pl, &p, x, w, &v, y)?;
        multiply(rec, &pl, &p, &u, &v, &mm)?;
        transform_output(rec, &pl, &p, x, &mm, bias, &u, y)?;
        t0 += pl.chunk;
    }
    Ok(())
}

/// `V = B^T d B` for the chunk's tiles.
fn transform_input(
    rec: &mut Recorder,
    pl: &Plan,
    p: &WinoParams,
    x: &Tensor,
    w: &Tensor,
    v: &Tensor,
    y: &Tensor,
) -> Result<()> {
    let g = rec.grid(groups_for(pl.cp * pl.chunk, 64))?;
    let ov = transform_overrides(pl);
    rec.dispatch("winograd", "input", &ov, p, &[x, w, w, v, y], g)
}

/// `M[p] = U[p] V[p]` for every transform point.
fn multiply(
    rec: &mut Recorder,
    pl: &Plan,
    p: &WinoParams,
    u: &Tensor,
    v: &Tensor,
    mm: &Tensor,
) -> Result<()> {
    gemm(rec, pl.np, [pl.op, pl.cp, pl.chunk], p, &[u, v, mm])
}

/// The batched GEMM over `np` points with (rows, K, columns) = `mkn`; `p` carries them as
/// (op, cp, tc) and the accumulate flag.
fn gemm(
    rec: &mut Recorder,
    np: usize,
    mkn: [usize; 3],
    p: &WinoParams,
    t: &[&Tensor],
) -> Result<()> {
    let rw = gemm_rows(mkn[0]);
    let cw = 64 / rw;
    let wr = (mkn[0] / 8).div_ceil(rw);
    let wc = (mkn[2] / 8).div_ceil(cw);
    let g = rec.grid((np * wr * wc) as u64)?;
    // Live invocations contiguous when a workgroup row has more column slots than blocks.
    let rows_first = mkn[2] / 8 < cw;
    let ov = [
        ("NP", np as f64),
        ("RW", rw as f64),
        ("ROWS_FIRST", rows_first as u8 as f64),
    ];
    rec.dispatch("winograd_gemm", "gemm", &ov, p, t, g)
}

/// `dw = wgrad(x, dy)` by Winograd with tiles of edge `m` (the transposed F(m,3)): per chunk of output tiles,
/// transform x (tiles-major) and dy, accumulate `X[p] += W[p] V[p]` (K = tiles), then
/// `dw = G^T X G`. The caller has checked the shapes and [`applies`].
pub(super) fn grad_weight(
    rec: &mut Recorder,
    m: usize,
    x: &Tensor,
    dy: &Tensor,
    win: &Window,
    dw: &Tensor,
) -> Result<()> {
    let (xs, ys) = (x.shape, dy.shape);
    let mut pl = plan(m, &xs, &ys);
    pl.cp = xs.c().div_ceil(8) * 8;
    pl.chunk = (pl.chunk / 8 * 8).max(8);
    let v = rec.scratch(Scratch::WinogradV, Shape::vector(pl.np * pl.chunk * pl.cp))?;
    let wt = rec.scratch(Scratch::WinogradM, Shape::vector(pl.np * pl.op * pl.chunk))?;
    let acc = rec.scratch(Scratch::WinogradU, Shape::vector(pl.np * pl.op * pl.cp))?;
    let ov = transform_overrides(&pl);
    let mut p = params(&pl, &xs, &ys, win, 0);
    let mut t0 = 0;
    while t0 < pl.ntiles {
        p.t0 = t0 as u32;
        p.flags = 2;
        let g = rec.grid(groups_for(pl.cp * pl.chunk, 64))?;
        rec.dispatch("winograd", "input", &ov, &p, &[x, &acc, &acc, &v, dy], g)?;
        let g = rec.grid(groups_for(pl.op * pl.chunk, 64))?;
        rec.dispatch(
            "winograd",
            "grad_out",
            &ov,
            &p,
            &[dy, &acc, &acc, &wt, x],
            g,
        )?;
        let mut gp = p;
        (gp.op, gp.cp, gp.tc) = (pl.op as u32, pl.chunk as u32, pl.cp as u32);
        gp.flags = if t0 == 0 { 0 } else { 4 };
        gemm(rec, pl.np, [pl.op, pl.chunk, pl.cp], &gp, &[&wt, &v, &acc])?;
        t0 += pl.chunk;
    }
    let g = rec.grid(groups_for(ys.c() * xs.c(), 64))?;
    rec.dispatch(
        "winograd",
        "grad_weight",
        &ov,
        &p,
        &[x, &acc, &acc, dw, dy],
        g,
    )
}

/// `y = A^T M A + b` for the chunk's tiles.
#[allow(clippy::too_many_arguments)]
fn transform_output(
    rec: &mut Recorder,
    pl: &Plan,
    p: &WinoParams,
    x: &Tensor,
    mm: &Tensor,
    bias: &Tensor,
    spare: &Tensor,
    y: &Tensor,
) -> Result<()> {
    let g = rec.grid(groups_for(p.o as usize * pl.chunk, 64))?;
    let ov = transform_overrides(pl);
    rec.dispatch("winograd", "output", &ov, p, &[x, mm, bias, spare, y], g)
}
