//! f16 activation storage, kernel by kernel (issue 11, mixed precision).
//!
//! TEMPORARY SCAFFOLDING: the op wrappers in `src/ops/` still accept only F32
//! activations, so this file dispatches every kernel entry point directly with
//! `Recorder::dispatch`, mirroring the wrappers' params structs and grids (each
//! mirror names its source). Once the wrappers take F16 tensors, the family
//! tests (tests/conv.rs, norm.rs, ...) should run in both precisions and this
//! file should go.
//!
//! Method: every sequence of dispatches runs twice on the same inputs, once
//! with the activation tensors (x, y, dy, dx, logits, grad, feature maps) F16
//! and once F32 holding the same f16-rounded values; parameters, statistics,
//! losses, scratch, indices and labels are 4-byte in both runs. A dispatch only
//! succeeds when every F16 tensor lands on an `array<act>` binding
//! (`Recorder::dispatch` checks each binding's reflected element type), so the
//! F16 run also proves which bindings are `act`. Widening f16 to f32 is exact,
//! so both runs do the same f32 arithmetic on the same values and differ only
//! in where an F16 output is rounded. Tolerances (`atol + rtol*|ref|`):
//! - [`STORED`]: an activation written by the kernel: one f16 rounding.
//! - [`SAME`]: an f32 output (statistics, losses, parameter gradients) of the
//!   same f32 arithmetic on the same values: equal up to the last f32 bits.
//! - [`EXACT`]: copies and maxima: bit-identical values.
//!
//! A few results are also checked against `src/reference/` (f64) on the rounded
//! inputs, with the family tests' f32 tolerances plus one f16 rounding.

mod common;

use bytemuck::{Pod, Zeroable};
use common::{assert_close, ctx, rand_vec};
use wunet::gpu::{Context, DType, Recorder, Tensor};
use wunet::ops::fastdiv::magic;
use wunet::ops::tensor::PadMode;
use wunet::reference;
use wunet::reference::activation as ra;
use wunet::shape::{Shape, Window};
use wunet::Result;

/// A stored f16 activation against the f32 run's value: round-to-nearest gives
/// |err| <= 2^-11 |v| for normal values; rtol 2^-10 (one f16 ulp) leaves room for
/// a value that lands near a rounding tie and whose last f32 bits differ between
/// the two compiled modules. atol 2^-24 is the f16 subnormal spacing (|v| < 2^-14
/// is rounded absolutely).
const STORED: (f32, f32) = (1.0 / 16_777_216.0, 1.0 / 1024.0);
/// f32 outputs of the same arithmetic on the same values in both modules.
const SAME: (f32, f32) = (1e-6, 1e-5);
/// Copies, maxima, selections.
const EXACT: (f32, f32) = (0.0, 0.0);

/// The test context if it can store f16 (`SHADER_F16`), else `None` with a message.
fn f16_ctx() -> Option<&'static Context> {
    let c = ctx()?;
    if !c.features.contains(wgpu::Features::SHADER_F16) {
        eprintln!("skip: the adapter has no SHADER_F16 ({})", c.describe());
        return None;
    }
    Some(c)
}

/// One binding's data.
#[derive(Clone)]
enum B {
    /// An activation: F16 in the mixed run, F32 in the other; f16-rounded values in both.
    Act(Vec<f32>, Shape),
    F32(Vec<f32>, Shape),
    I32(Vec<i32>, Shape),
    U32(Vec<u32>, Shape),
}

fn round16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

fn act(shape: Shape, seed: u64) -> B {
    B::Act(rand_vec(shape.numel(), seed), shape)
}

fn act_zeros(shape: Shape) -> B {
    B::Act(vec![0.0; shape.numel()], shape)
}

fn f32_zeros(len: usize) -> B {
    B::F32(vec![0.0; len.max(1)], Shape::vector(len.max(1)))
}

fn upload(c: &Context, b: &B, act: DType) -> Tensor {
    match b {
        B::Act(v, s) if act == DType::F16 => Tensor::from_f32_as_f16(c, v, *s),
        B::Act(v, s) => Tensor::from_f32(c, &round16(v), *s),
        B::F32(v, s) => Tensor::from_f32(c, v, *s),
        B::I32(v, s) => Tensor::from_i32(c, v, *s),
        B::U32(v, s) => Tensor::from_u32(c, v, *s),
    }
    .expect("upload")
}

/// The f16-rounded values of an activation binding (what both runs read).
fn input(b: &B) -> Vec<f32> {
    match b {
        B::Act(v, _) => round16(v),
        B::F32(v, _) => v.clone(),
        _ => panic!("not a float binding"),
    }
}

/// Record `f` over tensors made from `binds` and submit it, once with F16
/// activations and once with F32; returns `[f16 run, f32 run]`.
fn both(
    c: &Context,
    binds: &[B],
    f: impl Fn(&mut Recorder, &[Tensor]) -> Result<()>,
) -> [Vec<Tensor>; 2] {
    [DType::F16, DType::F32].map(|act| {
        let ts: Vec<Tensor> = binds.iter().map(|b| upload(c, b, act)).collect();
        c.run(|rec| f(rec, &ts))
            .unwrap_or_else(|e| panic!("{act:?} activations: {e}"));
        ts
    })
}

fn vals(c: &Context, t: &Tensor) -> Vec<f32> {
    t.to_f32_vec(c).expect("readback")
}

/// Tensor `i` of the F16 run against the F32 run.
fn check(c: &Context, what: &str, runs: &[Vec<Tensor>; 2], i: usize, tol: (f32, f32)) {
    let (h, f) = (&runs[0][i], &runs[1][i]);
    let (got, want) = (vals(c, h), vals(c, f));
    if tol == EXACT {
        same_bits(what, &got, &want);
    } else {
        assert_close(what, &got, &want, tol.0, tol.1);
    }
}

/// A stored f16 activation against the f64 reference on the rounded inputs: the
/// family tests' f32 tolerance (1e-4, atol and rtol) plus one f16 rounding.
fn near(what: &str, got: &[f32], want: &[f32]) {
    assert_close(what, got, want, 1e-4, 1e-4 + 1.0 / 1024.0);
}

/// Fail at the first element whose bits differ.
fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: differs at {i}: got {}, want {}", got[i], want[i]);
    }
}

