//! Fusion (`graph::fuse`, run by the executor unless `ExecOptions::fuse` or
//! `WUNET_FUSE=0` turns it off) against the unfused graph on the U-Net
//! builders (batch norm + ReLU, conv + ReLU, concatenations as channel slices at
//! batch 1): 2D and 3D, with and without batch norm, training (two SGD steps:
//! loss, logits, every parameter gradient, the updated parameters and the
//! running statistics) and inference (logits), f32 and mixed precision.
//!
//! The fused ops do the same operations on the same values as the pairs they
//! replace (see `graph::fuse`), so every compared number must be equal bit
//! for bit; the test asserts that, not a tolerance.

mod common;
use common::{ctx, rand_vec};
use wunet::exec::{ExecOptions, Executor};
use wunet::graph::ops::amp::GROWTH_INTERVAL;
use wunet::graph::{
    append_optimizer, append_optimizer_amp, backward, fuse, Op, Optimizer, ValueId,
};
use wunet::models::{build_unet_with, Loss, Mode, Norm, Padding, UNet, UNetConfig};
use wunet::shape::Precision;
use wunet::Context;

/// A small U-Net: `dims`-D, base 4, depth 2, same padding, `norm`.
fn config(dims: usize, norm: Norm) -> UNetConfig {
    let mut c = if dims == 3 {
        UNetConfig::cicek2016()
    } else {
        UNetConfig::ronneberger2015()
    };
    c.base = 4;
    c.depth = 2;
    c.padding = Padding::Same;
    c.norm = norm;
    c.dropout = 0.0;
    c
}

/// Every number a run is compared on, by name.
type Numbers = Vec<(String, Vec<f32>)>;

/// Two training steps of `cfg` on seeded data, fused or not; the numbers
/// read after each step, and the executor's fusion counts.
fn train(
    c: &Context,
    cfg: &UNetConfig,
    (batch, spatial): (usize, &[usize]),
    precision: Precision,
    fused: bool,
) -> (Numbers, (usize, usize, usize), usize) {
    let mode = Mode::Training(Loss::cross_entropy());
    let net = build_unet_with(cfg, batch, spatial, &mode, precision).unwrap();
    let mut g = net.graph.clone();
    let loss = net.loss.unwrap();
    let grads = backward(&mut g, loss).unwrap().params;
    let sgd = Optimizer::sgd(0.9);
    match net.scaler {
        Some(s) => append_optimizer_amp(&mut g, &grads, &sgd, s, GROWTH_INTERVAL).unwrap(),
        None => append_optimizer(&mut g, &grads, &sgd).unwrap(),
    };
    let mut keep = vec![net.logits, loss];
    keep.extend(grads.iter().map(|(_, gr)| *gr));
    let opts = ExecOptions {
        seed: 5,
        keep,
        fuse: Some(fused),
    };
    let mut ex = Executor::new(c, g, &opts).unwrap();
    upload(c, &ex, &net);
    let mut out = Numbers::new();
    for step in 0..2 {
        ex.run(c, 0.05).unwrap();
        let mut read = |name: String, v: ValueId| out.push((name, ex.read_f32(c, v).unwrap()));
        read(format!("step {step} loss"), loss);
        read(format!("step {step} logits"), net.logits);
        for (p, gr) in &grads {
            read(format!("step {step} grad {}", ex.graph.value(*p).name), *gr);
        }
        for v in ex
            .graph
            .ids()
            .filter(|v| ex.graph.value(*v).producer().is_none())
        {
            if ex.graph.value(v).init().is_some() {
                read(format!("step {step} {}", ex.graph.value(v).name), v);
            }
        }
    }
    let counts = (ex.fused.bn_relu, ex.fused.bn_relu_grad, ex.fused.conv_relu);
    (out, counts, ex.dispatches())
}

/// Seeded input and labels (two classes).
fn upload(c: &Context, ex: &Executor, net: &UNet) {
    let n_in = ex.graph.shape(net.input).numel();
    ex.write_f32(c, net.input, &rand_vec(n_in, 11)).unwrap();
    let labels = net.labels.unwrap();
    let lab: Vec<i32> = (0..ex.graph.shape(labels).numel())
        .map(|i| ((i * 7 + i / 5) % 2) as i32)
        .collect();
    ex.write_i32(c, labels, &lab).unwrap();
}

