//! The cooperative-matrix (matrix-unit) conv kernels against the CPU reference.
//!
//! * `*_emulated`: the coop kernels with their matrix operations emulated in plain WGSL
//!   (`ConvKernel::CoopEmulated`, `CoopIm2colEmulated`, `CoopDirectEmulated`). They run
//!   wherever the adapter has f16 (lavapipe in CI) and check everything but the matrix unit:
//!   im2col staging and tap walks, the direct kernels' box staging and tap shifts, tiles,
//!   split-K, epilogue, bias, f16 conversions. (The first run on a fresh machine compiles
//!   every tile's pipeline on lavapipe, 35-67 s for one case's pipelines on a 2-core box
//!   with Mesa 25.0.7 / LLVM 15, one at a time (lavapipe compiles on its queue thread),
//!   1102 s for this file there; Mesa's shader cache
//!   makes later runs fast. `WUNET_LOG_PIPELINES=1` prints what is built.)
//! * the others need a device with cooperative matrices (16x16x16 f16 -> f32, subgroup size
//!   32). Without one they print `skip: no cooperative matrix support on <adapter>` and pass,
//!   unless `WUNET_REQUIRE_COOP=1` is set, which makes them fail. Run
//!   `coop_matrix_layouts_on_device` first: it pins down the load/store layout semantics the
//!   kernels rely on and says which interpretation the device follows if they differ.

mod common;
use common::{assert_close, ctx, rand_vec};
use wunet::gpu::Context;
use wunet::ops::conv::{self, tune, ConvKernel};
use wunet::ops::coop;
use wunet::reference::conv as r;
use wunet::shape::conv_weight_shape;
use wunet::{DType, Shape, Tensor, Window};

fn require_coop() -> bool {
    std::env::var("WUNET_REQUIRE_COOP").is_ok_and(|v| v == "1")
}

/// The test context if it can run the real coop kernels; else prints why and returns `None`
/// (or fails under `WUNET_REQUIRE_COOP=1`).
fn coop_ctx() -> Option<&'static Context> {
    let Some(c) = ctx() else {
        assert!(!require_coop(), "WUNET_REQUIRE_COOP=1 but no adapter");
        return None;
    };
    match coop::device_support(c) {
        Ok(_) => Some(c),
        Err(why) => {
            assert!(
                !require_coop(),
                "WUNET_REQUIRE_COOP=1 but no cooperative matrix support on {}: {why}",
                c.describe()
            );
            eprintln!(
                "skip: no cooperative matrix support on {} ({why})",
                c.describe()
            );
            None
        }
    }
}

/// The test context if it can run the emulated coop kernels (f16 support).
fn emu_ctx() -> Option<&'static Context> {
    let c = ctx()?;
    if !c.features.contains(wgpu::Features::SHADER_F16) {
        eprintln!("skip: {} has no shader f16", c.describe());
        return None;
    }
    Some(c)
}

#[path = "conv_coop/layouts.rs"]
mod layouts;

// ------------------------------------------------------------------ conv cases

struct Case {
    x: Shape,
    o: usize,
    win: Window,
    bias: bool,
}

impl Case {
    /// The case's weight and output shapes.
    fn shapes(&self) -> (Shape, Shape) {
        let ws = conv_weight_shape(self.o, self.x.c(), &self.win, self.x.is_3d());
        let ys = conv::conv_out_shape(&self.x, &ws, &self.win).unwrap();
        (ws, ys)
    }
}

fn w2(k: [usize; 2], s: [usize; 2], p: [usize; 2], d: [usize; 2]) -> Window {
    Window::new(&k, &s, &p, &d)
}
fn w3(k: [usize; 3], s: [usize; 3], p: [usize; 3], d: [usize; 3]) -> Window {
    Window::new(&k, &s, &p, &d)
}