fn dispatch<P: Pod>(
    rec: &mut Recorder,
    kernel: &'static str,
    entry: &'static str,
    ov: &[(&'static str, f64)],
    p: &P,
    ts: &[&Tensor],
    groups: [u32; 3],
) -> Result<()> {
    rec.dispatch(kernel, entry, ov, p, ts, groups)
}

fn u3(a: [usize; 3]) -> [u32; 3] {
    [a[0] as u32, a[1] as u32, a[2] as u32]
}

fn groups_for(n: usize, per: usize) -> u64 {
    n.div_ceil(per) as u64
}

// ------------------------------------------------------------------ activation

/// Mirror of `ActParams` in src/ops/activation.rs.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct ActParams {
    len: u32,
    seed: u32,
    thr: u32,
    alpha: f32,
}

#[test]
fn activation_entries_store_f16() {
    let Some(c) = f16_ctx() else { return };
    let s = Shape::new4(1, 3, 23, 29); // 2001 elements: an odd count (a padding half)
    let binds = [act(s, 1), act(s, 2), act_zeros(s)];
    let p = 0.3f32;
    for (entry, alpha, thr) in [
        ("relu_fwd", 0.0, 0),
        ("relu_bwd", 0.0, 0),
        ("leaky_fwd", 0.01, 0),
        ("leaky_bwd", 0.01, 0),
        ("sigmoid_fwd", 0.0, 0),
        ("sigmoid_bwd", 0.0, 0),
        (
            "dropout",
            wunet::ops::activation::dropout_scale(p),
            wunet::ops::activation::dropout_threshold(p),
        ),
    ] {
        let prm = ActParams {
            len: s.numel() as u32,
            seed: 1234,
            thr,
            alpha,
        };
        let runs = both(c, &binds, |rec, t| {
            let g = rec.grid(groups_for(s.numel(), 256))?;
            dispatch(
                rec,
                "activation",
                entry,
                &[],
                &prm,
                &[&t[0], &t[1], &t[2]],
                g,
            )
        });
        check(c, entry, &runs, 2, STORED);
        let (a, b) = (input(&binds[0]), input(&binds[1]));
        let want = match entry {
            "relu_fwd" => ra::relu(&a),
            "relu_bwd" => ra::relu_grad(&a, &b),
            "leaky_fwd" => ra::leaky_relu(&a, alpha),
            "leaky_bwd" => ra::leaky_relu_grad(&a, &b, alpha),
            "sigmoid_fwd" => ra::sigmoid(&a),
            "sigmoid_bwd" => ra::sigmoid_grad(&a, &b),
            _ => ra::dropout(&a, p, 1234),
        };
        near(
            &format!("{entry} vs reference"),
            &vals(c, &runs[0][2]),
            &want,
        );
    }
}

// ------------------------------------------------------------------ tensor plumbing

/// Mirror of `TensorParams` in src/ops/tensor.rs.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct TensorParams {
    len: u32,
    alpha: f32,
    c_src: u32,
    c_dst: u32,
    c_blk: u32,
    off_src: u32,
    off_dst: u32,
    sp: u32,
    src: [u32; 3],
    src_sp: u32,
    dst: [u32; 3],
    dst_sp: u32,
    off: [i32; 3],
    aux: u32,
    dec_w: [u32; 2],
    dec_h: [u32; 2],
    dec_d: [u32; 2],
    div_sp: [u32; 2],
    div_blk: [u32; 2],
    aux2: [u32; 2],
}

/// Mirror of `shift_params` in src/ops/tensor.rs.
fn shift_params(src: &Shape, dst: &Shape, off: [i32; 3]) -> TensorParams {
    TensorParams {
        len: dst.numel() as u32,
        src: u3(src.spatial()),
        src_sp: src.spatial_numel() as u32,
        dst: u3(dst.spatial()),
        dst_sp: dst.spatial_numel() as u32,
        off,
        dec_w: magic(dst.w()),
        dec_h: magic(dst.h()),
        dec_d: magic(dst.d()),
        ..Default::default()
    }
}

fn tensor_launch(
    rec: &mut Recorder,
    entry: &'static str,
    p: &TensorParams,
    ts: [&Tensor; 3],
) -> Result<()> {
    let g = rec.grid(groups_for(p.len as usize, 256))?;
    dispatch(rec, "tensor", entry, &[], p, &ts, g)
}

#[test]
fn tensor_elementwise_entries_store_f16() {
    let Some(c) = f16_ctx() else { return };
    let s = Shape::new4(2, 3, 7, 11); // 462 elements
    let binds = [act(s, 3), act(s, 4), act(s, 5)]; // a, b, y (axpy reads y)
    let len = s.numel() as u32;
    for (entry, alpha, tol) in [
        ("add", 0.0, STORED),
        ("scale", 0.37, STORED),
        ("axpy", -1.5, STORED),
        ("fill", 0.1, STORED), // alpha is f32, rounded on store
        ("copy", 0.0, EXACT),
    ] {
        let p = TensorParams {
            len,
            alpha,
            ..Default::default()
        };
        let runs = both(c, &binds, |rec, t| {
            tensor_launch(rec, entry, &p, [&t[0], &t[1], &t[2]])
        });
        check(c, entry, &runs, 2, tol);
        let (a, b) = (input(&binds[0]), input(&binds[1]));
        let want = match entry {
            "add" => reference::tensor::add(&a, &b),
            "scale" => reference::tensor::scale(&a, alpha),
            "axpy" => {
                let mut y = input(&binds[2]);
                reference::tensor::axpy(alpha, &a, &mut y);
                y
            }
            "fill" => vec![alpha; a.len()],
            _ => a,
        };
        near(
            &format!("{entry} vs reference"),
            &vals(c, &runs[0][2]),
            &want,
        );
    }
}

