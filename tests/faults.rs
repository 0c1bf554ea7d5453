//! Bad input (issue 14), through the built `wunet` binary where the CLI
//! is what a user meets, else through the library: non-finite data and
//! checkpoints, label conventions, header sizes, devices and pipes, flag and
//! key ranges, checkpoint metadata. Runs, outputs and signals are in
//! `tests/faults_run.rs`; the loaders' fuzz test in `tests/fuzz_loaders.rs`.
//! GPU runs are tiny (a 4-step 2D run on 64x64 synthetic images, shared).

mod common;
#[path = "faults/support.rs"]
mod support;
use common::ctx;
use std::collections::BTreeMap;
use std::path::Path;
use support::*;
use wunet::data::dataset::{Dataset, DatasetOptions};
use wunet::data::io::{read_image, write_npy, write_png_gray16, write_png_gray8, write_tiff};
use wunet::data::Array3;
use wunet::infer::eval::Metrics;
use wunet::model_io::checkpoint::{self, Checkpoint, NamedTensor};

// ------------------------------------------------------------ 1. non-finite

#[test]
fn non_finite_images_are_refused_at_load_with_file_and_count() {
    let d = tmp("nan");
    let mut img = f32_image([2, 5, 6], |i| i as f32);
    img.data[7] = f32::NAN;
    img.data[40] = f32::INFINITY;
    img.data[41] = f32::NEG_INFINITY;
    for name in ["nan.npy", "nan.tif"] {
        let p = d.join(name);
        if name.ends_with("npy") {
            write_npy(&p, &img).unwrap();
        } else {
            write_tiff(&p, &img).unwrap();
        }
        let e = read_image(&p).unwrap_err().to_string();
        assert!(
            e.contains(name)
                && e.contains("3 of 60 values are not finite")
                && e.contains("(0, 1, 1)"),
            "{e}"
        );
    }
    // through `wunet train --data`: the same message, before any training
    write_npy(&d.join("vol_image.npy"), &img).unwrap();
    write_npy(
        &d.join("vol_labels.npy"),
        &labels_u8([2, 5, 6], |i| (i % 2) as u8),
    )
    .unwrap();
    std::fs::remove_file(d.join("nan.npy")).unwrap();
    std::fs::remove_file(d.join("nan.tif")).unwrap();
    let (_, stderr, code) = wunet(&["train", "--data", d.to_str().unwrap(), "--model", "unet3d"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("vol_image.npy") && stderr.contains("not finite"),
        "{stderr}"
    );
}

#[test]
fn checkpoints_with_non_finite_values_are_refused_by_predict_eval_and_resume() {
    // the library check names the tensor and the count
    let ck = Checkpoint {
        tensors: vec![NamedTensor {
            name: "head.bias".into(),
            shape: vec![3],
            data: vec![0.0, f32::NAN, f32::INFINITY],
        }],
        meta: BTreeMap::new(),
    };
    let e = ck
        .check_finite(Path::new("x.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("head.bias") && e.contains("2 non-finite"), "{e}");
    let Some(run) = trained() else { return };
    // a copy of the run whose last.safetensors holds a NaN
    let bad = tmp("nan-ckpt").join("run");
    std::fs::create_dir_all(&bad).unwrap();
    for f in ["config.toml", "log.csv"] {
        std::fs::copy(run.join(f), bad.join(f)).unwrap();
    }
    let bytes = std::fs::read(run.join("last.safetensors")).unwrap();
    let mut ck = load_unchecked(&bytes);
    let t = ck
        .tensors
        .iter_mut()
        .find(|t| t.name.ends_with("weight"))
        .unwrap();
    t.data[0] = f32::NAN;
    let name = t.name.clone();
    checkpoint::save(&bad.join("last.safetensors"), &ck).unwrap();
    let ckp = bad.join("last.safetensors");
    let data = png_folder("nan-ckpt-data", 2, |_, k| (k % 5 == 0) as u8);
    let img = data.join("images/s0.png");
    let out = bad.join("o.png");
    let runs: [Vec<&str>; 3] = [
        vec![
            "predict",
            "--checkpoint",
            ckp.to_str().unwrap(),
            "--input",
            img.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        vec![
            "eval",
            "--checkpoint",
            ckp.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        vec!["train", "--resume", "--out", bad.to_str().unwrap()],
    ];
    for args in runs {
        let (_, stderr, code) = wunet(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&name) && stderr.contains("non-finite"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!out.exists());
}

// ------------------------------------------------------------ 2. labels

#[test]
fn label_value_sets_are_checked_over_the_whole_dataset() {
    let o = DatasetOptions::default();
    // files that disagree (0/1 and 0/255)
    let d = png_folder("labels-disagree", 2, |i, k| match (i, k % 3 == 0) {
        (_, false) => 0,
        (0, true) => 1,
        _ => 255,
    });
    let e = Dataset::load(&d, &o).unwrap_err().to_string();
    assert!(
        e.contains("s0.png: {0, 1}")
            && e.contains("s1.png: {0, 255}")
            && e.contains("--class-values"),
        "{e}"
    );
    // a class map says what was meant
    let m = DatasetOptions {
        class_values: vec![0, 1, 255],
        ..Default::default()
    };
    let ds = Dataset::load(&d, &m).unwrap();
    assert_eq!(ds.n_classes, 3);
    assert!(ds.samples[1].labels.data.contains(&2));
    // one value only ("binary" task without a foreground)
    let d = png_folder("labels-one", 2, |_, _| 255);
    let e = Dataset::load(&d, &o).unwrap_err().to_string();
    assert!(
        e.contains("only the value 255") && e.contains("s1.png"),
        "{e}"
    );
    // 16-bit values
    let d = png_folder("labels-16", 1, |_, _| 0);
    let lab = Array3::from_vec(
        [1, 64, 64],
        (0..4096).map(|k| (k % 3) as u16 * 1000).collect(),
    )
    .unwrap();
    write_png_gray16(&d.join("labels/s0.png"), &lab).unwrap();
    let e = Dataset::load(&d, &o).unwrap_err().to_string();
    assert!(e.contains("{0, 1000, 2000}") && e.contains("s0.png"), "{e}");
    let m = DatasetOptions {
        class_values: vec![0, 1000, 2000],
        ..Default::default()
    };
    assert_eq!(Dataset::load(&d, &m).unwrap().n_classes, 3);
    // more distinct values than classes (instance ids)
    let d = png_folder("labels-many", 1, |_, k| (k % 200) as u8);
    let e = Dataset::load(&d, &o).unwrap_err().to_string();
    assert!(
        e.contains("200 distinct values") && e.contains("--classes"),
        "{e}"
    );
    let c = DatasetOptions {
        classes: 3,
        ..Default::default()
    };
    let e = Dataset::load(&d, &c).unwrap_err().to_string();
    assert!(
        e.contains("s0.png") && e.contains("not class ids 0..2"),
        "{e}"
    );
    // foreground_value on three classes is refused, not ignored
    let d = png_folder("labels-three", 1, |_, k| (k % 3) as u8);
    assert_eq!(Dataset::load(&d, &o).unwrap().n_classes, 3);
    let f = DatasetOptions::from_keys("zscore", false, 2);
    let e = Dataset::load(&d, &f).unwrap_err().to_string();
    assert!(
        e.contains("foreground_value") && e.contains("{0, 1, 2}"),
        "{e}"
    );
}

#[test]
fn train_cli_names_the_label_files_and_takes_a_class_map() {
    let d = png_folder("labels-cli", 2, |i, k| match (i, k % 3 == 0) {
        (_, false) => 0,
        (0, true) => 1,
        _ => 255,
    });
    let (_, stderr, code) = wunet(&["train", "--data", d.to_str().unwrap(), "--steps", "1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("s0.png: {0, 1}") && stderr.contains("s1.png: {0, 255}"),
        "{stderr}"
    );
    let (_, stderr, code) = wunet(&["train", "--class-values", "0,0", "--steps", "1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("class_values") && stderr.contains("distinct"),
        "{stderr}"
    );
}

#[test]
fn metrics_undefined_on_an_image_without_foreground_are_marked() {
    let m = Metrics {
        pixel_error: 0.0,
        rand_error: None,
        dice: vec![Some(1.0), None],
        iou: vec![Some(1.0), None],
        mean_dice: None,
        images: 1,
        challenge: None,
        instances: None,
        per_image: Vec::new(),
    };
    let t = m.to_text();
    assert!(t.contains("pixel_error: 0.000000"), "{t}");
    assert!(
        t.contains("dice_1: undefined") && t.contains("mean_dice: undefined"),
        "{t}"
    );
    assert!(t.contains("rand_error: undefined"), "{t}");
    let Some(run) = trained() else { return };
    // eval on data with no foreground at all: every metric line is there
    let d = png_folder("no-fg", 1, |_, _| 0);
    let ck = run.join("last.safetensors");
    let (stdout, stderr, code) = wunet(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data",
        d.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("pixel_error: ") && stdout.contains("dice_1: "),
        "{stdout}"
    );
    assert!(stdout.contains("mean_dice: "), "{stdout}");
    // progress: the images, as train shows its steps
    assert!(stderr.contains("eval: image 1/1"), "{stderr}");
}

// ------------------------------------------------------------ 3. sizes

#[test]
fn zero_size_and_huge_requests_are_refused_with_a_message() {
    let d = tmp("sizes");
    // a zero-length axis in a TIFF stack is impossible to write; npy has one
    let p = d.join("empty.npy");
    let mut h = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }".to_string();
    while !(h.len() + 11).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.as_bytes());
    std::fs::write(&p, b).unwrap();
    let e = read_image(&p).unwrap_err().to_string();
    assert!(e.contains("empty.npy") && e.contains("zero-length"), "{e}");
    if ctx().is_none() {
        return;
    }
    // bench: a shape whose element count overflows, and one beyond the device
    for shape in ["100000x100000x100000x100000", "64x64x4096x4096"] {
        let (_, stderr, code) = wunet(&["bench", "conv", "--in", shape, "--runs", "1"]);
        assert_eq!(code, Some(1), "{shape}: {stderr}");
        assert!(
            stderr.contains("bench --in") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}

#[cfg(unix)]
#[test]
fn devices_and_pipes_are_refused_instead_of_read_forever() {
    // /dev/zero never ends: reading it as a config, checkpoint or image would hang
    let cases: [&[&str]; 3] = [
        &["train", "--config", "/dev/zero"],
        &[
            "predict",
            "--checkpoint",
            "/dev/zero",
            "--input",
            "i.png",
            "--output",
            "o.png",
        ],
        &["eval", "--checkpoint", "/dev/zero", "--data", "d"],
    ];
    for args in cases {
        // refused before the GPU is opened
        let (_, stderr, code) = wunet_env(args, &[("WUNET_BACKEND", "no-such-backend")]);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("/dev/zero: not a regular file"),
            "{args:?}: {stderr}"
        );
    }
    // a synthetic dataset too large for host memory is refused before it is made
    let (_, stderr, code) = wunet_env(
        &["train", "--synthetic-size", "100000x100000"],
        &[("WUNET_MAX_LOAD_BYTES", "1000000000")],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("synthetic_size") && stderr.contains("budget"),
        "{stderr}"
    );
}

// ------------------------------------------------------------ 4. flags and keys

#[test]
fn every_numeric_flag_is_range_checked_with_its_name() {
    let cases: [(&[&str], &str); 10] = [
        (&["train", "--momentum", "1"], "momentum = 1"),
        (&["train", "--momentum", "-0.5"], "momentum = -0.5"),
        (&["train", "--lr", "0"], "lr = 0"),
        (&["train", "--lr", "-1"], "lr = -1"),
        (&["train", "--lr", "nan"], "lr = NaN"),
        (&["train", "--w0", "-1"], "w0 = -1"),
        (&["train", "--wmap-sigma", "inf"], "wmap_sigma = inf"),
        (&["train", "--steps", "-5"], "--steps"),
        (&["train", "--dropout", "1"], "dropout = 1"),
        (&["train", "--val-fraction", "-0.1"], "val_fraction = -0.1"),
    ];
    for (args, want) in cases {
        let (_, stderr, code) = wunet(args);
        assert_ne!(code, Some(0), "{args:?}");
        assert!(
            stderr.contains(want) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
    let (_, stderr, code) = wunet(&[
        "predict",
        "--checkpoint",
        "c",
        "--input",
        "i.png",
        "--output",
        "o.png",
        "--overlap",
        "1",
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("--overlap = 1"), "{stderr}");
    let (_, stderr, _) = wunet(&[
        "predict",
        "--checkpoint",
        "c",
        "--input",
        "i.png",
        "--output",
        "o.png",
        "--batch",
        "-2",
    ]);
    assert!(stderr.contains("-2: must be a whole number"), "{stderr}");
    // model, plan and bench flags: the same checks (no GPU needed for these answers)
    let cases: [(&[&str], &str); 7] = [
        (
            &["model", "unet2d", "--base", "100000000"],
            "--base = 100000000",
        ),
        (
            &["model", "unet2d", "--base", "-1"],
            "-1: must be a whole number",
        ),
        (&["plan", "unet3d", "--depth", "40"], "--depth = 40"),
        (&["plan", "unet2d", "--momentum", "1"], "--momentum = 1"),
        (&["bench", "conv", "--kernel", "0"], "--kernel = 0"),
        (
            &["bench", "conv", "--pad", "-3"],
            "-3: must be a whole number",
        ),
        (&["bench", "unet2d", "--batch", "0"], "--batch = 0"),
    ];
    for (args, want) in cases {
        let (_, stderr, code) = wunet_env(args, &[("WUNET_BACKEND", "no-such-backend")]);
        assert_ne!(code, Some(0), "{args:?}");
        assert!(
            stderr.contains(want) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
    // a config file key is named with the file
    let d = tmp("keys");
    let f = d.join("c.toml");
    std::fs::write(&f, "momentum = 1.5\n").unwrap();
    let (_, stderr, code) = wunet(&["train", "--config", f.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("c.toml") && stderr.contains("momentum = 1.5"),
        "{stderr}"
    );
}

/// An edited checkpoint whose metadata does not fit itself (class values
/// for another class count, an absurd base) is refused before a network is built.
#[test]
fn checkpoint_metadata_is_checked() {
    let Some(run) = trained() else { return };
    let ck = checkpoint::load(&run.join("last.safetensors")).unwrap();
    let meta = ck.meta.get("wunet").unwrap().clone();
    let d = tmp("meta");
    let img = d.join("i.png");
    write_png_gray8(&img, &labels_u8([1, 64, 64], |k| (k % 251) as u8)).unwrap();
    for (from, to, want) in [
        (
            "class_values = [0, 1]",
            "class_values = [0, 1, 2]",
            "class_values",
        ),
        ("base = 4", "base = 100000000", "--base = 100000000"),
    ] {
        assert!(meta.contains(from), "{meta}");
        let mut bad = ck.clone();
        bad.meta.insert("wunet".into(), meta.replace(from, to));
        let p = d.join("bad.safetensors");
        checkpoint::save(&p, &bad).unwrap();
        let (_, stderr, code) = wunet(&[
            "predict",
            "--checkpoint",
            p.to_str().unwrap(),
            "--input",
            img.to_str().unwrap(),
            "--output",
            d.join("o.png").to_str().unwrap(),
        ]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains("bad.safetensors") && stderr.contains(want),
            "{stderr}"
        );
    }
}
