//! The product: `wunet train` / `predict` / `eval` end to end on small
//! synthetic data, resumption, checkpoint errors, and overlap-tile
//! inference equal to whole-image inference (2D, 3D, and a 1344x1024
//! image from ../shared/data/nuclei2d when present).

mod common;
use common::{assert_close, ctx, run_wunet as wunet, tensors_equal, tmp_dir};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wunet::data::io::{read_image, read_labels, write_png_gray8, write_png_labels};
use wunet::data::synthetic::{em_cells_2d, nuclei_3d};
use wunet::data::tiling::Blend;
use wunet::data::Volume;
use wunet::infer::predict::{Output, PredictOptions, Predictor};
use wunet::model_io::checkpoint::{self, Checkpoint};
use wunet::model_io::{InferMeta, ModelMeta};
use wunet::models::{Loss, Norm, Padding, UNetConfig};
use wunet::train::config::TrainFlags;
use wunet::train::log::read_rows;
use wunet::train::run::{train, RunOptions};
use wunet::train::session::{Session, SessionSpec};

fn tmp(name: &str) -> PathBuf {
    tmp_dir("product", name)
}

/// Flags of a tiny 2D run on synthetic data.
const TINY: [&str; 18] = [
    "--synthetic-images",
    "4",
    "--synthetic-size",
    "64x64",
    "--base",
    "4",
    "--depth",
    "2",
    "--patch",
    "32",
    "--batch",
    "2",
    "--tile",
    "64",
    "--log-every",
    "1",
    "--seed",
    "5",
];

fn tiny_flags(out: &Path, steps: u64) -> TrainFlags {
    TrainFlags {
        synthetic_images: Some(4),
        synthetic_size: Some("64x64".into()),
        base: Some(4),
        depth: Some(2),
        patch: Some("32".into()),
        batch: Some(2),
        tile: Some("64".into()),
        log_every: Some(1),
        seed: Some(5),
        steps: Some(steps),
        val_every: Some(4),
        checkpoint_every: Some(2),
        out: Some(out.display().to_string()),
        ..Default::default()
    }
}

/// One tiny run through the CLI, shared by the tests that need a checkpoint.
fn trained() -> Option<&'static Path> {
    ctx()?;
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    Some(RUN.get_or_init(|| {
        let dir = tmp("cli-run");
        let out = dir.join("run");
        let mut args = vec!["train"];
        args.extend(TINY);
        let o = out.display().to_string();
        args.extend([
            "--steps",
            "6",
            "--val-every",
            "3",
            "--checkpoint-every",
            "3",
            "--out",
            &o,
        ]);
        let (stdout, stderr, ok) = wunet(&args);
        assert!(ok, "wunet train failed:\n{stdout}\n{stderr}");
        eprintln!("{stdout}");
        out
    }))
}

#[test]
fn train_leaves_a_complete_run_folder() {
    let Some(run) = trained() else { return };
    for f in [
        "last.safetensors",
        "best.safetensors",
        "log.csv",
        "curves.png",
        "overlay.png",
        "config.toml",
    ] {
        let p = run.join(f);
        assert!(
            p.metadata().map(|m| m.len() > 0).unwrap_or(false),
            "{} missing",
            p.display()
        );
    }
    let rows = read_rows(&run.join("log.csv")).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
    assert!(rows.iter().all(|r| r.loss.is_some_and(f64::is_finite)));
    assert!(rows[2].val_pixel_error.is_some() && rows[5].val_mean_dice.is_some());
    assert!(rows[3].val_pixel_error.is_none());
    // the overlay is an RGB image of the validation image's size
    let ov = image::open(run.join("overlay.png")).unwrap();
    assert_eq!((ov.width(), ov.height()), (64, 64));
    let curves = image::open(run.join("curves.png")).unwrap();
    assert_eq!((curves.width(), curves.height()), (900, 640));
    // the effective configuration records every key, resolved
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        cfg.contains("steps = 6") && cfg.contains("loss = \"auto\""),
        "{cfg}"
    );
    // the checkpoint carries the model configuration
    let ck = checkpoint::load(&run.join("best.safetensors")).unwrap();
    let meta = InferMeta::from_checkpoint(&ck, &run.join("best.safetensors")).unwrap();
    assert_eq!(meta.model.base, 4);
    assert_eq!(meta.class_values, vec![0, 1]);
    // a second run into the same folder is refused
    let mut args = vec!["train"];
    args.extend(TINY);
    let o = run.display().to_string();
    args.extend(["--steps", "2", "--out", &o]);
    let (_, stderr, ok) = wunet(&args);
    assert!(!ok && stderr.contains("--resume"), "{stderr}");
}

