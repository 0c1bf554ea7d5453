//! Variant choice by measurement, with an on-disk cache.
//!
//! For a convolution that several kernels can compute (today: stride-1 3x3(x3) forwards and
//! grad inputs in f32, where the Winograd kernels compete with the adapter's direct one),
//! [`ConvKernel::Auto`] is resolved in this order:
//! 1. `WUNET_KERNELS` forces a variant (see `ops::coop::forced`);
//! 2. the cache: an earlier measurement for (adapter, driver, op, shape);
//! 3. measurement: each candidate runs on zero-filled tensors of the real shapes (one warm-up,
//!    two timed runs), the fastest wins and is written to the cache. A process spends at most
//!    [`budget`] on this (2 s on CPU adapters, 200 ms on GPUs; `wunet tune` has none);
//! 4. the adapter-class default, when measurement is off (`WUNET_TUNE=0`: no cache, no
//!    measurement; `WUNET_TUNE=cache`: the cache only), the budget is spent, or it failed.
//!
//! A resumed training run first replays the choices its checkpoint names ([`pin`]), so a
//! layer never changes kernel midway through a run (bitwise resume).
//!
//! The matrix-unit convolution chooses its tile and staging the same way, in the same file
//! and under the same budget ([`choose_named`], keys `coop ...`; `crate::ops::coop`).
//!
//! **Cache file**: `conv-variants.txt` in `$WUNET_CACHE_DIR`, else `$XDG_CACHE_HOME/wunet`,
//! else `~/.cache/wunet`. A header line `wunet-conv-variants <version>`, then one
//! tab-separated line per entry: adapter, driver (name and info), shape key, variant,
//! milliseconds per candidate. A different driver string is a different key (so an updated
//! driver is measured again). A file with another header or an unreadable line is ignored
//! with a warning and rewritten on the next store. Stores re-read the file, merge and write
//! atomically (temp file + rename), so concurrent processes never see a torn file (the last
//! writer's view of the others' entries wins, at worst losing one measurement).

use super::ConvKernel;
use crate::error::Result;
use crate::gpu::{AdapterClass, Context, DType, Program, Tensor};
use crate::shape::{Shape, Window};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// File format version (the header's second word). Raised when kernels change what a
/// candidate costs, so caches measured with older kernels are measured again (2: Winograd
/// grad inputs read the weight in place, without the flipped copy; 3: the Winograd GEMM
/// keeps its live invocations contiguous when columns are few).
pub const VERSION: u32 = 3;
const HEADER: &str = "wunet-conv-variants";
const FILE: &str = "conv-variants.txt";

/// How variants are chosen in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Cache, then measurement within the budget (the default).
    Measure,
    /// Cache, then measurement without a budget (`wunet tune`).
    Unbounded,
    /// Cache only; no measurement.
    CacheOnly,
    /// Neither cache nor measurement: the adapter-class default (`WUNET_TUNE=0`).
    Off,
}

static MODE: AtomicU8 = AtomicU8::new(0);

/// Set the mode for this process (overrides `WUNET_TUNE`).
pub fn set_mode(m: Mode) {
    let v = match m {
        Mode::Measure => 1,
        Mode::Unbounded => 2,
        Mode::CacheOnly => 3,
        Mode::Off => 4,
    };
    MODE.store(v, Ordering::SeqCst);
}

/// The mode: [`set_mode`]'s, else from `WUNET_TUNE` (`0`/`off`, `cache`, anything else:
/// measure).
pub fn mode() -> Mode {
    match MODE.load(Ordering::SeqCst) {
        1 => Mode::Measure,
        2 => Mode::Unbounded,
        3 => Mode::CacheOnly,
        4 => Mode::Off,
        _ => match std::env::var("WUNET_TUNE").ok().as_deref() {
            Some("0") | Some("off") => Mode::Off,
            Some("cache") => Mode::CacheOnly,
            _ => Mode::Measure,
        },
    }
}

/// Measurement time a process may spend on this adapter class in [`Mode::Measure`].
pub fn budget(ctx: &Context) -> Duration {
    match ctx.class {
        AdapterClass::Cpu => Duration::from_millis(2000),
        AdapterClass::Gpu => Duration::from_millis(200),
    }
}

/// The cache file: `$WUNET_CACHE_DIR/conv-variants.txt`, else under `$XDG_CACHE_HOME/wunet`
/// or `~/.cache/wunet`; `None` without any of these.
pub fn cache_path() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = env("WUNET_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("wunet")))
        .or_else(|| env("HOME").map(|h| h.join(".cache").join("wunet")))?;
    Some(dir.join(FILE))
}

