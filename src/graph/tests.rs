//! Unit tests of the graph layer: shape inference errors and autodiff structure.

use super::ops::*;
use super::*;
use crate::shape::{DType, Shape, Window};

fn ce() -> CrossEntropyAttrs {
    CrossEntropyAttrs {
        class_weights: None,
        weight_map: false,
        ignore_label: None,
        reduction: Reduction::Mean,
    }
}

#[test]
fn conv_mismatch_names_node_op_and_shapes() {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new4(2, 3, 9, 7)).unwrap();
    let w = g
        .param("enc0.conv1.weight", Shape::new4(4, 5, 3, 3), Init::Zeros)
        .unwrap();
    let e = g
        .conv(x, w, None, Window::cube(2, 3, 1, 1))
        .unwrap_err()
        .to_string();
    for want in ["Conv", "enc0.conv1", "2x3x9x7", "4x5x3x3"] {
        assert!(e.contains(want), "'{e}' lacks '{want}'");
    }
    // 3D window on a 2D input.
    let w = g
        .param("w3", Shape::new5(4, 3, 3, 3, 3), Init::Zeros)
        .unwrap();
    let e = g
        .conv(x, w, None, Window::cube(3, 3, 1, 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("2x3x9x7") && e.contains("Conv"), "{e}");
}

#[test]
fn other_mismatches_name_both_shapes() {
    let mut g = Graph::new();
    g.set_scope("dec1");
    let a = g.input("a", Shape::new4(1, 3, 8, 8)).unwrap();
    let b = g.input("b", Shape::new4(1, 2, 8, 6)).unwrap();
    let e = g.concat(&[a, b]).unwrap_err().to_string();
    assert!(
        e.contains("Concat")
            && e.contains("dec1.concat1")
            && e.contains("1x3x8x8")
            && e.contains("1x2x8x6"),
        "{e}"
    );
    let e = g.add(a, b).unwrap_err().to_string();
    assert!(
        e.contains("Add") && e.contains("1x3x8x8") && e.contains("1x2x8x6"),
        "{e}"
    );
    let l = g
        .label("labels", Shape::new4(1, 1, 8, 7), DType::I32)
        .unwrap();
    let e = g
        .softmax_cross_entropy(a, l, None, ce())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SoftmaxCrossEntropy") && e.contains("1x3x8x8") && e.contains("1x1x8x7"),
        "{e}"
    );
    let e = g.crop(a, [0, 2, 2], [1, 7, 7]).unwrap_err().to_string();
    assert!(
        e.contains("CenterCrop") && e.contains("1x3x8x8") && e.contains("1x3x7x7"),
        "{e}"
    );
    // Wrong dtype of labels.
    let lf = g.input("lf", Shape::new4(1, 1, 8, 8)).unwrap();
    assert!(g.softmax_cross_entropy(a, lf, None, ce()).is_err());
    // Arity.
    assert!(g
        .add_node(Op::Add, &[a])
        .unwrap_err()
        .to_string()
        .contains("takes 2 inputs"));
}

