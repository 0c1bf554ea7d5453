//! `wunet bench peak`: the adapter's own ceilings, measured on the spot with
//! the kernels of `kernels/peak.wgsl` and `kernels/peak_coop.wgsl`: f32 and
//! f16 FMA throughput, matrix-unit (cooperative matrix) throughput where the
//! device has it, and memory bandwidth (read, write, copy). Every other figure
//! of a run can then be reported as a share of these.
//!
//! Each measurement first calibrates its size so that one run takes about
//! `target_ms` (5 ms on GPUs, 60 ms on CPU adapters), then takes the median of
//! `runs` runs, timed with GPU timestamps where the device has them.

use super::{median, time_program_best, Timer};
use crate::error::Result;
use crate::gpu::{AdapterClass, Context, DType, Program, Tensor};
use crate::shape::Shape;
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug)]
struct PeakParams {
    iters: u32,
    n: u32,
    threads: u32,
    pad: u32,
}

/// One ceiling.
#[derive(Clone, Debug)]
pub struct Peak {
    /// `fma_f32`, `fma_f16`, `mma_f16_f32`, `read`, `write`, `copy`.
    pub name: &'static str,
    /// GFLOP/s for compute ceilings, GB/s for bandwidth.
    pub value: f64,
    pub unit: &'static str,
    pub median_ms: f64,
    /// Kernel, entry point and parameters used.
    pub kernel: String,
    pub timer: Timer,
}

const WORKGROUPS: u32 = 1024;

fn target_ms(ctx: &Context) -> f64 {
    match ctx.class {
        AdapterClass::Cpu => 60.0,
        AdapterClass::Gpu => 5.0,
    }
}

/// Median milliseconds of one dispatch of `kernel::entry`.
fn time_once(
    ctx: &Context,
    kernel: &'static str,
    entry: &'static str,
    p: PeakParams,
    tensors: &[&Tensor],
    groups: u32,
    runs: usize,
) -> Result<(Timer, f64)> {
    let prog: Program = ctx.record(|rec| {
        let g = rec.grid(groups as u64)?;
        rec.dispatch(kernel, entry, &[], &p, tensors, g)
    })?;
    let (timer, ms) = time_program_best(ctx, &prog, 1, runs)?;
    Ok((timer, median(&ms)))
}

/// Run with `iters` doubled from 16 until a run takes a fifth of the target,
/// then scaled to the target; returns (timer, ms, iters).
fn calibrated(
    ctx: &Context,
    kernel: &'static str,
    entry: &'static str,
    base: PeakParams,
    tensors: &[&Tensor],
    groups: u32,
    runs: usize,
) -> Result<(Timer, f64, u32)> {
    let goal = target_ms(ctx);
    let mut iters = 16u32;
    loop {
        let p = PeakParams { iters, ..base };
        let (_, ms) = time_once(ctx, kernel, entry, p, tensors, groups, 2)?;
        if ms >= goal / 5.0 || iters >= 1 << 20 {
            let scale = (goal / ms.max(1e-6)).clamp(1.0, 64.0);
            let iters = ((iters as f64 * scale) as u32).max(1);
            let p = PeakParams { iters, ..base };
            let (timer, ms) = time_once(ctx, kernel, entry, p, tensors, groups, runs)?;
            return Ok((timer, ms, iters));
        }
        iters *= 2;
    }
}

fn fma(ctx: &Context, act: DType, runs: usize) -> Result<Peak> {
    let groups = match ctx.class {
        AdapterClass::Cpu => 32,
        AdapterClass::Gpu => WORKGROUPS,
    };
    let threads = groups * 256;
    let out = Tensor::empty(ctx, Shape::vector(threads as usize), act)?;
    let src = Tensor::empty(ctx, Shape::vector(4), DType::F32)?;
    let dst = Tensor::empty(ctx, Shape::vector(4), DType::F32)?;
    let base = PeakParams {
        threads,
        ..Default::default()
    };
    let (timer, ms, iters) = calibrated(
        ctx,
        "peak",
        "fma_peak",
        base,
        &[&out, &src, &dst],
        groups,
        runs,
    )?;
    let flop = threads as f64 * iters as f64 * 64.0;
    Ok(Peak {
        name: if act == DType::F16 { "fma_f16" } else { "fma_f32" },
        value: flop / ms / 1e6,
        unit: "GFLOP/s",
        median_ms: ms,
        kernel: format!(
            "peak::fma_peak act={act:?}, {threads} invocations x {iters} iterations x 8 vec4 FMA chains"
        ),
        timer,
    })
}

