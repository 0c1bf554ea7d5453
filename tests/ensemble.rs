//! Ensembles (`wunet predict|eval --checkpoint A --checkpoint B`): the
//! probabilities are the members' mean, eval scores them, and members that
//! disagree on input or output, block-wise Zarr prediction and `--split
//! val` over different held-out images are clear errors.

mod common;
use common::{
    assert_close, ctx, eval_labelled, labelled_pngs, npy_f32, predict_args, run_wunet as wunet,
    tiny_model, tmp_dir, train_tiny,
};
use std::path::Path;
use wunet::model_io::{checkpoint, InferMeta};

/// `wunet predict --checkpoint CK...` (each checkpoint after its own flag
/// when `repeated`, else all after one) that must succeed; the
/// probabilities it wrote to `dir/<name>.npy` (classes x y x x, flattened).
fn probabilities(dir: &Path, cks: &[&Path], repeated: bool, name: &str) -> Vec<f32> {
    let p = dir.join(format!("{name}.npy"));
    let mut a = vec!["predict".to_string()];
    for (k, ck) in cks.iter().enumerate() {
        if k == 0 || repeated {
            a.push("--checkpoint".into());
        }
        a.push(ck.display().to_string());
    }
    for (flag, path) in [
        ("--input", dir.join("images/s0.png")),
        ("--output", dir.join(format!("{name}.png"))),
        ("--probabilities", p.clone()),
    ] {
        a.extend([flag.to_string(), path.display().to_string()]);
    }
    let args: Vec<&str> = a.iter().map(String::as_str).collect();
    let (stdout, stderr, ok) = wunet(&args);
    assert!(ok, "{stdout}\n{stderr}");
    let (shape, v) = npy_f32(&p);
    assert_eq!(shape, [2, 56, 72]);
    v
}

#[test]
fn an_ensemble_predicts_the_mean_of_its_members() {
    if ctx().is_none() {
        return;
    }
    let dir = tmp_dir("ensemble", "mean");
    labelled_pngs(&dir);
    // two members that differ in seed and width
    let a = tiny_model(&dir, "a", &["--seed", "5", "--base", "4"]);
    let b = tiny_model(&dir, "b", &["--seed", "6", "--base", "6"]);
    let (pa, pb) = (
        probabilities(&dir, &[&a], true, "pa"),
        probabilities(&dir, &[&b], true, "pb"),
    );
    let mean: Vec<f32> = pa.iter().zip(&pb).map(|(x, y)| (x + y) / 2.0).collect();
    assert!(
        pa.iter().zip(&pb).any(|(x, y)| (x - y).abs() > 1e-3),
        "the members must differ for the mean to show"
    );
    // the flag repeated, and several paths after one flag
    let repeated = probabilities(&dir, &[&a, &b], true, "pab");
    assert_close("ensemble = mean of members", &repeated, &mean, 1e-6, 1e-6);
    let listed = probabilities(&dir, &[&a, &b], false, "pab2");
    assert_close("--checkpoint A B", &listed, &mean, 1e-6, 1e-6);

    // eval scores the ensemble: its mean Dice differs from each member's
    let dice = |cks: &[&Path]| {
        let (stdout, stderr, ok) = eval_labelled(cks, &dir, &[]);
        assert!(ok, "{stdout}\n{stderr}");
        if cks.len() > 1 {
            assert!(stderr.contains("ensemble: member 2/2"), "{stderr}");
        }
        let line = stdout
            .lines()
            .find(|l| l.starts_with("mean_dice: "))
            .unwrap();
        line["mean_dice: ".len()..].parse::<f64>().unwrap()
    };
    let (da, db, dab) = (dice(&[&a]), dice(&[&b]), dice(&[&a, &b]));
    assert!(
        dab != da && dab != db,
        "ensemble {dab}, members {da} / {db}"
    );

    // --split val: the same held-out images for both members
    let (stdout, stderr, ok) = eval_labelled(&[&a, &b], &dir, &["--split", "val"]);
    assert!(
        ok && stdout.starts_with("pixel_error: "),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn members_that_disagree_are_refused_with_both_values() {
    if ctx().is_none() {
        return;
    }
    let dir = tmp_dir("ensemble", "refuse");
    labelled_pngs(&dir);
    let a = tiny_model(&dir, "a", &["--seed", "5", "--base", "4"]);
    // another normalisation, as another training recipe would store it
    let mut ck = checkpoint::load(&a).unwrap();
    let mut meta = InferMeta::from_checkpoint(&ck, &a).unwrap();
    meta.normalize = "percentile".into();
    meta.store(&mut ck).unwrap();
    let other = dir.join("percentile.safetensors");
    checkpoint::save(&other, &ck).unwrap();
    let img = dir.join("images/s0.png");
    let a_out = predict_args(
        &a,
        &img,
        &dir.join("x.png"),
        &["--checkpoint", other.to_str().unwrap()],
    );
    let args: Vec<&str> = a_out.iter().map(String::as_str).collect();
    let (_, stderr, ok) = wunet(&args);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("percentile.safetensors")
            && stderr.contains("normalize percentile (")
            && stderr.contains(": zscore)"),
        "{stderr}"
    );
    assert!(!dir.join("x.png").exists());

    // cross-validation folds hold out other images: --split val has no
    // common validation part
    let (_, said) = train_tiny(
        &dir.join("c"),
        &["--seed", "7", "--base", "4", "--fold", "1/2"],
    );
    assert!(said.contains("(fold 1/2)"), "{said}");
    let c = dir.join("c/best.safetensors");
    let (_, stderr, ok) = eval_labelled(&[&a, &c], &dir, &["--split", "val"]);
    assert!(
        !ok && stderr.contains("--split val: this checkpoint held out"),
        "{stderr}"
    );

    // one image split from the other end: the same name and size, other
    // pixels, so no common validation part either
    let one = dir.join("one");
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(one.join(sub)).unwrap();
        std::fs::copy(dir.join(sub).join("s0.png"), one.join(sub).join("s0.png")).unwrap();
    }
    let mut ck = checkpoint::load(&a).unwrap();
    let cfg = ck.meta["config"].replace("val_part = \"last\"", "val_part = \"first\"");
    assert_ne!(cfg, ck.meta["config"]);
    ck.meta.insert("config".into(), cfg);
    let first_part = dir.join("first-part.safetensors");
    checkpoint::save(&first_part, &ck).unwrap();
    let (_, stderr, ok) = eval_labelled(&[&a, &first_part], &one, &["--split", "val"]);
    assert!(
        !ok && stderr.contains("--split val: this checkpoint held out [\"s0 [1, 56, 7]\"]"),
        "{stderr}"
    );

    // block-wise Zarr prediction takes one checkpoint
    let (_, stderr, ok) = wunet(&[
        "predict",
        "--checkpoint",
        a.to_str().unwrap(),
        c.to_str().unwrap(),
        "--input",
        dir.join("in.zarr").to_str().unwrap(),
        "--output",
        dir.join("out.zarr").to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.contains("takes one checkpoint, not an ensemble of 2"),
        "{stderr}"
    );
}
