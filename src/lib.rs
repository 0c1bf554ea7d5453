//! wunet: train and run U-Net segmentation networks on any GPU that wgpu reaches.
//!
//! Layout: [`shape`] (all size formulas), [`gpu`] (context, tensors, kernels,
//! recording), [`ops`] (GPU ops), [`reference`](mod@reference) (CPU versions of every op).

pub mod bench;
pub mod cli;
pub mod data;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod gpu;
pub mod graph;
pub mod infer;
pub mod models;
pub mod ops;
pub mod reference;
pub mod shape;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{Context, ContextOptions, DType, Tensor};
pub use shape::{Shape, Window};
