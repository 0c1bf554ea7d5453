//! Convolutions on matrix units: dispatch of the cooperative-matrix kernels
//! (`kernels/conv_coop.wgsl`, `kernels/conv_coop_wgrad.wgsl`: im2col GEMMs for any
//! window; `kernels/conv_coop_direct.wgsl`: stride-1 convolutions with the input box staged
//! once per channel chunk and reused by every tap), the per-device decision whether
//! [`ConvKernel::Auto`] uses them, and the one-time self-test behind that decision.
//!
//! **When.** `Auto` runs the coop kernels for a convolution whose activations
//! are F16 when the device (1) was opened with `SHADER_F16` and
//! `EXPERIMENTAL_COOPERATIVE_MATRIX`, (2) reports a 16x16x16 f16 x f16 -> f32
//! configuration, (3) has subgroups of exactly 32 invocations (the kernels give
//! each 32 consecutive invocations one warp tile), and (4) passed the self-test
//! on first use: small forwards (stride 1 with bias, stride 2, 3D), a grad input and
//! weight gradients computed by the coop kernels and by the tiled f32 kernels agree
//! within f16 tolerance. The result is kept in the [`Context`] and printed by
//! `wunet devices`; if only the direct kernel fails, `Coop` keeps the im2col kernels.
//! `WUNET_KERNELS` overrides: `coop` (every conv on the coop
//! kernels where (1)-(3) hold, f32 activations included, no self-test),
//! `coop-emu` (every conv on the emulated coop kernels), `nocoop` / `tiled`
//! (never).
//!
//! **Which coop kernel.** `Coop` runs the direct kernel for the forwards it applies to
//! ([`direct_applies`]: stride 1, dilation 1, kernel <= 3 per axis, any padding), and so for
//! the stride-1 grad inputs (the forward on dy with flipped weights), and the im2col kernels
//! for everything else; `WUNET_COOP_DIRECT=0` keeps `Coop` on the im2col kernels.
//! `CoopDirect` / `CoopIm2col` (and their emulated twins) choose explicitly.
//!
//! **Tiles.** im2col: a workgroup owns a 128 x 128 block of the output GEMM when the
//! output (M) side has more than 64 channels, else 64 x 256 (`BM` override). Direct:
//! BM output channels x an output box, the rule's ([`direct_tile`]) or, on real matrix
//! units, the fastest of it and its neighbours measured on the device and cached
//! ([`tuned`]). See the kernel headers for thread mapping, staging and epilogue.

use super::conv::{ConvKernel, ConvParams, Epilogue};
use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{Context, DType, Recorder, Scratch, Tensor};
use crate::shape::{Shape, Window};

mod direct;
mod selftest;
pub mod tuned;
pub(crate) use direct::up_forward;
use direct::{best_box, direct_plan, DIRECT_MAX_BOX, DIRECT_SCRATCH_BYTES, DIRECT_STAGING_HALVES};
pub use direct::{
    describe_fwd, describe_up, direct_applies, direct_tile, with_staging, DirectTile, Staging,
};
pub use selftest::{self_test, self_test_parts};

/// Whether the coop conv kernels run on a device (decided once per [`Context`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoopConv {
    /// Hardware support and a passed self-test (all coop kernels); the configuration used.
    Ready(String),
    /// The im2col kernels passed the self-test, the direct kernel did not (why): `Coop`
    /// runs the im2col kernels only.
    ReadyIm2colOnly(String, String),
    /// The device lacks something the kernels need.
    Unavailable(String),
    /// The self-test failed (or a pipeline did not build); the kernels stay unused.
    Failed(String),
}

impl CoopConv {
    pub fn is_ready(&self) -> bool {
        matches!(self, CoopConv::Ready(_) | CoopConv::ReadyIm2colOnly(..))
    }
    /// The direct kernel passed the self-test too.
    pub fn direct_ready(&self) -> bool {
        matches!(self, CoopConv::Ready(_))
    }
}

impl std::fmt::Display for CoopConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoopConv::Ready(cfg) => write!(
                f,
                "cooperative matrix conv: {cfg}, self-test passed (im2col and direct kernels)"
            ),
            CoopConv::ReadyIm2colOnly(cfg, why) => write!(
                f,
                "cooperative matrix conv: {cfg}, self-test passed by the im2col kernels; \
                 direct kernel FAILED, not used ({why})"
            ),
            CoopConv::Unavailable(why) => write!(f, "cooperative matrix conv: not used ({why})"),
            CoopConv::Failed(why) => {
                write!(
                    f,
                    "cooperative matrix conv: self-test FAILED, not used ({why})"
                )
            }
        }
    }
}

