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
//! [`train`] is the README's description in code: prepare (configuration,
//! data, model, run folder; [`super::prepare`]), resume, the loop of step /
//! validate / checkpoint / report ([`super::steps`]), finish (curves,
//! overlay).
//!
//! Determinism: the initialisation is a function of `seed`, batch `i` of
//! `(seed, i)` (see [`crate::data::sampler`]) and the learning rate of the
//! step, so a resumed run replays exactly the steps an uninterrupted run
//! takes; on the same adapter the parameters agree bit for bit.

use super::config::{TrainConfig, TrainFlags};
use super::log::{read_rows, CsvLog, Row};
use super::plot::plot_curves;
use super::prepare::{prepare, Prepared};
use super::schedule::LrSchedule;
use super::steps::{Clock, Progress};
use crate::data::sampler::{Prefetcher, Sampler};
use crate::error::Result;
use crate::fsutil::write_atomic;
use crate::gpu::Context;
use crate::infer::eval::Metrics;
use crate::infer::output::write_overlay;
use crate::model_io::checkpoint::{self, Checkpoint};
use std::path::PathBuf;
use std::time::Instant;

pub use super::prepare::{load_data, patch_geometry, resolve_run, RunData, SYNTHETIC_SEED};
pub use super::trainer::{Control, StepInfo};

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
    /// Mixed precision: the final loss scale and the steps skipped for a
    /// non-finite gradient over the whole run.
    pub loss_scale: Option<(f32, u64)>,
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
    /// Stopped by SIGINT / SIGTERM (the CLI exits with status 130).
    pub signalled: bool,
    /// A line about the data (what was loaded, classes, split).
    pub data_note: String,
}

/// Train per `flags` (and `opts`), writing the run folder.
pub fn train(ctx: &Context, flags: &TrainFlags, opts: &RunOptions) -> Result<TrainReport> {
    train_with(ctx, flags, opts, &mut |_| Control::Continue)
}

/// As [`train`], calling `on_step` after every step (see
/// [`super::trainer::Trainer`]); [`Control::Stop`] ends the run there with
/// `last.safetensors` written, so that `--resume` continues it.
pub fn train_with(
    ctx: &Context,
    flags: &TrainFlags,
    opts: &RunOptions,
    on_step: &mut dyn FnMut(&StepInfo) -> Control,
) -> Result<TrainReport> {
    let wall = Instant::now();
    // configuration, data, model and sizes checked; the run folder made
    let prepared = prepare(ctx, flags, opts)?;
    // --resume: parameters, statistics, optimiser state and step from last.safetensors
    let mut run = Run::resume_or_start(ctx, opts, prepared)?;
    // step, validate, checkpoint, report (and the caller's callback)
    let interrupted = run.train_steps(on_step)?;
    // curves.png and overlay.png
    run.finish(interrupted, wall)
}

/// A run in progress: what [`prepare`] built and the state the loop carries.
pub(super) struct Run<'a> {
    pub ctx: &'a Context,
    pub opts: &'a RunOptions,
    pub p: Prepared,
    pub sched: LrSchedule,
    /// What the run had done before this process (resumed runs).
    pub prior: Prior,
    /// `(step, value)` of the best validation by `val_metric`.
    pub best: Option<(u64, f64)>,
    pub log: CsvLog,
    /// The rows of `log.csv` so far (this process's and the resumed ones).
    pub rows: Vec<Row>,
    pub clock: Clock,
    pub progress: Progress,
    pub last_loss: Option<f64>,
    pub last_val: Option<Metrics>,
    pub initial_loss: Option<(f64, f64)>,
    pub overfit_accuracy: Option<f64>,
    /// Mixed precision: steps skipped so far for a non-finite gradient.
    pub skipped_steps: u64,
}

/// What a resumed run had done: its step and seconds (0 for a fresh run).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Prior {
    pub step: u64,
    pub elapsed_s: f64,
    pub train_s: f64,
}

fn meta_f64(ck: &Checkpoint, key: &str) -> Option<f64> {
    ck.meta.get(key).and_then(|s| s.parse().ok())
}

/// `(best_step, best_value)` recorded in a checkpoint.
fn best_of(ck: &Checkpoint) -> Option<(u64, f64)> {
    ck.meta
        .get("best_step")
        .and_then(|s| s.parse::<u64>().ok())
        .zip(meta_f64(ck, "best_value"))
}

