//! Block-wise prediction of volumes kept in Zarr stores, in bounded memory,
//! by any number of workers.
//!
//! The unit of work is one chunk of the output store. For each chunk the
//! worker reads the input box that the chunk's tiles see (the chunk grown
//! by the network's context and the tiles' overhang, mirrored at the
//! volume's faces), normalises it with the volume's statistics, runs the
//! tiles and writes the chunk. The tiles are those of the whole volume's
//! tile grid ([`super::tiles::grid`]) that write into the chunk, taken in
//! the grid's order, and the chunk is assembled by [`Accumulator::region`]:
//! every voxel sees the same tiles, weights and additions as in one
//! whole-volume pass, so the store equals the in-memory predictor's result
//! bit for bit, however it is chunked and however many workers share it.
//! Tiles that straddle a chunk face run once for each chunk they reach: a
//! chunk of several output tiles per axis (the default) keeps that small.
//!
//! With `--scale F` the network sees the volume resized in (y, x) by F
//! ([`Zoom`]): the tile grid is the resized volume's, a chunk's input box is
//! read from the source and resized with the taps of the whole volume's
//! resize, and its probabilities are resized back the same way, so the
//! store still equals the in-memory `--scale` result bit for bit.
//!
//! Memory: the input box, the chunk's accumulators and outputs, and one
//! batch of tiles, whatever the volume's size; [`chunk_bytes`] estimates it
//! and the chunk shape is chosen (or checked) against `--max-memory`. The
//! network itself lives in GPU memory (on lavapipe: in the process).
//!
//! Workers: `--part K/N` takes every N-th chunk of the region starting at
//! the K-th (C order), a deterministic share; finished chunks are recorded
//! in the store (see [`store`]), so a rerun skips them and a killed
//! worker's share can be rerun by anyone.

pub mod instances;
pub mod stats;
pub mod store;

use super::predict::{Output, PredictOptions, Predictor};
use super::tiles::{grid, plan_box, TileGeometry, TileGrid};
use crate::data::normalize::NormStats;
use crate::data::resize::Zoom;
use crate::data::tiling::{Accumulator, Blend};
use crate::data::zarr::{Compression, ImageSpec, OutType, ZarrSink, ZarrSource};
use crate::data::{numel, reflect_index, Array3};
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::infer::output::stored_labels;
use crate::model_io::{Checkpoint, InferMeta};
use crate::models::UNetConfig;
use instances::InstanceRecord;
use std::path::PathBuf;
use store::Record;

/// One worker's share of a block-wise prediction.
#[derive(Clone, Debug)]
pub struct BlockJob {
    pub checkpoint: PathBuf,
    /// Store folder, optionally with the node path (`vol.zarr/raw`).
    pub input: PathBuf,
    /// OME-Zarr multiscale level of the input (0 = full resolution).
    pub level: usize,
    /// Label store (created unless it exists).
    pub output: PathBuf,
    /// Probability store and its element type (f16, or u8 = round(255 p)).
    pub probabilities: Option<(PathBuf, OutType)>,
    /// `(k, n)`: this worker is part `k` of `n` (1-based).
    pub part: (usize, usize),
    /// Region `[lo, hi)` per axis (z, y, x); `None`: the whole volume.
    pub roi: Option<[[usize; 2]; 3]>,
    /// Host memory budget in bytes for one chunk's work.
    pub max_memory: u64,
    /// Output chunk `(z, y, x)`; `None`: chosen from the input's chunks.
    pub chunk: Option<[usize; 3]>,
    pub compression: Compression,
    /// Zarr format of the outputs: 3 (OME-Zarr 0.5) or 2 (OME-Zarr 0.4).
    pub zarr_format: u8,
    /// Input tile request (`None`: the checkpoint's).
    pub tile: Option<[usize; 3]>,
    pub opts: PredictOptions,
    /// Instance ids instead of class labels: each chunk's watershed, then
    /// the join ([`instances`]).
    pub instances: Option<InstanceRecord>,
    /// A 2D model: normalise the volume with one set of statistics
    /// (`--norm-scope stack`) instead of each z-section with its own.
    pub norm_stack: bool,
}

