//! Bad input and faults (issue 14), through the built `wunet` binary where
//! the CLI is what a user meets, else through the library: non-finite data
//! and checkpoints, label conventions, header sizes, flag ranges, run-folder
//! locks / resume / temporary files / signals, output paths, label
//! conventions at eval, broken pipes, progress and help. GPU runs are tiny
//! (a 4-step 2D run on 64x64 synthetic images, shared by the tests).

mod common;
use common::ctx;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use wunet::data::dataset::{Dataset, DatasetOptions};
use wunet::data::io::{read_image, write_npy, write_png_gray16, write_png_gray8, write_tiff};
use wunet::data::Array3;
use wunet::infer::eval::Metrics;
use wunet::model_io::checkpoint::{self, Checkpoint, NamedTensor};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wunet-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn wunet_env(args: &[&str], env: &[(&str, &str)]) -> (String, String, Option<i32>) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wunet"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run wunet");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code(),
    )
}

fn wunet(args: &[&str]) -> (String, String, Option<i32>) {
    wunet_env(args, &[])
}

/// Flags of a tiny 2D run on synthetic data (labels 0/1, class 1 = membrane).
const TINY: [&str; 16] = [
    "--synthetic-images",
    "3",
    "--synthetic-size",
    "64x64",
    "--base",
    "4",
    "--depth",
    "2",
    "--patch",
    "32",
    "--batch",
    "1",
    "--tile",
    "64",
    "--seed",
    "3",
];

/// One tiny run through the CLI, shared by the tests that need a checkpoint.
fn trained() -> Option<&'static Path> {
    ctx()?;
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    Some(RUN.get_or_init(|| {
        let out = tmp("run").join("run");
        let o = out.display().to_string();
        let mut args = vec!["train", "--steps", "4", "--checkpoint-every", "2"];
        args.extend(TINY);
        args.extend(["--out", &o]);
        let (stdout, stderr, code) = wunet(&args);
        assert_eq!(code, Some(0), "wunet train failed:\n{stdout}\n{stderr}");
        out
    }))
}

fn f32_image(dims: [usize; 3], f: impl Fn(usize) -> f32) -> Array3<f32> {
    let n = dims.iter().product::<usize>();
    Array3::from_vec(dims, (0..n).map(f).collect()).unwrap()
}

fn labels_u8(dims: [usize; 3], f: impl Fn(usize) -> u8) -> Array3<u8> {
    let n = dims.iter().product::<usize>();
    Array3::from_vec(dims, (0..n).map(f).collect()).unwrap()
}

/// A data folder `images/` + `labels/` with 64x64 PNG pairs; `label(i, k)`
/// gives pixel `k` of image `i`.
fn png_folder(name: &str, n: usize, label: impl Fn(usize, usize) -> u8) -> PathBuf {
    let d = tmp(name);
    std::fs::create_dir_all(d.join("images")).unwrap();
    std::fs::create_dir_all(d.join("labels")).unwrap();
    for i in 0..n {
        let img = labels_u8([1, 64, 64], |k| ((k * 7 + i * 13) % 200) as u8);
        write_png_gray8(&d.join(format!("images/s{i}.png")), &img).unwrap();
        let lab = labels_u8([1, 64, 64], |k| label(i, k));
        write_png_gray8(&d.join(format!("labels/s{i}.png")), &lab).unwrap();
    }
    d
}

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