/// Odd sizes: H != W != D, C and O not multiples of 4 or 16, batch 2 (a batch boundary inside
/// a column tile), both tile shapes (O <= 64: 64 x 256 blocks; O > 64: 128 x 128), K over
/// several 32-slices, stride 2, dilation, asymmetric padding, 3D, 1x1.
fn cases() -> Vec<Case> {
    vec![
        Case {
            x: Shape::new4(2, 5, 17, 19),
            o: 7,
            win: w2([3, 3], [1, 1], [1, 1], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new4(2, 6, 11, 9),
            o: 70,
            win: w2([3, 3], [2, 2], [1, 1], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new5(2, 3, 5, 6, 7),
            o: 6,
            win: w3([3, 3, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new4(1, 9, 10, 12),
            o: 19,
            win: w2([3, 2], [1, 2], [2, 1], [2, 1]),
            bias: false,
        },
        Case {
            x: Shape::new4(2, 37, 9, 10),
            o: 33,
            win: w2([3, 3], [1, 1], [1, 1], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new4(2, 17, 5, 6),
            o: 70,
            win: w2([1, 1], [1, 1], [0, 0], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new5(1, 5, 4, 7, 6),
            o: 9,
            win: w3([2, 3, 3], [2, 1, 2], [0, 1, 1], [1, 1, 1]),
            bias: false,
        },
    ]
}

/// Cases of the direct kernel (`conv_coop_direct`; stride 1, dilation 1): 2D and 3D, same
/// and valid padding, odd sizes with H != W != D, W not a multiple of the box width and sizes
/// smaller than one box, C and O not multiples of 16 (C over several 16-channel chunks),
/// batch 2, every BM (32, 64, 128), 1x1, and a 3x1 kernel (several tap rows per step).
/// The grad input runs the same kernel on dy (pad k-1-pad: the valid cases give "full"
/// convolutions).
fn direct_cases() -> Vec<Case> {
    vec![
        Case {
            x: Shape::new4(2, 5, 17, 19),
            o: 7,
            win: w2([3, 3], [1, 1], [1, 1], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new4(2, 37, 9, 10),
            o: 33,
            win: w2([3, 3], [1, 1], [1, 1], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new4(1, 20, 11, 35),
            o: 70,
            win: w2([3, 3], [1, 1], [0, 0], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new4(1, 16, 40, 70),
            o: 24,
            win: w2([3, 3], [1, 1], [1, 1], [1, 1]),
            bias: false,
        },
        Case {
            x: Shape::new5(2, 3, 5, 6, 7),
            o: 6,
            win: w3([3, 3, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new5(1, 17, 4, 7, 19),
            o: 40,
            win: w3([3, 3, 3], [1, 1, 1], [0, 0, 0], [1, 1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new5(2, 20, 9, 5, 18),
            o: 18,
            win: w3([3, 3, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1]),
            bias: false,
        },
        Case {
            x: Shape::new4(2, 17, 5, 6),
            o: 70,
            win: w2([1, 1], [1, 1], [0, 0], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new4(2, 9, 13, 40),
            o: 12,
            win: w2([3, 1], [1, 1], [1, 0], [1, 1]),
            bias: true,
        },
    ]
}

fn round_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

fn amax(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// Tolerance of a coop result with reduction length `k` over operands bounded by `a`, `b`
/// (already f16 values, so every product is exact in f32): (atol, rtol).
/// * rtol 2^-10: the output is rounded to f16 when activations are f16 (half an ulp is
///   2^-11 relative), with a factor 2 of margin; for f32 outputs it is far above what the f32
///   summation-order differences give.
/// * atol sqrt(k)*a*b*2^-11: outputs near zero from cancelling sums of size ~sqrt(k)*a*b,
///   where f16 rounding of the output and the f32 summation order act on the partial sums,
///   not on the tiny result.
fn tol(k: usize, a: f32, b: f32) -> (f32, f32) {
    ((k as f32).sqrt() * a * b / 2048.0, 1.0 / 1024.0)
}

fn upload(c: &Context, v: &[f32], s: Shape, act: DType) -> Tensor {
    match act {
        DType::F16 => Tensor::from_f32_as_f16(c, v, s).unwrap(),
        _ => Tensor::from_f32(c, v, s).unwrap(),
    }
}

/// Forward, grad input (where the stride-1 coop path applies) and grad weight of every case
/// with kernel `k`, activations F32 and F16, against the reference on f16-rounded inputs.
fn check_cases(c: &Context, k: ConvKernel) {
    check_list(c, k, &cases());
}

/// [`check_cases`] on a list of cases.
fn check_list(c: &Context, k: ConvKernel, list: &[Case]) {
    for (ci, case) in list.iter().enumerate() {
        let ws = conv_weight_shape(case.o, case.x.c(), &case.win, case.x.is_3d());
        let xv = round_f16(&rand_vec(case.x.numel(), 100 + ci as u64));
        let wv = round_f16(&rand_vec(ws.numel(), 200 + ci as u64));
        let bv = rand_vec(case.o, 300 + ci as u64);
        let (yref, ys) = r::conv_fwd(
            &xv,
            &case.x,
            &wv,
            &ws,
            case.bias.then_some(&bv[..]),
            &case.win,
        );
        let gv = round_f16(&rand_vec(ys.numel(), 400 + ci as u64));
        let dxref = r::conv_dgrad(&gv, &ys, &wv, &ws, &case.x, &case.win);
        let dwref = r::conv_wgrad(&xv, &case.x, &gv, &ys, &ws, &case.win);
        let win = &case.win;
        let dgrad_coop = (0..3)
            .all(|a| win.stride[a] == 1 && win.pad[a] <= win.dilation[a] * (win.kernel[a] - 1));
        let w = Tensor::from_f32(c, &wv, ws).unwrap();
        let b = Tensor::from_f32(c, &bv, Shape::vector(case.o)).unwrap();
        for act in [DType::F32, DType::F16] {
            let x = upload(c, &xv, case.x, act);
            let g = upload(c, &gv, ys, act);
            let y = Tensor::empty(c, ys, act).unwrap();
            let dx = Tensor::empty(c, case.x, act).unwrap();
            let dw = Tensor::empty(c, ws, DType::F32).unwrap();
            c.run(|rec| {
                conv::conv_into(rec, &x, &w, case.bias.then_some(&b), win, &y, k)?;
                if dgrad_coop {
                    conv::conv_grad_input_into(rec, &g, &w, win, &dx, k)?;
                }
                conv::conv_grad_weight_into(rec, &x, &g, win, &dw, k)
            })
            .unwrap();
            let name = format!("case {ci} {} -> {ys} {win:?} {k:?} {act:?}", case.x);
            let kf = case.x.c() * win.kernel_numel();
            let (at, rt) = tol(kf, amax(&xv), amax(&wv));
            let yv = y.to_f32_vec(c).unwrap();
            assert_close(&format!("{name} y"), &yv, &yref, at, rt);
            if dgrad_coop {
                let (at, rt) = tol(case.o * win.kernel_numel(), amax(&gv), amax(&wv));
                let dxv = dx.to_f32_vec(c).unwrap();
                assert_close(&format!("{name} dx"), &dxv, &dxref, at, rt);
            }
            let (at, rt) = tol(ys.n() * ys.spatial_numel(), amax(&gv), amax(&xv));
            let dwv = dw.to_f32_vec(c).unwrap();
            assert_close(&format!("{name} dw"), &dwv, &dwref, at, rt);
        }
    }
}

/// The weight gradient (split-K over several workgroups, then a fixed-order sum) gives the
/// same bits on every run, and so does the forward; its fused-ReLU form equals conv + relu.
fn check_bitwise(c: &Context, k: ConvKernel) {
    let xs = Shape::new4(2, 8, 40, 30);
    let win = w2([3, 3], [1, 1], [1, 1], [1, 1]);
    let ws = conv_weight_shape(20, xs.c(), &win, false);
    let ys = conv::conv_out_shape(&xs, &ws, &win).unwrap();
    let (splits, _) = coop::wgrad_splits(20, xs.c() * 9, ys.n() * ys.spatial_numel());
    assert!(splits > 1, "the case must split K ({splits})");
    let t = coop::direct_wgrad_tile(&ys, &win).expect("direct weight grad applies");
    let (splits, _) = coop::direct_wgrad_splits(1, t.boxes(&ys));
    assert!(
        splits > 1,
        "the case must split K in the direct kernel ({splits})"
    );
    let x = Tensor::from_f32_as_f16(c, &rand_vec(xs.numel(), 7), xs).unwrap();
    let g = Tensor::from_f32_as_f16(c, &rand_vec(ys.numel(), 8), ys).unwrap();
    let w = Tensor::from_f32(c, &rand_vec(ws.numel(), 9), ws).unwrap();
    let once = || {
        let dw = Tensor::empty(c, ws, DType::F32).unwrap();
        let y = Tensor::empty(c, ys, DType::F16).unwrap();
        c.run(|rec| {
            conv::conv_grad_weight_into(rec, &x, &g, &win, &dw, k)?;
            conv::conv_into(rec, &x, &w, None, &win, &y, k)
        })
        .unwrap();
        (dw.read_bytes(c).unwrap(), y.read_bytes(c).unwrap())
    };
    let first = once();
    for _ in 0..3 {
        assert!(once() == first, "{k:?}: results differ between runs");
    }
    // The fused ReLU epilogue (`conv_relu_into`) stores what conv then relu store.
    let empty = || Tensor::empty(c, ys, DType::F16).unwrap();
    let (y, z, fused) = (empty(), empty(), empty());
    c.run(|rec| {
        conv::conv_into(rec, &x, &w, None, &win, &y, k)?;
        wunet::ops::activation::relu_into(rec, &y, &z)?;
        conv::conv_relu_into(rec, &x, &w, None, &win, &fused, k)
    })
    .unwrap();
    assert!(
        z.read_bytes(c).unwrap() == fused.read_bytes(c).unwrap(),
        "{k:?}: fused ReLU differs"
    );
}

#[test]
fn conv_matches_reference_emulated() {
    let Some(c) = emu_ctx() else { return };
    check_cases(c, ConvKernel::CoopEmulated);
}

#[test]
fn wgrad_is_bitwise_reproducible_emulated() {
    let Some(c) = emu_ctx() else { return };
    check_bitwise(c, ConvKernel::CoopEmulated);
    check_bitwise(c, ConvKernel::CoopIm2colEmulated);
    check_bitwise(c, ConvKernel::CoopDirectEmulated);
}

/// The im2col kernels alone (what `Coop` runs with `WUNET_COOP_DIRECT=0`).
#[test]
fn im2col_matches_reference_emulated() {
    let Some(c) = emu_ctx() else { return };
    check_cases(c, ConvKernel::CoopIm2colEmulated);
}

/// Every direct case takes the direct kernel (forward and grad input), and the tiles cover
/// BM 32 / 64 / 128, 2D and 3D boxes and several tap rows per step.
type DirectTiles = (
    coop::DirectTile,
    coop::DirectTile,
    Option<coop::DirectWgradTile>,
);

fn direct_tiles_of_cases() -> Vec<DirectTiles> {
    direct_cases()
        .iter()
        .map(|case| {
            let (_, ys) = case.shapes();
            let fwd = coop::direct_tile(&ys, &case.win).expect("direct forward applies");
            let fwin = conv::flipped_window(&case.win).expect("stride 1");
            let dx = coop::direct_tile(&case.x, &fwin).expect("direct grad input applies");
            let dw = coop::direct_wgrad_tile(&ys, &case.win);
            assert_eq!(dw.is_some(), case.win.kernel_numel() >= 8);
            eprintln!(
                "{} -> {ys}: forward {fwd}; grad input {dx}; weight grad {dw:?}",
                case.x
            );
            (fwd, dx, dw)
        })
        .collect()
}

#[test]
fn direct_cases_cover_the_tiles() {
    let all = direct_tiles_of_cases();
    let tiles: Vec<coop::DirectTile> = all.iter().flat_map(|(a, b, _)| [*a, *b]).collect();
    let wg: Vec<coop::DirectWgradTile> = all.iter().filter_map(|t| t.2).collect();
    assert!(
        wg.iter().any(|t| t.bm == 32 && t.out_box[0] > 1),
        "no 3D weight grad"
    );
    assert!(wg.iter().any(|t| t.bm == 64), "no weight grad with BM 64");
    assert!(
        wg.iter().any(|t| t.bm == 32 && t.out_box[0] == 1),
        "no 2D BM 32 grad"
    );
    for bm in [32, 64, 128] {
        assert!(tiles.iter().any(|t| t.bm == bm), "no case with BM {bm}");
    }
    assert!(tiles.iter().any(|t| t.out_box[0] > 1), "no 3D box");
    assert!(
        tiles.iter().any(|t| t.rps > 1),
        "no step with several tap rows"
    );
    assert!(tiles.iter().any(|t| t.wnf == 2) && tiles.iter().any(|t| t.wnf == 4));
}

#[test]
fn direct_matches_reference_emulated() {
    let Some(c) = emu_ctx() else { return };
    direct_tiles_of_cases();
    check_list(c, ConvKernel::CoopDirectEmulated, &direct_cases());
}

/// The direct forward (`k`: on matrix units or emulated) of `case` in f16 with tile `t`
/// forced against the reference.
fn forward_f16_matches(c: &Context, k: ConvKernel, case: &Case, t: coop::DirectTile) {
    let ws = conv_weight_shape(case.o, case.x.c(), &case.win, case.x.is_3d());
    let xv = round_f16(&rand_vec(case.x.numel(), 1));
    let wv = round_f16(&rand_vec(ws.numel(), 2));
    let bv = rand_vec(case.o, 3);
    let (yref, ys) = r::conv_fwd(&xv, &case.x, &wv, &ws, Some(&bv), &case.win);
    let x = upload(c, &xv, case.x, DType::F16);
    let w = Tensor::from_f32(c, &wv, ws).unwrap();
    let b = Tensor::from_f32(c, &bv, Shape::vector(case.o)).unwrap();
    let y = Tensor::empty(c, ys, DType::F16).unwrap();
    coop::tuned::with_tile(t, || {
        c.run(|rec| conv::conv_into(rec, &x, &w, Some(&b), &case.win, &y, k))
    })
    .unwrap();
    let (at, rt) = tol(case.x.c() * case.win.kernel_numel(), amax(&xv), amax(&wv));
    let name = format!("{} -> {ys} on {}", case.x, coop::tuned::tile_name(&t));
    assert_close(&name, &y.to_f32_vec(c).unwrap(), &yref, at, rt);
}

/// 64 x 64 output blocks per subgroup (WMF 4, a candidate of the measured choice, never the
/// rule's): BM 64 with all eight subgroups along the positions and BM 128 with two along the
/// channels (O = 70: the second subgroup's rows partly past O), emulated, in f16.
#[test]
fn direct_wmf4_matches_reference_emulated() {
    let Some(c) = emu_ctx() else { return };
    let cases = direct_cases();
    for (i, bm) in [(1, 64), (2, 128)] {
        let case = &cases[i];
        let (_, ys) = case.shapes();
        let t = coop::tuned::candidates(c, &ys, &case.win)
            .into_iter()
            .find(|t| t.wmf == 4 && t.bm == bm)
            .unwrap_or_else(|| panic!("no WMF 4 candidate with BM {bm} for case {i}"));
        eprintln!("case {i}: {t}");
        forward_f16_matches(c, ConvKernel::CoopDirectEmulated, case, t);
    }
}

/// On matrix units: every measured candidate of every direct case (WMF 4 included), forward
/// in f16, against the reference.
#[test]
fn direct_candidates_match_reference() {
    let Some(c) = coop_ctx() else { return };
    for case in direct_cases() {
        let (_, ys) = case.shapes();
        for t in coop::tuned::candidates(c, &ys, &case.win) {
            forward_f16_matches(c, ConvKernel::CoopDirect, &case, t);
        }
    }
}

/// The direct forward's tile chosen by measurement (`coop::tuned`), on the emulated kernels
/// (the gate that keeps emulated kernels on the rule's tile is bypassed with
/// `choose_among`): the candidates are the rule's tile first, then distinct neighbours, and
/// each computes the reference's forward; the first choice is measured and written to the
/// cache (in a folder of its own) with every candidate's time, the second is read from it.
#[test]
fn direct_tile_measured_then_cached_emulated() {
    let Some(c) = emu_ctx() else { return };
    let dir = std::env::temp_dir().join(format!("wunet-coop-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // This file's only test that tunes: the others name their kernels and tiles.
    std::env::set_var("WUNET_CACHE_DIR", &dir);
    tune::set_mode(tune::Mode::Unbounded);
    let case = &direct_cases()[0];
    let (_, ys) = case.shapes();
    let cands = coop::tuned::candidates(c, &ys, &case.win);
    assert_eq!(Some(cands[0]), coop::direct_tile(&ys, &case.win));
    let names: Vec<String> = cands.iter().map(coop::tuned::tile_name).collect();
    eprintln!("candidates of {} -> {ys}: {names:?}", case.x);
    assert!(cands.len() >= 3, "{names:?}");
    for (i, n) in names.iter().enumerate() {
        assert!(tune::valid_name(n) && !names[..i].contains(n), "{names:?}");
    }

    for t in &cands {
        forward_f16_matches(c, ConvKernel::CoopDirectEmulated, case, *t);
    }

    let mode = coop::coop_mode(ConvKernel::CoopDirectEmulated).unwrap();
    let shapes = (&case.x, &ys);
    let (t1, how) = coop::tuned::choose_among(c, mode, shapes, &case.win, DType::F16).unwrap();
    assert_eq!(how, "measured");
    assert!(cands.contains(&t1));
    let key = coop::tuned::key(&case.x, case.o, &case.win, DType::F16);
    assert_eq!(key, "coop fwd 2x5x17x19 o7 k1x3x3 p1,1 f16");
    let text = std::fs::read_to_string(dir.join("conv-variants.txt")).unwrap();
    let line = text.lines().find(|l| l.contains(&key)).expect("cached");
    for n in &names {
        assert!(line.contains(&format!("{n}=")), "{n} not timed: {line}");
    }
    let again = coop::tuned::choose_among(c, mode, shapes, &case.win, DType::F16);
    assert_eq!(again, Some((t1, "cache")));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The stagings of the direct forward other than the default (which every direct test
/// runs), forward and grad input: f16-packed weights with and without register double
/// buffering, and f32 weights without it. Emulated: f16-packed weights without double
/// buffering (both non-default branches of the kernel) on one case (BM 64, three channel
/// chunks): every pipeline of the emulated kernel takes tens of seconds to build on a CPU
/// adapter; the device runs every combination on every case.
fn check_stagings(c: &Context, k: ConvKernel, emulated: bool) {
    let cases: Vec<Case> = direct_cases()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !emulated || *i == 1)
        .map(|(_, case)| case)
        .collect();
    for (packed_weights, prefetch) in [(true, true), (true, false), (false, false)] {
        let s = coop::Staging {
            packed_weights,
            prefetch,
        };
        if s != coop::Staging::DEFAULT && (!emulated || !prefetch) {
            coop::with_staging(s, || check_list(c, k, &cases));
        }
    }
}

#[test]
fn direct_stagings_match_reference_emulated() {
    let Some(c) = emu_ctx() else { return };
    check_stagings(c, ConvKernel::CoopDirectEmulated, true);
}

/// Transposed convolutions with kernel == stride (the U-Net's up-convolution) on the coop
/// kernels in f16: the forward on the direct kernel as a 1x1 GEMM with phase rows, the grad
/// input and grad weight on the im2col kernels (stride-2 conv and its weight gradient);
/// 2D, 3D and anisotropic, odd sizes, O * taps over several 128-row tiles, bias and none.
fn check_up(c: &Context, k: ConvKernel, emulated: bool) {
    let cases = [
        (Shape::new4(2, 13, 5, 11), 7, vec![2, 2], true),
        (Shape::new5(2, 5, 3, 5, 6), 3, vec![2, 2, 2], false),
        (Shape::new4(1, 70, 9, 17), 40, vec![2, 2], true),
        (Shape::new5(1, 6, 3, 4, 7), 5, vec![1, 2, 2], true),
    ];
    for (ci, (xs, o, kern, bias)) in cases.into_iter().enumerate() {
        if emulated && ci >= 2 {
            continue; // tens of seconds per emulated pipeline on a CPU adapter
        }
        let win = Window::new(&kern, &kern, &vec![0; kern.len()], &vec![1; kern.len()]);
        let ws = conv_weight_shape(xs.c(), o, &win, xs.is_3d());
        let xv = round_f16(&rand_vec(xs.numel(), 500 + ci as u64));
        let wv = round_f16(&rand_vec(ws.numel(), 510 + ci as u64));
        let bv = rand_vec(o, 520 + ci as u64);
        let (yref, ys) = r::conv_transpose_fwd(&xv, &xs, &wv, &ws, bias.then_some(&bv[..]), &win);
        let gv = round_f16(&rand_vec(ys.numel(), 530 + ci as u64));
        let (dxref, _) = r::conv_transpose_dgrad(&gv, &ys, &wv, &ws, &win);
        let dwref = r::conv_transpose_wgrad(&xv, &xs, &gv, &ys, &ws, &win);
        let x = upload(c, &xv, xs, DType::F16);
        let g = upload(c, &gv, ys, DType::F16);
        let w = Tensor::from_f32(c, &wv, ws).unwrap();
        let b = Tensor::from_f32(c, &bv, Shape::vector(o)).unwrap();
        let y = Tensor::empty(c, ys, DType::F16).unwrap();
        let dx = Tensor::empty(c, xs, DType::F16).unwrap();
        let dw = Tensor::empty(c, ws, DType::F32).unwrap();
        c.run(|rec| {
            conv::conv_transpose_into(rec, &x, &w, bias.then_some(&b), &win, &y, k)?;
            conv::conv_transpose_grad_input_into(rec, &g, &w, &win, &dx, k)?;
            conv::conv_transpose_grad_weight_into(rec, &x, &g, &win, &dw, k)
        })
        .unwrap();
        let name = format!("up case {ci} {xs} -> {ys} {k:?}");
        let (at, rt) = tol(xs.c(), amax(&xv), amax(&wv));
        assert_close(
            &format!("{name} y"),
            &y.to_f32_vec(c).unwrap(),
            &yref,
            at,
            rt,
        );
        let (at, rt) = tol(o * win.kernel_numel(), amax(&gv), amax(&wv));
        assert_close(
            &format!("{name} dx"),
            &dx.to_f32_vec(c).unwrap(),
            &dxref,
            at,
            rt,
        );
        let (at, rt) = tol(xs.n() * xs.spatial_numel(), amax(&gv), amax(&xv));
        assert_close(
            &format!("{name} dw"),
            &dw.to_f32_vec(c).unwrap(),
            &dwref,
            at,
            rt,
        );
    }
}

#[test]
fn up_convolution_matches_reference_emulated() {
    let Some(c) = emu_ctx() else { return };
    check_up(c, ConvKernel::CoopDirectEmulated, true);
}

/// [`check_up`] on the device's matrix units (`Coop`, as `--variant coop` runs it).
#[test]
fn up_convolution_matches_reference() {
    let Some(c) = coop_ctx() else { return };
    check_up(c, ConvKernel::Coop, false);
}

/// The tile rule on the U-Net layers: the boxes stage at most ~2.6x the output positions
/// and fit 45 KiB of workgroup memory with padded rows and 32 KiB without.
#[test]
fn direct_tiles_of_unet_layers() {
    let win2 = w2([3, 3], [1, 1], [1, 1], [1, 1]);
    let win3 = w3([3, 3, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1]);
    for (s, o) in [
        (Shape::new4(1, 64, 256, 256), 64),
        (Shape::new4(2, 32, 256, 256), 32),
        (Shape::new4(8, 256, 64, 64), 256),
        (Shape::new4(2, 512, 16, 16), 512),
        (Shape::new5(1, 32, 64, 64, 64), 32),
        (Shape::new5(1, 32, 64, 64, 64), 96),
        (Shape::new5(1, 64, 32, 32, 32), 64),
        (Shape::new5(1, 128, 16, 16, 16), 128),
        (Shape::new5(1, 256, 8, 8, 8), 256),
    ] {
        let win = if s.is_3d() { win3 } else { win2 };
        let t = coop::direct_tile(&s.with_c(o), &win).expect("applies");
        let ratio = t.box_positions() as f64 / t.bn() as f64;
        eprintln!(
            "{s} -> {o}: {t}, input box {} for {} outputs ({ratio:.2}x), {} / {} bytes",
            t.box_positions(),
            t.bn(),
            t.workgroup_bytes(8),
            t.workgroup_bytes(0)
        );
        assert!(t.workgroup_bytes(8) <= 45 * 1024 && t.workgroup_bytes(0) <= 32 * 1024);
        assert!(ratio < 3.5, "{s}: {t}");
    }
}

/// The self-test machinery itself, on the emulated kernels.
#[test]
fn self_test_passes_emulated() {
    let Some(c) = emu_ctx() else { return };
    coop::self_test(c, true).unwrap();
}

#[test]
fn conv_matches_reference() {
    let Some(c) = coop_ctx() else { return };
    check_cases(c, ConvKernel::Coop);
}

/// The direct kernels on the device's matrix units, every tile of [`direct_cases`].
#[test]
fn direct_matches_reference() {
    let Some(c) = coop_ctx() else { return };
    check_list(c, ConvKernel::CoopDirect, &direct_cases());
}

/// Every staging of the direct forward on the device's matrix units.
#[test]
fn direct_stagings_match_reference() {
    let Some(c) = coop_ctx() else { return };
    check_stagings(c, ConvKernel::CoopDirect, false);
}

/// The im2col kernels alone on the device (what `WUNET_COOP_DIRECT=0` runs).
#[test]
fn im2col_matches_reference() {
    let Some(c) = coop_ctx() else { return };
    check_cases(c, ConvKernel::CoopIm2col);
}

#[test]
fn wgrad_is_bitwise_reproducible() {
    let Some(c) = coop_ctx() else { return };
    check_bitwise(c, ConvKernel::Coop);
    check_bitwise(c, ConvKernel::CoopIm2col);
    check_bitwise(c, ConvKernel::CoopDirect);
}

/// On a device with matrix units the self-test passes and `Auto` runs the coop kernels for
/// F16 activations (not for F32 ones).
#[test]
fn self_test_passes_and_auto_picks_coop_for_f16() {
    let Some(c) = coop_ctx() else { return };
    let st = coop::status(c);
    eprintln!("{st}");
    assert!(st.is_ready(), "{st}");
    assert!(st.direct_ready(), "{st}");
    if std::env::var_os("WUNET_KERNELS").is_none() {
        assert_eq!(
            ConvKernel::Auto.resolve_for(c, DType::F16),
            ConvKernel::Coop
        );
        assert_ne!(
            ConvKernel::Auto.resolve_for(c, DType::F32),
            ConvKernel::Coop
        );
    }
}
