//! Preparing a run of `wunet train`: the effective configuration and run
//! folder ([`resolve_run`]), the data ([`load_data`]), the patch geometry
//! ([`patch_geometry`]), the training session and the validation predictor.
//! Everything is checked before the run folder appears.

use super::config::{read_config_file, TrainConfig, TrainFlags};
use super::lock::RunLock;
use super::run::RunOptions;
use super::session::{Session, SessionSpec};
use crate::data::dataset::{Dataset, DatasetOptions, LabelMapping, Normalize};
use crate::data::normalize::auto_key;
use crate::data::objects::{class_objects, median_diameter, Diameter};
use crate::data::synthetic::{synthetic_dataset, SyntheticKind};
use crate::data::weightmap::WeightMapOptions;
use crate::error::{Error, Result};
use crate::fsutil::remove_stale_temps;
use crate::gpu::Context;
use crate::infer::eval::{auto_objects_class, is_challenge_metric};
use crate::infer::predict::{parse_blend, PredictOptions, Predictor};
use crate::model_io::{checkpoint, Checkpoint, InferMeta, ModelMeta};
use crate::models::{Padding, UNetConfig};
use crate::ops::conv::tune;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Seed of the built-in synthetic dataset (fixed, so that runs with
/// different `--seed`s see the same data).
pub const SYNTHETIC_SEED: u64 = 2015;

/// The data of a run: training and validation sets, plus notes.
pub struct RunData {
    pub train: Dataset,
    pub val: Dataset,
    pub note: String,
    /// Stored label value of each class.
    pub class_values: Vec<i64>,
    /// The normalisation applied (`normalize = auto` resolved).
    pub normalize: String,
}

/// Load (or synthesise) the data and split it.
pub fn load_data(cfg: &TrainConfig) -> Result<RunData> {
    if cfg.instances && cfg.data.is_empty() {
        return Err(Error::Other(
            "--instances needs --data with instance-id labels (0 = background, 1..N objects); the built-in synthetic data has classes only".into(),
        ));
    }
    let (ds, what, norm_key) = if cfg.data.is_empty() {
        load_synthetic(cfg)?
    } else {
        let (ds, norm_key) = load_files(cfg)?;
        (ds, cfg.data.clone(), norm_key)
    };
    check_dims(cfg, &ds, &what)?;
    let class_values = ds.labels.class_values(ds.n_classes);
    let single = ds.samples.len() < 2;
    let (train, val) = split(cfg, ds)?;
    let note = format!(
        "data: {what}; normalize: {norm_key}{}; {} classes (stored values {class_values:?}); train: {}; validation: {}{}",
        if cfg.normalize == "auto" { " (auto)" } else { "" },
        train.n_classes,
        sample_names(&train),
        sample_names(&val),
        match (single, cfg.fold.is_empty()) {
            (true, _) => format!(" ({} part along {})", cfg.val_part, cfg.val_axis),
            (false, false) => format!(" (fold {})", cfg.fold),
            (false, true) => String::new(),
        }
    );
    Ok(RunData {
        train,
        val,
        note,
        class_values,
        normalize: norm_key,
    })
}

/// The built-in synthetic data (made z-scored; another mode chosen by name is
/// applied on top, so that the checkpoint's mode is what its training images
/// went through), its description and the normalisation's key.
fn load_synthetic(cfg: &TrainConfig) -> Result<(Dataset, String, String)> {
    let three = cfg.dims() == 3;
    let norm_key = if cfg.normalize == "auto" {
        "zscore".to_string()
    } else {
        cfg.normalize.clone()
    };
    let kind = if three {
        SyntheticKind::Nuclei3d
    } else {
        SyntheticKind::EmCells2d
    };
    let d = cfg.synthetic_dims()?;
    // images, labels, weight maps and their copies: check before generating
    let n = [cfg.synthetic_images, d[0], d[1], d[2]].map(|v| v as u64);
    crate::checks::checked_count(&n, 24).map_err(|m| {
        Error::Other(format!(
            "synthetic_images = {} x synthetic_size = {}: {m}",
            cfg.synthetic_images, cfg.synthetic_size
        ))
    })?;
    let mut ds = synthetic_dataset(kind, cfg.synthetic_images, d, SYNTHETIC_SEED)?;
    if norm_key != "zscore" {
        ds.normalize_images(Normalize::from_key(&norm_key, cfg.norm_clip).map_err(Error::Other)?);
    }
    let what = format!(
        "built-in synthetic {} ({} x {:?})",
        if three {
            "3D nuclei"
        } else {
            "2D EM-like cells (class 1 = membrane)"
        },
        cfg.synthetic_images,
        &d[3 - cfg.dims()..]
    );
    Ok((ds, what, norm_key))
}

/// The user's data from `--data`, normalised (`auto` resolved from the
/// images and labels) and checked against `--instances` and
/// `foreground_value`; with the normalisation's key.
fn load_files(cfg: &TrainConfig) -> Result<(Dataset, String)> {
    let path = Path::new(&cfg.data);
    let auto = cfg.normalize == "auto";
    let opts = DatasetOptions {
        classes: cfg.classes,
        class_values: cfg.class_values_list()?,
        instances: cfg.instances,
        ..DatasetOptions::from_keys(
            if auto { "none" } else { &cfg.normalize },
            cfg.norm_clip,
            cfg.foreground_value,
        )
    };
    let mut ds = Dataset::load(path, &opts)?;
    let mut norm_key = cfg.normalize.clone();
    if auto {
        norm_key = auto_key(
            ds.samples.iter().map(|s| s.image.data.as_slice()),
            foreground_share(&ds),
        )
        .into();
        ds.normalize_images(Normalize::from_key(&norm_key, cfg.norm_clip).map_err(Error::Other)?);
    }
    if cfg.instances
        && ds.samples.iter().all(|s| {
            s.instances
                .as_ref()
                .is_some_and(|i| i.data.iter().all(|&v| v == 0))
        })
    {
        return Err(Error::file(
            path,
            "--instances: no label file holds any object (every id is 0)",
        ));
    }
    if let (LabelMapping::Binary { foreground, .. }, v) = (&ds.labels, cfg.foreground_value) {
        if v > 0 && *foreground as i64 != v {
            return Err(Error::file(
                path,
                format!("foreground_value = {v}, but the binary labels hold 0 and {foreground}"),
            ));
        }
    }
    Ok((ds, norm_key))
}

/// Every image has the model's dimensionality (3D images have depth > 1).
fn check_dims(cfg: &TrainConfig, ds: &Dataset, what: &str) -> Result<()> {
    let three = cfg.dims() == 3;
    for s in &ds.samples {
        if three != (s.image.dims[0] > 1) {
            return Err(Error::Other(format!(
                "{}: {} is {:?} (z, y, x): use --model {}",
                what,
                s.name,
                s.image.dims,
                if three { "unet2d" } else { "unet3d" }
            )));
        }
    }
    Ok(())
}

/// Training and validation sets: fold K of N (`fold`), else the last
/// `val_fraction` of the images by name, or with one image a part of it
/// along `val_axis`.
pub(crate) fn split(cfg: &TrainConfig, ds: Dataset) -> Result<(Dataset, Dataset)> {
    if let Some((k, n)) = cfg.fold()? {
        let len = ds.samples.len();
        if len < n {
            return Err(Error::Other(format!(
                "fold = '{}': {n} folds need at least {n} images, but the data has {len}{}",
                cfg.fold,
                if len == 1 {
                    " (one image or volume is split with val_fraction, val_axis and val_part instead)"
                } else {
                    ""
                }
            )));
        }
        return ds.split_fold(k, n);
    }
    if ds.samples.len() >= 2 {
        return ds.split_fraction(cfg.val_fraction as f32);
    }
    ds.split_spatial(cfg.val_fraction as f32, cfg.val_axis_index(), cfg.val_part())
        .map_err(|e| {
            Error::Other(format!(
                "{e}: one image is split for validation along val_axis = {}; choose an axis the image has (x or y for 2D)",
                cfg.val_axis
            ))
        })
}

/// The samples' names for the run's note: all, or the first and last.
fn sample_names(d: &Dataset) -> String {
    let v: Vec<&str> = d.samples.iter().map(|s| s.name.as_str()).collect();
    if v.len() > 4 {
        format!("{} .. {} ({})", v[0], v[v.len() - 1], v.len())
    } else {
        v.join(", ")
    }
}

/// The share of the labelled voxels that are not background (class 0).
fn foreground_share(ds: &Dataset) -> f64 {
    let (mut fg, mut n) = (0u64, 0u64);
    for s in &ds.samples {
        n += s.labels.data.len() as u64;
        fg += s.labels.data.iter().filter(|&&v| v != 0).count() as u64;
    }
    fg as f64 / n.max(1) as f64
}

/// Output patch and input margin of a training input patch (errors suggest sizes that work).
pub fn patch_geometry(unet: &UNetConfig, patch: [usize; 3]) -> Result<([usize; 3], [usize; 3])> {
    let mut out = patch;
    let mut margin = [0; 3];
    for a in (3 - unet.dims)..3 {
        let ok = unet.axis_out(patch[a]).filter(|(_, even)| *even);
        match ok {
            Some((o, _)) => {
                out[a] = o;
                margin[a] = (patch[a] - o) / 2;
            }
            None => {
                return Err(Error::Other(format!(
                    "patch {patch:?}: {} is not an input size this U-Net ({:?} padding, depth {}) takes with even poolings; nearest: {}",
                    patch[a],
                    unet.padding,
                    unet.depth,
                    unet.seamless_input(patch[a]).map_or("-".into(), |v| v.to_string())
                )))
            }
        }
    }
    if unet.padding == Padding::Same {
        margin = [0; 3];
    }
    Ok((out, margin))
}

/// The label patch must fit the largest training image on every axis (a
/// larger one would train mostly on mirrored borders, and may exceed the
/// device's binding limits with a message about a layer instead of sizes).
fn check_patch_fits(cfg: &TrainConfig, patch_out: [usize; 3], train: &Dataset) -> Result<()> {
    let largest: [usize; 3] = std::array::from_fn(|a| {
        train
            .samples
            .iter()
            .map(|s| s.image.dims[a])
            .max()
            .unwrap_or(0)
    });
    let first = 3 - cfg.dims();
    if (first..3).any(|a| patch_out[a] > largest[a]) {
        let show = |d: &[usize]| {
            d.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("x")
        };
        return Err(Error::Other(format!(
            "patch = {} (label patch {}) is larger than the training images (largest {}); choose a patch no larger than the images",
            cfg.patch,
            show(&patch_out[first..]),
            show(&largest[first..])
        )));
    }
    Ok(())
}

fn numbered_runs(model: &str) -> Vec<(u32, PathBuf)> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("runs") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = name
                .strip_prefix(&format!("{model}-"))
                .and_then(|s| s.parse::<u32>().ok())
            {
                v.push((n, e.path()));
            }
        }
    }
    v.sort();
    v
}