/// Read a safetensors checkpoint without the finiteness check.
fn load_unchecked(bytes: &[u8]) -> Checkpoint {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let (_, md) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let tensors = st
        .names()
        .into_iter()
        .map(|n| {
            let v = st.tensor(n).unwrap();
            NamedTensor {
                name: n.to_string(),
                shape: v.shape().to_vec(),
                data: bytemuck::pod_collect_to_vec(v.data()),
            }
        })
        .collect();
    let meta = md
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Checkpoint { tensors, meta }
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
    let f = DatasetOptions::from_keys("zscore", 2);
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

// ------------------------------------------------------------ 5. run folders

#[test]
fn a_locked_run_folder_refuses_a_second_training_and_a_stale_lock_is_replaced() {
    let Some(run) = trained() else { return };
    let copy = tmp("lock").join("run");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["config.toml", "log.csv", "last.safetensors"] {
        std::fs::copy(run.join(f), copy.join(f)).unwrap();
    }
    let o = copy.to_str().unwrap();
    // a live process holds it: this test's own
    std::fs::write(copy.join("run.lock"), std::process::id().to_string()).unwrap();
    let (_, stderr, code) = wunet(&["train", "--resume", "--out", o, "--steps", "5"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("another training") && stderr.contains(&std::process::id().to_string()),
        "{stderr}"
    );
    // a dead one: stale, replaced; the leftover temp file of a killed write goes too
    std::fs::write(copy.join("run.lock"), "2147480000").unwrap();
    std::fs::write(copy.join(".last.safetensors.99999.tmp"), b"half").unwrap();
    let (_, stderr, code) = wunet(&["train", "--resume", "--out", o, "--steps", "5"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("stale lock"), "{stderr}");
    assert!(stderr.contains(".last.safetensors.99999.tmp"), "{stderr}");
    assert!(!copy.join(".last.safetensors.99999.tmp").exists());
    assert!(
        !copy.join("run.lock").exists(),
        "the lock goes with the run"
    );
}

#[test]
fn resume_refuses_changed_data_model_labels_and_loss_naming_the_keys() {
    let Some(run) = trained() else { return };
    let o = run.to_str().unwrap();
    for (flag, value, key) in [
        ("--data", "/tmp/elsewhere", "data"),
        ("--base", "8", "base"),
        ("--loss", "dicece", "loss"),
        ("--class-values", "1,0", "class_values"),
    ] {
        let (_, stderr, code) = wunet(&["train", "--resume", "--out", o, flag, value]);
        assert_eq!(code, Some(1), "{flag}: {stderr}");
        assert!(
            stderr.contains("these keys differ") && stderr.contains(&format!("{key} (run:")),
            "{flag}: {stderr}"
        );
    }
}

#[cfg(unix)]
#[test]
fn sigint_and_sigterm_finish_the_step_write_last_and_exit_130() {
    if ctx().is_none() {
        return;
    }
    for (name, sig) in [("SIGINT", libc::SIGINT), ("SIGTERM", libc::SIGTERM)] {
        let out = tmp(name).join("run");
        let o = out.display().to_string();
        let mut args = vec![
            "train",
            "--steps",
            "100000",
            "--checkpoint-every",
            "100000",
            "--val-every",
            "0",
        ];
        args.extend(TINY);
        args.extend(["--out", &o]);
        let child = Command::new(env!("CARGO_BIN_EXE_wunet"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // wait for the loop to run (log.csv gets its first rows)
        let t = std::time::Instant::now();
        while std::fs::read_to_string(out.join("log.csv")).map_or(0, |s| s.lines().count()) < 3 {
            assert!(t.elapsed().as_secs() < 120, "training did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: sending a signal to the child this test spawned.
        unsafe { libc::kill(pid, sig) };
        let done = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&done.stdout);
        assert_eq!(done.status.code(), Some(130), "{name}: {stdout}");
        // last.safetensors holds the step the summary names
        let step: u64 = stdout
            .split("stopped after step ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {stdout}"));
        let ck = checkpoint::load(&out.join("last.safetensors")).unwrap();
        assert_eq!(ck.meta.get("step"), Some(&step.to_string()), "{name}");
        assert!(!out.join("run.lock").exists(), "{name}");
        // and the run resumes from there
        let s = (step + 2).to_string();
        let (stdout, stderr, code) = wunet(&["train", "--resume", "--out", &o, "--steps", &s]);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        assert!(stdout.contains("this run: 2 steps"), "{name}: {stdout}");
    }
}

// ------------------------------------------------------------ 6. output paths

#[test]
fn bad_output_paths_are_reported_before_any_gpu_work() {
    let d = tmp("outputs");
    let dir = d.to_str().unwrap().to_string();
    let missing = d.join("no/such/o.png").display().to_string();
    let bad = [
        ("--output", dir.as_str(), "is a folder"),
        ("--output", missing.as_str(), "does not exist"),
        ("--output", "/proc/wunet-o.png", "cannot write"),
        ("--overlay", "/proc/wunet-o.png", "cannot write"),
        ("--probabilities", dir.as_str(), "is a folder"),
        ("--output", "o.jpg", "unsupported file type"),
    ];
    // the inputs exist (their contents are read only after the GPU opens)
    let (ck, input) = (d.join("c.safetensors"), d.join("i.png"));
    std::fs::write(&ck, b"x").unwrap();
    std::fs::write(&input, b"x").unwrap();
    let (ck, input) = (ck.to_str().unwrap(), input.to_str().unwrap());
    for (flag, path, want) in bad {
        let mut args = vec!["predict", "--checkpoint", ck, "--input", input];
        if flag != "--output" {
            args.extend(["--output", "o.png"]);
        }
        args.extend([flag, path]);
        // no adapter can be opened with this backend: the check comes first
        let (_, stderr, code) = wunet_env(&args, &[("WUNET_BACKEND", "no-such-backend")]);
        assert_eq!(code, Some(1));
        assert!(
            stderr.contains(flag) && stderr.contains(want),
            "{flag} {path}: {stderr}"
        );
    }
    let (_, stderr, code) = wunet_env(
        &["train", "--out", "/proc/wunet-run"],
        &[("WUNET_BACKEND", "no-such-backend")],
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("--out") && stderr.contains("cannot write"),
        "{stderr}"
    );
}

// ------------------------------------------------------------ 8. a new user

#[test]
fn eval_refuses_a_swapped_label_convention_and_takes_the_datas() {
    let Some(run) = trained() else { return };
    // the checkpoint learnt 0/1 labels (class 1 = membrane = 1); ISBI-style
    // data stores membrane as 0 and cells as 255
    let d = png_folder("isbi-style", 1, |_, k| if k % 4 == 0 { 0 } else { 255 });
    let ck = run.join("last.safetensors");
    let (_, stderr, code) = wunet(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data",
        d.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("[0, 1]")
            && stderr.contains("{0, 255}")
            && stderr.contains("--class-values"),
        "{stderr}"
    );
    let (stdout, stderr, code) = wunet(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data",
        d.to_str().unwrap(),
        "--class-values",
        "255,0",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("pixel_error: "), "{stdout}");
}

#[test]
fn a_patch_larger_than_the_images_names_both_sizes() {
    if ctx().is_none() {
        return;
    }
    let (_, stderr, code) = wunet(&[
        "train",
        "--synthetic-images",
        "2",
        "--synthetic-size",
        "64x64",
        "--patch",
        "256",
        "--base",
        "4",
        "--depth",
        "2",
        "--out",
        tmp("big-patch").join("run").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("patch = 256") && stderr.contains("largest 64x64"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_quietly_and_help_shows_defaults() {
    // the reader is gone before wunet writes: the write gets EPIPE
    for args in [&["model", "unet2d"][..], &["train", "--help"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wunet"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(o.status.code(), Some(101), "{args:?}: {stderr}");
    }
    let (stdout, _, _) = wunet(&["train", "--help"]);
    assert!(stdout.contains("[default: 0.002]"), "{stdout}");
    assert!(
        stdout.contains("[default: 3 (unet2d), 2 (unet3d)]"),
        "{stdout}"
    );
}

/// A device error outside an error scope (here an invalid buffer; on a real
/// GPU, running out of memory) is recorded and returned by the next check,
/// instead of wgpu's default panic.
#[test]
fn device_errors_become_errors_not_panics() {
    let Some(c) = ctx() else { return };
    c.check_errors().unwrap();
    let _bad = c.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid on purpose"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let e = c.check_errors().unwrap_err().to_string();
    assert!(
        e.contains("device reported") && e.contains("smaller --tile"),
        "{e}"
    );
    c.check_errors().unwrap();
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
