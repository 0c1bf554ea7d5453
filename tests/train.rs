//! Training sanity checks on the GPU executor: the initial loss of a fresh
//! 2-class U-Net is near ln 2, and small U-Nets overfit one crop of real data
//! (2D: ISBI 2012; 3D: mouse embryo nuclei), or synthetic data without ../shared.

mod common;
use common::ctx;
use std::path::Path;
use wunet::data::dataset::{Dataset, DatasetOptions};
use wunet::data::synthetic::{synthetic_dataset, SyntheticKind};
use wunet::graph::Optimizer;
use wunet::models::{Loss, Norm, Padding, UNetConfig};
use wunet::train::session::{Session, SessionSpec};

fn small(dims: usize, base: usize, depth: usize) -> UNetConfig {
    let mut c = if dims == 2 {
        UNetConfig::ronneberger2015()
    } else {
        UNetConfig::cicek2016()
    };
    c.base = base;
    c.depth = depth;
    c.padding = Padding::Same;
    c.norm = Norm::Batch;
    c.in_channels = 1;
    c.classes = 2;
    c.dropout = 0.0;
    c
}

/// One crop `(image, labels)` of `dims` (z, y, x) from real data or synthetic.
fn crop(dims: [usize; 3]) -> (Vec<f32>, Vec<i32>, String) {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let (ds, what) = if dims[0] == 1 && shared.join("isbi2012").exists() {
        let ds = Dataset::load(
            &shared.join("isbi2012/train-image-00.png"),
            &DatasetOptions::default(),
        )
        .ok();
        (ds, "isbi2012 section 00")
    } else if dims[0] > 1 && shared.join("mouse_embryo_nuclei3d").exists() {
        let ds = Dataset::load(
            &shared.join("mouse_embryo_nuclei3d/stage08_image.npy"),
            &DatasetOptions::default(),
        )
        .ok();
        (ds, "mouse_embryo_nuclei3d")
    } else {
        (None, "")
    };
    let (ds, what) = match ds {
        Some(d) => (d, what.to_string()),
        None => {
            eprintln!(
                "skip: {} absent; this test runs on synthetic data instead",
                shared.display()
            );
            let kind = if dims[0] == 1 {
                SyntheticKind::EmCells2d
            } else {
                SyntheticKind::Nuclei3d
            };
            let full = [dims[0].max(1), dims[1] * 2, dims[2] * 2];
            (
                synthetic_dataset(kind, 1, full, 7).expect("synthetic"),
                "synthetic (../shared/data absent)".to_string(),
            )
        }
    };
    let s = &ds.samples[0];
    let d = s.image.dims;
    // The crop (on a coarse grid of origins) whose foreground share is closest to 30%.
    let mut best = ([0usize; 3], f64::MAX);
    for z in (0..=d[0] - dims[0]).step_by(dims[0].max(4) / 2) {
        for y in (0..=d[1] - dims[1]).step_by(dims[1] / 4) {
            for x in (0..=d[2] - dims[2]).step_by(dims[2] / 4) {
                let l = s.labels.crop([z, y, x], dims).expect("crop");
                let fg = l.data.iter().filter(|&&v| v == 1).count() as f64 / l.data.len() as f64;
                if (fg - 0.3).abs() < best.1 {
                    best = ([z, y, x], (fg - 0.3).abs());
                }
            }
        }
    }
    let o = best.0;
    let img = s.image.crop(o, dims).expect("crop");
    let lab = s.labels.crop(o, dims).expect("crop");
    (img.data, lab.data, what)
}

/// Pixel accuracy and foreground (class 1) Dice of 2-class logits.
fn scores(logits: &[f32], labels: &[i32]) -> (f64, f64) {
    let n = labels.len();
    let pred: Vec<i32> = (0..n).map(|i| (logits[n + i] > logits[i]) as i32).collect();
    let correct = (0..n).filter(|&i| pred[i] == labels[i]).count();
    let tp = (0..n).filter(|&i| pred[i] == 1 && labels[i] == 1).count() as f64;
    let p = pred.iter().filter(|&&v| v == 1).count() as f64;
    let t = labels.iter().filter(|&&v| v == 1).count() as f64;
    (correct as f64 / n as f64, 2.0 * tp / (p + t).max(1.0))
}

#[test]
fn initial_loss_is_near_ln2() {
    let Some(c) = ctx() else { return };
    let (img, lab, what) = crop([1, 64, 64]);
    let cfg = small(2, 8, 3);
    for seed in [1u64, 2] {
        let spec = SessionSpec {
            config: cfg.clone(),
            batch: 1,
            spatial: vec![64, 64],
            loss: Loss::cross_entropy(),
            optimizer: None,
            seed,
            keep_grads: false,
            precision: wunet::shape::Precision::F32,
        };
        let mut s = Session::new(c, &spec).unwrap();
        s.set_batch(c, &img, &lab, None).unwrap();
        s.step(c, 0.0).unwrap();
        let l = s.read_loss(c).unwrap();
        let ln2 = std::f32::consts::LN_2;
        eprintln!("initial loss {l} (ln 2 = {ln2}) on {what}, seed {seed}");
        assert!(
            (l - ln2).abs() <= 0.1 * ln2,
            "initial loss {l} is not within 10% of ln 2"
        );
    }
}

fn overfit(dims: usize, spatial: [usize; 3], base: usize, depth: usize, steps: usize) {
    let Some(c) = ctx() else { return };
    let (img, lab, what) = crop(spatial);
    let sp: Vec<usize> = if dims == 2 {
        spatial[1..].to_vec()
    } else {
        spatial.to_vec()
    };
    let cfg = small(dims, base, depth);
    let spec = SessionSpec {
        config: cfg,
        batch: 1,
        spatial: sp,
        loss: Loss::cross_entropy(),
        optimizer: Some(Optimizer::adam()),
        seed: 3,
        keep_grads: false,
        precision: wunet::shape::Precision::F32,
    };
    let mut s = Session::new(c, &spec).unwrap();
    s.set_batch(c, &img, &lab, None).unwrap();
    let t = std::time::Instant::now();
    let fg = lab.iter().filter(|&&v| v == 1).count() as f64 / lab.len() as f64;
    assert!(
        fg > 0.05 && fg < 0.95,
        "{what}: the crop must hold both classes (foreground {fg:.3})"
    );
    let (mut acc, mut dice) = (0.0, 0.0);
    for step in 1..=steps {
        s.step(c, 3e-3).unwrap();
        if step % 25 == 0 || step == steps {
            (acc, dice) = scores(&s.read_logits(c).unwrap(), &lab);
            eprintln!(
                "{dims}D step {step}: loss {:.4} accuracy {acc:.4} fg dice {dice:.4}",
                s.read_loss(c).unwrap()
            );
            if acc >= 0.98 && dice >= 0.9 {
                break;
            }
        }
    }
    eprintln!(
        "{dims}D overfit on {what} (foreground {fg:.3}): accuracy {acc:.4}, fg dice {dice:.4} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(
        acc >= 0.98 && dice >= 0.9,
        "{dims}D: accuracy {acc}, fg dice {dice} after {steps} steps on {what}"
    );
}

#[test]
fn unet2d_overfits_one_64x64_crop() {
    overfit(2, [1, 64, 64], 8, 3, 400);
}

#[test]
fn unet3d_overfits_one_small_crop() {
    overfit(3, [16, 32, 32], 4, 2, 400);
}
