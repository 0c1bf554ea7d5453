//! The golden runner's verdict (tests/golden_ops/verdict.rs): a skipped case
//! fails the run unless the manifest marks it optional; and every optional
//! case of tests/golden/cases.json says why.

#[path = "golden_ops/verdict.rs"]
mod verdict;

use verdict::{skip_line, Tally, Verdict};

#[test]
fn passes_and_optional_skips_exit_0() {
    let mut t = Tally::default();
    t.add("conv2d_01", false, Verdict::Pass(0.5));
    t.add("conv2d_02", false, Verdict::Pass(0.7));
    t.add(
        "conv2d_09_groups2",
        true,
        Verdict::Skip("groups = 2".into()),
    );
    let (lines, code) = t.finish();
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(
        lines,
        [
            "worst passing ratio 0.7000 (conv2d_02)",
            "golden: 2 passed, 0 failed, 1 skipped"
        ]
    );
}

#[test]
fn a_skipped_required_case_fails_the_run_and_is_named() {
    let mut t = Tally::default();
    t.add("relu_01", false, Verdict::Pass(0.1));
    t.add(
        "conv2d_09_groups2",
        true,
        Verdict::Skip("groups = 2".into()),
    );
    t.add(
        "dice_loss_02_sample",
        false,
        Verdict::Skip("reduce_over \"sample\" is not supported".into()),
    );
    let (lines, code) = t.finish();
    assert_eq!(code, 1, "{lines:?}");
    let fail: Vec<&String> = lines.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fail.len(), 1, "{lines:?}");
    assert!(
        fail[0].contains("dice_loss_02_sample") && fail[0].contains("reduce_over"),
        "{}",
        fail[0]
    );
    assert_eq!(
        lines.last().unwrap(),
        "golden: 1 passed, 0 failed, 2 skipped (1 of them required)"
    );
}

#[test]
fn a_failure_fails_the_run() {
    let mut t = Tally::default();
    t.add("relu_01", false, Verdict::Pass(0.1));
    t.add("relu_02", false, Verdict::Fail);
    assert_eq!(t.finish().1, 1);
    // no cases at all (a filter that matches nothing) is not a failure
    assert_eq!(Tally::default().finish().1, 0);
}

#[test]
fn skip_lines_say_optional_or_required() {
    assert_eq!(
        skip_line(
            "c",
            "groups = 2 not supported",
            true,
            Some("no grouped convs")
        ),
        "skip c: groups = 2 not supported [optional: no grouped convs]"
    );
    assert!(skip_line("c", "x", false, None).starts_with("SKIP c: x [a required case"));
}

#[test]
fn a_mixed_run_reports_families_and_its_f32_cases() {
    let mut t = Tally {
        label: Some("mixed".into()),
        ..Tally::default()
    };
    t.add("conv2d_01", false, Verdict::Pass(0.2));
    t.family("conv", "conv2d_01", 0.2, 3.0);
    t.add("conv3d_01", false, Verdict::Pass(0.3));
    t.family("conv", "conv3d_01", 0.3, 2.0);
    t.add("relu_01", false, Verdict::Pass(0.1));
    t.family("relu", "relu_01", 0.1, 0.5);
    t.add("sgd_step_01", false, Verdict::Pass(0.01));
    t.in_f32.push(("sgd_step_01".into(), "optimizer".into()));
    let (lines, code) = t.finish();
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(
        lines,
        [
            "family conv: worst ratio 0.3000 (conv3d_01); 3.0000 against the f32 tolerance alone",
            "family relu: worst ratio 0.1000 (relu_01); 0.5000 against the f32 tolerance alone",
            "ran in f32 (no F16 path: optimizer): 1 cases: sgd_step_01",
            "worst passing ratio 0.3000 (conv3d_01)",
            "golden (mixed): 4 passed (1 of them in f32), 0 failed, 0 skipped"
        ]
    );
}

/// The manifest: optional cases carry a reason (and the only ones today are
/// the grouped convolutions, which the engine does not have).
#[test]
fn optional_cases_of_the_manifest_say_why() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cases.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut optional = Vec::new();
    for c in m["cases"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        match c["optional"].as_bool() {
            Some(true) => {
                let why = c["optional_reason"].as_str().unwrap_or("");
                assert!(!why.is_empty(), "{id}: optional without an optional_reason");
                optional.push(id);
            }
            Some(false) => assert!(c.get("optional_reason").is_none(), "{id}"),
            None => panic!("{id}: no boolean 'optional'"),
        }
    }
    assert_eq!(
        optional,
        [
            "conv2d_09_k3_s2_p1_groups2",
            "conv3d_06_k3_p1_groups2",
            "conv_transpose2d_07_k3_s2_p1_op1_groups2",
            "conv_transpose3d_03_k2_s2_groups2"
        ]
    );
}
