//! The golden suite in mixed precision (F16 activations and activation
//! gradients, F32 weights, statistics, losses and parameter gradients): the
//! runner of `tests/golden.rs` with `WUNET_GOLDEN_PRECISION=mixed`, as its own
//! target so that a plain `cargo test --release` runs it. Tolerances: the
//! manifest's plus the f16 terms of `golden_ops/compare.rs`. Prints `skip:
//! mixed precision needs SHADER_F16 on <adapter>` (and passes) where the
//! adapter cannot store f16.
//!
//! ```text
//! cargo test --release --test golden_mixed
//! cargo test --release --test golden_mixed -- batch_norm   # only ids containing a filter
//! ```

mod common;
mod golden_ops;

fn main() {
    golden_ops::runner::main(Some(golden_ops::harness::Precision::Mixed));
}