/// The run folder: `out`, or `runs/<model>-NNN` (the next number; when
/// resuming, the highest one that holds a checkpoint).
fn run_dir(cfg: &TrainConfig, resume: bool) -> Result<PathBuf> {
    if !cfg.out.is_empty() {
        return Ok(PathBuf::from(&cfg.out));
    }
    let runs = numbered_runs(&cfg.model);
    if resume {
        return runs
            .iter()
            .rev()
            .find(|r| r.1.join("last.safetensors").exists())
            .map(|r| r.1.clone())
            .ok_or_else(|| {
                Error::Other(format!(
                    "--resume: no runs/{}-NNN folder with a last.safetensors to resume; pass --out RUN_DIR",
                    cfg.model
                ))
            });
    }
    let next = runs.last().map_or(1, |r| r.0 + 1);
    Ok(PathBuf::from("runs").join(format!("{}-{next:03}", cfg.model)))
}

/// The effective configuration and run folder of a (new or resumed) run.
pub fn resolve_run(flags: &TrainFlags, opts: &RunOptions) -> Result<(TrainConfig, PathBuf)> {
    let mut layers = Vec::new();
    if let Some(f) = &opts.config_file {
        layers.push((f.display().to_string(), read_config_file(f)?));
    }
    layers.push(("command line".to_string(), flags.clone()));
    let mut pre = TrainConfig::resolve(&layers)?;
    if !opts.resume && !pre.init.is_empty() {
        // --init: the checkpoint's model keys below the user's, which still win
        let init = init_model_layer(Path::new(&pre.init))?;
        layers.insert(0, (format!("--init {}", pre.init), init));
        pre = TrainConfig::resolve(&layers)?;
    }
    let out = run_dir(&pre, opts.resume)?;
    let mut cfg = if opts.resume {
        let saved_path = out.join("config.toml");
        if !out.join("last.safetensors").exists() {
            return Err(Error::file(
                &out,
                "--resume: this folder has no last.safetensors to continue from",
            ));
        }
        let saved_flags = read_config_file(&saved_path)?;
        let saved =
            TrainConfig::resolve(&[(saved_path.display().to_string(), saved_flags.clone())])?;
        let mut all = vec![(saved_path.display().to_string(), saved_flags)];
        all.extend(layers);
        let cfg = TrainConfig::resolve(&all)?;
        let diff = cfg.differing_keys(&saved)?;
        if !diff.is_empty() {
            return Err(Error::file(
                &saved_path,
                format!(
                    "--resume keeps the run's configuration, but these keys differ: {}",
                    diff.join("; ")
                ),
            ));
        }
        cfg
    } else {
        // a run that stopped before its first checkpoint (log.csv only) can
        // neither be resumed nor lost: a fresh run starts over in its folder
        if out.join("last.safetensors").exists() {
            return Err(Error::file(
                &out,
                "already holds a run (last.safetensors); pass --resume to continue it or choose another --out",
            ));
        }
        pre
    };
    cfg.out = out.display().to_string();
    Ok((cfg, out))
}

