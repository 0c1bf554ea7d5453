//! `wunet train`: the training loop with validation, logging, checkpoints,
//! resumption and the run folder.
//!
//! Run folder: `config.toml` (the effective configuration), `log.csv`,
//! `curves.png`, `last.safetensors` (parameters, batch-norm statistics,
//! optimiser state, step; for `--resume`), `best.safetensors` (the model at
//! the best validation score; no optimiser state) and `overlay.png` (the
//! prediction for a validation image, through the `wunet predict` path).
//! Every file is written atomically.
//!
//! Determinism: the initialisation is a function of `seed`, batch `i` of
//! `(seed, i)` (see [`crate::data::sampler`]) and the learning rate of the
//! step, so a resumed run replays exactly the steps an uninterrupted run
//! takes; on the same adapter the parameters agree bit for bit.

use super::config::{read_config_file, TrainConfig, TrainFlags};
use super::log::{CsvLog, Row};
use super::plot::plot_curves;
use super::session::{Session, SessionSpec};
use crate::data::dataset::{Dataset, DatasetOptions, LabelMapping};
use crate::data::sampler::{Prefetcher, Sampler};
use crate::data::synthetic::{synthetic_dataset, SyntheticKind};
use crate::data::weightmap::WeightMapOptions;
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::graph::ops::Reduction;
use crate::infer::eval::{auto_objects_class, evaluate, lower_is_better, Metrics};
use crate::infer::output::write_overlay;
use crate::infer::predict::{parse_blend, PredictOptions, Predictor};
use crate::model_io::checkpoint::{self, Checkpoint};
use crate::model_io::{InferMeta, ModelMeta};
use crate::models::{Loss, Padding, UNetConfig};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Seed of the built-in synthetic dataset (fixed, so that runs with
/// different `--seed`s see the same data).
pub const SYNTHETIC_SEED: u64 = 2015;

/// How [`train`] runs (beyond the configuration).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// Continue the run in `out` from its `last.safetensors`.
    pub resume: bool,
    /// Show the progress bar (when stderr is a terminal).
    pub progress: bool,
    /// Stop right after this step, as if the process were killed there
    /// (tests of `--resume`): no final validation, plot or overlay.
    pub stop_after: Option<u64>,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct TrainReport {
    pub out: PathBuf,
    pub config: TrainConfig,
    /// Step reached.
    pub step: u64,
    /// Step the run started from (0, or the resumed checkpoint's).
    pub start: u64,
    pub last_loss: Option<f64>,
    /// Loss of the first step of a fresh run, with its expected value (ln C,
    /// times the mean weight-map value of the batch with the "mean"
    /// reduction; cross-entropy losses only).
    pub initial_loss: Option<(f64, f64)>,
    /// `--overfit N`: training pixel accuracy of the last logged step's batch
    /// (drawn cyclically from the N fixed patches; all of them when batch >= N).
    pub overfit_accuracy: Option<f64>,
    /// Last validation.
    pub val: Option<Metrics>,
    /// `(step, value)` of the best validation by `val_metric`.
    pub best: Option<(u64, f64)>,
    /// Training steps per second in this process (validation and checkpoints excluded).
    pub steps_per_s: f64,
    /// Wall seconds of this process's run.
    pub wall_s: f64,
    /// Validation pixel error of predicting class 0 everywhere.
    pub baseline_pixel_error: f64,
    pub overlay: Option<PathBuf>,
    pub interrupted: bool,
    /// A line about the data (what was loaded, classes, split).
    pub data_note: String,
}

/// The data of a run: training and validation sets, plus notes.
pub struct RunData {
    pub train: Dataset,
    pub val: Dataset,
    pub note: String,
    /// Stored label value of each class.
    pub class_values: Vec<i64>,
}

/// Load (or synthesise) the data and split it.
pub fn load_data(cfg: &TrainConfig) -> Result<RunData> {
    let three = cfg.dims() == 3;
    let (ds, what) = if cfg.data.is_empty() {
        let kind = if three {
            SyntheticKind::Nuclei3d
        } else {
            SyntheticKind::EmCells2d
        };
        let d = cfg.synthetic_dims()?;
        let ds = synthetic_dataset(kind, cfg.synthetic_images, d, SYNTHETIC_SEED)?;
        (
            ds,
            format!(
                "built-in synthetic {} ({} x {:?})",
                if three {
                    "3D nuclei"
                } else {
                    "2D EM-like cells (class 1 = membrane)"
                },
                cfg.synthetic_images,
                &d[3 - cfg.dims()..]
            ),
        )
    } else {
        let path = Path::new(&cfg.data);
        let opts = DatasetOptions::from_keys(&cfg.normalize, cfg.foreground_value);
        let ds = Dataset::load(path, &opts)?;
        if let (LabelMapping::Binary { foreground, .. }, v) = (&ds.labels, cfg.foreground_value) {
            if v > 0 && *foreground as i64 != v {
                return Err(Error::file(
                    path,
                    format!(
                        "foreground_value = {v}, but the binary labels hold 0 and {foreground}"
                    ),
                ));
            }
        }
        (ds, cfg.data.clone())
    };
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
    let class_values: Vec<i64> = match ds.labels {
        LabelMapping::Binary {
            foreground,
            background,
        } => vec![background as i64, foreground as i64],
        LabelMapping::AsStored => (0..ds.n_classes as i64).collect(),
    };
    let n = ds.samples.len();
    let (train, val) = if n >= 2 {
        ds.split_fraction(cfg.val_fraction as f32)?
    } else {
        ds.split_spatial(cfg.val_fraction as f32, cfg.val_axis_index())?
    };
    let names = |d: &Dataset| {
        let v: Vec<&str> = d.samples.iter().map(|s| s.name.as_str()).collect();
        if v.len() > 4 {
            format!("{} .. {} ({})", v[0], v[v.len() - 1], v.len())
        } else {
            v.join(", ")
        }
    };
    let note = format!(
        "data: {what}; {} classes (stored values {class_values:?}); train: {}; validation: {}{}",
        train.n_classes,
        names(&train),
        names(&val),
        if n < 2 {
            format!(" (last part along {})", cfg.val_axis)
        } else {
            String::new()
        }
    );
    Ok(RunData {
        train,
        val,
        note,
        class_values,
    })
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
    let pre = TrainConfig::resolve(&layers)?;
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

fn meta_f64(ck: &Checkpoint, key: &str) -> Option<f64> {
    ck.meta.get(key).and_then(|s| s.parse().ok())
}

/// Train per `flags` (and `opts`), writing the run folder.
pub fn train(ctx: &Context, flags: &TrainFlags, opts: &RunOptions) -> Result<TrainReport> {
    let wall = Instant::now();
    let (cfg, out) = resolve_run(flags, opts)?;
    let mut data = load_data(&cfg)?;
    let classes = data.train.n_classes;
    let unet = cfg.unet(classes);
    if opts.progress {
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
    let patch = cfg.patch_dims()?;
    let (patch_out, margin) = patch_geometry(&unet, patch)?;
    if cfg.val_metric == "rand_error" && cfg.dims() == 3 {
        return Err(Error::Other(
            "val_metric = rand_error is defined for 2D data only; use mean_dice or pixel_error"
                .into(),
        ));
    }
    let objects = if cfg.objects_class >= 0 {
        if cfg.objects_class >= classes as i64 {
            return Err(Error::Other(format!(
                "objects_class = {}: the labels hold {classes} classes (0..{})",
                cfg.objects_class,
                classes - 1
            )));
        }
        cfg.objects_class as i32
    } else {
        auto_objects_class(&data.train)
    };
    let loss_name = cfg.resolved_loss(classes).to_string();
    if loss_name == "wce" {
        let wopts = WeightMapOptions {
            w0: cfg.w0,
            sigma: cfg.wmap_sigma,
            balance: cfg.wmap_balance,
            ..Default::default()
        };
        data.train.compute_weight_maps(objects, &wopts)?;
    }
    let meta = InferMeta {
        model: ModelMeta::from(&unet),
        normalize: cfg.normalize.clone(),
        class_values: data.class_values.clone(),
        foreground_value: match data.train.labels {
            LabelMapping::Binary { foreground, .. } => foreground as i64,
            LabelMapping::AsStored => -1,
        },
        objects_class: objects as i64,
        tile: cfg.tile.clone(),
        blend: cfg.blend.clone(),
    };
    let config_text = cfg.to_toml()?;
    let stamp = |ck: &mut Checkpoint, elapsed: f64, train_s: f64, best: Option<(u64, f64)>| {
        ck.meta.insert("config".into(), config_text.clone());
        ck.meta.insert("elapsed_s".into(), format!("{elapsed}"));
        ck.meta.insert("train_s".into(), format!("{train_s}"));
        if let Some((s, v)) = best {
            ck.meta.insert("best_step".into(), s.to_string());
            ck.meta.insert("best_value".into(), format!("{v}"));
        }
        meta.store(ck)
    };

    let mut session = Session::new(
        ctx,
        &SessionSpec {
            config: unet.clone(),
            batch: cfg.batch,
            spatial: patch[3 - cfg.dims()..].to_vec(),
            loss: cfg.loss_fn(classes),
            optimizer: Some(cfg.optimizer_fn()),
            seed: cfg.seed,
            keep_grads: false,
        },
    )?;
    // the folder appears once data, model and sizes have passed their checks
    std::fs::create_dir_all(&out).map_err(|e| Error::file(&out, format!("cannot create: {e}")))?;
    let last_path = out.join("last.safetensors");
    let best_path = out.join("best.safetensors");
    let log_path = out.join("log.csv");
    let (mut start, mut elapsed0, mut train_s0, mut best) = (0u64, 0.0, 0.0, None);
    let (mut log, mut rows) = if opts.resume {
        let ck = checkpoint::load(&last_path)?;
        ck.check_against(&last_path, &session.exec.expected_tensors(true))?;
        session.exec.import(ctx, &ck)?;
        start = session.exec.step;
        elapsed0 = meta_f64(&ck, "elapsed_s").unwrap_or(0.0);
        train_s0 = meta_f64(&ck, "train_s").unwrap_or(0.0);
        // the best so far: best.safetensors may be newer than last's record
        // of it (written after the last checkpoint, before an interruption)
        let best_of = |c: &Checkpoint| {
            c.meta
                .get("best_step")
                .and_then(|s| s.parse::<u64>().ok())
                .zip(meta_f64(c, "best_value"))
        };
        best = if best_path.exists() {
            best_of(&checkpoint::load(&best_path)?)
        } else {
            best_of(&ck)
        };
        CsvLog::resume(&log_path, start)?
    } else {
        (CsvLog::create(&log_path)?, Vec::new())
    };
    crate::fsutil::write_atomic(&out.join("config.toml"), config_text.as_bytes())?;

    let max_val: [usize; 3] = std::array::from_fn(|a| {
        data.val
            .samples
            .iter()
            .map(|s| s.image.dims[a])
            .max()
            .unwrap_or(1)
    });
    let popts = PredictOptions {
        batch: 1,
        blend: parse_blend(&cfg.blend)?,
        tta: cfg.val_tta,
        overlap: 0.25,
    };
    let mut predictor = Predictor::for_image(ctx, &unet, cfg.tile_dims()?, max_val, &popts)?;
    let baseline = {
        let (nz, n) = data.val.samples.iter().fold((0u64, 0u64), |(a, b), s| {
            (
                a + s.labels.data.iter().filter(|&&l| l != 0).count() as u64,
                b + s.labels.data.len() as u64,
            )
        });
        nz as f64 / n.max(1) as f64
    };

    let sampler = Sampler::new(Arc::new(data.train), cfg.sampler_options(patch_out, margin))?;
    let mut pf = Prefetcher::spawn(sampler, start, cfg.prefetch);
    let sched = cfg.schedule_fn();
    let pb = if opts.progress {
        ProgressBar::new(cfg.steps)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template(
        "[{elapsed_precise}] {bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}",
    ) {
        pb.set_style(style);
    }
    pb.set_position(start);
    pb.reset_eta();
    let chatty = pb.is_hidden() && opts.progress;
    let t0 = Instant::now();
    let mut train_s = 0.0f64;
    let mut seg = Instant::now();
    let mut last_loss = rows.iter().rev().find_map(|r| r.loss);
    let mut last_val: Option<Metrics> = None;
    let better = |v: f64, b: Option<(u64, f64)>| match b {
        None => true,
        Some((_, bv)) => {
            if lower_is_better(&cfg.val_metric) {
                v < bv
            } else {
                v > bv
            }
        }
    };
    let mem_path = out.join("(memory)");
    let mut interrupted = false;
    let say = |m: String| {
        if chatty {
            eprintln!("{m}");
        } else {
            pb.println(m);
        }
    };
    // sanity checks: a fresh network's first CE loss is about ln C; with
    // --overfit the training accuracy on the fixed patches goes to ~1
    let ce_attrs = match cfg.loss_fn(classes) {
        Loss::CrossEntropy(a) => Some(a),
        _ => None,
    };
    let mut initial_loss = None;
    let mut overfit_accuracy = None;
    for step in start..cfg.steps {
        let b = pf.next_batch()?;
        session.set_batch(ctx, &b.images, &b.labels, b.weights.as_deref())?;
        let lr = sched.lr(step);
        session.step(ctx, lr as f32)?;
        let s = step + 1;
        if let (0, Some(ce)) = (step, &ce_attrs) {
            // uniform softmax: every voxel's loss is ln C; the "mean" reduction
            // divides sum(w * loss) by the voxel count, so the weight map's
            // mean scales it
            let lnc = (classes as f64).ln();
            let wmean = match (&b.weights, ce.reduction) {
                (Some(w), Reduction::Mean) => {
                    w.iter().map(|&v| v as f64).sum::<f64>() / w.len().max(1) as f64
                }
                _ => 1.0,
            };
            let expected = lnc * wmean;
            let l = session.read_loss(ctx)? as f64;
            let far = (l - expected).abs() > 0.25 * expected;
            let how = if wmean == 1.0 {
                format!("ln {classes} = {expected:.4}")
            } else {
                format!("ln {classes} x mean weight {wmean:.3} = {expected:.4}")
            };
            say(format!(
                "step 1: loss {l:.4} (a fresh network starts near {how}{})",
                if far {
                    "; far from it: check the labels, the loss weights and the initialisation"
                } else {
                    ""
                }
            ));
            initial_loss = Some((l, expected));
        }
        let fin = s == cfg.steps;
        let do_val = fin || (cfg.val_every > 0 && s.is_multiple_of(cfg.val_every));
        let do_ckpt = fin || s.is_multiple_of(cfg.checkpoint_every);
        let mut row = None;
        if do_val || do_ckpt || s.is_multiple_of(cfg.log_every) {
            let loss = session.read_loss(ctx)? as f64;
            train_s += seg.elapsed().as_secs_f64();
            seg = Instant::now();
            if !loss.is_finite() {
                return Err(Error::Other(format!(
                    "the loss became {loss} at step {s} (lr {lr:.3e}); lower lr (--lr)"
                )));
            }
            last_loss = Some(loss);
            pb.set_message(format!("loss {loss:.4}"));
            if cfg.overfit > 0 {
                let acc = pixel_accuracy(&session.read_logits(ctx)?, &b.labels, b.n, classes);
                overfit_accuracy = Some(acc);
                say(format!(
                    "step {s}: loss {loss:.4}, training pixel accuracy {acc:.4} (this step's batch of the {} fixed patches)",
                    cfg.overfit
                ));
            }
            row = Some(Row {
                step: s,
                loss: Some(loss),
                lr: Some(lr),
                ..Default::default()
            });
        }
        // one readback of the parameters serves validation and checkpoint
        let exported = if do_val || do_ckpt {
            Some(session.exec.export(ctx)?)
        } else {
            None
        };
        if let (true, Some(ck)) = (do_val, &exported) {
            predictor.load(ctx, ck, &mem_path)?;
            let m = evaluate(ctx, &mut predictor, &data.val, objects)?;
            if let Some(r) = row.as_mut() {
                r.val_pixel_error = Some(m.pixel_error);
                r.val_rand_error = m.rand_error;
                r.val_mean_dice = m.mean_dice;
            }
            // an undefined metric (e.g. no object in the validation images)
            // is reported, not fatal: best.safetensors waits for a value
            let v = m.get(&cfg.val_metric);
            if v.is_none() {
                say(format!(
                    "step {s}: validation metric {} is undefined on these images; best.safetensors not updated",
                    cfg.val_metric
                ));
            }
            if let Some(v) = v.filter(|&v| better(v, best)) {
                best = Some((s, v));
                let mut bck = ck.without_optimizer_state();
                let el = elapsed0 + t0.elapsed().as_secs_f64();
                stamp(&mut bck, el, train_s0 + train_s, best)?;
                checkpoint::save(&best_path, &bck)?;
            }
            let msg = format!(
                "step {s}: loss {:.4}, val {}",
                last_loss.unwrap_or(f64::NAN),
                m.lines()
                    .iter()
                    .filter(|(n, _)| !n.starts_with("dice_") && !n.starts_with("iou_"))
                    .map(|(n, v)| format!("{n} {v:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            say(msg);
            last_val = Some(m);
        }
        if let Some(mut r) = row {
            r.elapsed_s = Some(elapsed0 + t0.elapsed().as_secs_f64());
            log.append(&r)?;
            rows.push(r);
        }
        if let (true, Some(mut ck)) = (do_ckpt, exported) {
            let el = elapsed0 + t0.elapsed().as_secs_f64();
            stamp(&mut ck, el, train_s0 + train_s, best)?;
            checkpoint::save(&last_path, &ck)?;
            plot_curves(&out.join("curves.png"), &rows)?;
        }
        pb.set_position(s);
        if chatty && s.is_multiple_of(cfg.log_every * 10) && !do_val {
            eprintln!(
                "step {s}/{}: loss {:.4}, {:.2} steps/s",
                cfg.steps,
                last_loss.unwrap_or(f64::NAN),
                (s - start) as f64 / train_s.max(1e-9)
            );
        }
        if do_val || do_ckpt {
            seg = Instant::now();
        }
        if opts.stop_after == Some(s) && !fin {
            interrupted = true;
            break;
        }
    }
    pb.finish_and_clear();
    drop(pf);
    let step = session.exec.step;
    let mut overlay = None;
    if !interrupted {
        if rows.is_empty() {
            // resumed a finished run: nothing trained; redraw from the log
            rows = super::log::read_rows(&log_path)?;
        }
        plot_curves(&out.join("curves.png"), &rows)?;
        if let Some(s) = data.val.samples.first() {
            // the `wunet predict` path: a predictor loaded from the checkpoint file
            let from = if best_path.exists() {
                &best_path
            } else {
                &last_path
            };
            predictor.load(ctx, &checkpoint::load(from)?, from)?;
            let pred = predictor.predict(ctx, &s.image)?.argmax();
            let path = out.join("overlay.png");
            write_overlay(&path, &s.image, &pred)?;
            overlay = Some(path);
        }
    }
    Ok(TrainReport {
        out,
        config: cfg,
        step,
        start,
        last_loss,
        initial_loss,
        overfit_accuracy,
        val: last_val,
        best,
        steps_per_s: (step - start) as f64 / train_s.max(1e-9),
        wall_s: wall.elapsed().as_secs_f64(),
        baseline_pixel_error: baseline,
        overlay,
        interrupted,
        data_note: data.note,
    })
}

/// Share of voxels whose arg-max class over `logits` (`n, classes, voxels..`)
/// equals `labels` (`n, voxels..`).
fn pixel_accuracy(logits: &[f32], labels: &[i32], n: usize, classes: usize) -> f64 {
    let per = labels.len() / n.max(1);
    let mut right = 0usize;
    for b in 0..n {
        for v in 0..per {
            let at = |c: usize| logits[(b * classes + c) * per + v];
            let best = (1..classes).fold(0, |k, c| if at(c) > at(k) { c } else { k });
            right += usize::from(best as i32 == labels[b * per + v]);
        }
    }
    right as f64 / labels.len().max(1) as f64
}
