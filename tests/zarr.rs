//! Block-wise prediction of Zarr volumes as users run it (`wunet predict
//! --input vol.zarr --output seg.zarr [--part K/N]`): equal to the
//! in-memory predictor bit for bit, equal across 1 and 4 concurrent worker
//! processes, a killed worker rerun, memory independent of the volume's
//! size, OME-Zarr levels and Zarr v2 input, regions, and clear errors.

mod common;
use common::ctx;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use wunet::data::io::{read_labels, write_npy};
use wunet::data::synthetic::{em_cells_2d, nuclei_3d};
use wunet::data::zarr::ZarrSink;
use wunet::data::Array3;
use zarrs::array::{data_type, ArrayBuilder};
use zarrs::filesystem::FilesystemStore;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wunet-zarr-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn wunet(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wunet"))
        .args(args)
        .env("WUNET_TUNE", "0")
        .envs(env.iter().copied())
        .output()
        .expect("run wunet")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let o = wunet(args, &[]);
    assert!(o.status.success(), "wunet {args:?} failed:\n{}", text(&o));
    text(&o)
}

fn fails(args: &[&str]) -> String {
    let o = wunet(args, &[]);
    assert!(!o.status.success(), "wunet {args:?} should fail:\n{}", text(&o));
    text(&o)
}

/// Tiny checkpoints: a 3D model (valid convolutions, z-score) and a 2D one
/// (same padding, percentile normalisation).
fn checkpoints() -> Option<&'static (PathBuf, PathBuf)> {
    ctx()?;
    static F: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    Some(F.get_or_init(|| {
        let dir = tmp("ck");
        let (o3, o2) = (dir.join("r3").display().to_string(), dir.join("r2").display().to_string());
        ok(&[
            "train", "--model", "unet3d", "--synthetic-images", "2", "--synthetic-size", "20x40x40",
            "--base", "2", "--depth", "1", "--patch", "20", "--batch", "1", "--tile", "24",
            "--steps", "12", "--seed", "3", "--out", &o3,
        ]);
        ok(&[
            "train", "--synthetic-images", "3", "--synthetic-size", "64x64", "--base", "4",
            "--depth", "2", "--padding", "same", "--normalize", "percentile", "--patch", "32",
            "--batch", "2", "--tile", "32", "--steps", "12", "--seed", "4", "--out", &o2,
        ]);
        (dir.join("r3/best.safetensors"), dir.join("r2/best.safetensors"))
    }))
}

/// Write `data` (u16, `dims` z, y, x) as a Zarr v3 array at `node` of `root`.
fn write_v3(root: &Path, node: &str, dims: [usize; 3], chunk: [u64; 3], data: &[u16]) {
    let store = Arc::new(FilesystemStore::new(root).unwrap());
    let shape: Vec<u64> = dims.iter().map(|&v| v as u64).collect();
    let a = ArrayBuilder::new(shape.clone(), chunk.to_vec(), data_type::uint16(), 0u16)
        .build(store, node)
        .unwrap();
    a.store_metadata().unwrap();
    let r: Vec<std::ops::Range<u64>> = shape.iter().map(|&s| 0..s).collect();
    a.store_array_subset(&r, data).unwrap();
}

/// The volume of the 3D tests: synthetic nuclei as u16 (and the same as .npy).
fn volume(dir: &Path, dims: [usize; 3], chunk: [u64; 3]) -> (PathBuf, PathBuf, Vec<u16>) {
    let img = nuclei_3d(7, dims).image;
    let data: Vec<u16> = img.data.iter().map(|&v| (v * 1000.0).clamp(0.0, 65535.0) as u16).collect();
    let zarr = dir.join("vol.zarr");
    write_v3(&zarr, "/", dims, chunk, &data);
    let npy = dir.join("vol.npy");
    write_npy(&npy, &Array3::from_vec(dims, data.clone()).unwrap()).unwrap();
    (zarr, npy, data)
}

fn labels_of(store: &Path) -> Vec<u8> {
    let s = ZarrSink::open(store).unwrap();
    let (shape, _, _) = s.layout();
    s.read::<u8>(shape.iter().map(|&v| 0..v).collect()).unwrap()
}

fn probs_of(store: &Path) -> Vec<half::f16> {
    let s = ZarrSink::open(store).unwrap();
    let (shape, _, _) = s.layout();
    s.read::<half::f16>(shape.iter().map(|&v| 0..v).collect()).unwrap()
}

fn npy_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    npyz::NpyFile::new(&bytes[..]).unwrap().into_vec::<f32>().unwrap()
}

fn p(x: &Path) -> String {
    x.display().to_string()
}

#[test]
fn four_workers_equal_one_worker_and_the_in_memory_predictor() {
    let Some((ck3, _)) = checkpoints() else { return };
    let dir = tmp("workers");
    let (zarr, npy, _) = volume(&dir, [21, 45, 38], [8, 16, 16]);
    let (seg_npy, prob_npy) = (dir.join("seg.npy"), dir.join("prob.npy"));
    ok(&["predict", "--checkpoint", &p(ck3), "--input", &p(&npy), "--output", &p(&seg_npy), "--probabilities", &p(&prob_npy)]);
    let (one, one_p) = (dir.join("one.zarr"), dir.join("one_p.zarr"));
    let flags = |out: &Path, pr: &Path| -> Vec<String> {
        ["predict", "--checkpoint", &p(ck3), "--input", &p(&zarr), "--output", &p(out), "--probabilities", &p(pr), "--chunk", "8x16x16"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let args: Vec<String> = flags(&one, &one_p);
    let out = ok(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert!(out.contains("created the store"), "{out}");
    // the four parts one after another, and four processes at once
    let (four, four_p) = (dir.join("four.zarr"), dir.join("four_p.zarr"));
    for k in 1..=4 {
        let mut a = flags(&four, &four_p);
        a.extend(["--part".into(), format!("{k}/4")]);
        ok(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    }
    let mut procs: Vec<std::process::Child> = (1..=4)
        .map(|k| {
            let mut a = flags(&dir.join("four2.zarr"), &dir.join("four2_p.zarr"));
            a.extend(["--part".into(), format!("{k}/4")]);
            Command::new(env!("CARGO_BIN_EXE_wunet"))
                .args(&a)
                .env("WUNET_TUNE", "0")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in procs.iter_mut() {
        assert!(c.wait().unwrap().success());
    }
    let want = read_labels(&seg_npy).unwrap();
    let want: Vec<u8> = want.data.iter().map(|&v| v as u8).collect();
    let want_p: Vec<half::f16> = npy_f32(&prob_npy).iter().map(|&v| half::f16::from_f32(v)).collect();
    for (s, sp) in [(&one, &one_p), (&four, &four_p), (&dir.join("four2.zarr"), &dir.join("four2_p.zarr"))] {
        assert_eq!(labels_of(s), want, "{}", s.display());
        let got = probs_of(sp);
        assert_eq!(got.len(), want_p.len());
        let bad = got.iter().zip(&want_p).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(bad, 0, "{}: probabilities differ from the in-memory predictor", sp.display());
    }
    let st = ok(&["predict", "--status", &p(&four)]);
    assert!(st.contains("27 of 27 chunks done, 0 missing"), "{st}");
}