/// The matrix-unit ceiling, where a 16x16x16 f16 -> f32 configuration and a
/// single subgroup size exist.
fn mma(ctx: &Context, runs: usize) -> Result<Option<Peak>> {
    let sg = ctx.info.subgroup_min_size;
    if !ctx.has_matrix_units() || sg == 0 || sg != ctx.info.subgroup_max_size || 256 % sg != 0 {
        return Ok(None);
    }
    let subgroups = WORKGROUPS * (256 / sg);
    let out = Tensor::empty(ctx, Shape::vector(subgroups as usize * 8 * 256), DType::F32)?;
    let base = PeakParams {
        n: sg,
        threads: WORKGROUPS * 256,
        ..Default::default()
    };
    let (timer, ms, iters) = calibrated(
        ctx,
        "peak_coop",
        "mma_peak",
        base,
        &[&out],
        WORKGROUPS,
        runs,
    )?;
    let flop = subgroups as f64 * iters as f64 * 8.0 * 2.0 * 4096.0;
    Ok(Some(Peak {
        name: "mma_f16_f32",
        value: flop / ms / 1e6,
        unit: "GFLOP/s",
        median_ms: ms,
        kernel: format!(
            "peak_coop::mma_peak 16x16x16 f16->f32, {subgroups} subgroups of {sg} x {iters} iterations x 8 chains"
        ),
        timer,
    }))
}

fn bandwidth(ctx: &Context, runs: usize) -> Result<Vec<Peak>> {
    let cap = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    let want: u64 = match ctx.class {
        AdapterClass::Cpu => 64 << 20,
        AdapterClass::Gpu => 512 << 20,
    };
    let bytes = want.min(cap) / 16 * 16;
    let n = (bytes / 16) as u32;
    let groups = WORKGROUPS.min(n.div_ceil(256));
    let threads = groups * 256;
    let out = Tensor::empty(ctx, Shape::vector(threads as usize), DType::F32)?;
    let src = Tensor::zeros(ctx, Shape::vector(n as usize * 4), DType::F32)?;
    let dst = Tensor::empty(ctx, Shape::vector(n as usize * 4), DType::F32)?;
    let p = PeakParams {
        iters: 1,
        n,
        threads,
        pad: 0,
    };
    let mut res = Vec::new();
    for (name, entry, moved) in [
        ("read", "read_peak", bytes),
        ("write", "write_peak", bytes),
        ("copy", "copy_peak", 2 * bytes),
    ] {
        let (timer, ms) = time_once(ctx, "peak", entry, p, &[&out, &src, &dst], groups, runs)?;
        res.push(Peak {
            name,
            value: moved as f64 / ms / 1e6,
            unit: "GB/s",
            median_ms: ms,
            kernel: format!(
                "peak::{entry}, {} MiB buffer, {threads} invocations, vec4<f32> grid-stride",
                bytes >> 20
            ),
            timer,
        });
    }
    Ok(res)
}

/// Every ceiling this adapter has: f32 FMA, f16 FMA (with `SHADER_F16`),
/// f16 matrix units (with cooperative matrices), read / write / copy bandwidth.
pub fn measure(ctx: &Context, runs: usize) -> Result<Vec<Peak>> {
    let mut res = vec![fma(ctx, DType::F32, runs)?];
    if ctx.features.contains(wgpu::Features::SHADER_F16) {
        res.push(fma(ctx, DType::F16, runs)?);
    }
    if let Some(m) = mma(ctx, runs)? {
        res.push(m);
    }
    res.extend(bandwidth(ctx, runs)?);
    Ok(res)
}
