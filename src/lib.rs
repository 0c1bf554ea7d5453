//! wunet: train and run U-Net segmentation networks on any GPU that wgpu reaches.
//!
//! Layout: [`shape`] (all size formulas), [`gpu`] (context, tensors, kernels,
//! recording), [`ops`] (GPU ops), [`mod@reference`] (CPU versions of every op).
//! Training and inference: [`train`] (uses [`infer`] to validate), [`infer`],
//! and below both [`model_io`] (checkpoints and their metadata).
//!
//! Build a U-Net graph (no GPU needed) and read its shapes: the paper's
//! network maps a 572x572 tile to 388x388; in mixed precision the layers run
//! on f16 activations while the logits come back as f32.
//!
//! ```
//! use wunet::models::{build_unet, build_unet_with, Mode, UNetConfig};
//! use wunet::shape::{DType, Precision};
//!
//! let cfg = UNetConfig::ronneberger2015();
//! let net = build_unet(&cfg, 1, &[572, 572], &Mode::Inference)?;
//! assert_eq!(net.graph.shape(net.logits).spatial(), [1, 388, 388]);
//!
//! let half = build_unet_with(&cfg, 1, &[572, 572], &Mode::Inference, Precision::Mixed)?;
//! assert_eq!(half.graph.value(half.logits).dtype, DType::F32);
//! let f16_values = half.graph.values().iter().filter(|v| v.dtype == DType::F16).count();
//! assert!(f16_values > 0);
//! # Ok::<(), wunet::Error>(())
//! ```
//!
//! Train on the GPU (`Context::new` picks an adapter; lavapipe without a GPU):
//!
//! ```no_run
//! use wunet::graph::Optimizer;
//! use wunet::models::{Loss, UNetConfig};
//! use wunet::train::session::{Session, SessionSpec};
//! use wunet::{Context, ContextOptions};
//!
//! let ctx = Context::new(&ContextOptions::default())?;
//! let mut cfg = UNetConfig::ronneberger2015();
//! cfg.base = 8;
//! cfg.depth = 2;
//! let spec = SessionSpec {
//!     config: cfg,
//!     batch: 1,
//!     spatial: vec![92, 92],
//!     loss: Loss::cross_entropy(),
//!     optimizer: Some(Optimizer::sgd(0.99)),
//!     seed: 1,
//!     keep_grads: false,
//!     precision: ctx.precision("auto")?,
//! };
//! let mut s = Session::new(&ctx, &spec)?;
//! let out = s.exec.graph.shape(s.net.logits);
//! let images = vec![0.0f32; 92 * 92];
//! let labels = vec![0i32; out.n() * out.spatial_numel()];
//! s.set_batch(&ctx, &images, &labels, None)?;
//! s.step(&ctx, 1e-2)?;
//! println!("loss {}", s.read_loss(&ctx)?);
//! # Ok::<(), wunet::Error>(())
//! ```

pub mod bench;
pub mod checks;
pub mod cli;
pub mod data;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod gpu;
pub mod graph;
pub mod infer;
pub mod model_io;
pub mod models;
pub mod ops;
pub mod reference;
pub mod shape;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{Context, ContextOptions, DType, Tensor};
pub use shape::{Shape, Window};