/// One measured choice.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The winning variant's name ([`variant_name`]).
    pub variant: String,
    /// `name=ms` for every candidate measured.
    pub times: String,
}

/// (adapter, driver, shape key) -> entry.
pub type Entries = BTreeMap<(String, String, String), Entry>;

/// Variant names in the cache and in `WUNET_KERNELS`.
pub fn variant_name(k: ConvKernel) -> &'static str {
    match k {
        ConvKernel::Cpu => "cpu",
        ConvKernel::Tiled => "tiled",
        ConvKernel::Direct => "direct",
        ConvKernel::Winograd2 => "winograd2",
        ConvKernel::Winograd4 => "winograd4",
        _ => "other",
    }
}

/// Whether `name` can name a candidate in the cache file: non-empty, lower-case letters,
/// digits, `-` and `_` (no tab, comma or `=`, which separate the file's fields).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The adapter half of a key: (name, driver and driver info, backend).
pub fn adapter_key(info: &wgpu::AdapterInfo) -> (String, String) {
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    (
        clean(&format!("{} [{:?}]", info.name, info.backend)),
        clean(&format!("{} {}", info.driver, info.driver_info)),
    )
}

/// Parse a cache file's text; `Err` (why) for another version or a malformed line.
pub fn parse(text: &str) -> std::result::Result<Entries, String> {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("");
    if head != format!("{HEADER} {VERSION}") {
        return Err(format!("header '{head}', expected '{HEADER} {VERSION}'"));
    }
    let mut out = Entries::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 5 || !valid_name(f[3]) {
            return Err(format!("line {} is malformed", i + 2));
        }
        let e = Entry {
            variant: f[3].into(),
            times: f[4].into(),
        };
        out.insert((f[0].into(), f[1].into(), f[2].into()), e);
    }
    Ok(out)
}

/// The text of a cache file holding `entries`.
pub fn render(entries: &Entries) -> String {
    let mut s = format!("{HEADER} {VERSION}\n");
    for ((a, d, k), e) in entries {
        s += &format!("{a}\t{d}\t{k}\t{}\t{}\n", e.variant, e.times);
    }
    s
}

/// The entries of the file at `path`: empty when it is missing; empty with a warning when
/// it is unreadable or corrupt (it is rewritten on the next store).
pub fn load(path: &Path) -> Entries {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Entries::new(),
        Err(e) => {
            eprintln!("warning: tuning cache {}: {e}; ignored", path.display());
            return Entries::new();
        }
    };
    parse(&text).unwrap_or_else(|why| {
        eprintln!(
            "warning: tuning cache {}: {why}; ignored, will be rewritten",
            path.display()
        );
        Entries::new()
    })
}

/// Add `new` to the file at `path` (re-read, merged, written atomically). Failures are
/// warnings, never errors.
pub fn store(path: &Path, new: &Entries) {
    let mut all = load(path);
    all.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Err(e) = crate::fsutil::write_atomic(path, render(&all).as_bytes()) {
        eprintln!("warning: tuning cache not written: {e}");
    }
}

