//! Integration tests of the data side: file round trips and errors, dataset
//! discovery (temporary folders and, when present, `../shared/data`), the
//! sampler on real volumes, the weight map against a SciPy reference, the
//! ISBI Rand error, and overlap-tile inference end to end. CPU only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use wunet::data::dataset::{find_pairs, Dataset, DatasetOptions, LabelMapping, Normalize, ValPart};
use wunet::data::io::*;
use wunet::data::metrics::{isbi_rand_error, pixel_error};
use wunet::data::sampler::{Sampler, SamplerOptions};
use wunet::data::synthetic::{synthetic_dataset, SyntheticKind};
use wunet::data::tiling::{plan_tiles, Accumulator, Blend};
use wunet::data::weightmap::{instances_of_class, unet_weight_map, WeightMapOptions};
use wunet::data::{Array3, LabelVolume, Volume};

/// A fresh, empty scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wunet-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skip: {} not present", p.display());
        None
    }
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.contains(".tmp-"), "temporary file {n} left behind");
    }
}

fn ramp<T: Copy>(dims: [usize; 3], f: impl Fn(usize) -> T) -> Array3<T> {
    Array3::from_vec(dims, (0..dims.iter().product()).map(f).collect()).unwrap()
}

#[test]
fn npy_round_trips_every_dtype() {
    let d = scratch("npy");
    let dims = [3, 4, 5];
    let a8 = ramp(dims, |i| (i * 3 % 256) as u8);
    let a16 = ramp(dims, |i| (i * 1000 % 65536) as u16);
    let a32 = ramp(dims, |i| i as i32 - 30);
    let a64 = ramp(dims, |i| i as i64 * 7 - 3);
    let af = ramp(dims, |i| i as f32 * 0.25 - 1.0);
    write_npy(&d.join("u8.npy"), &a8).unwrap();
    write_npy(&d.join("u16.npy"), &a16).unwrap();
    write_npy(&d.join("i32.npy"), &a32).unwrap();
    write_npy(&d.join("i64.npy"), &a64).unwrap();
    write_npy(&d.join("f32.npy"), &af).unwrap();
    assert_eq!(
        read_labels(&d.join("u8.npy")).unwrap(),
        a8.map(|&v| v as i32)
    );
    assert_eq!(
        read_labels(&d.join("u16.npy")).unwrap(),
        a16.map(|&v| v as i32)
    );
    assert_eq!(read_labels(&d.join("i32.npy")).unwrap(), a32);
    assert_eq!(
        read_labels(&d.join("i64.npy")).unwrap(),
        a64.map(|&v| v as i32)
    );
    assert_eq!(read_image(&d.join("f32.npy")).unwrap(), af);
    assert_eq!(
        read_image(&d.join("u16.npy")).unwrap(),
        a16.map(|&v| v as f32)
    );
    // float labels are accepted only when integral
    let e = read_labels(&d.join("f32.npy")).unwrap_err().to_string();
    assert!(e.contains("f32.npy") && e.contains("not an integer"), "{e}");
    no_temp_files(&d);
}

/// A hand-made `.npy` (format 1.0) with the given header dict and payload.
fn raw_npy(path: &Path, dict: &str, payload: &[u8]) {
    let mut header = dict.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(payload);
    std::fs::write(path, b).unwrap();
}

#[test]
fn npy_fortran_order_big_endian_and_2d() {
    let d = scratch("npy-raw");
    // a = [[0, 1, 2], [3, 4, 5]] stored Fortran (column-major), big-endian u16
    let fortran: Vec<u8> = [0u16, 3, 1, 4, 2, 5]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let p = d.join("f.npy");
    raw_npy(
        &p,
        "{'descr': '>u2', 'fortran_order': True, 'shape': (2, 3), }",
        &fortran,
    );
    let v = read_labels(&p).unwrap();
    assert_eq!(v.dims, [1, 2, 3]);
    assert_eq!(v.data, vec![0, 1, 2, 3, 4, 5]);
    // wrong payload length, 1-D shape, unsupported dtype: errors naming the file
    raw_npy(
        &d.join("short.npy"),
        "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
        &[0; 8],
    );
    raw_npy(
        &d.join("oned.npy"),
        "{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }",
        &[0; 24],
    );
    raw_npy(
        &d.join("c16.npy"),
        "{'descr': '<c16', 'fortran_order': False, 'shape': (1, 1), }",
        &[0; 16],
    );
    for f in ["short.npy", "oned.npy", "c16.npy"] {
        let e = read_image(&d.join(f)).unwrap_err().to_string();
        assert!(e.contains(f), "{e}");
    }
}

