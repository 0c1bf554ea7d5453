//! The embedding example as a user runs it: `examples/segment_texture`
//! headless against `wunet predict` on the same image and checkpoint, and in
//! a window under Xvfb (skipped, saying why, where Xvfb is absent).

mod common;
use common::{ctx, tmp_dir};
use std::io::{BufRead, BufReader};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;
use wunet::data::io::{read_image, read_labels, write_png_gray8};
use wunet::data::synthetic::em_cells_2d;
use wunet::data::Array3;

fn tmp(name: &str) -> PathBuf {
    tmp_dir("embed", name)
}

/// Run `bin`: (its stdout and stderr, success).
fn try_run(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> (String, bool) {
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
    (text, o.status.success())
}

fn run(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let (text, ok) = try_run(bin, args, env);
    assert!(ok, "{} {args:?} failed:\n{text}", bin.display());
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

#[cfg(unix)]
/// An Xvfb server on a display it chose itself (`-displayfd`: it reports
/// the number once it accepts connections), stopped with SIGTERM on drop so
/// it removes its lock file and socket.
struct Xvfb {
    child: Child,
    display: String,
    log: PathBuf,
}

#[cfg(unix)]
impl Xvfb {
    /// What the server wrote to stderr, for skip and failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Some(status)` once the server has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

#[cfg(unix)]
impl Drop for Xvfb {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..40 {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The running server, or why there is none (not installed, exited, no
/// display reported within 30 s, its socket refuses connections).
#[cfg(unix)]
fn start_xvfb() -> Result<Xvfb, String> {
    let log = tmp("xvfb").join("stderr.txt");
    let err = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "640x480x24",
            "-nolisten",
            "tcp",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("Xvfb is not installed (Debian package xvfb): {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let reported = rx.recv_timeout(Duration::from_secs(30));
    let mut x = Xvfb {
        child,
        display: String::new(),
        log,
    };
    let n: u32 = match reported.map(|l| l.trim().parse()) {
        Ok(Ok(n)) => n,
        _ => {
            // A closed pipe comes just before the exit status: give it a moment.
            for _ in 0..20 {
                if x.exited().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let how = match x.exited() {
                Some(s) => format!("exited ({s})"),
                None => "reported no display within 30 s".to_string(),
            };
            return Err(format!("Xvfb {how}: {}", x.log().trim()));
        }
    };
    x.display = format!(":{n}");
    let socket = format!("/tmp/.X11-unix/X{n}");
    UnixStream::connect(&socket)
        .map_err(|e| format!("Xvfb reported display :{n} but {socket} refuses: {e}"))?;
    Ok(x)
}

#[cfg(unix)]
#[test]
fn windowed_example_under_xvfb_shows_the_headless_frame() {
    if ctx().is_none() {
        return;
    }
    let mut x = match start_xvfb() {
        Ok(x) => x,
        Err(why) => {
            eprintln!(
                "skip: no X display for the windowed run ({why}); the headless test still ran"
            );
            return;
        }
    };
    let (ck, img) = fixture();
    let shot = tmp("window").join("shot.png");
    let (text, ok) = try_run(
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
        &[("DISPLAY", x.display.as_str())],
    );
    if !ok {
        // The server going away under the example is the machine's doing, not the
        // example's: say so and skip. Any other failure fails the test.
        if let Some(status) = x.exited() {
            eprintln!(
                "skip: Xvfb on {} exited ({status}) during the windowed run: {}\nexample said: {text}",
                x.display,
                x.log().trim()
            );
            return;
        }
        panic!(
            "segment_texture under Xvfb {} failed:\n{text}\nXvfb said: {}",
            x.display,
            x.log()
        );
    }
    let (frame, _) = headless();
    let (a, b) = (read_image(&shot).unwrap(), read_image(frame).unwrap());
    assert_eq!(a.dims, b.dims, "the window shows the image at its size");
    let share = agreement(&a.data, &b.data);
    assert!(
        share >= 0.99,
        "window and headless frames agree on {share:.4}"
    );
}
