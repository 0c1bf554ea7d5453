//! `wunet predict --instances` on Zarr stores, as users run it: each chunk's
//! watershed, then the join across chunk faces. Against the in-memory
//! `wunet predict` on the same volume (the same object voxels, the same
//! objects up to a few voxels near chunk faces), two workers equal to one
//! bit for bit, a join killed half-way and rerun equal to an uninterrupted
//! one, `--status`, a flat (y, x) store of a 2D model, and the error for a
//! semantic checkpoint.
//! (The chunked watershed against the whole-volume one on exact synthetic
//! probabilities: `src/infer/blocks/instances_tests.rs`.)

mod common;
#[path = "zarr/support.rs"]
#[allow(dead_code)] // the helpers of tests/zarr.rs this file does not use
mod support;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use support::*;
use wunet::data::io::write_npy;
use wunet::data::zarr::ZarrSink;
use wunet::data::Array3;

/// The 3D fixture's balls: `[z, y, x, radius]`, some touching.
const BALLS: [[f32; 4]; 5] = [
    [5.0, 9.0, 9.0, 6.0],
    [6.0, 9.0, 20.0, 5.5],
    [7.0, 24.0, 14.0, 7.0],
    [5.0, 27.0, 34.0, 6.0],
    [8.0, 12.0, 40.0, 5.0],
];

/// The 2D fixture's discs (section 0), some touching, some cut by the
/// 17x23 output chunks.
const DISCS: [[f32; 4]; 6] = [
    [0.0, 10.0, 10.0, 6.0],
    [0.0, 11.0, 22.0, 6.5],
    [0.0, 30.0, 15.0, 7.0],
    [0.0, 34.0, 40.0, 6.0],
    [0.0, 14.0, 47.0, 5.5],
    [0.0, 37.0, 55.0, 5.0],
];

/// Balls (ids 1.. in the order of `centres`, `[z, y, x, radius]`, z
/// stretched 1.5x) on a dark background, the image bright inside;
/// `(image u16, ids)`. With `dims[0] = 1` and z = 0: discs.
fn balls(dims: [usize; 3], centres: &[[f32; 4]]) -> (Vec<u16>, Array3<u8>) {
    let mut ids = Array3::filled(dims, 0u8);
    let mut img = vec![0u16; ids.data.len()];
    for z in 0..dims[0] {
        for y in 0..dims[1] {
            for x in 0..dims[2] {
                let mut best = (f32::MAX, 0u8);
                for (k, c) in centres.iter().enumerate() {
                    let d = ((z as f32 - c[0]) * 1.5).powi(2)
                        + (y as f32 - c[1]).powi(2)
                        + (x as f32 - c[2]).powi(2);
                    let r = d / (c[3] * c[3]);
                    if r <= 1.0 && r < best.0 {
                        best = (r, k as u8 + 1);
                    }
                }
                let i = ids.idx(z, y, x);
                ids.data[i] = best.1;
                img[i] = if best.1 > 0 {
                    (3000.0 - 1500.0 * best.0) as u16
                } else {
                    200
                };
            }
        }
    }
    (img, ids)
}

/// A tiny instance model trained (40 steps) on `centres`' balls in `dims`,
/// with the model's `flags`: the image (u16), its .npy and the checkpoint.
/// The data folder holds `img_image.npy` and `img_instances.npy` (with
/// `mask`, also a class mask `img_mask.npy`, which `--instances` must pass
/// over for the ids).
fn train_instance_model(
    dir: &Path,
    dims: [usize; 3],
    centres: &[[f32; 4]],
    mask: bool,
    flags: &[&str],
) -> (Vec<u16>, PathBuf, PathBuf) {
    let (img, ids) = balls(dims, centres);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let npy = data.join("img_image.npy");
    write_npy(&npy, &Array3::from_vec(dims, img.clone()).unwrap()).unwrap();
    if mask {
        write_npy(&data.join("img_mask.npy"), &ids.map(|&v| (v > 0) as u8)).unwrap();
    }
    write_npy(&data.join("img_instances.npy"), &ids).unwrap();
    let run = dir.join("run");
    let (data_s, run_s) = (p(&data), p(&run));
    let mut args = vec!["train", "--data", &data_s, "--instances"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[
        "--base",
        "4",
        "--depth",
        "1",
        "--batch",
        "2",
        "--val-fraction",
        "0.3",
        "--steps",
        "40",
        "--lr",
        "0.01",
        "--seed",
        "3",
        "--out",
        &run_s,
    ]);
    ok(&args);
    (img, npy, run.join("last.safetensors"))
}

