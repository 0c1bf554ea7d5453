//! The conv tuning cache (`ops::conv::tune`): a corrupt file is ignored and rewritten, two
//! processes tuning at once leave a valid file, a changed driver string is a different key,
//! and a cached choice is used without measuring again. Every test uses its own folder
//! under the temp dir, never the user's cache.

use std::path::PathBuf;
use std::time::Duration;
use wunet::ops::conv::tune::{self, ConvOp, Entries, Entry};
use wunet::ops::conv::ConvKernel;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wunet-tune-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn info(driver: &str) -> wgpu::AdapterInfo {
    wgpu::AdapterInfo {
        name: "test adapter".into(),
        vendor: 0,
        device: 0,
        device_type: wgpu::DeviceType::Cpu,
        driver: driver.into(),
        driver_info: "1.0".into(),
        backend: wgpu::Backend::Vulkan,
        device_pci_bus_id: String::new(),
        subgroup_min_size: 8,
        subgroup_max_size: 8,
        transient_saves_memory: None,
        limit_bucket: None,
    }
}

fn entry(v: &str) -> Entry {
    Entry {
        variant: v.into(),
        times: format!("{v}=1.000"),
    }
}

#[test]
fn corrupt_file_is_ignored_and_rewritten() {
    let d = temp_dir("corrupt");
    let p = d.join("conv-variants.txt");
    for junk in [
        "garbage\n",
        "wunet-conv-variants 1\na\tb\n",
        "wunet-conv-variants 999\n",
        "wunet-conv-variants 3\na\td\tfwd k\tbad=name\tbad=name=1.0\n",
        "",
    ] {
        std::fs::write(&p, junk).unwrap();
        assert!(tune::load(&p).is_empty(), "{junk:?} loaded");
        let mut e = Entries::new();
        e.insert(("a".into(), "d".into(), "fwd k".into()), entry("winograd2"));
        tune::store(&p, &e);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(tune::parse(&text).unwrap(), e, "rewritten after {junk:?}");
    }
    // Binary junk is not fatal either.
    std::fs::write(&p, [0xff, 0xfe, 0, 1]).unwrap();
    assert!(tune::load(&p).is_empty());
}

#[test]
fn render_parse_round_trip_and_merge() {
    let d = temp_dir("merge");
    let p = d.join("conv-variants.txt");
    let mut a = Entries::new();
    a.insert(("x".into(), "d1".into(), "fwd 1".into()), entry("cpu"));
    let mut b = Entries::new();
    b.insert(
        ("x".into(), "d1".into(), "dgrad 1".into()),
        entry("winograd4"),
    );
    tune::store(&p, &a);
    tune::store(&p, &b);
    let all = tune::load(&p);
    assert_eq!(all.len(), 2);
    assert_eq!(tune::parse(&tune::render(&all)).unwrap(), all);
}

