//! Helpers of `tests/zarr.rs`: running `wunet`, tiny checkpoints, writing
//! Zarr v2/v3 inputs, reading outputs back, comparing volumes.

use super::common::ctx;
pub use super::common::predict_args;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use wunet::data::io::{read_labels, write_npy};
use wunet::data::synthetic::nuclei_3d;
use wunet::data::zarr::ZarrSink;
use wunet::data::Array3;
use zarrs::array::{data_type, ArrayBuilder};
use zarrs::filesystem::FilesystemStore;

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wunet-zarr-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn wunet(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wunet"))
        .args(args)
        .env("WUNET_TUNE", "0")
        .envs(env.iter().copied())
        .output()
        .expect("run wunet")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn ok(args: &[&str]) -> String {
    let o = wunet(args, &[]);
    assert!(o.status.success(), "wunet {args:?} failed:\n{}", text(&o));
    text(&o)
}

pub fn fails(args: &[&str]) -> String {
    let o = wunet(args, &[]);
    assert!(
        !o.status.success(),
        "wunet {args:?} should fail:\n{}",
        text(&o)
    );
    text(&o)
}

/// Tiny checkpoints: a 3D model (valid convolutions, z-score) and a 2D one
/// (same padding, percentile normalisation).
pub fn checkpoints() -> Option<&'static (PathBuf, PathBuf)> {
    ctx()?;
    static F: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    Some(F.get_or_init(|| {
        let dir = tmp("ck");
        let (o3, o2) = (
            dir.join("r3").display().to_string(),
            dir.join("r2").display().to_string(),
        );
        ok(&[
            "train",
            "--model",
            "unet3d",
            "--synthetic-images",
            "2",
            "--synthetic-size",
            "20x40x40",
            "--base",
            "2",
            "--depth",
            "1",
            "--patch",
            "20",
            "--batch",
            "1",
            "--tile",
            "24",
            "--steps",
            "12",
            "--seed",
            "3",
            "--out",
            &o3,
        ]);
        ok(&[
            "train",
            "--synthetic-images",
            "3",
            "--synthetic-size",
            "64x64",
            "--base",
            "4",
            "--depth",
            "2",
            "--padding",
            "same",
            "--normalize",
            "percentile",
            "--patch",
            "32",
            "--batch",
            "2",
            "--tile",
            "32",
            "--steps",
            "12",
            "--seed",
            "4",
            "--out",
            &o2,
        ]);
        (
            dir.join("r3/best.safetensors"),
            dir.join("r2/best.safetensors"),
        )
    }))
}

/// Write `data` (u16, `dims` z, y, x) as a Zarr v3 array at `node` of `root`.
pub fn write_v3(root: &Path, node: &str, dims: [usize; 3], chunk: [u64; 3], data: &[u16]) {
    let store = Arc::new(FilesystemStore::new(root).unwrap());
    let shape: Vec<u64> = dims.iter().map(|&v| v as u64).collect();
    let a = ArrayBuilder::new(shape.clone(), chunk.to_vec(), data_type::uint16(), 0u16)
        .build(store, node)
        .unwrap();
    a.store_metadata().unwrap();
    let r: Vec<std::ops::Range<u64>> = shape.iter().map(|&s| 0..s).collect();
    a.store_array_subset(&r, data).unwrap();
}

/// Write `data` (u16, `dims` y, x) as a flat 2D Zarr v3 array at the root.
pub fn write_flat(root: &Path, dims: [usize; 2], chunk: [u64; 2], data: &[u16]) {
    let store = Arc::new(FilesystemStore::new(root).unwrap());
    let shape: Vec<u64> = dims.iter().map(|&v| v as u64).collect();
    let a = ArrayBuilder::new(shape.clone(), chunk.to_vec(), data_type::uint16(), 0u16)
        .build(store, "/")
        .unwrap();
    a.store_metadata().unwrap();
    a.store_array_subset(&[0..shape[0], 0..shape[1]], data)
        .unwrap();
}

/// The volume of the 3D tests: synthetic nuclei as u16 (and the same as .npy).
pub fn volume(dir: &Path, dims: [usize; 3], chunk: [u64; 3]) -> (PathBuf, PathBuf, Vec<u16>) {
    let img = nuclei_3d(7, dims).image;
    let data: Vec<u16> = img
        .data
        .iter()
        .map(|&v| (v * 1000.0).clamp(0.0, 65535.0) as u16)
        .collect();
    let zarr = dir.join("vol.zarr");
    write_v3(&zarr, "/", dims, chunk, &data);
    let npy = dir.join("vol.npy");
    write_npy(&npy, &Array3::from_vec(dims, data.clone()).unwrap()).unwrap();
    (zarr, npy, data)
}

pub fn labels_of(store: &Path) -> Vec<u8> {
    let s = ZarrSink::open(store).unwrap();
    let (shape, _, _) = s.layout();
    s.read::<u8>(shape.iter().map(|&v| 0..v).collect()).unwrap()
}

