//! The graph layer: IR with static shapes ([`ir`]), the op set ([`ops`]: one
//! module per op family with its attributes, specs, shape and gradient rules),
//! the generic type-inference driver ([`infer`]), builder methods
//! ([`builder`]), fusion of memory-bound passes ([`mod@fuse`]), the reverse-mode
//! autodiff driver and optimiser nodes
//! ([`autodiff`]), and host-side initial values ([`init`]). Nothing here
//! touches the GPU; `crate::exec` plans the memory and its dispatch table maps
//! each [`Op`] to one GPU op call.

pub mod autodiff;
pub mod builder;
pub mod fuse;
pub mod infer;
pub mod init;
pub mod ir;
pub mod ops;

#[cfg(test)]
mod tests;

pub use autodiff::{
    append_optimizer, append_optimizer_amp, backward, check_kernel_ops, Gradients, Optimizer,
};
pub use fuse::{fuse, FuseReport};
pub use init::{init_graph, init_tensor, Init};
pub use ir::{Graph, Node, NodeId, StateRole, Value, ValueId, ValueKind};
pub use ops::{Op, OpSpec};
