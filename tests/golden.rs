//! Golden-value runner: checks the GPU ops against values computed by JAX in
//! float64 (`tools/make_goldens.py`; format in `../shared/golden/SCHEMA.md`).
//!
//! ```text
//! cargo test --release --test golden                       # the set in tests/golden/
//! WUNET_GOLDEN_DIR=path/to/set cargo test --release --test golden
//! cargo test --release --test golden -- conv2d_03          # only ids containing a filter
//! WUNET_GOLDEN_PRECISION=mixed cargo test --release --test golden   # mixed precision
//! cargo test --release --test golden_mixed                 # the same (tests/golden_mixed.rs)
//! ```
//!
//! It is a plain `main` (`harness = false`). Each case of the manifest is run
//! by the adapter of its `op`; every expected output and gradient is compared
//! with `|got - exp| <= atol + rtol*|exp|` (NaN/Inf, a shape mismatch or a
//! missing tensor fail; `exact` integer tensors must match). It prints
//! `ok <id>`, `skip <id>: <reason>` or `FAIL <id> <tensor>: ...` per case and
//! ends with `golden: P passed, F failed, S skipped`. The exit code is 1 on any
//! failure, and when a case that the manifest does not mark `"optional": true`
//! is skipped (printed `SKIP <id>: <reason>`, then a `FAIL` line naming it;
//! the decision is in `golden_ops/verdict.rs`, tested by
//! `tests/golden_verdict.rs`). Without a GPU adapter it prints `skip all: ...`
//! and exits 0.
//!
//! # Precision
//!
//! `WUNET_GOLDEN_PRECISION` = `f32` (the default), `mixed` or `both` (one run
//! after the other, two summaries, exit 1 if either fails). The mixed run
//! uploads activations and activation gradients as F16 and expects activation
//! outputs in F16 (weights, statistics, losses, parameter gradients and
//! optimiser state stay F32), adds the f16 error terms of
//! `golden_ops/compare.rs` to the manifest's tolerance, prints the worst ratio
//! per op family (and against the f32 tolerance alone), and runs the ops
//! without an F16 path (optimizer steps) in f32, saying so. Its closing line
//! is `golden (mixed): P passed (Q of them in f32), F failed, S skipped`. On an
//! adapter without `SHADER_F16` it prints `skip: mixed precision needs
//! SHADER_F16 on <adapter>` and passes. `tests/golden_mixed.rs` is the mixed
//! run as its own test target, so `cargo test --release` runs both.
//!
//! # Adding an op
//!
//! 1. Write `pub fn my_op(case: &Case) -> AdapterResult` in
//!    `tests/golden_ops/<family>.rs` (a new family file needs a `pub mod`
//!    line in `golden_ops/mod.rs`). Say per tensor what it is: activations
//!    with `case.upload_act("x")` and the upstream gradient of an activation
//!    output with `case.upload_grad_act("y")` (F16 in the mixed run); weights,
//!    biases, gamma/beta, statistics and optimiser state with
//!    `case.upload_f32("weight")`; `case.upload_map_f32("weight_map")` (F32 map
//!    `N,1,(D),H,W`), `case.upload_labels("labels")` (int64 `N,(D),H,W` -> I32
//!    `N,1,(D),H,W`), `case.upload_indices("indices")` (int64 -> U32); a loss's
//!    upstream gradient with `case.grad_output("loss")` (host); attrs with
//!    `case.attr_usizes / attr_usize / attr_f64 / attr_bool / attr_str`;
//!    `case.act_dtype()` for a tensor you allocate. Run the ops in one
//!    `case.ctx.run(|rec| ...)`, then put every expected tensor, read back
//!    with `case.read_act(&t)` (activation outputs and gradients: the read
//!    checks the run's dtype), `case.read_f32(&t)` (F32 in both runs) or
//!    `case.read_int(&t)`, into `Produced.outputs` / `Produced.grads` under its
//!    manifest name (`"y"`, `"indices"`; grads by input name: `"x"`,
//!    `"weight"`, ...).
//! 2. For an attribute value the engine does not support, return
//!    `Err(Outcome::Skip(reason))`; engine errors (`?`) count as failures,
//!    except `Error::Unsupported`, which becomes a skip. A skip fails the run
//!    unless the case is `"optional": true` in the manifest (with its
//!    `"optional_reason"`; set by `optional=` in `tools/make_goldens.py`).
//! 3. Add the op name(s) to the `match` in `adapter()` in
//!    `golden_ops/runner.rs`. Ops not listed there are skipped with "op <name>
//!    not implemented yet" (which fails the run unless their cases are
//!    optional). An op without an F16 path goes into `f32_only()` there.
//! 4. Give each of its expected float tensors an f16 term in `f16_slack`
//!    (`golden_ops/compare.rs`), derived like the others; without one its
//!    mixed run fails, naming the tensor.

mod common;
mod golden_ops;

fn main() {
    golden_ops::runner::main(None);
}
