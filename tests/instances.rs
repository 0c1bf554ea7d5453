//! `--instances` end to end on tiny synthetic instance-id data, 2D (16-bit
//! PNG ids) and 3D (.npy ids beside a class mask): train a few steps,
//! predict writes ids 0..N (u16 PNG / u32 .npy), eval prints the instance
//! scores; and the clear errors (class mask given as ids, --instances on a
//! semantic checkpoint). With ../shared's 3D nuclei: see the README's
//! instance run (too long for a test on lavapipe).

mod common;
use common::{ctx, run_wunet as wunet, tmp_dir};
use std::path::{Path, PathBuf};
use wunet::data::io::{read_labels, write_npy, write_png_gray16, write_png_gray8};
use wunet::data::Array3;

fn tmp(name: &str) -> PathBuf {
    tmp_dir("inst", name)
}

/// Bright touching discs / balls (ids 1..) on a dark background; returns
/// (image 0..255, ids).
fn blobs(dims: [usize; 3], seed: usize) -> (Array3<u8>, Array3<i32>) {
    let [d, h, w] = dims;
    let r = (h.min(w) / 5) as f32;
    let mut centres = Vec::new();
    for k in 0..3 {
        let cx = r + 1.0 + (k as f32) * (1.8 * r) + (seed % 3) as f32;
        let cy = h as f32 / 2.0 + ((seed + k) % 3) as f32 - 1.0;
        centres.push((d as f32 / 2.0, cy, cx));
    }
    let mut img = Array3::filled(dims, 20u8);
    let mut ids = Array3::filled(dims, 0i32);
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let mut best = (f32::MAX, 0);
                for (k, c) in centres.iter().enumerate() {
                    let dz = if d > 1 { (z as f32 - c.0) * 1.5 } else { 0.0 };
                    let dd = dz * dz + (y as f32 - c.1).powi(2) + (x as f32 - c.2).powi(2);
                    if dd <= r * r && dd < best.0 {
                        best = (dd, k as i32 + 1);
                    }
                }
                let i = ids.idx(z, y, x);
                ids.data[i] = best.1;
                if best.1 > 0 {
                    img.data[i] = (230.0 - 100.0 * best.0 / (r * r)) as u8;
                }
            }
        }
    }
    (img, ids)
}

const TINY: [&str; 14] = [
    "--base",
    "4",
    "--depth",
    "1",
    "--batch",
    "2",
    "--log-every",
    "1",
    "--seed",
    "3",
    "--val-every",
    "4",
    "--checkpoint-every",
    "4",
];

fn train(data: &Path, out: &Path, extra: &[&str]) -> (String, String, bool) {
    let (d, o) = (data.display().to_string(), out.display().to_string());
    let mut args = vec!["train", "--data", &d, "--out", &o, "--steps", "4"];
    args.extend(TINY);
    args.extend(extra);
    wunet(&args)
}

/// `name: value` lines of `wunet eval`.
fn metric(stdout: &str, name: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in\n{stdout}"))
        .parse()
        .unwrap()
}

/// Ids are 0..N with every id of 1..N present.
fn assert_dense_ids(v: &[i64]) -> i64 {
    let n = v.iter().copied().max().unwrap_or(0);
    assert!(v.iter().all(|&x| x >= 0));
    for id in 1..=n {
        assert!(v.contains(&id), "id {id} of 1..{n} missing");
    }
    n
}

