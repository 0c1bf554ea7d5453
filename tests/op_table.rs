//! The op table holds together: every op of the graph (forward, every
//! gradient op autodiff emits, both optimiser updates) is built, encoded by
//! the dispatch table and run; and every case the GPU wrappers reject is
//! rejected when the graph is built, with the same message (both call the
//! checks of `wunet::shape` and of the attribute types).

mod common;
use common::ctx;
use std::collections::BTreeSet;
use wunet::exec::dispatch::{encode_node, StepValues};
use wunet::graph::ops::*;
use wunet::graph::{
    append_optimizer, append_optimizer_amp, backward, fuse, init_graph, Graph, Init, Op, Optimizer,
    ValueId,
};
use wunet::ops::{activation, conv, loss, norm, optim, pool, tensor};
use wunet::shape::{self, DType, Shape, Window};
use wunet::{Context, Tensor};

// ------------------------------------------------------------------ every op

/// Index of each op in the coverage check. The match has no `_` arm: adding
/// an op to the enum stops this test from compiling until the op gets an
/// index here (and `OPS` grows), and then the test fails until
/// `every_op_graph` contains the op.
fn coverage_index(op: &Op) -> usize {
    match op {
        Op::Conv(_) => 0,
        Op::ConvTranspose(_) => 1,
        Op::ConvGradInput(_) => 2,
        Op::ConvGradWeight(_) => 3,
        Op::BiasGrad => 4,
        Op::ConvTransposeGradInput(_) => 5,
        Op::ConvTransposeGradWeight(_) => 6,
        Op::MaxPool(_) => 7,
        Op::AvgPool(_) => 8,
        Op::MaxUnpool(_) => 9,
        Op::MaxPoolGrad(_) => 10,
        Op::AvgPoolGrad(_) => 11,
        Op::MaxUnpoolGrad => 12,
        Op::BatchNorm(_) => 13,
        Op::InstanceNorm(_) => 14,
        Op::GroupNorm(_) => 15,
        Op::BatchNormGrad(_) => 16,
        Op::InstanceNormGrad(_) => 17,
        Op::GroupNormGrad(_) => 18,
        Op::Relu => 19,
        Op::LeakyRelu(_) => 20,
        Op::Sigmoid => 21,
        Op::Dropout(_) => 22,
        Op::ReluGrad => 23,
        Op::LeakyReluGrad(_) => 24,
        Op::SigmoidGrad => 25,
        Op::DropoutGrad(_) => 26,
        Op::Concat => 27,
        Op::Split(_) => 28,
        Op::CenterCrop(_) => 29,
        Op::Pad(_) => 30,
        Op::Add => 31,
        Op::Scale(_) => 32,
        Op::Zeros(_) => 33,
        Op::CenterCropGrad(_) => 34,
        Op::PadGrad(_) => 35,
        Op::Upsample(_) => 36,
        Op::UpsampleGrad(_) => 37,
        Op::SoftmaxCrossEntropy(_) => 38,
        Op::DiceLoss(_) => 39,
        Op::SgdUpdate(_) => 40,
        Op::AdamUpdate(_) => 41,
        Op::Cast(_) => 42,
        Op::CastGrad(_) => 43,
        Op::FiniteCheck => 44,
        Op::UpdateScale(_) => 45,
        Op::BatchNormRelu(_) => 46,
        Op::BatchNormReluGrad(_) => 47,
        Op::Identity => 48,
        Op::ConvRelu(_) => 49,
    }
}

/// Number of ops in `coverage_index`.
const OPS: usize = 50;

fn w2(k: usize, s: usize, p: usize) -> Window {
    Window::cube(2, k, s, p)
}