#[test]
fn png_and_tiff_round_trips() {
    let d = scratch("img");
    let lab = ramp([1, 7, 9], |i| (i % 4) as i32);
    write_png_labels(&d.join("l.png"), &lab, 1).unwrap();
    assert_eq!(read_labels(&d.join("l.png")).unwrap(), lab);
    write_png_labels(&d.join("m.png"), &lab.map(|&v| (v > 1) as i32), 255).unwrap();
    assert_eq!(read_image(&d.join("m.png")).unwrap().data[3], 255.0);
    let g16 = ramp([1, 5, 6], |i| (i * 2000) as u16);
    write_png_gray16(&d.join("g16.png"), &g16).unwrap();
    assert_eq!(
        read_image(&d.join("g16.png")).unwrap(),
        g16.map(|&v| v as f32)
    );
    // RGB: gray for images (Rec. 709), refused for labels
    let rgb: Vec<u8> = (0..6)
        .flat_map(|i| if i == 0 { [200, 100, 50] } else { [9, 9, 9] })
        .collect();
    write_png_rgb(&d.join("c.png"), 3, 2, &rgb).unwrap();
    let g = read_image(&d.join("c.png")).unwrap();
    assert_eq!(g.dims, [1, 2, 3]);
    assert!((g.data[0] - (0.2126 * 200.0 + 0.7152 * 100.0 + 0.0722 * 50.0)).abs() < 1e-3);
    assert_eq!(g.data[1], 9.0);
    let e = read_labels(&d.join("c.png")).unwrap_err().to_string();
    assert!(e.contains("c.png") && e.contains("colour"), "{e}");
    // multi-page TIFF stacks, several sample types
    let vol8 = ramp([4, 6, 5], |i| (i % 251) as u8);
    write_tiff(&d.join("v8.tif"), &vol8).unwrap();
    assert_eq!(
        read_image(&d.join("v8.tif")).unwrap(),
        vol8.map(|&v| v as f32)
    );
    let volf = ramp([3, 4, 7], |i| i as f32 * 0.5 - 3.0);
    write_tiff(&d.join("vf.tiff"), &volf).unwrap();
    assert_eq!(read_image(&d.join("vf.tiff")).unwrap(), volf);
    for (name, lv) in [
        ("l8.tif", ramp([2, 3, 4], |i| i as i32)),
        ("l16.tif", ramp([2, 3, 4], |i| i as i32 * 1000)),
        ("l32.tif", ramp([2, 3, 4], |i| i as i32 * 100_000 - 7)),
    ] {
        write_tiff_labels(&d.join(name), &lv).unwrap();
        assert_eq!(read_labels(&d.join(name)).unwrap(), lv, "{name}");
    }
    // 3D labels cannot go to one PNG; overlays are RGB
    let e = write_png_labels(&d.join("x.png"), &ramp([2, 2, 2], |_| 0), 1).unwrap_err();
    assert!(e.to_string().contains("x.png"));
    assert!(!d.join("x.png").exists());
    let img = ramp([1, 7, 9], |i| i as f32);
    let ov = overlay_rgb(&img, &lab, 0, 0.5).unwrap();
    assert_eq!(ov.len(), 7 * 9 * 3);
    assert_eq!(&ov[0..3], &[0, 0, 0], "class 0 stays gray");
    assert_ne!(ov[3], ov[4], "class 1 is tinted");
    // one bright outlier (16-bit microscopy) does not darken the display range
    let mut img = ramp([1, 20, 20], |i| (i % 20) as f32);
    img.data[7] = 1e6;
    let none = ramp([1, 20, 20], |_| 0);
    let ov = overlay_rgb(&img, &none, 0, 0.5).unwrap();
    let mid = ov[3 * 10] as i32; // value 10 of 0..19
    assert!((mid - 134).abs() < 20, "mid-range pixel shown as {mid}");
    no_temp_files(&d);
}

