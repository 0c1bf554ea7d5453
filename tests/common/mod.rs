//! Shared test helpers: one GPU context per test binary, seeded data, and
//! the `atol + rtol*|ref|` comparison.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use wunet::gpu::{Context, ContextOptions};

/// A fresh, empty scratch folder `<temp>/wunet-<group>-<pid>-<name>`.
pub fn tmp_dir(group: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wunet-{group}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run the `wunet` binary with `args` (no conv tuning): (stdout, stderr, success).
pub fn run_wunet(args: &[&str]) -> (String, String, bool) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wunet"))
        .args(args)
        .env("WUNET_TUNE", "0")
        .output()
        .expect("run wunet");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.success(),
    )
}

/// The arguments of `wunet predict --checkpoint CK --input IN --output OUT EXTRA...`.
pub fn predict_args(
    ck: &std::path::Path,
    input: &std::path::Path,
    output: &std::path::Path,
    extra: &[&str],
) -> Vec<String> {
    let paths = [ck, input, output].map(|p| p.display().to_string());
    let mut a: Vec<String> = vec![
        "predict".into(),
        "--checkpoint".into(),
        paths[0].clone(),
        "--input".into(),
        paths[1].clone(),
        "--output".into(),
        paths[2].clone(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// The test context, or `None` (with a message) where no adapter exists.
pub fn ctx() -> Option<&'static Context> {
    static CTX: OnceLock<Option<Context>> = OnceLock::new();
    CTX.get_or_init(|| {
        // Deterministic kernels, and never the user's tuning cache: the adapter-class
        // defaults unless a test asks for a variant (tests/tune.rs tests the tuner).
        wunet::ops::conv::tune::set_mode(wunet::ops::conv::tune::Mode::Off);
        open_ctx()
    })
    .as_ref()
}

fn open_ctx() -> Option<Context> {
    match Context::new(&ContextOptions::default()) {
        Ok(c) => {
            eprintln!("adapter: {}", c.describe());
            Some(c)
        }
        Err(e) => {
            if std::env::var("WUNET_REQUIRE_GPU").is_ok() {
                panic!("WUNET_REQUIRE_GPU is set but no adapter: {e}");
            }
            eprintln!("skip: no GPU adapter ({e})");
            None
        }
    }
}

/// Deterministic pseudo-random values in [-1, 1) (xorshift).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Fail with the worst element if any `|got - want| > atol + rtol*|want|`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    let mut worst = (0.0f32, 0usize);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let r = (g - w).abs() / (atol + rtol * w.abs());
        if !r.is_finite() || !g.is_finite() {
            panic!("{what}: non-finite at {i}: got {g}, want {w}");
        }
        if r > worst.0 {
            worst = (r, i);
        }
    }
    assert!(
        worst.0 <= 1.0,
        "{what}: worst error ratio {:.3} at {}: got {}, want {}",
        worst.0,
        worst.1,
        got[worst.1],
        want[worst.1]
    );
}

pub mod mixed;

/// Two checkpoints hold the same tensors (names, shapes, bits) at the same step.
pub fn tensors_equal(a: &wunet::model_io::Checkpoint, b: &wunet::model_io::Checkpoint) {
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (x, y) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(x.name, y.name);
        assert_eq!(x.shape, y.shape);
        let same = x
            .data
            .iter()
            .zip(&y.data)
            .all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(same, "tensor {} differs", x.name);
    }
    assert_eq!(a.meta.get("step"), b.meta.get("step"));
}

/// Train a tiny 2D model (4 steps on 4 synthetic 64x64 images, depth 2)
/// into the run folder `out`, with `extra` flags (e.g. `--base`, `--seed`);
/// what it printed, (stdout, stderr).
pub fn train_tiny(out: &std::path::Path, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "train",
        "--synthetic-images",
        "4",
        "--synthetic-size",
        "64x64",
        "--depth",
        "2",
        "--patch",
        "32",
        "--batch",
        "2",
        "--tile",
        "64",
        "--steps",
        "4",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let (stdout, stderr, ok) = run_wunet(&args);
    assert!(ok, "wunet train {extra:?} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// [`train_tiny`] into `dir/name`; its best checkpoint.
pub fn tiny_model(dir: &std::path::Path, name: &str, extra: &[&str]) -> PathBuf {
    train_tiny(&dir.join(name), extra);
    dir.join(name).join("best.safetensors")
}

/// `wunet eval --checkpoint CK... --data DATA --class-values 0,255 EXTRA...`
/// (data whose class 1 is stored as 255, as [`labelled_pngs`] writes it):
/// (stdout, stderr, success).
pub fn eval_labelled(
    cks: &[&std::path::Path],
    data: &std::path::Path,
    extra: &[&str],
) -> (String, String, bool) {
    let mut args = vec!["eval", "--checkpoint"];
    args.extend(cks.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--data", data.to_str().unwrap(), "--class-values", "0,255"]);
    args.extend(extra);
    run_wunet(&args)
}

/// The f32 `.npy` array at `p`: its shape and its values, flattened.
pub fn npy_f32(p: &std::path::Path) -> (Vec<u64>, Vec<f32>) {
    let f = npyz::NpyFile::new(std::fs::File::open(p).unwrap()).unwrap();
    let shape = f.shape().to_vec();
    (shape, f.into_vec::<f32>().unwrap())
}

/// Four labelled PNGs (membrane stored as 255) under `dir/images|labels`.
pub fn labelled_pngs(dir: &std::path::Path) {
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for i in 0..4 {
        let s = wunet::data::synthetic::em_cells_2d(200 + i, 56, 72);
        let img = s.image.map(|&v| (v.clamp(0.0, 1.0) * 255.0) as u8);
        wunet::data::io::write_png_gray8(&dir.join(format!("images/s{i}.png")), &img).unwrap();
        wunet::data::io::write_png_labels(&dir.join(format!("labels/s{i}.png")), &s.labels, 255)
            .unwrap();
    }
}