#[test]
fn validation_by_the_challenge_rand_error_logs_it_and_picks_best_by_it() {
    let Some(c) = ctx() else { return };
    let dir = tmp("val-isbi");
    let flags = TrainFlags {
        val_every: Some(2),
        val_metric: Some("isbi_rand_error".into()),
        ..tiny_flags(&dir.join("run"), 6)
    };
    let r = train(c, &flags, &RunOptions::default()).unwrap();
    let rows = read_rows(&dir.join("run/log.csv")).unwrap();
    let logged: Vec<(u64, f64)> = rows
        .iter()
        .filter_map(|r| r.val_isbi_rand_error.map(|v| (r.step, v)))
        .collect();
    assert_eq!(logged.iter().map(|p| p.0).collect::<Vec<_>>(), [2, 4, 6]);
    assert!(
        logged.iter().all(|p| (0.0..=1.0).contains(&p.1)),
        "{logged:?}"
    );
    // the first of the lowest values picks best.safetensors
    let lowest = logged
        .iter()
        .fold(logged[0], |b, &p| if p.1 < b.1 { p } else { b });
    assert_eq!(r.best, Some(lowest));
    let last = r
        .val
        .expect("the last validation")
        .challenge
        .expect("challenge scores");
    assert_eq!(last.rand_error, logged[2].1);
    // the argmax Rand error is a different score, logged beside it
    assert!(rows.iter().filter(|r| r.val_rand_error.is_some()).count() == 3);
    // 3D: refused by name
    let flags3 = TrainFlags {
        model: Some("unet3d".into()),
        synthetic_size: Some("8x32x32".into()),
        patch: Some("8x16x16".into()),
        tile: Some("8x32x32".into()),
        out: Some(dir.join("run3d").display().to_string()),
        ..flags.clone()
    };
    let e = train(c, &flags3, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("val_metric = isbi_rand_error is defined for 2D data only"),
        "{e}"
    );
}

#[test]
fn sanity_checks_initial_loss_and_overfit() {
    let Some(c) = ctx() else { return };
    let dir = tmp("overfit");
    let flags = TrainFlags {
        overfit: Some(2),
        base: Some(8),
        lr: Some(0.01),
        log_every: Some(20),
        val_every: Some(60),
        checkpoint_every: Some(60),
        ..tiny_flags(&dir.join("run"), 60)
    };
    let quiet = RunOptions::default();
    let r = train(c, &flags, &quiet).unwrap();
    // weighted CE with the "mean" reduction: ln 2 x the batch's mean weight
    let (l, expected) = r.initial_loss.expect("CE loss reports its initial value");
    assert!(expected > 2f64.ln(), "border weights raise the mean weight");
    assert!(
        (l - expected).abs() < 0.1 * expected,
        "initial loss {l} vs {expected}"
    );
    let acc = r
        .overfit_accuracy
        .expect("--overfit reports the training accuracy");
    assert!(acc > 0.95, "2 fixed patches fitted to {acc} after 60 steps");
}