#[test]
fn unreadable_files_name_the_file() {
    let d = scratch("bad");
    std::fs::write(d.join("junk.png"), b"not a png").unwrap();
    std::fs::write(d.join("junk.tif"), b"II*\0garbage").unwrap();
    std::fs::write(d.join("junk.npy"), b"\x93NUMPY garbage").unwrap();
    std::fs::write(d.join("x.bmp"), b"BM").unwrap();
    for f in ["junk.png", "junk.tif", "junk.npy", "x.bmp", "missing.png"] {
        let e = read_image(&d.join(f)).unwrap_err().to_string();
        assert!(e.contains(f), "error must name {f}: {e}");
    }
    // writing into a folder that does not exist fails cleanly
    let e = write_npy(&d.join("nope/a.npy"), &ramp([1, 1, 2], |i| i as i32)).unwrap_err();
    assert!(e.to_string().contains("a.npy"));
}

fn write_pair(
    dir: &Path,
    img_name: &str,
    lab_name: &str,
    dims: [usize; 3],
    lab: impl Fn(usize) -> i32,
) {
    write_npy(&dir.join(img_name), &ramp(dims, |i| i as f32)).unwrap();
    write_npy(&dir.join(lab_name), &ramp(dims, lab)).unwrap();
}

#[test]
fn dataset_layouts_and_errors() {
    // flat folder, ISBI-style names; unrelated files are ignored
    let d = scratch("flat");
    for i in 0..3 {
        let lab = ramp([1, 4, 5], |j| if (j + i) % 4 == 0 { 0 } else { 255 });
        write_png_labels(&d.join(format!("train-label-{i:02}.png")), &lab, 1).unwrap();
        let img = ramp([1, 4, 5], |j| (j * 10 % 256) as u8);
        write_png_gray8(&d.join(format!("train-image-{i:02}.png")), &img).unwrap();
    }
    std::fs::write(d.join("README.md"), "x").unwrap();
    write_npy(
        &d.join("train-instances-00.npy"),
        &ramp([1, 4, 5], |_| 0i32),
    )
    .unwrap();
    let ds = Dataset::load(&d, &DatasetOptions::default()).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.samples[0].name, "train-image-00");
    assert_eq!(
        ds.labels,
        LabelMapping::Binary {
            foreground: 0,
            background: 255
        }
    );
    assert_eq!(
        ds.samples[1].labels.data[3], 1,
        "stored 0 (rare) became class 1"
    );
    let one = Dataset::load(&d.join("train-label-01.png"), &DatasetOptions::default()).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one.samples[0].name, "train-image-01");
    // a label without its image
    std::fs::remove_file(d.join("train-image-02.png")).unwrap();
    let e = Dataset::load(&d, &DatasetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-label-02.png") && e.contains("no matching image"),
        "{e}"
    );

    // images/ + labels/ subfolders with identical names, npy volumes
    let d = scratch("sub");
    std::fs::create_dir_all(d.join("images")).unwrap();
    std::fs::create_dir_all(d.join("masks")).unwrap();
    write_npy(&d.join("images/a.npy"), &ramp([2, 3, 4], |i| i as f32)).unwrap();
    write_npy(&d.join("masks/a.npy"), &ramp([2, 3, 4], |i| (i % 3) as u8)).unwrap();
    write_npy(&d.join("images/b.npy"), &ramp([2, 3, 4], |i| i as f32)).unwrap();
    let e = Dataset::load(&d, &DatasetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("b.npy") && e.contains("no matching label"),
        "{e}"
    );
    write_npy(&d.join("masks/b.npy"), &ramp([2, 3, 5], |i| (i % 3) as u8)).unwrap();
    let e = Dataset::load(&d, &DatasetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("masks/b.npy") && e.contains("[2, 3, 5]"),
        "size mismatch names the label file: {e}"
    );
    write_npy(&d.join("masks/b.npy"), &ramp([2, 3, 4], |i| (i % 3) as u8)).unwrap();
    let o = DatasetOptions {
        normalize: Normalize::Percentile {
            lo: 1.0,
            hi: 99.0,
            clip: true,
        },
        invert: None,
        ..Default::default()
    };
    let ds = Dataset::load(&d, &o).unwrap();
    assert_eq!((ds.len(), ds.n_classes, ds.is_3d()), (2, 3, true));
    assert_eq!(ds.labels, LabelMapping::AsStored);
    assert!(ds.samples[0]
        .image
        .data
        .iter()
        .all(|&v| (0.0..=1.0).contains(&v)));

    // raw.npy + labels.npy (drosophila naming), ambiguous pairing
    let d = scratch("raw");
    write_pair(&d, "raw.npy", "labels.npy", [2, 2, 2], |i| (i % 2) as i32);
    assert_eq!(find_pairs(&d).unwrap().len(), 1);
    write_npy(&d.join("raw.tif"), &ramp([1, 1, 1], |_| 0u8)).unwrap();
    let e = find_pairs(&d).unwrap_err().to_string();
    assert!(e.contains("ambiguous"), "{e}");
    assert!(Dataset::load(&scratch("empty"), &DatasetOptions::default()).is_err());
}

