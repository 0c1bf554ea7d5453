//! `wunet bench`: JSON lines survive a round trip; `bench compare` exits 0,
//! 1 on a regression and 2 on bad input; the adapter's ceilings are
//! plausible (above zero and, on CPU adapters such as lavapipe, below the
//! CPU's theoretical peak); every file of `kernels/` is run by `bench all`
//! or skipped for a listed hardware reason; a U-Net step profile has at
//! least 12 distinct ops, each placed under a measured ceiling.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use wunet::bench::all::{run_cases, AllOptions, Coverage};
use wunet::bench::cost::Ceilings;
use wunet::bench::json::{parse_line, to_line, Env, Line, PeakRecord, Record, What};
use wunet::bench::ops::{Setup, Size, CASES, SPECIAL_KERNELS};
use wunet::bench::Timer;

fn env() -> Env {
    Env {
        adapter: "test adapter".into(),
        backend: "Vulkan".into(),
        driver: "test driver 1.0".into(),
        version: "0.1.0".into(),
        commit: "abc123".into(),
    }
}

fn record(op: &str, ms: f64) -> Record {
    let what = What {
        op: op.into(),
        shape: "2x32x64x64".into(),
        variant: "f32 activation::relu".into(),
        case: "relu".into(),
    };
    let ceil = Ceilings {
        gflops: 100.0,
        gbps: 10.0,
    };
    let cost = wunet::bench::cost::Cost {
        flop: 262144.0,
        bytes: 2097152.0,
    };
    Record::new(
        &env(),
        what,
        Timer::Gpu,
        &[ms * 0.9, ms, ms * 1.2],
        cost,
        &ceil,
    )
}

fn peak_record() -> PeakRecord {
    PeakRecord {
        env: env(),
        op: "peak".into(),
        timer: "gpu-timestamps".into(),
        runs: 3,
        fma_gflops: 60.5,
        fma_f16_gflops: Some(13.5),
        matrix_gflops: None,
        bandwidth_read_gbps: 5.1,
        bandwidth_write_gbps: 6.6,
        bandwidth_copy_gbps: 5.0,
        kernels: [("fma_f32".to_string(), "peak::fma_peak".to_string())].into(),
    }
}

#[test]
fn json_lines_round_trip_with_the_issue_keys() {
    let r = record("Relu", 2.0);
    let line = to_line(&r);
    assert_eq!(parse_line(&line), Ok(Line::Kernel(r.clone())));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    for k in [
        "adapter",
        "backend",
        "driver",
        "op",
        "shape",
        "variant",
        "timer",
        "runs",
        "median_ms",
        "min_ms",
        "max_ms",
        "gbps",
        "pct_peak",
        "version",
        "commit",
        "intensity",
        "bound",
    ] {
        assert!(v.get(k).is_some(), "key {k} missing from {line}");
    }
    // 2 MiB in 2 ms is ~1.05 GB/s: memory-bound at 0.125 FLOP/byte, ~10% of 10 GB/s.
    assert_eq!(r.bound, "memory");
    assert!((r.pct_peak - 10.48576).abs() < 1e-6, "{}", r.pct_peak);
    let p = peak_record();
    let line = to_line(&p);
    assert_eq!(parse_line(&line), Ok(Line::Peak(p)));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    for k in [
        "fma_gflops",
        "fma_f16_gflops",
        "bandwidth_read_gbps",
        "bandwidth_write_gbps",
        "bandwidth_copy_gbps",
    ] {
        assert!(v.get(k).is_some(), "key {k} missing from {line}");
    }
    assert!(
        v.get("matrix_gflops").is_none(),
        "absent ceilings are left out"
    );
}

