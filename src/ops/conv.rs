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
//! adapter class. Only `groups = 1` is supported.

use super::{expect, groups_for};
use crate::error::{Error, Result};
use crate::gpu::{AdapterClass, DType, Recorder, Tensor};
use crate::shape::{conv_weight_shape, Shape, Window};
use bytemuck::{Pod, Zeroable};

/// Which kernel variant to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConvKernel {
    /// Tiled on GPUs, register blocks on CPU adapters.
    #[default]
    Auto,
    /// Workgroup-memory tiles (GPUs).
    Tiled,
    /// Register blocks, no barriers (CPU adapters).
    Cpu,
    /// One output per invocation (fallback; forward and grad-input only).
    Direct,
}

impl ConvKernel {
    fn resolve(self, rec: &Recorder) -> ConvKernel {
        match self {
            ConvKernel::Auto => match rec.ctx.class {
                AdapterClass::Cpu => ConvKernel::Cpu,
                AdapterClass::Gpu => ConvKernel::Tiled,
            },
            k => k,
        }
    }
    fn entry(self) -> &'static str {
        match self {
            ConvKernel::Tiled => "main_tiled",
            ConvKernel::Cpu => "main_cpu",
            _ => "main_direct",
        }
    }
}

/// Uniform block shared by the three conv kernels (see the WGSL headers).
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
    aux: u32,
    k: [u32; 3],
    aux2: u32,
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

