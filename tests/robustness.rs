//! Issue 13's robustness features end to end: `predict --scale`, `eval
//! --perturb` (through the CLI on a tiny synthetic run), old checkpoints
//! without the new metadata, and the `normalize = auto` rule on NIH3T3
//! (../shared/data/nuclei2d when present).

mod common;
use common::{ctx, predict_args, run_wunet as wunet, tmp_dir};
use std::path::{Path, PathBuf};
use wunet::data::dataset::{Dataset, DatasetOptions};
use wunet::data::io::{read_labels, write_png_gray8, write_png_labels};
use wunet::data::normalize::auto_key;
use wunet::data::synthetic::em_cells_2d;
use wunet::infer::predict::PredictOptions;
use wunet::infer::texture::TexturePredictor;
use wunet::model_io::{checkpoint, InferMeta};

fn tmp(name: &str) -> PathBuf {
    tmp_dir("robust", name)
}

/// `name: value` lines of `wunet eval` as pairs.
fn metrics(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Train the tiny synthetic 2D model (4 steps, base 4, seed 3) into
/// `run`, with `extra` flags; its stderr.
fn train_tiny(run: &Path, extra: &[&str]) -> String {
    common::train_tiny(run, &[&["--base", "4", "--seed", "3"], extra].concat()).1
}

/// Two 8-bit synthetic image / label pairs in `dir/images`, `dir/labels`.
fn write_pairs(dir: &Path) {
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for i in 0..2 {
        let s = em_cells_2d(40 + i, 72, 60);
        let img = s.image.map(|&v| (v.clamp(0.0, 1.0) * 200.0 + 20.0) as u8);
        write_png_gray8(&dir.join(format!("images/s{i}.png")), &img).unwrap();
        write_png_labels(&dir.join(format!("labels/s{i}.png")), &s.labels, 255).unwrap();
    }
}

/// `wunet eval` of checkpoint `ck` on the pairs of [`write_pairs`] in
/// `dir` (stored 0 / 255), with `extra` flags: its metric lines and stderr.
fn eval_pairs_stderr(ck: &Path, dir: &Path, extra: &[&str]) -> (Vec<(String, String)>, String) {
    let (o, e, ok) = common::eval_labelled(&[ck], dir, extra);
    assert!(ok, "{extra:?}: {o}\n{e}");
    (metrics(&o), e)
}

/// [`eval_pairs_stderr`]'s metric lines.
fn eval_pairs(ck: &Path, dir: &Path, extra: &[&str]) -> Vec<(String, String)> {
    eval_pairs_stderr(ck, dir, extra).0
}

#[test]
fn equalizing_models_see_the_same_input_under_gain_offset_and_gamma() {
    if ctx().is_none() {
        eprintln!("skip: no GPU adapter");
        return;
    }
    for mode in ["equalize", "equalize-normal"] {
        same_input_under_increasing_maps(mode);
    }
}

/// Train a tiny `mode` model; eval under the increasing maps (the same
/// metrics, bit for bit) and noise (not); texture prediction refuses it.
fn same_input_under_increasing_maps(mode: &str) {
    let dir = tmp(mode);
    let run = dir.join("run");
    train_tiny(&run, &["--normalize", mode, "--noise-prob", "1"]);
    write_pairs(&dir);
    let ck = run.join("best.safetensors");
    let eval = |extra: &[&str]| eval_pairs(&ck, &dir, extra);
    let plain = eval(&[]);
    assert!(plain.iter().any(|(k, _)| k == "mean_dice"), "{plain:?}");
    // strictly increasing changes of the raw values keep every rank: the same bits out
    for p in ["gamma:2", "gamma:0.5", "gain:0.25", "offset:0.5"] {
        assert_eq!(eval(&["--perturb", p]), plain, "--perturb {p}");
    }
    // noise changes ranks
    assert_ne!(eval(&["--perturb", "noise:0.2"]), plain);
    // the GPU texture path refuses it, naming the mode
    let c = ctx().unwrap();
    let err = TexturePredictor::from_checkpoint(c, &ck, &PredictOptions::default())
        .err()
        .expect("texture prediction of an equalising model");
    let want = format!("normalize = {mode})");
    assert!(err.to_string().contains(&want), "{err}");
}

#[test]
fn scale_and_perturb_through_the_cli() {
    if ctx().is_none() {
        eprintln!("skip: no GPU adapter");
        return;
    }
    let dir = tmp("cli");
    let run = dir.join("run");
    train_tiny(&run, &[]);
    write_pairs(&dir);
    let ck = run.join("best.safetensors");
    let (ck_s, data_s) = (ck.to_str().unwrap(), dir.to_str().unwrap());
    let input = dir.join("images/s0.png");
    // --scale: the output has the input's size
    for f in ["1.5", "0.5"] {
        let out = dir.join(format!("pred-{f}.png"));
        let (o, e, ok) = predict(&ck, &input, &out, &["--scale", f]);
        assert!(ok, "{o}\n{e}");
        let m = read_labels(&out).unwrap();
        assert_eq!(m.dims, [1, 72, 60], "--scale {f}");
    }
    let eval = |extra: &[&str]| eval_pairs(&ck, &dir, extra);
    let plain = eval(&[]);
    let scaled_one = eval(&["--scale", "1"]);
    assert_eq!(plain, scaled_one, "--scale 1 is no resize");
    // a gain leaves the z-scored input as it was (up to rounding)
    let gain = eval(&["--perturb", "gain:4"]);
    let dice = |m: &[(String, String)]| -> f64 {
        m.iter()
            .find(|(k, _)| k == "mean_dice")
            .unwrap()
            .1
            .parse()
            .unwrap()
    };
    assert!((dice(&plain) - dice(&gain)).abs() < 1e-3);
    for p in [
        "zoom:0.75",
        "noise:0.05",
        "background0",
        "gamma:2",
        "offset:0.5",
    ] {
        let m = eval(&["--perturb", p]);
        assert!(dice(&m) >= 0.0, "{p}");
    }
    // bad values name the flag before any GPU work
    for (flag, v) in [("--perturb", "blur:2"), ("--scale", "0"), ("--scale", "-2")] {
        let (o, e, ok) = wunet(&["eval", "--checkpoint", ck_s, "--data", data_s, flag, v]);
        assert!(!ok && e.contains(flag), "{flag} {v}: {o}\n{e}");
    }
}

/// `wunet predict` of `input` into `out` with `extra` flags: (stdout, stderr, ok).
fn predict(ck: &Path, input: &Path, out: &Path, extra: &[&str]) -> (String, String, bool) {
    let a = predict_args(ck, input, out, extra);
    wunet(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn diameter_is_the_scale_worked_out_from_the_training_objects() {
    if ctx().is_none() {
        eprintln!("skip: no GPU adapter");
        return;
    }
    let dir = tmp("diameter");
    let run = dir.join("run");
    let train_err = train_tiny(&run, &[]);
    write_pairs(&dir);
    let ck = run.join("best.safetensors");
    let meta = InferMeta::from_checkpoint(&checkpoint::load(&ck).unwrap(), &ck).unwrap();
    let trained = meta.object_diameter;
    assert!(trained > 5.0, "synthetic cells' median diameter: {trained}");
    assert!(
        train_err.contains(&format!("objects: median diameter {trained:.1} px")),
        "{train_err}"
    );
    // --diameter D: the same output as --scale trained / D, bit for bit
    let input = dir.join("images/s0.png");
    let d: f32 = (trained / 1.5 * 100.0).round() / 100.0;
    let f = trained / d;
    let (by_d, by_s) = (dir.join("by-d.npy"), dir.join("by-s.npy"));
    let (o, e, ok) = predict(&ck, &input, &by_d, &["--diameter", &d.to_string()]);
    assert!(ok, "{o}\n{e}");
    assert!(
        e.contains(&format!("resize: x{f:.3} in (y, x) (--diameter {d}")),
        "{e}"
    );
    let (o, e, ok) = predict(&ck, &input, &by_s, &["--scale", &f.to_string()]);
    assert!(ok, "{o}\n{e}");
    assert_eq!(
        std::fs::read(&by_d).unwrap(),
        std::fs::read(&by_s).unwrap(),
        "--diameter {d} against --scale {f}"
    );
    // named errors: both flags, a non-positive diameter, a resize out of range
    let out = dir.join("x.png");
    let (_, e, ok) = predict(&ck, &input, &out, &["--diameter", "9", "--scale", "2"]);
    assert!(
        !ok && e.contains("--diameter") && e.contains("--scale"),
        "{e}"
    );
    for bad in ["0", "-3", "nan"] {
        let (_, e, ok) = predict(&ck, &input, &out, &["--diameter", bad]);
        assert!(!ok && e.contains("--diameter"), "--diameter {bad}: {e}");
    }
    let (_, e, ok) = predict(&ck, &input, &out, &["--diameter", "0.01"]);
    assert!(
        !ok && e.contains("--diameter 0.01") && e.contains("outside [0.05, 20]"),
        "{e}"
    );
    assert!(!out.exists(), "no output written on an error");
}

#[test]
fn checkpoints_without_the_new_keys_still_load() {
    if ctx().is_none() {
        eprintln!("skip: no GPU adapter");
        return;
    }
    let dir = tmp("old");
    let run = dir.join("run");
    let (o, e, ok) = wunet(&[
        "train",
        "--synthetic-images",
        "3",
        "--synthetic-size",
        "48x48",
        "--base",
        "4",
        "--depth",
        "1",
        "--patch",
        "32",
        "--batch",
        "1",
        "--tile",
        "48",
        "--steps",
        "2",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(ok, "{o}\n{e}");
    // strip every key added by issue 13 from the stored metadata and config
    let new_keys = [
        "norm_clip",
        "rotate_prob",
        "rotate_degrees",
        "zoom_prob",
        "zoom_range",
        "noise_prob",
        "blur_prob",
        "brightness_prob",
        "contrast_prob",
        "lowres_prob",
        "gamma_prob",
        "gamma_invert_prob",
        "gamma_range",
        "gamma_range_of",
        "tta",
        "object_diameter",
    ];
    let mut ck = checkpoint::load(&run.join("best.safetensors")).unwrap();
    let mut stripped = 0;
    for v in ck.meta.values_mut() {
        let kept: String = v
            .lines()
            .filter(|l| !new_keys.iter().any(|k| l.starts_with(&format!("{k} ="))))
            .map(|l| format!("{l}\n"))
            .collect();
        stripped += v.lines().count() - kept.lines().count();
        *v = kept;
    }
    assert!(stripped >= new_keys.len(), "{stripped} lines stripped");
    let old = dir.join("old.safetensors");
    checkpoint::save(&old, &ck).unwrap();
    let img = em_cells_2d(7, 48, 48)
        .image
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0) as u8);
    let input = dir.join("in.png");
    write_png_gray8(&input, &img).unwrap();
    let (o, e, ok) = predict(&old, &input, &dir.join("out.png"), &[]);
    assert!(ok, "{o}\n{e}");
    // without the key, no flips: as `wunet predict` ran before it existed
    assert!(e.contains("test-time flips: off (the checkpoint's"), "{e}");
    // without a training diameter, --diameter is refused naming the file
    let (_, e, ok) = predict(&old, &input, &dir.join("d.png"), &["--diameter", "12"]);
    assert!(
        !ok && e.contains("old.safetensors") && e.contains("--scale F"),
        "{e}"
    );
}

#[test]
fn flips_are_the_checkpoints_default_and_the_flag_wins() {
    if ctx().is_none() {
        eprintln!("skip: no GPU adapter");
        return;
    }
    let dir = tmp("tta");
    write_pairs(&dir);
    // the training key: on by default for unet2d; the same weights either way
    let on = dir.join("on");
    let off = dir.join("off");
    train_tiny(&on, &[]);
    train_tiny(&off, &["--tta", "false"]);
    let eval =
        |run: &Path, extra: &[&str]| eval_pairs_stderr(&run.join("best.safetensors"), &dir, extra);
    let (on_default, e) = eval(&on, &[]);
    assert!(e.contains("test-time flips: on (the checkpoint's"), "{e}");
    let (on_flag, e) = eval(&on, &["--tta"]);
    assert!(e.contains("test-time flips: on (--tta)"), "{e}");
    assert_eq!(on_default, on_flag);
    let (on_off, e) = eval(&on, &["--tta", "false"]);
    assert!(e.contains("test-time flips: off (--tta)"), "{e}");
    assert_ne!(on_off, on_default, "the flips changed no metric");
    let (off_default, e) = eval(&off, &[]);
    assert!(e.contains("test-time flips: off (the checkpoint's"), "{e}");
    assert_eq!(
        off_default, on_off,
        "same weights, no flips: the same metrics"
    );
}

#[test]
fn auto_normalization_on_nih3t3_is_log_dark_and_dense() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nuclei2d/nih3t3");
    if !dir.is_dir() {
        eprintln!("skip: {} not found (the NIH3T3 nuclei)", dir.display());
        return;
    }
    let ds = Dataset::load(&dir, &DatasetOptions::from_keys("none", false, -1)).unwrap();
    assert_eq!(ds.samples.len(), 18);
    // dark images: robust if the nuclei were sparse; 15-26 % of the pixels: log
    let images = || ds.samples.iter().map(|s| s.image.data.as_slice());
    assert_eq!(auto_key(images(), 0.05), "robust");
    let fg: usize = ds
        .samples
        .iter()
        .map(|s| s.labels.data.iter().filter(|&&v| v != 0).count())
        .sum();
    let n: usize = ds.samples.iter().map(|s| s.labels.data.len()).sum();
    let share = fg as f64 / n as f64;
    assert!((0.15..0.27).contains(&share), "{share}");
    assert_eq!(auto_key(images(), share), "log");
}