#[test]
fn instances_2d_train_predict_eval_and_errors() {
    if ctx().is_none() {
        return;
    }
    let dir = tmp("2d");
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for i in 0..4 {
        let (img, ids) = blobs([1, 32, 48], i);
        write_png_gray8(&dir.join(format!("images/b{i}.png")), &img).unwrap();
        write_png_gray16(
            &dir.join(format!("labels/b{i}.png")),
            &ids.map(|&v| v as u16),
        )
        .unwrap();
    }
    let run = dir.join("run");
    let (so, se, ok) = train(
        &dir,
        &run,
        &[
            "--instances",
            "--patch",
            "32",
            "--tile",
            "64",
            "--val-fraction",
            "0.25",
            "--neck-ratio",
            "0.4",
        ],
    );
    assert!(ok, "{so}\n{se}");
    assert!(
        se.contains("3 classes") || so.contains("3 classes"),
        "{so}\n{se}"
    );
    let ck = run.join("last.safetensors");
    let out = dir.join("ids.png");
    let b0 = dir.join("images/b0.png");
    let predict_with = |extra: &[&str]| {
        let mut args = vec![
            "predict",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--input",
            b0.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        wunet(&args)
    };
    let (so, se, ok) = predict_with(&[]);
    assert!(ok, "{so}\n{se}");
    // the training key neck_ratio is the checkpoint's default, the flag wins
    assert!(
        so.contains("instances:") && so.contains("neck ratio 0.4"),
        "{so}"
    );
    let (so, se, ok) = predict_with(&["--neck-ratio", "0"]);
    assert!(ok && so.contains("neck ratio 0,"), "{so}\n{se}");
    // the checkpoint's smallest object: 1/20 of its median training blob
    // (discs of radius 6, about 110 pixels, some cut by a neighbour)
    let min_size: usize = so
        .split("objects of >= ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no smallest object size in: {so}"));
    assert!((3..=6).contains(&min_size), "{so}");
    let ids = read_labels(&out).unwrap();
    assert_eq!(ids.dims, [1, 32, 48]);
    assert_dense_ids(&ids.data.iter().map(|&v| v as i64).collect::<Vec<_>>());
    let (so, se, ok) = wunet(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
        "--instances",
    ]);
    assert!(ok, "{so}\n{se}");
    for n in ["instance_ap50", "instance_mean_ap"] {
        assert!((0.0..=1.0).contains(&metric(&so, n)), "{so}");
    }
    assert_eq!(metric(&so, "instance_true_objects"), 12.0, "{so}");
    assert!(metric(&so, "instance_splits") >= 0.0 && metric(&so, "instance_merges") >= 0.0);
    // the watershed's flags: a seed threshold outside [0.5, 1) is refused
    // by name, and --min-size above every object leaves none
    let (so, se, ok) = predict_with(&["--seed-threshold", "0.4"]);
    assert!(
        !ok && se.contains("--seed-threshold 0.4") && se.contains("[0.5, 1)"),
        "{so}\n{se}"
    );
    assert!(!se.contains("panicked"), "{se}");
    let (so, se, ok) = predict_with(&["--min-size", "100000"]);
    assert!(ok && so.contains("instances: 0 objects"), "{so}\n{se}");

    refuses_a_class_mask_as_ids();
    refuses_instances_on_a_semantic_checkpoint(&dir);
}

/// A class mask (every object 255) given as ids: the file and the cause named.
fn refuses_a_class_mask_as_ids() {
    let bad = tmp("2d-mask");
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(bad.join(sub)).unwrap();
    }
    for i in 0..2 {
        let (img, ids) = blobs([1, 32, 48], i);
        let mut mask = ids.map(|&v| if v > 0 { 255u8 } else { 0 });
        mask.data[0] = 255; // a separate one-pixel object
        write_png_gray8(&bad.join(format!("images/m{i}.png")), &img).unwrap();
        write_png_gray8(&bad.join(format!("labels/m{i}.png")), &mask).unwrap();
    }
    let (so, se, ok) = train(&bad, &bad.join("run"), &["--instances", "--patch", "32"]);
    assert!(
        !ok && se.contains("m0.png") && se.contains("class mask"),
        "{so}\n{se}"
    );
    assert!(!se.contains("panicked"), "{se}");
}

/// `--instances` on a checkpoint trained without it.
fn refuses_instances_on_a_semantic_checkpoint(dir: &Path) {
    let sem = dir.join("sem");
    let (so, se, ok) = train(
        dir,
        &sem,
        &[
            "--patch",
            "32",
            "--tile",
            "64",
            "--classes",
            "4",
            "--val-fraction",
            "0.25",
        ],
    );
    assert!(ok, "{so}\n{se}");
    let (so, se, ok) = wunet(&[
        "predict",
        "--checkpoint",
        sem.join("last.safetensors").to_str().unwrap(),
        "--input",
        dir.join("images/b0.png").to_str().unwrap(),
        "--output",
        dir.join("x.png").to_str().unwrap(),
        "--instances",
    ]);
    assert!(
        !ok && se.contains("--instances") && se.contains("trained without"),
        "{so}\n{se}"
    );
}

