//! The case loop of the golden runner: dispatch, comparison, report (usage in
//! `tests/golden.rs`).

use super::compare::{compare, f16_slack, family, CompareFail, Slack};
use super::harness::{
    load, load_manifest, AdapterResult, Case, Host, Manifest, Outcome, Precision, Produced,
    TensorSpec,
};
use super::verdict::{skip_line, Tally, Verdict};
use super::{activation, conv, loss, norm, optim, pool, tensor, upsample};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use wunet::Context;

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

/// Ops without an F16 path: the mixed run runs them exactly as the f32 run
/// (and says so), with why.
fn f32_only(op: &str) -> Option<&'static str> {
    match op {
        "sgd_step" | "adam_step" | "adamw_step" => {
            Some("optimizer updates: parameters, gradients and state are f32 in mixed training")
        }
        _ => None,
    }
}

/// The precisions to run: `WUNET_GOLDEN_PRECISION` = `f32` (the default),
/// `mixed` or `both`.
fn precisions_from_env() -> Result<Vec<Precision>, String> {
    match std::env::var("WUNET_GOLDEN_PRECISION").as_deref() {
        Err(_) | Ok("") | Ok("f32") => Ok(vec![Precision::F32]),
        Ok("mixed") => Ok(vec![Precision::Mixed]),
        Ok("both") => Ok(vec![Precision::F32, Precision::Mixed]),
        Ok(v) => Err(format!(
            "WUNET_GOLDEN_PRECISION={v:?} (want f32, mixed or both)"
        )),
    }
}

/// `WUNET_GOLDEN_VERBOSE=1`: the mixed run prints every tensor's ratios and f16 term.
fn verbose() -> bool {
    std::env::var_os("WUNET_GOLDEN_VERBOSE").is_some_and(|v| v != "0")
}

fn golden_dir() -> PathBuf {
    match std::env::var_os("WUNET_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("golden"),
    }
}

/// What became of one case, with its worst ratio against the manifest's
/// tolerance alone (the f32 rule) when it passed.
struct Ran {
    verdict: Verdict,
    bare: f64,
}

/// Run one case and print its lines (a skip's line is the caller's).
fn run_case(case: &Case) -> Ran {
    let id = &case.spec.id;
    let fail = Ran {
        verdict: Verdict::Fail,
        bare: 0.0,
    };
    let produced = match produce(case) {
        Ok(p) => p,
        Err(ran) => return ran,
    };
    let mixed = case.precision == Precision::Mixed && f32_only(&case.spec.op).is_none();
    if mixed && case.act_uploads.get() == 0 {
        println!("FAIL {id}: the adapter uploaded no activation (mixed run: use upload_act)");
        return fail;
    }
    let mut failed = false;
    let mut worst = 0.0f64;
    let mut bare = 0.0f64;
    let groups = [
        (false, &case.spec.outputs, &produced.outputs),
        (true, &case.spec.grads, &produced.grads),
    ];
    for (grad, expected, got) in groups {
        for (name, spec) in expected {
            match check_tensor(case, mixed, grad, name, spec, got.get(name)) {
                Some((r, b)) => (worst, bare) = (worst.max(r), bare.max(b)),
                None => failed = true,
            }
        }
    }
    if failed {
        return fail;
    }
    match (case.precision, f32_only(&case.spec.op)) {
        (Precision::Mixed, Some(_)) => println!("ok {id}: worst ratio {worst:.4} [ran in f32]"),
        _ => println!("ok {id}: worst ratio {worst:.4}"),
    }
    Ran {
        verdict: Verdict::Pass(worst),
        bare,
    }
}

/// The case's adapter run, or the case's outcome when it skipped, failed or
/// panicked (the failure's line printed).
fn produce(case: &Case) -> Result<Produced, Ran> {
    let id = &case.spec.id;
    let fail = Ran {
        verdict: Verdict::Fail,
        bare: 0.0,
    };
    let Some(f) = adapter(&case.spec.op) else {
        return Err(Ran {
            verdict: Verdict::Skip(format!("op {} not implemented yet", case.spec.op)),
            bare: 0.0,
        });
    };
    match catch_unwind(AssertUnwindSafe(|| f(case))) {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(Outcome::Skip(reason))) => Err(Ran {
            verdict: Verdict::Skip(reason),
            bare: 0.0,
        }),
        Ok(Err(Outcome::Error(e))) => {
            println!("FAIL {id}: {e}");
            Err(fail)
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            println!("FAIL {id}: adapter panicked: {msg}");
            Err(fail)
        }
    }
}

