//! Naive CPU versions of every op, f64 accumulation, same names and argument
//! order as the GPU ops. They define what the kernels must compute.

pub mod activation;
pub mod conv;
pub mod fd;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod tensor;
pub mod upsample;