#[test]
fn tensor_concat_crop_pad_store_f16() {
    let Some(c) = f16_ctx() else { return };
    // Channel concat of a 3- and a 2-channel input (src/ops/tensor.rs channel_block);
    // 5*7 = 35 values per plane, so blocks start mid-word in f16 storage.
    let (x1s, x2s) = (Shape::new4(2, 3, 5, 7), Shape::new4(2, 2, 5, 7));
    let ys = Shape::new4(2, 5, 5, 7);
    let binds = [act(x1s, 6), act(x2s, 7), act_zeros(ys)];
    let sp = 35;
    let block = |count: usize, c_src: usize, off_dst: usize| TensorParams {
        len: (2 * count * sp) as u32,
        c_src: c_src as u32,
        c_dst: 5,
        c_blk: count as u32,
        off_src: 0,
        off_dst: off_dst as u32,
        sp: sp as u32,
        div_sp: magic(sp),
        div_blk: magic(count),
        ..Default::default()
    };
    let runs = both(c, &binds, |rec, t| {
        tensor_launch(rec, "channel_block", &block(3, 3, 0), [&t[0], &t[0], &t[2]])?;
        tensor_launch(rec, "channel_block", &block(2, 2, 3), [&t[1], &t[1], &t[2]])
    });
    check(c, "concat", &runs, 2, EXACT);
    let (want, _) =
        reference::tensor::concat_channels(&[(&input(&binds[0]), x1s), (&input(&binds[1]), x2s)]);
    same_bits("concat vs reference", &vals(c, &runs[0][2]), &want);

    // Crop, zero pad, reflect pad and its backward (src/ops/tensor.rs crop_into,
    // pad_into, pad_grad_into), 3D so every axis moves.
    let xs = Shape::new5(1, 3, 5, 6, 7);
    let crop = xs.with_spatial([3, 4, 4]);
    let (lo, hi) = ([1, 2, 1], [2, 1, 3]);
    let padded = xs.with_spatial(wunet::shape::pad_out(xs.spatial(), lo, hi));
    let binds = [
        act(xs, 8),
        act_zeros(crop),
        act_zeros(padded),
        act_zeros(padded),
        act(padded, 9),
        act_zeros(xs),
    ];
    let neg = |a: [usize; 3]| [-(a[0] as i32), -(a[1] as i32), -(a[2] as i32)];
    let pos = |a: [usize; 3]| [a[0] as i32, a[1] as i32, a[2] as i32];
    let runs = both(c, &binds, |rec, t| {
        let p = shift_params(&xs, &crop, [1, 2, 0]);
        tensor_launch(rec, "shift_copy", &p, [&t[0], &t[0], &t[1]])?;
        let p = shift_params(&xs, &padded, neg(lo));
        tensor_launch(rec, "shift_copy", &p, [&t[0], &t[0], &t[2]])?;
        tensor_launch(rec, "reflect_fwd", &p, [&t[0], &t[0], &t[3]])?;
        let p = shift_params(&padded, &xs, pos(lo));
        tensor_launch(rec, "reflect_bwd", &p, [&t[4], &t[4], &t[5]])
    });
    check(c, "crop", &runs, 1, EXACT);
    check(c, "zero pad", &runs, 2, EXACT);
    check(c, "reflect pad", &runs, 3, EXACT);
    // Sums of up to 27 padded positions in f32, one rounding on store.
    check(c, "reflect pad backward", &runs, 5, STORED);
    let (want, _) = reference::tensor::crop(&input(&binds[0]), &xs, [1, 2, 0], [3, 4, 4]);
    same_bits("crop vs reference", &vals(c, &runs[0][1]), &want);
    let x = input(&binds[0]);
    for (i, mode) in [(2, PadMode::Zero), (3, PadMode::Reflect)] {
        let (want, _) = reference::tensor::pad(&x, &xs, lo, hi, mode);
        same_bits(
            &format!("{mode:?} pad vs reference"),
            &vals(c, &runs[0][i]),
            &want,
        );
    }
    let want =
        reference::tensor::pad_grad(&input(&binds[4]), &padded, lo, hi, PadMode::Reflect, &xs);
    near(
        "reflect pad backward vs reference",
        &vals(c, &runs[0][5]),
        &want,
    );
}

// ------------------------------------------------------------------ reduce

/// Mirror of `ReduceParams` in src/ops/reduce.rs.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct ReduceParams {
    len: u32,
    splits: u32,
    c: u32,
    flags: u32,
}

#[test]
fn channel_sum_reads_f16() {
    let Some(c) = f16_ctx() else { return };
    let s = Shape::new4(3, 5, 17, 19); // 969 values per channel
    let binds = [act(s, 10), f32_zeros(5)];
    let p = ReduceParams {
        len: s.spatial_numel() as u32,
        splits: 3,
        c: 5,
        flags: 0,
    };
    let runs = both(c, &binds, |rec, t| {
        let g = rec.grid(5)?;
        dispatch(rec, "reduce", "channel_sum", &[], &p, &[&t[0], &t[1]], g)
    });
    check(c, "channel_sum", &runs, 1, SAME);
    // Against f64 on the rounded values: tests/conv.rs's bias-gradient tolerance.
    let want = reference::conv::channel_sum(&input(&binds[0]), &s);
    assert_close(
        "channel_sum vs reference",
        &vals(c, &runs[0][1]),
        &want,
        1e-4,
        1e-4,
    );
}

// ------------------------------------------------------------------ convolution

/// Mirror of `ConvParams` in src/ops/conv.rs.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct ConvParams {
    n: u32,
    c: u32,
    o: u32,
    flags: u32,
    inp: [u32; 3],
    kk: u32,
    out: [u32; 3],
    aux: u32,
    k: [u32; 3],
    k_pad: u32,
    s: [u32; 3],
    aux3: u32,
    p: [u32; 3],
    aux4: u32,
    d: [u32; 3],
    aux5: u32,
}

impl ConvParams {
    fn new(xs: &Shape, ys: &Shape, win: &Window, has_bias: bool) -> Self {
        ConvParams {
            n: xs.n() as u32,
            c: xs.c() as u32,
            o: ys.c() as u32,
            flags: has_bias as u32,
            inp: u3(xs.spatial()),
            kk: win.kernel_numel() as u32,
            out: u3(ys.spatial()),
            k: u3(win.kernel),
            s: u3(win.stride),
            p: u3(win.pad),
            d: u3(win.dilation),
            ..Default::default()
        }
    }
}

// Mirrors of the CPU-kernel blocking helpers in src/ops/conv.rs (without the
// WUNET_CPU_BLOCK override).
fn span(win: &Window, pb: usize) -> usize {
    (pb - 1) * win.stride[2] + (win.kernel[2] - 1) * win.dilation[2] + 1
}
fn cpu_block(win: &Window) -> (usize, usize) {
    let pb = (1..=4).rev().find(|&pb| span(win, pb) <= 16).unwrap_or(1);
    (32 / pb.max(4), pb)
}
fn lanes_per_row(width: usize, pb: usize) -> usize {
    width.div_ceil(pb).next_power_of_two().clamp(1, 64)
}
fn cpu_workgroup(rows: usize, lpr: usize) -> usize {
    (rows * lpr).next_power_of_two().clamp(8, 64).max(lpr)
}

/// `conv_fwd::entry` (src/ops/conv.rs dispatch_fwd) into `y`.
fn conv_fwd(
    rec: &mut Recorder,
    entry: &'static str,
    win: &Window,
    [x, w, b, y]: [&Tensor; 4],
) -> Result<()> {
    let (xs, ys) = (x.shape, y.shape);
    let mut p = ConvParams::new(&xs, &ys, win, true);
    let (ob, pb) = cpu_block(win);
    let lpr = lanes_per_row(ys.w(), pb);
    p.aux = lpr as u32;
    let rows = ys.n() * ys.d() * ys.h();
    let wg = cpu_workgroup(rows, lpr);
    let (tiles, ov) = match entry {
        "main_tiled" => (
            groups_for(ys.c(), 64) * groups_for(ys.n() * ys.spatial_numel(), 128),
            vec![],
        ),
        "main_cpu" => (
            groups_for(ys.c(), ob) * groups_for(rows, wg / lpr) * groups_for(ys.w(), lpr * pb),
            vec![
                ("OB", ob as f64),
                ("PB", pb as f64),
                ("KW", win.kernel[2] as f64),
                ("SW", win.stride[2] as f64),
                ("DW", win.dilation[2] as f64),
                ("WG", wg as f64),
            ],
        ),
        _ => (groups_for(ys.numel(), 64), vec![]),
    };
    let g = rec.grid(tiles)?;
    dispatch(rec, "conv_fwd", entry, &ov, &p, &[x, w, b, y], g)
}