/// The model keys of an `--init` checkpoint as a configuration layer (model,
/// base, depth, padding, norm, upsample), so that a run that does not set them
/// takes the checkpoint's.
fn init_model_layer(path: &Path) -> Result<TrainFlags> {
    let meta = checkpoint::load_meta(path).map_err(|e| Error::Other(format!("--init: {e}")))?;
    let header = Checkpoint {
        tensors: Vec::new(),
        meta,
    };
    let m = InferMeta::from_checkpoint(&header, path)?.model;
    Ok(TrainFlags {
        model: Some(if m.dims == 3 { "unet3d" } else { "unet2d" }.into()),
        base: Some(m.base),
        depth: Some(m.depth),
        padding: Some(m.padding),
        norm: Some(m.norm),
        upsample: Some(m.upsample),
        ..Default::default()
    })
}

/// The files of a run folder.
pub(super) struct RunFiles {
    pub out: PathBuf,
    pub last: PathBuf,
    pub best: PathBuf,
    pub log: PathBuf,
    pub config: PathBuf,
    pub curves: PathBuf,
    pub overlay: PathBuf,
    /// Names parameters validated straight from the GPU in error messages.
    pub memory: PathBuf,
}

impl RunFiles {
    fn new(out: PathBuf) -> Self {
        RunFiles {
            last: out.join("last.safetensors"),
            best: out.join("best.safetensors"),
            log: out.join("log.csv"),
            config: out.join("config.toml"),
            curves: out.join("curves.png"),
            overlay: out.join("overlay.png"),
            memory: out.join("(memory)"),
            out,
        }
    }
}

