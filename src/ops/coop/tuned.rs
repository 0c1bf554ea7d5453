//! The direct forward's tile chosen by measurement on the device.
//!
//! [`direct_tile`]'s rule is a guess made from one card's figures (H200,
//! notes/device-2026-11-27-h200-mixed-run3.log); which BM, WNF and staging is fastest depends
//! on the card, its driver and the layer. So where the direct forward runs on real matrix
//! units, the tile of each forward (and stride-1 grad input, the forward on `dy`) is chosen
//! the way the f32 variants are (`ops::conv::tune`: cache, else measurement within the
//! process's budget, else the rule; `wunet tune` measures a model's layers without a budget):
//! * candidates ([`candidates`]): the rule's tile first (the fallback), then its neighbours:
//!   the other BM of 32 / 64 / 128 that keep at least half of the rows busy, the other WNF,
//!   64 x 64 per subgroup (WMF 4) at the rule's BM and at 128, the f16-packed weights,
//!   register double buffering toggled; each with the rule's box and tap rows for its BM,
//!   WMF and WNF, and only those that fit the device;
//! * timing: each candidate forced ([`with_tile`]) on zero-filled tensors of the real shapes
//!   and activation type, one warm-up run and five timed, the best;
//! * cache key ([`key`]): `coop fwd <input> o<O> k<KDxKHxKW> p<pads> <f16|f32>`, names as
//!   [`tile_name`], e.g. `bm128-wmf2-wnf4-w32-db1`.
//!
//! Not measured (the rule's tile, or the override, as before): the emulated kernels (CPU
//! adapters and the tests pin their tiles), a `WUNET_COOP_DIRECT_TILE` or
//! [`super::with_staging`] override, and the up-convolution's phase-row GEMM.

use std::cell::Cell;

use super::direct::{direct_tile, pad_for, tile_of, DirectTile};
use super::CoopMode;
use crate::error::Result;
use crate::gpu::{Context, DType};
use crate::ops::conv::{tune, ConvKernel};
use crate::shape::{Shape, Window};

/// What this thread's direct forwards use instead of a measured tile (not to be confused
/// with `tune::pin`, which replays a resumed run's choices).
#[derive(Clone, Copy)]
enum Fixed {
    /// This tile (where the kernel size matches).
    Tile(DirectTile),
    /// The rule's tile (or the override's): nothing measured.
    Rule,
}

thread_local! {
    static FIXED: Cell<Option<Fixed>> = const { Cell::new(None) };
}

fn fixed<T>(p: Fixed, f: impl FnOnce() -> T) -> T {
    let old = FIXED.with(|c| c.replace(Some(p)));
    let out = f();
    FIXED.with(|c| c.set(old));
    out
}

/// Run `f` with every direct forward recorded on this thread using tile `t` (where it
/// applies to the shapes: same kernel size), neither measured nor overridden.
pub fn with_tile<T>(t: DirectTile, f: impl FnOnce() -> T) -> T {
    fixed(Fixed::Tile(t), f)
}

/// Run `f` with every direct forward recorded on this thread on the rule's tile (or the
/// override's), nothing measured (the self-test checks the kernel, not a tuning).
pub fn with_rule_tiles<T>(f: impl FnOnce() -> T) -> T {
    fixed(Fixed::Rule, f)
}

/// The tile forced on this thread for window `win`, if any.
pub(super) fn forced(win: &Window) -> Option<DirectTile> {
    match FIXED.with(|c| c.get()) {
        Some(Fixed::Tile(t)) if t.kernel == win.kernel => Some(t),
        _ => None,
    }
}

/// A tile's name in the tuning cache and in `wunet tune`'s report: BM, WMF, WNF, weight
/// staging (`w32`: f32 converted while staging, `w16`: packed f16) and double buffering.
pub fn tile_name(t: &DirectTile) -> String {
    let w = if t.staging.packed_weights { 16 } else { 32 };
    let db = u8::from(t.staging.prefetch);
    format!("bm{}-wmf{}-wnf{}-w{w}-db{db}", t.bm, t.wmf, t.wnf)
}

/// The cache key of a direct forward with input `xs`, `o` output channels, window `win` and
/// activations `act`.
pub fn key(xs: &Shape, o: usize, win: &Window, act: DType) -> String {
    let [kd, kh, kw] = win.kernel;
    let [pd, ph, pw] = win.pad;
    let p = if xs.is_3d() {
        format!("{pd},{ph},{pw}")
    } else {
        format!("{ph},{pw}")
    };
    let a = if act == DType::F16 { "f16" } else { "f32" };
    format!("coop fwd {xs} o{o} k{kd}x{kh}x{kw} p{p} {a}")
}