/// `--init` (fine-tuning): a new run starts from a checkpoint's weights whatever
/// its seed, with a fresh optimiser and step count; a checkpoint whose model
/// differs, or no file, is refused by name before the run folder appears.
#[test]
fn init_starts_from_a_checkpoints_weights() {
    let Some(c) = ctx() else { return };
    let Some(run) = trained() else { return };
    let src = run.join("last.safetensors");
    let dir = tmp("init");
    let quiet = RunOptions::default();
    // another seed than the source run's, and a learning rate too small to move
    // the weights in one step
    let flags = |out: &str, init: Option<&Path>| TrainFlags {
        init: init.map(|p| p.display().to_string()),
        lr: Some(1e-12),
        seed: Some(6),
        ..tiny_flags(&dir.join(out), 1)
    };
    train(c, &flags("init", Some(&src)), &quiet).unwrap();
    train(c, &flags("fresh", None), &quiet).unwrap();
    let load = |p: &Path| checkpoint::load(p).unwrap();
    let a = load(&src);
    let b = load(&dir.join("init/last.safetensors"));
    let f = load(&dir.join("fresh/last.safetensors"));
    assert_eq!(b.meta.get("step").map(String::as_str), Some("1"));
    let mut weights = 0;
    for t in a.tensors.iter().filter(|t| t.name.ends_with(".weight")) {
        let got = b.get(&t.name).expect("the fine-tuned run has every weight");
        assert_close(&t.name, &got.data, &t.data, 1e-6, 1e-6);
        let fresh = &f.get(&t.name).expect("fresh weight").data;
        let far = fresh
            .iter()
            .zip(&t.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            far > 1e-3,
            "{}: a fresh run's weights are {far} from the source's",
            t.name
        );
        weights += 1;
    }
    assert!(weights >= 8, "{weights} weights compared");
    // --resume continues the fine-tuning run from its own last.safetensors
    let more = TrainFlags {
        steps: Some(2),
        ..flags("init", Some(&src))
    };
    resume(c, &dir.join("init"), more).unwrap();
    let b2 = load(&dir.join("init/last.safetensors"));
    assert_eq!(b2.meta.get("step").map(String::as_str), Some("2"));
    // the model keys a run leaves unset come from the checkpoint (base 4, depth 2;
    // the defaults are 8 and 3)
    let adopt = TrainFlags {
        base: None,
        depth: None,
        ..flags("adopt", Some(&src))
    };
    train(c, &adopt, &quiet).unwrap();
    let cfg = std::fs::read_to_string(dir.join("adopt/config.toml")).unwrap();
    assert!(
        cfg.contains("base = 4") && cfg.contains("depth = 2"),
        "{cfg}"
    );
    // a model that differs: each differing key named with both values
    let e = train(
        c,
        &TrainFlags {
            base: Some(8),
            ..flags("wide", Some(&src))
        },
        &quiet,
    )
    .map(|_| ())
    .expect_err("base 8 from a base-4 checkpoint is refused")
    .to_string();
    assert!(
        e.contains("--init")
            && e.contains("base 4 (this run: 8)")
            && e.contains("last.safetensors"),
        "{e}"
    );
    assert!(
        !dir.join("wide").exists(),
        "no run folder for a refused run"
    );
    let e = train(
        c,
        &flags("none", Some(&dir.join("nope.safetensors"))),
        &quiet,
    )
    .map(|_| ())
    .expect_err("a missing checkpoint is refused")
    .to_string();
    assert!(
        e.contains("--init") && e.contains("nope.safetensors"),
        "{e}"
    );
}

/// `wunet train --resume --out <out>` with the other keys of `flags`.
fn resume(
    c: &wunet::Context,
    out: &Path,
    flags: TrainFlags,
) -> wunet::Result<wunet::train::run::TrainReport> {
    let flags = TrainFlags {
        out: Some(out.display().to_string()),
        ..flags
    };
    let opts = RunOptions {
        resume: true,
        ..Default::default()
    };
    train(c, &flags, &opts)
}