/// The encoder half of the every-op graph: conv, norms, activations, pooling,
/// split/concat (one split output unused, so its gradient is `Zeros`), crop, pad.
fn encoder(g: &mut Graph, x: ValueId) -> wunet::Result<(ValueId, ValueId)> {
    let train = BatchNormAttrs {
        training: true,
        momentum: 0.1,
        eps: 1e-5,
    };
    let c1 = g.conv_layer("c1", x, 4, w2(3, 1, 1), true)?;
    let bn = g.batch_norm_layer("bn", c1, train)?;
    let r = g.relu(bn)?;
    let (p, idx) = g.max_pool(r, w2(2, 2, 0))?;
    let un = g.max_unpool(p, idx, [1, 8, 8])?;
    let ap = g.avg_pool(un, w2(3, 1, 1), false)?;
    let inn = g.instance_norm_layer("in", ap, 1e-5)?;
    let l1 = g.leaky_relu(inn, 0.1)?;
    let gn = g.group_norm_layer("gn", l1, 2, 1e-5)?;
    let l2 = g.leaky_relu(gn, -0.2)?;
    let sg = g.sigmoid(l2)?;
    let dr = g.dropout(sg, 0.3, 7)?;
    let parts = g.split(dr, &[1, 1, 2])?;
    let cat = g.concat(&[parts[2], parts[0]])?;
    let cr = g.crop(cat, [0, 1, 1], [1, 6, 6])?;
    let pd = g.pad(cr, [0, 1, 1], [0, 1, 1], PadMode::Reflect)?;
    Ok((pd, r))
}

/// A training graph with every op: forward, backward, SGD (with and without
/// momentum) and Adam updates, plus an eval-mode batch norm on frozen parameters.
/// Without `half` the logits stay F32 (no Cast / CastGrad: for adapters
/// without SHADER_F16).
fn every_op_graph(half: bool) -> wunet::Result<(Graph, ValueId)> {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new4(2, 3, 8, 8))?;
    let labels = g.label("labels", Shape::new4(2, 1, 8, 8), DType::I32)?;
    let wmap = g.label("wmap", Shape::new4(2, 1, 8, 8), DType::F32)?;
    let (pd, r) = encoder(&mut g, x)?;
    let c2 = g.conv_layer("c2", pd, 4, w2(3, 1, 1), false)?;
    let c2 = g.relu(c2)?;
    let a = g.add(c2, r)?;
    let s = g.scale(a, 0.5)?;
    let d = g.conv_layer("down", s, 4, w2(2, 2, 0), true)?;
    let u = g.conv_transpose_layer("up", d, 4, w2(2, 2, 0), true)?;
    let pz = g.pad(u, [0, 1, 1], [0, 1, 1], PadMode::Zero)?;
    let cz = g.center_crop(pz, [1, 8, 8])?;
    let up1 = g.upsample(d, UpsampleMode::Nearest, [1, 2, 2])?;
    let up2 = g.upsample(d, UpsampleMode::Linear, [1, 2, 2])?;
    let a2 = g.add(up1, up2)?;
    let a3 = g.add(a2, cz)?;
    let head = g.conv_layer("head", a3, 2, w2(1, 1, 0), true)?;
    // Mixed precision at the loss: F16 logits, cast back to F32 with the loss
    // scale on the gradient (Cast both ways, CastGrad both ways).
    let scaler = g.loss_scaler("amp.loss_scale", 1024.0)?;
    let logits = if half {
        let half_logits = g.cast(head, DType::F16)?;
        g.cast_for_loss(half_logits, scaler)?
    } else {
        head
    };
    let ce = CrossEntropyAttrs {
        class_weights: Some(vec![1.0, 2.0]),
        weight_map: true,
        ignore_label: Some(255),
        reduction: Reduction::WeightedMean,
    };
    let ce = g.softmax_cross_entropy(logits, labels, Some(wmap), ce)?;
    let dice = DiceAttrs {
        smooth: 1.0,
        batch_dice: false,
        ignore_label: None,
        include_background: true,
    };
    let dice = g.dice_loss(logits, labels, dice)?;
    let half = g.scale(dice, 0.5)?;
    let total = g.add(ce, half)?;
    // Eval-mode batch norm on frozen parameters (no backward).
    let eval = BatchNormAttrs {
        training: false,
        momentum: 0.1,
        eps: 1e-5,
    };
    g.batch_norm_layer("bn_eval", x, eval)?;
    for p in ["bn_eval.weight", "bn_eval.bias"] {
        let v = g.find(p).ok_or_else(|| wunet::Error::Other(p.into()))?;
        g.set_trainable(v, false)?;
    }
    let grads = backward(&mut g, total)?;
    let ps = &grads.params;
    let (k, m) = (ps.len() / 3, 2 * ps.len() / 3);
    append_optimizer_amp(&mut g, &ps[..k], &Optimizer::sgd(0.9), scaler, 2000)?;
    append_optimizer(&mut g, &ps[k..m], &Optimizer::sgd(0.0))?;
    append_optimizer(&mut g, &ps[m..], &Optimizer::adam())?;
    Ok((g, total))
}

