//! Criterion benches of batch norm and the losses: GPU work timed to
//! completion. Each case records its dispatches once as a `Program`; an
//! iteration is `program.submit(&ctx); ctx.wait()`.
//!
//! Run: `cargo bench --bench norm_loss` (no adapter: prints a skip line).

use criterion::{Criterion, Throughput};
use std::time::Duration;
use wunet::gpu::{Context, ContextOptions, Program};
use wunet::graph::ops::CrossEntropyAttrs;
use wunet::ops::loss::{self, DiceCeConfig};
use wunet::ops::norm::{self, BN_MOMENTUM, NORM_EPS};
use wunet::shape::label_map_shape;
use wunet::{DType, Shape, Tensor};

fn filled(ctx: &Context, s: Shape, seed: u32) -> Tensor {
    let v: Vec<f32> = (0..s.numel())
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 16777216.0 - 0.5
        })
        .collect();
    Tensor::from_f32(ctx, &v, s).expect("upload")
}

fn bench_program(
    c: &mut Criterion,
    ctx: &Context,
    group: &str,
    name: &str,
    bytes: u64,
    prog: &Program,
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(name, |b| {
        b.iter(|| {
            prog.submit(ctx);
            ctx.wait().expect("wait");
        })
    });
    g.finish();
}

fn batch_norm(c: &mut Criterion, ctx: &Context) -> wunet::Result<()> {
    let xs = Shape::new4(4, 64, 128, 128);
    let cv = Shape::vector(xs.c());
    let x = filled(ctx, xs, 1);
    let g = filled(ctx, xs, 2);
    let (gamma, beta) = (filled(ctx, cv, 3), filled(ctx, cv, 4));
    let (rm, rv) = (Tensor::zeros(ctx, cv, DType::F32)?, filled(ctx, cv, 5));
    let y = Tensor::empty(ctx, xs, DType::F32)?;
    let (mean, invstd) = (
        Tensor::empty(ctx, cv, DType::F32)?,
        Tensor::empty(ctx, cv, DType::F32)?,
    );
    let dx = Tensor::empty(ctx, xs, DType::F32)?;
    let (dgamma, dbeta) = (
        Tensor::empty(ctx, cv, DType::F32)?,
        Tensor::empty(ctx, cv, DType::F32)?,
    );
    let fwd = |rec: &mut wunet::gpu::Recorder| {
        norm::batch_norm_train_into(
            rec,
            &x,
            &gamma,
            &beta,
            &rm,
            &rv,
            BN_MOMENTUM,
            NORM_EPS,
            &y,
            &mean,
            &invstd,
        )
    };
    let prog = ctx.record(fwd)?;
    // Forward: x read twice (statistics; the second pass mostly from cache), read again, y written.
    bench_program(
        c,
        ctx,
        "batch_norm_train",
        &format!("forward {xs}"),
        3 * xs.bytes(),
        &prog,
    );
    let prog = ctx.record(|rec| {
        fwd(rec)?;
        norm::batch_norm_train_backward_into(
            rec, &g, &x, &gamma, &mean, &invstd, &dx, &dgamma, &dbeta,
        )
    })?;
    bench_program(
        c,
        ctx,
        "batch_norm_train",
        &format!("forward+backward {xs}"),
        8 * xs.bytes(),
        &prog,
    );
    Ok(())
}

fn losses(c: &mut Criterion, ctx: &Context) -> wunet::Result<()> {
    let xs = Shape::new4(2, 2, 256, 256);
    let ls = label_map_shape(&xs);
    let z = filled(ctx, xs, 6);
    let lv: Vec<i32> = (0..ls.numel()).map(|i| ((i / 97) % 2) as i32).collect();
    let lab = Tensor::from_i32(ctx, &lv, ls)?;
    let wmap = filled(ctx, ls, 7);
    let l = Tensor::empty(ctx, Shape::scalar(), DType::F32)?;
    let grad = Tensor::empty(ctx, xs, DType::F32)?;
    let dice = Tensor::empty(ctx, Shape::vector(xs.c()), DType::F32)?;
    let bytes = 2 * xs.bytes() + 2 * ls.bytes();
    let prog = ctx.record(|rec| {
        loss::softmax_cross_entropy_into(
            rec,
            &z,
            &lab,
            Some(&wmap),
            None,
            &CrossEntropyAttrs {
                weight_map: true,
                ..Default::default()
            },
            &l,
            &grad,
            None,
        )
    })?;
    bench_program(
        c,
        ctx,
        "loss",
        &format!("softmax_ce+grad {xs}"),
        bytes,
        &prog,
    );
    let prog = ctx.record(|rec| {
        loss::dice_ce_loss_into(
            rec,
            &z,
            &lab,
            None,
            None,
            &DiceCeConfig::default(),
            &l,
            &grad,
            &dice,
            None,
        )
    })?;
    bench_program(c, ctx, "loss", &format!("dice_ce+grad {xs}"), bytes, &prog);
    Ok(())
}

fn main() {
    let ctx = match Context::new(&ContextOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            println!("skip: no GPU adapter ({e})");
            return;
        }
    };
    println!("adapter: {}", ctx.describe());
    let mut c = Criterion::default().configure_from_args();
    if let Err(e) = batch_norm(&mut c, &ctx).and_then(|_| losses(&mut c, &ctx)) {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
    c.final_summary();
}