/// A checked run, ready to resume or start: configuration, data, the
/// training session (freshly initialised) and the validation predictor.
pub(super) struct Prepared {
    /// The run folder's lock, held until the run ends.
    pub _lock: RunLock,
    /// A resumed run's kernel choices, pinned until the run ends.
    pub _pins: Option<tune::Pins>,
    /// With `--resume`: the run's `last.safetensors` (taken when it is loaded into the
    /// session); `None` for a new run.
    pub resume_from: Option<Checkpoint>,
    /// With `--init` on a new run: the checkpoint's weights and batch-norm statistics
    /// (taken when they are loaded into the session).
    pub init_from: Option<Checkpoint>,
    pub cfg: TrainConfig,
    pub files: RunFiles,
    pub train: Arc<Dataset>,
    pub val: Dataset,
    /// A line about the data (what was loaded, classes, split).
    pub data_note: String,
    pub classes: usize,
    /// The class whose connected components are the objects.
    pub objects: i32,
    /// Label patch and input margin of a training patch.
    pub patch_out: [usize; 3],
    pub margin: [usize; 3],
    /// What every checkpoint of the run carries for inference.
    pub meta: InferMeta,
    /// The effective configuration as TOML (`config.toml`, and every checkpoint).
    pub config_text: String,
    pub session: Session,
    /// Validation through the `wunet predict` path.
    pub predictor: Predictor,
    /// Validation pixel error of predicting class 0 everywhere.
    pub baseline_pixel_error: f64,
}