/// The process's view: entries read from disk (once) and measured here, time spent, and
/// every choice made (shape key -> variant and where it came from).
struct State {
    loaded: Option<PathBuf>,
    entries: Entries,
    spent: Duration,
    decisions: BTreeMap<String, (String, &'static str)>,
    /// (adapter, driver, key) -> candidate name: choices a resumed run replays ([`pin`]).
    pins: BTreeMap<(String, String, String), String>,
}

static STATE: Mutex<State> = Mutex::new(State {
    loaded: None,
    entries: BTreeMap::new(),
    spent: Duration::ZERO,
    decisions: BTreeMap::new(),
    pins: BTreeMap::new(),
});

/// Note the candidate chosen for `key` (by name) and why (see [`decisions`]).
fn decided(key: &str, name: &str, how: &'static str) {
    with_state(|s| s.decisions.insert(key.to_string(), (name.to_string(), how)));
}

/// The choices made in this process: (key, candidate name, `pinned` | `cache` | `measured`
/// | `default` | `budget`).
pub fn decisions() -> Vec<(String, String, &'static str)> {
    with_state(|s| {
        s.decisions
            .iter()
            .map(|(k, (v, how))| (k.clone(), v.clone(), *how))
            .collect()
    })
}

/// How many choices of this process fell back to the default because the measuring budget
/// was spent (`budget` in [`decisions`]): layers a later process (or `wunet tune`) measures.
pub fn unmeasured() -> usize {
    decisions().iter().filter(|d| d.2 == "budget").count()
}

/// The choices made in this process on adapter `info`, as text for a checkpoint's metadata
/// (a training run's `kernels` entry): a first line naming the adapter and driver, then one
/// `key<TAB>name` line per choice. [`pin`] reads it back.
pub fn decisions_text(info: &wgpu::AdapterInfo) -> String {
    let (a, d) = adapter_key(info);
    let mut out = format!("{a}\t{d}\n");
    for (key, name, _) in decisions() {
        out += &format!("{key}\t{name}\n");
    }
    out
}

/// Pinned choices, in force until dropped (see [`pin`]).
#[must_use = "the choices are pinned only while the guard lives"]
pub struct Pins {
    keys: Vec<(String, String, String)>,
}

impl Drop for Pins {
    fn drop(&mut self) {
        with_state(|s| {
            for k in &self.keys {
                s.pins.remove(k);
            }
        });
    }
}

/// Pin the choices of `text` ([`decisions_text`] of an earlier process): while the guard
/// lives, a choice for one of its keys on the same adapter and driver returns the pinned
/// candidate (`pinned`) before the cache, measurement or `WUNET_TUNE` are consulted, so a
/// resumed training run computes with the kernels it began with (bitwise resume: a cold
/// cache's budget leaves different layers measured in different processes). A pinned
/// name that is no longer among the candidates is ignored. Text from another adapter or
/// driver pins nothing; returns the guard and how many choices it pins.
pub fn pin(info: &wgpu::AdapterInfo, text: &str) -> (Pins, usize) {
    let (a, d) = adapter_key(info);
    let mut lines = text.lines();
    let same = lines.next() == Some(format!("{a}\t{d}").as_str());
    let choices: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, name)| same && valid_name(name))
        .collect();
    let keys: Vec<(String, String, String)> = with_state(|s| {
        choices
            .into_iter()
            .map(|(k, name)| {
                let key = (a.clone(), d.clone(), k.to_string());
                s.pins.insert(key.clone(), name.to_string());
                key
            })
            .collect()
    });
    let n = keys.len();
    (Pins { keys }, n)
}

/// The pinned candidate of `key` on this adapter among `names`, if any.
fn pinned(info: &wgpu::AdapterInfo, key: &str, names: &[String]) -> Option<usize> {
    let (a, d) = adapter_key(info);
    let name = with_state(|s| s.pins.get(&(a, d, key.to_string())).cloned())?;
    names.iter().position(|n| *n == name)
}

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut g = STATE.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g)
}

/// The index of the cached winner for `key` on this adapter among `names`, reading the
/// cache file on first use (again when the cache path changed), where its entry measured
/// every one of `names` (an entry from before a candidate was added is measured again).
fn lookup(info: &wgpu::AdapterInfo, key: &str, names: &[String]) -> Option<usize> {
    let path = cache_path();
    let (a, d) = adapter_key(info);
    with_state(|s| {
        if let Some(p) = &path {
            if s.loaded.as_ref() != Some(p) {
                s.entries = load(p);
                s.loaded = Some(p.clone());
            }
        }
        let e = s.entries.get(&(a, d, key.to_string()))?;
        let measured = |name: &String| {
            e.times
                .split(',')
                .any(|t| t.split('=').next() == Some(name.as_str()))
        };
        if !names.iter().all(measured) {
            return None;
        }
        names.iter().position(|n| *n == e.variant)
    })
}

/// Measurement time left in this process (`None`: unbounded).
fn time_left(budget: Duration, m: Mode) -> Option<Duration> {
    match m {
        Mode::Unbounded => None,
        _ => Some(budget.saturating_sub(with_state(|s| s.spent))),
    }
}

/// Record a measured winner in memory and in the cache file.
fn remember(info: &wgpu::AdapterInfo, key: &str, winner: &str, times: &[(&str, f64)]) {
    let (a, d) = adapter_key(info);
    let times = times
        .iter()
        .map(|(name, ms)| format!("{name}={ms:.3}"))
        .collect::<Vec<_>>()
        .join(",");
    let e = Entry {
        variant: winner.into(),
        times,
    };
    let mut one = Entries::new();
    one.insert((a, d, key.to_string()), e);
    with_state(|s| s.entries.extend(one.clone()));
    if let Some(p) = cache_path() {
        store(&p, &one);
    }
}

