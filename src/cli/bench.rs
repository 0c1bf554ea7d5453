//! `wunet bench conv|conv-transpose ...`

use crate::bench::{median, time_program};
use crate::error::{Error, Result};
use crate::gpu::{Context, DType, Tensor};
use crate::ops::conv::{self, ConvKernel};
use crate::shape::{conv_weight_shape, parse_shape, Shape, Window};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ConvBenchArgs {
    /// Input shape NxCxHxW or NxCxDxHxW.
    #[arg(long = "in", default_value = "1x64x256x256")]
    pub input: String,
    #[arg(long, default_value_t = 64)]
    pub out_channels: usize,
    #[arg(long, default_value_t = 3)]
    pub kernel: usize,
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    #[arg(long, default_value_t = 1)]
    pub pad: usize,
    /// Also time the backward (grad input + grad weight + grad bias).
    #[arg(long)]
    pub backward: bool,
    /// Kernel variant: auto, tiled, cpu, direct.
    #[arg(long, default_value = "auto")]
    pub variant: String,
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

pub fn parse_variant(s: &str) -> Result<ConvKernel> {
    Ok(match s {
        "auto" => ConvKernel::Auto,
        "tiled" => ConvKernel::Tiled,
        "cpu" => ConvKernel::Cpu,
        "direct" => ConvKernel::Direct,
        o => {
            return Err(Error::Other(format!(
                "unknown variant '{o}' (auto, tiled, cpu, direct)"
            )))
        }
    })
}

fn filled(ctx: &Context, s: Shape, seed: u32) -> Result<Tensor> {
    let v: Vec<f32> = (0..s.numel())
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 16777216.0 - 0.5
        })
        .collect();
    Tensor::from_f32(ctx, &v, s)
}

/// Prints adapter, median ms and GFLOP/s; returns (ms, GFLOP/s).
pub fn bench_conv(ctx: &Context, a: &ConvBenchArgs, transpose: bool) -> Result<(f64, f64)> {
    let xs = parse_shape(&a.input)?;
    let dims = if xs.is_3d() { 3 } else { 2 };
    let win = Window::cube(dims, a.kernel, a.stride, a.pad);
    let variant = parse_variant(&a.variant)?;
    let x = filled(ctx, xs, 1)?;
    let (ws, ys) = if transpose {
        let ws = conv_weight_shape(xs.c(), a.out_channels, &win, xs.is_3d());
        (ws, conv::conv_transpose_out_shape(&xs, &ws, &win)?)
    } else {
        let ws = conv_weight_shape(a.out_channels, xs.c(), &win, xs.is_3d());
        (ws, conv::conv_out_shape(&xs, &ws, &win)?)
    };
    let w = filled(ctx, ws, 2)?;
    let b = filled(ctx, Shape::vector(ys.c()), 3)?;
    let y = Tensor::empty(ctx, ys, DType::F32)?;
    let g = filled(ctx, ys, 4)?;
    let dx = Tensor::empty(ctx, xs, DType::F32)?;
    let dw = Tensor::empty(ctx, ws, DType::F32)?;
    let db = Tensor::empty(ctx, Shape::vector(ys.c()), DType::F32)?;
    let prog = ctx.record(|rec| {
        if transpose {
            conv::conv_transpose_into(rec, &x, &w, Some(&b), &win, &y, variant)?;
            if a.backward {
                conv::conv_transpose_grad_input_into(rec, &g, &w, &win, &dx, variant)?;
                conv::conv_transpose_grad_weight_into(rec, &x, &g, &win, &dw, variant)?;
            }
        } else {
            conv::conv_into(rec, &x, &w, Some(&b), &win, &y, variant)?;
            if a.backward {
                conv::conv_grad_input_into(rec, &g, &w, &win, &dx, variant)?;
                conv::conv_grad_weight_into(rec, &x, &g, &win, &dw, variant)?;
            }
        }
        if a.backward {
            crate::ops::reduce::channel_sum_into(rec, &g, &db, false)?;
        }
        Ok(())
    })?;
    let ms = median(&time_program(ctx, &prog, 1, a.runs.max(1))?);
    // MACs: forward = every (output, tap) pair of the dense formula; the backward
    // adds the same count twice (grad input, grad weight).
    let k_per_out = xs.c() * win.kernel_numel();
    let fwd_macs = if transpose {
        (xs.numel() / xs.c()) as f64 * ys.c() as f64 * k_per_out as f64
    } else {
        ys.numel() as f64 * k_per_out as f64
    };
    let macs = if a.backward { 3.0 * fwd_macs } else { fwd_macs };
    let gflops = 2.0 * macs / (ms * 1e6);
    let what = if transpose { "conv_transpose" } else { "conv" };
    println!("adapter: {}", ctx.describe());
    println!(
        "{what} {} -> {} kernel {} stride {} pad {}{} variant {:?}",
        xs,
        ys,
        a.kernel,
        a.stride,
        a.pad,
        if a.backward {
            " forward+backward"
        } else {
            " forward"
        },
        variant
    );
    println!("median_ms: {ms:.3}");
    println!("gflops: {gflops:.2}");
    Ok((ms, gflops))
}
