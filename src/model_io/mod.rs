//! What training writes and inference reads, below both [`crate::train`] and
//! [`crate::infer`]: checkpoints in safetensors ([`checkpoint`]) and the
//! metadata a checkpoint carries so that `wunet predict` and `wunet eval`
//! need no model flags ([`meta`]: network configuration, normalisation,
//! label values, default tile).
//!
//! Layering: `train` -> `infer` -> `model_io`, and `exec` -> `model_io`
//! (parameter export and import); nothing here imports `train`, `infer` or
//! `exec`.

pub mod checkpoint;
pub mod meta;

pub use checkpoint::{is_optimizer_state, Checkpoint, NamedTensor};
pub use meta::{parse_dims, InferMeta, ModelMeta, META_KEY};