/// One tensor per value, parameters and state initialised, labels in range.
fn tensors(c: &Context, g: &Graph) -> wunet::Result<Vec<Tensor>> {
    let mut ts = Vec::with_capacity(g.values().len());
    for v in g.values() {
        ts.push(Tensor::zeros(c, v.shape, v.dtype)?);
    }
    for (id, data) in init_graph(g, 3) {
        let t = &ts[id.0];
        c.queue
            .write_buffer(t.buffer(), t.offset, bytemuck::cast_slice(&data));
    }
    let wmap = g
        .find("wmap")
        .ok_or_else(|| wunet::Error::Other("wmap".into()))?;
    let ones = vec![1.0f32; g.shape(wmap).numel()];
    ts[wmap.0] = Tensor::from_f32(c, &ones, g.shape(wmap))?;
    Ok(ts)
}

#[test]
fn every_op_is_built_encoded_and_run() {
    let (g, total) = every_op_graph(true).unwrap_or_else(|e| panic!("{e}"));
    // The fused ops (`graph::fuse`) come from the same graph, fused: it runs too.
    let (fused, report) = fuse(&g, &[total]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (report.bn_relu, report.bn_relu_grad, report.conv_relu),
        (1, 1, 1),
        "{report:?}"
    );
    let seen: BTreeSet<usize> = (g.nodes().iter().chain(fused.nodes()))
        .map(|n| coverage_index(&n.op))
        .collect();
    let missing: Vec<usize> = (0..OPS).filter(|i| !seen.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "ops missing from the graph: {missing:?}\n{}",
        g.dump()
    );
    wunet::graph::check_kernel_ops(&g).unwrap();
    let Some(c) = ctx() else { return };
    let (g, total) = if c.has_f16() {
        (g, total)
    } else {
        eprintln!(
            "skip: Cast and CastGrad not run (f16 storage needs SHADER_F16, which {} lacks); every other op runs",
            c.describe()
        );
        every_op_graph(false).unwrap_or_else(|e| panic!("{e}"))
    };
    let fused = fuse(&g, &[total]).unwrap_or_else(|e| panic!("{e}")).0;
    for g in [&g, &fused] {
        run_every_op(c, g, total);
    }
}