#[test]
fn shapes_of_the_ops() {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new5(2, 3, 9, 10, 11)).unwrap();
    let y = g
        .conv_layer("c", x, 5, Window::cube(3, 3, 1, 0), true)
        .unwrap();
    assert_eq!(g.shape(y), Shape::new5(2, 5, 7, 8, 9));
    let (p, idx) = g.max_pool(y, Window::cube(3, 2, 2, 0)).unwrap();
    assert_eq!(g.shape(p), Shape::new5(2, 5, 3, 4, 4));
    assert_eq!(g.value(idx).dtype, DType::U32);
    let u = g
        .conv_transpose_layer("u", p, 4, Window::cube(3, 2, 2, 0), false)
        .unwrap();
    assert_eq!(g.shape(u), Shape::new5(2, 4, 6, 8, 8));
    assert_eq!(
        g.shape(g.find("u.weight").unwrap()),
        Shape::new5(5, 4, 2, 2, 2)
    );
    let c = g.center_crop(y, [6, 8, 8]).unwrap();
    assert_eq!(
        g.node(g.producer(c).unwrap()).op,
        Op::CenterCrop(CropAttrs {
            offset: [0, 0, 0],
            size: [6, 8, 8]
        })
    );
    let cat = g.concat(&[c, u]).unwrap();
    assert_eq!(g.shape(cat).c(), 9);
    let up = g.upsample(cat, UpsampleMode::Linear, [2, 2, 2]).unwrap();
    assert_eq!(g.shape(up), Shape::new5(2, 9, 12, 16, 16));
    let pd = g.pad(up, [1, 0, 2], [0, 3, 0], PadMode::Reflect).unwrap();
    assert_eq!(g.shape(pd), Shape::new5(2, 9, 13, 19, 18));
    let bn = g
        .batch_norm_layer(
            "bn",
            pd,
            BatchNormAttrs {
                training: true,
                momentum: 0.1,
                eps: 1e-5,
            },
        )
        .unwrap();
    assert_eq!(g.siblings(bn).len(), 3);
    assert_eq!(g.shape(g.siblings(bn)[1]), Shape::vector(9));
    let gn = g.group_norm_layer("gn", bn, 3, 1e-5).unwrap();
    assert_eq!(g.shape(g.siblings(gn)[2]).logical(), vec![2, 3]);
    assert!(g.group_norm_layer("gn2", bn, 4, 1e-5).is_err());
    let parts = g.split(gn, &[4, 5]).unwrap();
    assert_eq!(g.shape(parts[1]).c(), 5);
    let un = g.max_unpool(p, idx, [7, 8, 9]).unwrap();
    assert_eq!(g.shape(un), g.shape(y));
}

/// x -> conv1 -> relu = a; a -> conv2 -> relu = b; concat(crop(a), b) -> head -> CE.
fn skip_net() -> (Graph, ValueId, ValueId, ValueId) {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new4(2, 3, 12, 10)).unwrap();
    let labels = g
        .label("labels", Shape::new4(2, 1, 10, 8), DType::I32)
        .unwrap();
    let c1 = g
        .conv_layer("c1", x, 4, Window::cube(2, 3, 1, 1), true)
        .unwrap();
    let a = g.relu(c1).unwrap();
    let c2 = g
        .conv_layer("c2", a, 5, Window::cube(2, 3, 1, 0), true)
        .unwrap();
    let b = g.relu(c2).unwrap();
    let ac = g.center_crop(a, [1, 10, 8]).unwrap();
    let cat = g.concat(&[ac, b]).unwrap();
    let logits = g
        .conv_layer("head", cat, 3, Window::cube(2, 1, 1, 0), true)
        .unwrap();
    let loss = g.softmax_cross_entropy(logits, labels, None, ce()).unwrap();
    (g, a, labels, loss)
}

#[test]
fn fan_out_accumulates_with_add() {
    let (mut g, a, _, loss) = skip_net();
    let n_fwd = g.nodes().len();
    backward(&mut g, loss).unwrap();
    let adds: Vec<&Node> = g.nodes()[n_fwd..]
        .iter()
        .filter(|n| n.op == Op::Add)
        .collect();
    assert_eq!(adds.len(), 1, "{}", g.dump());
    assert_eq!(adds[0].name, format!("grad.{}.acc", g.value(a).name));
    // Its inputs: the crop gradient and the conv2 input gradient.
    let kinds: Vec<&str> = adds[0]
        .inputs
        .iter()
        .map(|v| g.node(g.producer(*v).unwrap()).op.name())
        .collect();
    assert!(
        kinds.contains(&"CenterCropGrad") && kinds.contains(&"ConvGradInput"),
        "{kinds:?}"
    );
    check_kernel_ops(&g).unwrap();
}

