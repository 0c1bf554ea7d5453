//! Max-pool 2x2 stride 2 at 1x64x256x256: forward, and forward + backward.
//! GPU work is timed to completion: the program is recorded once, and every
//! iteration submits it and waits for the device.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use wunet::ops::pool;
use wunet::{Context, ContextOptions, DType, Shape, Tensor, Window};

fn bench_pool(cr: &mut Criterion) {
    let ctx = match Context::new(&ContextOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skip: pool bench needs a GPU adapter ({e})");
            return;
        }
    };
    eprintln!("adapter: {}", ctx.describe());
    let xs = Shape::new4(1, 64, 256, 256);
    let win = Window::cube(2, 2, 2, 0);
    let ys = pool::pool_out_shape(&xs, &win).expect("pool shape");
    let xv: Vec<f32> = (0..xs.numel())
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / 16_777_216.0 - 0.5)
        .collect();
    let tensors = (|| -> wunet::Result<_> {
        let x = Tensor::from_f32(&ctx, &xv, xs)?;
        let y = Tensor::empty(&ctx, ys, DType::F32)?;
        let ind = Tensor::empty(&ctx, ys, DType::U32)?;
        let dy = Tensor::from_f32(&ctx, &vec![1.0; ys.numel()], ys)?;
        let dx = Tensor::empty(&ctx, xs, DType::F32)?;
        Ok((x, y, ind, dy, dx))
    })();
    let (x, y, ind, dy, dx) = match tensors {
        Ok(t) => t,
        Err(e) => {
            eprintln!("skip: pool bench could not allocate its tensors ({e})");
            return;
        }
    };
    let fwd = ctx
        .record(|rec| pool::max_pool_into(rec, &x, &win, &y, &ind))
        .expect("record forward");
    let both = ctx
        .record(|rec| {
            pool::max_pool_into(rec, &x, &win, &y, &ind)?;
            pool::max_pool_grad_into(rec, &dy, &ind, &win, &dx)
        })
        .expect("record forward + backward");
    let mut g = cr.benchmark_group(format!("max_pool 2x2 s2 {xs}"));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, prog) in [("forward", &fwd), ("forward+backward", &both)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                prog.submit(&ctx);
                ctx.wait().expect("device wait");
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_pool);
criterion_main!(benches);