/// The candidate tiles of the direct forward with output `ys` and window `win` on this
/// device: the rule's tile first, then its neighbours (see the module docs), distinct, each
/// fitting the device's workgroup memory. Empty where the rule's tile does not fit.
pub fn candidates(ctx: &Context, ys: &Shape, win: &Window) -> Vec<DirectTile> {
    let fits = |t: &DirectTile| pad_for(ctx, t).is_some();
    let Some(rule) = direct_tile(ys, win).filter(fits) else {
        return Vec::new();
    };
    let o = ys.c();
    let mut out = vec![rule];
    let mut add = |t: Option<DirectTile>| {
        if let Some(t) = t.filter(|t| fits(t) && !out.contains(t)) {
            out.push(t);
        }
    };
    for bm in [32, 64, 128] {
        if bm != rule.bm && bm < 2 * o {
            add(tile_of(ys, win, bm, rule.wmf, rule.wnf));
        }
    }
    let other = |f: usize| if f == 4 { 2 } else { 4 };
    add(tile_of(ys, win, rule.bm, rule.wmf, other(rule.wnf)));
    // The other WMF: at the rule's WNF, else (its box too large) at the other WNF; with
    // 64-row subgroups at BM 128 where the rule's BM is 64 and O leaves half the rows busy.
    for bm in [rule.bm, 128] {
        if bm == rule.bm || bm < 2 * o {
            let wmf = other(rule.wmf);
            add(tile_of(ys, win, bm, wmf, rule.wnf)
                .or_else(|| tile_of(ys, win, bm, wmf, other(rule.wnf))));
        }
    }
    let mut s = rule.staging;
    s.packed_weights = !s.packed_weights;
    add(Some(DirectTile { staging: s, ..rule }));
    let mut s = rule.staging;
    s.prefetch = !s.prefetch;
    add(Some(DirectTile { staging: s, ..rule }));
    out
}

/// Whether the tile of this forward is measured: real matrix units, nothing fixed on this
/// thread, no override.
fn measured(mode: CoopMode) -> bool {
    !mode.emulated
        && FIXED.with(|c| c.get()).is_none()
        && std::env::var_os("WUNET_COOP_DIRECT_TILE").is_none()
        && !super::direct::staging_overridden()
}

/// The measured choice of tile for the direct forward of `xs -> ys` with window `win` and
/// activations `act` (cache, else measurement, else the rule: [`tune::choose_named`]), with
/// how it was chosen; `None` where the tile is not measured (see the module docs) or the
/// kernel does not apply.
pub(super) fn choose(
    ctx: &Context,
    mode: CoopMode,
    (xs, ys): (&Shape, &Shape),
    win: &Window,
    act: DType,
) -> Option<(DirectTile, &'static str)> {
    if !measured(mode) {
        return None;
    }
    choose_among(ctx, mode, (xs, ys), win, act)
}

/// The measured choice (`choose`, which the dispatch calls) without its gate: also for
/// emulated kernels (what the tests drive on CPU adapters).
pub fn choose_among(
    ctx: &Context,
    mode: CoopMode,
    (xs, ys): (&Shape, &Shape),
    win: &Window,
    act: DType,
) -> Option<(DirectTile, &'static str)> {
    let cands = candidates(ctx, ys, win);
    let first = *cands.first()?;
    let names: Vec<String> = cands.iter().map(tile_name).collect();
    let k = key(xs, ys.c(), win, act);
    let (i, how) = tune::choose_named(&ctx.info, tune::budget(ctx), &k, &names, &mut |i| {
        time_tile(ctx, mode, (xs, ys), win, act, cands[i])
    });
    Some((cands.get(i).copied().unwrap_or(first), how))
}

/// Best-of-five milliseconds of the direct forward `xs -> ys` with tile `t` on zero-filled
/// tensors (after one warm-up run, which also builds the pipeline).
pub fn time_tile(
    ctx: &Context,
    mode: CoopMode,
    (xs, ys): (&Shape, &Shape),
    win: &Window,
    act: DType,
    t: DirectTile,
) -> Result<f64> {
    let ws = crate::shape::conv_weight_shape(ys.c(), xs.c(), win, xs.is_3d());
    let k = if mode.emulated {
        ConvKernel::CoopDirectEmulated
    } else {
        ConvKernel::CoopDirect
    };
    let prog = with_tile(t, || {
        tune::zero_program(ctx, tune::ConvOp::Forward, xs, &ws, win, k, act)
    })?;
    tune::best_ms(ctx, &prog, 5)
}