/// Mixed precision: a run stopped and resumed equals the uninterrupted one bit
/// for bit (the loss scaler is saved with the optimiser state), the log holds
/// the loss scale and the skipped-step count, inference drops the scaler, and
/// changing the precision on resume is refused.
#[test]
fn mixed_precision_resume_replays_an_uninterrupted_run() {
    let Some(c) = ctx() else { return };
    if !c.has_f16() {
        eprintln!("skip: mixed precision needs SHADER_F16 on {}", c.describe());
        return;
    }
    let dir = tmp("resume-mixed");
    let mixed = |out: &Path| TrainFlags {
        precision: Some("mixed".into()),
        ..tiny_flags(out, 8)
    };
    let straight = dir.join("straight");
    let r = train(c, &mixed(&straight), &RunOptions::default()).unwrap();
    let (scale, skipped) = r.loss_scale.expect("a mixed run reports its loss scale");
    assert!(
        scale > 0.0 && skipped <= 8,
        "scale {scale}, skipped {skipped}"
    );
    let rows = read_rows(&straight.join("log.csv")).unwrap();
    assert!(rows
        .iter()
        .all(|r| r.loss_scale.is_some() && r.skipped_steps.is_some()));
    let cut = dir.join("cut");
    let stop = RunOptions {
        stop_after: Some(5),
        ..Default::default()
    };
    assert!(train(c, &mixed(&cut), &stop).unwrap().interrupted);
    let r = resume(c, &cut, TrainFlags::default()).unwrap();
    assert_eq!((r.start, r.step), (4, 8));
    let a = checkpoint::load(&straight.join("last.safetensors")).unwrap();
    let b = checkpoint::load(&cut.join("last.safetensors")).unwrap();
    assert!(
        a.get("amp.loss_scale").is_some(),
        "the scaler is checkpointed"
    );
    tensors_equal(&a, &b);
    assert!(a.without_optimizer_state().get("amp.loss_scale").is_none());
    let e = resume(
        c,
        &cut,
        TrainFlags {
            precision: Some("f32".into()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("precision"), "{e}");
}

#[test]
fn resume_replays_an_uninterrupted_run() {
    let Some(c) = ctx() else { return };
    let dir = tmp("resume");
    let quiet = RunOptions::default();
    // straight through, 8 steps (poly schedule over 8 steps)
    let straight = dir.join("straight");
    train(c, &tiny_flags(&straight, 8), &quiet).unwrap();
    // killed after step 5 (last checkpoint at step 4, log rows up to 5), then resumed
    let cut = dir.join("cut");
    let r = train(
        c,
        &tiny_flags(&cut, 8),
        &RunOptions {
            stop_after: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.interrupted);
    assert_eq!(read_rows(&cut.join("log.csv")).unwrap().len(), 5);
    let r = resume(c, &cut, TrainFlags::default()).unwrap();
    assert_eq!((r.start, r.step), (4, 8));
    let steps: Vec<u64> = read_rows(&cut.join("log.csv"))
        .unwrap()
        .iter()
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>(), "each step logged once");
    let a = checkpoint::load(&straight.join("last.safetensors")).unwrap();
    let b = checkpoint::load(&cut.join("last.safetensors")).unwrap();
    tensors_equal(&a, &b);
    // `--steps 4`, then `--resume --steps 8`: equal to 8 straight steps when
    // the schedule does not depend on the horizon (poly's does: it is
    // recomputed for the new --steps).
    let constant = |out: &Path, steps| TrainFlags {
        schedule: Some("constant".into()),
        ..tiny_flags(out, steps)
    };
    let s8 = dir.join("const8");
    train(c, &constant(&s8, 8), &quiet).unwrap();
    let s4 = dir.join("const4");
    train(c, &constant(&s4, 4), &quiet).unwrap();
    let r = resume(
        c,
        &s4,
        TrainFlags {
            steps: Some(8),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.start, r.step), (4, 8));
    let a = checkpoint::load(&s8.join("last.safetensors")).unwrap();
    let b = checkpoint::load(&s4.join("last.safetensors")).unwrap();
    tensors_equal(&a, &b);
    // resuming with a different model is refused, naming the key
    let e = resume(
        c,
        &s4,
        TrainFlags {
            base: Some(8),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("base") && e.contains("config.toml"), "{e}");
}

#[test]
fn corrupt_and_mismatched_checkpoints_are_clear_errors() {
    let Some(c) = ctx() else { return };
    let Some(run) = trained() else { return };
    let dir = tmp("badckpt");
    let good = checkpoint::load(&run.join("last.safetensors")).unwrap();
    let opts = PredictOptions::default();
    let load = |p: &Path| {
        Predictor::from_checkpoint(c, p, None, None, &opts)
            .err()
            .expect("must fail")
            .to_string()
    };
    let save_and_load = |name: &str, ck: &Checkpoint| {
        let p = dir.join(name);
        checkpoint::save(&p, ck).unwrap();
        load(&p)
    };
    // garbage and truncated files
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a checkpoint").unwrap();
    let e = load(&garbage);
    assert!(
        e.contains("garbage.safetensors") && e.contains("not a valid"),
        "{e}"
    );
    let bytes = std::fs::read(run.join("last.safetensors")).unwrap();
    let cut = dir.join("truncated.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = load(&cut);
    assert!(e.contains("truncated.safetensors"), "{e}");
    // a tensor of the wrong shape
    let mut bad = good.clone();
    let t = bad
        .tensors
        .iter_mut()
        .find(|t| t.name == "enc0.conv1.weight")
        .unwrap();
    t.shape[0] += 1;
    t.data.extend(vec![0.0; t.data.len() / (t.shape[0] - 1)]);
    let e = save_and_load("shape.safetensors", &bad);
    assert!(
        e.contains("shape.safetensors") && e.contains("enc0.conv1.weight"),
        "{e}"
    );
    // a missing tensor
    let mut bad = good.clone();
    bad.tensors.retain(|t| t.name != "head.bias");
    let e = save_and_load("missing.safetensors", &bad);
    assert!(
        e.contains("missing.safetensors") && e.contains("head.bias"),
        "{e}"
    );
    // no model metadata
    let mut bad = good.clone();
    bad.meta.remove("wunet");
    let e = save_and_load("nometa.safetensors", &bad);
    assert!(
        e.contains("nometa.safetensors") && e.contains("metadata"),
        "{e}"
    );
    // resuming from a corrupt last.safetensors names it
    let rdir = dir.join("run");
    std::fs::create_dir_all(&rdir).unwrap();
    std::fs::copy(run.join("config.toml"), rdir.join("config.toml")).unwrap();
    std::fs::write(rdir.join("last.safetensors"), &bytes[..100]).unwrap();
    let o = rdir.display().to_string();
    let (_, stderr, ok) = wunet(&["train", "--resume", "--out", &o]);
    assert!(
        !ok && stderr.contains("last.safetensors") && !stderr.contains("panicked"),
        "{stderr}"
    );
    // and from one of another model (base 8), naming the tensor
    let mut other = good.clone();
    for t in &mut other.tensors {
        if t.name == "enc0.conv1.weight" {
            t.shape[0] = 8;
            t.data = vec![0.0; t.shape.iter().product()];
        }
    }
    checkpoint::save(&rdir.join("last.safetensors"), &other).unwrap();
    let (_, stderr, ok) = wunet(&["train", "--resume", "--out", &o]);
    assert!(
        !ok && stderr.contains("last.safetensors") && stderr.contains("enc0.conv1.weight"),
        "{stderr}"
    );
}

/// A small valid-convolution U-Net with batch norm, its weights after one
/// training-mode step (so the BN running statistics are not the initial ones).
fn valid_net(dims: usize, depth: usize, patch: &[usize]) -> (UNetConfig, Checkpoint) {
    let c = ctx().unwrap();
    let mut cfg = if dims == 2 {
        UNetConfig::ronneberger2015()
    } else {
        UNetConfig::cicek2016()
    };
    cfg.in_channels = 1;
    cfg.classes = 3;
    cfg.base = 4;
    cfg.depth = depth;
    cfg.padding = Padding::Valid;
    cfg.norm = Norm::Batch;
    cfg.dropout = 0.0;
    // running statistics = the statistics of the one training-mode batch
    cfg.bn_momentum = 1.0;
    let spec = SessionSpec {
        config: cfg.clone(),
        batch: 1,
        spatial: patch.to_vec(),
        loss: Loss::cross_entropy(),
        optimizer: None,
        seed: 11,
        keep_grads: false,
        precision: wunet::shape::Precision::F32,
    };
    let mut s = Session::new(c, &spec).unwrap();
    let n_in: usize = patch.iter().product();
    let img: Vec<f32> = common::rand_vec(n_in, 3);
    let out = s.exec.graph.shape(s.net.logits).spatial_numel();
    s.set_batch(c, &img, &vec![1; out], None).unwrap();
    s.step(c, 0.0).unwrap();
    (cfg, s.exec.export(c).unwrap())
}

fn logits(
    cfg: &UNetConfig,
    ck: &Checkpoint,
    tile: [usize; 3],
    img: &Volume,
    blend: Blend,
) -> (Vec<f32>, usize) {
    let c = ctx().unwrap();
    let opts = PredictOptions {
        batch: 2,
        blend,
        tta: false,
        overlap: 0.3,
        precision: wunet::shape::Precision::F32,
        scale: 1.0,
    };
    let mut p = Predictor::new(c, cfg, tile, &opts).unwrap();
    p.load(c, ck, Path::new("(test)")).unwrap();
    let tiles = wunet::infer::tiles::plan(img.dims, &p.geometry, opts.overlap)
        .unwrap()
        .tiles
        .len();
    (p.run(c, img, Output::Logits).unwrap().data, tiles)
}

#[test]
fn tiled_inference_equals_whole_image_2d() {
    if ctx().is_none() {
        return;
    }
    let (cfg, ck) = valid_net(2, 2, &[44, 44]);
    let img = em_cells_2d(4, 70, 53).image;
    let (whole, n1) = logits(&cfg, &ck, [1, 120, 120], &img, Blend::None);
    assert_eq!(n1, 1);
    for blend in [Blend::None, Blend::Gaussian] {
        let (tiled, n) = logits(&cfg, &ck, [1, 48, 52], &img, blend);
        assert!(n >= 6, "{n} tiles");
        assert_close(
            &format!("2D tiled ({blend:?}) vs whole"),
            &tiled,
            &whole,
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn tiled_inference_equals_whole_image_3d() {
    if ctx().is_none() {
        return;
    }
    let (cfg, ck) = valid_net(3, 1, &[22, 22, 22]);
    let img = nuclei_3d(2, [11, 23, 18]).image;
    let (whole, n1) = logits(&cfg, &ck, [40, 40, 40], &img, Blend::None);
    assert_eq!(n1, 1);
    let (tiled, n) = logits(&cfg, &ck, [22, 24, 22], &img, Blend::None);
    assert!(n >= 8, "{n} tiles");
    assert_close("3D tiled vs whole", &tiled, &whole, 1e-4, 1e-4);
}

#[test]
fn large_image_tiled_is_seamless_and_predict_writes_it() {
    let Some(c) = ctx() else { return };
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nuclei2d/nih3t3/image-00.png");
    if !path.exists() {
        eprintln!("skip: {} absent", path.display());
        return;
    }
    let mut img = read_image(&path).unwrap();
    assert_eq!(img.dims, [1, 1024, 1344]);
    wunet::data::dataset::normalize(&mut img, wunet::data::dataset::Normalize::ZScore);
    let (cfg, ck) = valid_net(2, 2, &[44, 44]);
    // whole image in one tile (1384 x 1064 input) vs 256-pixel tiles
    let (whole, n1) = logits(&cfg, &ck, [1, 1064, 1384], &img, Blend::None);
    assert_eq!(n1, 1);
    let n = 1024 * 1344;
    let flat = (0..n)
        .filter(|&i| whole[i] == whole[n + i] && whole[i] == whole[2 * n + i])
        .count();
    assert!(
        flat < n / 10,
        "{flat} pixels with equal logits: a degenerate test net"
    );
    let (tiled, n) = logits(&cfg, &ck, [1, 256, 256], &img, Blend::None);
    assert!(n >= 30, "{n} tiles");
    assert_close("1344x1024 tiled vs whole", &tiled, &whole, 1e-4, 1e-4);
    // the CLI on the same image: a mask of the image's size, equal to the
    // whole-image argmax (ties within float noise aside)
    let dir = tmp("large");
    let mut ck = ck;
    InferMeta {
        blend: "none".into(),
        ..InferMeta::for_model(ModelMeta::from(&cfg), "256")
    }
    .store(&mut ck)
    .unwrap();
    let ckp = dir.join("net.safetensors");
    checkpoint::save(&ckp, &ck).unwrap();
    let out = dir.join("mask.tif");
    let ov = dir.join("overlay.png");
    let (stdout, stderr, ok) = wunet(&[
        "predict",
        "--checkpoint",
        ckp.to_str().unwrap(),
        "--input",
        path.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--overlay",
        ov.to_str().unwrap(),
        "--batch",
        "4",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let mask = read_labels(&out).unwrap();
    assert_eq!(mask.dims, [1, 1024, 1344]);
    let want = wunet::data::ChannelVolume {
        data: whole,
        channels: 3,
        dims: [1, 1024, 1344],
    }
    .argmax();
    // Both sides take the first class on exact ties; only float noise
    // (within 1e-4, checked above) may flip a near-tie.
    let agree = (0..n).filter(|&i| mask.data[i] == want.data[i]).count();
    assert!(agree as f64 >= 0.9999 * n as f64, "{agree} of {n} agree");
    assert!(ov.exists());
    let _ = c;
}

#[test]
fn eval_prints_one_metric_per_line_and_predict_writes_outputs() {
    let Some(run) = trained() else { return };
    let dir = tmp("eval");
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for i in 0..2 {
        let s = em_cells_2d(100 + i, 72, 60);
        let img = s.image.map(|&v| (v.clamp(0.0, 1.0) * 255.0) as u8);
        write_png_gray8(&dir.join(format!("images/s{i}.png")), &img).unwrap();
        write_png_labels(&dir.join(format!("labels/s{i}.png")), &s.labels, 255).unwrap();
    }
    let ckp = run.join("best.safetensors");
    // the data stores membrane (class 1 of the checkpoint's 0/1 labels) as 255
    let (stdout, stderr, ok) = wunet(&[
        "eval",
        "--checkpoint",
        ckp.to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
        "--class-values",
        "0,255",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let mut names = Vec::new();
    for line in stdout.lines() {
        let (name, value) = line.split_once(": ").expect("name: value");
        assert!(
            name.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
            "{line}"
        );
        let v: f64 = value.parse().expect("a number");
        assert!((0.0..=1.0).contains(&v), "{line}");
        names.push(name.to_string());
    }
    assert_eq!(
        names,
        [
            "pixel_error",
            "rand_error",
            "dice_0",
            "dice_1",
            "iou_0",
            "iou_1",
            "mean_dice",
            "isbi_pixel_error",
            "isbi_rand_error",
            "isbi_v_rand_split",
            "isbi_v_rand_merge",
            "isbi_v_info",
            "isbi_v_info_split",
            "isbi_v_info_merge",
            "isbi_threshold_pixel",
            "isbi_threshold_rand",
            "isbi_threshold_info"
        ]
    );
    // both kinds are labelled on stderr
    assert!(
        stderr.contains("isbi_*: the ISBI 2012 challenge"),
        "{stderr}"
    );
    // predict: labels in the data's values (0/255), probabilities, TTA
    let out = dir.join("pred.png");
    let probs = dir.join("probs.npy");
    let (stdout, stderr, ok) = wunet(&[
        "predict",
        "--checkpoint",
        ckp.to_str().unwrap(),
        "--input",
        dir.join("images/s0.png").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--probabilities",
        probs.to_str().unwrap(),
        "--tta",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let m = read_labels(&out).unwrap();
    assert_eq!(m.dims, [1, 72, 60]);
    assert!(m.data.iter().all(|&v| v == 0 || v == 255));
    let p = npyz::NpyFile::new(std::fs::File::open(&probs).unwrap()).unwrap();
    assert_eq!(p.shape(), &[2u64, 72, 60]);
    // `--split val` on a checkpoint written before a configuration key
    // existed (its stored config lacks `overfit`): the defaults fill it in
    let mut ck = checkpoint::load(&ckp).unwrap();
    let cfg = ck.meta.get("config").unwrap().clone();
    let old: String = cfg
        .lines()
        .filter(|l| !l.starts_with("overfit"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(old, cfg);
    ck.meta.insert("config".into(), old);
    let older = dir.join("older.safetensors");
    checkpoint::save(&older, &ck).unwrap();
    let (stdout, stderr, ok) = wunet(&[
        "eval",
        "--checkpoint",
        older.to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
        "--split",
        "val",
        "--class-values",
        "0,255",
    ]);
    assert!(
        ok && stdout.starts_with("pixel_error: "),
        "{stdout}\n{stderr}"
    );
}