#[test]
fn shared_datasets_load_with_documented_conventions() {
    if let Some(p) = shared("isbi2012") {
        let ds = Dataset::load(&p, &DatasetOptions::default()).unwrap();
        assert_eq!(ds.len(), 30);
        assert_eq!(
            ds.labels,
            LabelMapping::Binary {
                foreground: 0,
                background: 255
            }
        );
        let c = ds.class_counts();
        let membrane = c[1] as f64 / (c[0] + c[1]) as f64;
        assert!(
            (membrane - 0.2196).abs() < 0.001,
            "membrane (class 1) fraction {membrane}"
        );
        let (tr, va) = ds.split_fraction(0.1).unwrap();
        assert_eq!(tr.len(), 27);
        assert_eq!(
            va.samples
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["train-image-27", "train-image-28", "train-image-29"]
        );
    }
    if let Some(p) = shared("mouse_embryo_nuclei3d") {
        let ds = Dataset::load(&p, &DatasetOptions::default()).unwrap();
        assert_eq!(ds.len(), 1, "instances/markers files are not paired");
        assert_eq!(ds.samples[0].image.dims, [51, 120, 122]);
        assert_eq!(
            ds.labels,
            LabelMapping::Binary {
                foreground: 1,
                background: 0
            }
        );
        let img = &ds.samples[0].image.data;
        let mean = img.iter().map(|&v| v as f64).sum::<f64>() / img.len() as f64;
        assert!(mean.abs() < 1e-4, "z-scored");
        let (tr, va) = ds.split_spatial(0.25, 2, ValPart::Last).unwrap();
        assert_eq!(tr.samples[0].image.dims, [51, 120, 91]);
        assert_eq!(va.samples[0].labels.dims, [51, 120, 31]);
    }
    if let Some(p) = shared("drosophila_vnc_sstem3d") {
        let ds = Dataset::load(&p, &DatasetOptions::default()).unwrap();
        assert_eq!(
            (ds.n_classes, ds.samples[0].image.dims),
            (9, [20, 512, 512])
        );
        assert_eq!(ds.labels, LabelMapping::AsStored);
        let o = DatasetOptions {
            invert: Some(true),
            ..Default::default()
        };
        assert!(Dataset::load(&p, &o).is_err(), "invert on 9 classes");
    }
}