/// What a worker did.
#[derive(Clone, Debug, Default)]
pub struct BlockReport {
    pub chunks_total: usize,
    pub chunks_mine: usize,
    pub chunks_done: usize,
    pub chunks_skipped: usize,
    pub voxels: u64,
    /// Network tiles run (a tile at a chunk face runs for each chunk it reaches).
    pub tiles: usize,
    /// Tiles of the whole volume's grid that write into the region.
    pub tiles_distinct: usize,
    /// The output chunk `(z, y, x)`.
    pub chunk: [usize; 3],
    pub seconds: f64,
    /// Whether this worker created the stores (and measured the statistics).
    pub created: bool,
    /// Instances: the join, once every chunk is done.
    pub join: Option<instances::JoinReport>,
    /// Instances: chunks of the region not done yet (the join waits for them).
    pub join_waiting: usize,
}

/// Everything a worker sets up before its first chunk.
struct Setup {
    pred: Predictor,
    src: ZarrSource,
    grid: TileGrid,
    rec: Record,
    /// The label store's folder.
    root: PathBuf,
    labels: ZarrSink,
    probs: Option<(ZarrSink, OutType)>,
    /// `--scale`: the network sees the volume resized in (y, x), and the
    /// tile grid is the resized volume's.
    zoom: Option<Zoom>,
}

/// Run one worker's share with the checkpoint `ck` (read from
/// `job.checkpoint`) and its metadata; see the module docs.
pub fn run(
    ctx: &Context,
    job: &BlockJob,
    ck: &Checkpoint,
    meta: &InferMeta,
) -> Result<BlockReport> {
    let (k, n) = job.part;
    if n == 0 || k == 0 || k > n {
        return Err(Error::Other(format!(
            "--part {k}/{n}: K counts from 1 to N (e.g. --part 1/4 .. --part 4/4)"
        )));
    }
    let mut created = false;
    let mut s = setup(ctx, job, ck, meta, &mut created)?;
    let all = store::chunks_of(&s.rec);
    let mine: Vec<[usize; 3]> = all.iter().copied().skip(k - 1).step_by(n).collect();
    let (rlo, rhi) = network_box(&s.zoom, s.rec.roi.map(|r| r[0]), s.rec.roi.map(|r| r[1]));
    let whole = plan_box(
        &s.grid,
        &s.pred.geometry,
        rlo,
        rhi,
        s.pred.opts.blend == Blend::Gaussian,
    );
    let mut rep = BlockReport {
        tiles_distinct: whole.tiles.len(),
        chunk: s.rec.chunk,
        chunks_total: all.len(),
        chunks_mine: mine.len(),
        created,
        ..Default::default()
    };
    let t = std::time::Instant::now();
    for (i, &c) in mine.iter().enumerate() {
        if store::is_done(&job.output, c) {
            rep.chunks_skipped += 1;
            continue;
        }
        eprintln!(
            "predict: chunk {c:?} ({}/{} of part {k}/{n})",
            i + 1,
            mine.len()
        );
        let (voxels, tiles) = predict_chunk(ctx, &mut s, c)?;
        rep.voxels += voxels;
        rep.tiles += tiles;
        fault_point("WUNET_FAULT_ABORT_BEFORE_MARK", rep.chunks_done + 1);
        store::mark_done(&job.output, c)?;
        rep.chunks_done += 1;
        fault_point("WUNET_FAULT_ABORT_AFTER_CHUNKS", rep.chunks_done);
    }
    if let Some(ir) = s.rec.instances {
        rep.join_waiting = all
            .iter()
            .filter(|&&c| !store::is_done(&job.output, c))
            .count();
        if rep.join_waiting == 0 {
            eprintln!("predict: joining the instances of {} chunks", all.len());
            let rec = &s.rec;
            rep.join = Some(instances::finish(
                &job.output,
                &s.labels,
                &all,
                ir.min_size,
                |c| chunk_index(rec, c),
            )?);
        }
    }
    rep.seconds = t.elapsed().as_secs_f64();
    Ok(rep)
}

/// A chunk's index in the output arrays (a 2D store drops z).
fn chunk_index(rec: &Record, ci: [usize; 3]) -> Vec<u64> {
    let skip = if rec.flat { 1 } else { 0 };
    ci[skip..].iter().map(|&v| v as u64).collect()
}