/// Check the configuration, load the data, build the model and the
/// validation predictor; then create the run folder.
pub(super) fn prepare(ctx: &Context, flags: &TrainFlags, opts: &RunOptions) -> Result<Prepared> {
    let (mut cfg, out) = resolve_run(flags, opts)?;
    // `auto` is stored resolved, so a resumed run keeps the precision it started with.
    cfg.precision = ctx.precision(&cfg.precision)?.name().into();
    let mut data = load_data(&cfg)?;
    let classes = data.train.n_classes;
    let unet = cfg.unet(classes);
    if opts.progress {
        print_plan(&cfg, &data, &out);
    }
    let patch = cfg.patch_dims()?;
    let (patch_out, margin) = patch_geometry(&unet, patch)?;
    check_patch_fits(&cfg, patch_out, &data.train)?;
    // instances: the interior class's components are the objects
    let objects = if cfg.instances {
        crate::data::instances::INTERIOR
    } else {
        check_metrics(&cfg, &data.train)?
    };
    if cfg.resolved_loss(classes) == "wce" {
        let wopts = WeightMapOptions {
            w0: cfg.w0,
            sigma: cfg.wmap_sigma,
            balance: cfg.wmap_balance,
            ..Default::default()
        };
        data.train.compute_weight_maps(objects, &wopts)?;
    }
    let diameter = training_diameter(&cfg, &data.train, objects);
    if let (true, Some(d)) = (opts.progress, diameter) {
        eprintln!(
            "objects: median diameter {:.1} px in (y, x) over {} training objects (predict --diameter D resizes new images to it)",
            d.diameter, d.objects
        );
    }
    let meta = InferMeta {
        model: ModelMeta::from(&unet),
        normalize: data.normalize.clone(),
        norm_clip: cfg.norm_clip,
        class_values: data.class_values.clone(),
        foreground_value: match data.train.labels {
            LabelMapping::Binary { foreground, .. } => foreground as i64,
            _ => -1,
        },
        objects_class: objects as i64,
        tile: cfg.tile.clone(),
        blend: cfg.blend.clone(),
        instances: cfg.instances,
        neck_ratio: cfg.neck_ratio,
        tta: cfg.tta,
        object_diameter: diameter.map_or(0.0, |d| d.diameter),
        min_object_size: crate::data::instances::default_min_size(
            data.train
                .samples
                .iter()
                .filter_map(|s| s.instances.as_ref()),
        ),
    };
    let config_text = cfg.to_toml()?;
    // --resume: the checkpoint first, so that the session computes with the kernels the run
    // began with (its `kernels` entry pins them; see `ops::conv::tune::pin`)
    let (resume_from, pins) = load_resume_checkpoint(ctx, &out, opts)?;
    // --init: checked before the folder appears; a resumed run continues from its own weights
    let init_from = match resume_from {
        None => load_init_checkpoint(&cfg, &unet, opts.progress)?,
        Some(_) => None,
    };
    let session = Session::new(
        ctx,
        &SessionSpec {
            config: unet.clone(),
            batch: cfg.batch,
            spatial: patch[3 - cfg.dims()..].to_vec(),
            loss: cfg.loss_fn(classes),
            optimizer: Some(cfg.optimizer_fn()),
            seed: cfg.seed,
            keep_grads: false,
            precision: ctx.precision(&cfg.precision)?,
        },
    )?;
    let predictor = validation_predictor(ctx, &cfg, &unet, &data.val)?;
    if opts.progress {
        note_unmeasured_layers(ctx);
    }
    // the folder appears once data, model and sizes have passed their checks
    std::fs::create_dir_all(&out).map_err(|e| Error::file(&out, format!("cannot create: {e}")))?;
    // one training per folder; then what an interrupted write left behind goes
    let lock = RunLock::acquire(&out)?;
    let removed = remove_stale_temps(&out);
    if !removed.is_empty() {
        eprintln!(
            "{}: removed temporary files of an interrupted write: {}",
            out.display(),
            removed.join(", ")
        );
    }
    Ok(Prepared {
        _lock: lock,
        _pins: pins,
        resume_from,
        init_from,
        files: RunFiles::new(out),
        baseline_pixel_error: background_pixel_error(&data.val),
        train: Arc::new(data.train),
        val: data.val,
        data_note: data.note,
        classes,
        objects,
        patch_out,
        margin,
        meta,
        config_text,
        session,
        predictor,
        cfg,
    })
}