/// One expected tensor against what the adapter produced: the worst ratio to
/// the tolerance (with the f16 slack in mixed runs) and to the f32 tolerance
/// alone, or `None` after printing why it failed.
fn check_tensor(
    case: &Case,
    mixed: bool,
    grad: bool,
    name: &str,
    spec: &TensorSpec,
    got: Option<&Host>,
) -> Option<(f64, f64)> {
    let (id, tensor) = (&case.spec.id, spec.stem());
    let exp = match load(case.dir, spec) {
        Ok(e) => e,
        Err(e) => {
            println!("FAIL {id} {tensor}: {e}");
            return None;
        }
    };
    let Some(g) = got else {
        println!("FAIL {id} {tensor}: the adapter produced no value for it");
        return None;
    };
    let slack = if mixed && !spec.exact {
        match f16_slack(case, name, grad, spec) {
            Ok(s) => s,
            Err(Outcome::Error(e) | Outcome::Skip(e)) => {
                println!("FAIL {id} {tensor}: {e}");
                return None;
            }
        }
    } else {
        Slack::NONE
    };
    let f16_term = || {
        format!(
            "f16 term: atol +{:.3e}, rtol +{:.3e} (manifest atol {:.3e}, rtol {:.3e})",
            slack.atol,
            slack.rtol,
            spec.atol.unwrap_or(0.0),
            spec.rtol.unwrap_or(0.0)
        )
    };
    match compare(spec, &exp, g, slack) {
        Ok(r) => {
            let b = match compare(spec, &exp, g, Slack::NONE) {
                Ok(b) => b,
                Err(CompareFail::Values(m)) => m.ratio,
                Err(CompareFail::Shape(_)) => f64::INFINITY,
            };
            if mixed && verbose() {
                println!(
                    "    {tensor}: ratio {r:.4}, {b:.4} against the f32 tolerance alone; {}",
                    f16_term()
                );
            }
            Some((r, b))
        }
        Err(CompareFail::Shape(msg)) => {
            println!("FAIL {id} {tensor}: {msg}");
            None
        }
        Err(CompareFail::Values(m)) => {
            println!("FAIL {id} {tensor}: {m}");
            println!("    {} of {} elements out of tolerance", m.bad, m.total);
            if mixed {
                println!("    {}", f16_term());
            }
            None
        }
    }
}

/// Run the case set in `precision`; the exit code of that run (0 or 1).
fn run(
    ctx: &Context,
    dir: &Path,
    manifest: &Manifest,
    precision: Precision,
    filters: &[String],
) -> i32 {
    let mut tally = Tally::default();
    match precision {
        Precision::F32 => println!(
            "golden: {} ({} cases) on {}",
            dir.display(),
            manifest.cases.len(),
            ctx.describe()
        ),
        Precision::Mixed => {
            if !ctx.has_f16() {
                println!(
                    "skip: mixed precision needs SHADER_F16 on {}",
                    ctx.describe()
                );
                return 0;
            }
            println!(
                "golden (mixed: F16 activations and activation gradients): {} ({} cases) on {}",
                dir.display(),
                manifest.cases.len(),
                ctx.describe()
            );
            tally.label = Some("mixed".into());
        }
    }
    for spec in &manifest.cases {
        if !filters.is_empty() && !filters.iter().any(|f| spec.id.contains(f.as_str())) {
            continue;
        }
        let case = Case {
            spec,
            dir,
            ctx,
            precision,
            act_uploads: Cell::new(0),
        };
        let Ran { verdict, bare } = run_case(&case);
        match (&verdict, precision) {
            (Verdict::Skip(why), _) => {
                let reason = spec.optional_reason.as_deref();
                println!("{}", skip_line(&spec.id, why, spec.optional, reason));
            }
            (Verdict::Pass(r), Precision::Mixed) => match f32_only(&spec.op) {
                Some(why) => tally.in_f32.push((spec.id.clone(), why.to_string())),
                None => tally.family(family(&spec.op), &spec.id, *r, bare),
            },
            _ => {}
        }
        tally.add(&spec.id, spec.optional, verdict);
    }
    let (lines, code) = tally.finish();
    for l in lines {
        println!("{l}");
    }
    code
}

/// The runner's `main`: run the case set in `only`, or else in the precisions
/// of `WUNET_GOLDEN_PRECISION` (filters from the command line); exit 1 if any
/// run failed.
pub fn main(only: Option<Precision>) {
    let precisions = match only {
        Some(p) => vec![p],
        None => match precisions_from_env() {
            Ok(p) => p,
            Err(e) => {
                println!("golden: {e}");
                std::process::exit(1);
            }
        },
    };
    let dir = golden_dir();
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let manifest = match load_manifest(&dir) {
        Ok(m) => m,
        Err(e) => {
            println!("golden: cannot read the case set: {e}");
            std::process::exit(1);
        }
    };
    let Some(ctx) = crate::common::ctx() else {
        let reason = match wunet::Context::new(&wunet::ContextOptions::default()) {
            Err(e) => e.to_string(),
            Ok(_) => "the adapter came and went".to_string(),
        };
        println!("skip all: no GPU adapter ({reason})");
        return;
    };
    let mut code = 0;
    for p in precisions {
        code = code.max(run(ctx, &dir, &manifest, p, &filters));
    }
    if code != 0 {
        std::process::exit(code);
    }
}