#[test]
fn sampler_on_3d_nuclei_oversamples_foreground() {
    let Some(p) = shared("mouse_embryo_nuclei3d") else {
        return;
    };
    let ds = Arc::new(Dataset::load(&p, &DatasetOptions::default()).unwrap());
    let mut o = SamplerOptions::new([8, 24, 24]);
    o.margin = [2, 4, 4];
    o.batch_size = 6;
    o.augment.elastic.as_mut().unwrap().in_plane = true;
    let s = Sampler::new(ds, o).unwrap();
    let mut with_fg = 0;
    let n_batches = 10;
    for i in 0..n_batches {
        let b = s.batch(i);
        assert_eq!(b.input_dims, [12, 32, 32]);
        assert_eq!(b.images.len(), 6 * 12 * 32 * 32);
        assert_eq!(b.labels.len(), 6 * 8 * 24 * 24);
        assert!(b.images.iter().all(|v| v.is_finite()));
        for k in 0..6 {
            with_fg += b.labels[k * 4608..(k + 1) * 4608].contains(&1) as usize;
        }
    }
    // nuclei fill 2.3 % of the volume; a third of the patches are centred on one
    let frac = with_fg as f64 / (6 * n_batches) as f64;
    eprintln!("patches with foreground: {frac:.2}");
    assert!(frac > 0.3, "patches with foreground: {frac}");
}

#[test]
fn weight_map_matches_scipy_reference_on_isbi() {
    let Some(p) = shared("isbi2012/train-image-00.png") else {
        return;
    };
    let ds = Dataset::load(&p, &DatasetOptions::default()).unwrap();
    let lab = &ds.samples[0].labels;
    let inst = instances_of_class(lab, 0, false);
    assert_eq!(inst.data.iter().copied().max(), Some(136));
    let w = unet_weight_map(lab, 2, &inst, &WeightMapOptions::default()).unwrap();
    // reference: scipy.ndimage.label (4-conn) + distance_transform_edt per
    // cell, no cutoff, w_c = N / (2 n_c) (tools: see the commit message)
    let sum: f64 = w.data.iter().map(|&v| v as f64).sum();
    assert!((sum - 494_581.938).abs() < 2.0, "sum {sum}");
    let max = w.data.iter().copied().fold(0.0f32, f32::max);
    assert!((max - 11.179_521).abs() < 1e-4, "max {max}");
    for (y, x, v) in [
        (0, 84, 7.147_352_8),
        (65, 223, 8.345_137),
        (139, 349, 5.904_678_5),
        (239, 159, 2.279_830_2),
        (305, 123, 8.321_161),
        (360, 21, 3.633_183),
        (511, 274, 8.345_137),
    ] {
        let got = w.data[y * 512 + x];
        assert!((got - v).abs() < 1e-4, "({y}, {x}): {got} vs {v}");
    }
}

#[test]
fn synthetic_dataset_end_to_end() {
    let mut ds = synthetic_dataset(SyntheticKind::EmCells2d, 3, [1, 96, 112], 42).unwrap();
    assert_eq!(ds.n_classes, 2);
    ds.compute_weight_maps(0, &WeightMapOptions::default())
        .unwrap();
    let w = ds.samples[0].weights.as_ref().unwrap();
    assert!(
        w.data.iter().copied().fold(0.0f32, f32::max) > 5.0,
        "border weights between cells"
    );
    let s = Sampler::new(
        Arc::new(ds),
        SamplerOptions {
            batch_size: 2,
            ..SamplerOptions::new([1, 32, 32])
        },
    )
    .unwrap();
    let b = s.batch(0);
    assert_eq!(b.weights.as_ref().map(|w| w.len()), Some(2 * 32 * 32));
    // a global threshold cannot solve it (organelles, shading, noise) but it is far above chance
    let n3 = synthetic_dataset(SyntheticKind::Nuclei3d, 1, [16, 40, 48], 1).unwrap();
    assert!(n3.is_3d());
    let d = &synthetic_dataset(SyntheticKind::EmCells2d, 1, [1, 128, 128], 7)
        .unwrap()
        .samples[0];
    let best = (-20..20)
        .map(|t| {
            let thr = t as f32 * 0.1;
            let pred = d.image.map(|&v| (v < thr) as i32);
            pixel_error(&pred, &d.labels).unwrap()
        })
        .fold(1.0f64, f64::min);
    eprintln!("synthetic EM, best global threshold pixel error: {best:.3}");
    assert!(
        best > 0.02 && best < 0.2,
        "best threshold pixel error {best}"
    );
}