/// Fault injection for the tests: the process aborts (as a kill would) at
/// its k-th chunk, with `WUNET_FAULT_ABORT_BEFORE_MARK=k` after writing the
/// chunk's arrays but before its marker, with
/// `WUNET_FAULT_ABORT_AFTER_CHUNKS=k` after the marker, with
/// `WUNET_FAULT_ABORT_IN_JOIN=k` after the join rewrote its k-th chunk.
fn fault_point(var: &str, chunk: usize) {
    let at = std::env::var(var).ok();
    if at.and_then(|v| v.parse::<usize>().ok()) == Some(chunk) {
        std::process::abort();
    }
}

fn setup(
    ctx: &Context,
    job: &BlockJob,
    ck: &Checkpoint,
    meta: &InferMeta,
    created: &mut bool,
) -> Result<Setup> {
    let cfg = meta
        .unet()
        .map_err(|e| Error::file(&job.checkpoint, e.to_string()))?;
    let src = ZarrSource::open(&job.input, job.level)?;
    model_fits(&cfg, &src)?;
    let zoom = Zoom::new(src.dims, job.opts.scale);
    // the volume the network sees
    let seen = zoom.as_ref().map_or(src.dims, |z| z.resized);
    let fit = if cfg.dims == 2 {
        [1, seen[1], seen[2]]
    } else {
        seen
    };
    let pred = Predictor::from_loaded(
        ctx,
        ck,
        meta,
        &job.checkpoint,
        job.tile,
        Some(fit),
        &job.opts,
    )?;
    let g = pred.geometry;
    let grid = grid(seen, &g, job.opts.overlap)?;
    let roi = region(job.roi, src.dims)?;
    let est = |c: [usize; 3]| chunk_bytes(c, &g, src.dims, cfg.classes, job);
    let chunk = choose_chunk(job.chunk, src.chunk, src.dims, &g, job.max_memory, est)?;
    let label_type = match job.instances {
        Some(_) => OutType::U32,
        None => label_type(&meta.class_values)?,
    };
    let mut want = Record {
        version: 1,
        input: absolute(&src.name),
        input_dims: src.dims,
        flat: src.flat(),
        checkpoint: store::fingerprint(&job.checkpoint)?,
        in_tile: g.in_tile,
        out_tile: g.out_tile,
        overlap: job.opts.overlap,
        blend: format!("{:?}", job.opts.blend).to_lowercase(),
        tta: job.opts.tta,
        precision: job.opts.precision.name().to_string(),
        roi,
        chunk,
        classes: cfg.classes,
        class_values: meta.class_values.clone(),
        labels: label_type.name().into(),
        probabilities: job.probabilities.as_ref().map(|p| p.1.name().to_string()),
        normalize: meta.normalize.clone(),
        zarr_format: job.zarr_format,
        scale: job.opts.scale,
        instances: job.instances,
        stats: Vec::new(),
    };
    let rec = open_or_create(job, &src, &cfg, meta, &mut want, label_type, created)?;
    let labels = ZarrSink::open(&job.output)?;
    let probs = match &job.probabilities {
        Some((p, t)) => Some((ZarrSink::open(p)?, *t)),
        None => None,
    };
    Ok(Setup {
        pred,
        src,
        grid,
        rec,
        root: job.output.clone(),
        labels,
        probs,
        zoom,
    })
}

/// The box `[lo, hi)` of the volume the network sees (the resized one
/// under `--scale`) whose outputs the source box `[lo, hi)` is made of.
fn network_box(zoom: &Option<Zoom>, lo: [usize; 3], hi: [usize; 3]) -> ([usize; 3], [usize; 3]) {
    match zoom {
        Some(z) => z.resized_box(lo, hi),
        None => (lo, hi),
    }
}

/// A 3D model needs a volume; the input must have one channel.
fn model_fits(cfg: &UNetConfig, src: &ZarrSource) -> Result<()> {
    if cfg.in_channels != 1 {
        return Err(Error::file(
            &src.name,
            format!(
                "the model takes {} input channels; Zarr input gives one",
                cfg.in_channels
            ),
        ));
    }
    if cfg.dims == 3 && src.dims[0] == 1 {
        return Err(Error::file(
            &src.name,
            "a 3D model needs a volume, but this is a 2D image",
        ));
    }
    Ok(())
}

