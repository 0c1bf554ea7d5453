//! The direct forward kernel (`kernels/conv_coop_direct.wgsl`): its tile table, its
//! operand staging, and its dispatch (forwards and, through the flipped weight, stride-1
//! grad inputs).
//!
//! The rule's tile is a function of the shapes ([`direct_tile`]) with the staging
//! [`Staging::DEFAULT`]; on real matrix units the tile is measured against its neighbours
//! and cached (`super::tuned`). `WUNET_COOP_DIRECT_TILE` replaces either for benchmarks and
//! sweeps, e.g. `bm=64,wmf=2,wnf=4,box=1x16x16,rps=1,pack=1,db=0` (any subset of the keys; the
//! result must fit the kernel or the dispatch fails naming it); [`with_staging`] does the
//! same for the staging alone on one thread (tests).

use std::cell::Cell;

use super::{kernel_name, tile_rows, CoopMode};
use crate::error::{Error, Result};
use crate::gpu::{Context, DType, Recorder, Scratch, Tensor};
use crate::ops::conv::{ConvParams, Epilogue, FlipParams};
use crate::ops::groups_for;
use crate::shape::{conv_weight_shape, Shape, Window};

/// How the direct forward stages its operands (`WPACK`, `DB` in the kernel header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Staging {
    /// The weight packed to f16 chunks first (`weights.wgsl` `pack_f16`, one extra small
    /// dispatch): coalesced 4-byte loads and no conversion in the kernel, instead of
    /// per-(row, channel) f32 loads converted while staging.
    pub packed_weights: bool,
    /// Register double buffering: the next step is loaded while this one multiplies (more
    /// live registers, fewer workgroups per SM).
    pub prefetch: bool,
}

impl Staging {
    /// The staging the tile table uses: the one measured on a GPU so far (H200, 66-108
    /// TFLOP/s, notes/device-2026-11-27-h200-mixed-run3.log); the others await
    /// `tools/device_tiles.sh`.
    pub const DEFAULT: Staging = Staging {
        packed_weights: false,
        prefetch: true,
    };
}

impl std::fmt::Display for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = if self.packed_weights {
            "packed f16"
        } else {
            "f32"
        };
        let p = if self.prefetch {
            "prefetch"
        } else {
            "no prefetch"
        };
        write!(f, "{w} weights, {p}")
    }
}

thread_local! {
    static STAGING: Cell<Option<Staging>> = const { Cell::new(None) };
}

/// Run `f` with every direct forward recorded on this thread staged as `s` (tests compare
/// the stagings against the reference).
pub fn with_staging<T>(s: Staging, f: impl FnOnce() -> T) -> T {
    let old = STAGING.with(|c| c.replace(Some(s)));
    let out = f();
    STAGING.with(|c| c.set(old));
    out
}

/// Whether this thread's stagings are overridden ([`with_staging`]).
pub(super) fn staging_overridden() -> bool {
    STAGING.with(|c| c.get()).is_some()
}

/// The tile for output `ys` and window `win`: the thread's forced tile
/// ([`super::tuned::with_tile`]), else [`direct_tile`] with the thread's staging
/// ([`with_staging`]) and `WUNET_COOP_DIRECT_TILE` applied.
fn tile_for(ys: &Shape, win: &Window) -> Result<Option<DirectTile>> {
    if direct_applies(win) {
        if let Some(t) = super::tuned::forced(win) {
            return Ok(Some(t));
        }
    }
    let Some(mut t) = direct_tile(ys, win) else {
        return Ok(None);
    };
    if let Ok(spec) = std::env::var("WUNET_COOP_DIRECT_TILE") {
        t = apply_spec(t, ys, win, &spec)?;
    }
    if let Some(s) = STAGING.with(|c| c.get()) {
        t.staging = s;
    }
    Ok(Some(t))
}

