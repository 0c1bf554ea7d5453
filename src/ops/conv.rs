//! Convolution and transposed convolution, forward and backward, 2D and 3D.
//!
//! Three kernels cover all six computations (the transposed convolution is
//! the adjoint of the convolution):
//!
//! | computation                  | kernel       | roles                                   |
//! |------------------------------|--------------|-----------------------------------------|
//! | conv forward                 | `conv_fwd`   | x, w                                    |
//! | conv grad input              | `conv_dgrad` | dy, w                                   |
//! | conv grad weight             | `conv_wgrad` | x, dy                                   |
//! | transposed conv forward      | `conv_dgrad` | x as dy, w (IOHW = conv OIHW), + bias   |
//! | transposed conv grad input   | `conv_fwd`   | dy as x, w                              |
//! | transposed conv grad weight  | `conv_wgrad` | dy as x, x as dy                        |
//!
//! Each kernel has a workgroup-tiled entry for GPUs and a register-block
//! entry without barriers for CPU adapters; [`ConvKernel::Auto`] picks by
//! adapter class. Stride-1 3x3(x3) forwards and grad inputs can also run as
//! Winograd convolutions ([`winograd`]: F(2x2,3x3), F(4x4,3x3), F(2x2x2,3x3x3));
//! for f32 activations `Auto` chooses between them and the class default by
//! measurement, cached on disk ([`tune`]). Where the device has matrix units (cooperative matrices,
//! 16x16x16 f16 -> f32, subgroup size 32) and its one-time self-test passed,
//! convolutions on f16 activations run the matrix-unit kernels instead
//! (`conv_coop_direct` for stride-1 forwards and grad inputs, `conv_coop` for the other
//! forwards, `conv_coop_direct_wgrad` for stride-1 3x3(x3) grad weights, `conv_coop_wgrad`
//! for the others; see [`super::coop`]). Only
//! `groups = 1` is supported.
//!
//! Activations (x, y, dy, dx) are F32 or F16 tensors (one type per op); weights,
//! bias and weight gradients are F32.
//!
//! The up-convolution (transposed, kernel == stride, padding 0; the U-Net's 2x2
//! stride 2) has its own kernel, `conv_up` ([`up`]), for all three transposed
//! computations: [`ConvKernel::Up`], and `Auto` on GPUs.

use super::{expect, groups_for};
use crate::error::{Error, Result};
use crate::gpu::{AdapterClass, DType, Recorder, Scratch, Tensor};
use crate::shape::{self, Shape, Window};
use bytemuck::{Pod, Zeroable};

mod cpu;
mod kernel;
pub mod tune;
pub mod up;
pub mod winograd;

use cpu::{cpu_block, cpu_overrides, cpu_workgroup, lanes_per_row, span};
use kernel::class_default;
pub use kernel::ConvKernel;

/// Uniform block shared by the conv kernels (see the WGSL headers).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
pub(crate) struct ConvParams {
    n: u32,
    c: u32,
    o: u32,
    flags: u32,
    inp: [u32; 3],
    kk: u32,
    out: [u32; 3],
    pub(super) aux: u32,
    k: [u32; 3],
    pub(super) k_pad: u32,
    s: [u32; 3],
    aux3: u32,
    p: [u32; 3],
    aux4: u32,
    d: [u32; 3],
    aux5: u32,
}

fn u3(a: [usize; 3]) -> [u32; 3] {
    [a[0] as u32, a[1] as u32, a[2] as u32]
}

/// What a convolution forward applies to its sums before it stores them: the bias, then
/// a ReLU where the executor fused one (`Op::ConvRelu`). Flags bits 0 and 3 of every conv
/// forward kernel's params.
#[derive(Clone, Copy, Default)]
pub(crate) struct Epilogue<'a> {
    pub bias: Option<&'a Tensor>,
    pub relu: bool,
}