/// Load the run's `last.safetensors` (`ck`, read by `prepare`) into the session; returns
/// what the run had done and its best validation so far.
fn resume_session(
    ctx: &Context,
    p: &mut Prepared,
    ck: Checkpoint,
) -> Result<(Prior, Option<(u64, f64)>)> {
    ck.check_against(&p.files.last, &p.session.exec.expected_tensors(true))?;
    p.session.exec.import(ctx, &ck)?;
    let prior = Prior {
        step: p.session.exec.step,
        elapsed_s: meta_f64(&ck, "elapsed_s").unwrap_or(0.0),
        train_s: meta_f64(&ck, "train_s").unwrap_or(0.0),
    };
    // the best so far: best.safetensors may be newer than last's record
    // of it (written after the last checkpoint, before an interruption)
    let best = if p.files.best.exists() {
        best_of(&checkpoint::load(&p.files.best)?)
    } else {
        best_of(&ck)
    };
    Ok((prior, best))
}

/// `--init`: the checkpoint's weights and batch-norm statistics into the new
/// session; its optimiser state and step count (metadata) are left out.
fn init_session(ctx: &Context, p: &mut Prepared, ck: Checkpoint) -> Result<()> {
    let weights = Checkpoint {
        meta: Default::default(),
        ..ck.without_optimizer_state()
    };
    let path = std::path::Path::new(&p.cfg.init);
    weights.check_against(path, &p.session.exec.expected_tensors(false))?;
    p.session.exec.import(ctx, &weights)
}

impl<'a> Run<'a> {
    /// Resume from the run folder's `last.safetensors` (`--resume`; `log.csv`
    /// drops the rows after its step) or start a new `log.csv`; then write
    /// `config.toml`.
    fn resume_or_start(ctx: &'a Context, opts: &'a RunOptions, mut p: Prepared) -> Result<Self> {
        let (prior, best, (log, rows)) = if let Some(ck) = p.resume_from.take() {
            let (prior, best) = resume_session(ctx, &mut p, ck)?;
            (prior, best, CsvLog::resume(&p.files.log, prior.step)?)
        } else {
            if let Some(ck) = p.init_from.take() {
                init_session(ctx, &mut p, ck)?;
            }
            let log = CsvLog::create(&p.files.log)?;
            (Prior::default(), None, (log, Vec::new()))
        };
        write_atomic(&p.files.config, p.config_text.as_bytes())?;
        Ok(Run {
            ctx,
            opts,
            sched: p.cfg.schedule_fn(),
            prior,
            best,
            log,
            last_loss: rows.iter().rev().find_map(|r| r.loss),
            rows,
            clock: Clock::start(),
            progress: Progress::hidden(),
            last_val: None,
            initial_loss: None,
            overfit_accuracy: None,
            skipped_steps: 0,
            p,
        })
    }

    /// The loop from the resumed step to `steps`: step, validate, checkpoint,
    /// report. Returns whether it stopped early (`stop_after`).
    fn train_steps(&mut self, on_step: &mut dyn FnMut(&StepInfo) -> Control) -> Result<bool> {
        let mut patches = self.start_loop()?;
        let mut interrupted = false;
        for step in self.prior.step..self.p.cfg.steps {
            let mut st = self.step(&mut patches, step)?;
            // one readback of the parameters serves validation and checkpoint
            let params = if st.validate || st.checkpoint {
                Some(self.export_checked(st.n)?)
            } else {
                None
            };
            if let (true, Some(ck)) = (st.validate, &params) {
                self.validate(ck, &mut st)?;
            }
            self.log(&mut st)?;
            if let (true, Some(ck)) = (st.checkpoint, params) {
                self.checkpoint(ck)?;
            }
            self.report(&st);
            let signalled = super::stop::requested();
            if (signalled || self.opts.stop_after == Some(st.n)) && !st.last {
                if signalled && !st.checkpoint {
                    // SIGINT / SIGTERM: keep this step
                    let ck = self.export_checked(st.n)?;
                    self.checkpoint(ck)?;
                }
                interrupted = true;
                break;
            }
            if self.asked_to_stop(&st, on_step)? {
                interrupted = true;
                break;
            }
        }
        self.progress.finish();
        drop(patches);
        Ok(interrupted)
    }