#[test]
fn isbi_rand_error_reacts_to_a_missing_membrane() {
    let Some(p) = shared("isbi2012/train-image-05.png") else {
        return;
    };
    let ds = Dataset::load(&p, &DatasetOptions::default()).unwrap();
    let gt = &ds.samples[0].labels;
    assert_eq!(isbi_rand_error(gt, gt, 0).unwrap().error, 0.0);
    // erase membrane in a 40-px wide vertical band: cells merge across it
    let mut pred = gt.clone();
    for y in 0..512 {
        for x in 236..276 {
            pred.data[y * 512 + x] = 0;
        }
    }
    let s = isbi_rand_error(&pred, gt, 0).unwrap();
    assert!(s.error > 0.01 && s.merge < 0.99 && s.split > 0.99, "{s:?}");
}

/// numpy: np.pad(np.arange(12).reshape(3, 4), ((4, 5), (6, 2)), 'reflect')
#[test]
fn tile_extraction_equals_numpy_reflect_pad() {
    let img: Volume = ramp([1, 3, 4], |i| i as f32);
    let plan = plan_tiles([1, 3, 4], [1, 12, 12], [1, 12, 12], [0; 3]).unwrap();
    let mut t = plan.tiles[0].clone();
    t.in_origin = [0, -4, -6];
    let got = plan.extract(&img, &t).unwrap();
    let rows: [[f32; 12]; 4] = [
        [0., 1., 2., 3., 2., 1., 0., 1., 2., 3., 2., 1.],
        [4., 5., 6., 7., 6., 5., 4., 5., 6., 7., 6., 5.],
        [8., 9., 10., 11., 10., 9., 8., 9., 10., 11., 10., 9.],
        [4., 5., 6., 7., 6., 5., 4., 5., 6., 7., 6., 5.],
    ];
    // numpy rows cycle with period 4: 0 1 2 1 | 0 1 2 1 ... starting at row 0
    for r in 0..12 {
        assert_eq!(&got[r * 12..(r + 1) * 12], &rows[r % 4], "row {r}");
    }
    // 3D: np.pad(np.arange(12).reshape(2, 3, 2), ((1, 2), (2, 0), (1, 3)), 'reflect')
    let v: Volume = ramp([2, 3, 2], |i| i as f32);
    let plan = plan_tiles([2, 3, 2], [5, 5, 6], [5, 5, 6], [0; 3]).unwrap();
    let mut t = plan.tiles[0].clone();
    t.in_origin = [-1, -2, -1];
    let got = plan.extract(&v, &t).unwrap();
    let slab_a = [
        11., 10., 11., 10., 11., 10., 9., 8., 9., 8., 9., 8., 7., 6., 7., 6., 7., 6., 9., 8., 9.,
        8., 9., 8., 11., 10., 11., 10., 11., 10.,
    ];
    let slab_b = [
        5., 4., 5., 4., 5., 4., 3., 2., 3., 2., 3., 2., 1., 0., 1., 0., 1., 0., 3., 2., 3., 2., 3.,
        2., 5., 4., 5., 4., 5., 4.,
    ];
    for (z, want) in [&slab_a, &slab_b, &slab_a, &slab_b, &slab_a]
        .iter()
        .enumerate()
    {
        assert_eq!(&got[z * 30..(z + 1) * 30], &want[..], "z = {z}");
    }
}