/// Encode every node of `g` in creation order with a tensor per value and
/// run it; the loss `total` must be finite and positive.
fn run_every_op(c: &Context, g: &Graph, total: ValueId) {
    let ts = tensors(c, g).unwrap();
    let hyper = optim::hyper_tensor(c).unwrap();
    optim::write_hyper(c, &hyper, optim::hyper_values(1, 1e-3, 0.9, 0.999)).unwrap();
    let class_weights = Tensor::from_f32(c, &[1.0, 2.0], Shape::vector(2)).unwrap();
    let per_sample = shape::dice_shape(&Shape::new4(2, 2, 8, 8), true);
    let dice_scratch = Tensor::zeros(c, per_sample, DType::F32).unwrap();
    let cw = |ni: usize| {
        matches!(g.nodes()[ni].op, Op::SoftmaxCrossEntropy(_)).then_some(&class_weights)
    };
    let ds = |ni: usize| matches!(g.nodes()[ni].op, Op::DiceLoss(_)).then_some(&dice_scratch);
    let sv = StepValues {
        hyper: &hyper,
        step: 1,
        class_weights: &cw,
        dice_scratch: &ds,
    };
    let t = |v: ValueId| &ts[v.0];
    c.run(|rec| {
        for (ni, node) in g.nodes().iter().enumerate() {
            encode_node(rec, g, ni, node, &t, &sv)?;
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let loss = ts[total.0].to_f32_vec(c).unwrap()[0];
    assert!(loss.is_finite() && loss > 0.0, "loss {loss}");
}

// ------------------------------------------------------------------ one validation path

/// The graph's error and the GPU op's error both carry `msg`, the shared check's
/// message; the graph's also names the op and the node.
fn agree(case: &str, msg: &str, op: &str, graph: Option<wunet::Error>, gpu: Option<String>) {
    assert!(!msg.is_empty(), "{case}: empty check message");
    let ge = graph
        .unwrap_or_else(|| panic!("{case}: the graph accepted it"))
        .to_string();
    assert!(
        ge.contains(msg) && ge.contains(op) && ge.contains("node #"),
        "{case}: graph error '{ge}' lacks '{msg}' or '{op}'"
    );
    if let Some(e) = gpu {
        assert!(e.contains(msg), "{case}: GPU error '{e}' lacks '{msg}'");
    }
}

/// The error of a GPU op (None: no adapter); panics if the op succeeded.
fn gpu_err<T>(
    case: &str,
    f: impl FnOnce(&Context, &mut wunet::gpu::Recorder) -> wunet::Result<T>,
) -> Option<String> {
    let c = ctx()?;
    let mut rec = wunet::gpu::Recorder::new(c);
    match f(c, &mut rec) {
        Ok(_) => panic!("{case}: the GPU op accepted it"),
        Err(e) => Some(e.to_string()),
    }
}

fn zeros(c: &Context, s: Shape) -> Tensor {
    Tensor::zeros(c, s, DType::F32).unwrap()
}

#[test]
fn pooling_windows_are_checked_at_build() {
    let xs = Shape::new4(1, 2, 6, 6);
    // Dilation 2.
    let win = Window::new(&[2, 2], &[2, 2], &[0, 0], &[2, 2]);
    let msg = shape::check_pool_window(&xs, &win).unwrap_err();
    let mut g = Graph::new();
    let x = g.input("x", xs).unwrap();
    let ge = g.max_pool(x, win).err();
    let oe = gpu_err("dilation", |c, rec| {
        pool::max_pool(rec, &zeros(c, xs), &win)
    });
    agree("pool dilation", &msg, "MaxPool", ge, oe);
    // Padding above half the kernel.
    let win = w2(2, 2, 2);
    let msg = shape::check_pool_window(&xs, &win).unwrap_err();
    let ge = g.avg_pool(x, win, true).err();
    let oe = gpu_err("padding", |c, rec| {
        pool::avg_pool(rec, &zeros(c, xs), &win, true)
    });
    agree("pool padding", &msg, "AvgPool", ge, oe);
}

#[test]
fn norm_statistics_are_checked_at_build() {
    // Batch norm in training mode over one value per channel.
    let xs = Shape::new4(1, 4, 1, 1);
    let cv = Shape::vector(4);
    let train = BatchNormAttrs {
        training: true,
        momentum: 0.1,
        eps: 1e-5,
    };
    let msg = shape::check_batch_norm_train(&xs).unwrap_err();
    let mut g = Graph::new();
    let x = g.input("x", xs).unwrap();
    let ge = g.batch_norm_layer("bn", x, train).err();
    let oe = gpu_err("bn", |c, rec| {
        let v = || zeros(c, cv);
        norm::batch_norm_train(rec, &zeros(c, xs), &v(), &v(), &v(), &v(), 0.1, 1e-5)
    });
    agree("batch norm m = 1", &msg, "BatchNorm", ge, oe);
    // Instance norm over one spatial value.
    let xs = Shape::new4(2, 4, 1, 1);
    let msg = shape::check_instance_norm(&xs).unwrap_err();
    let x = g.input("x2", xs).unwrap();
    let ge = g.instance_norm_layer("in", x, 1e-5).err();
    let oe = gpu_err("in", |c, rec| {
        norm::instance_norm(rec, &zeros(c, xs), &zeros(c, cv), &zeros(c, cv), 1e-5)
    });
    agree("instance norm", &msg, "InstanceNorm", ge, oe);
    // A negative eps (eval mode).
    let xs = Shape::new4(2, 4, 3, 3);
    let msg = wunet::graph::ops::norm::check_eps(-1.0).unwrap_err();
    let x = g.input("x3", xs).unwrap();
    let eval = BatchNormAttrs {
        training: false,
        momentum: 0.1,
        eps: -1.0,
    };
    let ge = g.batch_norm_layer("bn_eval", x, eval).err();
    let oe = gpu_err("eps", |c, rec| {
        let v = || zeros(c, cv);
        norm::batch_norm_eval(rec, &zeros(c, xs), &v(), &v(), &v(), &v(), -1.0)
    });
    agree("batch norm eps", &msg, "BatchNorm", ge, oe);
}

#[test]
fn tensor_and_conv_shapes_are_checked_at_build() {
    let mut g = Graph::new();
    // A split into one part.
    let xs = Shape::new4(1, 4, 2, 2);
    let msg = shape::split_out_shapes(&xs, &[4]).unwrap_err();
    let x = g.input("x", xs).unwrap();
    let ge = g.split(x, &[4]).err();
    let oe = gpu_err("split", |c, rec| {
        tensor::split_channels(rec, &zeros(c, xs), &[4])
    });
    agree("split", &msg, "Split", ge, oe);
    // A pad gradient whose reflect padding is not smaller than the input.
    let dys = Shape::new4(1, 1, 5, 5);
    let (lo, hi) = ([0, 2, 2], [0, 2, 2]);
    let msg = shape::unpad_out_shape(&dys, lo, hi, true).unwrap_err();
    let dy = g.input("dy", dys).unwrap();
    let pad = PadAttrs {
        low: lo,
        high: hi,
        mode: PadMode::Reflect,
    };
    let ge = g.add_node(Op::PadGrad(pad), &[dy]).err();
    let oe = gpu_err("pad grad", |c, rec| {
        tensor::pad_grad(
            rec,
            &zeros(c, dys),
            lo,
            hi,
            PadMode::Reflect,
            Shape::new4(1, 1, 1, 1),
        )
    });
    agree("pad grad", &msg, "PadGrad", ge, oe);
    // A transposed-conv input gradient the window does not map back to `dy`
    // (output padding 1: 4 -> 8, but dy is 7).
    let win = w2(3, 2, 1).with_output_padding(&[1, 1]);
    let (dys, ws, xs) = (
        Shape::new4(1, 1, 7, 7),
        Shape::new4(1, 1, 3, 3),
        Shape::new4(1, 1, 4, 4),
    );
    let y = shape::conv_transpose_out_shape(&xs, &ws, &win).unwrap();
    let msg = shape::check_grad_output(&dys, &y, &xs, &win).unwrap_err();
    let dy = g.input("dy7", dys).unwrap();
    let w = g.param("w", ws, Init::Zeros).unwrap();
    let ge = g
        .add_node(
            Op::ConvTransposeGradInput(WindowAttrs { window: win }),
            &[dy, w],
        )
        .err();
    let oe = gpu_err("conv transpose dx", |c, rec| {
        conv::conv_transpose_grad_input(rec, &zeros(c, dys), &zeros(c, ws), &win, xs)
    });
    agree(
        "conv transpose grad input",
        &msg,
        "ConvTransposeGradInput",
        ge,
        oe,
    );
    // A bias of the right size but not a vector.
    let (xs, ws, bs) = (
        Shape::new4(1, 2, 5, 5),
        Shape::new4(4, 2, 3, 3),
        Shape::new4(1, 1, 2, 2),
    );
    let msg = shape::check_vector("bias", &bs, 4, &xs).unwrap_err();
    let x = g.input("xc", xs).unwrap();
    let w = g.param("wc", ws, Init::Zeros).unwrap();
    let b = g.param("bc", bs, Init::Zeros).unwrap();
    let ge = g.conv(x, w, Some(b), w2(3, 1, 0)).err();
    let oe = gpu_err("bias", |c, rec| {
        conv::conv(
            rec,
            &zeros(c, xs),
            &zeros(c, ws),
            Some(&zeros(c, bs)),
            &w2(3, 1, 0),
        )
    });
    agree("conv bias", &msg, "Conv", ge, oe);
    // Max-unpooling a 2D input to a size along D.
    let xs = Shape::new4(1, 2, 4, 4);
    let msg = shape::unpool_out_shape(&xs, [2, 8, 8]).unwrap_err();
    let x = g.input("xu", xs).unwrap();
    let idx = g.input_typed("idx", xs, DType::U32).unwrap();
    let ge = g.max_unpool(x, idx, [2, 8, 8]).err();
    let oe = gpu_err("unpool", |c, rec| {
        let idx = Tensor::zeros(c, xs, DType::U32)?;
        pool::max_unpool(rec, &zeros(c, xs), &idx, [2, 8, 8])
    });
    agree("max unpool", &msg, "MaxUnpool", ge, oe);
}

#[test]
fn attributes_are_checked_at_build() {
    let mut g = Graph::new();
    // Dropout probability.
    let xs = Shape::new4(1, 2, 3, 3);
    let msg = wunet::graph::ops::activation::check_drop_probability(1.5).unwrap_err();
    let x = g.input("x", xs).unwrap();
    let ge = g.dropout(x, 1.5, 0).err();
    let oe = gpu_err("dropout", |c, rec| {
        activation::dropout(rec, &zeros(c, xs), 1.5, 0)
    });
    agree("dropout p", &msg, "Dropout", ge, oe);
    // Dice smoothing.
    let (zs, ls) = (Shape::new4(1, 2, 3, 3), Shape::new4(1, 1, 3, 3));
    let dice = DiceAttrs {
        smooth: -1.0,
        ..DiceAttrs::default()
    };
    let msg = dice.check(&zs).unwrap_err();
    let z = g.input("z", zs).unwrap();
    let lab = g.label("lab", ls, DType::I32).unwrap();
    let ge = g.dice_loss(z, lab, dice).err();
    let oe = gpu_err("dice", |c, rec| {
        let lab = Tensor::zeros(c, ls, DType::I32)?;
        loss::dice_loss(rec, &zeros(c, zs), &lab, &dice)
    });
    agree("dice smooth", &msg, "DiceLoss", ge, oe);
    // Dice without the background on one class.
    let z1s = Shape::new4(1, 1, 3, 3);
    let dice = DiceAttrs {
        include_background: false,
        ..DiceAttrs::default()
    };
    let msg = dice.check(&z1s).unwrap_err();
    assert!(msg.contains("at least 2 classes"), "{msg}");
    let z1 = g.input("z1", z1s).unwrap();
    let ge = g.dice_loss(z1, lab, dice).err();
    let oe = gpu_err("dice", |c, rec| {
        let lab = Tensor::zeros(c, ls, DType::I32)?;
        loss::dice_loss(rec, &zeros(c, z1s), &lab, &dice)
    });
    agree("dice background", &msg, "DiceLoss", ge, oe);
    // Optimisers: Nesterov without momentum, beta1 = 1.
    let ps = Shape::vector(5);
    let p = g.param("p", ps, Init::Zeros).unwrap();
    let grad = g.input("grad", ps).unwrap();
    let sgd = SgdAttrs {
        momentum: 0.0,
        nesterov: true,
        weight_decay: 0.0,
        amp: false,
    };
    let adam = AdamAttrs {
        beta1: 1.0,
        ..AdamAttrs::default()
    };
    let ge = append_optimizer(&mut g, &[(p, grad)], &Optimizer::Sgd(sgd)).err();
    let oe = gpu_err("sgd", |c, rec| {
        let hyper = optim::hyper_tensor(c)?;
        optim::sgd_update(rec, &zeros(c, ps), &zeros(c, ps), None, &hyper, None, &sgd)
    });
    agree(
        "sgd nesterov",
        &sgd.check().unwrap_err(),
        "SgdUpdate",
        ge,
        oe,
    );
    let ge = append_optimizer(&mut g, &[(p, grad)], &Optimizer::Adam(adam)).err();
    let oe = gpu_err("adam", |c, rec| {
        let (m, v, hyper) = (zeros(c, ps), zeros(c, ps), optim::hyper_tensor(c)?);
        optim::adam_update(
            rec,
            &zeros(c, ps),
            &zeros(c, ps),
            &m,
            &v,
            &hyper,
            None,
            &adam,
        )
    });
    agree(
        "adam beta1",
        &adam.check().unwrap_err(),
        "AdamUpdate",
        ge,
        oe,
    );
}