/// The variant for the convolution `key` among `candidates` (the first is the fallback):
/// cached, else measured with `time` (milliseconds of one run of a candidate), else the
/// fallback. See the module docs for the order and the budget.
pub fn choose(
    ctx: &Context,
    key: &str,
    candidates: &[ConvKernel],
    time: &mut dyn FnMut(ConvKernel) -> Result<f64>,
) -> ConvKernel {
    choose_for(&ctx.info, budget(ctx), key, candidates, time)
}

/// [`choose`] for the adapter `info` with a measurement `budget` (what the tests drive).
pub fn choose_for(
    info: &wgpu::AdapterInfo,
    budget: Duration,
    key: &str,
    candidates: &[ConvKernel],
    time: &mut dyn FnMut(ConvKernel) -> Result<f64>,
) -> ConvKernel {
    let names: Vec<String> = candidates
        .iter()
        .map(|k| variant_name(*k).to_string())
        .collect();
    let (i, _) = choose_named(info, budget, key, &names, &mut |i| time(candidates[i]));
    candidates[i]
}

/// The general form of [`choose_for`]: candidates by name ([`valid_name`]; the first is the
/// fallback), `time(i)` the milliseconds of candidate `i`. Returns the chosen index and how
/// it was chosen (`pinned`, `cache`, `measured`, `default`, or `budget`: the fallback
/// because this process's measuring budget is spent), also noted in [`decisions`]. Other
/// kernels' own tunings (the matrix-unit convolution's tiles) use it with their own keys.
pub fn choose_named(
    info: &wgpu::AdapterInfo,
    budget: Duration,
    key: &str,
    names: &[String],
    time: &mut dyn FnMut(usize) -> Result<f64>,
) -> (usize, &'static str) {
    let pick = |i: usize, how: &'static str| {
        decided(key, &names[i], how);
        (i, how)
    };
    if let Some(i) = pinned(info, key, names) {
        return pick(i, "pinned");
    }
    let m = mode();
    if m == Mode::Off || names.len() < 2 {
        return pick(0, "default");
    }
    if let Some(i) = lookup(info, key, names) {
        return pick(i, "cache");
    }
    if m == Mode::CacheOnly {
        return pick(0, "default");
    }
    if time_left(budget, m).is_some_and(|t| t.is_zero()) {
        return pick(0, "budget");
    }
    let start = Instant::now();
    let mut times = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match time(i) {
            Ok(ms) => times.push((i, ms)),
            Err(e) => eprintln!("warning: tuning {key}: {name} failed: {e}"),
        }
    }
    with_state(|s| s.spent += start.elapsed());
    let Some(&(winner, _)) = times.iter().min_by(|a, b| a.1.total_cmp(&b.1)) else {
        return pick(0, "default");
    };
    let named: Vec<(&str, f64)> = times
        .iter()
        .map(|&(i, ms)| (names[i].as_str(), ms))
        .collect();
    remember(info, key, &names[winner], &named);
    pick(winner, "measured")
}

/// The cache entries for this adapter and driver: (shape key, entry).
pub fn entries_for(info: &wgpu::AdapterInfo) -> Vec<(String, Entry)> {
    let (a, d) = adapter_key(info);
    let Some(p) = cache_path() else {
        return Vec::new();
    };
    load(&p)
        .into_iter()
        .filter(|((ea, ed, _), _)| *ea == a && *ed == d)
        .map(|((_, _, k), e)| (k, e))
        .collect()
}

/// Measurement time spent in this process so far.
pub fn spent() -> Duration {
    with_state(|s| s.spent)
}

/// Which convolution computation a choice is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvOp {
    /// `conv` forward.
    Forward,
    /// `conv` grad input.
    GradInput,
    /// `conv` grad weight.
    GradWeight,
}

/// The cache key of a convolution: op, input shape (the conv input, `x` or `dx`), output
/// channels and padding, e.g. `fwd 2x32x64x64 o32 p1,1`.
pub fn shape_key(op: ConvOp, xs: &Shape, o: usize, win: &Window) -> String {
    let op = match op {
        ConvOp::Forward => "fwd",
        ConvOp::GradInput => "dgrad",
        ConvOp::GradWeight => "wgrad",
    };
    let p = if xs.is_3d() {
        format!("{},{},{}", win.pad[0], win.pad[1], win.pad[2])
    } else {
        format!("{},{}", win.pad[1], win.pad[2])
    };
    format!("{op} {xs} o{o} k3 s1 p{p}")
}

