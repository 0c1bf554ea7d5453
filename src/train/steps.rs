//! The steps of the training loop ([`super::run`]): one training step (with
//! the first-step loss check and the loss readback), validation (and
//! `best.safetensors`), the `log.csv` row, `last.safetensors`, and the
//! progress report; plus the progress bar and the clock they share.

use super::log::Row;
use super::plot::plot_curves;
use super::run::Run;
use crate::data::sampler::{Batch, Prefetcher};
use crate::error::{Error, Result};
use crate::graph::ops::Reduction;
use crate::infer::eval::{evaluate, is_challenge_metric, lower_is_better};
use crate::model_io::checkpoint::{self, Checkpoint};
use crate::models::Loss;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// One step done, and what is due after it.
pub(super) struct Step {
    /// Steps done, this one included.
    pub n: u64,
    /// The run's final step.
    pub last: bool,
    pub validate: bool,
    pub checkpoint: bool,
    /// The `log.csv` row, when the loss was read back.
    pub row: Option<Row>,
}

impl Run<'_> {
    /// Train on the next batch (step number `step`, from 0); read the loss
    /// back when a log row, validation or checkpoint is due.
    pub(super) fn step(&mut self, patches: &mut Prefetcher, step: u64) -> Result<Step> {
        let b = patches.next_batch()?;
        let session = &mut self.p.session;
        session.set_batch(self.ctx, &b.images, &b.labels, b.weights.as_deref())?;
        let lr = self.sched.lr(step);
        session.step(self.ctx, lr as f32)?;
        if step == 0 {
            self.check_initial_loss(&b)?;
        }
        let n = step + 1;
        let cfg = &self.p.cfg;
        let last = n == cfg.steps;
        let validate = last || (cfg.val_every > 0 && n.is_multiple_of(cfg.val_every));
        let checkpoint = last || n.is_multiple_of(cfg.checkpoint_every);
        let row = if validate || checkpoint || n.is_multiple_of(cfg.log_every) {
            Some(self.read_back(&b, n, lr)?)
        } else {
            None
        };
        Ok(Step {
            n,
            last,
            validate,
            checkpoint,
            row,
        })
    }

    /// Sanity check: a fresh network's first cross-entropy loss is about
    /// ln C (times the batch's mean weight-map value for the weighted loss).
    fn check_initial_loss(&mut self, b: &Batch) -> Result<()> {
        let classes = self.p.classes;
        let Loss::CrossEntropy(ce) = self.p.cfg.loss_fn(classes) else {
            return Ok(());
        };
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
        let l = self.p.session.read_loss(self.ctx)? as f64;
        let far = (l - expected).abs() > 0.25 * expected;
        let how = if wmean == 1.0 {
            format!("ln {classes} = {expected:.4}")
        } else {
            format!("ln {classes} x mean weight {wmean:.3} = {expected:.4}")
        };
        let note = if !self.p.cfg.init.is_empty() {
            format!("from --init; a fresh network would start near {how}")
        } else if far {
            format!("a fresh network starts near {how}; far from it: check the labels, the loss weights and the initialisation")
        } else {
            format!("a fresh network starts near {how}")
        };
        self.progress.say(format!("step 1: loss {l:.4} ({note})"));
        self.initial_loss = Some((l, expected));
        Ok(())
    }

    /// Read the loss of step `n` back (the time up to here was training);
    /// with `--overfit`, also the training pixel accuracy on the batch.
    fn read_back(&mut self, b: &Batch, n: u64, lr: f64) -> Result<Row> {
        let loss = self.p.session.read_loss(self.ctx)? as f64;
        self.clock.lap();
        if !loss.is_finite() {
            return Err(Error::Other(format!(
                "the loss became {loss} at step {n} (lr {lr:.3e}); lower lr (--lr)"
            )));
        }
        self.last_loss = Some(loss);
        self.progress.bar.set_message(format!("loss {loss:.4}"));
        if self.p.cfg.overfit > 0 {
            let logits = self.p.session.read_logits(self.ctx)?;
            let acc = pixel_accuracy(&logits, &b.labels, b.n, self.p.classes);
            self.overfit_accuracy = Some(acc);
            self.progress.say(format!(
                "step {n}: loss {loss:.4}, training pixel accuracy {acc:.4} (this step's batch of the {} fixed patches)",
                self.p.cfg.overfit
            ));
        }
        let scale = self.p.session.read_loss_scale(self.ctx)?;
        if let Some((sc, skipped)) = scale {
            if skipped > self.skipped_steps {
                self.progress.say(format!(
                    "step {n}: {} steps skipped so far for a non-finite gradient (loss scale now {sc})",
                    skipped
                ));
            }
            self.skipped_steps = skipped;
        }
        Ok(Row {
            step: n,
            loss: Some(loss),
            lr: Some(lr),
            loss_scale: scale.map(|s| s.0 as f64),
            skipped_steps: scale.map(|s| s.1 as f64),
            ..Default::default()
        })
    }

    /// Validate the parameters `ck` on the whole validation images; fill the
    /// step's row, and write `best.safetensors` when the metric improved.
    pub(super) fn validate(&mut self, ck: &Checkpoint, st: &mut Step) -> Result<()> {
        let predictor = &mut self.p.predictor;
        predictor.load(self.ctx, ck, &self.p.files.memory)?;
        let metric = &self.p.cfg.val_metric;
        let challenge = is_challenge_metric(metric);
        let m = evaluate(
            self.ctx,
            std::slice::from_mut(predictor),
            &self.p.val,
            self.p.objects,
            challenge,
            None,
        )?;
        if let Some(r) = st.row.as_mut() {
            r.val_pixel_error = Some(m.pixel_error);
            r.val_rand_error = m.rand_error;
            r.val_mean_dice = m.mean_dice;
            r.val_isbi_rand_error = m.challenge.as_ref().map(|c| c.rand_error);
        }
        // an undefined metric (e.g. no object in the validation images)
        // is reported, not fatal: best.safetensors waits for a value
        let v = m.get(metric);
        if v.is_none() {
            self.progress.say(format!(
                "step {}: validation metric {metric} is undefined on these images; best.safetensors not updated",
                st.n
            ));
        }
        if let Some(v) = v.filter(|&v| self.better(v)) {
            self.best = Some((st.n, v));
            let mut bck = ck.without_optimizer_state();
            self.stamp(&mut bck)?;
            checkpoint::save(&self.p.files.best, &bck)?;
        }
        let msg = format!(
            "step {}: loss {:.4}, val {}",
            st.n,
            self.last_loss.unwrap_or(f64::NAN),
            m.lines()
                .iter()
                .filter(|(n, _)| shown_in_progress(n))
                .map(|(n, v)| format!("{n} {v:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.progress.say(msg);
        self.last_val = Some(m);
        Ok(())
    }

    /// Whether `v` of the validation metric beats the best so far.
    fn better(&self, v: f64) -> bool {
        match self.best {
            None => true,
            Some((_, bv)) if lower_is_better(&self.p.cfg.val_metric) => v < bv,
            Some((_, bv)) => v > bv,
        }
    }

    /// Append the step's row (if the loss was read back) to `log.csv`.
    pub(super) fn log(&mut self, st: &mut Step) -> Result<()> {
        if let Some(mut r) = st.row.take() {
            r.elapsed_s = Some(self.prior.elapsed_s + self.clock.elapsed_s());
            self.log.append(&r)?;
            self.rows.push(r);
        }
        Ok(())
    }

    /// Write `last.safetensors` (the parameters `ck`) and `curves.png`.
    pub(super) fn checkpoint(&mut self, mut ck: Checkpoint) -> Result<()> {
        self.stamp(&mut ck)?;
        checkpoint::save(&self.p.files.last, &ck)?;
        plot_curves(&self.p.files.curves, &self.rows)
    }

    /// The run's metadata in a checkpoint: configuration, seconds, best
    /// validation, and what inference needs.
    fn stamp(&self, ck: &mut Checkpoint) -> Result<()> {
        let elapsed = self.prior.elapsed_s + self.clock.elapsed_s();
        let train_s = self.prior.train_s + self.clock.train_s;
        ck.meta.insert("config".into(), self.p.config_text.clone());
        ck.meta.insert("elapsed_s".into(), format!("{elapsed}"));
        ck.meta.insert("train_s".into(), format!("{train_s}"));
        // the conv kernels chosen so far, which --resume pins (bitwise resume)
        let kernels = crate::ops::conv::tune::decisions_text(&self.ctx.info);
        ck.meta.insert("kernels".into(), kernels);
        if let Some((s, v)) = self.best {
            ck.meta.insert("best_step".into(), s.to_string());
            ck.meta.insert("best_value".into(), format!("{v}"));
        }
        self.p.meta.store(ck)
    }

    /// Progress: the bar's position, and without a bar a line every ten
    /// log intervals. Validation and checkpoint time is not training time.
    pub(super) fn report(&mut self, st: &Step) {
        let cfg = &self.p.cfg;
        let s = st.n;
        self.progress.bar.set_position(s);
        if self.progress.chatty && s.is_multiple_of(cfg.log_every * 10) && !st.validate {
            eprintln!(
                "step {s}/{}: loss {:.4}, {:.2} steps/s",
                cfg.steps,
                self.last_loss.unwrap_or(f64::NAN),
                (s - self.prior.step) as f64 / self.clock.train_s.max(1e-9)
            );
        }
        if st.validate || st.checkpoint {
            self.clock.skip();
        }
    }
}

/// The progress bar (step, loss, steps/s, ETA), or plain lines on stderr
/// when progress is wanted but stderr is not a terminal.
pub(super) struct Progress {
    pub bar: ProgressBar,
    /// Print lines instead of drawing the bar.
    pub chatty: bool,
}

impl Progress {
    /// Nothing shown.
    pub fn hidden() -> Self {
        Progress {
            bar: ProgressBar::hidden(),
            chatty: false,
        }
    }

    /// The bar over `steps` steps, at `start`; hidden unless `show`.
    pub fn start(show: bool, steps: u64, start: u64) -> Self {
        let bar = if show {
            ProgressBar::new(steps)
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(
            "[{elapsed_precise}] {bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}",
        ) {
            bar.set_style(style);
        }
        bar.set_position(start);
        bar.reset_eta();
        let chatty = bar.is_hidden() && show;
        Progress { bar, chatty }
    }

    /// A message line above the bar (or on stderr without one).
    pub fn say(&self, m: String) {
        if self.chatty {
            eprintln!("{m}");
        } else {
            self.bar.println(m);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Wall time of this process's loop, and the part of it spent training
/// (validation and checkpoints excluded).
pub(super) struct Clock {
    t0: Instant,
    /// Start of the current training segment.
    seg: Instant,
    /// Seconds of training so far.
    pub train_s: f64,
}

impl Clock {
    pub fn start() -> Self {
        let now = Instant::now();
        Clock {
            t0: now,
            seg: now,
            train_s: 0.0,
        }
    }

    /// The segment up to now was training.
    pub fn lap(&mut self) {
        self.train_s += self.seg.elapsed().as_secs_f64();
        self.seg = Instant::now();
    }

    /// The time since the last lap was not training.
    pub fn skip(&mut self) {
        self.seg = Instant::now();
    }

    /// Seconds since the loop started.
    pub fn elapsed_s(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }
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

/// The validation metrics printed on the progress line: the per-class Dice
/// and IoU and the challenge's split, merge and threshold terms stay in
/// `wunet eval`.
fn shown_in_progress(name: &str) -> bool {
    let per_class = name.starts_with("dice_") || name.starts_with("iou_");
    let challenge_detail = name.starts_with("isbi_")
        && !matches!(name, "isbi_pixel_error" | "isbi_rand_error" | "isbi_v_info");
    !per_class && !challenge_detail
}