    /// The parameters after step `n`, read back and checked to be finite
    /// (the NaN-loss guard for the parameters: a diverged network is never
    /// validated or written over a good checkpoint).
    fn export_checked(&self, n: u64) -> Result<Checkpoint> {
        let ck = self.p.session.exec.export(self.ctx)?;
        ck.check_finite(&self.p.files.memory).map_err(|e| {
            crate::error::Error::Other(format!(
                "{e} (after step {n}; lower lr (--lr); last.safetensors keeps the last good state)"
            ))
        })?;
        Ok(ck)
    }

    /// Call the caller's `on_step`; on [`Control::Stop`] (before the last
    /// step) write `last.safetensors` unless this step just did.
    fn asked_to_stop(
        &mut self,
        st: &super::steps::Step,
        on_step: &mut dyn FnMut(&StepInfo) -> Control,
    ) -> Result<bool> {
        let info = StepInfo {
            step: st.n,
            steps: self.p.cfg.steps,
            // the step's log.csv row, if its loss was read back
            loss: self
                .rows
                .last()
                .filter(|r| r.step == st.n)
                .and_then(|r| r.loss),
            lr: self.sched.lr(st.n - 1),
            val: if st.validate {
                self.last_val.as_ref()
            } else {
                None
            },
        };
        if on_step(&info) == Control::Continue || st.last {
            return Ok(false);
        }
        if !st.checkpoint {
            let ck = self.export_checked(st.n)?;
            self.checkpoint(ck)?;
        }
        self.progress
            .say(format!("stopped by the caller after step {}", st.n));
        Ok(true)
    }

    /// The patch stream from the run's step, the progress bar and the clock.
    fn start_loop(&mut self) -> Result<Prefetcher> {
        let cfg = &self.p.cfg;
        let sampler = Sampler::new(
            self.p.train.clone(),
            cfg.sampler_options(self.p.patch_out, self.p.margin),
        )?;
        let patches = Prefetcher::spawn(sampler, self.prior.step, cfg.prefetch);
        self.progress = Progress::start(self.opts.progress, cfg.steps, self.prior.step);
        self.clock = Clock::start();
        Ok(patches)
    }

    /// Unless interrupted: `curves.png` and the overlay of the first
    /// validation image (through the `wunet predict` path, from the best or
    /// last checkpoint file); then the report.
    fn finish(mut self, interrupted: bool, wall: Instant) -> Result<TrainReport> {
        let mut overlay = None;
        if !interrupted {
            if self.rows.is_empty() {
                // resumed a finished run: nothing trained; redraw from the log
                self.rows = read_rows(&self.p.files.log)?;
            }
            plot_curves(&self.p.files.curves, &self.rows)?;
            overlay = self.write_overlay()?;
        }
        let step = self.p.session.exec.step;
        let start = self.prior.step;
        let loss_scale = self.p.session.read_loss_scale(self.ctx)?;
        Ok(TrainReport {
            out: self.p.files.out,
            config: self.p.cfg,
            step,
            start,
            last_loss: self.last_loss,
            initial_loss: self.initial_loss,
            overfit_accuracy: self.overfit_accuracy,
            loss_scale,
            val: self.last_val,
            best: self.best,
            steps_per_s: (step - start) as f64 / self.clock.train_s.max(1e-9),
            wall_s: wall.elapsed().as_secs_f64(),
            baseline_pixel_error: self.p.baseline_pixel_error,
            overlay,
            interrupted,
            signalled: interrupted && super::stop::requested(),
            data_note: self.p.data_note,
        })
    }

    /// `overlay.png`: the first validation image with its segmentation.
    fn write_overlay(&mut self) -> Result<Option<PathBuf>> {
        let Some(s) = self.p.val.samples.first() else {
            return Ok(None);
        };
        let files = &self.p.files;
        let from = if files.best.exists() {
            &files.best
        } else {
            &files.last
        };
        let predictor = &mut self.p.predictor;
        predictor.load(self.ctx, &checkpoint::load(from)?, from)?;
        let pred = predictor.predict(self.ctx, &s.image)?.argmax();
        write_overlay(&files.overlay, &s.image, &pred)?;
        Ok(Some(files.overlay.clone()))
    }
}
