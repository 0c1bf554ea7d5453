//! The embedding example as a user runs it: `examples/segment_texture`
//! headless against `wunet predict` on the same image and checkpoint, and in
//! a window under Xvfb (skipped, saying why, where Xvfb is absent).

mod common;
use common::{ctx, tmp_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use wunet::data::io::{read_image, read_labels, write_png_gray8};
use wunet::data::synthetic::em_cells_2d;
use wunet::data::Array3;

fn tmp(name: &str) -> PathBuf {
    tmp_dir("embed", name)
}

fn run(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let o = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "{} {args:?} failed:\n{text}",
        bin.display()
    );
    text
}

/// `cargo test` builds the examples next to the binaries' folder.
fn example() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_wunet"));
    let p = bin
        .parent()
        .expect("target dir")
        .join("examples")
        .join(format!("segment_texture{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} missing: `cargo test` builds the examples; run `cargo build --release --examples`",
        p.display()
    );
    p
}

/// A small checkpoint trained for 40 steps (confident enough that float
/// differences between backends flip no argmax) and a synthetic 8-bit image of 150 x 203 pixels.
fn fixture() -> &'static (PathBuf, PathBuf) {
    static F: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tmp("fixture");
        let out = dir.join("run");
        let o = out.display().to_string();
        let wunet = Path::new(env!("CARGO_BIN_EXE_wunet"));
        run(
            wunet,
            &[
                "train",
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
                "48",
                "--steps",
                "40",
                "--seed",
                "5",
                "--out",
                &o,
            ],
            &[],
        );
        let img = em_cells_2d(9, 150, 203).image;
        let (lo, hi) = img
            .data
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let bytes: Vec<u8> = img
            .data
            .iter()
            .map(|&v| ((v - lo) / (hi - lo).max(1e-6) * 255.0).round() as u8)
            .collect();
        let png = dir.join("image.png");
        write_png_gray8(&png, &Array3::from_vec(img.dims, bytes).unwrap()).unwrap();
        (out.join("best.safetensors"), png)
    })
}

/// Share of equal values.
fn agreement<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// The headless frame and mask, rendered once.
fn headless() -> &'static (PathBuf, PathBuf) {
    static H: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    H.get_or_init(|| {
        let (ck, img) = fixture();
        let dir = tmp("headless");
        let (frame, mask) = (dir.join("frame.png"), dir.join("mask.png"));
        run(
            &example(),
            &[
                "--checkpoint",
                &ck.display().to_string(),
                "--image",
                &img.display().to_string(),
                "--headless",
                "--out",
                &frame.display().to_string(),
                "--mask-out",
                &mask.display().to_string(),
            ],
            &[],
        );
        (frame, mask)
    })
}

#[test]
fn headless_example_agrees_with_wunet_predict() {
    if ctx().is_none() {
        return;
    }
    let (ck, img) = fixture();
    let (frame, mask) = headless();
    let want = tmp("predict").join("mask.png");
    run(
        Path::new(env!("CARGO_BIN_EXE_wunet")),
        &[
            "predict",
            "--checkpoint",
            &ck.display().to_string(),
            "--input",
            &img.display().to_string(),
            "--output",
            &want.display().to_string(),
        ],
        &[],
    );
    let (a, b) = (read_labels(mask).unwrap(), read_labels(&want).unwrap());
    assert_eq!(a.dims, b.dims);
    let share = agreement(&a.data, &b.data);
    assert!(share >= 0.99, "masks agree on {share:.4} of the pixels");
    let f = read_image(frame).unwrap();
    assert_eq!(f.dims, [1, 150, 203], "frame size");
}

/// A free X display number and the Xvfb serving it, killed on drop.
struct Xvfb(std::process::Child, String);

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_xvfb() -> Option<Xvfb> {
    let n = 90 + std::process::id() % 400;
    let display = format!(":{n}");
    let child = Command::new("Xvfb")
        .args([
            display.as_str(),
            "-screen",
            "0",
            "640x480x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
    for _ in 0..100 {
        if socket.exists() {
            return Some(Xvfb(child, display));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(Xvfb(child, display))
}

#[test]
fn windowed_example_under_xvfb_shows_the_headless_frame() {
    if ctx().is_none() {
        return;
    }
    let Some(x) = start_xvfb() else {
        eprintln!(
            "skip: Xvfb is not installed (Debian package xvfb); the windowed run was not tried"
        );
        return;
    };
    let (ck, img) = fixture();
    let shot = tmp("window").join("shot.png");
    run(
        &example(),
        &[
            "--checkpoint",
            &ck.display().to_string(),
            "--image",
            &img.display().to_string(),
            "--frames",
            "3",
            "--screenshot",
            &shot.display().to_string(),
        ],
        &[("DISPLAY", x.1.as_str())],
    );
    let (frame, _) = headless();
    let (a, b) = (read_image(&shot).unwrap(), read_image(frame).unwrap());
    assert_eq!(a.dims, b.dims, "the window shows the image at its size");
    let share = agreement(&a.data, &b.data);
    assert!(
        share >= 0.99,
        "window and headless frames agree on {share:.4}"
    );
}
