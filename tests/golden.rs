//! Golden-value runner: checks the GPU ops against values computed by JAX in
//! float64 (`tools/make_goldens.py`; format in `../shared/golden/SCHEMA.md`).
//!
//! ```text
//! cargo test --release --test golden                       # the set in tests/golden/
//! WUNET_GOLDEN_DIR=path/to/set cargo test --release --test golden
//! cargo test --release --test golden -- conv2d_03          # only ids containing a filter
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
//! # Adding an op
//!
//! 1. Write `pub fn my_op(case: &Case) -> AdapterResult` in
//!    `tests/golden_ops/<family>.rs` (a new family file needs a `#[path]` module
//!    line below). Read inputs with `case.upload_f32("x")`,
//!    `case.upload_labels("labels")` (int64 `N,(D),H,W` -> I32 `N,1,(D),H,W`),
//!    `case.upload_indices("indices")` (int64 -> U32), the upstream gradient with
//!    `case.upload_grad_output("y")` (or `"loss"`), attrs with
//!    `case.attr_usizes / attr_usize / attr_f64 / attr_bool / attr_str`.
//!    Run the ops in one `case.ctx.run(|rec| ...)`, then put every expected
//!    tensor, read back with `case.read(&t)`, into `Produced.outputs` /
//!    `Produced.grads` under its manifest name (`"y"`, `"indices"`; grads by
//!    input name: `"x"`, `"weight"`, ...).
//! 2. For an attribute value the engine does not support, return
//!    `Err(Outcome::Skip(reason))`; engine errors (`?`) count as failures,
//!    except `Error::Unsupported`, which becomes a skip. A skip fails the run
//!    unless the case is `"optional": true` in the manifest (with its
//!    `"optional_reason"`; set by `optional=` in `tools/make_goldens.py`).
//! 3. Add the op name(s) to the `match` in `adapter()` below. Ops not listed
//!    there are skipped with "op <name> not implemented yet" (which fails the
//!    run unless their cases are optional).

mod common;

#[path = "golden_ops/activation.rs"]
mod activation;
#[path = "golden_ops/conv.rs"]
mod conv;
#[path = "golden_ops/harness.rs"]
mod harness;
#[path = "golden_ops/loss.rs"]
mod loss;
#[path = "golden_ops/norm.rs"]
mod norm;
#[path = "golden_ops/optim.rs"]
mod optim;
#[path = "golden_ops/pool.rs"]
mod pool;
#[path = "golden_ops/tensor.rs"]
mod tensor;
#[path = "golden_ops/upsample.rs"]
mod upsample;
#[path = "golden_ops/verdict.rs"]
mod verdict;

use harness::{compare, load, AdapterResult, Case, CompareFail, Outcome};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use verdict::{skip_line, Tally, Verdict};

type Adapter = fn(&Case) -> AdapterResult;

/// The one dispatch point: op name -> adapter.
fn adapter(op: &str) -> Option<Adapter> {
    Some(match op {
        "conv2d" | "conv3d" => conv::conv,
        "conv_transpose2d" | "conv_transpose3d" => conv::conv_transpose,
        "max_pool2d" | "max_pool3d" => pool::max_pool,
        "max_unpool2d" | "max_unpool3d" => pool::max_unpool,
        "avg_pool2d" | "avg_pool3d" => pool::avg_pool,
        "batch_norm2d" | "batch_norm3d" => norm::batch_norm,
        "instance_norm2d" | "instance_norm3d" => norm::instance_norm,
        "group_norm" => norm::group_norm,
        "relu" => activation::relu,
        "leaky_relu" => activation::leaky_relu,
        "sigmoid" => activation::sigmoid,
        "concat" => tensor::concat,
        "center_crop" => tensor::center_crop,
        "pad2d" | "pad3d" => tensor::pad,
        "upsample_nearest2d"
        | "upsample_nearest3d"
        | "upsample_bilinear2d"
        | "upsample_trilinear3d" => upsample::upsample,
        "softmax_cross_entropy" => loss::softmax_cross_entropy,
        "dice_loss" => loss::dice_loss,
        "sgd_step" => optim::sgd_step,
        "adam_step" | "adamw_step" => optim::adam_step,
        _ => return None,
    })
}

fn golden_dir() -> PathBuf {
    match std::env::var_os("WUNET_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("golden"),
    }
}

/// Run one case and print its lines (a skip's line is the caller's).
fn run_case(case: &Case) -> Verdict {
    let id = &case.spec.id;
    let Some(f) = adapter(&case.spec.op) else {
        return Verdict::Skip(format!("op {} not implemented yet", case.spec.op));
    };
    let produced = match catch_unwind(AssertUnwindSafe(|| f(case))) {
        Ok(Ok(p)) => p,
        Ok(Err(Outcome::Skip(reason))) => return Verdict::Skip(reason),
        Ok(Err(Outcome::Error(e))) => {
            println!("FAIL {id}: {e}");
            return Verdict::Fail;
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            println!("FAIL {id}: adapter panicked: {msg}");
            return Verdict::Fail;
        }
    };
    let mut failed = false;
    let mut worst = 0.0f64;
    let groups = [
        (&case.spec.outputs, &produced.outputs),
        (&case.spec.grads, &produced.grads),
    ];
    for (expected, got) in groups {
        for (name, spec) in expected {
            let tensor = spec.stem();
            let exp = match load(case.dir, spec) {
                Ok(e) => e,
                Err(e) => {
                    println!("FAIL {id} {tensor}: {e}");
                    failed = true;
                    continue;
                }
            };
            let Some(g) = got.get(name) else {
                println!("FAIL {id} {tensor}: the adapter produced no value for it");
                failed = true;
                continue;
            };
            match compare(spec, &exp, g) {
                Ok(r) => worst = worst.max(r),
                Err(CompareFail::Shape(msg)) => {
                    println!("FAIL {id} {tensor}: {msg}");
                    failed = true;
                }
                Err(CompareFail::Values(m)) => {
                    println!("FAIL {id} {tensor}: {m}");
                    println!("    {} of {} elements out of tolerance", m.bad, m.total);
                    failed = true;
                }
            }
        }
    }
    if failed {
        Verdict::Fail
    } else {
        println!("ok {id}: worst ratio {worst:.4}");
        Verdict::Pass(worst)
    }
}

fn main() {
    let dir = golden_dir();
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let manifest = match harness::load_manifest(&dir) {
        Ok(m) => m,
        Err(e) => {
            println!("golden: cannot read the case set: {e}");
            std::process::exit(1);
        }
    };
    let Some(ctx) = common::ctx() else {
        let reason = match wunet::Context::new(&wunet::ContextOptions::default()) {
            Err(e) => e.to_string(),
            Ok(_) => "the adapter came and went".to_string(),
        };
        println!("skip all: no GPU adapter ({reason})");
        return;
    };
    println!(
        "golden: {} ({} cases) on {}",
        dir.display(),
        manifest.cases.len(),
        ctx.describe()
    );
    let mut tally = Tally::default();
    for spec in &manifest.cases {
        if !filters.is_empty() && !filters.iter().any(|f| spec.id.contains(f.as_str())) {
            continue;
        }
        let case = Case {
            spec,
            dir: &dir,
            ctx,
        };
        let v = run_case(&case);
        if let Verdict::Skip(why) = &v {
            let reason = spec.optional_reason.as_deref();
            println!("{}", skip_line(&spec.id, why, spec.optional, reason));
        }
        tally.add(&spec.id, spec.optional, v);
    }
    let (lines, code) = tally.finish();
    for l in lines {
        println!("{l}");
    }
    if code != 0 {
        std::process::exit(code);
    }
}