/// The model keys that decide the weights' names and shapes: a checkpoint given to
/// `--init` must agree with the run on each.
const WEIGHT_KEYS: [&str; 11] = [
    "dims",
    "in_channels",
    "classes",
    "base",
    "depth",
    "norm",
    "upsample",
    "conv_bias",
    "upconv_bias",
    "channels",
    "residual",
];

/// With `--init`: the checkpoint, its model checked against the run's on every
/// [`WEIGHT_KEYS`] entry (an error lists each key that differs, with both values).
fn load_init_checkpoint(
    cfg: &TrainConfig,
    unet: &UNetConfig,
    progress: bool,
) -> Result<Option<Checkpoint>> {
    if cfg.init.is_empty() {
        return Ok(None);
    }
    let path = Path::new(&cfg.init);
    let ck = checkpoint::load(path).map_err(|e| Error::Other(format!("--init: {e}")))?;
    let meta = InferMeta::from_checkpoint(&ck, path)?;
    let table =
        |m: &ModelMeta| toml::Value::try_from(m).map_err(|e| Error::file(path, e.to_string()));
    let (theirs, ours) = (table(&meta.model)?, table(&ModelMeta::from(unet))?);
    let differ: Vec<String> = WEIGHT_KEYS
        .iter()
        .filter(|k| theirs.get(**k) != ours.get(**k))
        .map(|k| {
            let v = |t: &toml::Value| t.get(*k).map_or("-".into(), |v| v.to_string());
            format!("{k} {} (this run: {})", v(&theirs), v(&ours))
        })
        .collect();
    if !differ.is_empty() {
        return Err(Error::file(
            path,
            format!(
                "--init: the checkpoint's model differs from this run's in {}; set those keys to the checkpoint's (e.g. --base, --depth, --norm; classes follow the data's labels)",
                differ.join(", ")
            ),
        ));
    }
    if progress {
        let step = ck.meta.get("step").map_or("?", |s| s.as_str());
        eprintln!(
            "init: weights and batch-norm statistics from {} (step {step} of its run); optimiser and schedule start afresh",
            path.display()
        );
    }
    Ok(Some(ck))
}

/// With `--resume`: the checkpoint the run continues from (`last.safetensors` in `out`), and
/// its kernel choices pinned (none where it predates them or comes from another adapter or
/// driver). Without: nothing.
fn load_resume_checkpoint(
    ctx: &Context,
    out: &Path,
    opts: &RunOptions,
) -> Result<(Option<Checkpoint>, Option<tune::Pins>)> {
    if !opts.resume {
        return Ok((None, None));
    }
    let ck = checkpoint::load(&out.join("last.safetensors"))?;
    let Some(text) = ck.meta.get("kernels") else {
        return Ok((Some(ck), None));
    };
    let (pins, n) = tune::pin(&ctx.info, text);
    if opts.progress && n > 0 {
        eprintln!("resume: {n} kernel choices of the run pinned");
    }
    Ok((Some(ck), Some(pins)))
}