/// Every number equal bit for bit (the first differences are named).
fn assert_identical(case: &str, fused: &[(String, Vec<f32>)], plain: &[(String, Vec<f32>)]) {
    assert_eq!(fused.len(), plain.len(), "{case}: different tensors read");
    let mut bad = Vec::new();
    for ((name, a), (_, b)) in fused.iter().zip(plain) {
        let diff = a
            .iter()
            .zip(b)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        if diff > 0 || a.len() != b.len() {
            let worst = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            bad.push(format!(
                "{name}: {diff} of {} differ (max {worst:e})",
                a.len()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{case}: fused != unfused:\n{}",
        bad.join("\n")
    );
}

/// Training, fused vs unfused: identical numbers; with batch norm every
/// BN -> ReLU pair and its backward pair is fused, and dispatches are saved;
/// with batch 1 every skip concatenation and its split are channel slices
/// (two copies saved each way per level).
fn check_training(dims: usize, norm: Norm, spatial: &[usize], precision: Precision) {
    check_training_batch(dims, norm, (2, spatial), precision);
}

fn check_training_batch(
    dims: usize,
    norm: Norm,
    (batch, spatial): (usize, &[usize]),
    precision: Precision,
) {
    let Some(c) = ctx() else { return };
    if precision == Precision::Mixed && !c.has_f16() {
        eprintln!("skip: mixed precision needs SHADER_F16 ({})", c.describe());
        return;
    }
    let cfg = config(dims, norm);
    let case = format!("{dims}D {norm:?} {precision:?} batch {batch}");
    let (fused, counts, n_fused) = train(c, &cfg, (batch, spatial), precision, true);
    let (plain, plain_counts, n_plain) = train(c, &cfg, (batch, spatial), precision, false);
    assert_eq!(plain_counts, (0, 0, 0), "{case}: fusion off still fused");
    assert_identical(&case, &fused, &plain);
    // Two 3x3 conv blocks per level (encoder, bottom, decoder).
    let blocks = 2 * (2 * cfg.depth + 1);
    let slices = if batch == 1 { 4 * cfg.depth } else { 0 };
    if norm == Norm::Batch {
        assert_eq!(counts, (blocks, blocks, 0), "{case}: fusion counts");
        assert_eq!(
            n_plain - n_fused,
            2 * blocks + slices,
            "{case}: dispatches saved"
        );
    } else {
        // Without batch norm every 3x3 conv feeds a ReLU: fused into the conv's store.
        assert_eq!(counts, (0, 0, blocks), "{case}: fusion counts");
        assert_eq!(
            n_plain - n_fused,
            blocks + slices,
            "{case}: dispatches saved"
        );
    }
}

#[test]
fn fused_training_2d_bn_is_identical() {
    check_training(2, Norm::Batch, &[16, 12], Precision::F32);
}

#[test]
fn fused_training_2d_no_norm_is_identical() {
    check_training(2, Norm::None, &[16, 12], Precision::F32);
}

#[test]
fn fused_training_3d_bn_is_identical() {
    check_training(3, Norm::Batch, &[8, 8, 12], Precision::F32);
}

#[test]
fn fused_training_3d_no_norm_is_identical() {
    check_training(3, Norm::None, &[8, 8, 12], Precision::F32);
}

#[test]
fn fused_training_3d_bn_batch_1_is_identical() {
    check_training_batch(3, Norm::Batch, (1, &[8, 8, 12]), Precision::F32);
}

#[test]
fn fused_training_2d_no_norm_batch_1_mixed_is_identical() {
    check_training_batch(2, Norm::None, (1, &[16, 12]), Precision::Mixed);
}

#[test]
fn fused_training_2d_bn_mixed_is_identical() {
    check_training(2, Norm::Batch, &[16, 12], Precision::Mixed);
}

/// Inference graphs: eval-mode batch norm fused with the ReLU, same logits.
#[test]
fn fused_inference_is_identical() {
    let Some(c) = ctx() else { return };
    for dims in [2, 3] {
        let cfg = config(dims, Norm::Batch);
        let spatial = if dims == 2 {
            vec![16, 12]
        } else {
            vec![8, 8, 12]
        };
        let mut logits = Vec::new();
        for fused in [true, false] {
            let net = build_unet_with(&cfg, 1, &spatial, &Mode::Inference, Precision::F32).unwrap();
            let opts = ExecOptions {
                seed: 3,
                keep: vec![net.logits],
                fuse: Some(fused),
            };
            let mut ex = Executor::new(c, net.graph.clone(), &opts).unwrap();
            assert_eq!(ex.fused.bn_relu > 0, fused, "{dims}D");
            let n = ex.graph.shape(net.input).numel();
            ex.write_f32(c, net.input, &rand_vec(n, 2)).unwrap();
            ex.run(c, 0.0).unwrap();
            logits.push((
                format!("{dims}D logits"),
                ex.read_f32(c, net.logits).unwrap(),
            ));
        }
        assert_identical("inference", &logits[..1], &logits[1..]);
    }
}

/// The rewrite itself (no GPU): ids kept, the pattern's nodes rewritten,
/// kept values never fused away.
#[test]
fn fuse_rewrites_the_pattern_and_keeps_ids() {
    let cfg = config(2, Norm::Batch);
    let mode = Mode::Training(Loss::cross_entropy());
    let net = build_unet_with(&cfg, 2, &[16, 12], &mode, Precision::F32).unwrap();
    let mut g = net.graph.clone();
    backward(&mut g, net.loss.unwrap()).unwrap();
    let (f, report) = fuse(&g, &[]).unwrap();
    assert_eq!((report.bn_relu, report.bn_relu_grad), (10, 10));
    assert_eq!(f.values().len(), g.values().len());
    assert_eq!(f.nodes().len(), g.nodes().len());
    let count = |g: &wunet::graph::Graph, pred: &dyn Fn(&Op) -> bool| {
        g.nodes().iter().filter(|n| pred(&n.op)).count()
    };
    assert_eq!(count(&f, &|op| matches!(op, Op::BatchNormRelu(_))), 10);
    assert_eq!(count(&f, &|op| matches!(op, Op::BatchNormReluGrad(_))), 10);
    assert_eq!(count(&f, &|op| *op == Op::Identity), 20);
    assert_eq!(count(&f, &|op| matches!(op, Op::Relu | Op::ReluGrad)), 0);
    for (a, b) in f.values().iter().zip(g.values()) {
        assert_eq!((&a.name, a.shape, a.dtype), (&b.name, b.shape, b.dtype));
    }
    // A kept batch-norm output is read by the caller: that pair stays.
    let bn = g
        .nodes()
        .iter()
        .find(|n| matches!(n.op, Op::BatchNorm(_)))
        .unwrap();
    let (_, kept) = fuse(&g, &[bn.outputs[0]]).unwrap();
    assert_eq!((kept.bn_relu, kept.bn_relu_grad), (9, 9));
}

/// A host app's device with wgpu's default limits (8 storage buffers per
/// stage, which every norm kernel keeps to, the fused backward included):
/// fused training runs and equals the unfused step.
#[test]
fn default_limits_device_trains_fused() {
    let inst = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let opts = wgpu::RequestAdapterOptions::default();
    let Ok(adapter) = pollster::block_on(inst.request_adapter(&opts)) else {
        eprintln!("skip: no adapter");
        return;
    };
    let info = adapter.get_info();
    let desc = wgpu::DeviceDescriptor::default();
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).unwrap();
    assert_eq!(device.limits().max_storage_buffers_per_shader_stage, 8);
    let c = Context::from_device(device, queue, info);
    let cfg = config(2, Norm::Batch);
    let (fused, counts, _) = train(&c, &cfg, (2, &[16, 12]), Precision::F32, true);
    let (plain, _, _) = train(&c, &cfg, (2, &[16, 12]), Precision::F32, false);
    assert_eq!(counts, (10, 10, 0), "fusion counts");
    assert_identical("default limits", &fused, &plain);
}