fn tmp(name: &str, lines: &[String]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wunet-bench-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn compare(a: &PathBuf, b: &PathBuf, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wunet"))
        .args(["bench", "compare"])
        .arg(a)
        .arg(b)
        .args(extra)
        .output()
        .expect("run wunet");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn compare_exit_codes() {
    let peak = to_line(&peak_record());
    let base = vec![
        peak.clone(),
        to_line(&record("Relu", 2.0)),
        to_line(&record("ReluGrad", 3.0)),
    ];
    let a = tmp("a.jsonl", &base);
    let same = tmp("same.jsonl", &base);
    // ReluGrad 50% slower: a regression at the default 10% threshold.
    let slower = tmp(
        "slower.jsonl",
        &[
            peak.clone(),
            to_line(&record("Relu", 2.05)),
            to_line(&record("ReluGrad", 4.5)),
        ],
    );
    let (code, out, err) = compare(&a, &same, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 entries compared, 0 slower"), "{out}");
    let (code, out, err) = compare(&a, &slower, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("REGRESSION") && out.contains("x1.500"),
        "{out}"
    );
    assert!(out.contains("1 slower than A by more than 10%"), "{out}");
    let (code, out, err) = compare(&a, &slower, &["--threshold", "0.6"]);
    assert_eq!(code, 0, "{out}{err}");
    // Bad input: a line that is not a result, a missing file.
    let bad = tmp("bad.jsonl", &[peak, "adapter: llvmpipe".to_string()]);
    let (code, _, err) = compare(&a, &bad, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.jsonl:2"), "{err}");
    let missing = a.with_file_name("missing.jsonl");
    let (code, _, err) = compare(&a, &missing, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.jsonl"), "{err}");
}

/// Every core of this CPU, online or not.
fn cores() -> f64 {
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    let listed = std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    online.max(listed) as f64
}

#[test]
fn peaks_are_plausible() {
    let Some(ctx) = common::ctx() else { return };
    let peaks = wunet::bench::peak::measure(ctx, 2).expect("peak runs");
    let rec = PeakRecord::new(&Env::of(ctx), &peaks, 2).expect("every baseline ceiling");
    let cpu = ctx.class == wunet::gpu::AdapterClass::Cpu;
    // A generous theoretical CPU peak: two 512-bit FMAs per cycle (64 f32
    // FLOP) on every core at 6 GHz.
    let limit = cores() * 64.0 * 6.0;
    let flops = [Some(rec.fma_gflops), rec.fma_f16_gflops, rec.matrix_gflops];
    for v in flops.into_iter().flatten() {
        assert!(v.is_finite() && v > 0.0, "{rec:?}");
        assert!(
            !cpu || v < limit,
            "{v} GFLOP/s above this CPU's {limit} ({rec:?})"
        );
    }
    // Bandwidth on a CPU adapter: at most 64 bytes per cycle per core at 6 GHz.
    let bw_limit = cores() * 64.0 * 6.0;
    for v in [
        rec.bandwidth_read_gbps,
        rec.bandwidth_write_gbps,
        rec.bandwidth_copy_gbps,
    ] {
        assert!(v.is_finite() && v > 0.0, "{rec:?}");
        assert!(!cpu || v < bw_limit, "{v} GB/s above {bw_limit} ({rec:?})");
    }
}

fn kernel_files() -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/kernels");
    std::fs::read_dir(dir)
        .expect("kernels/")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".wgsl").map(str::to_string)
        })
        .collect()
}

#[test]
fn bench_all_covers_every_kernel_file() {
    let Some(ctx) = common::ctx() else { return };
    let registered: BTreeSet<String> = wunet::gpu::pipelines::KERNELS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(kernel_files(), registered, "kernels/ and KERNELS differ");
    for (k, _) in SPECIAL_KERNELS {
        assert!(
            registered.contains(*k),
            "SPECIAL_KERNELS names no file: {k}"
        );
    }
    let peaks = wunet::bench::peak::measure(ctx, 1).expect("peak runs");
    let peak = PeakRecord::new(&Env::of(ctx), &peaks, 1).expect("ceilings");
    let env = Env::of(ctx);
    let setup = Setup {
        runs: 1,
        ceilings: peak.ceilings(),
        env: &env,
    };
    let opts = AllOptions {
        size: Size::Tiny,
        dims: vec![2, 3],
        conv_variants: true,
    };
    let mut n = 0;
    let (run, skips) = run_cases(ctx, &opts, &setup, &mut |_| n += 1).expect("bench all runs");
    assert_eq!(n, run.records.len());
    let mut ran = run.kernels.clone();
    // The ceilings' kernels: `peak`, and `peak_coop` where matrix units were measured.
    ran.insert("peak");
    if peak.matrix_gflops.is_some() {
        ran.insert("peak_coop");
    }
    let cov = Coverage::new(ctx, ran);
    assert!(
        cov.missing().is_empty(),
        "not run by bench all: {:?}; skipped {skips:?}",
        cov.missing()
    );
    for k in cov.skipped.keys() {
        assert!(SPECIAL_KERNELS.iter().any(|(s, _)| s == k), "{k} skipped");
    }
    // Every case that ran reported, and every record sits under a ceiling.
    let cases: BTreeSet<&str> = run.records.iter().map(|r| r.case.as_str()).collect();
    for c in CASES {
        let skipped = skips.iter().any(|s| s.what.starts_with(c.name));
        assert!(
            cases.contains(c.name) || skipped,
            "case {} reported nothing",
            c.name
        );
    }
    for r in &run.records {
        assert!(r.pct_peak.is_finite() && r.pct_peak > 0.0, "{r:?}");
        assert!(r.median_ms > 0.0 && r.runs == 1, "{r:?}");
    }
}

#[test]
fn unet_step_profile_has_a_dozen_ops_under_the_ceilings() {
    let Some(ctx) = common::ctx() else { return };
    let args = wunet::cli::bench::UNetBenchArgs {
        base: Some(4),
        depth: Some(2),
        input: Some("16x16".into()),
        batch: Some(1),
        runs: 1,
        profile: true,
        precision: "f32".into(),
        json: true,
    };
    let spec = wunet::cli::bench::unet_bench_spec(2, &args, wunet::shape::Precision::F32).unwrap();
    let mut s = wunet::bench::step::session(ctx, &spec).expect("session");
    let prof = wunet::bench::step::profile_step(ctx, &mut s, 1).expect("profile");
    let env = Env::of(ctx);
    let setup = Setup {
        runs: 1,
        ceilings: Ceilings {
            gflops: 10.0,
            gbps: 1.0,
        },
        env: &env,
    };
    let recs = wunet::bench::step::step_records("unet2d.step", "1x1x16x16", &prof, &setup);
    let ops: BTreeSet<&str> = recs.iter().map(|r| r.op.as_str()).collect();
    assert!(ops.len() > 12, "{ops:?}");
    assert_eq!(recs.last().map(|r| r.op.as_str()), Some("step"));
    assert_eq!(prof.dispatches.len(), s.exec.dispatches());
    for r in &recs {
        assert!(r.pct_peak.is_finite() && r.pct_peak >= 0.0, "{r:?}");
    }
}

#[test]
fn pass_timestamps_time_a_program_where_the_device_has_them() {
    let Some(ctx) = common::ctx() else { return };
    let n = 1 << 16;
    let x = wunet::Tensor::from_f32(ctx, &vec![1.0; n], wunet::shape::Shape::vector(n)).unwrap();
    let y = wunet::Tensor::zeros(ctx, x.shape, wunet::shape::DType::F32).unwrap();
    let prog = ctx
        .record(|rec| wunet::ops::activation::relu_into(rec, &x, &y))
        .unwrap();
    let has = ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY);
    match prog.gpu_pass_time(ctx).unwrap() {
        Some(ms) => assert!(has && ms.is_finite() && ms > 0.0, "{ms} ms"),
        None => assert!(!has, "TIMESTAMP_QUERY present but no pass time"),
    }
    if has {
        let ms = wunet::bench::time_program_pass(ctx, &prog, 1, 3).unwrap();
        assert_eq!(ms.len(), 3);
        assert!(ms.iter().all(|v| v.is_finite() && *v > 0.0), "{ms:?}");
    }
}

#[test]
fn roofline_png_from_results_and_an_error_without_ceilings() {
    let lines = vec![
        to_line(&peak_record()),
        to_line(&record("Relu", 2.0)),
        to_line(&record("ReluGrad", 3.0)),
    ];
    let json = tmp("roof.jsonl", &lines);
    let out = json.with_file_name("roof.png");
    let n = wunet::bench::roofline::plot_file(&json, &out).expect("plot");
    assert_eq!(n, 2);
    let png = std::fs::read(&out).expect("png written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let no_peak = tmp("nopeak.jsonl", &lines[1..]);
    let err = wunet::bench::roofline::plot_file(&no_peak, &out).unwrap_err();
    assert!(err.to_string().contains("no ceilings line"), "{err}");
}