/// The 3D instance checkpoint and the volume (Zarr and .npy), made once.
fn fixture() -> Option<&'static (PathBuf, PathBuf, PathBuf)> {
    common::ctx()?;
    static F: std::sync::OnceLock<(PathBuf, PathBuf, PathBuf)> = std::sync::OnceLock::new();
    Some(F.get_or_init(|| {
        let dir = tmp("inst-fixture");
        let dims = [12, 36, 48];
        let flags = [
            "--model", "unet3d", "--patch", "8x24x24", "--tile", "12x32x32",
        ];
        let (img, npy, ck) = train_instance_model(&dir, dims, &BALLS, true, &flags);
        let zarr = dir.join("vol.zarr");
        write_v3(&zarr, "/", dims, [6, 16, 16], &img);
        (ck, zarr, npy)
    }))
}

/// The 2D instance checkpoint, a flat (y, x) Zarr image and the same
/// image as a one-section .npy, made once.
fn fixture_2d() -> Option<&'static (PathBuf, PathBuf, PathBuf)> {
    common::ctx()?;
    static F: std::sync::OnceLock<(PathBuf, PathBuf, PathBuf)> = std::sync::OnceLock::new();
    Some(F.get_or_init(|| {
        let dir = tmp("inst-fixture-2d");
        let flags = ["--padding", "same", "--patch", "24", "--tile", "32"];
        let (img, npy, ck) = train_instance_model(&dir, [1, 48, 64], &DISCS, false, &flags);
        let flat = dir.join("flat.zarr");
        write_flat(&flat, [48, 64], [16, 16], &img);
        (ck, flat, npy)
    }))
}

fn ids_of(store: &Path) -> Vec<u32> {
    let s = ZarrSink::open(store).unwrap();
    let (shape, _, dtype) = s.layout();
    assert!(dtype.starts_with("uint32"), "{}: {dtype}", store.display());
    s.read::<u32>(shape.iter().map(|&v| 0..v).collect())
        .unwrap()
}

/// Ids `1..N` all present; returns N.
fn dense(v: &[u32]) -> u32 {
    let n = v.iter().copied().max().unwrap_or(0);
    let mut seen = vec![false; n as usize + 1];
    for &x in v {
        seen[x as usize] = true;
    }
    assert!(seen.iter().all(|&s| s), "ids 1..{n} not all present");
    n
}

/// `predict` into a store of 5x13x17 chunks (support's `predict_ok`).
fn predict(ck: &Path, input: &Path, out: &Path, extra: &[&str]) -> String {
    let mut flags = vec!["--chunk", "5x13x17"];
    flags.extend(extra);
    predict_ok(ck, input, out, &flags)
}

/// The in-memory `predict --instances` of `input` (a u32 .npy).
fn predict_in_memory(ck: &Path, input: &Path, dir: &Path) -> Vec<u32> {
    let mem = dir.join("mem.npy");
    predict_ok(ck, input, &mem, &[]);
    npyz::NpyFile::new(std::fs::File::open(&mem).unwrap())
        .unwrap()
        .into_vec()
        .unwrap()
}

/// Chunked ids against in-memory ids of the same probabilities: the same
/// object voxels, the object counts within one, each chunked object's
/// voxels >= 95% in its best in-memory object. Returns the chunked count.
fn agree(got: &[u32], want: &[u32], min_objects: u32) -> u32 {
    let (n, m) = (dense(got), dense(want));
    let fg = |v: &[u32]| v.iter().map(|&x| x > 0).collect::<Vec<_>>();
    assert_eq!(fg(got), fg(want), "object voxels");
    let mut pairs: HashMap<(u32, u32), usize> = HashMap::new();
    for (&a, &b) in got.iter().zip(want) {
        if a > 0 {
            *pairs.entry((a, b)).or_default() += 1;
        }
    }
    let mut best: HashMap<u32, usize> = HashMap::new();
    for (&(a, _), &c) in &pairs {
        let e = best.entry(a).or_default();
        *e = (*e).max(c);
    }
    let share = best.values().sum::<usize>() as f64 / got.iter().filter(|&&v| v > 0).count() as f64;
    println!("objects: chunked {n}, in memory {m}; voxels in the matching object: {share:.4}");
    assert!(m >= min_objects, "the fixture's model finds objects ({m})");
    assert!(n.abs_diff(m) <= 1, "objects: chunked {n}, in memory {m}");
    assert!(share >= 0.95, "{share:.4}");
    n
}

