//! Command-line front end (`wunet ...`).

pub mod bench;
pub mod bench_ops;
pub mod eval;
pub mod model;
pub mod peak;
pub mod predict;
pub mod predict_dir;
pub mod predict_zarr;
pub mod train;
pub mod tune;