/// The configuration the kernels need, if the adapter facts allow them: `Ok("16x16x16
/// f16->f32")` or `Err(reason)`. `features`: the device's (or adapter's) features.
pub fn hardware_support(
    features: wgpu::Features,
    configs: &[wgpu::CooperativeMatrixProperties],
    info: &wgpu::AdapterInfo,
) -> std::result::Result<String, String> {
    if !features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        return Err("no cooperative matrices".into());
    }
    if !features.contains(wgpu::Features::SHADER_F16) {
        return Err("no shader f16".into());
    }
    if !crate::gpu::context::has_f16_matrix_config(configs) {
        return Err("no 16x16x16 f16->f32 configuration".into());
    }
    if info.subgroup_min_size != 32 || info.subgroup_max_size != 32 {
        return Err(format!(
            "subgroup size {}..{}, the kernels need exactly 32",
            info.subgroup_min_size, info.subgroup_max_size
        ));
    }
    Ok("16x16x16 f16->f32".into())
}

/// [`hardware_support`] for an open device.
pub fn device_support(ctx: &Context) -> std::result::Result<String, String> {
    hardware_support(ctx.features, &ctx.coop, &ctx.info)
}

/// The device's coop status, running the self-test on first call.
pub fn status(ctx: &Context) -> &CoopConv {
    ctx.coop_conv.get_or_init(|| match device_support(ctx) {
        Err(why) => CoopConv::Unavailable(why),
        Ok(cfg) => match self_test_parts(ctx, false) {
            (Ok(()), Ok(())) => CoopConv::Ready(cfg),
            (Ok(()), Err(e)) => {
                eprintln!(
                    "warning: direct cooperative matrix conv self-test failed on {}: {e}; \
                     using the im2col coop kernels",
                    ctx.info.name
                );
                CoopConv::ReadyIm2colOnly(cfg, e)
            }
            (Err(e), _) => {
                eprintln!(
                    "warning: cooperative matrix conv self-test failed on {}: {e}; using the \
                     other conv kernels",
                    ctx.info.name
                );
                CoopConv::Failed(e)
            }
        },
    })
}

/// `ConvKernel::Auto` picks `Coop` for activations of type `act` (see the module docs).
pub fn auto_uses_coop(ctx: &Context, act: DType) -> bool {
    act == DType::F16 && status(ctx).is_ready()
}

/// The kernel `WUNET_KERNELS` forces on every conv, if any (`coop`, `coop-emu`, `tiled`,
/// `winograd2`, `winograd4`: the Winograd kernels where they apply, else the default).
pub(crate) fn forced(ctx: &Context) -> Option<ConvKernel> {
    match std::env::var("WUNET_KERNELS").ok().as_deref() {
        Some("coop") if device_support(ctx).is_ok() => Some(ConvKernel::Coop),
        Some("coop-emu") if ctx.features.contains(wgpu::Features::SHADER_F16) => {
            Some(ConvKernel::CoopEmulated)
        }
        Some("tiled") => Some(ConvKernel::Tiled),
        Some("winograd2") => Some(ConvKernel::Winograd2),
        Some("winograd4") => Some(ConvKernel::Winograd4),
        _ => None,
    }
}

/// Rows of the output block (`BM`): 128 x 128 blocks above 64 output channels, else 64 x 256.
pub fn tile_rows(out_channels: usize) -> usize {
    if out_channels > 64 {
        128
    } else {
        64
    }
}

/// Padding (in halves) of the staging rows: 8 (conflict-free matrix loads on NVIDIA), or 0
/// where the padded tiles would not fit the device's workgroup memory (the emulated kernels
/// on a CPU adapter with 32 KiB).
fn staging_pad(ctx: &Context, kernel: &str, bm: usize) -> Result<usize> {
    let bn = 16384 / bm;
    let bytes = |pad: usize| {
        let a = bm * (32 + pad) * 2;
        let b = if kernel.starts_with("conv_coop_wgrad") {
            bn * (32 + pad) * 2
        } else {
            32 * (bn + pad) * 2
        };
        a + b + 8 * 16 * (16 + pad / 2) * 4
    };
    let lim = ctx.limits.max_compute_workgroup_storage_size as usize;
    [8, 0]
        .into_iter()
        .find(|&p| bytes(p) <= lim)
        .ok_or_else(|| {
            Error::Gpu(format!(
                "{kernel}: {} bytes of workgroup memory needed, the device allows {lim}",
                bytes(0)
            ))
        })
}

