//! Training-loop pieces that run on the host.

pub mod config;
pub mod log;
pub mod plot;
pub mod run;
pub mod schedule;
pub mod session;