/// `t` with the keys of a `WUNET_COOP_DIRECT_TILE` value replaced (a new `bm`, `wmf` or
/// `wnf` without `box` / `rps` takes the rule's box and tap rows for it); an error names the
/// key or the tile that does not fit.
fn apply_spec(mut t: DirectTile, ys: &Shape, win: &Window, spec: &str) -> Result<DirectTile> {
    let bad = |what: String| Error::Gpu(format!("WUNET_COOP_DIRECT_TILE={spec:?}: {what}"));
    let keys: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let given = |key: &str| keys.iter().any(|kv| kv.starts_with(&format!("{key}=")));
    for kv in &keys {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad(format!("{kv:?} is not key=value")))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| bad(format!("{k}={v:?} is not a number")))
        };
        match k {
            "bm" => t.bm = num(v)?,
            "wmf" => t.wmf = num(v)?,
            "wnf" => t.wnf = num(v)?,
            "rps" => t.rps = num(v)?,
            "pack" => t.staging.packed_weights = num(v)? != 0,
            "db" => t.staging.prefetch = num(v)? != 0,
            "box" => {
                let d: Vec<usize> = v.split('x').map(num).collect::<Result<_>>()?;
                t.out_box = d
                    .try_into()
                    .map_err(|_| bad(format!("box={v:?} is not DxHxW")))?;
            }
            _ => {
                return Err(bad(format!(
                    "unknown key {k:?} (bm, wmf, wnf, box, rps, pack, db)"
                )))
            }
        }
    }
    if (given("bm") || given("wmf") || given("wnf")) && !given("box") && !given("rps") {
        let staging = t.staging;
        t = tile_of(ys, win, t.bm, t.wmf, t.wnf).ok_or_else(|| {
            bad(format!(
                "no box fits BM {} x WMF {} x WNF {}",
                t.bm, t.wmf, t.wnf
            ))
        })?;
        t.staging = staging;
    }
    let rows = t.kernel[0] * t.kernel[1];
    let ok = [32, 64, 128].contains(&t.bm)
        && [2, 4].contains(&t.wmf)
        && t.bm >= 16 * t.wmf
        && [2, 4].contains(&t.wnf)
        && t.out_box.iter().product::<usize>() == t.bn()
        && t.out_box[2].is_multiple_of(16)
        && t.rps > 0
        && rows.is_multiple_of(t.rps)
        && t.fits();
    if !ok {
        return Err(bad(format!(
            "tile {t} does not fit the kernel (BM 32/64/128, WMF 2/4 with BM >= 16*WMF, \
             WNF 2/4, box of BN = {} positions with W a multiple of 16, RPS dividing KD*KH, \
             staging within budget)",
            t.bn()
        )));
    }
    Ok(t)
}

/// Staging budget of the direct kernel's tile table, in halves at 24 halves per staged
/// position (PAD 8): with the 8 KiB epilogue scratch that is at most 45 KiB of workgroup
/// memory with PAD 8 and at most 32 KiB with PAD 0 (CPU adapters, emulated kernels), so the
/// same tiles run everywhere.
pub(super) const DIRECT_STAGING_HALVES: usize = 18432;
/// Most input-box positions one invocation stages (box <= 3 * 256), most weights.
pub(super) const DIRECT_MAX_BOX: usize = 768;
pub(super) const DIRECT_MAX_WPT: usize = 32;
/// Epilogue scratch of the direct kernel: 8 subgroups x 16 x 16 f32.
pub(super) const DIRECT_SCRATCH_BYTES: usize = 8 * 256 * 4;

/// Tile of `conv_coop_direct` (see its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectTile {
    /// Output channels per workgroup (32, 64, 128).
    pub bm: usize,
    /// Row fragments (of 16 output channels) per subgroup (2 or 4; `bm >= 16 * wmf`).
    pub wmf: usize,
    /// Column fragments (of 16 positions) per subgroup (2 or 4).
    pub wnf: usize,
    /// Output box (TD, TH, TW); TD*TH*TW = [`DirectTile::bn`], TW a multiple of 16.
    pub out_box: [usize; 3],
    /// Kernel (KD, KH, KW).
    pub kernel: [usize; 3],
    /// Rows (kd, kh) of taps whose weights one step stages.
    pub rps: usize,
    /// How the operands are staged.
    pub staging: Staging,
}