fn absolute(name: &str) -> String {
    std::path::absolute(name)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| name.to_string())
}

/// The checked `--roi` (or the whole volume).
fn region(roi: Option<[[usize; 2]; 3]>, dims: [usize; 3]) -> Result<[[usize; 2]; 3]> {
    let Some(r) = roi else {
        return Ok(std::array::from_fn(|a| [0, dims[a]]));
    };
    for a in 0..3 {
        if r[a][0] >= r[a][1] || r[a][1] > dims[a] {
            return Err(Error::Other(format!(
                "--roi {r:?}: each axis needs lo < hi <= the volume's size {dims:?} (z, y, x)"
            )));
        }
    }
    Ok(r)
}

/// The smallest unsigned type that holds the stored label values.
fn label_type(values: &[i64]) -> Result<OutType> {
    let (lo, hi) = values
        .iter()
        .fold((0i64, 0i64), |(a, b), &v| (a.min(v), b.max(v)));
    match (lo, hi) {
        (l, _) if l < 0 => Err(Error::Other(format!(
            "class values {values:?}: negative values cannot be stored in a Zarr label array"
        ))),
        (_, h) if h <= 255 => Ok(OutType::U8),
        (_, h) if h <= 65535 => Ok(OutType::U16),
        (_, h) if h <= u32::MAX as i64 => Ok(OutType::U32),
        _ => Err(Error::Other(format!(
            "class values {values:?} do not fit uint32"
        ))),
    }
}

/// Host bytes one chunk's work needs: the input box read and normalised,
/// the accumulators and outputs of the chunk, one batch of tiles; under
/// `--scale F` the resized input box and accumulators too (F^2 as many
/// voxels where F > 1).
pub fn chunk_bytes(
    c: [usize; 3],
    g: &TileGeometry,
    dims: [usize; 3],
    classes: usize,
    job: &BlockJob,
) -> u64 {
    let w: [usize; 3] = std::array::from_fn(|a| (c[a] + g.out_tile[a] + g.in_tile[a]).min(dims[a]));
    let window = numel(w) as u64 * 8; // decoded values, then f32
    let prob = job.probabilities.as_ref().map_or(0, |p| p.1.bytes());
    let per_voxel = 4 * classes + 4 + 4 + 4 + 4 + classes * prob;
    let out = numel(c) as u64 * per_voxel as u64;
    let tiles = job.opts.batch * numel(g.in_tile) * 4 * (2 + 3 * classes);
    let zoomed = if job.opts.scale == 1.0 {
        0
    } else {
        let f2 = (job.opts.scale as f64).max(1.0).powi(2);
        ((numel(w) as u64 * 4 + numel(c) as u64 * (8 * classes as u64 + 4)) as f64 * f2) as u64
    };
    window + out + tiles as u64 + zoomed
}

/// The output chunk: `--chunk` checked against the budget, or the input's
/// chunk shrunk to fit the budget, then grown (doubling) towards at least
/// two output tiles per axis and 256^3 voxels while it fits.
fn choose_chunk(
    asked: Option<[usize; 3]>,
    input: [usize; 3],
    dims: [usize; 3],
    g: &TileGeometry,
    budget: u64,
    est: impl Fn([usize; 3]) -> u64,
) -> Result<[usize; 3]> {
    let over = |c: [usize; 3]| {
        Error::Other(format!(
            "--max-memory {} MiB is below what one chunk {c:?} needs ({} MiB); raise it or give a smaller --chunk",
            budget >> 20,
            est(c).div_ceil(1 << 20)
        ))
    };
    if let Some(c) = asked {
        if c.contains(&0) {
            return Err(Error::Other(format!(
                "--chunk {c:?}: every length must be positive"
            )));
        }
        return if est(c) <= budget {
            Ok(c)
        } else {
            Err(over(c))
        };
    }
    let mut c: [usize; 3] = std::array::from_fn(|a| input[a].clamp(1, dims[a]));
    while est(c) > budget {
        let a = (0..3).max_by_key(|&a| c[a]).unwrap_or(2);
        if c[a] == 1 {
            return Err(over(c));
        }
        c[a] = c[a].div_ceil(2);
    }
    loop {
        let grow = (0..3)
            .filter(|&a| c[a] < dims[a] && c[a] < 2 * g.out_tile[a].max(1) * 4)
            .min_by_key(|&a| c[a] * 1000 / g.out_tile[a].max(1));
        let Some(a) = grow else { break };
        let mut next = c;
        next[a] = (c[a] * 2).min(dims[a]);
        if numel(next) > 1 << 24 || est(next) > budget {
            break;
        }
        c = next;
    }
    Ok(c)
}