/// `conv_dgrad::entry` (src/ops/conv.rs dispatch_dgrad) into `dx`.
fn conv_dgrad(
    rec: &mut Recorder,
    entry: &'static str,
    win: &Window,
    [dy, w, b, dx]: [&Tensor; 4],
) -> Result<()> {
    let (xs, ys) = (dx.shape, dy.shape);
    let mut p = ConvParams::new(&xs, &ys, win, true);
    let phases = win.stride[0] * win.stride[1] * win.stride[2];
    let jn: Vec<usize> = (0..3)
        .map(|a| xs.spatial()[a].div_ceil(win.stride[a]))
        .collect();
    let cols = xs.n() * jn[0] * jn[1] * jn[2];
    let rows = xs.n() * jn[0] * jn[1];
    let lpr = lanes_per_row(jn[2], 4);
    let wg = cpu_workgroup(rows, lpr);
    let (tiles, ov) = match entry {
        "main_tiled" => (groups_for(xs.c(), 64) * groups_for(cols, 128), vec![]),
        "main_cpu" => {
            p.k_pad = lpr as u32;
            (
                groups_for(xs.c(), 8) * groups_for(rows, wg / lpr) * groups_for(jn[2], lpr * 4),
                vec![("CB", 8.0), ("PB", 4.0), ("WG", wg as f64)],
            )
        }
        _ => (groups_for(xs.c() * cols, 64), vec![]),
    };
    let mut g = rec.grid(tiles)?;
    g[2] = phases as u32;
    dispatch(rec, "conv_dgrad", entry, &ov, &p, &[dy, w, b, dx], g)
}

/// `conv_wgrad::entry` into `part` with `splits` slices, then `reduce::sum_splits`
/// into `dw` (src/ops/conv.rs dispatch_wgrad, with its own split sizes).
fn conv_wgrad(
    rec: &mut Recorder,
    entry: &'static str,
    win: &Window,
    [x, dy, part, dw]: [&Tensor; 4],
) -> Result<usize> {
    let (xs, ys) = (x.shape, dy.shape);
    let mut p = ConvParams::new(&xs, &ys, win, false);
    let tap_rows = xs.c() * win.kernel[0] * win.kernel[1];
    let wg = tap_rows.next_power_of_two().clamp(8, 64);
    let ob = (32 / win.kernel[2]).clamp(1, 8);
    let (tiles, splits, chunk, ov) = if entry == "main_cpu" {
        let rows = ys.n() * ys.d() * ys.h();
        (
            groups_for(tap_rows, wg) * groups_for(ys.c(), ob),
            rows.div_ceil(4),
            4,
            vec![
                ("OB", ob as f64),
                ("WG", wg as f64),
                ("KW", win.kernel[2] as f64),
                ("SW", win.stride[2] as f64),
                ("DW", win.dilation[2] as f64),
            ],
        )
    } else {
        let kt = ys.n() * ys.spatial_numel();
        let r = xs.c() * win.kernel_numel();
        (
            groups_for(r, 128) * groups_for(ys.c(), 64),
            kt.div_ceil(64),
            64,
            vec![],
        )
    };
    assert!(part.numel() >= splits * dw.numel(), "part too small");
    p.aux = splits as u32;
    p.k_pad = chunk as u32;
    let mut g = rec.grid(tiles)?;
    g[2] = splits as u32;
    dispatch(rec, "conv_wgrad", entry, &ov, &p, &[x, dy, part], g)?;
    let rp = ReduceParams {
        len: dw.numel() as u32,
        splits: splits as u32,
        c: 0,
        flags: 0,
    };
    let g = rec.grid(groups_for(dw.numel(), 256))?;
    // Partials are f32: sum_splits runs in the f32 module inside this mixed program.
    dispatch(rec, "reduce", "sum_splits", &[], &rp, &[part, dw], g)?;
    Ok(splits)
}

/// tests/conv.rs's f32 tolerance for a sum of `k` products, plus one f16 rounding.
fn conv_tol(k: usize) -> (f32, f32) {
    let t = 1e-4 * (k as f32 / 1024.0).sqrt().max(1.0);
    (t, t + 1.0 / 1024.0)
}

#[test]
fn conv_entries_read_and_store_f16() {
    let Some(c) = f16_ctx() else { return };
    // Stride 1 (forward, weight gradient) and stride 2 (conv_dgrad's strided path).
    for (xs, o, win) in [
        (Shape::new4(2, 5, 9, 11), 7, Window::cube(2, 3, 1, 1)),
        (Shape::new4(1, 6, 10, 13), 9, Window::cube(2, 3, 2, 1)),
    ] {
        let ys = reference::conv::conv_out_shape(&xs, o, &win).expect("window fits");
        let ws = wunet::shape::conv_weight_shape(o, xs.c(), &win, false);
        let w = B::F32(rand_vec(ws.numel(), 11), ws);
        let bo = B::F32(rand_vec(o, 12), Shape::vector(o));
        let bc = B::F32(rand_vec(xs.c(), 13), Shape::vector(xs.c()));
        let x = act(xs, 14);
        let dy = act(ys, 15);
        let binds = [
            x.clone(),
            w.clone(),
            bo.clone(),
            act_zeros(ys),
            dy.clone(),
            bc.clone(),
            act_zeros(xs),
            f32_zeros(ws.numel() * 64),
            f32_zeros(ws.numel()),
        ];
        let (xv, wv, dyv) = (input(&x), input(&w), input(&dy));
        let (yref, _) = reference::conv::conv_fwd(&xv, &xs, &wv, &ws, Some(&input(&bo)), &win);
        let mut dxref = reference::conv::conv_dgrad(&dyv, &ys, &wv, &ws, &xs, &win);
        let bcv = input(&bc);
        let sp = xs.spatial_numel();
        for (i, v) in dxref.iter_mut().enumerate() {
            *v += bcv[(i / sp) % xs.c()];
        }
        let dwref = reference::conv::conv_wgrad(&xv, &xs, &dyv, &ys, &ws, &win);
        for entry in ["main_tiled", "main_cpu", "main_direct"] {
            let name = format!("{xs} {win:?} {entry}");
            let runs = both(c, &binds, |rec, t| {
                conv_fwd(rec, entry, &win, [&t[0], &t[1], &t[2], &t[3]])?;
                conv_dgrad(rec, entry, &win, [&t[4], &t[1], &t[5], &t[6]])?;
                if entry != "main_direct" {
                    conv_wgrad(rec, entry, &win, [&t[0], &t[4], &t[7], &t[8]])?;
                }
                Ok(())
            });
            // y and dx: f32 sums of the same products, one rounding on store.
            check(c, &format!("{name} y"), &runs, 3, STORED);
            check(c, &format!("{name} dx"), &runs, 6, STORED);
            let kf = xs.c() * win.kernel_numel();
            let t = conv_tol(kf);
            assert_close(
                &format!("{name} y vs reference"),
                &vals(c, &runs[0][3]),
                &yref,
                t.0,
                t.1,
            );
            let t = conv_tol(o * win.kernel_numel());
            assert_close(
                &format!("{name} dx vs reference"),
                &vals(c, &runs[0][6]),
                &dxref,
                t.0,
                t.1,
            );
            if entry != "main_direct" {
                // dw is an f32 parameter gradient: the same f32 sums in both runs.
                check(c, &format!("{name} dw"), &runs, 8, SAME);
                let k = ys.n() * ys.spatial_numel();
                let t = 1e-4 * (k as f32 / 1024.0).sqrt().max(1.0);
                assert_close(
                    &format!("{name} dw vs reference"),
                    &vals(c, &runs[0][8]),
                    &dwref,
                    t,
                    t,
                );
            }
        }
    }
}