impl DirectTile {
    /// Output positions per workgroup.
    pub fn bn(&self) -> usize {
        (8 / (self.bm / (16 * self.wmf))) * 16 * self.wnf
    }
    /// Staged input box (positions): the output box plus the kernel's halo.
    pub fn box_positions(&self) -> usize {
        (0..3)
            .map(|a| self.out_box[a] + self.kernel[a] - 1)
            .product()
    }
    fn staging_halves(&self, pad: usize) -> usize {
        (self.rps * self.kernel[2] * self.bm + self.box_positions()) * (16 + pad)
    }
    /// Workgroup memory of the kernel with staging rows padded by `pad` halves.
    pub fn workgroup_bytes(&self, pad: usize) -> usize {
        self.staging_halves(pad) * 2 + DIRECT_SCRATCH_BYTES
    }
    fn fits(&self) -> bool {
        self.staging_halves(8) <= DIRECT_STAGING_HALVES
            && self.box_positions() <= DIRECT_MAX_BOX
            && self.bm / 16 * self.rps * self.kernel[2] <= DIRECT_MAX_WPT
    }
    /// Workgroups of a forward with output `ys`.
    pub fn workgroups(&self, ys: &Shape) -> u64 {
        let [od, oh, ow] = ys.spatial();
        let [td, th, tw] = self.out_box;
        groups_for(ys.c(), self.bm)
            * (ys.n() * od.div_ceil(td) * oh.div_ceil(th) * ow.div_ceil(tw)) as u64
    }
}

impl std::fmt::Display for DirectTile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [td, th, tw] = self.out_box;
        write!(
            f,
            "BM {} x box {td}x{th}x{tw}, {} x {} per subgroup, {} tap rows per step, {}",
            self.bm,
            16 * self.wmf,
            16 * self.wnf,
            self.rps,
            self.staging
        )
    }
}

/// Whether the direct kernels compute a convolution with this window: stride 1,
/// dilation 1, kernel 1..=3 on every axis (any padding).
pub fn direct_applies(win: &Window) -> bool {
    (0..3).all(|a| win.stride[a] == 1 && win.dilation[a] == 1 && (1..=3).contains(&win.kernel[a]))
}

/// The direct forward's tile for output `ys` (O channels) and window `win`, or `None` where
/// the kernel does not apply. The rule (a function of the shapes only):
/// * BM = 32 for O <= 32, 64 for O <= 64 and for every O in 3D, else 128 (no fragment
///   rows wasted for the U-Net's 16..512 channels except O = 16 and 96);
/// * WNF = 4 in 2D (BN = 512, 256, 128 positions), 2 in 3D (BN = 256, 128: the 3D halo
///   would not fit the workgroup memory with more);
/// * the output box TD x TH x TW (TW in 16, 32, 64; powers of two; TD = 1 in 2D) with BN
///   positions that stages the fewest input positions per useful output position
///   (`min(TD, out_d) * min(TH, out_h) * min(TW, out_w)`), ties to the wider box, among
///   those whose staging fits (input box <= 768 positions, (KW*BM + box)*24 <= 18432 halves);
/// * RPS = the most rows of taps per step (a divisor of KD*KH) that still fit.
pub fn direct_tile(ys: &Shape, win: &Window) -> Option<DirectTile> {
    if !direct_applies(win) {
        return None;
    }
    let o = ys.c();
    let is_3d = ys.is_3d() || win.kernel[0] > 1;
    let bm = if o <= 32 {
        32
    } else if o <= 64 || is_3d {
        64
    } else {
        128
    };
    let wnf = if is_3d { 2 } else { 4 };
    tile_of(ys, win, bm, 2, wnf)
}

/// The tile with `bm` rows, `wmf` row and `wnf` column fragments per subgroup for output
/// `ys`: the box and the tap rows per step of [`direct_tile`]'s rule, or `None` where none
/// fits (or `bm < 16 * wmf`).
pub(super) fn tile_of(
    ys: &Shape,
    win: &Window,
    bm: usize,
    wmf: usize,
    wnf: usize,
) -> Option<DirectTile> {
    if bm < 16 * wmf {
        return None;
    }
    let is_3d = ys.is_3d() || win.kernel[0] > 1;
    let mut t = DirectTile {
        bm,
        wmf,
        wnf,
        out_box: [1, 1, 16],
        kernel: win.kernel,
        rps: 1,
        staging: Staging::DEFAULT,
    };
    t.out_box = best_box(t.bn(), is_3d, ys.spatial(), win.kernel, |b| {
        DirectTile { out_box: b, ..t }.fits()
    })?;
    let rows = win.kernel[0] * win.kernel[1];
    t.rps = (1..=rows)
        .rev()
        .filter(|r| rows.is_multiple_of(*r))
        .find(|&r| DirectTile { rps: r, ..t }.fits())
        .unwrap_or(1);
    Some(t)
}