/// Say how many conv layers run the adapter's default kernel because this process's
/// measuring budget was spent (nothing when none).
fn note_unmeasured_layers(ctx: &Context) {
    let n = tune::unmeasured();
    if n == 0 {
        return;
    }
    let cache = tune::cache_path().map_or("no cache (no HOME)".into(), |p| p.display().to_string());
    eprintln!(
        "conv tuning: {n} layer(s) run the adapter's default kernel in this run (the \
         measuring budget of {} ms per process is spent); later runs measure more of them \
         and keep the winners in {cache}",
        tune::budget(ctx).as_millis(),
    );
}

/// The median diameter of the training objects: the instance ids, else
/// the components of the objects class (a 2D model's sections each on
/// their own).
fn training_diameter(cfg: &TrainConfig, train: &Dataset, objects: i32) -> Option<Diameter> {
    let sections = cfg.dims() == 2;
    let ids = train.samples.iter().map(|s| match &s.instances {
        Some(ids) => Cow::Borrowed(ids),
        None => Cow::Owned(class_objects(&s.labels, objects, sections)),
    });
    median_diameter(ids, sections)
}

/// The data and model lines a run starts with.
fn print_plan(cfg: &TrainConfig, data: &RunData, out: &Path) {
    let classes = data.train.n_classes;
    eprintln!("{}", data.note);
    eprintln!(
        "model: {} base {} depth {} {} padding, norm {}, patch {} x batch {}; loss {}; {} lr {} ({}); {} steps -> {}",
        cfg.model,
        cfg.base,
        cfg.depth,
        cfg.padding,
        cfg.norm,
        cfg.patch,
        cfg.batch,
        cfg.resolved_loss(classes),
        cfg.optimizer,
        cfg.lr,
        cfg.schedule,
        cfg.steps,
        out.display()
    );
}

/// Check that the validation metric and the objects class fit the data;
/// returns the objects class (`objects_class`, or chosen from the data).
fn check_metrics(cfg: &TrainConfig, train: &Dataset) -> Result<i32> {
    let two_d_only = cfg.val_metric == "rand_error" || is_challenge_metric(&cfg.val_metric);
    if two_d_only && cfg.dims() == 3 {
        return Err(Error::Other(format!(
            "val_metric = {} is defined for 2D data only; use mean_dice or pixel_error",
            cfg.val_metric
        )));
    }
    let classes = train.n_classes;
    if cfg.objects_class >= 0 {
        if cfg.objects_class >= classes as i64 {
            return Err(Error::Other(format!(
                "objects_class = {}: the labels hold {classes} classes (0..{})",
                cfg.objects_class,
                classes - 1
            )));
        }
        Ok(cfg.objects_class as i32)
    } else {
        Ok(auto_objects_class(train))
    }
}

/// The predictor that validates on whole images (tiles of `tile`, sized
/// for the largest validation image).
fn validation_predictor(
    ctx: &Context,
    cfg: &TrainConfig,
    unet: &UNetConfig,
    val: &Dataset,
) -> Result<Predictor> {
    let popts = PredictOptions {
        batch: 1,
        blend: parse_blend(&cfg.blend)?,
        tta: cfg.val_tta,
        overlap: 0.25,
        precision: ctx.precision(&cfg.precision)?,
        scale: 1.0,
    };
    Predictor::for_image(ctx, unet, cfg.tile_dims()?, val.max_dims(), &popts)
}

/// Pixel error of predicting class 0 everywhere: the share of non-zero labels.
fn background_pixel_error(val: &Dataset) -> f64 {
    let (nz, n) = val.samples.iter().fold((0u64, 0u64), |(a, b), s| {
        (
            a + s.labels.data.iter().filter(|&&l| l != 0).count() as u64,
            b + s.labels.data.len() as u64,
        )
    });
    nz as f64 / n.max(1) as f64
}
