//! What the fault tests share: temporary folders, running the built
//! binary, a tiny shared training run, and small data folders.
#![allow(dead_code)]

use super::common::ctx;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use wunet::data::io::write_png_gray8;
use wunet::data::Array3;
use wunet::model_io::checkpoint::{Checkpoint, NamedTensor};

/// A fresh temporary folder named after the test binary's process.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wunet-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn wunet_env(args: &[&str], env: &[(&str, &str)]) -> (String, String, Option<i32>) {
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

pub fn wunet(args: &[&str]) -> (String, String, Option<i32>) {
    wunet_env(args, &[])
}

/// Flags of a tiny 2D run on synthetic data (labels 0/1, class 1 = membrane).
pub const TINY: [&str; 16] = [
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
pub fn trained() -> Option<&'static Path> {
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

pub fn f32_image(dims: [usize; 3], f: impl Fn(usize) -> f32) -> Array3<f32> {
    let n = dims.iter().product::<usize>();
    Array3::from_vec(dims, (0..n).map(f).collect()).unwrap()
}

pub fn labels_u8(dims: [usize; 3], f: impl Fn(usize) -> u8) -> Array3<u8> {
    let n = dims.iter().product::<usize>();
    Array3::from_vec(dims, (0..n).map(f).collect()).unwrap()
}

/// A data folder `images/` + `labels/` with 64x64 PNG pairs; `label(i, k)`
/// gives pixel `k` of image `i`.
pub fn png_folder(name: &str, n: usize, label: impl Fn(usize, usize) -> u8) -> PathBuf {
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

/// Read a safetensors checkpoint without the finiteness check.
pub fn load_unchecked(bytes: &[u8]) -> Checkpoint {
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
