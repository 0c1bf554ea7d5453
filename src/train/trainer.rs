//! Training from code: the CLI's configuration as a struct ([`TrainFlags`],
//! every field optional, as the flags are), a callback after every step, and
//! the same run folder, checkpoints and resumption as `wunet train`.
//!
//! ```
//! use wunet::train::{Control, TrainFlags, Trainer};
//! let ctx = match wunet::Context::new(&Default::default()) {
//!     Ok(c) => c,
//!     Err(e) => return Ok(eprintln!("skip: no adapter ({e})")),
//! };
//! let out = std::env::temp_dir().join(format!("wunet-doc-trainer-{}", std::process::id()));
//! let flags = TrainFlags {
//!     synthetic_images: Some(4),
//!     synthetic_size: Some("64x64".into()),
//!     base: Some(4),
//!     depth: Some(2),
//!     patch: Some("32".into()),
//!     steps: Some(6),
//!     log_every: Some(2),
//!     out: Some(out.display().to_string()),
//!     ..Default::default()
//! };
//! let mut losses = Vec::new();
//! // stop after step 4: last.safetensors is written, and `resume` continues the run
//! let report = Trainer::new(flags.clone()).run(&ctx, |s| {
//!     losses.extend(s.loss);
//!     if s.step == 4 { Control::Stop } else { Control::Continue }
//! })?;
//! assert!(report.interrupted && report.step == 4 && losses.len() == 2);
//! let report = Trainer::new(flags).resume(true).run(&ctx, |_| Control::Continue)?;
//! assert_eq!((report.start, report.step), (4, 6));
//! # std::fs::remove_dir_all(&out).ok();
//! # Ok::<(), wunet::Error>(())
//! ```

use super::run::{train_with, RunOptions, TrainReport};
use crate::error::Result;
use crate::gpu::Context;
use crate::infer::eval::Metrics;
use std::path::PathBuf;

pub use super::config::TrainFlags;

/// What the callback of [`Trainer::run`] sees after a step.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo<'a> {
    /// Steps done, this one included.
    pub step: u64,
    /// Steps of the whole run.
    pub steps: u64,
    /// The training loss, on the steps it is read back (every `log_every`
    /// steps, and at validations and checkpoints).
    pub loss: Option<f64>,
    /// The learning rate of this step.
    pub lr: f64,
    /// The validation run after this step, if one was due.
    pub val: Option<&'a Metrics>,
}

/// What the callback of [`Trainer::run`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// End the run after this step, with `last.safetensors` written (the
    /// report says `interrupted`; [`Trainer::resume`] continues it).
    Stop,
}

/// `wunet train` as a library call (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Trainer {
    /// The configuration: the CLI's flags, with a config file's keys and the
    /// defaults filling what is `None`.
    pub flags: TrainFlags,
    /// A TOML configuration file (`--config`).
    pub config_file: Option<PathBuf>,
    /// Continue the run in `flags.out` from its `last.safetensors` (`--resume`).
    pub resume: bool,
    /// Show the progress bar on a terminal.
    pub progress: bool,
}

impl Trainer {
    /// A trainer for `flags`.
    pub fn new(flags: TrainFlags) -> Self {
        Trainer {
            flags,
            ..Default::default()
        }
    }

    /// Read keys from a TOML configuration file (flags still win).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Continue the run in the output folder (`--resume`).
    pub fn resume(mut self, yes: bool) -> Self {
        self.resume = yes;
        self
    }

    /// Train, calling `on_step` after every step; the report of the run.
    pub fn run(
        &self,
        ctx: &Context,
        mut on_step: impl FnMut(&StepInfo) -> Control,
    ) -> Result<TrainReport> {
        let opts = RunOptions {
            config_file: self.config_file.clone(),
            resume: self.resume,
            progress: self.progress,
            stop_after: None,
        };
        train_with(ctx, &self.flags, &opts, &mut on_step)
    }
}