#[test]
fn gradients_only_where_needed() {
    let (mut g, _, labels, loss) = skip_net();
    // Freeze c2's bias: it must get no gradient.
    let frozen = g.find("c2.bias").unwrap();
    g.set_trainable(frozen, false).unwrap();
    let n_fwd = g.nodes().len();
    let grads = backward(&mut g, loss).unwrap();
    let trainable = g.trainable_params();
    assert_eq!(grads.params.len(), trainable.len());
    assert!(grads.unused.is_empty());
    for p in &trainable {
        assert_eq!(
            grads.params.iter().filter(|(q, _)| q == p).count(),
            1,
            "{}",
            g.value(*p).name
        );
        let gv = grads.of(*p).unwrap();
        assert_eq!(g.shape(gv).dims, g.shape(*p).dims);
    }
    assert!(grads.of(frozen).is_none());
    let bwd = &g.nodes()[n_fwd..];
    // Nothing reads the labels in the backward pass, and the data input gets no gradient:
    // only c2 and head propagate to their inputs.
    assert!(bwd.iter().all(|n| !n.inputs.contains(&labels)));
    let count = |name: &str| bwd.iter().filter(|n| n.op.name() == name).count();
    assert_eq!(count("ConvGradInput"), 2);
    assert_eq!(count("BiasGrad"), 2);
    assert_eq!(count("ConvGradWeight"), 3);
    // ReluGrad reads the forward output y.
    let rg = bwd.iter().find(|n| n.op == Op::ReluGrad).unwrap();
    assert_eq!(g.node(g.producer(rg.inputs[1]).unwrap()).op, Op::Relu);
}

#[test]
fn combined_loss_and_optimizer() {
    let (mut g, _, labels, ce_loss) = skip_net();
    let logits = g.node(g.producer(ce_loss).unwrap()).inputs[0];
    let dice = g
        .dice_loss(
            logits,
            labels,
            DiceAttrs {
                smooth: 1.0,
                batch_dice: false,
                ignore_label: None,
                include_background: true,
            },
        )
        .unwrap();
    let half = g.scale(dice, 0.5).unwrap();
    let total = g.add(ce_loss, half).unwrap();
    let n_fwd = g.nodes().len();
    let grads = backward(&mut g, total).unwrap();
    let bwd = &g.nodes()[n_fwd..];
    // grad(logits) = ce.grad + Scale(0.5, dice.grad).
    let sc = bwd
        .iter()
        .find(|n| matches!(n.op, Op::Scale(ScaleAttrs { alpha }) if alpha == 0.5))
        .unwrap();
    assert_eq!(sc.inputs[0], g.siblings(dice)[1]);
    let acc = bwd.iter().find(|n| n.op == Op::Add).unwrap();
    assert!(acc.inputs.contains(&g.siblings(ce_loss)[1]) && acc.inputs.contains(&sc.outputs[0]));

    let before = g.values().len();
    let ups = append_optimizer(&mut g, &grads.params, &Optimizer::adam()).unwrap();
    assert_eq!(ups.len(), grads.params.len());
    assert_eq!(g.values().len() - before, 2 * grads.params.len());
    assert!(g.find("head.weight.exp_avg_sq").is_some());
    assert!(matches!(g.node(ups[0]).op, Op::AdamUpdate(_)));
    assert_eq!(g.node(ups[0]).op.mutates(), &[0, 2, 3]);
}

#[test]
fn backward_errors() {
    let (mut g, _, _, loss) = skip_net();
    let logits = g.node(g.producer(loss).unwrap()).inputs[0];
    assert!(backward(&mut g, logits)
        .unwrap_err()
        .to_string()
        .contains("scalar"));
    // A loss may reach the objective only through Add and Scale.
    let r = g.relu(loss).unwrap();
    let e = backward(&mut g, r).unwrap_err().to_string();
    assert!(e.contains("Relu") && e.contains("constant gradient"), "{e}");
}