/// The output box TD x TH x TW with `bn` positions (TW in 16, 32, 64; powers of two; TD = 1
/// in 2D) that stages the fewest input positions (box + kernel halo) per useful output
/// position (`min(TD, out_d) * min(TH, out_h) * min(TW, out_w)` of output `out`), ties to
/// the wider box, among those `fits` accepts.
pub(super) fn best_box(
    bn: usize,
    is_3d: bool,
    out: [usize; 3],
    kernel: [usize; 3],
    fits: impl Fn([usize; 3]) -> bool,
) -> Option<[usize; 3]> {
    let mut best: Option<(f64, [usize; 3])> = None;
    for tw in [16, 32, 64] {
        for th in (0..).map(|e| 1usize << e).take_while(|&th| tw * th <= bn) {
            let td = bn / (tw * th);
            let b = [td, th, tw];
            if (!is_3d && td != 1) || td * th * tw != bn || !fits(b) {
                continue;
            }
            let staged: usize = (0..3).map(|a| b[a] + kernel[a] - 1).product();
            let useful: usize = (0..3).map(|a| b[a].min(out[a])).product();
            let cost = staged as f64 / useful as f64;
            // Candidates come in increasing TW: `<=` prefers the wider box on ties.
            if best.is_none_or(|(c, _)| cost <= c) {
                best = Some((cost, b));
            }
        }
    }
    best.map(|(_, b)| b)
}

/// The staging padding (8, else 0 halves) with which tile `t` fits this device's workgroup
/// memory, if any.
pub(super) fn pad_for(ctx: &Context, t: &DirectTile) -> Option<usize> {
    let lim = ctx.limits.max_compute_workgroup_storage_size as usize;
    [8, 0].into_iter().find(|&p| t.workgroup_bytes(p) <= lim)
}

/// The direct forward's tile (the rule's, or the override's) and staging padding on this
/// device, if it applies and fits.
pub(super) fn direct_plan(
    ctx: &Context,
    ys: &Shape,
    win: &Window,
) -> Result<Option<(DirectTile, usize)>> {
    let Some(t) = tile_for(ys, win)? else {
        return Ok(None);
    };
    Ok(pad_for(ctx, &t).map(|pad| (t, pad)))
}

/// The plan of the direct forward `xs -> ys` (activations `act`) in `mode`: the measured
/// tile where the tile is measured (`super::tuned`), else [`direct_plan`]'s.
pub(super) fn fwd_plan(
    ctx: &Context,
    mode: CoopMode,
    (xs, ys): (&Shape, &Shape),
    win: &Window,
    act: DType,
) -> Result<Option<(DirectTile, usize)>> {
    match super::tuned::choose(ctx, mode, (xs, ys), win, act) {
        Some((t, _)) => Ok(pad_for(ctx, &t).map(|pad| (t, pad))),
        None => direct_plan(ctx, ys, win),
    }
}

/// The forward kernel a coop mode runs for `xs -> ys` (activations `act`) with window
/// `win` on this device: `conv_coop_direct (tile)` or `conv_coop (BM ..)` (for `wunet bench
/// conv`; a measured tile is the cached one the timed run used).
pub fn describe_fwd(
    ctx: &Context,
    mode: CoopMode,
    (xs, ys): (&Shape, &Shape),
    win: &Window,
    act: DType,
) -> String {
    let emu = if mode.emulated { " (emulated)" } else { "" };
    if !mode.direct_allowed(ctx).0 {
        return format!(
            "conv_coop{emu}, BM {} x BN {}",
            tile_rows(ys.c()),
            16384 / tile_rows(ys.c())
        );
    }
    let plan = match fwd_plan(ctx, mode, (xs, ys), win, act) {
        Ok(p) => p,
        Err(e) => return e.to_string(),
    };
    match plan {
        Some((t, _)) => format!("conv_coop_direct{emu}, {t}"),
        None => format!(
            "conv_coop{emu}, BM {} x BN {}",
            tile_rows(ys.c()),
            16384 / tile_rows(ys.c())
        ),
    }
}