// ------------------------------------------------------------------ pooling

/// Mirror of `PoolParams` in src/ops/pool.rs.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct PoolParams {
    nc: u32,
    total: u32,
    flags: u32,
    aux: u32,
    inp: [u32; 3],
    in_sp: u32,
    out: [u32; 3],
    out_sp: u32,
    k: [u32; 3],
    kk: u32,
    s: [u32; 3],
    aux1: u32,
    p: [u32; 3],
    aux2: u32,
    cnt: [u32; 3],
    aux3: u32,
    dec_w: [u32; 2],
    dec_h: [u32; 2],
    dec_d: [u32; 2],
    dec_sp: [u32; 2],
    div_s: [[u32; 2]; 3],
    aux4: [u32; 2],
}

impl PoolParams {
    fn new(xs: &Shape, ys: &Shape, win: &Window, run: &Shape, flags: u32) -> Self {
        let [d, h, w] = run.spatial();
        PoolParams {
            nc: (xs.n() * xs.c()) as u32,
            total: run.numel() as u32,
            flags,
            inp: u3(xs.spatial()),
            in_sp: xs.spatial_numel() as u32,
            out: u3(ys.spatial()),
            out_sp: ys.spatial_numel() as u32,
            k: u3(win.kernel),
            kk: win.kernel_numel() as u32,
            s: u3(win.stride),
            p: u3(win.pad),
            cnt: u3([0, 1, 2].map(|a| win.kernel[a].div_ceil(win.stride[a]))),
            dec_w: magic(w),
            dec_h: magic(h),
            dec_d: magic(d),
            dec_sp: magic(xs.spatial_numel()),
            div_s: win.stride.map(magic),
            ..Default::default()
        }
    }
}

fn pool_launch(
    rec: &mut Recorder,
    entry: &'static str,
    p: &PoolParams,
    ts: [&Tensor; 3],
) -> Result<()> {
    let g = rec.grid(groups_for(p.total as usize, 256))?;
    dispatch(rec, "pool", entry, &[], p, &ts, g)
}

#[test]
fn pool_entries_read_and_store_f16() {
    let Some(c) = f16_ctx() else { return };
    // k3 s2 p1: overlapping windows, so the backwards sum several outputs.
    let xs = Shape::new4(2, 3, 9, 10);
    let win = Window::cube(2, 3, 2, 1);
    let ys = xs.with_spatial(win.conv_out(xs.spatial()).expect("window fits"));
    let unit = Window::cube(3, 1, 1, 0);
    let binds = [
        act(xs, 20),                      // 0 x
        act_zeros(ys),                    // 1 max y
        B::U32(vec![0; ys.numel()], ys),  // 2 indices
        act(ys, 21),                      // 3 dy
        act_zeros(xs),                    // 4 max dx
        act_zeros(xs),                    // 5 unpooled (zero-filled)
        act(xs, 22),                      // 6 unpool dy
        act_zeros(ys),                    // 7 unpool dx
        act_zeros(ys),                    // 8 avg y
        act_zeros(xs),                    // 9 avg dx
        B::U32(vec![0], Shape::scalar()), // 10 dummy indices
    ];
    let runs = both(c, &binds, |rec, t| {
        pool_launch(
            rec,
            "max_fwd",
            &PoolParams::new(&xs, &ys, &win, &ys, 0),
            [&t[0], &t[1], &t[2]],
        )?;
        pool_launch(
            rec,
            "max_bwd",
            &PoolParams::new(&xs, &ys, &win, &xs, 0),
            [&t[3], &t[4], &t[2]],
        )?;
        // Max-unpooling: the pooled y back to x's size, and its backward.
        pool_launch(
            rec,
            "unpool_fwd",
            &PoolParams::new(&ys, &xs, &unit, &ys, 0),
            [&t[1], &t[5], &t[2]],
        )?;
        pool_launch(
            rec,
            "unpool_bwd",
            &PoolParams::new(&ys, &xs, &unit, &ys, 0),
            [&t[6], &t[7], &t[2]],
        )?;
        // count_include_pad = false (divisors vary at the borders).
        pool_launch(
            rec,
            "avg_fwd",
            &PoolParams::new(&xs, &ys, &win, &ys, 0),
            [&t[0], &t[8], &t[10]],
        )?;
        pool_launch(
            rec,
            "avg_bwd",
            &PoolParams::new(&xs, &ys, &win, &xs, 0),
            [&t[3], &t[9], &t[10]],
        )
    });
    check(c, "max_fwd y", &runs, 1, EXACT);
    assert_eq!(
        runs[0][2].to_u32_vec(c).unwrap(),
        runs[1][2].to_u32_vec(c).unwrap(),
        "max_fwd indices"
    );
    let (yref, iref, _) = reference::pool::max_pool(&input(&binds[0]), &xs, &win);
    same_bits("max_fwd vs reference", &vals(c, &runs[0][1]), &yref);
    assert_eq!(
        runs[0][2].to_u32_vec(c).unwrap(),
        iref,
        "indices vs reference"
    );
    // Up to 4 overlapping windows summed in f32, one rounding on store.
    check(c, "max_bwd dx", &runs, 4, STORED);
    check(c, "unpool_fwd", &runs, 5, EXACT);
    check(c, "unpool_bwd", &runs, 7, EXACT);
    check(c, "avg_fwd y", &runs, 8, STORED);
    check(c, "avg_bwd dx", &runs, 9, STORED);
    let dy = input(&binds[3]);
    let want = reference::pool::max_pool_grad(&dy, &iref, &ys, &xs);
    near("max_bwd vs reference", &vals(c, &runs[0][4]), &want);
    let (want, _) = reference::pool::max_unpool(&yref, &ys, &iref, xs.spatial());
    same_bits("unpool_fwd vs reference", &vals(c, &runs[0][5]), &want);
    let want = reference::pool::max_unpool_grad(&input(&binds[6]), &xs, &iref, &ys);
    same_bits("unpool_bwd vs reference", &vals(c, &runs[0][7]), &want);
    let want = reference::pool::avg_pool_grad(&dy, &ys, &win, false, &xs);
    near("avg_bwd vs reference", &vals(c, &runs[0][9]), &want);
    let (aref, _) = reference::pool::avg_pool(&input(&binds[0]), &xs, &win, false);
    assert_close(
        "avg_fwd vs reference",
        &vals(c, &runs[0][8]),
        &aref,
        1e-6,
        1e-5 + 1.0 / 1024.0,
    );
}

