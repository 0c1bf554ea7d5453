//! Seeded, bounded fuzzing of every loader: valid PNG, TIFF, `.npy` and
//! safetensors files are mutated (bytes flipped, header fields set to huge
//! values, truncated, spliced) and fed through `read_image`, `read_labels`
//! and `checkpoint::load`. Each must return a value or an error naming the
//! file, never panic or allocate beyond the memory budget (set small here).
//! A few seconds in `cargo test --release`; no GPU.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wunet::data::io::{read_image, read_labels, write_npy, write_png_gray8, write_tiff};
use wunet::data::Array3;
use wunet::model_io::checkpoint::{self, Checkpoint, NamedTensor};

/// Cases per format.
const CASES: usize = 300;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wunet-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ramp(dims: [usize; 3]) -> Array3<u8> {
    let n = dims.iter().product::<usize>();
    Array3::from_vec(dims, (0..n).map(|i| (i * 37 % 251) as u8).collect()).unwrap()
}

/// The seed files: one of each format.
fn seeds(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let png = dir.join("seed.png");
    write_png_gray8(&png, &ramp([1, 9, 7])).unwrap();
    let tif = dir.join("seed.tif");
    write_tiff(&tif, &ramp([2, 6, 5]).map(|&v| v as f32)).unwrap();
    let npy = dir.join("seed.npy");
    write_npy(&npy, &ramp([3, 4, 5])).unwrap();
    let st = dir.join("seed.safetensors");
    let mut meta = BTreeMap::new();
    meta.insert("step".to_string(), "3".to_string());
    let ck = Checkpoint {
        tensors: vec![
            NamedTensor {
                name: "a.weight".into(),
                shape: vec![2, 1, 3, 3],
                data: (0..18).map(|i| i as f32 * 0.1).collect(),
            },
            NamedTensor {
                name: "a.bias".into(),
                shape: vec![2],
                data: vec![0.5, -0.5],
            },
        ],
        meta,
    };
    checkpoint::save(&st, &ck).unwrap();
    [png, tif, npy, st]
        .iter()
        .map(|p| {
            let ext = p.extension().unwrap().to_string_lossy().into_owned();
            (ext, std::fs::read(p).unwrap())
        })
        .collect()
}

/// One mutation of `bytes`.
fn mutate(rng: &mut ChaCha8Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let rounds = rng.random_range(1..4);
    for _ in 0..rounds {
        if b.is_empty() {
            b.push(0);
        }
        let at = rng.random_range(0..b.len());
        match rng.random_range(0..7) {
            // flip a bit
            0 => b[at] ^= 1 << rng.random_range(0..8),
            // a random byte
            1 => b[at] = rng.random(),
            // a huge little- or big-endian field (sizes, offsets, counts)
            2 | 3 => {
                let v: [u8; 4] = if rng.random_bool(0.5) {
                    [0xff, 0xff, 0xff, 0x7f]
                } else {
                    [0x7f, 0xff, 0xff, 0xff]
                };
                for (k, x) in v.iter().enumerate() {
                    if let Some(slot) = b.get_mut(at + k) {
                        *slot = *x;
                    }
                }
            }
            // truncate
            4 => b.truncate(at),
            // duplicate a chunk
            5 => {
                let end = (at + rng.random_range(1..32)).min(b.len());
                let chunk = b[at..end].to_vec();
                let to = rng.random_range(0..b.len());
                b.splice(to..to, chunk);
            }
            // zero a run (sizes of 0)
            _ => {
                let end = (at + rng.random_range(1..8)).min(b.len());
                b[at..end].iter_mut().for_each(|x| *x = 0);
            }
        }
    }
    b
}

/// Feed `path` through the loaders of its type; `Err(message)` on a panic.
fn load_all(path: &Path, ext: &str) -> Result<(), String> {
    let p = path.to_path_buf();
    let ext = ext.to_string();
    std::panic::catch_unwind(move || {
        if ext == "safetensors" {
            if let Err(e) = checkpoint::load(&p) {
                assert!(e.to_string().contains("case."), "error names the file: {e}");
            }
        } else {
            for r in [
                read_image(&p).map(|v| v.dims),
                read_labels(&p).map(|v| v.dims),
            ] {
                match r {
                    Ok(d) => assert!(d.iter().all(|&x| x > 0), "zero axis accepted: {d:?}"),
                    Err(e) => assert!(e.to_string().contains("case."), "error names the file: {e}"),
                }
            }
        }
    })
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn mutated_files_give_errors_or_values_never_panics() {
    // a small budget: a header that claims a huge size must be refused, not allocated
    std::env::set_var("WUNET_MAX_LOAD_BYTES", (64u64 << 20).to_string());
    let dir = tmp("loaders");
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let mut failures = Vec::new();
    let mut counts = BTreeMap::new();
    for (ext, bytes) in seeds(&dir) {
        // the seed itself loads
        let seed = dir.join(format!("case.{ext}"));
        std::fs::write(&seed, &bytes).unwrap();
        assert_eq!(load_all(&seed, &ext), Ok(()), "seed .{ext}");
        for i in 0..CASES {
            let m = mutate(&mut rng, &bytes);
            let p = dir.join(format!("case.{ext}"));
            std::fs::write(&p, &m).unwrap();
            if let Err(msg) = load_all(&p, &ext) {
                let keep = dir.join(format!("panic-{i}.{ext}"));
                std::fs::write(&keep, &m).unwrap();
                failures.push(format!("{}: {msg}", keep.display()));
            }
            *counts.entry(ext.clone()).or_insert(0) += 1;
        }
    }
    eprintln!("fuzzed: {counts:?}");
    assert!(failures.is_empty(), "panics:\n{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Headers that claim sizes far beyond the file or the memory budget, and
/// zero-length axes, are refused with the file named, before allocation.
#[test]
fn header_sizes_are_checked_before_allocation() {
    let dir = tmp("headers");
    let npy = |shape: &str, descr: &str| -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while !(h.len() + 11).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend([0u8; 64]);
        b
    };
    let cases = [
        ("huge.npy", npy("(4000000000, 4000000000)", "|u1"), "budget"),
        (
            "overflow.npy",
            npy("(18446744073709551615, 3)", "|u1"),
            "budget",
        ),
        ("zero.npy", npy("(0, 5)", "|u1"), "zero-length"),
        ("zero3.npy", npy("(3, 0, 5)", "<f4"), "zero-length"),
    ];
    for (name, bytes, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = read_image(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
    // a PNG whose header claims 2^31 x 2^31 pixels
    let png = dir.join("seed.png");
    write_png_gray8(&png, &ramp([1, 4, 4])).unwrap();
    let mut b = std::fs::read(&png).unwrap();
    b[16..20].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    b[20..24].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let big = dir.join("big.png");
    std::fs::write(&big, b).unwrap();
    let e = read_image(&big).unwrap_err().to_string();
    assert!(e.contains("big.png"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