fn kernel_name(base: &'static str, emulated: bool) -> &'static str {
    match (base, emulated) {
        ("conv_coop", true) => "conv_coop_emu",
        ("conv_coop_wgrad", true) => "conv_coop_wgrad_emu",
        ("conv_coop_direct", true) => "conv_coop_direct_emu",
        ("conv_coop_direct_wgrad", true) => "conv_coop_direct_wgrad_emu",
        (b, _) => b,
    }
}

/// Whether a coop variant may use the direct kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectMode {
    /// Where they apply, unless `WUNET_COOP_DIRECT=0` or the device's self-test failed
    /// them (`Coop`, `CoopEmulated`).
    Auto,
    /// Where they apply (`CoopDirect*`).
    On,
    /// Never (`CoopIm2col*`).
    Off,
}

/// How a coop variant runs: emulated matrix operations or not, and the direct kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoopMode {
    pub emulated: bool,
    pub direct: DirectMode,
}

/// The coop mode of a kernel variant; `None` for the other variants.
pub fn coop_mode(k: ConvKernel) -> Option<CoopMode> {
    let (emulated, direct) = match k {
        ConvKernel::Coop => (false, DirectMode::Auto),
        ConvKernel::CoopEmulated => (true, DirectMode::Auto),
        ConvKernel::CoopDirect => (false, DirectMode::On),
        ConvKernel::CoopDirectEmulated => (true, DirectMode::On),
        ConvKernel::CoopIm2col => (false, DirectMode::Off),
        ConvKernel::CoopIm2colEmulated => (true, DirectMode::Off),
        _ => return None,
    };
    Some(CoopMode { emulated, direct })
}

/// `WUNET_COOP_DIRECT`: which direct kernels `Coop` may use where they apply, as
/// (forward and stride-1 grad input, weight gradient): `0` neither (the im2col kernels
/// only), `fwd` the forward one only, anything else (or unset) both.
pub fn direct_enabled() -> (bool, bool) {
    match std::env::var("WUNET_COOP_DIRECT").as_deref().map(str::trim) {
        Ok("0") => (false, false),
        Ok("fwd") => (true, false),
        _ => (true, true),
    }
}

impl CoopMode {
    /// Whether the direct kernels may run (where they apply) in this mode on this device,
    /// as (forward, weight gradient). Reads the self-test result without running it (the
    /// self-test runs explicit modes).
    fn direct_allowed(&self, ctx: &Context) -> (bool, bool) {
        match self.direct {
            DirectMode::On => (true, true),
            DirectMode::Off => (false, false),
            DirectMode::Auto => {
                let passed = self.emulated
                    || !matches!(
                        ctx.coop_conv.get(),
                        Some(CoopConv::ReadyIm2colOnly(..) | CoopConv::Failed(_))
                    );
                let (f, w) = direct_enabled();
                (f && passed, w && passed)
            }
        }
    }
}

/// Tile of `conv_coop_direct_wgrad` (see its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectWgradTile {
    /// Output channels per workgroup (32 or 64).
    pub bm: usize,
    /// (o pair, tap) units per subgroup: ceil(BM/32 * taps / 8) <= 4.
    pub upw: usize,
    /// Output box (TD, TH, TW) of one K block, [`DIRECT_WGRAD_BN`] positions.
    pub out_box: [usize; 3],
    pub kernel: [usize; 3],
}

/// Output positions per box (K block) of the direct weight gradient.
pub const DIRECT_WGRAD_BN: usize = 128;

impl DirectWgradTile {
    pub fn box_positions(&self) -> usize {
        (0..3)
            .map(|a| self.out_box[a] + self.kernel[a] - 1)
            .product()
    }
    fn staging_halves(&self, pad: usize) -> usize {
        self.bm * (DIRECT_WGRAD_BN + pad) + self.box_positions() * (16 + pad)
    }
    pub fn workgroup_bytes(&self, pad: usize) -> usize {
        self.staging_halves(pad) * 2 + DIRECT_SCRATCH_BYTES
    }
    fn fits(&self) -> bool {
        self.staging_halves(8) <= DIRECT_STAGING_HALVES && self.box_positions() <= DIRECT_MAX_BOX
    }
    /// Output boxes (K blocks) of a weight gradient with output `ys`.
    pub fn boxes(&self, ys: &Shape) -> usize {
        let [od, oh, ow] = ys.spatial();
        let [td, th, tw] = self.out_box;
        ys.n() * od.div_ceil(td) * oh.div_ceil(th) * ow.div_ceil(tw)
    }
}

