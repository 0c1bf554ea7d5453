//! Convolutions on matrix units: dispatch of the cooperative-matrix kernels
//! (`kernels/conv_coop.wgsl`, `kernels/conv_coop_wgrad.wgsl`), the per-device
//! decision whether [`ConvKernel::Auto`] uses them, and the one-time self-test
//! behind that decision.
//!
//! **When.** `Auto` runs the coop kernels for a convolution whose activations
//! are F16 when the device (1) was opened with `SHADER_F16` and
//! `EXPERIMENTAL_COOPERATIVE_MATRIX`, (2) reports a 16x16x16 f16 x f16 -> f32
//! configuration, (3) has subgroups of exactly 32 invocations (the kernels give
//! each 32 consecutive invocations one warp tile), and (4) passed the self-test
//! on first use: a small forward (stride 1 with bias, and stride 2) and weight
//! gradient computed by the coop kernels and by the tiled f32 kernels agree
//! within f16 tolerance. The result is kept in the [`Context`] and printed by
//! `wunet devices`. `WUNET_KERNELS` overrides: `coop` (every conv on the coop
//! kernels where (1)-(3) hold, f32 activations included, no self-test),
//! `coop-emu` (every conv on the emulated coop kernels), `nocoop` / `tiled`
//! (never).
//!
//! **Tiles.** A workgroup owns a 128 x 128 block of the output GEMM when the
//! output (M) side has more than 64 channels, else 64 x 256 (`BM` override);
//! see the kernel headers for thread mapping, staging and epilogue.

use super::conv::{ConvKernel, ConvParams};
use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{Context, DType, Recorder, Tensor};
use crate::shape::{conv_weight_shape, Shape, Window};

/// Whether the coop conv kernels run on a device (decided once per [`Context`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoopConv {
    /// Hardware support and a passed self-test; the configuration used.
    Ready(String),
    /// The device lacks something the kernels need.
    Unavailable(String),
    /// The self-test failed (or a pipeline did not build); the kernels stay unused.
    Failed(String),
}

impl CoopConv {
    pub fn is_ready(&self) -> bool {
        matches!(self, CoopConv::Ready(_))
    }
}

impl std::fmt::Display for CoopConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoopConv::Ready(cfg) => write!(f, "cooperative matrix conv: {cfg}, self-test passed"),
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
    let want = configs.iter().any(|p| {
        p.m_size == 16
            && p.n_size == 16
            && p.k_size == 16
            && p.ab_type == wgpu::CooperativeScalarType::F16
            && p.cr_type == wgpu::CooperativeScalarType::F32
    });
    if !want {
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
        Ok(cfg) => match self_test(ctx, false) {
            Ok(()) => CoopConv::Ready(cfg),
            Err(e) => {
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

/// The kernel `WUNET_KERNELS` forces on every conv, if any (`coop`, `coop-emu`, `tiled`).
pub(crate) fn forced(ctx: &Context) -> Option<ConvKernel> {
    match std::env::var("WUNET_KERNELS").ok().as_deref() {
        Some("coop") if device_support(ctx).is_ok() => Some(ConvKernel::Coop),
        Some("coop-emu") if ctx.features.contains(wgpu::Features::SHADER_F16) => {
            Some(ConvKernel::CoopEmulated)
        }
        Some("tiled") => Some(ConvKernel::Tiled),
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
        (b, _) => b,
    }
}

/// `y = conv(x, w) + b` on the coop forward kernel (x: C side, y: O side).
pub(crate) fn dispatch_fwd(
    rec: &mut Recorder,
    emulated: bool,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    win: &Window,
    y: &Tensor,
) -> Result<()> {
    let (xs, ys) = (x.shape, y.shape);
    let params = ConvParams::new(&xs, &ys, win, b.is_some());
    let bm = tile_rows(ys.c());
    let kernel = kernel_name("conv_coop", emulated);
    let pad = staging_pad(rec.ctx, kernel, bm)?;
    let groups =
        rec.grid(groups_for(ys.c(), bm) * groups_for(ys.n() * ys.spatial_numel(), 16384 / bm))?;
    let bias = b.unwrap_or(w);
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
/// [`WGRAD_TARGET_GROUPS`] workgroups, each split at least [`WGRAD_MIN_CHUNK`] positions,
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
    emulated: bool,
    x: &Tensor,
    dy: &Tensor,
    win: &Window,
    dw: &Tensor,
) -> Result<()> {
    let (xs, ys) = (x.shape, dy.shape);
    let mut params = ConvParams::new(&xs, &ys, win, false);
    let taps = xs.c() * win.kernel_numel();
    let bm = tile_rows(ys.c());
    let (splits, chunk) = wgrad_splits(ys.c(), taps, ys.n() * ys.spatial_numel());
    params.aux = splits as u32;
    params.k_pad = chunk as u32;
    let kernel = kernel_name("conv_coop_wgrad", emulated);
    let pad = staging_pad(rec.ctx, kernel, bm)?;
    let mut groups = rec.grid(groups_for(taps, 16384 / bm) * groups_for(ys.c(), bm))?;
    groups[2] = splits as u32;
    let ov = [("BM", bm as f64), ("PAD", pad as f64)];
    if splits == 1 {
        return rec.dispatch(kernel, "main", &ov, &params, &[x, dy, dw], groups);
    }
    let part = Tensor::empty(rec.ctx, Shape::vector(splits * dw.numel()), DType::F32)?;
    rec.dispatch(kernel, "main", &ov, &params, &[x, dy, &part], groups)?;
    super::reduce::sum_splits_into(rec, &part, splits, dw, false)
}

/// Deterministic values in [-1, 1), exactly representable in f16.
fn test_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32 ^ seed.wrapping_mul(0x9E37_79B9)).wrapping_mul(2_654_435_761);
            let v = (h >> 8) as f32 / 8_388_608.0 - 1.0;
            half::f16::from_f32(v).to_f32()
        })
        .collect()
}