/// Use the stores if they exist (checking that they were made the same
/// way), else measure the statistics and create them.
fn open_or_create(
    job: &BlockJob,
    src: &ZarrSource,
    cfg: &UNetConfig,
    meta: &InferMeta,
    want: &mut Record,
    label_type: OutType,
    created: &mut bool,
) -> Result<Record> {
    if !job.output.exists() {
        let mode = meta.dataset_options().normalize;
        eprintln!(
            "predict: measuring the normalisation statistics of {}",
            src.name
        );
        want.stats = stats::volume_stats(src, mode, per_section(job, cfg))?;
        let mut attrs = serde_json::Map::new();
        let rec = serde_json::to_value(&*want).map_err(|e| Error::Other(e.to_string()))?;
        attrs.insert("wunet".into(), rec);
        let spec = |axes: &'static [&'static str], classes, dtype, attributes| {
            let (shape, chunk) = shapes(want, classes);
            ImageSpec {
                axes,
                shape,
                chunk,
                dtype,
                compression: job.compression,
                attributes,
                format: job.zarr_format,
            }
        };
        let mut specs = Vec::new();
        if let Some((p, t)) = &job.probabilities {
            let axes: &[&str] = if want.flat {
                &["c", "y", "x"]
            } else {
                &["c", "z", "y", "x"]
            };
            let s = spec(axes, Some(cfg.classes), *t, Default::default());
            specs.push((p.as_path(), s));
        }
        let axes: &[&str] = if want.flat {
            &["y", "x"]
        } else {
            &["z", "y", "x"]
        };
        let s = spec(axes, None, label_type, attrs);
        specs.push((job.output.as_path(), s));
        *created = store::create_once(&specs)?;
    }
    let have = store::read_record(&job.output)?;
    store::check_matches(&job.output, &have, want)?;
    if have.stats.len()
        != if per_section(job, cfg) {
            src.dims[0]
        } else {
            1
        }
    {
        return Err(Error::file(
            &job.output,
            "the record's normalisation statistics do not fit the input (one per section or one for the volume: was the store begun with another --norm-scope?)",
        ));
    }
    Ok(have)
}

/// Whether each z-section has its own normalisation statistics.
fn per_section(job: &BlockJob, cfg: &UNetConfig) -> bool {
    cfg.dims == 2 && !job.norm_stack
}

/// Array shape and chunk shape of the label array (`classes: None`) or of
/// the probabilities (a leading channel axis, one chunk deep).
fn shapes(rec: &Record, classes: Option<usize>) -> (Vec<u64>, Vec<u64>) {
    let skip = if rec.flat { 1 } else { 0 };
    let mut s: Vec<u64> = rec.input_dims[skip..].iter().map(|&v| v as u64).collect();
    let mut c: Vec<u64> = rec.chunk[skip..].iter().map(|&v| v as u64).collect();
    if let Some(k) = classes {
        s.insert(0, k as u64);
        c.insert(0, k as u64);
    }
    (s, c)
}

