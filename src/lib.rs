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
//! Train on the GPU, one step at a time (`Context::new` picks an adapter;
//! lavapipe without a GPU):
//!
//! ```
//! use wunet::graph::Optimizer;
//! use wunet::models::{Loss, UNetConfig};
//! use wunet::train::session::{Session, SessionSpec};
//! use wunet::{Context, ContextOptions};
//!
//! let ctx = match Context::new(&ContextOptions::default()) {
//!     Ok(c) => c,
//!     Err(e) => return Ok(eprintln!("skip: no adapter ({e})")),
//! };
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
//! assert!(s.read_loss(&ctx)?.is_finite());
//! # Ok::<(), wunet::Error>(())
//! ```
//!
//! Embedding in a graphics application: train from code ([`train::Trainer`],
//! the CLI's configuration as a struct, a callback per step), then segment
//! the application's own texture inside its frame
//! ([`infer::texture::TexturePredictor`]: every step recorded into the
//! host's command encoder, no CPU round trip; `examples/segment_texture`
//! composites the mask in its own render pass):
//!
//! ```
//! use wunet::infer::texture::{TextureInput, TextureOutput, TexturePredictor};
//! use wunet::train::{Control, TrainFlags, Trainer};
//!
//! let ctx = match wunet::Context::new(&Default::default()) {
//!     Ok(c) => c,
//!     Err(e) => return Ok(eprintln!("skip: no adapter ({e})")),
//! };
//! let out = std::env::temp_dir().join(format!("wunet-doc-embed-{}", std::process::id()));
//! let flags = TrainFlags {
//!     synthetic_images: Some(4),
//!     synthetic_size: Some("64x64".into()),
//!     base: Some(4),
//!     depth: Some(2),
//!     patch: Some("32".into()),
//!     steps: Some(4),
//!     out: Some(out.display().to_string()),
//!     ..Default::default()
//! };
//! let report = Trainer::new(flags).run(&ctx, |_| Control::Continue)?;
//!
//! // the host's textures: an 8-bit image and a mask of class ids
//! let texture = |format, usage| ctx.device.create_texture(&wgpu::TextureDescriptor {
//!     label: None,
//!     size: wgpu::Extent3d { width: 40, height: 30, depth_or_array_layers: 1 },
//!     mip_level_count: 1,
//!     sample_count: 1,
//!     dimension: wgpu::TextureDimension::D2,
//!     format,
//!     usage,
//!     view_formats: &[],
//! });
//! let image = texture(wgpu::TextureFormat::R8Unorm, wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::COPY_DST);
//! let mask = texture(wgpu::TextureFormat::R8Uint, wgpu::TextureUsages::COPY_DST | wgpu::TextureUsages::TEXTURE_BINDING);
//! let pixels: Vec<u8> = (0..40 * 30).map(|i| (i * 7 % 251) as u8).collect();
//! ctx.queue.write_texture(image.as_image_copy(), &pixels,
//!     wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(40), rows_per_image: None },
//!     image.size());
//!
//! let ck = report.out.join("best.safetensors");
//! let mut seg = TexturePredictor::from_checkpoint(&ctx, &ck, &Default::default())?;
//! let mut frame = ctx.device.create_command_encoder(&Default::default());
//! seg.encode(&ctx, &mut frame, TextureInput::new(&image), TextureOutput::Mask(&mask))?;
//! // ... the host's render passes read `mask` here ...
//! ctx.queue.submit([frame.finish()]);
//! # std::fs::remove_dir_all(&out).ok();
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