/// Worst `|got - want| / (atol + rtol*|want|)`.
fn worst_ratio(got: &[f32], want: &[f32], atol: f32, rtol: f32) -> f32 {
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            let r = (g - w).abs() / (atol + rtol * w.abs());
            if r.is_finite() {
                r
            } else {
                f32::INFINITY
            }
        })
        .fold(0.0, f32::max)
}

/// The self-test: coop (or, with `emulated`, the emulated coop) kernels against the tiled
/// f32 kernels on f16-exact data: forward 2x24x9x13 -> 40 (3x3, pad 1, bias; 64 x 256
/// blocks), forward 1x20x11x10 -> 72 (3x3, stride 2; 128 x 128 blocks), and the weight
/// gradient of the first. The coop run reads and writes F16 activations; tolerance:
/// f16 rounding of the output (2^-10 relative) plus f32 summation-order noise.
pub fn self_test(ctx: &Context, emulated: bool) -> std::result::Result<(), String> {
    let k = if emulated {
        ConvKernel::CoopEmulated
    } else {
        ConvKernel::Coop
    };
    let reference = match ctx.class {
        crate::gpu::AdapterClass::Cpu => ConvKernel::Cpu,
        crate::gpu::AdapterClass::Gpu => ConvKernel::Tiled,
    };
    let run = || -> Result<Vec<String>> {
        let mut bad = Vec::new();
        let cases = [
            (Shape::new4(2, 24, 9, 13), 40, Window::cube(2, 3, 1, 1)),
            (Shape::new4(1, 20, 11, 10), 72, Window::cube(2, 3, 2, 1)),
        ];
        for (i, (xs, o, win)) in cases.iter().enumerate() {
            let ws = conv_weight_shape(*o, xs.c(), win, false);
            let ys = super::conv::conv_out_shape(xs, &ws, win)?;
            let xv = test_values(xs.numel(), 1 + i as u32);
            let wv = test_values(ws.numel(), 11 + i as u32);
            let bv = test_values(*o, 21 + i as u32);
            let gv = test_values(ys.numel(), 31 + i as u32);
            let w = Tensor::from_f32(ctx, &wv, ws)?;
            let b = Tensor::from_f32(ctx, &bv, Shape::vector(*o))?;
            let (x32, g32) = (
                Tensor::from_f32(ctx, &xv, *xs)?,
                Tensor::from_f32(ctx, &gv, ys)?,
            );
            let (x16, g16) = (
                Tensor::from_f32_as_f16(ctx, &xv, *xs)?,
                Tensor::from_f32_as_f16(ctx, &gv, ys)?,
            );
            let y_ref = Tensor::empty(ctx, ys, DType::F32)?;
            let dw_ref = Tensor::empty(ctx, ws, DType::F32)?;
            let y = Tensor::empty(ctx, ys, DType::F16)?;
            let dw = Tensor::empty(ctx, ws, DType::F32)?;
            ctx.run(|rec| {
                super::conv::conv_into(rec, &x32, &w, Some(&b), win, &y_ref, reference)?;
                super::conv::conv_grad_weight_into(rec, &x32, &g32, win, &dw_ref, reference)?;
                super::conv::conv_into(rec, &x16, &w, Some(&b), win, &y, k)?;
                super::conv::conv_grad_weight_into(rec, &x16, &g16, win, &dw, k)
            })?;
            let kf = (xs.c() * win.kernel_numel()) as f32;
            let kw = (ys.n() * ys.spatial_numel()) as f32;
            let checks = [
                ("forward", y.to_f32_vec(ctx)?, y_ref.to_f32_vec(ctx)?, kf),
                (
                    "weight gradient",
                    dw.to_f32_vec(ctx)?,
                    dw_ref.to_f32_vec(ctx)?,
                    kw,
                ),
            ];
            for (what, got, want, kdim) in checks {
                let r = worst_ratio(&got, &want, 1e-3 * kdim.sqrt(), 2e-3);
                if r > 1.0 {
                    bad.push(format!(
                        "{what} {xs} -> {o} {win:?}: worst error {r:.2}x the tolerance"
                    ));
                }
            }
        }
        Ok(bad)
    };
    match run() {
        Ok(bad) if bad.is_empty() => Ok(()),
        Ok(bad) => Err(bad.join("; ")),
        Err(e) => Err(e.to_string()),
    }
}