// ------------------------------------------------------------------ upsampling

/// Mirror of `UpsampleParams` in src/ops/upsample.rs.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct UpsampleParams {
    nc: u32,
    total: u32,
    aux0: u32,
    aux1: u32,
    inp: [u32; 3],
    in_sp: u32,
    out: [u32; 3],
    out_sp: u32,
    f: [u32; 3],
    aux2: u32,
    dec_w: [u32; 2],
    dec_h: [u32; 2],
    dec_d: [u32; 2],
    div_f: [[u32; 2]; 3],
}

/// src/ops/upsample.rs launch: one invocation per element of `dst`.
fn upsample_launch(
    rec: &mut Recorder,
    entry: &'static str,
    xs: &Shape,
    ys: &Shape,
    factor: [usize; 3],
    src: &Tensor,
    dst: &Tensor,
) -> Result<()> {
    let [d, h, w] = dst.shape.spatial();
    let p = UpsampleParams {
        nc: (xs.n() * xs.c()) as u32,
        total: dst.numel() as u32,
        inp: u3(xs.spatial()),
        in_sp: xs.spatial_numel() as u32,
        out: u3(ys.spatial()),
        out_sp: ys.spatial_numel() as u32,
        f: u3(factor),
        dec_w: magic(w),
        dec_h: magic(h),
        dec_d: magic(d),
        div_f: factor.map(magic),
        ..Default::default()
    };
    let g = rec.grid(groups_for(dst.numel(), 256))?;
    dispatch(rec, "upsample", entry, &[], &p, &[src, dst], g)
}

#[test]
fn upsample_entries_read_and_store_f16() {
    let Some(c) = f16_ctx() else { return };
    for (xs, f) in [
        (Shape::new4(2, 3, 5, 7), [1, 2, 3]),
        (Shape::new5(1, 2, 3, 4, 5), [2, 2, 2]),
    ] {
        let sp = xs.spatial();
        let ys = xs.with_spatial([sp[0] * f[0], sp[1] * f[1], sp[2] * f[2]]);
        let binds = [
            act(xs, 30),
            act(ys, 31),
            act_zeros(ys),
            act_zeros(xs),
            act_zeros(ys),
            act_zeros(xs),
        ];
        let runs = both(c, &binds, |rec, t| {
            upsample_launch(rec, "nearest_fwd", &xs, &ys, f, &t[0], &t[2])?;
            upsample_launch(rec, "nearest_bwd", &xs, &ys, f, &t[1], &t[3])?;
            upsample_launch(rec, "linear_fwd", &xs, &ys, f, &t[0], &t[4])?;
            upsample_launch(rec, "linear_bwd", &xs, &ys, f, &t[1], &t[5])
        });
        check(c, &format!("{xs} nearest_fwd"), &runs, 2, EXACT);
        check(c, &format!("{xs} nearest_bwd"), &runs, 3, STORED);
        check(c, &format!("{xs} linear_fwd"), &runs, 4, STORED);
        check(c, &format!("{xs} linear_bwd"), &runs, 5, STORED);
        use wunet::ops::upsample::UpsampleMode::{Linear, Nearest};
        let (x, dy) = (input(&binds[0]), input(&binds[1]));
        let (want, _) = reference::upsample::upsample(&x, &xs, f, Nearest);
        same_bits(
            &format!("{xs} nearest_fwd vs reference"),
            &vals(c, &runs[0][2]),
            &want,
        );
        for (i, mode) in [(3, Nearest), (5, Linear)] {
            let want = reference::upsample::upsample_grad(&dy, f, mode, &xs);
            near(
                &format!("{xs} {mode:?} backward vs reference"),
                &vals(c, &runs[0][i]),
                &want,
            );
        }
        let (want, _) = reference::upsample::upsample(&x, &xs, f, Linear);
        assert_close(
            &format!("{xs} linear_fwd vs reference"),
            &vals(c, &runs[0][4]),
            &want,
            1e-6,
            1e-5 + 1.0 / 1024.0,
        );
    }
}

// ------------------------------------------------------------------ batch norm

/// Mirror of `NormParams` in src/ops/norm.rs.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct NormParams {
    s: u32,
    c: u32,
    planes: u32,
    chunk: u32,
    cpp: u32,
    sets: u32,
    pps: u32,
    flags: u32,
    set_a: u32,
    set_b: u32,
    set_q: u32,
    set_r: u32,
    eps: f32,
    momentum: f32,
    unbias: f32,
    inv_m: f32,
    sums_off: u32,
    pad: [u32; 3],
}

/// Batch-norm layout (src/ops/norm.rs `Layout::batch` and `Layout::params`), with
/// a short chunk so each plane has several partials.
fn bn_params(xs: &Shape, chunk: usize, flags: u32) -> NormParams {
    let (s, c, n) = (xs.spatial_numel(), xs.c(), xs.n());
    let m = n * s;
    NormParams {
        s: s as u32,
        c: c as u32,
        planes: (n * c) as u32,
        chunk: chunk as u32,
        cpp: s.div_ceil(chunk) as u32,
        sets: c as u32,
        pps: n as u32,
        flags,
        set_a: 1,
        set_b: c as u32,
        set_q: 1,
        set_r: c as u32,
        eps: 1e-5,
        momentum: 0.1,
        unbias: (m as f64 / (m - 1) as f64) as f32,
        inv_m: (1.0 / m as f64) as f32,
        ..Default::default()
    }
}