/// The kernels that compete for a convolution whose default is `fallback`: the fallback,
/// then the Winograd variants where they apply (tiles of edge 2 and 4); just the fallback
/// otherwise.
pub fn candidates(op: ConvOp, xs: &Shape, win: &Window, fallback: ConvKernel) -> Vec<ConvKernel> {
    let fwin = match op {
        ConvOp::Forward => Some(*win),
        ConvOp::GradInput => super::flipped_window(win),
        ConvOp::GradWeight => Some(*win),
    };
    match fwin {
        Some(f) if super::winograd::applies(&f, xs.is_3d()) => {
            vec![fallback, ConvKernel::Winograd2, ConvKernel::Winograd4]
        }
        _ => vec![fallback],
    }
}

/// Best-of-two milliseconds of `op` with kernel `k` on zero-filled f32 tensors of these
/// shapes (after one warm-up run, which also builds the pipelines).
pub fn time_candidate(
    ctx: &Context,
    op: ConvOp,
    xs: &Shape,
    ws: &Shape,
    win: &Window,
    k: ConvKernel,
) -> Result<f64> {
    let prog = zero_program(ctx, op, xs, ws, win, k, DType::F32)?;
    best_ms(ctx, &prog, 2)
}

/// The program of `op` with kernel `k` on zero-filled tensors of these shapes: activations
/// (and activation gradients) `act`, weight and bias f32.
pub fn zero_program(
    ctx: &Context,
    op: ConvOp,
    xs: &Shape,
    ws: &Shape,
    win: &Window,
    k: ConvKernel,
    act: DType,
) -> Result<Program> {
    let ys = super::conv_out_shape(xs, ws, win)?;
    let w = Tensor::zeros(ctx, *ws, DType::F32)?;
    match op {
        ConvOp::Forward => {
            let x = Tensor::zeros(ctx, *xs, act)?;
            let b = Tensor::zeros(ctx, Shape::vector(ys.c()), DType::F32)?;
            let y = Tensor::empty(ctx, ys, act)?;
            ctx.record(|rec| super::conv_into(rec, &x, &w, Some(&b), win, &y, k))
        }
        ConvOp::GradInput => {
            let dy = Tensor::zeros(ctx, ys, act)?;
            let dx = Tensor::empty(ctx, *xs, act)?;
            ctx.record(|rec| super::conv_grad_input_into(rec, &dy, &w, win, &dx, k))
        }
        ConvOp::GradWeight => {
            let x = Tensor::zeros(ctx, *xs, act)?;
            let dy = Tensor::zeros(ctx, ys, act)?;
            ctx.record(|rec| super::conv_grad_weight_into(rec, &x, &dy, win, &w, k))
        }
    }
}

/// The best of `runs` timed runs of `prog` in milliseconds, after one warm-up run.
pub fn best_ms(ctx: &Context, prog: &Program, runs: usize) -> Result<f64> {
    let (_, ms) = crate::bench::time_program_best(ctx, prog, 1, runs)?;
    Ok(ms.first().copied().unwrap_or(f64::INFINITY))
}

/// The kernel for an f32 convolution whose default (resolved `Auto`) is `fallback`: chosen
/// among [`candidates`] by [`choose`]. `xs`: the conv input shape (`dx` for a grad input).
pub fn pick(
    ctx: &Context,
    op: ConvOp,
    xs: &Shape,
    ws: &Shape,
    win: &Window,
    fallback: ConvKernel,
) -> ConvKernel {
    let cands = candidates(op, xs, win, fallback);
    if cands.len() < 2 {
        return fallback;
    }
    let key = shape_key(op, xs, ws.dims[0], win);
    choose(ctx, &key, &cands, &mut |k| {
        time_candidate(ctx, op, xs, ws, win, k)
    })
}

/// The kernel of a conv forward or grad input: `kernel` resolved for this device, and for
/// `Auto` on f32 activations without a `WUNET_KERNELS` override, [`pick`]ed among the
/// candidates. `xs`: the conv input shape (`dx` for a grad input).
pub fn resolve(
    ctx: &Context,
    kernel: ConvKernel,
    op: ConvOp,
    xs: &Shape,
    ws: &Shape,
    win: &Window,
    act: DType,
) -> ConvKernel {
    let k = kernel.resolve_for(ctx, act);
    if kernel != ConvKernel::Auto
        || k.is_coop()
        || act != DType::F32
        || std::env::var_os("WUNET_KERNELS").is_some()
    {
        return k;
    }
    pick(ctx, op, xs, ws, win, k)
}
