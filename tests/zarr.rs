//! Block-wise prediction of Zarr volumes as users run it (`wunet predict
//! --input vol.zarr --output seg.zarr [--part K/N]`): equal to the
//! in-memory predictor bit for bit, equal across 1 and 4 concurrent worker
//! processes, a killed worker rerun, memory independent of the volume's
//! size, OME-Zarr levels and Zarr v2 input, regions, and clear errors.

mod common;
#[path = "zarr/support.rs"]
mod support;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use support::*;
use wunet::data::io::{read_labels, write_npy};
use wunet::data::normalize::Normalize;
use wunet::data::synthetic::em_cells_2d;
use wunet::data::zarr::{ZarrSink, ZarrSource};
use wunet::data::Array3;
use wunet::infer::blocks::stats::volume_stats;
use zarrs::array::{data_type, ArrayBuilder};
use zarrs::filesystem::FilesystemStore;

#[test]
fn four_workers_equal_one_worker_and_the_in_memory_predictor() {
    let Some((ck3, _)) = checkpoints() else {
        return;
    };
    let dir = tmp("workers");
    let (zarr, npy, _) = volume(&dir, [21, 45, 38], [8, 16, 16]);
    let (seg_npy, prob_npy) = (dir.join("seg.npy"), dir.join("prob.npy"));
    // Gaussian blending (the valid-padding checkpoint's default is none; the
    // other tests use that)
    predict_ok(
        ck3,
        &npy,
        &seg_npy,
        &["--probabilities", &p(&prob_npy), "--blend", "gaussian"],
    );
    let (one, one_p) = (dir.join("one.zarr"), dir.join("one_p.zarr"));
    let flags = |out: &Path, pr: &Path| -> Vec<String> {
        let pr = p(pr);
        let extra = [
            "--probabilities",
            &pr,
            "--chunk",
            "8x16x16",
            "--blend",
            "gaussian",
        ];
        predict_args(ck3, &zarr, out, &extra)
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
    let want = npy_labels(&seg_npy);
    let want_p = npy_f16(&prob_npy);
    for (s, sp) in [
        (&one, &one_p),
        (&four, &four_p),
        (&dir.join("four2.zarr"), &dir.join("four2_p.zarr")),
    ] {
        same(&labels_of(s), &want, &s.display().to_string());
        let what = format!(
            "{}: probabilities against the in-memory predictor",
            sp.display()
        );
        same_probs(sp, &want_p, &what);
    }
    let st = ok(&["predict", "--status", &p(&four)]);
    assert!(st.contains("27 of 27 chunks done, 0 missing"), "{st}");
}

#[test]
fn a_killed_worker_rerun_gives_the_same_store() {
    let Some((ck3, _)) = checkpoints() else {
        return;
    };
    let dir = tmp("killed");
    let (zarr, _, _) = volume(&dir, [17, 40, 33], [8, 16, 16]);
    let (r, rp) = reference(ck3, &dir, &zarr);
    let (k, kp) = (dir.join("k.zarr"), dir.join("k_p.zarr"));
    let kp_ = p(&kp);
    let args = predict_args(
        ck3,
        &zarr,
        &k,
        &["--probabilities", &kp_, "--chunk", "8x16x16"],
    );
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    // killed after writing its 3rd chunk's arrays, before the chunk's marker
    let o = wunet(&args, &[("WUNET_FAULT_ABORT_BEFORE_MARK", "3")]);
    assert!(
        !o.status.success(),
        "the fault hook did not abort:\n{}",
        text(&o)
    );
    let st = ok(&["predict", "--status", &p(&k)]);
    assert!(st.contains("2 of 27 chunks done, 25 missing"), "{st}");
    // the unmarked chunk is half written, as a kill during the write leaves it
    let c = k.join("0/c/0/0/2");
    let bytes = std::fs::read(&c).expect("the 3rd chunk was written before the abort");
    std::fs::write(&c, &bytes[..bytes.len() / 2]).unwrap();
    let out = ok(&args);
    assert!(
        out.contains("25 of its 27 chunks predicted, 2 already done"),
        "{out}"
    );
    same(&labels_of(&k), &labels_of(&r), "labels after the rerun");
    same(
        &probs_of(&kp),
        &probs_of(&rp),
        "probabilities after the rerun",
    );
    // part 2/2 killed after one chunk, then rerun by another worker; part 1/2 as well
    let (m, mp) = (dir.join("m.zarr"), dir.join("m_p.zarr"));
    let mp_ = p(&mp);
    let margs = predict_args(
        ck3,
        &zarr,
        &m,
        &["--probabilities", &mp_, "--chunk", "8x16x16"],
    );
    let margs: Vec<&str> = margs.iter().map(|s| s.as_str()).collect();
    let mut a2 = margs.to_vec();
    a2.extend(["--part", "2/2"]);
    let o = wunet(&a2, &[("WUNET_FAULT_ABORT_AFTER_CHUNKS", "1")]);
    assert!(!o.status.success());
    ok(&a2);
    let mut a1 = margs.to_vec();
    a1.extend(["--part", "1/2"]);
    ok(&a1);
    same(&labels_of(&m), &labels_of(&r), "labels of the rerun part");
    same(
        &probs_of(&mp),
        &probs_of(&rp),
        "probabilities of the rerun part",
    );
}

#[test]
fn a_2d_model_on_a_stack_and_on_a_2d_array_equals_the_in_memory_predictor() {
    let Some((_, ck2)) = checkpoints() else {
        return;
    };
    let dir = tmp("twod");
    // a stack of sections, each normalised on its own (percentiles)
    let (zarr, npy, _) = volume(&dir, [5, 50, 70], [2, 32, 32]);
    let (seg, out) = (dir.join("seg.npy"), dir.join("seg.zarr"));
    predict_ok(ck2, &npy, &seg, &[]);
    predict_ok(ck2, &zarr, &out, &["--chunk", "2x24x24"]);
    same(
        &foreground(&labels_of(&out)),
        &foreground(&npy_labels(&seg)),
        "2D model on a stack",
    );
    // a 2D array (y, x) gives a 2D label array
    let img = em_cells_2d(3, 61, 87).image;
    let data: Vec<u16> = img
        .data
        .iter()
        .map(|&v| (v * 3000.0).clamp(0.0, 65535.0) as u16)
        .collect();
    let flat = dir.join("flat.zarr");
    write_flat(&flat, [61, 87], [32, 32], &data);
    let npy2 = dir.join("flat.npy");
    write_npy(&npy2, &Array3::from_vec([1, 61, 87], data).unwrap()).unwrap();
    let (seg2, out2) = (dir.join("seg2.npy"), dir.join("seg2.zarr"));
    predict_ok(ck2, &npy2, &seg2, &[]);
    predict_ok(ck2, &flat, &out2, &["--chunk", "1x40x40"]);
    let s = ZarrSink::open(&out2).unwrap();
    assert_eq!(s.layout().0, vec![61, 87], "a 2D input gives a 2D output");
    same(
        &foreground(&labels_of(&out2)),
        &foreground(&npy_labels(&seg2)),
        "2D array",
    );
}

#[test]
fn scaled_prediction_equals_the_in_memory_scaled_predictor() {
    let Some((ck3, ck2)) = checkpoints() else {
        return;
    };
    let dir = tmp("scaled");
    // a 3D model, the volume enlarged 1.5x in (y, x), chunks that cut the
    // resized tiles anywhere, probabilities compared too
    let (zarr, npy, _) = volume(&dir, [13, 31, 26], [8, 16, 16]);
    let (seg_npy, prob_npy) = (dir.join("seg.npy"), dir.join("prob.npy"));
    let scale = ["--scale", "1.5", "--blend", "gaussian"];
    let prob = p(&prob_npy);
    predict_ok(
        ck3,
        &npy,
        &seg_npy,
        &[&["--probabilities", prob.as_str()], &scale[..]].concat(),
    );
    let (out, out_p) = (dir.join("seg.zarr"), dir.join("seg_p.zarr"));
    let outp = p(&out_p);
    let flags = [
        &["--probabilities", outp.as_str(), "--chunk", "8x16x16"],
        &scale[..],
    ]
    .concat();
    predict_ok(ck3, &zarr, &out, &flags);
    same(&labels_of(&out), &npy_labels(&seg_npy), "3D, --scale 1.5");
    same_probs(
        &out_p,
        &npy_f16(&prob_npy),
        "probabilities under --scale 1.5",
    );
    // (the scale changes the result: the comparison above is not blind to it)
    let plain = dir.join("plain.npy");
    predict_ok(ck3, &npy, &plain, &["--blend", "gaussian"]);
    assert_ne!(
        read_labels(&plain).unwrap().data,
        read_labels(&seg_npy).unwrap().data
    );
    // the store records the scale: a rerun with another one is refused
    let mut again = flags.clone();
    again[5] = "2";
    let e = predict_fails(ck3, &zarr, &out, &again);
    assert!(e.contains("scale = 1.5") && e.contains("scale = 2"), "{e}");
    // a 2D model on a stack, shrunk (0.7x)
    let dir = tmp("scaled2d");
    let (stack, stack_npy, _) = volume(&dir, [3, 50, 44], [2, 32, 32]);
    let (seg2, out2) = (dir.join("seg2.npy"), dir.join("seg2.zarr"));
    predict_ok(ck2, &stack_npy, &seg2, &["--scale", "0.7"]);
    predict_ok(
        ck2,
        &stack,
        &out2,
        &["--scale", "0.7", "--chunk", "2x24x24"],
    );
    same(
        &foreground(&labels_of(&out2)),
        &foreground(&npy_labels(&seg2)),
        "2D model on a stack, --scale 0.7",
    );
}

#[test]
fn ome_zarr_levels_zarr_v2_and_regions() {
    let Some((ck3, _)) = checkpoints() else {
        return;
    };
    let dir = tmp("ome");
    let dims = [30, 64, 50];
    let (zarr, _, data) = volume(&dir, dims, [8, 16, 16]);
    // an OME-Zarr 0.4 image: levels s0 and s1 (every other voxel)
    let ome = dir.join("img.zarr");
    write_v3(&ome, "/s0", dims, [8, 16, 16], &data);
    let (half_data, hd) = halve(&data, dims);
    write_v3(&ome, "/s1", hd, [8, 16, 16], &half_data);
    let store = Arc::new(FilesystemStore::new(&ome).unwrap());
    let mut g = zarrs::group::GroupBuilder::new().build(store, "/").unwrap();
    g.attributes_mut().insert(
        "multiscales".into(),
        serde_json::json!([{"version": "0.4", "axes": [{"name": "z"}, {"name": "y"}, {"name": "x"}],
            "datasets": [{"path": "s0"}, {"path": "s1"}]}]),
    );
    g.store_metadata().unwrap();
    let npy1 = dir.join("s1.npy");
    write_npy(&npy1, &Array3::from_vec(hd, half_data.clone()).unwrap()).unwrap();
    let (seg1, out1) = (dir.join("s1seg.npy"), dir.join("s1seg.zarr"));
    predict_ok(ck3, &npy1, &seg1, &[]);
    predict_ok(ck3, &ome, &out1, &["--level", "1"]);
    let want = npy_labels(&seg1);
    same(&labels_of(&out1), &want, "level 1 of the OME-Zarr image");
    let e = predict_fails(ck3, &ome, &dir.join("x.zarr"), &["--level", "2"]);
    assert!(e.contains("--level 2") && e.contains("2 levels"), "{e}");
    // the same level as a Zarr v2 array (raw little-endian chunks, written by hand)
    let v2 = dir.join("v2.zarr");
    write_v2(&v2, hd, [8, 16, 16], &half_data);
    let out2 = dir.join("v2seg.zarr");
    predict_ok(ck3, &v2, &out2, &[]);
    same(&labels_of(&out2), &want, "Zarr v2 input");
    // Zarr v2 outputs (OME-Zarr 0.4): the same values, v2 metadata
    let out3 = dir.join("v2out.zarr");
    predict_ok(
        ck3,
        &v2,
        &out3,
        &["--zarr-format", "2", "--compression", "blosc"],
    );
    assert!(out3.join("0/.zarray").is_file() && !out3.join("zarr.json").exists());
    let zattrs = std::fs::read_to_string(out3.join(".zattrs")).unwrap();
    assert!(
        zattrs.contains("multiscales") && zattrs.contains("\"wunet\""),
        "{zattrs}"
    );
    same(&labels_of(&out3), &want, "Zarr v2 output");
    let st = ok(&["predict", "--status", &p(&out3)]);
    assert!(st.contains("0 missing"), "{st}");
    // a region: equal to the whole run inside, zero outside, only its chunks
    let (r, _) = reference(ck3, &dir, &zarr);
    let roi = dir.join("roi.zarr");
    let o = predict_ok(
        ck3,
        &zarr,
        &roi,
        &["--chunk", "8x16x16", "--roi", "3:12,20:41,9:30"],
    );
    assert!(o.contains("8 chunks [8, 16, 16] in the region"), "{o}");
    let (full, part) = (labels_of(&r), labels_of(&roi));
    for z in 0..dims[0] {
        for y in 0..dims[1] {
            for x in 0..dims[2] {
                let i = (z * dims[1] + y) * dims[2] + x;
                let inside = (3..12).contains(&z) && (20..41).contains(&y) && (9..30).contains(&x);
                assert_eq!(
                    part[i],
                    if inside { full[i] } else { 0 },
                    "voxel {z} {y} {x}"
                );
            }
        }
    }
}

#[test]
fn streamed_statistics_equal_the_in_memory_ones() {
    use wunet::data::normalize::NormStats;
    let dir = tmp("stats");
    let dims = [5, 37, 29];
    let (zarr, _, data) = volume(&dir, dims, [2, 16, 8]);
    let src = ZarrSource::open(&zarr, 0).unwrap();
    let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
    let modes = [
        Normalize::ZScore,
        Normalize::from_key("robust", true).unwrap(),
        Normalize::Log,
    ];
    for mode in modes {
        let whole = volume_stats(&src, mode, false).unwrap();
        assert_eq!(whole, vec![NormStats::of(&v, dims[2], mode)], "{mode:?}");
        let per = volume_stats(&src, mode, true).unwrap();
        let want: Vec<NormStats> = v
            .chunks(dims[1] * dims[2])
            .map(|s| NormStats::of(s, dims[2], mode))
            .collect();
        assert_eq!(per, want, "{mode:?} per section");
    }
}

#[test]
fn mismatched_corrupt_and_wrong_inputs_are_named_errors() {
    let Some((ck3, _)) = checkpoints() else {
        return;
    };
    let dir = tmp("errors");
    let (zarr, _, _) = volume(&dir, [17, 40, 33], [8, 16, 16]);
    let out = dir.join("seg.zarr");
    predict_ok(ck3, &zarr, &out, &[]);
    let run = |extra: &[&str]| predict_fails(ck3, &zarr, &out, extra);
    let e = run(&["--overlap", "0.5"]);
    assert!(
        e.contains("overlap = 0.25") && e.contains("overlap = 0.5") && e.contains("seg.zarr"),
        "{e}"
    );
    let e = run(&["--part", "5/4"]);
    assert!(e.contains("--part '5/4'"), "{e}");
    let e = run(&["--roi", "0:5,0:99,0:3"]);
    assert!(e.contains("--roi"), "{e}");
    let e = predict_fails(
        ck3,
        &zarr,
        &dir.join("small.zarr"),
        &["--max-memory", "10KiB"],
    );
    assert!(e.contains("--max-memory"), "{e}");
    let e = predict_fails(ck3, &zarr, &dir.join("seg.tif"), &[]);
    assert!(e.contains("must both be .zarr"), "{e}");
    let e = fails(&["predict", "--status", &p(&zarr)]);
    assert!(e.contains("not a store that wunet made"), "{e}");
    // equalising needs every voxel's rank: refused, naming the mode
    let src = ZarrSource::open(&zarr, 0).unwrap();
    let e = volume_stats(&src, Normalize::Equalize(Default::default()), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("normalize = equalize") && e.contains("block-wise"),
        "{e}"
    );
    // a damaged input chunk: the error names the array and the chunk
    let c = zarr.join("c/1/2/0");
    std::fs::write(&c, b"garbage").unwrap();
    let e = predict_fails(ck3, &zarr, &dir.join("other.zarr"), &[]);
    assert!(
        e.contains("vol.zarr") && e.contains("[1, 2, 0]") && e.contains("c/1/2/0"),
        "{e}"
    );
    // a non-finite value in a float array
    let f = dir.join("nan.zarr");
    let store = Arc::new(FilesystemStore::new(&f).unwrap());
    let a = ArrayBuilder::new(
        vec![10, 20, 20],
        vec![5, 10, 10],
        data_type::float32(),
        0f32,
    )
    .build(store, "/")
    .unwrap();
    a.store_metadata().unwrap();
    let mut v = vec![1.0f32; 4000];
    v[(7 * 20 + 13) * 20 + 4] = f32::NAN;
    a.store_array_subset(&[0..10u64, 0..20, 0..20], &v[..])
        .unwrap();
    let e = predict_fails(ck3, &f, &dir.join("nan_seg.zarr"), &[]);
    assert!(
        e.contains("nan.zarr") && e.contains("[7, 13, 4]") && e.contains("finite"),
        "{e}"
    );
}

#[test]
fn memory_does_not_grow_with_the_volume() {
    let Some((ck3, _)) = checkpoints() else {
        return;
    };
    let dir = tmp("memory");
    let mut zarr_peaks = Vec::new();
    let mut mem_peaks = Vec::new();
    for (i, dims) in [[16, 128, 128], [32, 256, 256]].into_iter().enumerate() {
        let d = dir.join(format!("v{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let (zarr, npy, _) = volume(&d, dims, [16, 64, 64]);
        let o = predict_ok(ck3, &zarr, &d.join("s.zarr"), &["--max-memory", "24MiB"]);
        zarr_peaks.push(peak(&o));
        let o = predict_ok(ck3, &npy, &d.join("s.npy"), &[]);
        mem_peaks.push(peak(&o));
    }
    let (dz, dm) = (zarr_peaks[1] - zarr_peaks[0], mem_peaks[1] - mem_peaks[0]);
    eprintln!("peak MiB, 8x the voxels: block-wise {zarr_peaks:?} (+{dz:.1}), in memory {mem_peaks:?} (+{dm:.1})");
    assert!(
        dz < 12.0,
        "block-wise peak grew by {dz:.1} MiB with the volume ({zarr_peaks:?})"
    );
    assert!(
        dm > 3.0 * dz.max(4.0),
        "the in-memory path should grow ({mem_peaks:?}): is the measurement blind?"
    );
}

/// A seeded, untrained 2D network (same padding, 2 classes, percentile
/// normalisation) saved as a checkpoint: its output follows its input, as
/// the tiny trained one's does not at these sizes.
fn seeded_2d_checkpoint(c: &wunet::Context, path: &Path) {
    use wunet::exec::{ExecOptions, Executor};
    use wunet::model_io::{InferMeta, ModelMeta};
    use wunet::models::{build_unet_with, Mode, Padding, UNetConfig};
    let mut cfg = UNetConfig::ronneberger2015();
    (cfg.base, cfg.depth, cfg.padding, cfg.dropout) = (4, 2, Padding::Same, 0.0);
    let net = build_unet_with(
        &cfg,
        1,
        &[32, 32],
        &Mode::Inference,
        wunet::shape::Precision::F32,
    )
    .unwrap();
    let opts = ExecOptions {
        seed: 9,
        keep: vec![],
        ..Default::default()
    };
    let mut ck = Executor::new(c, net.graph, &opts)
        .unwrap()
        .export(c)
        .unwrap();
    InferMeta {
        normalize: "percentile".into(),
        ..InferMeta::for_model(ModelMeta::from(&cfg), "32")
    }
    .store(&mut ck)
    .unwrap();
    wunet::model_io::checkpoint::save(path, &ck).unwrap();
}

#[test]
fn norm_scope_stack_normalises_a_2d_models_volume_once() {
    let Some((ck3, _)) = checkpoints() else {
        return;
    };
    let c = common::ctx().expect("checkpoints() needs a GPU");
    let dir = tmp("stack");
    let ck2 = &dir.join("seeded.safetensors");
    seeded_2d_checkpoint(c, ck2);
    // four sections, the last two at 5 % of the brightness: on its own each
    // dim section is stretched to look like a bright one; as one stack it
    // stays nearly dark
    let [h, w] = [40, 52];
    let mut data = Vec::new();
    for (z, gain) in [1.0f32, 1.0, 0.05, 0.05].into_iter().enumerate() {
        let s = em_cells_2d(20 + z as u64, h, w).image;
        data.extend(s.data.iter().map(|&v| (v * 3000.0 * gain).round() as u16));
    }
    let dims = [4, h, w];
    let npy = dir.join("vol.npy");
    write_npy(&npy, &Array3::from_vec(dims, data.clone()).unwrap()).unwrap();
    let zarr = dir.join("vol.zarr");
    write_v3(&zarr, "/", dims, [2, 24, 24], &data);
    // in memory: each scope's probabilities
    let probs = |name: &str, extra: &[&str]| {
        let (seg, pr) = (
            dir.join(format!("{name}.npy")),
            dir.join(format!("{name}_p.npy")),
        );
        predict_ok(
            ck2,
            &npy,
            &seg,
            &[&["--probabilities", &p(&pr)], extra].concat(),
        );
        npy_f32(&pr)
    };
    let section = probs("section", &[]);
    let stack = probs("stack", &["--norm-scope", "stack"]);
    library_stack_matches(c, ck2, &npy, &stack, [h, w]);
    let n = h * w;
    let dim = |v: &[f32]| v[2 * n..4 * n].to_vec();
    // an untrained net's probabilities stay near 0.5; far beyond float noise
    // they move where the dim sections' input did
    let moved = dim(&stack)
        .iter()
        .zip(dim(&section))
        .filter(|(a, b)| (*a - b).abs() > 1e-3)
        .count();
    assert!(
        moved > n / 10,
        "the dim sections' probabilities moved at {moved} of {} pixels",
        2 * n
    );
    // block-wise: the same statistics, the same labels as in memory
    let out = dir.join("stack_seg.zarr");
    predict_ok(
        ck2,
        &zarr,
        &out,
        &["--norm-scope", "stack", "--chunk", "2x24x24"],
    );
    let want = foreground(&npy_labels(&dir.join("stack.npy")));
    same(
        &foreground(&labels_of(&out)),
        &want,
        "block-wise --norm-scope stack",
    );
    // eval scores the same labels: its pixel error against a mask
    let data_dir = dir.join("labelled");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::copy(&npy, data_dir.join("vol_image.npy")).unwrap();
    let mask: Vec<u8> = (0..4 * n).map(|i| ((i / 7) % 2) as u8).collect();
    write_npy(
        &data_dir.join("vol_mask.npy"),
        &Array3::from_vec(dims, mask.clone()).unwrap(),
    )
    .unwrap();
    let wrong = want.iter().zip(&mask).filter(|(a, b)| a != b).count();
    let text = ok(&[
        "eval",
        "--checkpoint",
        &p(ck2),
        "--data",
        &p(&data_dir),
        "--norm-scope",
        "stack",
    ]);
    let pe: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("pixel_error: "))
        .expect("pixel_error line")
        .parse()
        .unwrap();
    assert!((pe - wrong as f64 / (4 * n) as f64).abs() < 1e-6, "{text}");
    scope_errors(ck2, ck3, &dir, &zarr, &out, &npy, &data_dir);
}

/// The library's route to the stack scope (normalise the volume whole, then
/// predict each section) gives what `predict --norm-scope stack` wrote.
fn library_stack_matches(
    c: &wunet::gpu::Context,
    ck2: &Path,
    npy: &Path,
    stack: &[f32],
    [h, w]: [usize; 2],
) {
    let ck = wunet::model_io::checkpoint::load(ck2).unwrap();
    let meta = wunet::model_io::InferMeta::from_checkpoint(&ck, ck2).unwrap();
    let mut vol = wunet::data::io::read_image(npy).unwrap();
    wunet::data::normalize::normalize(&mut vol, meta.dataset_options().normalize);
    let opts = wunet::infer::PredictOptions::from_meta(&meta).unwrap();
    let mut pr = wunet::infer::predict::Predictor::from_loaded(
        c,
        &ck,
        &meta,
        ck2,
        None,
        Some([1, h, w]),
        &opts,
    )
    .unwrap();
    let n = h * w;
    for z in 0..4 {
        let pz = pr.predict(c, &vol.section(z).unwrap()).unwrap();
        for k in 0..2 {
            let got = &stack[(k * 4 + z) * n..(k * 4 + z + 1) * n];
            common::assert_close(
                &format!("stack, section {z}"),
                got,
                &pz.data[k * n..(k + 1) * n],
                1e-4,
                1e-4,
            );
        }
    }
}

/// A store begun with the other scope, and the flag's bad values, in
/// predict and eval.
fn scope_errors(
    ck2: &Path,
    ck3: &Path,
    dir: &Path,
    zarr: &Path,
    out: &Path,
    npy: &Path,
    data_dir: &Path,
) {
    let e = predict_fails(ck2, zarr, out, &["--chunk", "2x24x24"]);
    assert!(e.contains("--norm-scope"), "{e}");
    let e = predict_fails(ck3, npy, &dir.join("x.npy"), &["--norm-scope", "section"]);
    assert!(
        e.contains("--norm-scope section: the checkpoint is a 3D model"),
        "{e}"
    );
    let e = predict_fails(ck2, npy, &dir.join("x.npy"), &["--norm-scope", "slab"]);
    assert!(
        e.contains("--norm-scope slab: expected section or stack"),
        "{e}"
    );
    let eval = |ck: &Path, scope: &str| {
        fails(&[
            "eval",
            "--checkpoint",
            &p(ck),
            "--data",
            &p(data_dir),
            "--norm-scope",
            scope,
        ])
    };
    let e = eval(ck3, "section");
    assert!(
        e.contains("--norm-scope section: the checkpoint is a 3D model"),
        "{e}"
    );
    let e = eval(ck2, "slab");
    assert!(
        e.contains("--norm-scope slab: expected section or stack"),
        "{e}"
    );
}