impl std::fmt::Display for DirectWgradTile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [td, th, tw] = self.out_box;
        write!(
            f,
            "BM {} x 16 channels x all taps, {} units per subgroup, box {td}x{th}x{tw}",
            self.bm, self.upw
        )
    }
}

/// The direct weight gradient's tile for input `xs`, output `ys` and window `win`, or `None`
/// where it does not apply: stride 1, dilation 1, kernel <= 3 per axis and at least 8 taps
/// (1x1 convolutions are plain GEMMs: the im2col kernel has no redundancy to remove there).
/// BM = 64 where O > 32 and 2*taps <= 32 (2D 3x3: 18 units over 8 subgroups), else 32 (3D
/// 3x3x3: 27 units, at most 4 per subgroup); the box with 128 positions by the forward's
/// rule.
pub fn direct_wgrad_tile(ys: &Shape, win: &Window) -> Option<DirectWgradTile> {
    let kk = win.kernel_numel();
    if !direct_applies(win) || kk < 8 {
        return None;
    }
    let bm = if ys.c() > 32 && 2 * kk <= 32 { 64 } else { 32 };
    let upw = (bm / 32 * kk).div_ceil(8);
    if upw > 4 {
        return None;
    }
    let is_3d = ys.is_3d() || win.kernel[0] > 1;
    let out_box = best_box(DIRECT_WGRAD_BN, is_3d, ys.spatial(), win.kernel, |b| {
        DirectWgradTile {
            bm,
            upw,
            out_box: b,
            kernel: win.kernel,
        }
        .fits()
    })?;
    Some(DirectWgradTile {
        bm,
        upw,
        out_box,
        kernel: win.kernel,
    })
}

fn direct_wgrad_plan(ctx: &Context, ys: &Shape, win: &Window) -> Option<(DirectWgradTile, usize)> {
    let t = direct_wgrad_tile(ys, win)?;
    let lim = ctx.limits.max_compute_workgroup_storage_size as usize;
    let pad = [8, 0].into_iter().find(|&p| t.workgroup_bytes(p) <= lim)?;
    Some((t, pad))
}

/// (splits, boxes per split) of the direct weight gradient: enough splits for about
/// `WGRAD_TARGET_GROUPS` workgroups, each split at least 4 boxes (512 positions). A
/// function of the shapes only: the summation order is the same every run.
pub fn direct_wgrad_splits(tiles: usize, boxes: usize) -> (usize, usize) {
    let splits = (WGRAD_TARGET_GROUPS.div_ceil(tiles.max(1) as u64) as usize)
        .clamp(1, boxes.div_ceil(4).max(1));
    let per = boxes.div_ceil(splits).max(1);
    (boxes.div_ceil(per).max(1), per)
}

/// The weight-gradient kernel a coop mode runs for output `ys` and window `win` (for
/// `wunet bench conv`).
pub fn describe_wgrad(ctx: &Context, mode: CoopMode, ys: &Shape, win: &Window) -> String {
    let emu = if mode.emulated { " (emulated)" } else { "" };
    match direct_wgrad_plan(ctx, ys, win).filter(|_| mode.direct_allowed(ctx).1) {
        Some((t, _)) => format!("conv_coop_direct_wgrad{emu}, {t}"),
        None => format!("conv_coop_wgrad{emu}"),
    }
}

/// `y = conv(x, w) + b` on the coop forward kernels (x: C side, y: O side): the direct
/// kernel where the mode allows it and it applies, else the im2col kernel.
pub(crate) fn dispatch_fwd(
    rec: &mut Recorder,
    mode: CoopMode,
    x: &Tensor,
    w: &Tensor,
    ep: Epilogue,
    win: &Window,
    y: &Tensor,
) -> Result<()> {
    let (xs, ys) = (x.shape, y.shape);
    let params = ConvParams::new(&xs, &ys, win, false).with_epilogue(&ep);
    let bias = ep.bias_or(w);
    if mode.direct_allowed(rec.ctx).0 {
        if let Some(plan) = direct::fwd_plan(rec.ctx, mode, (&xs, &ys), win, x.dtype)? {
            return direct::dispatch(rec, mode, plan, x, w, ep, win, y);
        }
    }
    let bm = tile_rows(ys.c());
    let kernel = kernel_name("conv_coop", mode.emulated);
    let pad = staging_pad(rec.ctx, kernel, bm)?;
    let groups =
        rec.grid(groups_for(ys.c(), bm) * groups_for(ys.n() * ys.spatial_numel(), 16384 / bm))?;
    rec.dispatch(
        kernel,
        "main",
        &[("BM", bm as f64), ("PAD", pad as f64)],
        &params,
        &[x, w, bias, y],
        groups,
    )
}