impl ConvParams {
    /// `xs`: the convolution-input side (C channels), `ys`: the output side (O channels).
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

/// `conv_dgrad` params: the conv block plus one stride phase.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct DgradParams {
    base: ConvParams,
    r: [u32; 4],
    k0: [u32; 4],
    ks: [u32; 4],
    kc: [u32; 4],
    j: [u32; 4],
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Valid taps `(first, step, count)` on one axis for output phase `r`:
/// the k in `0..kernel` with `(r + pad - k*dil) % stride == 0`.
fn phase_taps(r: usize, kernel: usize, stride: usize, pad: usize, dil: usize) -> (usize, usize, usize) {
    let step = stride / gcd(dil, stride);
    let target = (r + pad) % stride;
    match (0..step.min(kernel)).find(|&k| (k * dil) % stride == target) {
        Some(k0) => (k0, step, (kernel - k0).div_ceil(step)),
        None => (0, 1, 0),
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

fn check_window(op: &'static str, x: &Shape, win: &Window) -> Result<()> {
    if !x.is_3d() && (win.kernel[0] != 1 || win.stride[0] != 1 || win.pad[0] != 0 || win.dilation[0] != 1) {
        return Err(Error::shape(op, format!("a 2D input {x} needs a 2D window, got {win:?}")));
    }
    if win.stride.contains(&0) || win.dilation.contains(&0) || win.kernel.contains(&0) {
        return Err(Error::shape(op, format!("kernel, stride and dilation must be positive: {win:?}")));
    }
    Ok(())
}

/// Output shape of `conv(x, w)` with weight `O, C, k..`; errors name the op and both shapes.
pub fn conv_out_shape(x: &Shape, w: &Shape, win: &Window) -> Result<Shape> {
    let op = op_name("conv", x);
    check_window(op, x, win)?;
    let want_w = conv_weight_shape(w.dims[0], x.c(), win, x.is_3d());
    if w.dims != want_w.dims {
        return Err(Error::shape(op, format!("input {x} and weight {w} do not fit (weight must be {want_w})")));
    }
    let sp = win
        .conv_out(x.spatial())
        .ok_or_else(|| Error::shape(op, format!("input {x} is smaller than the window of weight {w} ({win:?})")))?;
    Ok(x.with_c(w.dims[0]).with_spatial(sp))
}

/// Output shape of `conv_transpose(x, w)` with ConvTranspose weight `C_in, C_out, k..`.
pub fn conv_transpose_out_shape(x: &Shape, w: &Shape, win: &Window) -> Result<Shape> {
    let op = op_name("conv_transpose", x);
    check_window(op, x, win)?;
    let want_w = conv_weight_shape(x.c(), w.dims[1], win, x.is_3d());
    if w.dims != want_w.dims {
        return Err(Error::shape(op, format!("input {x} and weight {w} do not fit (weight must be {want_w})")));
    }
    let sp = win.conv_transpose_out(x.spatial()).ok_or_else(|| {
        Error::shape(op, format!("input {x}, weight {w}: no positive output size, or output_padding >= stride ({win:?})"))
    })?;
    Ok(x.with_c(w.dims[1]).with_spatial(sp))
}

fn check_bias(op: &'static str, b: Option<&Tensor>, ch: usize) -> Result<()> {
    if let Some(b) = b {
        if b.numel() != ch || b.dtype != DType::F32 {
            return Err(Error::shape(op, format!("bias is {} but must be [{ch}] f32", b.shape)));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ kernels

/// `y = conv(x, w) + b` computed by `conv_fwd` (x: C side, y: O side).
fn dispatch_fwd(rec: &mut Recorder, k: ConvKernel, x: &Tensor, w: &Tensor, b: Option<&Tensor>, win: &Window, y: &Tensor) -> Result<()> {
    let (xs, ys) = (x.shape, y.shape);
    let params = ConvParams::new(&xs, &ys, win, b.is_some());
    let bias = b.unwrap_or(w);
    let groups = match k {
        ConvKernel::Tiled => rec.grid(groups_for(ys.c(), 64) * groups_for(ys.n() * ys.spatial_numel(), 128))?,
        ConvKernel::Cpu => {
            let rows = ys.n() * ys.d() * ys.h();
            rec.grid(groups_for(ys.c(), 16) * rows as u64 * groups_for(ys.w(), 64))?
        }
        _ => rec.grid(groups_for(ys.numel(), 64))?,
    };
    rec.dispatch("conv_fwd", k.entry(), &[], &params, &[x, w, bias, y], groups)
}

/// `dx = dgrad(dy, w) + b` computed by `conv_dgrad`, one dispatch per stride phase.
fn dispatch_dgrad(rec: &mut Recorder, k: ConvKernel, dy: &Tensor, w: &Tensor, b: Option<&Tensor>, win: &Window, dx: &Tensor) -> Result<()> {
    let (xs, ys) = (dx.shape, dy.shape);
    let base = ConvParams::new(&xs, &ys, win, b.is_some());
    let bias = b.unwrap_or(w);
    let [sd, sh, sw] = win.stride;
    for rd in 0..sd {
        for rh in 0..sh {
            for rw in 0..sw {
                let r = [rd, rh, rw];
                let mut p = DgradParams { base, ..Default::default() };
                let mut jn = [0usize; 3];
                for a in 0..3 {
                    let (k0, ks, kc) = phase_taps(r[a], win.kernel[a], win.stride[a], win.pad[a], win.dilation[a]);
                    jn[a] = xs.spatial()[a].saturating_sub(r[a]).div_ceil(win.stride[a]);
                    p.r[a] = r[a] as u32;
                    p.k0[a] = k0 as u32;
                    p.ks[a] = ks as u32;
                    p.kc[a] = kc as u32;
                    p.j[a] = jn[a] as u32;
                }
                p.base.aux = (p.kc[0] * p.kc[1] * p.kc[2]) as u32;
                let cols = xs.n() * jn[0] * jn[1] * jn[2];
                if cols == 0 {
                    continue;
                }
                let groups = match k {
                    ConvKernel::Tiled => rec.grid(groups_for(xs.c(), 64) * groups_for(cols, 128))?,
                    ConvKernel::Cpu => {
                        let rows = xs.n() * jn[0] * jn[1];
                        rec.grid(groups_for(xs.c(), 16) * rows as u64 * groups_for(jn[2], 64))?
                    }
                    _ => rec.grid(groups_for(xs.c() * cols, 64))?,
                };
                rec.dispatch("conv_dgrad", k.entry(), &[], &p, &[dy, w, bias, dx], groups)?;
            }
        }
    }
    Ok(())
}

/// `dw = wgrad(x, dy)` computed by `conv_wgrad` with split-K and a final sum.
fn dispatch_wgrad(rec: &mut Recorder, k: ConvKernel, x: &Tensor, dy: &Tensor, win: &Window, dw: &Tensor) -> Result<()> {
    let (xs, ys) = (x.shape, dy.shape);
    let mut params = ConvParams::new(&xs, &ys, win, false);
    let r = xs.c() * win.kernel_numel();
    let (tiles, splits, chunk) = match k {
        ConvKernel::Cpu => {
            let tiles = groups_for(r, 64) * groups_for(ys.c(), 16);
            let rows = ys.n() * ys.d() * ys.h();
            let splits = (64u64.div_ceil(tiles) as usize).clamp(1, rows);
            (tiles, splits, rows.div_ceil(splits))
        }
        _ => {
            let tiles = groups_for(r, 128) * groups_for(ys.c(), 64);
            let kt = ys.n() * ys.spatial_numel();
            let splits = (512u64.div_ceil(tiles) as usize).clamp(1, kt.div_ceil(256).max(1));
            let chunk = kt.div_ceil(splits).div_ceil(8) * 8;
            (tiles, kt.div_ceil(chunk), chunk)
        }
    };
    params.aux = splits as u32;
    params.aux2 = chunk as u32;
    let mut groups = rec.grid(tiles)?;
    groups[2] = splits as u32;
    let entry = if k == ConvKernel::Cpu { "main_cpu" } else { "main_tiled" };
    if splits == 1 {
        return rec.dispatch("conv_wgrad", entry, &[], &params, &[x, dy, dw], groups);
    }
    let part = Tensor::empty(rec.ctx, Shape::vector(splits * dw.numel()), DType::F32)?;
    rec.dispatch("conv_wgrad", entry, &[], &params, &[x, dy, &part], groups)?;
    super::reduce::sum_splits_into(rec, &part, splits, dw, false)
}

// ------------------------------------------------------------------ public ops

/// Convolution forward into `y`.
pub fn conv_into(rec: &mut Recorder, x: &Tensor, w: &Tensor, b: Option<&Tensor>, win: &Window, y: &Tensor, kernel: ConvKernel) -> Result<()> {
    let ys = conv_out_shape(&x.shape, &w.shape, win)?;
    let op = op_name("conv", &x.shape);
    expect(op, "input", x, x.shape, DType::F32)?;
    expect(op, "output", y, ys, DType::F32)?;
    check_bias(op, b, ys.c())?;
    dispatch_fwd(rec, kernel.resolve(rec), x, w, b, win, y)
}

/// `y = conv(x, w) + b`: x `N,C,(D),H,W`, w `O,C,(kD),kH,kW`, b `[O]`.
pub fn conv(rec: &mut Recorder, x: &Tensor, w: &Tensor, b: Option<&Tensor>, win: &Window) -> Result<Tensor> {
    let y = Tensor::empty(rec.ctx, conv_out_shape(&x.shape, &w.shape, win)?, DType::F32)?;
    conv_into(rec, x, w, b, win, &y, ConvKernel::Auto)?;
    Ok(y)
}

/// Gradient of `conv` w.r.t. its input, into `dx` (shape of the conv input).
pub fn conv_grad_input_into(rec: &mut Recorder, dy: &Tensor, w: &Tensor, win: &Window, dx: &Tensor, kernel: ConvKernel) -> Result<()> {
    let op = op_name("conv", &dx.shape);
    let ys = conv_out_shape(&dx.shape, &w.shape, win)?;
    expect(op, "grad_output", dy, ys, DType::F32)?;
    let k = match kernel.resolve(rec) {
        ConvKernel::Direct => ConvKernel::Direct,
        k => k,
    };
    dispatch_dgrad(rec, k, dy, w, None, win, dx)
}

pub fn conv_grad_input(rec: &mut Recorder, dy: &Tensor, w: &Tensor, win: &Window, x_shape: Shape) -> Result<Tensor> {
    let dx = Tensor::empty(rec.ctx, x_shape, DType::F32)?;
    conv_grad_input_into(rec, dy, w, win, &dx, ConvKernel::Auto)?;
    Ok(dx)
}

/// Gradient of `conv` w.r.t. its weight, into `dw` (`O, C, k..`).
pub fn conv_grad_weight_into(rec: &mut Recorder, x: &Tensor, dy: &Tensor, win: &Window, dw: &Tensor, kernel: ConvKernel) -> Result<()> {
    let op = op_name("conv", &x.shape);
    let ys = conv_out_shape(&x.shape, &dw.shape, win)?;
    expect(op, "grad_output", dy, ys, DType::F32)?;
    let k = match kernel.resolve(rec) {
        ConvKernel::Cpu => ConvKernel::Cpu,
        _ => ConvKernel::Tiled,
    };
    dispatch_wgrad(rec, k, x, dy, win, dw)
}

pub fn conv_grad_weight(rec: &mut Recorder, x: &Tensor, dy: &Tensor, win: &Window, w_shape: Shape) -> Result<Tensor> {
    let dw = Tensor::empty(rec.ctx, w_shape, DType::F32)?;
    conv_grad_weight_into(rec, x, dy, win, &dw, ConvKernel::Auto)?;
    Ok(dw)
}

/// Transposed convolution forward into `y`: x `N,C_in,..`, w `C_in,C_out,k..`, b `[C_out]`.
pub fn conv_transpose_into(rec: &mut Recorder, x: &Tensor, w: &Tensor, b: Option<&Tensor>, win: &Window, y: &Tensor, kernel: ConvKernel) -> Result<()> {
    let op = op_name("conv_transpose", &x.shape);
    let ys = conv_transpose_out_shape(&x.shape, &w.shape, win)?;
    expect(op, "output", y, ys, DType::F32)?;
    check_bias(op, b, ys.c())?;
    dispatch_dgrad(rec, kernel.resolve(rec), x, w, b, win, y)
}

pub fn conv_transpose(rec: &mut Recorder, x: &Tensor, w: &Tensor, b: Option<&Tensor>, win: &Window) -> Result<Tensor> {
    let y = Tensor::empty(rec.ctx, conv_transpose_out_shape(&x.shape, &w.shape, win)?, DType::F32)?;
    conv_transpose_into(rec, x, w, b, win, &y, ConvKernel::Auto)?;
    Ok(y)
}

/// Gradient of `conv_transpose` w.r.t. its input: a convolution of `dy` with `w`.
pub fn conv_transpose_grad_input_into(rec: &mut Recorder, dy: &Tensor, w: &Tensor, win: &Window, dx: &Tensor, kernel: ConvKernel) -> Result<()> {
    let op = op_name("conv_transpose", &dx.shape);
    let ys = conv_transpose_out_shape(&dx.shape, &w.shape, win)?;
    expect(op, "grad_output", dy, ys, DType::F32)?;
    let mut cwin = *win;
    cwin.output_padding = [0; 3];
    dispatch_fwd(rec, kernel.resolve(rec), dy, w, None, &cwin, dx)
}

pub fn conv_transpose_grad_input(rec: &mut Recorder, dy: &Tensor, w: &Tensor, win: &Window, x_shape: Shape) -> Result<Tensor> {
    let dx = Tensor::empty(rec.ctx, x_shape, DType::F32)?;
    conv_transpose_grad_input_into(rec, dy, w, win, &dx, ConvKernel::Auto)?;
    Ok(dx)
}

/// Gradient of `conv_transpose` w.r.t. its weight `C_in, C_out, k..`.
pub fn conv_transpose_grad_weight_into(rec: &mut Recorder, x: &Tensor, dy: &Tensor, win: &Window, dw: &Tensor, kernel: ConvKernel) -> Result<()> {
    let op = op_name("conv_transpose", &x.shape);
    let ys = conv_transpose_out_shape(&x.shape, &dw.shape, win)?;
    expect(op, "grad_output", dy, ys, DType::F32)?;
    let mut cwin = *win;
    cwin.output_padding = [0; 3];
    let k = match kernel.resolve(rec) {
        ConvKernel::Cpu => ConvKernel::Cpu,
        _ => ConvKernel::Tiled,
    };
    dispatch_wgrad(rec, k, dy, x, &cwin, dw)
}

pub fn conv_transpose_grad_weight(rec: &mut Recorder, x: &Tensor, dy: &Tensor, win: &Window, w_shape: Shape) -> Result<Tensor> {
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

#[cfg(test)]
mod tests {
    use super::phase_taps;

    #[test]
    fn phases() {
        // 2x2 stride 2, no pad: phase r uses exactly tap r.
        assert_eq!(phase_taps(0, 2, 2, 0, 1), (0, 2, 1));
        assert_eq!(phase_taps(1, 2, 2, 0, 1), (1, 2, 1));
        // stride 1: every tap.
        assert_eq!(phase_taps(0, 3, 1, 1, 1), (0, 1, 3));
        // 3 taps, stride 2, pad 1: phase 0 uses k=1, phase 1 uses k=0,2.
        assert_eq!(phase_taps(0, 3, 2, 1, 1), (1, 2, 1));
        assert_eq!(phase_taps(1, 3, 2, 1, 1), (0, 2, 2));
        // dilation 2, stride 2: taps all share one residue.
        assert_eq!(phase_taps(0, 3, 2, 0, 2), (0, 1, 3));
        assert_eq!(phase_taps(1, 3, 2, 0, 2).2, 0);
    }
}
