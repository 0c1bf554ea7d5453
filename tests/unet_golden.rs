//! The tiny U-Net gradient golden (`tests/golden/unet_tiny/`, made with JAX by
//! `tools/make_goldens.py`; see `tests/golden/README.md`): one training step of
//! a 2-level U-Net (base 4, same padding, training-mode batch norm, conv and
//! up-conv biases, mean cross-entropy) on the graph executor, with every
//! parameter loaded from the golden files by name, against the golden loss,
//! logits and the gradient of every parameter, each with its manifest
//! tolerance (`|got - exp| <= atol + rtol*|exp|`).
//!
//! ```text
//! cargo test --release --test unet_golden -- --nocapture   # prints the worst ratio per tensor
//! ```
//!
//! The golden's `grad_x` (gradient w.r.t. the input image) is not checked: the
//! executor's autodiff differentiates trainable parameters only.

mod common;
#[allow(dead_code)] // the runner's comparison rule (and its mixed-precision terms, unused here)
#[path = "golden_ops/compare.rs"]
mod compare;
#[allow(dead_code)] // the runner's plumbing; this test uses the loading
#[path = "golden_ops/harness.rs"]
mod harness;

use compare::{compare, CompareFail, Slack};
use harness::{load, CaseSpec, Data, Host};
use std::collections::BTreeSet;
use std::path::PathBuf;
use wunet::model_io::checkpoint::{Checkpoint, NamedTensor};
use wunet::models::{ChannelScheme, Loss, Norm, Padding, UNetConfig, Upsampling};
use wunet::train::session::{Session, SessionSpec};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/unet_tiny")
}

fn f32s(h: &Host) -> &[f32] {
    match &h.data {
        Data::F32(v) => v,
        Data::I64(_) => panic!("expected a float32 tensor"),
    }
}

/// The network of the golden: Ronneberger channels, base 4, depth 2, same
/// padding, training-mode batch norm, conv and up-conv biases, 1 -> 2 classes.
fn config(dims: usize, eps: f32) -> UNetConfig {
    let mut c = UNetConfig::ronneberger2015();
    c.dims = dims;
    c.in_channels = 1;
    c.classes = 2;
    c.base = 4;
    c.depth = 2;
    c.padding = Padding::Same;
    c.norm = Norm::Batch;
    c.upsample = Upsampling::ConvTranspose;
    c.conv_bias = true;
    c.upconv_bias = true;
    c.channels = ChannelScheme::Ronneberger;
    c.residual = false;
    c.dropout = 0.0;
    c.norm_eps = eps;
    c
}

/// Compare one tensor; add its line (worst ratio) to `report`; `Err` with the reason if it fails.
fn check(
    report: &mut String,
    what: &str,
    spec: &harness::TensorSpec,
    got: &Host,
) -> Result<f64, String> {
    let exp = load(&dir(), spec)?;
    let (line, res) = match compare(spec, &exp, got, Slack::NONE) {
        Ok(r) => (format!("  ok   {what:<26} worst ratio {r:.4}"), Ok(r)),
        Err(CompareFail::Shape(m)) => (
            format!("  FAIL {what:<26} {m}"),
            Err(format!("{what}: {m}")),
        ),
        Err(CompareFail::Values(m)) => (
            format!(
                "  FAIL {what:<26} {m}; {} of {} elements out of tolerance",
                m.bad, m.total
            ),
            Err(format!("{what}: {m}")),
        ),
    };
    report.push_str(&line);
    report.push('\n');
    res
}