/// Workgroups the weight-gradient split-K aims at, and the fewest positions per split.
const WGRAD_TARGET_GROUPS: u64 = 256;
const WGRAD_MIN_CHUNK: usize = 512;

/// (splits, chunk) of the coop weight gradient: enough splits to give about
/// `WGRAD_TARGET_GROUPS` workgroups, each split at least `WGRAD_MIN_CHUNK` positions,
/// chunk a multiple of the 32-position K slice. A function of the shapes only, so the
/// summation order (and the result, bit for bit) is the same every run.
pub fn wgrad_splits(out_channels: usize, taps: usize, positions: usize) -> (usize, usize) {
    let bm = tile_rows(out_channels);
    let tiles = groups_for(taps, 16384 / bm) * groups_for(out_channels, bm);
    let splits = (WGRAD_TARGET_GROUPS.div_ceil(tiles.max(1)) as usize)
        .clamp(1, positions.div_ceil(WGRAD_MIN_CHUNK).max(1));
    let chunk = positions.div_ceil(splits).div_ceil(32).max(1) * 32;
    (positions.div_ceil(chunk).max(1), chunk)
}

/// `dw = wgrad(x, dy)` on the coop weight-gradient kernel, split-K with a fixed-order sum.
pub(crate) fn dispatch_wgrad(
    rec: &mut Recorder,
    mode: CoopMode,
    x: &Tensor,
    dy: &Tensor,
    win: &Window,
    dw: &Tensor,
) -> Result<()> {
    let (xs, ys) = (x.shape, dy.shape);
    let mut params = ConvParams::new(&xs, &ys, win, false);
    if mode.direct_allowed(rec.ctx).1 {
        if let Some((t, pad)) = direct_wgrad_plan(rec.ctx, &ys, win) {
            let tiles = groups_for(ys.c(), t.bm) * groups_for(xs.c(), 16);
            let (splits, per) = direct_wgrad_splits(tiles as usize, t.boxes(&ys));
            params.aux = splits as u32;
            params.k_pad = per as u32;
            let mut groups = rec.grid(tiles)?;
            groups[2] = splits as u32;
            let [td, th, tw] = t.out_box;
            let [kd, kh, kw] = t.kernel;
            let ov = [
                ("BM", t.bm as f64),
                ("UPW", t.upw as f64),
                ("TD", td as f64),
                ("TH", th as f64),
                ("TW", tw as f64),
                ("KD", kd as f64),
                ("KH", kh as f64),
                ("KW", kw as f64),
                ("PAD", pad as f64),
            ];
            let kernel = kernel_name("conv_coop_direct_wgrad", mode.emulated);
            if splits == 1 {
                return rec.dispatch(kernel, "main", &ov, &params, &[x, dy, dw], groups);
            }
            let part = rec.scratch(Scratch::Partials, Shape::vector(splits * dw.numel()))?;
            rec.dispatch(kernel, "main", &ov, &params, &[x, dy, &part], groups)?;
            return super::reduce::sum_splits_into(rec, &part, splits, dw, false);
        }
    }
    let taps = xs.c() * win.kernel_numel();
    let bm = tile_rows(ys.c());
    let (splits, chunk) = wgrad_splits(ys.c(), taps, ys.n() * ys.spatial_numel());
    params.aux = splits as u32;
    params.k_pad = chunk as u32;
    let kernel = kernel_name("conv_coop_wgrad", mode.emulated);
    let pad = staging_pad(rec.ctx, kernel, bm)?;
    let mut groups = rec.grid(groups_for(taps, 16384 / bm) * groups_for(ys.c(), bm))?;
    groups[2] = splits as u32;
    let ov = [("BM", bm as f64), ("PAD", pad as f64)];
    if splits == 1 {
        return rec.dispatch(kernel, "main", &ov, &params, &[x, dy, dw], groups);
    }
    let part = rec.scratch(Scratch::Partials, Shape::vector(splits * dw.numel()))?;
    rec.dispatch(kernel, "main", &ov, &params, &[x, dy, &part], groups)?;
    super::reduce::sum_splits_into(rec, &part, splits, dw, false)
}