/// The labels of an in-memory prediction (`wunet predict` to `.npy`), as
/// the bytes a label store holds.
pub fn npy_labels(path: &Path) -> Vec<u8> {
    read_labels(path)
        .unwrap()
        .data
        .iter()
        .map(|&v| v as u8)
        .collect()
}

/// 1 where a label is not background, else 0 (the in-memory output holds
/// the data's label values, the store the class ids).
pub fn foreground(labels: &[u8]) -> Vec<u8> {
    labels.iter().map(|&v| (v > 0) as u8).collect()
}

pub fn probs_of(store: &Path) -> Vec<half::f16> {
    let s = ZarrSink::open(store).unwrap();
    let (shape, _, _) = s.layout();
    s.read::<half::f16>(shape.iter().map(|&v| 0..v).collect())
        .unwrap()
}

pub fn npy_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    npyz::NpyFile::new(&bytes[..])
        .unwrap()
        .into_vec::<f32>()
        .unwrap()
}

/// A `.npy` of f32 values as f16 (what a probability store holds).
pub fn npy_f16(path: &Path) -> Vec<half::f16> {
    npy_f32(path)
        .iter()
        .map(|&v| half::f16::from_f32(v))
        .collect()
}

/// Assert that the probability store holds `want` bit for bit.
pub fn same_probs(store: &Path, want: &[half::f16], what: &str) {
    let bits = |v: &[half::f16]| v.iter().map(|x| x.to_bits()).collect::<Vec<u16>>();
    same(&bits(&probs_of(store)), &bits(want), what);
}

/// Assert `a == b` element by element, reporting the count and first
/// mismatch (not the whole volumes).
pub fn same<T: PartialEq + std::fmt::Debug>(a: &[T], b: &[T], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let bad: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{what}: {} of {} values differ, the first at {i}: {:?} vs {:?}",
            bad.len(),
            a.len(),
            a[i],
            b[i]
        );
    }
}

/// `wunet predict ...` ([`predict_args`]) that must succeed; its output.
pub fn predict_ok(ck: &Path, input: &Path, output: &Path, extra: &[&str]) -> String {
    let a = predict_args(ck, input, output, extra);
    ok(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

/// `wunet predict ...` ([`predict_args`]) that must fail; its output.
pub fn predict_fails(ck: &Path, input: &Path, output: &Path, extra: &[&str]) -> String {
    let a = predict_args(ck, input, output, extra);
    fails(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

pub fn p(x: &Path) -> String {
    x.display().to_string()
}

/// The reference store of the 3D tests' volume, made once by one worker.
pub fn reference(ck3: &Path, dir: &Path, zarr: &Path) -> (PathBuf, PathBuf) {
    let (r, rp) = (dir.join("ref.zarr"), dir.join("ref_p.zarr"));
    predict_ok(
        ck3,
        zarr,
        &r,
        &["--probabilities", &p(&rp), "--chunk", "8x16x16"],
    );
    (r, rp)
}

/// Every other voxel of `data` (`dims`) per axis: a level of a pyramid.
pub fn halve(data: &[u16], dims: [usize; 3]) -> (Vec<u16>, [usize; 3]) {
    let h: [usize; 3] = std::array::from_fn(|a| dims[a].div_ceil(2));
    let mut v = Vec::new();
    for z in 0..h[0] {
        for y in 0..h[1] {
            for x in 0..h[2] {
                v.push(data[((2 * z) * dims[1] + 2 * y) * dims[2] + 2 * x]);
            }
        }
    }
    (v, h)
}

/// A Zarr v2 array of u16, uncompressed, C order.
pub fn write_v2(root: &Path, dims: [usize; 3], chunk: [usize; 3], data: &[u16]) {
    std::fs::create_dir_all(root).unwrap();
    let meta = serde_json::json!({"zarr_format": 2, "shape": dims, "chunks": chunk, "dtype": "<u2",
        "compressor": null, "fill_value": 0, "order": "C", "filters": null});
    std::fs::write(root.join(".zarray"), meta.to_string()).unwrap();
    let n: [usize; 3] = std::array::from_fn(|a| dims[a].div_ceil(chunk[a]));
    for cz in 0..n[0] {
        for cy in 0..n[1] {
            for cx in 0..n[2] {
                let mut bytes = Vec::new();
                for z in 0..chunk[0] {
                    for y in 0..chunk[1] {
                        for x in 0..chunk[2] {
                            let g = [cz * chunk[0] + z, cy * chunk[1] + y, cx * chunk[2] + x];
                            let v = if (0..3).all(|a| g[a] < dims[a]) {
                                data[(g[0] * dims[1] + g[1]) * dims[2] + g[2]]
                            } else {
                                0
                            };
                            bytes.extend(v.to_le_bytes());
                        }
                    }
                }
                std::fs::write(root.join(format!("{cz}.{cy}.{cx}")), bytes).unwrap();
            }
        }
    }
}

/// The peak resident memory a run reports, MiB.
pub fn peak(out: &str) -> f64 {
    let l = out
        .lines()
        .find(|l| l.starts_with("peak resident memory:"))
        .expect("peak line");
    l.split_whitespace().nth(3).unwrap().parse().unwrap()
}
