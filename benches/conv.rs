//! Criterion benches of the conv family at the reference sizes, timing GPU
//! work to completion (one recorded program, submitted and waited per iteration).
//! `cargo bench --bench conv`; set WUNET_BENCH_QUICK=1 for smaller sizes.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use wunet::gpu::{Context, ContextOptions, DType, Program, Tensor};
use wunet::ops::conv::{self, ConvKernel};
use wunet::shape::{conv_weight_shape, Shape, Window};

fn filled(ctx: &Context, s: Shape) -> Tensor {
    let v: Vec<f32> = (0..s.numel())
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    Tensor::from_f32(ctx, &v, s).expect("upload")
}

struct Setup {
    prog: Program,
    flops: u64,
}

fn conv_setup(
    ctx: &Context,
    xs: Shape,
    o: usize,
    win: Window,
    backward: bool,
    transpose: bool,
) -> Setup {
    let x = filled(ctx, xs);
    let (ws, ys) = if transpose {
        let ws = conv_weight_shape(xs.c(), o, &win, xs.is_3d());
        (
            ws,
            conv::conv_transpose_out_shape(&xs, &ws, &win).expect("shape"),
        )
    } else {
        let ws = conv_weight_shape(o, xs.c(), &win, xs.is_3d());
        (ws, conv::conv_out_shape(&xs, &ws, &win).expect("shape"))
    };
    let w = filled(ctx, ws);
    let b = filled(ctx, Shape::vector(ys.c()));
    let g = filled(ctx, ys);
    let y = Tensor::empty(ctx, ys, DType::F32).expect("alloc");
    let dx = Tensor::empty(ctx, xs, DType::F32).expect("alloc");
    let dw = Tensor::empty(ctx, ws, DType::F32).expect("alloc");
    let k = ConvKernel::Auto;
    let prog = ctx
        .record(|rec| {
            if transpose {
                conv::conv_transpose_into(rec, &x, &w, Some(&b), &win, &y, k)?;
                if backward {
                    conv::conv_transpose_grad_input_into(rec, &g, &w, &win, &dx, k)?;
                    conv::conv_transpose_grad_weight_into(rec, &x, &g, &win, &dw, k)?;
                }
            } else {
                conv::conv_into(rec, &x, &w, Some(&b), &win, &y, k)?;
                if backward {
                    conv::conv_grad_input_into(rec, &g, &w, &win, &dx, k)?;
                    conv::conv_grad_weight_into(rec, &x, &g, &win, &dw, k)?;
                }
            }
            Ok(())
        })
        .expect("record");
    let macs = (xs.n() * xs.spatial_numel() * xs.c()) as u64
        * if transpose {
            (o * win.kernel_numel()) as u64
        } else {
            0
        }
        + if transpose {
            0
        } else {
            (ys.numel() * xs.c() * win.kernel_numel()) as u64
        };
    Setup {
        prog,
        flops: 2 * macs * if backward { 3 } else { 1 },
    }
}

fn benches(c: &mut Criterion) {
    let ctx = match Context::new(&ContextOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skip conv benches: {e}");
            return;
        }
    };
    eprintln!("adapter: {}", ctx.describe());
    let quick = std::env::var("WUNET_BENCH_QUICK").is_ok();
    let s2 = if quick { 64 } else { 256 };
    let cases = [
        (
            "conv2d_3x3_fwd",
            Shape::new4(1, 64, s2, s2),
            64,
            Window::cube(2, 3, 1, 1),
            false,
            false,
        ),
        (
            "conv2d_3x3_fwd_bwd",
            Shape::new4(1, 64, s2, s2),
            64,
            Window::cube(2, 3, 1, 1),
            true,
            false,
        ),
        (
            "conv_transpose2d_2x2s2_fwd",
            Shape::new4(1, 128, s2 / 2, s2 / 2),
            64,
            Window::cube(2, 2, 2, 0),
            false,
            true,
        ),
        (
            "conv_transpose2d_2x2s2_fwd_bwd",
            Shape::new4(1, 128, s2 / 2, s2 / 2),
            64,
            Window::cube(2, 2, 2, 0),
            true,
            true,
        ),
        (
            "conv3d_3x3x3_fwd",
            Shape::new5(1, 32, s2 / 4, s2 / 4, s2 / 4),
            32,
            Window::cube(3, 3, 1, 1),
            false,
            false,
        ),
        (
            "conv3d_3x3x3_fwd_bwd",
            Shape::new5(1, 32, s2 / 4, s2 / 4, s2 / 4),
            32,
            Window::cube(3, 3, 1, 1),
            true,
            false,
        ),
    ];
    let mut group = c.benchmark_group("conv");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    for (name, xs, o, win, bwd, tr) in cases {
        let s = conv_setup(&ctx, xs, o, win, bwd, tr);
        group.throughput(Throughput::Elements(s.flops));
        group.bench_function(name, |b| {
            b.iter(|| {
                s.prog.submit(&ctx);
                ctx.wait().expect("wait");
            })
        });
    }
    group.finish();
}

criterion_group!(conv_benches, benches);
criterion_main!(conv_benches);