fn run(id: &str) {
    let Some(ctx) = common::ctx() else { return };
    let manifest = harness::load_manifest(&dir()).expect("unet_tiny manifest");
    let spec: &CaseSpec = manifest
        .cases
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no case {id} in the manifest"));
    let dims = spec.attrs["dims"].as_u64().expect("attrs.dims") as usize;
    let eps = spec.attrs["bn_eps"].as_f64().unwrap_or(1e-5) as f32;
    let x = load(&dir(), &spec.inputs["x"]).expect("x");
    let labels = load(&dir(), &spec.inputs["labels"]).expect("labels");
    let batch = x.shape[0];
    let spatial = x.shape[2..].to_vec();
    assert_eq!(spatial.len(), dims, "x {:?} is not {dims}-D", x.shape);

    let mut s = Session::new(
        ctx,
        &SessionSpec {
            config: config(dims, eps),
            batch,
            spatial: spatial.clone(),
            loss: Loss::cross_entropy(),
            optimizer: None,
            seed: 1,
            keep_grads: true,
            precision: wunet::shape::Precision::F32,
        },
    )
    .expect("session");

    let theirs = golden_params(id, spec, &s);
    let ck = golden_checkpoint(id, spec, &s, &theirs);
    s.exec.import(ctx, &ck).expect("import");

    let lab: Vec<i32> = match &labels.data {
        Data::I64(v) => v
            .iter()
            .map(|&l| i32::try_from(l).expect("label fits i32"))
            .collect(),
        Data::F32(_) => panic!("labels are not int64"),
    };
    s.set_batch(ctx, f32s(&x), &lab, None).expect("set_batch");
    s.step(ctx, 0.0).expect("step");

    let mut report = format!("{id} on {}:\n", ctx.describe());
    let mut failures = Vec::new();
    let mut note = |r: Result<f64, String>| {
        if let Err(e) = r {
            failures.push(e);
        }
    };
    let loss = s.read_loss(ctx).expect("loss");
    note(check(
        &mut report,
        "loss",
        &spec.outputs["loss"],
        &Host::f32(vec![], vec![loss]),
    ));
    let logits_shape = s.net.graph.value(s.net.logits).shape.logical();
    let logits = s.read_logits(ctx).expect("logits");
    note(check(
        &mut report,
        "logits",
        &spec.outputs["logits"],
        &Host::f32(logits_shape, logits),
    ));
    let mut checked = 0;
    for (p, gv) in &s.grads {
        let v = s.net.graph.value(*p);
        let Some(es) = spec.grads.get(&v.name) else {
            note(Err(format!("no golden gradient for {}", v.name)));
            continue;
        };
        let got = s.exec.read_f32(ctx, *gv).expect("gradient");
        note(check(
            &mut report,
            &format!("grad {}", v.name),
            es,
            &Host::f32(v.shape.logical(), got),
        ));
        checked += 1;
    }
    report.push_str(&format!(
        "  ({checked} parameter gradients checked; grad_x not checked: the executor only differentiates parameters)"
    ));
    println!("{report}");
    assert_eq!(
        checked,
        theirs.len(),
        "{id}: some parameter gradients were not checked"
    );
    assert!(failures.is_empty(), "{id}: {failures:#?}");
}

/// The golden's parameter names: exactly the graph's trainable parameters,
/// each with a gradient.
fn golden_params(id: &str, spec: &CaseSpec, s: &Session) -> BTreeSet<String> {
    let g = &s.net.graph;
    let ours: BTreeSet<String> = g
        .trainable_params()
        .iter()
        .map(|&p| g.value(p).name.clone())
        .collect();
    let theirs: BTreeSet<String> = spec
        .inputs
        .keys()
        .filter(|k| *k != "x" && *k != "labels")
        .cloned()
        .collect();
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{id}: parameter names differ: only in the engine's graph {only_ours:?}, only in the golden {only_theirs:?}"
    );
    assert_eq!(
        s.grads.len(),
        ours.len(),
        "{id}: every parameter must get a gradient"
    );

    theirs
}

/// Every golden parameter loaded by name (shapes must match the graph's).
fn golden_checkpoint(
    id: &str,
    spec: &CaseSpec,
    s: &Session,
    theirs: &BTreeSet<String>,
) -> Checkpoint {
    let g = &s.net.graph;
    let mut ck = Checkpoint::default();
    for name in theirs {
        let h = load(&dir(), &spec.inputs[name]).expect("parameter file");
        let p = g.find(name).expect("checked above");
        assert_eq!(
            h.shape,
            g.value(p).shape.logical(),
            "{id}: parameter {name} has shape {:?} in the golden but {} in the graph",
            h.shape,
            g.value(p).shape
        );
        ck.tensors.push(NamedTensor {
            name: name.clone(),
            shape: h.shape.clone(),
            data: f32s(&h).to_vec(),
        });
    }
    ck
}

#[test]
fn unet_tiny_2d() {
    run("unet_tiny_2d");
}

#[test]
fn unet_tiny_3d() {
    run("unet_tiny_3d");
}