impl<'a> Epilogue<'a> {
    pub fn bias(bias: Option<&'a Tensor>) -> Self {
        Epilogue { bias, relu: false }
    }
    pub fn flags(&self) -> u32 {
        self.bias.is_some() as u32 | (self.relu as u32) << 3
    }
    /// The tensor bound as the bias: the bias, else `stand_in` (unread without flags bit 0).
    pub fn bias_or(&self, stand_in: &'a Tensor) -> &'a Tensor {
        self.bias.unwrap_or(stand_in)
    }
}

impl ConvParams {
    /// `xs`: the convolution-input side (C channels), `ys`: the output side (O channels).
    pub(super) fn new(xs: &Shape, ys: &Shape, win: &Window, has_bias: bool) -> Self {
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
    /// The forward epilogue `ep` (flags bits 0 and 3).
    pub(crate) fn with_epilogue(mut self, ep: &Epilogue) -> Self {
        self.flags = (self.flags & !9) | ep.flags();
        self
    }
    /// With phase rows (`conv_coop_direct.wgsl`): the GEMM rows are output channels x the
    /// phases of an up-convolution kernel `k` (flags bit 1, aux3..aux5 = k).
    pub(super) fn with_phases(mut self, k: [usize; 3]) -> Self {
        self.flags |= 2;
        [self.aux3, self.aux4, self.aux5] = u3(k);
        self
    }
}

fn op_name(prefix: &'static str, x: &Shape) -> &'static str {
    match (prefix, x.is_3d()) {
        ("conv", false) => "conv2d",
        ("conv", true) => "conv3d",
        ("conv_transpose", false) => "conv_transpose2d",
        ("conv_transpose", true) => "conv_transpose3d",
        _ => prefix,
    }
}

/// Output shape of `conv(x, w)` with weight `O, C, k..` ([`shape::conv_out_shape`]);
/// errors name the op and both shapes.
pub fn conv_out_shape(x: &Shape, w: &Shape, win: &Window) -> Result<Shape> {
    shape::conv_out_shape(x, w, win).map_err(|m| Error::shape(op_name("conv", x), m))
}

/// Output shape of `conv_transpose(x, w)` with ConvTranspose weight `C_in, C_out, k..`
/// ([`shape::conv_transpose_out_shape`]).
pub fn conv_transpose_out_shape(x: &Shape, w: &Shape, win: &Window) -> Result<Shape> {
    shape::conv_transpose_out_shape(x, w, win)
        .map_err(|m| Error::shape(op_name("conv_transpose", x), m))
}

/// `dy` must be the forward output `ys` of input `xs`, f32.
fn check_dy(
    op: &'static str,
    dy: &Tensor,
    ys: &Shape,
    xs: &Shape,
    win: &Window,
    act: DType,
) -> Result<()> {
    shape::check_grad_output(&dy.shape, ys, xs, win).map_err(|m| Error::shape(op, m))?;
    expect_act(op, "grad_output", dy, *ys, act)
}

fn check_bias(op: &'static str, b: Option<&Tensor>, x: &Shape, ch: usize) -> Result<()> {
    if let Some(b) = b {
        shape::check_vector("bias", &b.shape, ch, x).map_err(|m| Error::shape(op, m))?;
        expect(op, "bias", b, b.shape, DType::F32)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ kernels

/// `y = conv(x, w) + b` computed by `conv_fwd` (x: C side, y: O side).
fn dispatch_fwd(
    rec: &mut Recorder,
    k: ConvKernel,
    x: &Tensor,
    w: &Tensor,
    ep: Epilogue,
    win: &Window,
    y: &Tensor,
) -> Result<()> {
    if let Some(mode) = super::coop::coop_mode(k) {
        return super::coop::dispatch_fwd(rec, mode, x, w, ep, win, y);
    }
    if let Some(m) = winograd::tile_edge(k) {
        if winograd::applies(win, x.shape.is_3d()) {
            return winograd::forward(rec, m, x, w, ep, win, y);
        }
        return dispatch_fwd(rec, class_default(rec.ctx), x, w, ep, win, y);
    }
    let (xs, ys) = (x.shape, y.shape);
    let mut params = ConvParams::new(&xs, &ys, win, false).with_epilogue(&ep);
    params.aux = lanes_per_row(ys.w(), cpu_block(win).1) as u32;
    let bias = ep.bias_or(w);
    // The CPU kernel keeps a row segment of at most 16 values in registers.
    let k = if k == ConvKernel::Cpu && span(win, 1) > 16 {
        ConvKernel::Direct
    } else {
        k
    };
    let groups = match k {
        ConvKernel::Tiled => {
            rec.grid(groups_for(ys.c(), 64) * groups_for(ys.n() * ys.spatial_numel(), 128))?
        }
        ConvKernel::Cpu => {
            let rows = ys.n() * ys.d() * ys.h();
            let (ob, pb) = cpu_block(win);
            let lpr = lanes_per_row(ys.w(), pb);
            let wg = cpu_workgroup(rows, lpr);
            rec.grid(
                groups_for(ys.c(), ob) * groups_for(rows, wg / lpr) * groups_for(ys.w(), lpr * pb),
            )?
        }
        _ => rec.grid(groups_for(ys.numel(), 64))?,
    };
    let mut ov = Vec::new();
    if k == ConvKernel::Cpu {
        ov = cpu_overrides(win);
        let lpr = lanes_per_row(ys.w(), cpu_block(win).1);
        ov.push(("WG", cpu_workgroup(ys.n() * ys.d() * ys.h(), lpr) as f64));
    }
    rec.dispatch(
        "conv_fwd",
        k.entry(),
        &ov,
        &params,
        &[x, w, bias, y],
        groups,
    )
}

/// Register block of `conv_dgrad::main_cpu` (channels x positions).
const DGRAD_CB: usize = 8;
const DGRAD_PB: usize = 4;

/// `dx = dgrad(dy, w) + b`. With stride 1 (and padding <= dilation*(k-1)) this is the
/// forward kernel on `dy` with the flipped, transposed weight (the fast path on every
/// adapter); otherwise `conv_dgrad`, one dispatch per stride phase.
fn dgrad_any(
    rec: &mut Recorder,
    k: ConvKernel,
    dy: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    win: &Window,
    dx: &Tensor,
) -> Result<()> {
    let fwin = match flipped_window(win) {
        Some(f) if k != ConvKernel::Direct => f,
        _ => return dispatch_dgrad(rec, k.without_coop(rec), dy, w, b, win, dx),
    };
    if let Some(m) = winograd::tile_edge(k) {
        if winograd::applies(&fwin, dy.shape.is_3d()) {
            return winograd::grad_input(rec, m, dy, w, Epilogue::bias(b), &fwin, dx);
        }
    }
    let ws = w.shape;
    let mut fs = ws;
    fs.dims[0] = ws.dims[1];
    fs.dims[1] = ws.dims[0];
    let wf = rec.scratch(Scratch::Weights, fs)?;
    let p = FlipParams::new(ws.dims[0], ws.dims[1], win);
    let g = rec.grid(groups_for(ws.dims[0] * ws.dims[1], 256))?;
    rec.dispatch("weights", "flip_transpose", &[], &p, &[w, &wf], g)?;
    dispatch_fwd(rec, k, dy, &wf, Epilogue::bias(b), &fwin, dx)
}

/// The window of the forward that computes a stride-1 grad input (the forward on `dy` with
/// the flipped, transposed weight): pad' = dil*(k-1) - pad; `None` unless every stride is 1
/// and pad <= dil*(k-1).
pub fn flipped_window(win: &Window) -> Option<Window> {
    let ok =
        (0..3).all(|a| win.stride[a] == 1 && win.pad[a] <= win.dilation[a] * (win.kernel[a] - 1));
    ok.then(|| {
        let mut fwin = *win;
        fwin.output_padding = [0; 3];
        for a in 0..3 {
            fwin.pad[a] = win.dilation[a] * (win.kernel[a] - 1) - win.pad[a];
        }
        fwin
    })
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
pub(crate) struct FlipParams {
    o: u32,
    c: u32,
    kk: u32,
    pad0: u32,
    k: [u32; 3],
    pad1: u32,
}

impl FlipParams {
    /// Params of `weights.wgsl` for a weight with `o` output and `c` input channels (as the
    /// entry point names them) and the kernel of `win`.
    pub(crate) fn new(o: usize, c: usize, win: &Window) -> Self {
        FlipParams {
            o: o as u32,
            c: c as u32,
            kk: win.kernel_numel() as u32,
            k: u3(win.kernel),
            ..Default::default()
        }
    }
}

/// `dx = dgrad(dy, w) + b` computed by `conv_dgrad`: one dispatch, workgroup z = stride phase.
fn dispatch_dgrad(
    rec: &mut Recorder,
    k: ConvKernel,
    dy: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    win: &Window,
    dx: &Tensor,
) -> Result<()> {
    let (xs, ys) = (dx.shape, dy.shape);
    let mut p = ConvParams::new(&xs, &ys, win, b.is_some());
    let bias = b.unwrap_or(w);
    let phases = win.stride[0] * win.stride[1] * win.stride[2];
    // Positions per axis of phase 0 (the largest phase).
    let jn: Vec<usize> = (0..3)
        .map(|a| xs.spatial()[a].div_ceil(win.stride[a]))
        .collect();
    let cols = xs.n() * jn[0] * jn[1] * jn[2];
    let tiles = match k {
        ConvKernel::Tiled => groups_for(xs.c(), 64) * groups_for(cols, 128),
        ConvKernel::Cpu => {
            let rows = xs.n() * jn[0] * jn[1];
            let lpr = lanes_per_row(jn[2], DGRAD_PB);
            p.k_pad = lpr as u32;
            groups_for(xs.c(), DGRAD_CB)
                * groups_for(rows, cpu_workgroup(rows, lpr) / lpr)
                * groups_for(jn[2], lpr * DGRAD_PB)
        }
        _ => groups_for(xs.c() * cols, 64),
    };
    let mut groups = rec.grid(tiles)?;
    groups[2] = phases as u32;
    let ov: Vec<(&'static str, f64)> = if k == ConvKernel::Cpu {
        let rows = xs.n() * jn[0] * jn[1];
        let wg = cpu_workgroup(rows, lanes_per_row(jn[2], DGRAD_PB));
        vec![
            ("CB", DGRAD_CB as f64),
            ("PB", DGRAD_PB as f64),
            ("WG", wg as f64),
        ]
    } else {
        Vec::new()
    };
    rec.dispatch("conv_dgrad", k.entry(), &ov, &p, &[dy, w, bias, dx], groups)
}

/// Output channels per invocation of `conv_wgrad::main_cpu` (OB * kW <= 32 accumulators).
fn wgrad_ob(win: &Window) -> usize {
    (32 / win.kernel[2]).clamp(1, 8)
}

/// `dw = wgrad(x, dy)` computed by `conv_wgrad` with split-K and a final sum.
fn dispatch_wgrad(
    rec: &mut Recorder,
    k: ConvKernel,
    x: &Tensor,
    dy: &Tensor,
    win: &Window,
    dw: &Tensor,
) -> Result<()> {
    if let Some(mode) = super::coop::coop_mode(k) {
        return super::coop::dispatch_wgrad(rec, mode, x, dy, win, dw);
    }
    if let Some(m) = winograd::tile_edge(k) {
        return winograd::grad_weight(rec, m, x, dy, win, dw);
    }
    let (xs, ys) = (x.shape, dy.shape);
    let mut params = ConvParams::new(&xs, &ys, win, false);
    let r = xs.c() * win.kernel_numel();
    let tap_rows = xs.c() * win.kernel[0] * win.kernel[1];
    let wg = tap_rows.next_power_of_two().clamp(8, 64);
    let (tiles, splits, chunk) = match k {
        ConvKernel::Cpu => {
            let tiles = groups_for(tap_rows, wg) * groups_for(ys.c(), wgrad_ob(win));
            let rows = ys.n() * ys.d() * ys.h();
            let splits = (64u64.div_ceil(tiles) as usize).clamp(1, rows);
            (tiles, splits, rows.div_ceil(splits))
        }
        _ => {
            let tiles = groups_for(r, 128) * groups_for(ys.c(), 64);
            let kt = ys.n() * ys.spatial_numel();
            let splits = (512u64.div_ceil(tiles) as usize).clamp(1, kt.div_ceil(256).max(1));
            let chunk = kt.div_ceil(splits).div_ceil(16) * 16;
            (tiles, kt.div_ceil(chunk), chunk)
        }
    };
    params.aux = splits as u32;
    params.k_pad = chunk as u32;
    let mut groups = rec.grid(tiles)?;
    groups[2] = splits as u32;
    let entry = if k == ConvKernel::Cpu {
        "main_cpu"
    } else {
        "main_tiled"
    };
    let ov: Vec<(&'static str, f64)> = if k == ConvKernel::Cpu {
        vec![
            ("OB", wgrad_ob(win) as f64),
            ("WG", wg as f64),
            ("KW", win.kernel[2] as f64),
            ("SW", win.stride[2] as f64),
            ("DW", win.dilation[2] as f64),
        ]
    } else {
        Vec::new()
    };
    if splits == 1 {
        return rec.dispatch("conv_wgrad", entry, &ov, &params, &[x, dy, dw], groups);
    }
    let part = rec.scratch(Scratch::Partials, Shape::vector(splits * dw.numel()))?;
    rec.dispatch("conv_wgrad", entry, &ov, &params, &[x, dy, &part], groups)?;
    super::reduce::sum_splits_into(rec, &part, splits, dw, false)
}

/// The weight-gradient kernel has no direct variant; the CPU one needs kW <= 32; the
/// Winograd variants run F(2x2,3x3) / F(2x2x2,3x3x3) where [`winograd::applies`].
fn wgrad_kernel(
    rec: &Recorder,
    kernel: ConvKernel,
    win: &Window,
    xs: &Shape,
    ws: &Shape,
    act: DType,
) -> ConvKernel {
    let k = tune::resolve(rec.ctx, kernel, tune::ConvOp::GradWeight, xs, ws, win, act);
    if k.is_winograd() && winograd::applies(win, xs.is_3d()) {
        return k;
    }
    let k = if k.is_winograd() {
        class_default(rec.ctx)
    } else {
        k
    };
    match k {
        ConvKernel::Cpu if win.kernel[2] <= 32 => ConvKernel::Cpu,
        k if k.is_coop() => k,
        _ => ConvKernel::Tiled,
    }
}

/// Fail unless `t` has shape `want` and holds activations of type `act` (F32 or F16).
fn expect_act(op: &'static str, what: &str, t: &Tensor, want: Shape, act: DType) -> Result<()> {
    if act != DType::F32 && act != DType::F16 {
        return Err(Error::shape(
            op,
            format!("{what} has dtype {act:?}; activations are F32 or F16"),
        ));
    }
    expect(op, what, t, want, act)
}

/// Whether a transposed convolution runs the up-convolution kernel `conv_up`: with
/// `Up` always (an error naming the op if the window does not qualify), with `Auto`
/// on GPU adapters when the window qualifies; otherwise the generic kernels run.
fn use_up(rec: &Recorder, kernel: ConvKernel, op: &'static str, win: &Window) -> Result<bool> {
    match kernel {
        ConvKernel::Up if !up::qualifies(win) => Err(Error::shape(
            op,
            format!("variant Up needs {}; got {win:?}", up::REQUIREMENT),
        )),
        k => Ok(transposed_kernel(rec.ctx, k, win, DType::F32) == ConvKernel::Up),
    }
}

/// The kernel a transposed convolution's forward runs for `kernel` on this
/// device: `Up` where the up-convolution kernel applies (with `Up`, or with `Auto` on GPU adapters),
/// else as [`ConvKernel::resolve_for`].
pub fn transposed_kernel(
    ctx: &crate::gpu::Context,
    kernel: ConvKernel,
    win: &Window,
    act: DType,
) -> ConvKernel {
    let up = match kernel {
        ConvKernel::Up => up::qualifies(win),
        ConvKernel::Auto => up::qualifies(win) && ctx.class == AdapterClass::Gpu,
        _ => false,
    };
    if up {
        ConvKernel::Up
    } else {
        kernel.resolve_for(ctx, act)
    }
}

// ------------------------------------------------------------------ public ops

/// Convolution forward into `y`.
pub fn conv_into(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    win: &Window,
    y: &Tensor,
    kernel: ConvKernel,
) -> Result<()> {
    conv_forward(rec, x, w, Epilogue::bias(b), win, y, kernel)
}

/// `y = relu(conv(x, w) + b)` into `y`: the ReLU applied by the convolution kernel as it
/// stores (the executor's fused `Conv -> Relu`), equal bit for bit to `conv_into` followed
/// by `activation::relu`.
pub fn conv_relu_into(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    win: &Window,
    y: &Tensor,
    kernel: ConvKernel,
) -> Result<()> {
    conv_forward(
        rec,
        x,
        w,
        Epilogue {
            bias: b,
            relu: true,
        },
        win,
        y,
        kernel,
    )
}

fn conv_forward(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    ep: Epilogue,
    win: &Window,
    y: &Tensor,
    kernel: ConvKernel,
) -> Result<()> {
    let b = ep.bias;
    let ys = conv_out_shape(&x.shape, &w.shape, win)?;
    let op = op_name("conv", &x.shape);
    expect_act(op, "input", x, x.shape, x.dtype)?;
    expect_act(op, "output", y, ys, x.dtype)?;
    expect(op, "weight", w, w.shape, DType::F32)?;
    check_bias(op, b, &x.shape, ys.c())?;
    let k = tune::resolve(
        rec.ctx,
        kernel,
        tune::ConvOp::Forward,
        &x.shape,
        &w.shape,
        win,
        x.dtype,
    );
    dispatch_fwd(rec, k, x, w, ep, win, y)
}

/// `y = conv(x, w) + b`: x `N,C,(D),H,W`, w `O,C,(kD),kH,kW`, b `[O]`.
pub fn conv(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    win: &Window,
) -> Result<Tensor> {
    let y = Tensor::empty(rec.ctx, conv_out_shape(&x.shape, &w.shape, win)?, x.dtype)?;
    conv_into(rec, x, w, b, win, &y, ConvKernel::Auto)?;
    Ok(y)
}

/// Gradient of `conv` w.r.t. its input, into `dx` (shape of the conv input).
pub fn conv_grad_input_into(
    rec: &mut Recorder,
    dy: &Tensor,
    w: &Tensor,
    win: &Window,
    dx: &Tensor,
    kernel: ConvKernel,
) -> Result<()> {
    let op = op_name("conv", &dx.shape);
    let ys = conv_out_shape(&dx.shape, &w.shape, win)?;
    check_dy(op, dy, &ys, &dx.shape, win, dy.dtype)?;
    expect_act(op, "grad_input", dx, dx.shape, dy.dtype)?;
    expect(op, "weight", w, w.shape, DType::F32)?;
    let k = tune::resolve(
        rec.ctx,
        kernel,
        tune::ConvOp::GradInput,
        &dx.shape,
        &w.shape,
        win,
        dy.dtype,
    );
    dgrad_any(rec, k, dy, w, None, win, dx)
}

pub fn conv_grad_input(
    rec: &mut Recorder,
    dy: &Tensor,
    w: &Tensor,
    win: &Window,
    x_shape: Shape,
) -> Result<Tensor> {
    let dx = Tensor::empty(rec.ctx, x_shape, dy.dtype)?;
    conv_grad_input_into(rec, dy, w, win, &dx, ConvKernel::Auto)?;
    Ok(dx)
}

/// Gradient of `conv` w.r.t. its weight, into `dw` (`O, C, k..`).
pub fn conv_grad_weight_into(
    rec: &mut Recorder,
    x: &Tensor,
    dy: &Tensor,
    win: &Window,
    dw: &Tensor,
    kernel: ConvKernel,
) -> Result<()> {
    let op = op_name("conv", &x.shape);
    let ys = conv_out_shape(&x.shape, &dw.shape, win)?;
    expect_act(op, "input", x, x.shape, x.dtype)?;
    check_dy(op, dy, &ys, &x.shape, win, x.dtype)?;
    expect(op, "grad_weight", dw, dw.shape, DType::F32)?;
    let k = wgrad_kernel(rec, kernel, win, &x.shape, &dw.shape, x.dtype);
    dispatch_wgrad(rec, k, x, dy, win, dw)
}

pub fn conv_grad_weight(
    rec: &mut Recorder,
    x: &Tensor,
    dy: &Tensor,
    win: &Window,
    w_shape: Shape,
) -> Result<Tensor> {
    let dw = Tensor::empty(rec.ctx, w_shape, DType::F32)?;
    conv_grad_weight_into(rec, x, dy, win, &dw, ConvKernel::Auto)?;
    Ok(dw)
}

/// Transposed convolution forward into `y`: x `N,C_in,..`, w `C_in,C_out,k..`, b `[C_out]`.
pub fn conv_transpose_into(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    win: &Window,
    y: &Tensor,
    kernel: ConvKernel,
) -> Result<()> {
    let op = op_name("conv_transpose", &x.shape);
    let ys = conv_transpose_out_shape(&x.shape, &w.shape, win)?;
    expect_act(op, "input", x, x.shape, x.dtype)?;
    expect_act(op, "output", y, ys, x.dtype)?;
    expect(op, "weight", w, w.shape, DType::F32)?;
    check_bias(op, b, &x.shape, ys.c())?;
    if kernel.is_coop() && up::qualifies(win) {
        if let Some(mode) = super::coop::coop_mode(kernel.resolve(rec, x.dtype)) {
            if super::coop::up_forward(rec, mode, x, w, b, win, y)? {
                return Ok(());
            }
        }
    }
    if use_up(rec, kernel, op, win)? {
        return up::forward(rec, x, w, b, win, y);
    }
    dgrad_any(rec, kernel.resolve(rec, x.dtype), x, w, b, win, y)
}

pub fn conv_transpose(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    win: &Window,
) -> Result<Tensor> {
    let y = Tensor::empty(
        rec.ctx,
        conv_transpose_out_shape(&x.shape, &w.shape, win)?,
        x.dtype,
    )?;
    conv_transpose_into(rec, x, w, b, win, &y, ConvKernel::Auto)?;
    Ok(y)
}

/// Gradient of `conv_transpose` w.r.t. its input: a convolution of `dy` with `w`.
pub fn conv_transpose_grad_input_into(
    rec: &mut Recorder,
    dy: &Tensor,
    w: &Tensor,
    win: &Window,
    dx: &Tensor,
    kernel: ConvKernel,
) -> Result<()> {
    let op = op_name("conv_transpose", &dx.shape);
    let ys = conv_transpose_out_shape(&dx.shape, &w.shape, win)?;
    check_dy(op, dy, &ys, &dx.shape, win, dy.dtype)?;
    expect_act(op, "grad_input", dx, dx.shape, dy.dtype)?;
    expect(op, "weight", w, w.shape, DType::F32)?;
    if use_up(rec, kernel, op, win)? {
        return up::grad_input(rec, dy, w, win, dx);
    }
    let mut cwin = *win;
    cwin.output_padding = [0; 3];
    dispatch_fwd(
        rec,
        kernel.resolve(rec, dy.dtype),
        dy,
        w,
        Epilogue::default(),
        &cwin,
        dx,
    )
}

pub fn conv_transpose_grad_input(
    rec: &mut Recorder,
    dy: &Tensor,
    w: &Tensor,
    win: &Window,
    x_shape: Shape,
) -> Result<Tensor> {
    let dx = Tensor::empty(rec.ctx, x_shape, dy.dtype)?;
    conv_transpose_grad_input_into(rec, dy, w, win, &dx, ConvKernel::Auto)?;
    Ok(dx)
}

/// Gradient of `conv_transpose` w.r.t. its weight `C_in, C_out, k..`.
pub fn conv_transpose_grad_weight_into(
    rec: &mut Recorder,
    x: &Tensor,
    dy: &Tensor,
    win: &Window,
    dw: &Tensor,
    kernel: ConvKernel,
) -> Result<()> {
    let op = op_name("conv_transpose", &x.shape);
    let ys = conv_transpose_out_shape(&x.shape, &dw.shape, win)?;
    expect_act(op, "input", x, x.shape, x.dtype)?;
    check_dy(op, dy, &ys, &x.shape, win, x.dtype)?;
    expect(op, "grad_weight", dw, dw.shape, DType::F32)?;
    if use_up(rec, kernel, op, win)? {
        return up::grad_weight(rec, x, dy, win, dw);
    }
    let mut cwin = *win;
    cwin.output_padding = [0; 3];
    dispatch_wgrad(
        rec,
        wgrad_kernel(rec, kernel, &cwin, &dy.shape, &dw.shape, x.dtype),
        dy,
        x,
        &cwin,
        dw,
    )
}

pub fn conv_transpose_grad_weight(
    rec: &mut Recorder,
    x: &Tensor,
    dy: &Tensor,
    win: &Window,
    w_shape: Shape,
) -> Result<Tensor> {
    let dw = Tensor::empty(rec.ctx, w_shape, DType::F32)?;
    conv_transpose_grad_weight_into(rec, x, dy, win, &dw, ConvKernel::Auto)?;
    Ok(dw)
}

/// Gradient of a bias: the per-channel sum of `dy` over batch and space.
pub fn bias_grad(rec: &mut Recorder, dy: &Tensor) -> Result<Tensor> {
    let db = Tensor::empty(rec.ctx, Shape::vector(dy.shape.c()), DType::F32)?;
    super::reduce::channel_sum_into(rec, dy, &db, false)?;
    Ok(db)
}
