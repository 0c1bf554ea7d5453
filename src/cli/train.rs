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
        if predicts_background_only(m, r.baseline_pixel_error) {
            s += "warning: validation: the network predicts background everywhere (the pixel error is the all-background baseline, every object class's Dice 0); it has not learned the objects: try another --seed, a lower --lr or more --steps\n";
        }
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

/// Whether validation found no object voxel at all: every object class's
/// Dice 0 and the pixel error that of predicting background everywhere
/// (a collapsed run; the summary warns).
fn predicts_background_only(m: &crate::infer::eval::Metrics, baseline: f64) -> bool {
    let no_object = m.dice.iter().skip(1).all(|d| d.is_none_or(|d| d == 0.0));
    no_object && (m.pixel_error - baseline).abs() < 1e-6
}

/// Run `wunet train` (SIGINT / SIGTERM stop it after the current step);
/// returns the summary text and whether a signal stopped it.
pub fn run_train(ctx: &Context, a: &TrainArgs) -> Result<(String, bool)> {
    let opts = run_options(a);
    crate::train::stop::install();
    let r = train(ctx, &a.flags, &opts)?;
    Ok((summary(&r), r.signalled))
}

/// What `wunet train` checks before it opens the GPU: the configuration
/// (file and flags, every key's range, `--resume` against the stored one)
/// and that the run folder can be written.
pub fn check_before_gpu(a: &TrainArgs) -> Result<()> {
    let (_, out) = crate::train::run::resolve_run(&a.flags, &run_options(a))?;
    crate::fsutil::check_output_dir("--out", &out)
}

fn run_options(a: &TrainArgs) -> RunOptions {
    RunOptions {
        config_file: a.config.clone(),
        resume: a.resume,
        progress: true,
        stop_after: None,
    }
}

/// `train --help`: every key's help with its defaults appended (they
/// depend on the model, so clap cannot show them itself).
pub fn help_with_defaults(cmd: clap::Command) -> clap::Command {
    use crate::train::config::TrainConfig;
    let tables = (
        toml::Table::try_from(TrainConfig::defaults("unet2d")),
        toml::Table::try_from(TrainConfig::defaults_for("unet2d", true)),
        toml::Table::try_from(TrainConfig::defaults("unet3d")),
    );
    let (Ok(t2), Ok(t2d), Ok(t3)) = tables else {
        return cmd;
    };
    let show = |v: &toml::Value| match v {
        toml::Value::String(s) if s.is_empty() => "\"\"".to_string(),
        toml::Value::String(s) => s.clone(),
        // the f32 keys widen to f64 in TOML: show the shortest f32 text
        toml::Value::Float(f) if (*f as f32) as f64 == *f => (*f as f32).to_string(),
        v => v.to_string(),
    };
    cmd.mut_args(|arg| {
        let id = arg.get_id().as_str().to_string();
        let (Some(a), Some(ad), Some(b)) = (t2.get(&id), t2d.get(&id), t3.get(&id)) else {
            return arg;
        };
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let d = if a != ad {
            format!(
                "[default: {} (unet2d with --data), {} (unet2d on the built-in data), {} (unet3d)]",
                show(ad),
                show(a),
                show(b)
            )
        } else if a == b {
            format!("[default: {}]", show(a))
        } else {
            format!("[default: {} (unet2d), {} (unet3d)]", show(a), show(b))
        };
        arg.help(format!("{help} {d}"))
    })
}

#[cfg(test)]
mod tests {
    use super::predicts_background_only;
    use crate::infer::eval::Metrics;

    #[test]
    fn a_collapsed_validation_is_recognised() {
        let m = |pe: f64, dice: Vec<Option<f64>>| Metrics {
            pixel_error: pe,
            dice,
            ..Default::default()
        };
        // background only: no object Dice, the baseline's pixel error
        assert!(predicts_background_only(
            &m(0.0252, vec![Some(0.987), Some(0.0), Some(0.0)]),
            0.0252
        ));
        // some object found, or objects predicted in the wrong places
        assert!(!predicts_background_only(
            &m(0.011, vec![Some(0.99), Some(0.77), Some(0.0)]),
            0.0252
        ));
        assert!(!predicts_background_only(
            &m(0.04, vec![Some(0.98), Some(0.0), Some(0.0)]),
            0.0252
        ));
    }
}