#[test]
fn split_gradient_fills_zeros() {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new4(1, 2, 5, 5)).unwrap();
    let labels = g
        .label("labels", Shape::new4(1, 1, 5, 5), DType::I32)
        .unwrap();
    let h = g
        .conv_layer("c", x, 5, Window::cube(2, 1, 1, 0), false)
        .unwrap();
    let parts = g.split(h, &[2, 3]).unwrap();
    let loss = g
        .softmax_cross_entropy(parts[1], labels, None, ce())
        .unwrap();
    let n_fwd = g.nodes().len();
    let grads = backward(&mut g, loss).unwrap();
    let bwd = &g.nodes()[n_fwd..];
    assert!(bwd.iter().any(|n| n.op
        == Op::Zeros(ZerosAttrs {
            shape: Shape::new4(1, 2, 5, 5),
            dtype: DType::F32
        })));
    assert!(bwd.iter().any(|n| n.op == Op::Concat));
    assert_eq!(grads.params.len(), 1);
}

#[test]
fn dtypes_follow_the_slot_roles() {
    assert!(is_activation_dtype(DType::F32) && !is_activation_dtype(DType::I32));
    assert!(is_activation_dtype(DType::F16) && is_differentiable_dtype(DType::F16));
    assert!(is_differentiable_dtype(DType::F32) && !is_differentiable_dtype(DType::U32));
    let mut g = Graph::new();
    let xs = Shape::new4(1, 2, 4, 4);
    // Activation slots take an activation dtype, parameter slots F32.
    let xi = g.input_typed("xi", xs, DType::I32).unwrap();
    let e = g.relu(xi).unwrap_err().to_string();
    assert!(
        e.contains("Relu") && e.contains("input 1x2x4x4 has dtype I32, expected an activation"),
        "{e}"
    );
    let x = g.input("x", xs).unwrap();
    let w = g
        .input_typed("w", Shape::new4(3, 2, 1, 1), DType::U32)
        .unwrap();
    let e = g
        .conv(x, w, None, Window::cube(2, 1, 1, 0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("weight 3x2x1x1 has dtype U32, expected F32"),
        "{e}"
    );
    // Act slots need N, C, (D), H, W; elementwise (Any) slots take any rank.
    let v = g.input("v", Shape::vector(4)).unwrap();
    let e = g
        .max_pool(v, Window::cube(2, 2, 2, 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("input 4 must be NxCxHxW"), "{e}");
    assert!(g.relu(v).is_ok());
    // Output dtypes come from the output slots.
    let (y, idx) = g.max_pool(x, Window::cube(2, 2, 2, 0)).unwrap();
    assert_eq!(g.value(y).dtype, DType::F32);
    assert_eq!(g.value(idx).dtype, DType::U32);
    assert_eq!(Role::Act.output_dtype(DType::F32), DType::F32);
    assert_eq!(Role::F32.output_dtype(DType::I32), DType::F32);
}

/// A net through every op family (conv, norm, activation, pool, unpool,
/// upsample, tensor plumbing, both losses) on an input of dtype `act`, with
/// its backward and an SGD update. 2D (`dims` 2) or 3D.
fn every_family_net(dims: usize, act: DType) -> (Graph, Gradients) {
    // Sizes and factors have D = 1 in 2D, pads D = 0.
    let sp = |d: usize, h: usize, w: usize| if dims == 3 { [d, h, w] } else { [1, h, w] };
    let pads = |d: usize, h: usize, w: usize| if dims == 3 { [d, h, w] } else { [0, h, w] };
    let shape = |n: usize, c: usize, s: [usize; 3]| {
        if dims == 3 {
            Shape::new5(n, c, s[0], s[1], s[2])
        } else {
            Shape::new4(n, c, s[1], s[2])
        }
    };
    let full = sp(4, 12, 10);
    let mut g = Graph::new();
    let x = g.input_typed("x", shape(2, 3, full), act).unwrap();
    let h = g
        .conv_layer("c1", x, 6, Window::cube(dims, 3, 1, 1), true)
        .unwrap();
    let bn = BatchNormAttrs {
        training: true,
        momentum: 0.1,
        eps: 1e-5,
    };
    let h = g.batch_norm_layer("bn", h, bn).unwrap();
    let h = g.relu(h).unwrap();
    let (p, idx) = g.max_pool(h, Window::cube(dims, 2, 2, 0)).unwrap();
    let a = g.avg_pool(h, Window::cube(dims, 2, 2, 0), false).unwrap();
    let s = g.add(p, a).unwrap();
    let s = g.group_norm_layer("gn", s, 3, 1e-5).unwrap();
    let s = g.leaky_relu(s, 0.01).unwrap();
    let s = g.instance_norm_layer("in", s, 1e-5).unwrap();
    let s = g.sigmoid(s).unwrap();
    let s = g.dropout(s, 0.2, 7).unwrap();
    let un = g.max_unpool(s, idx, full).unwrap();
    let up = g.upsample(s, UpsampleMode::Linear, sp(2, 2, 2)).unwrap();
    let cat = g.concat(&[un, up]).unwrap();
    // Part 1 of the split is unused: its gradient is a Zeros of the act dtype.
    let parts = g.split(cat, &[8, 4]).unwrap();
    let padded = g
        .pad(parts[0], pads(1, 1, 1), pads(1, 2, 1), PadMode::Reflect)
        .unwrap();
    let cropped = g.center_crop(padded, full).unwrap();
    let cropped = g.scale(cropped, 0.5).unwrap();
    let t = g
        .conv_transpose_layer("up", cropped, 4, Window::cube(dims, 2, 2, 0), true)
        .unwrap();
    let t = g.avg_pool(t, Window::cube(dims, 2, 2, 0), true).unwrap();
    let logits = g
        .conv_layer("head", t, 3, Window::cube(dims, 1, 1, 0), false)
        .unwrap();
    let ls = shape(2, 1, full);
    let labels = g.label("labels", ls, DType::I32).unwrap();
    let wmap = g.label("wmap", ls, DType::F32).unwrap();
    let ce_loss = g
        .softmax_cross_entropy(logits, labels, Some(wmap), ce())
        .unwrap();
    let dice = g
        .dice_loss(
            logits,
            labels,
            DiceAttrs {
                smooth: 1.0,
                batch_dice: false,
                ignore_label: None,
                include_background: true,
            },
        )
        .unwrap();
    let half = g.scale(dice, 0.5).unwrap();
    let total = g.add(ce_loss, half).unwrap();
    let grads = backward(&mut g, total).unwrap();
    append_optimizer(&mut g, &grads.params, &Optimizer::sgd(0.99)).unwrap();
    (g, grads)
}

#[test]
fn f16_input_gives_f16_activations_and_f32_parameter_gradients() {
    for dims in [2, 3] {
        let (f32_net, _) = every_family_net(dims, DType::F32);
        let (g, grads) = every_family_net(dims, DType::F16);
        // The same nodes and shapes in both precisions.
        assert_eq!(g.nodes().len(), f32_net.nodes().len());
        // Every output takes its dtype from its slot: activations (and their
        // gradients) F16, statistics, parameter gradients and losses F32.
        let mut act_values = 0;
        for n in g.nodes() {
            let spec = n.op.spec();
            for (i, o) in n.outputs.iter().enumerate() {
                let v = g.value(*o);
                let want = match spec.outputs.get(i).map(|s| s.role) {
                    Some(Role::Act) => DType::F16,
                    // Elementwise ops on the loss scalars stay F32.
                    Some(Role::Any) if v.shape.numel() == 1 => DType::F32,
                    Some(Role::Any) => DType::F16,
                    Some(Role::F32) => DType::F32,
                    Some(Role::F16) => DType::F16,
                    Some(Role::Indices) => DType::U32,
                    Some(Role::Labels) => DType::I32,
                    None => panic!("{}: no slot {i}", n.name),
                };
                assert_eq!(v.dtype, want, "{} output {i} ({})", n.name, v.name);
                act_values += (want == DType::F16) as usize;
            }
        }
        assert!(act_values > 40, "{dims}D: {act_values} F16 values");
        // Every trainable parameter has an F32 gradient of its own shape.
        assert!(grads.unused.is_empty());
        assert_eq!(grads.params.len(), g.trainable_params().len());
        for (p, gr) in &grads.params {
            assert_eq!(g.value(*gr).dtype, DType::F32, "{}", g.value(*gr).name);
            assert_eq!(g.shape(*gr), g.shape(*p));
        }
        // The backward of every family is there, in F16 where it is an activation.
        for name in [
            "ConvGradInput",
            "ConvGradWeight",
            "BiasGrad",
            "ConvTransposeGradInput",
            "ConvTransposeGradWeight",
            "BatchNormGrad",
            "GroupNormGrad",
            "InstanceNormGrad",
            "ReluGrad",
            "LeakyReluGrad",
            "SigmoidGrad",
            "DropoutGrad",
            "MaxPoolGrad",
            "AvgPoolGrad",
            "MaxUnpoolGrad",
            "UpsampleGrad",
            "Split",
            "Concat",
            "Zeros",
            "PadGrad",
            "CenterCropGrad",
            "Scale",
            "Add",
            "SgdUpdate",
        ] {
            assert!(
                g.nodes()[grads.first_node.0..]
                    .iter()
                    .any(|n| n.op.name() == name),
                "{dims}D: no {name} in the backward"
            );
        }
        let zeros = g.nodes().iter().find(|n| matches!(n.op, Op::Zeros(_)));
        match zeros.map(|n| &n.op) {
            Some(Op::Zeros(a)) => assert_eq!(a.dtype, DType::F16),
            _ => panic!("no Zeros"),
        }
    }
}

#[test]
fn mixed_activation_dtypes_are_rejected() {
    let mut g = Graph::new();
    let xs = Shape::new4(2, 3, 5, 7);
    let a = g.input_typed("a", xs, DType::F16).unwrap();
    let b = g.input("b", xs).unwrap();
    let e = g.add(a, b).unwrap_err().to_string();
    assert!(
        e.contains("Add") && e.contains("a 2x3x5x7 (F16) and b 2x3x5x7 (F32) must have one dtype"),
        "{e}"
    );
    let e = g.concat(&[a, b]).unwrap_err().to_string();
    assert!(e.contains("must have one dtype"), "{e}");
    // A parameter stays F32 whatever the activations are.
    let w = g
        .input_typed("w", Shape::new4(4, 3, 1, 1), DType::F16)
        .unwrap();
    let e = g
        .conv(a, w, None, Window::cube(2, 1, 1, 0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("weight 4x3x1x1 has dtype F16, expected F32"),
        "{e}"
    );
    // Zeros must be of an activation dtype.
    let z = Op::Zeros(ZerosAttrs {
        shape: xs,
        dtype: DType::U32,
    });
    let e = g.add_node(z, &[]).unwrap_err().to_string();
    assert!(e.contains("U32 is not an activation dtype"), "{e}");
}

#[test]
fn eval_batch_norm_has_no_backward_and_no_statistics() {
    let eval = BatchNormAttrs {
        training: false,
        momentum: 0.1,
        eps: 1e-5,
    };
    let mut g = Graph::new();
    let x = g.input("x", Shape::new4(2, 3, 4, 4)).unwrap();
    let y = g.batch_norm_layer("bn", x, eval).unwrap();
    let head = g
        .conv_layer("head", y, 2, Window::cube(2, 1, 1, 0), false)
        .unwrap();
    let labels = g
        .label("labels", Shape::new4(2, 1, 4, 4), DType::I32)
        .unwrap();
    let loss = g.softmax_cross_entropy(head, labels, None, ce()).unwrap();
    check_kernel_ops(&g).unwrap();
    let e = backward(&mut g.clone(), loss).unwrap_err().to_string();
    assert!(
        e.contains("BatchNormGrad") && e.contains("eval-mode batch norm"),
        "{e}"
    );
    // Its saved statistics are not computed, so nothing may read them.
    g.relu(g.siblings(y)[1]).unwrap();
    let e = check_kernel_ops(&g).unwrap_err().to_string();
    assert!(e.contains("BatchNorm") && e.contains("'bn'"), "{e}");
}

#[test]
fn spec_table_is_consistent() {
    // Arity and outputs follow the attributes; in-place and mutated inputs exist.
    let conv = |bias| {
        Op::Conv(ConvAttrs {
            window: Window::cube(2, 3, 1, 1),
            bias,
        })
    };
    assert_eq!(conv(true).num_inputs(), ops::Arity::Exactly(3));
    assert_eq!(conv(false).num_inputs(), ops::Arity::Exactly(2));
    let split = Op::Split(SplitAttrs {
        sizes: vec![1, 2, 3],
    });
    assert_eq!(split.num_outputs(), 3);
    assert_eq!(Op::Concat.num_inputs(), ops::Arity::AtLeast(2));
    let sgd = |momentum| {
        Op::SgdUpdate(SgdAttrs {
            momentum,
            nesterov: false,
            weight_decay: 0.0,
            amp: false,
        })
    };
    assert_eq!(sgd(0.9).mutates(), &[0, 2]);
    assert_eq!(sgd(0.0).mutates(), &[0]);
    assert_eq!(sgd(0.0).num_inputs(), ops::Arity::Exactly(2));
    let bn = |training| {
        Op::BatchNorm(BatchNormAttrs {
            training,
            momentum: 0.1,
            eps: 1e-5,
        })
    };
    assert_eq!(bn(true).mutates(), &[3, 4]);
    assert!(bn(false).mutates().is_empty());
    assert_eq!(Op::ReluGrad.in_place_inputs(), &[0, 1]);
    assert!(Op::ReluGrad.is_backward() && !Op::Relu.is_backward());
    assert!(sgd(0.9).is_backward() && sgd(0.9).num_outputs() == 0);
    assert_eq!(Op::Relu.name(), "Relu");
}

/// `ConvRelu` (what `graph::fuse` leaves for `Conv -> Relu`) differentiates as the pair:
/// a `ReluGrad` masked by its own output, read by the conv's weight and bias gradients.
#[test]
fn conv_relu_gradient_is_the_pairs() {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new4(1, 2, 6, 5)).unwrap();
    let labels = g
        .label("labels", Shape::new4(1, 1, 6, 5), DType::I32)
        .unwrap();
    let win = Window::cube(2, 3, 1, 1);
    let w = g
        .param("w", Shape::new4(2, 2, 3, 3), Init::Normal { std: 0.1 })
        .unwrap();
    let b = g
        .param("b", Shape::vector(2), Init::Normal { std: 0.1 })
        .unwrap();
    let op = Op::ConvRelu(ConvAttrs {
        window: win,
        bias: true,
    });
    let y = g.add_node(op, &[x, w, b]).unwrap()[0];
    let loss = g.softmax_cross_entropy(y, labels, None, ce()).unwrap();
    let n_fwd = g.nodes().len();
    backward(&mut g, loss).unwrap();
    let grads = &g.nodes()[n_fwd..];
    let relu_grad = grads
        .iter()
        .find(|n| n.op == Op::ReluGrad)
        .expect("ReluGrad");
    assert_eq!(relu_grad.inputs[1], y, "masked by the fused output");
    let dy = relu_grad.outputs[0];
    for want in ["ConvGradWeight", "BiasGrad"] {
        let n = grads.iter().find(|n| n.op.name() == want).expect(want);
        assert!(n.inputs.contains(&dy), "{want} reads the masked gradient");
    }
    check_kernel_ops(&g).unwrap();
}