/// The one test that sets `WUNET_CACHE_DIR` and the mode (process-wide).
#[test]
fn measured_once_then_cached_and_driver_change_invalidates() {
    let d = temp_dir("choose");
    std::env::set_var("WUNET_CACHE_DIR", &d);
    tune::set_mode(tune::Mode::Measure);
    let cands = [
        ConvKernel::Cpu,
        ConvKernel::Winograd2,
        ConvKernel::Winograd4,
    ];
    let fake = |calls: &mut usize, k: ConvKernel| -> wunet::Result<f64> {
        *calls += 1;
        Ok(match k {
            ConvKernel::Winograd2 => 1.0,
            _ => 5.0,
        })
    };
    let budget = Duration::from_secs(10);
    let mut calls = 0;
    let k = tune::choose_for(&info("drv A"), budget, "fwd test", &cands, &mut |k| {
        fake(&mut calls, k)
    });
    assert_eq!((k, calls), (ConvKernel::Winograd2, 3));
    let on_disk = tune::load(&d.join("conv-variants.txt"));
    assert_eq!(on_disk.len(), 1);
    // Cached: not measured again.
    let k = tune::choose_for(&info("drv A"), budget, "fwd test", &cands, &mut |k| {
        fake(&mut calls, k)
    });
    assert_eq!((k, calls), (ConvKernel::Winograd2, 3));
    assert_eq!(tune::entries_for(&info("drv A")).len(), 1);
    // Another driver string: measured again, its own entry.
    assert!(tune::entries_for(&info("drv B")).is_empty());
    let k = tune::choose_for(&info("drv B"), budget, "fwd test", &cands, &mut |k| {
        fake(&mut calls, k)
    });
    assert_eq!((k, calls), (ConvKernel::Winograd2, 6));
    assert_eq!(tune::load(&d.join("conv-variants.txt")).len(), 2);
    // A candidate the entry did not measure (added since): all measured again.
    let more = [ConvKernel::Cpu, ConvKernel::Winograd2, ConvKernel::Tiled];
    let k = tune::choose_for(&info("drv A"), budget, "fwd test", &more, &mut |k| {
        fake(&mut calls, k)
    });
    assert_eq!((k, calls), (ConvKernel::Winograd2, 9));
    let k = tune::choose_for(&info("drv A"), budget, "fwd test", &more, &mut |k| {
        fake(&mut calls, k)
    });
    assert_eq!((k, calls), (ConvKernel::Winograd2, 9));
    // A failing candidate is skipped, not fatal; all failing: the fallback.
    let k = tune::choose_for(&info("drv A"), budget, "fwd fail", &cands, &mut |_| {
        Err(wunet::Error::Other("no".into()))
    });
    assert_eq!(k, ConvKernel::Cpu);
    // Budget spent: the fallback, nothing measured.
    let k = tune::choose_for(
        &info("drv A"),
        Duration::ZERO,
        "fwd other",
        &cands,
        &mut |k| fake(&mut calls, k),
    );
    assert_eq!((k, calls), (ConvKernel::Cpu, 9));
    let dec = tune::decisions();
    assert!(dec.contains(&("fwd other".into(), "cpu".into(), "budget")));
    assert!(tune::unmeasured() >= 1);
    // Named candidates (the matrix-unit conv's tiles): the same cache, the index returned,
    // the choice and how in `decisions`.
    let names: Vec<String> = [
        "bm64-wnf4-w32-db1",
        "bm32-wnf4-w32-db1",
        "bm64-wnf2-w32-db1",
    ]
    .map(String::from)
    .to_vec();
    let time = |ncalls: &mut usize, i: usize| -> wunet::Result<f64> {
        *ncalls += 1;
        Ok([3.0, 2.0, 4.0][i])
    };
    let mut ncalls = 0;
    let got = tune::choose_named(&info("drv A"), budget, "coop fwd t", &names, &mut |i| {
        time(&mut ncalls, i)
    });
    assert_eq!((got, ncalls), ((1, "measured"), 3));
    let got = tune::choose_named(&info("drv A"), budget, "coop fwd t", &names, &mut |i| {
        time(&mut ncalls, i)
    });
    assert_eq!((got, ncalls), ((1, "cache"), 3));
    let dec = tune::decisions();
    assert!(dec.contains(&("coop fwd t".into(), "bm32-wnf4-w32-db1".into(), "cache")));
    let text = std::fs::read_to_string(d.join("conv-variants.txt")).unwrap();
    assert!(text.contains("bm32-wnf4-w32-db1=2.000"), "{text}");
    // Mode off: the fallback even where the cache has an entry.
    tune::set_mode(tune::Mode::Off);
    let k = tune::choose_for(&info("drv A"), budget, "fwd test", &cands, &mut |k| {
        fake(&mut calls, k)
    });
    assert_eq!((k, calls), (ConvKernel::Cpu, 9));
}

#[test]
fn shape_keys_and_candidates() {
    let win = wunet::Window::cube(2, 3, 1, 1);
    let xs = wunet::Shape::new4(2, 32, 64, 64);
    assert_eq!(
        tune::shape_key(ConvOp::Forward, &xs, 64, &win),
        "fwd 2x32x64x64 o64 k3 s1 p1,1"
    );
    assert_eq!(
        tune::candidates(ConvOp::Forward, &xs, &win, ConvKernel::Cpu).len(),
        3
    );
    let x3 = wunet::Shape::new5(1, 16, 8, 8, 8);
    let w3 = wunet::Window::cube(3, 3, 1, 1);
    let all = vec![
        ConvKernel::Cpu,
        ConvKernel::Winograd2,
        ConvKernel::Winograd4,
    ];
    assert_eq!(
        tune::candidates(ConvOp::GradInput, &x3, &w3, ConvKernel::Cpu),
        all
    );
    assert_eq!(
        tune::candidates(ConvOp::GradWeight, &xs, &win, ConvKernel::Cpu),
        all
    );
    let strided = wunet::Window::cube(2, 3, 2, 1);
    assert_eq!(
        tune::candidates(ConvOp::GradInput, &xs, &strided, ConvKernel::Cpu).len(),
        1
    );
}

/// Two `wunet tune` processes on one (corrupt) cache file at once: both succeed and the file
/// they leave parses and holds the model's shapes.
#[test]
fn two_processes_at_once() {
    let d = temp_dir("procs");
    let p = d.join("conv-variants.txt");
    std::fs::write(&p, "not a cache file\n").unwrap();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wunet"))
            .args([
                "tune", "unet2d", "--base", "4", "--depth", "1", "--input", "12x10",
            ])
            .env("WUNET_CACHE_DIR", &d)
            .env_remove("WUNET_TUNE")
            .env_remove("WUNET_KERNELS")
            .output()
            .expect("run wunet")
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    for o in [&a, &b] {
        let err = String::from_utf8_lossy(&o.stderr);
        if err.contains("no adapter") {
            eprintln!("skip: no GPU adapter");
            return;
        }
        assert!(o.status.success(), "wunet tune failed: {err}");
    }
    let text = std::fs::read_to_string(&p).unwrap();
    let entries = tune::parse(&text).expect("a valid cache file");
    assert!(
        entries
            .keys()
            .any(|(_, _, k)| k.starts_with("fwd 2x4x12x10")),
        "{text}"
    );
}
