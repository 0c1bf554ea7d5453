//! `wunet train`: flags, then [`crate::train::run::train`], then a summary.

use crate::error::Result;
use crate::gpu::Context;
use crate::train::config::TrainFlags;
use crate::train::run::{train, RunOptions, TrainReport};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// TOML file with any of the keys below (key_name = --key-name); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run in --out (default: the latest runs/<model>-NNN) from its
    /// last.safetensors; only --steps and the interval flags may change.
    #[allow(rustdoc::invalid_html_tags)] // the text is clap's --help, not HTML
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub flags: TrainFlags,
}

/// The closing summary of a run.
pub fn summary(r: &TrainReport) -> String {
    let mut s = format!("run folder: {}\n", r.out.display());
    if r.interrupted {
        s += &format!("stopped after step {} (resume with --resume)\n", r.step);
        return s;
    }
    s += &format!(
        "steps: {} (this run: {} steps, {:.2} steps/s training, {:.0} s wall)\n",
        r.step,
        r.step - r.start,
        r.steps_per_s,
        r.wall_s
    );
    if let Some((l, lnc)) = r.initial_loss {
        s += &format!("initial loss: {l:.4} (expected for a fresh network: {lnc:.4})\n");
    }
    if let Some(l) = r.last_loss {
        s += &format!("final training loss: {l:.4}\n");
    }
    if let Some((scale, skipped)) = r.loss_scale {
        s += &format!(
            "mixed precision: {skipped} steps skipped for a non-finite gradient, final loss scale {scale}\n"
        );
    }
    if let Some(a) = r.overfit_accuracy {
        s += &format!(
            "overfit check: training pixel accuracy {a:.4} (last logged batch of the {} fixed patches)\n",
            r.config.overfit
        );
    }
    if let Some(m) = &r.val {
        s += &format!(
            "validation ({} images, whole-image overlap-tile inference):\n",
            m.images
        );
        for (n, v) in m.lines() {
            s += &format!("  {n}: {v:.4}\n");
        }
        s += &format!(
            "  (all-background baseline pixel error: {:.4})\n",
            r.baseline_pixel_error
        );
    }
    if let Some((step, v)) = r.best {
        s += &format!(
            "best: {} {v:.4} at step {step} -> {}\n",
            r.config.val_metric,
            r.out.join("best.safetensors").display()
        );
    }
    if let Some(o) = &r.overlay {
        s += &format!("overlay: {}\n", o.display());
    }
    s
}

/// Run `wunet train`; returns the summary text.
pub fn run_train(ctx: &Context, a: &TrainArgs) -> Result<String> {
    let opts = RunOptions {
        config_file: a.config.clone(),
        resume: a.resume,
        progress: true,
        stop_after: None,
    };
    let r = train(ctx, &a.flags, &opts)?;
    Ok(summary(&r))
}