/// Every output voxel is owned by exactly one tile, for valid and same
/// geometries, 2D and 3D, images smaller and larger than a tile.
#[test]
fn tiles_cover_every_voxel_once() {
    type Case = ([usize; 3], [usize; 3], [usize; 3], [usize; 3]);
    let cases: [Case; 6] = [
        ([1, 512, 512], [1, 572, 572], [1, 388, 388], [0; 3]),
        ([1, 100, 37], [1, 572, 572], [1, 388, 388], [0; 3]),
        ([1, 1000, 777], [1, 572, 572], [1, 388, 388], [0; 3]),
        ([1, 130, 97], [1, 64, 64], [1, 64, 64], [0, 16, 16]),
        ([51, 120, 122], [44, 132, 132], [4, 44, 44], [0, 0, 0]),
        ([20, 77, 65], [16, 32, 32], [16, 32, 32], [4, 8, 8]),
    ];
    for (img, tin, tout, ov) in cases {
        let plan = plan_tiles(img, tin, tout, ov).unwrap();
        let mut count = vec![0u32; img.iter().product()];
        for t in &plan.tiles {
            for a in 0..3 {
                assert!(t.own_hi[a] <= tout[a] && t.out_origin[a] + t.own_hi[a] <= img[a]);
                assert_eq!(
                    t.in_origin[a],
                    t.out_origin[a] as isize - plan.context[a] as isize
                );
            }
            for z in t.own_lo[0]..t.own_hi[0] {
                for y in t.own_lo[1]..t.own_hi[1] {
                    for x in t.own_lo[2]..t.own_hi[2] {
                        let (zz, yy, xx) = (
                            t.out_origin[0] + z,
                            t.out_origin[1] + y,
                            t.out_origin[2] + x,
                        );
                        count[(zz * img[1] + yy) * img[2] + xx] += 1;
                    }
                }
            }
        }
        assert!(
            count.iter().all(|&c| c == 1),
            "{img:?} {tin:?} {tout:?}: coverage {:?}..",
            &count[..8]
        );
    }
}

/// A fake "network" that returns the centre of its input tile (2 channels:
/// x and -x): assembling its outputs must reproduce the image exactly.
#[test]
fn overlap_tile_inference_reproduces_identity() {
    let img: Volume = ramp([5, 37, 29], |i| ((i * 37) % 101) as f32 - 50.0);
    for (tin, tout, ov, blend) in [
        ([3, 20, 16], [1, 12, 8], [0, 0, 0], Blend::None),
        ([3, 20, 16], [1, 12, 8], [0, 4, 2], Blend::Gaussian),
        ([4, 16, 16], [4, 16, 16], [2, 8, 8], Blend::Gaussian),
        ([8, 64, 64], [8, 64, 64], [0, 0, 0], Blend::None),
    ] {
        let plan = plan_tiles(img.dims, tin, tout, ov).unwrap();
        let mut acc = Accumulator::new(&plan, 2, blend);
        let c = plan.context;
        for t in &plan.tiles {
            let input = plan.extract(&img, t).unwrap();
            let mut out = Vec::with_capacity(2 * tout.iter().product::<usize>());
            for sign in [1.0f32, -1.0] {
                for z in 0..tout[0] {
                    for y in 0..tout[1] {
                        for x in 0..tout[2] {
                            out.push(
                                sign * input[((z + c[0]) * tin[1] + y + c[1]) * tin[2] + x + c[2]],
                            );
                        }
                    }
                }
            }
            acc.add(t, &out).unwrap();
        }
        let res = acc.finish();
        assert_eq!((res.channels, res.dims), (2, img.dims));
        let x = res.channel(0).unwrap();
        let neg = res.channel(1).unwrap();
        for i in 0..img.data.len() {
            let tol = if blend == Blend::None {
                0.0
            } else {
                1e-4 * (1.0 + img.data[i].abs())
            };
            assert!(
                (x.data[i] - img.data[i]).abs() <= tol,
                "{tin:?}/{tout:?}/{blend:?} at {i}: {} vs {}",
                x.data[i],
                img.data[i]
            );
            assert!((neg.data[i] + img.data[i]).abs() <= tol);
        }
    }
    let plan = plan_tiles(img.dims, [3, 20, 16], [1, 12, 8], [0; 3]).unwrap();
    let mut acc = Accumulator::new(&plan, 1, Blend::None);
    assert!(
        acc.add(&plan.tiles[0], &[0.0; 5]).is_err(),
        "wrong tile size"
    );
    let mut foreign = plan.tiles[0].clone();
    foreign.out_origin = [0, 36, 0];
    assert!(
        acc.add(&foreign, &[0.0; 96]).is_err(),
        "tile from another plan"
    );
    let other: Volume = ramp([5, 37, 30], |_| 0.0);
    assert!(plan.extract(&other, &plan.tiles[0]).is_err());
}

#[test]
fn label_volume_helpers() {
    let l: LabelVolume = ramp([2, 2, 2], |i| i as i32);
    assert_eq!(l.section(1).unwrap().data, vec![4, 5, 6, 7]);
}