#[test]
fn batch_norm_entries_read_and_store_f16() {
    let Some(c) = f16_ctx() else { return };
    let xs = Shape::new4(3, 5, 7, 9);
    let ch = xs.c();
    let planes = xs.n() * ch;
    let chunk = 16;
    let p = bn_params(&xs, chunk, 1); // flags 1: update the running statistics
    let nparts = planes * p.cpp as usize;
    let mut x = rand_vec(xs.numel(), 40);
    for v in &mut x {
        *v = 3.0 + 2.0 * *v; // an offset, as real activations have
    }
    let binds = [
        B::Act(x, xs),                               // 0 x
        f32_zeros(2 * nparts),                       // 1 stats partials
        f32_zeros(ch),                               // 2 mean
        f32_zeros(ch),                               // 3 invstd
        B::F32(rand_vec(ch, 41), Shape::vector(ch)), // 4 running mean
        B::F32(vec![1.0; ch], Shape::vector(ch)),    // 5 running var
        B::F32(rand_vec(ch, 42), Shape::vector(ch)), // 6 gamma
        B::F32(rand_vec(ch, 43), Shape::vector(ch)), // 7 beta
        act_zeros(xs),                               // 8 y
        act_zeros(xs),                               // 9 y (eval: running stats)
        act(xs, 44),                                 // 10 dy
        f32_zeros(2 * nparts + 2 * ch),              // 11 grad partials
        f32_zeros(ch),                               // 12 dgamma
        f32_zeros(ch),                               // 13 dbeta
        act_zeros(xs),                               // 14 dx
    ];
    let runs = both(c, &binds, |rec, t| {
        let g = rec.grid(nparts as u64)?;
        let st = [&t[0], &t[1], &t[2], &t[3], &t[4], &t[5]];
        dispatch(rec, "norm_stats", "partials", &[], &p, &st, g)?;
        let gs = rec.grid(ch as u64)?;
        dispatch(rec, "norm_stats", "combine", &[], &p, &st, gs)?;
        let pa = bn_params(&xs, chunk, 0);
        let ap = [&t[0], &t[0], &t[2], &t[3], &t[6], &t[7], &t[8]];
        dispatch(rec, "norm_apply", "normalize", &[], &pa, &ap, g)?;
        // Eval forward: the invstd binding holds the running variance (flags & 2).
        let pe = bn_params(&xs, chunk, 2);
        let ap = [&t[0], &t[0], &t[4], &t[5], &t[6], &t[7], &t[9]];
        dispatch(rec, "norm_apply", "normalize", &[], &pe, &ap, g)?;
        // Training backward (src/ops/norm.rs dispatch_backward).
        let mut pb = bn_params(&xs, chunk, 0);
        pb.sums_off = (2 * nparts) as u32;
        let gr = [&t[0], &t[10], &t[2], &t[3], &t[6], &t[11], &t[12], &t[13]];
        dispatch(rec, "norm_grad", "partials", &[], &pb, &gr, g)?;
        let gc = rec.grid((ch + ch) as u64)?;
        dispatch(rec, "norm_grad", "combine", &[], &pb, &gr, gc)?;
        let gi = [&t[0], &t[10], &t[2], &t[3], &t[6], &t[11], &t[14]];
        dispatch(rec, "norm_apply", "grad_input", &[], &pb, &gi, g)
    });
    for (i, what) in [
        (2, "mean"),
        (3, "invstd"),
        (4, "running mean"),
        (5, "running var"),
        (12, "dgamma"),
        (13, "dbeta"),
    ] {
        check(c, what, &runs, i, SAME);
    }
    check(c, "normalize y", &runs, 8, STORED);
    check(c, "normalize y (eval)", &runs, 9, STORED);
    // dx = invstd*(gamma*g - Sh/m - xhat*Shx/m): f32 from the same sums, one rounding.
    check(c, "grad_input dx", &runs, 14, STORED);
    let (mut rm, mut rv) = (input(&binds[4]), input(&binds[5]));
    let r = reference::norm::batch_norm_train(
        &input(&binds[0]),
        &xs,
        &input(&binds[6]),
        &input(&binds[7]),
        &mut rm,
        &mut rv,
        0.1,
        1e-5,
    );
    // tests/norm.rs tolerances (1e-4), plus one f16 rounding of y.
    assert_close(
        "mean vs reference",
        &vals(c, &runs[0][2]),
        &r.mean,
        1e-4,
        1e-4,
    );
    assert_close(
        "invstd vs reference",
        &vals(c, &runs[0][3]),
        &r.invstd,
        1e-4,
        1e-4,
    );
    assert_close(
        "running var vs reference",
        &vals(c, &runs[0][5]),
        &rv,
        1e-4,
        1e-4,
    );
    near("y vs reference", &vals(c, &runs[0][8]), &r.y);
    let (x, gamma, beta) = (input(&binds[0]), input(&binds[6]), input(&binds[7]));
    let want = reference::norm::batch_norm_eval(&x, &xs, &gamma, &beta, &rm, &rv, 1e-5);
    near("eval y vs reference", &vals(c, &runs[0][9]), &want);
    let gr = reference::norm::batch_norm_train_backward(
        &x,
        &xs,
        &input(&binds[10]),
        &gamma,
        &r.mean,
        &r.invstd,
    );
    near("dx vs reference", &vals(c, &runs[0][14]), &gr.dx);
    assert_close(
        "dgamma vs reference",
        &vals(c, &runs[0][12]),
        &gr.dgamma,
        1e-4,
        1e-4,
    );
    assert_close(
        "dbeta vs reference",
        &vals(c, &runs[0][13]),
        &gr.dbeta,
        1e-4,
        1e-4,
    );
}

// ------------------------------------------------------------------ losses

/// Mirror of `CeParams` in src/ops/loss.rs.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct CeParams {
    n: u32,
    c: u32,
    s: u32,
    chunk: u32,
    cpp: u32,
    flags: u32,
    ignore: i32,
    nparts: u32,
    scale: f32,
    aux_off: u32,
    pad: [u32; 2],
}

/// Mirror of `DiceParams` in src/ops/loss.rs.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct DiceParams {
    n: u32,
    c: u32,
    s: u32,
    chunk: u32,
    cpp: u32,
    flags: u32,
    ignore: i32,
    coef_off: u32,
    smooth: f32,
    scale: f32,
    inv_terms: f32,
    terms: u32,
}

/// Labels in -1..=C: -1 and C are out of range, `ignore` is ignored.
fn labels(n: usize, classes: usize, seed: u64) -> Vec<i32> {
    rand_vec(n, seed)
        .into_iter()
        .map(|v| (((v + 1.0) * 0.5 * (classes + 2) as f32) as i32 - 1).min(classes as i32))
        .collect()
}