/// Predict output chunk `ci` and write it; returns the voxels predicted
/// and the tiles run.
fn predict_chunk(ctx: &Context, s: &mut Setup, ci: [usize; 3]) -> Result<(u64, usize)> {
    let rec = &s.rec;
    let c = rec.chunk;
    // the part of the chunk inside the volume and the region
    let lo: [usize; 3] = std::array::from_fn(|a| (ci[a] * c[a]).max(rec.roi[a][0]));
    let hi: [usize; 3] = std::array::from_fn(|a| ((ci[a] + 1) * c[a]).min(rec.roi[a][1]));
    let dims: [usize; 3] = std::array::from_fn(|a| hi[a] - lo[a]);
    let g = s.pred.geometry;
    let blend = s.pred.opts.blend;
    // the network's box: the chunk, or under --scale what it is resized from
    let (nlo, nhi) = network_box(&s.zoom, lo, hi);
    let ndims: [usize; 3] = std::array::from_fn(|a| nhi[a] - nlo[a]);
    let tplan = plan_box(&s.grid, &g, nlo, nhi, blend == Blend::Gaussian);
    let window = InputWindow::read(&s.src, s.zoom.as_ref(), &tplan.tiles, g.in_tile, &rec.stats)?;
    let mut acc = Accumulator::region(&tplan, nlo, ndims, rec.classes, blend);
    s.pred.run_tiles(
        ctx,
        &tplan.tiles,
        Output::Probabilities,
        |t| Ok(window.extract(t.in_origin, g.in_tile)),
        |t, out| acc.add(t, out),
    )?;
    let probs = match &s.zoom {
        Some(z) => z.back_box(&acc.finish(), nlo, lo, hi),
        None => acc.finish(),
    };
    let off: [usize; 3] = std::array::from_fn(|a| lo[a] - ci[a] * c[a]);
    let index = chunk_index(rec, ci);
    if let Some((sink, t)) = &s.probs {
        let mut pindex = vec![0u64];
        pindex.extend(&index);
        let planes: Vec<Vec<f32>> = (0..rec.classes)
            .map(|k| {
                place(
                    &probs.data[k * numel(dims)..(k + 1) * numel(dims)],
                    dims,
                    off,
                    c,
                    0.0,
                )
            })
            .collect();
        let all: Vec<f32> = planes.concat();
        match t {
            OutType::F16 => sink.store_chunk(
                &pindex,
                &all.iter()
                    .map(|&v| half::f16::from_f32(v))
                    .collect::<Vec<_>>(),
            )?,
            _ => sink.store_chunk(
                &pindex,
                &all.iter()
                    .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
                    .collect::<Vec<_>>(),
            )?,
        }
    }
    if let Some(ir) = &rec.instances {
        // the axes along which the region has more than one chunk
        let joined =
            std::array::from_fn(|a| rec.roi[a][1].div_ceil(c[a]) - rec.roi[a][0] / c[a] > 1);
        let parts = instances::ChunkParts::new(&probs, ir, joined)?;
        let full = place(&parts.provisional(), dims, off, c, 0u32);
        s.labels.store_chunk(&index, &full)?;
        instances::write_summary(&s.root, ci, &parts.summary)?;
        return Ok((numel(dims) as u64, tplan.tiles.len()));
    }
    let labels = stored_labels(&probs.argmax(), &rec.class_values, false);
    let full = place(&labels.data, dims, off, c, 0);
    match label_type(&rec.class_values)? {
        OutType::U8 => s
            .labels
            .store_chunk(&index, &full.iter().map(|&v| v as u8).collect::<Vec<_>>())?,
        OutType::U16 => s
            .labels
            .store_chunk(&index, &full.iter().map(|&v| v as u16).collect::<Vec<_>>())?,
        _ => s
            .labels
            .store_chunk(&index, &full.iter().map(|&v| v as u32).collect::<Vec<_>>())?,
    }
    Ok((numel(dims) as u64, tplan.tiles.len()))
}

/// `values` (`dims`, x fastest) placed at `off` in a chunk of `chunk`
/// voxels filled with `fill` (edge chunks are stored full size).
fn place<T: Copy>(
    values: &[T],
    dims: [usize; 3],
    off: [usize; 3],
    chunk: [usize; 3],
    fill: T,
) -> Vec<T> {
    let mut out = vec![fill; numel(chunk)];
    for z in 0..dims[0] {
        for y in 0..dims[1] {
            let s = (z * dims[1] + y) * dims[2];
            let d = ((z + off[0]) * chunk[1] + y + off[1]) * chunk[2] + off[2];
            out[d..d + dims[2]].copy_from_slice(&values[s..s + dims[2]]);
        }
    }
    out
}

