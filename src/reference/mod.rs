//! Naive CPU versions of every op, f64 accumulation, same names and argument
//! order as the GPU ops. They define what the kernels must compute.

pub mod conv;
pub mod fd;
pub mod activation;
pub mod pool;
pub mod tensor;
pub mod upsample;
