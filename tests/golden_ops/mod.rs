//! The golden runner's parts (see `tests/golden.rs`): the manifest plumbing
//! (`harness`), the comparison rule and its mixed-precision terms (`compare`),
//! one adapter file per op family, the case loop (`runner`) and the verdict.

pub mod activation;
pub mod compare;
pub mod conv;
pub mod harness;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod runner;
pub mod tensor;
pub mod upsample;
pub mod verdict;
