//! Training: the configuration ([`config`]), the training session on the
//! GPU ([`session`]), and `wunet train` ([`run`]: prepare, resume, the loop
//! of [`steps`], finish), with its CSV log, curves plot and LR schedules.
//! A run folder is locked while it trains ([`lock`]); SIGINT / SIGTERM
//! stop the loop after the current step ([`stop`]). Training from code:
//! [`Trainer`]. Checkpoints and their metadata live in [`crate::model_io`].

pub mod config;
pub mod lock;
pub mod log;
pub mod plot;
pub mod prepare;
pub mod run;
pub mod schedule;
pub mod session;
pub mod steps;
pub mod stop;
pub mod trainer;

pub use config::TrainFlags;
pub use trainer::{Control, StepInfo, Trainer};
