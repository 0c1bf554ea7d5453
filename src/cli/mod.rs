//! Command-line front end (`wunet ...`).

pub mod bench;
pub mod model;