#[test]
fn chunked_instances_agree_with_the_in_memory_watershed() {
    let Some((ck, zarr, npy)) = fixture() else {
        return;
    };
    let dir = tmp("inst-agree");
    let want = predict_in_memory(ck, npy, &dir);
    let out = dir.join("one.zarr");
    let report = predict(ck, zarr, &out, &[]);
    assert!(
        report.contains("instances:") && report.contains("joined across chunk faces"),
        "{report}"
    );
    let n = agree(&ids_of(&out), &want, 3);
    let status = ok(&["predict", "--status", out.to_str().unwrap()]);
    assert!(
        status.contains(&format!("instances: joined, {n} objects")),
        "{status}"
    );
}

#[test]
fn a_flat_2d_store_gets_the_in_memory_objects() {
    let Some((ck, flat, npy)) = fixture_2d() else {
        return;
    };
    let dir = tmp("inst-flat");
    let want = predict_in_memory(ck, npy, &dir);
    let out = dir.join("seg.zarr");
    let report = predict_ok(ck, flat, &out, &["--chunk", "1x17x23"]);
    assert!(report.contains("joined across chunk faces"), "{report}");
    let s = ZarrSink::open(&out).unwrap();
    assert_eq!(s.layout().0, vec![48, 64], "a 2D input gives a 2D output");
    let n = agree(&ids_of(&out), &want, 4);
    // the sidecar of a flat store keeps no z faces: one chunk's faces are
    // 2 x (17 + 23) ids at most, not its 17 x 23 ids twice
    let side = out.join(".wunet/instances");
    for e in std::fs::read_dir(&side).unwrap() {
        let len = e.unwrap().metadata().unwrap().len();
        assert!(len < 2 * 17 * 23 * 4, "{}: {len} bytes", side.display());
    }
    let status = ok(&["predict", "--status", out.to_str().unwrap()]);
    assert!(
        status.contains(&format!("instances: joined, {n} objects")),
        "{status}"
    );
}

#[test]
fn two_workers_and_a_killed_join_equal_one_worker() {
    let Some((ck, zarr, _)) = fixture() else {
        return;
    };
    let dir = tmp("inst-workers");
    let one = dir.join("one.zarr");
    predict(ck, zarr, &one, &[]);
    let want = ids_of(&one);
    let again = predict(ck, zarr, &one, &[]);
    assert!(again.contains("joined before"), "{again}");
    assert_eq!(ids_of(&one), want, "a rerun changes nothing");
    // two workers: the first finds chunks missing, the second joins
    let two = dir.join("two.zarr");
    let first = predict(ck, zarr, &two, &["--part", "1/2"]);
    assert!(first.contains("instances: not joined yet"), "{first}");
    let status = ok(&["predict", "--status", two.to_str().unwrap()]);
    assert!(status.contains("instances: not joined yet"), "{status}");
    let second = predict(ck, zarr, &two, &["--part", "2/2"]);
    assert!(second.contains("joined across chunk faces"), "{second}");
    assert_eq!(ids_of(&two), want, "two workers");
    // a join killed after rewriting 3 chunks, then rerun
    let killed = dir.join("killed.zarr");
    let a = predict_args(ck, zarr, &killed, &["--chunk", "5x13x17"]);
    let args: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = wunet(&args, &[("WUNET_FAULT_ABORT_IN_JOIN", "3")]);
    assert!(!o.status.success(), "the fault point aborts:\n{}", text(&o));
    let half = ids_of(&killed);
    assert!(half.iter().any(|&v| v >= 1 << 31), "provisional ids left");
    let rerun = ok(&args);
    assert!(rerun.contains("joined across chunk faces"), "{rerun}");
    assert_eq!(ids_of(&killed), want, "killed join, rerun");
}

#[test]
fn instances_need_an_instance_checkpoint() {
    let Some((ck3, _)) = checkpoints() else {
        return;
    };
    let dir = tmp("inst-semantic");
    let (zarr, _, _) = volume(&dir, [10, 20, 20], [8, 16, 16]);
    let e = predict_fails(ck3, &zarr, &dir.join("x.zarr"), &["--instances"]);
    assert!(e.contains("trained without --instances"), "{e}");
    assert!(!dir.join("x.zarr").exists(), "no store made");
}