#[test]
fn cross_entropy_reads_f16_logits_and_stores_f16_grad() {
    let Some(c) = f16_ctx() else { return };
    let xs = Shape::new4(2, 4, 6, 7);
    let (n, ch, s) = (xs.n(), xs.c(), xs.spatial_numel());
    let ls = Shape::new4(n, 1, 6, 7);
    let chunk = 16;
    let cpp = s.div_ceil(chunk);
    let nparts = n * cpp;
    let ignore = 2;
    // class weights, weight map, ignore index, weighted mean, nll map (src/ops/loss.rs flags)
    let p = CeParams {
        n: n as u32,
        c: ch as u32,
        s: s as u32,
        chunk: chunk as u32,
        cpp: cpp as u32,
        flags: 1 | 2 | 4 | 8 | 16,
        ignore,
        nparts: nparts as u32,
        scale: 1.0,
        aux_off: (3 * nparts) as u32,
        pad: [0; 2],
    };
    let mut logits = rand_vec(xs.numel(), 50);
    for v in &mut logits {
        *v *= 4.0;
    }
    let lab = labels(n * s, ch, 51);
    let cw: Vec<f32> = (0..ch).map(|k| 0.5 + k as f32 * 0.25).collect();
    let wm: Vec<f32> = rand_vec(n * s, 52).iter().map(|v| 1.5 + v).collect();
    let binds = [
        B::Act(logits, xs),                    // 0 logits
        B::I32(lab.clone(), ls),               // 1 labels
        B::F32(cw.clone(), Shape::vector(ch)), // 2 class weights
        B::F32(wm.clone(), ls),                // 3 weight map
        f32_zeros(n * s),                      // 4 lse
        f32_zeros(n * s),                      // 5 nll map
        f32_zeros(3 * nparts + 1),             // 6 partials
        f32_zeros(1),                          // 7 loss
        act_zeros(xs),                         // 8 grad
    ];
    let runs = both(c, &binds, |rec, t| {
        let fw = [&t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &t[6], &t[7]];
        let g = rec.grid(nparts as u64)?;
        dispatch(rec, "loss_ce", "pixels", &[], &p, &fw, g)?;
        dispatch(rec, "loss_ce", "combine", &[], &p, &fw, [1, 1, 1])?;
        let bw = [&t[0], &t[1], &t[2], &t[3], &t[4], &t[6], &t[8]];
        dispatch(rec, "loss_ce_grad", "grad_logits", &[], &p, &bw, g)
    });
    check(c, "lse", &runs, 4, SAME);
    check(c, "nll map", &runs, 5, SAME);
    check(c, "loss", &runs, 7, SAME);
    check(c, "grad", &runs, 8, STORED);
    let cfg = wunet::ops::loss::CeConfig {
        reduction: wunet::ops::loss::CeReduction::WeightedMean,
        ignore_index: Some(ignore),
    };
    let r = reference::loss::softmax_cross_entropy(
        &input(&binds[0]),
        &xs,
        &lab,
        Some(&cw),
        Some(&wm),
        &cfg,
    );
    // tests/loss.rs tolerances (1e-4), plus one f16 rounding for the gradient.
    assert_close(
        "loss vs reference",
        &vals(c, &runs[0][7]),
        &[r.loss as f32],
        1e-4,
        1e-4,
    );
    assert_close(
        "grad vs reference",
        &vals(c, &runs[0][8]),
        &r.grad,
        1e-6,
        1e-4 + 1.0 / 1024.0,
    );
}

#[test]
fn dice_reads_f16_logits_and_stores_f16_grad() {
    let Some(c) = f16_ctx() else { return };
    let xs = Shape::new4(2, 3, 5, 6);
    let (n, ch, s) = (xs.n(), xs.c(), xs.spatial_numel());
    let ls = Shape::new4(n, 1, 5, 6);
    let chunk = 8;
    let cpp = s.div_ceil(chunk);
    let nparts = ch * n * cpp;
    let terms = ch; // batch reduction
    let ignore = 1;
    let lab = labels(n * s, ch, 61);
    for accumulate in [false, true] {
        // ignore index; with `accumulate` add into loss and grad (flags 32 | 64, Dice + CE)
        let flags = 4 | if accumulate { 32 | 64 } else { 0 };
        let p = DiceParams {
            n: n as u32,
            c: ch as u32,
            s: s as u32,
            chunk: chunk as u32,
            cpp: cpp as u32,
            flags,
            ignore,
            coef_off: (3 * nparts) as u32,
            smooth: 1e-5,
            scale: 1.0,
            inv_terms: (1.0 / terms as f64) as f32,
            terms: terms as u32,
        };
        let grad0 = if accumulate {
            act(xs, 62)
        } else {
            act_zeros(xs)
        };
        let binds = [
            act(xs, 60),                         // 0 logits
            B::I32(lab.clone(), ls),             // 1 labels
            f32_zeros(n * s),                    // 2 lse
            f32_zeros(3 * nparts + 2 * terms),   // 3 partials
            f32_zeros(terms),                    // 4 dice
            B::F32(vec![0.25], Shape::scalar()), // 5 loss
            grad0,                               // 6 grad
        ];
        let runs = both(c, &binds, |rec, t| {
            let b = [&t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &t[6]];
            let pix = rec.grid((n * cpp) as u64)?;
            dispatch(rec, "loss_dice", "lse_pixels", &[], &p, &b, pix)?;
            let g = rec.grid(nparts as u64)?;
            dispatch(rec, "loss_dice", "partials", &[], &p, &b, g)?;
            let g = rec.grid(terms as u64)?;
            dispatch(rec, "loss_dice", "combine", &[], &p, &b, g)?;
            dispatch(rec, "loss_dice", "total", &[], &p, &b, [1, 1, 1])?;
            dispatch(rec, "loss_dice", "grad_logits", &[], &p, &b, pix)
        });
        let tag = if accumulate { " (accumulate)" } else { "" };
        check(c, &format!("lse{tag}"), &runs, 2, SAME);
        check(c, &format!("dice{tag}"), &runs, 4, SAME);
        check(c, &format!("loss{tag}"), &runs, 5, SAME);
        // The gradient (plus, accumulating, the f16 value read back) in f32, one rounding.
        check(c, &format!("grad{tag}"), &runs, 6, STORED);
        if !accumulate {
            let cfg = wunet::ops::loss::DiceConfig {
                reduce: wunet::ops::loss::DiceReduce::Batch,
                smooth: 1e-5,
                ignore_index: Some(ignore),
            };
            let r = reference::loss::dice_loss(&input(&binds[0]), &xs, &lab, &cfg);
            assert_close(
                "dice vs reference",
                &vals(c, &runs[0][4]),
                &r.dice,
                1e-4,
                1e-4,
            );
            assert_close(
                "grad vs reference",
                &vals(c, &runs[0][6]),
                &r.grad,
                1e-6,
                1e-4 + 1.0 / 1024.0,
            );
        }
    }
}