/// `y = conv(x, w) + b` on the direct kernel with tile `t` and staging padding `pad`.
#[allow(clippy::too_many_arguments)]
pub(super) fn dispatch(
    rec: &mut Recorder,
    mode: CoopMode,
    plan: (DirectTile, usize),
    x: &Tensor,
    w: &Tensor,
    ep: Epilogue,
    win: &Window,
    y: &Tensor,
) -> Result<()> {
    let params = ConvParams::new(&x.shape, &y.shape, win, false).with_epilogue(&ep);
    let bias = ep.bias_or(w);
    launch(rec, mode, plan, &params, [x, w, bias, y], win, &y.shape)
}

/// `y = conv_transpose(x, w) + b` for a window whose kernel equals its stride with padding
/// 0 (`conv::up::qualifies`) on the direct kernel, as its 1x1 case with phase rows: the
/// GEMM's O*taps rows are the output channels at each kernel phase (`weights.wgsl`
/// `phase_rows` re-lays the weight), and the epilogue writes each row to its phase of the
/// output. `Ok(false)` where the direct kernel may not run in this mode (nothing recorded).
#[allow(clippy::too_many_arguments)]
pub(crate) fn up_forward(
    rec: &mut Recorder,
    mode: CoopMode,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    win: &Window,
    y: &Tensor,
) -> Result<bool> {
    let xs = x.shape;
    let (gemm, win1) = up_gemm(&xs, y.shape.c(), win);
    if !mode.direct_allowed(rec.ctx).0 {
        return Ok(false);
    }
    let Some(plan) = direct_plan(rec.ctx, &gemm, &win1)? else {
        return Ok(false);
    };
    let rows = rec.scratch(
        Scratch::Weights,
        conv_weight_shape(gemm.c(), xs.c(), &win1, xs.is_3d()),
    )?;
    let p = FlipParams::new(y.shape.c(), xs.c(), win);
    let g = rec.grid(groups_for(rows.shape.numel(), 256))?;
    rec.dispatch("weights", "phase_rows", &[], &p, &[w, &rows], g)?;
    let params = ConvParams::new(&xs, &gemm, &win1, b.is_some()).with_phases(win.kernel);
    let bias = b.unwrap_or(w);
    launch(rec, mode, plan, &params, [x, &rows, bias, y], &win1, &gemm)?;
    Ok(true)
}

/// The kernel a coop mode runs for the forward of the up-convolution `xs -> ys` (see
/// `up_forward`), for `wunet bench conv-transpose`.
pub fn describe_up(ctx: &Context, mode: CoopMode, xs: &Shape, ys: &Shape, win: &Window) -> String {
    let (gemm, win1) = up_gemm(xs, ys.c(), win);
    let emu = if mode.emulated { " (emulated)" } else { "" };
    match direct_plan(ctx, &gemm, &win1) {
        Ok(Some((t, _))) if mode.direct_allowed(ctx).0 => {
            format!("conv_coop_direct{emu} with phase rows, {t}")
        }
        Ok(_) => "the adapter's default kernel (the direct coop kernel does not run)".into(),
        Err(e) => e.to_string(),
    }
}

/// The GEMM of the up-convolution of input `xs` to `out_c` channels with window `win` on
/// the direct kernel: its output shape (O x taps phase rows at the input's positions) and
/// its 1x1 window.
fn up_gemm(xs: &Shape, out_c: usize, win: &Window) -> (Shape, Window) {
    let gemm = xs.with_c(out_c * win.kernel_numel());
    (gemm, Window::cube(if xs.is_3d() { 3 } else { 2 }, 1, 1, 0))
}

