//! Faults of runs and outputs (issue 14), through the built `wunet`
//! binary: the run-folder lock, resume's configuration check, temporary
//! files, SIGINT / SIGTERM, output paths checked before GPU work, the label
//! convention at eval, a patch larger than the images, broken pipes, help
//! defaults, and device errors. Bad input is in `tests/faults.rs`.

mod common;
#[path = "faults/support.rs"]
mod support;
use common::ctx;
use std::path::Path;
use std::process::{Command, Stdio};
use support::*;
use wunet::model_io::checkpoint;

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

/// A resumed run computes with the conv kernels it began with, whatever the tuning cache
/// says by then (with a cold cache, each process's time budget leaves different layers
/// measured, so a resume could otherwise switch kernels midway): the first process runs the
/// adapter's defaults (`WUNET_TUNE=0`), a cache is then written that names another variant
/// for every one of its layers, and the resumed process (tuning on, that cache) equals an
/// uninterrupted default run bit for bit, its checkpoint naming the same kernels.
#[test]
fn resume_keeps_the_kernels_the_run_began_with() {
    if ctx().is_none() {
        return;
    }
    let d = tmp("pinned");
    let cache = d.join("cache");
    let train = |out: &str, steps: &str, resume: bool, env: &[(&str, &str)]| {
        let mut args = vec!["train", "--steps", steps, "--checkpoint-every", "2"];
        args.extend(["--val-every", "0", "--schedule", "constant"]);
        args.extend(TINY);
        args.extend(["--out", out]);
        if resume {
            args.push("--resume");
        }
        let (stdout, stderr, code) = wunet_env(&args, env);
        assert_eq!(code, Some(0), "{out}: {stdout}\n{stderr}");
    };
    let (straight, cut) = (d.join("straight"), d.join("cut"));
    let (straight, cut) = (straight.to_str().unwrap(), cut.to_str().unwrap());
    let defaults = [("WUNET_TUNE", "0")];
    train(straight, "4", false, &defaults);
    train(cut, "2", false, &defaults);
    let first = checkpoint::load(&Path::new(cut).join("last.safetensors")).unwrap();
    let kernels = first
        .meta
        .get("kernels")
        .expect("the checkpoint names its kernels");
    let mut lines = kernels.lines();
    let adapter = lines.next().unwrap();
    let choices: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once('\t')).collect();
    assert!(!choices.is_empty(), "{kernels}");
    // every layer's cache entry names Winograd F(4x4), measured fastest
    let mut text = "wunet-conv-variants 3\n".to_string();
    for (key, name) in &choices {
        assert_ne!(*name, "winograd4", "{kernels}");
        let times = format!("{name}=9.000,winograd2=9.000,winograd4=1.000");
        text += &format!("{adapter}\t{key}\twinograd4\t{times}\n");
    }
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("conv-variants.txt"), text).unwrap();
    let tuned = [
        ("WUNET_TUNE", "measure"),
        ("WUNET_CACHE_DIR", cache.to_str().unwrap()),
    ];
    train(cut, "4", true, &tuned);
    let a = checkpoint::load(&Path::new(straight).join("last.safetensors")).unwrap();
    let b = checkpoint::load(&Path::new(cut).join("last.safetensors")).unwrap();
    common::tensors_equal(&a, &b);
    assert_eq!(b.meta.get("kernels"), Some(kernels), "the resume's kernels");
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
    // the keys whose 2D default depends on --data show all three
    assert!(
        stdout.contains(
            "[default: 16 (unet2d with --data), 4 (unet2d on the built-in data), 2 (unet3d)]"
        ),
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

#[test]
fn png_outputs_for_a_volume_are_refused_before_prediction() {
    let Some(run) = trained() else { return };
    let d = tmp("png-volume");
    let vol = d.join("vol.npy");
    wunet::data::io::write_npy(&vol, &f32_image([3, 40, 40], |i| (i % 17) as f32)).unwrap();
    let ck = run.join("last.safetensors");
    for (flag, extra) in [
        ("--output", vec![]),
        ("--overlay", vec!["--overlay", "ov.png"]),
        ("--probabilities", vec!["--probabilities", "p.png"]),
    ] {
        let out = if flag == "--output" {
            "seg.png"
        } else {
            "seg.tif"
        };
        let out = d.join(out).display().to_string();
        let mut args = vec![
            "predict",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--input",
            vol.to_str().unwrap(),
            "--output",
            &out,
        ];
        args.extend(extra);
        let (_, stderr, code) = wunet(&args);
        assert_eq!(code, Some(1), "{flag}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("volume [3, 40, 40]"),
            "{flag}: {stderr}"
        );
        // refused before the prediction ran: no progress line, nothing written
        assert!(!stderr.contains("tiles"), "{flag}: {stderr}");
        assert!(
            !std::path::Path::new(&out).exists(),
            "{flag}: {out} written"
        );
    }
}
