//! Training-loop pieces that run on the host.

pub mod checkpoint;
pub mod schedule;
pub mod session;