/// The normalised input box that a chunk's tiles read, with the mirror
/// mapping of the whole volume (numpy `reflect`, as [`crate::data::augment::crop_reflect`]);
/// under `--scale` a box of the resized volume, resized from the source box
/// it reads.
struct InputWindow {
    /// The volume the tiles index (the resized one under `--scale`).
    image: [usize; 3],
    /// Source box origin and values.
    lo: [usize; 3],
    data: Array3<f32>,
}

impl InputWindow {
    fn read(
        src: &ZarrSource,
        zoom: Option<&Zoom>,
        tiles: &[crate::data::tiling::Tile],
        in_tile: [usize; 3],
        stats: &[NormStats],
    ) -> Result<Self> {
        let n = zoom.map_or(src.dims, |z| z.resized);
        let mut lo = n;
        let mut hi = [0usize; 3];
        for t in tiles {
            for a in 0..3 {
                // the source indices this tile's window maps to
                let (a0, a1) = (t.in_origin[a], t.in_origin[a] + in_tile[a] as isize);
                let (m0, m1) = mapped_range(a0, a1, n[a]);
                lo[a] = lo[a].min(m0);
                hi[a] = hi[a].max(m1);
            }
        }
        let data = match zoom {
            Some(z) => {
                let (slo, shi) = z.source_box(lo, hi);
                z.resize_box(&Self::normalised(src, slo, shi, stats)?, slo, lo, hi)
            }
            None => Self::normalised(src, lo, hi, stats)?,
        };
        Ok(InputWindow { image: n, lo, data })
    }

    /// The source box `[lo, hi)`, normalised with the volume's (or each
    /// section's) statistics.
    fn normalised(
        src: &ZarrSource,
        lo: [usize; 3],
        hi: [usize; 3],
        stats: &[NormStats],
    ) -> Result<Array3<f32>> {
        let dims: [usize; 3] = std::array::from_fn(|a| hi[a].saturating_sub(lo[a]));
        let mut data = Array3::from_vec(dims, src.read_box(lo, dims)?)?;
        let sec = dims[1] * dims[2];
        for z in 0..dims[0] {
            let st = if stats.len() == 1 {
                stats[0]
            } else {
                stats[lo[0] + z]
            };
            st.apply(&mut data.data[z * sec..(z + 1) * sec]);
        }
        Ok(data)
    }

    /// The mirrored input window at `origin` (image coordinates).
    fn extract(&self, origin: [isize; 3], size: [usize; 3]) -> Vec<f32> {
        let d = self.data.dims;
        let idx =
            |a: usize, i: usize| reflect_index(origin[a] + i as isize, self.image[a]) - self.lo[a];
        let xs: Vec<usize> = (0..size[2]).map(|x| idx(2, x)).collect();
        let mut out = Vec::with_capacity(numel(size));
        for z in 0..size[0] {
            let sz = idx(0, z);
            for y in 0..size[1] {
                let row = (sz * d[1] + idx(1, y)) * d[2];
                out.extend(xs.iter().map(|&x| self.data.data[row + x]));
            }
        }
        out
    }
}

/// The smallest range `[lo, hi)` of source indices that `a0..a1` maps to
/// under mirroring on an axis of length `n`.
fn mapped_range(a0: isize, a1: isize, n: usize) -> (usize, usize) {
    if a0 >= 0 && a1 <= n as isize {
        return (a0 as usize, a1 as usize);
    }
    let (mut lo, mut hi) = (n, 0);
    for i in a0..a1 {
        let m = reflect_index(i, n);
        lo = lo.min(m);
        hi = hi.max(m + 1);
        if lo == 0 && hi == n {
            break;
        }
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_ranges() {
        assert_eq!(mapped_range(2, 5, 10), (2, 5));
        assert_eq!(mapped_range(-3, 2, 10), (0, 4));
        assert_eq!(mapped_range(8, 12, 10), (7, 10)); // 10 -> 8, 11 -> 7
        assert_eq!(mapped_range(-30, 30, 10), (0, 10));
    }

    #[test]
    fn chunks_placed() {
        let v: Vec<i32> = (1..=4).collect();
        let out = place(&v, [1, 2, 2], [0, 1, 1], [1, 3, 3], 0);
        assert_eq!(out, vec![0, 0, 0, 0, 1, 2, 0, 3, 4]);
    }
}