#[test]
fn instances_3d_npy_ids_beside_a_mask() {
    if ctx().is_none() {
        return;
    }
    let dir = tmp("3d");
    let (img, ids) = blobs([8, 24, 64], 1);
    write_npy(&dir.join("v_image.npy"), &img).unwrap();
    write_npy(&dir.join("v_mask.npy"), &ids.map(|&v| (v > 0) as u8)).unwrap();
    write_npy(&dir.join("v_instances.npy"), &ids.map(|&v| v as u8)).unwrap();
    let run = dir.join("run");
    let (so, se, ok) = train(
        &dir,
        &run,
        &[
            "--instances",
            "--model",
            "unet3d",
            "--patch",
            "8x16x16",
            "--tile",
            "8x32x32",
            "--val-fraction",
            "0.3",
        ],
    );
    assert!(ok, "{so}\n{se}");
    let out = dir.join("ids.npy");
    let (so, se, ok) = wunet(&[
        "predict",
        "--checkpoint",
        run.join("last.safetensors").to_str().unwrap(),
        "--input",
        dir.join("v_image.npy").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{so}\n{se}");
    let f = npyz::NpyFile::new(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(f.shape(), &[8u64, 24, 64]);
    assert_eq!(f.dtype(), npyz::DType::Plain("<u4".parse().unwrap()));
    let v: Vec<u32> = f.into_vec().unwrap();
    assert_dense_ids(&v.iter().map(|&x| x as i64).collect::<Vec<_>>());
    let (so, se, ok) = wunet(&[
        "eval",
        "--checkpoint",
        run.join("last.safetensors").to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{so}\n{se}");
    // the checkpoint's instances = true is picked up without the flag
    assert_eq!(metric(&so, "instance_true_objects"), 3.0, "{so}");
    assert!((0.0..=1.0).contains(&metric(&so, "instance_ap50")), "{so}");
}

/// The neck split on the real nuclei's geometry: the one-hot classes of
/// stage 8's true ids (a perfect network) give back the 8 nuclei whole at
/// the neck ratios `configs/embryo3d_instances.toml` may use, none split
/// or merged (the split is for bridges between nuclei, not for nuclei).
#[test]
fn true_nuclei_stay_whole_under_the_neck_split() {
    use wunet::data::instances::{instance_target, watershed_instances, WatershedOptions};
    use wunet::data::io::read_labels;
    use wunet::data::ChannelVolume;
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/mouse_embryo_nuclei3d/stage08_instances.npy");
    if !f.exists() {
        eprintln!("skip: {} is absent (../shared data)", f.display());
        return;
    }
    let ids = read_labels(&f).unwrap();
    let classes = instance_target(&ids);
    let n = classes.data.len();
    let mut probs = ChannelVolume::zeros(3, classes.dims);
    for (i, &c) in classes.data.iter().enumerate() {
        probs.data[c as usize * n + i] = 1.0;
    }
    let truth = ids.data.iter().copied().max().unwrap_or(0);
    assert_eq!(truth, 8);
    for r in [0.0, 0.3, 0.4, 0.5, 0.6] {
        let opts = WatershedOptions {
            neck_ratio: r,
            ..Default::default()
        };
        let got = watershed_instances(&probs, &opts).unwrap();
        assert_eq!(
            got.data.iter().copied().max(),
            Some(truth),
            "neck ratio {r}"
        );
        // each true nucleus is one predicted object, and only its own
        for id in 1..=truth {
            let mut seen: Vec<i32> = (0..n)
                .filter(|&i| ids.data[i] == id)
                .map(|i| got.data[i])
                .collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(
                seen.len(),
                1,
                "neck ratio {r}: nucleus {id} became {seen:?}"
            );
            assert!(seen[0] > 0, "neck ratio {r}: nucleus {id} lost");
        }
    }
}

#[test]
fn shared_3d_nuclei_load_as_instances() {
    use wunet::data::dataset::{Dataset, DatasetOptions, ValPart};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mouse_embryo_nuclei3d");
    if !dir.join("stage08_instances.npy").exists() {
        eprintln!("skip: {} has no stage08_instances.npy", dir.display());
        return;
    }
    let opts = DatasetOptions {
        instances: true,
        ..Default::default()
    };
    let ds = Dataset::load(&dir, &opts).unwrap();
    assert_eq!((ds.samples.len(), ds.n_classes), (1, 3));
    let s = &ds.samples[0];
    let ids = s.instances.as_ref().unwrap();
    assert_eq!(ids.dims, [51, 120, 122]);
    // the ids file, not the 0/1 mask: 8 nuclei
    assert_eq!(ids.data.iter().copied().max(), Some(8));
    let count = |c: i32| s.labels.data.iter().filter(|&&v| v == c).count();
    let objects = ids.data.iter().filter(|&&v| v > 0).count();
    assert_eq!(count(1) + count(2), objects);
    assert!(count(1) > 0 && count(2) > 0);
    // the validation part (last 40 % along y, as configs/embryo3d_lavapipe.toml)
    let (_, val) = ds.split_spatial(0.4, 1, ValPart::Last).unwrap();
    let v = val.samples[0].instances.as_ref().unwrap();
    let mut seen: Vec<i32> = v.data.iter().copied().filter(|&x| x > 0).collect();
    seen.sort();
    seen.dedup();
    eprintln!("held-out part {:?}: ids {seen:?}", v.dims);
    assert!(!seen.is_empty());
}

#[test]
fn instance_outputs_refuse_what_they_cannot_hold() {
    use wunet::infer::output::write_instances;
    let dir = tmp("outputs");
    let mut ids = Array3::filled([1, 2, 2], 0i32);
    ids.data[3] = 70000;
    let e = write_instances(&dir.join("many.png"), &ids)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("many.png") && e.contains("70000 objects") && e.contains("65535"),
        "{e}"
    );
    // a u32 .npy holds them
    write_instances(&dir.join("many.npy"), &ids).unwrap();
    let f = npyz::NpyFile::new(std::fs::File::open(dir.join("many.npy")).unwrap()).unwrap();
    assert_eq!(f.into_vec::<u32>().unwrap(), vec![0, 0, 0, 70000]);
    let vol = Array3::filled([2, 2, 2], 1i32);
    let e = write_instances(&dir.join("vol.png"), &vol)
        .unwrap_err()
        .to_string();
    assert!(e.contains("vol.png") && e.contains("volume"), "{e}");
}