/// Record the direct kernel with tile `t`, padding `pad` and `params` on [x, w, bias, y]
/// (`w`: f32, packed first where the staging asks), for the GEMM output shape `gemm`.
fn launch(
    rec: &mut Recorder,
    mode: CoopMode,
    (t, pad): (DirectTile, usize),
    params: &ConvParams,
    [x, w, bias, y]: [&Tensor; 4],
    win: &Window,
    gemm: &Shape,
) -> Result<()> {
    let packed = if t.staging.packed_weights {
        Some(pack_weights(rec, w, win)?)
    } else {
        None
    };
    let groups = rec.grid(t.workgroups(gemm))?;
    let [td, th, tw] = t.out_box;
    let [kd, kh, kw] = t.kernel;
    let ov = [
        ("BM", t.bm as f64),
        ("WMF", t.wmf as f64),
        ("WNF", t.wnf as f64),
        ("TD", td as f64),
        ("TH", th as f64),
        ("TW", tw as f64),
        ("KD", kd as f64),
        ("KH", kh as f64),
        ("KW", kw as f64),
        ("RPS", t.rps as f64),
        ("PAD", pad as f64),
        ("WPACK", f64::from(u8::from(t.staging.packed_weights))),
        ("DB", f64::from(u8::from(t.staging.prefetch))),
    ];
    let kernel = kernel_name("conv_coop_direct", mode.emulated);
    let wk = packed.as_ref().unwrap_or(w);
    rec.dispatch(kernel, "main", &ov, params, &[x, wk, bias, y], groups)
}

/// The weight `w` (O, C, taps) packed to f16 pairs in the layout the kernel stages with
/// `WPACK = 1` (`weights.wgsl` `pack_f16`).
fn pack_weights(rec: &mut Recorder, w: &Tensor, win: &Window) -> Result<Tensor> {
    let (o, c) = (w.shape.dims[0], w.shape.dims[1]);
    let words = c.div_ceil(16) * win.kernel_numel() * o * 8;
    let packed = rec.scratch(Scratch::Packed, Shape::vector(words))?;
    let p = FlipParams::new(o, c, win);
    let g = rec.grid(groups_for(words, 256))?;
    rec.dispatch("weights", "pack_f16", &[], &p, &[w, &packed], g)?;
    Ok(packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unet_layer() -> (Shape, Window) {
        (Shape::new4(8, 256, 64, 64), Window::cube(2, 3, 1, 1))
    }

    #[test]
    fn tile_spec_replaces_keys_and_repicks_the_box() {
        let (ys, win) = unet_layer();
        let t = direct_tile(&ys, &win).unwrap();
        assert_eq!((t.bm, t.staging), (128, Staging::DEFAULT));
        let u = apply_spec(t, &ys, &win, "bm=64, pack=1,db=0").unwrap();
        assert_eq!(u.bm, 64);
        assert_eq!(u.out_box.iter().product::<usize>(), u.bn());
        assert!(u.staging.packed_weights && !u.staging.prefetch);
        let v = apply_spec(t, &ys, &win, "box=1x4x32").unwrap();
        assert_eq!(v.out_box, [1, 4, 32]);
        // 64 x 64 per subgroup: two subgroups along M, four along N
        let m = apply_spec(t, &ys, &win, "wmf=4").unwrap();
        assert_eq!((m.bm, m.wmf, m.wnf, m.bn()), (128, 4, 4, 256));
        assert_eq!(m.out_box.iter().product::<usize>(), 256);
    }

    #[test]
    fn tile_spec_errors_name_the_key_and_value() {
        let (ys, win) = unet_layer();
        let t = direct_tile(&ys, &win).unwrap();
        for (spec, says) in [
            ("bm=48", "does not fit"),
            ("bm=32,wmf=4", "no box fits BM 32 x WMF 4"),
            ("wmf=3", "does not fit"),
            ("box=1x8x8", "does not fit"),
            ("wnf", "not key=value"),
            ("bm=x", "\"x\" is not a number"),
            ("tw=16", "unknown key \"tw\""),
        ] {
            let e = apply_spec(t, &ys, &win, spec).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(spec), "{spec}: {e}");
        }
    }
}
