//! GPU runtime: context, tensors and buffer pool, kernels and pipeline cache,
//! and the recorder that batches dispatches into one submission.

pub mod context;
pub mod interop;
pub mod pipelines;
pub mod pool;
pub mod record;
pub mod tensor;

pub use context::{AdapterClass, Context, ContextOptions};
pub use record::{Program, Recorder, Scratch, ScratchStats};
pub use tensor::{DType, Tensor};
