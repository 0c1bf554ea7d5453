//! U-Net builders: parameter counts and output shapes of the presets, the
//! golden parameter names, training graphs for every option, and the
//! `wunet model` / `wunet plan` commands. No GPU needed.

use clap::Parser;
use wunet::cli::model::{build_plan, model_report, plan_report, ModelArgs, PlanArgs};
use wunet::graph::{backward, init_graph, Op, ValueKind};
use wunet::models::*;
use wunet::shape::Shape;

#[derive(Parser)]
struct ModelCli {
    #[command(flatten)]
    a: ModelArgs,
}

#[derive(Parser)]
struct PlanCli {
    #[command(flatten)]
    a: PlanArgs,
}

fn model_args(s: &str) -> ModelArgs {
    ModelCli::parse_from(std::iter::once("model").chain(s.split_whitespace())).a
}

fn plan_args(s: &str) -> PlanArgs {
    PlanCli::parse_from(std::iter::once("plan").chain(s.split_whitespace())).a
}

#[test]
fn ronneberger2015_count_and_shape() {
    let net = build_unet(
        &UNetConfig::ronneberger2015(),
        1,
        &[572, 572],
        &Mode::Inference,
    )
    .unwrap();
    let c = param_counts(&net.graph);
    assert_eq!(c.total, 31_030_658);
    assert_eq!(c.norm_affine, 0);
    assert_eq!(net.graph.shape(net.logits), Shape::new4(1, 2, 388, 388));
    let cfg = UNetConfig::ronneberger2015();
    assert_eq!(cfg.axis_out(572), Some((388, true)));
    assert_eq!(cfg.axis_out(574), Some((388, false)));
    assert_eq!(cfg.seamless_input(573), Some(588));
    assert_eq!(cfg.axis_out(60), None);
    assert_eq!(UNetConfig::cicek2016().axis_out(116), Some((28, true)));
    // Dropout only in training graphs.
    assert!(!net
        .graph
        .nodes()
        .iter()
        .any(|n| matches!(n.op, Op::Dropout(_))));
}

#[test]
fn cicek2016_count_and_shape() {
    let net = build_unet(
        &UNetConfig::cicek2016(),
        1,
        &[132, 132, 116],
        &Mode::Inference,
    )
    .unwrap();
    let c = param_counts(&net.graph);
    assert_eq!(c.total - c.norm_affine, 19_069_955);
    assert_eq!(c.norm_affine, 4_672);
    assert_eq!(c.total, 19_074_627);
    assert_eq!(net.graph.shape(net.logits), Shape::new5(1, 3, 44, 44, 28));
    // Up-convolutions keep the channels and have no bias.
    assert_eq!(
        net.graph.shape(net.graph.find("up2.weight").unwrap()),
        Shape::new5(512, 512, 2, 2, 2)
    );
    assert!(net.graph.find("up2.bias").is_none());
    // Inference graphs use batch norm in eval mode.
    assert!(net
        .graph
        .nodes()
        .iter()
        .all(|n| !matches!(n.op, Op::BatchNorm(a) if a.training)));
}

#[test]
fn golden_parameter_names() {
    let cfg = UNetConfig {
        base: 4,
        depth: 2,
        padding: Padding::Same,
        norm: Norm::Batch,
        conv_bias: true,
        upconv_bias: true,
        dropout: 0.0,
        ..UNetConfig::ronneberger2015()
    };
    let net = build_unet(&cfg, 1, &[16, 16], &Mode::Inference).unwrap();
    let g = &net.graph;
    let names: Vec<&str> = g
        .params()
        .iter()
        .map(|p| g.value(*p).name.as_str())
        .collect();
    let block = |b: &str| -> Vec<String> {
        [
            "conv1.weight",
            "conv1.bias",
            "bn1.weight",
            "bn1.bias",
            "conv2.weight",
            "conv2.bias",
            "bn2.weight",
            "bn2.bias",
        ]
        .iter()
        .map(|s| format!("{b}.{s}"))
        .collect()
    };
    let mut want: Vec<String> = Vec::new();
    want.extend(block("enc0"));
    want.extend(block("enc1"));
    want.extend(block("bottom"));
    want.extend(["up1.weight".to_string(), "up1.bias".to_string()]);
    want.extend(block("dec1"));
    want.extend(["up0.weight".to_string(), "up0.bias".to_string()]);
    want.extend(block("dec0"));
    want.extend(["head.weight".to_string(), "head.bias".to_string()]);
    assert_eq!(names, want);
    let sh = |n: &str| g.shape(g.find(n).unwrap());
    assert_eq!(sh("enc0.conv1.weight"), Shape::new4(4, 1, 3, 3));
    assert_eq!(sh("enc1.conv1.weight"), Shape::new4(8, 4, 3, 3));
    assert_eq!(sh("bottom.conv2.weight"), Shape::new4(16, 16, 3, 3));
    assert_eq!(sh("up1.weight"), Shape::new4(16, 8, 2, 2));
    assert_eq!(sh("dec1.conv1.weight"), Shape::new4(8, 16, 3, 3));
    assert_eq!(sh("up0.weight"), Shape::new4(8, 4, 2, 2));
    assert_eq!(sh("dec0.conv1.weight"), Shape::new4(4, 8, 3, 3));
    assert_eq!(sh("head.weight"), Shape::new4(2, 4, 1, 1));
    assert!(matches!(
        g.value(g.find("enc0.bn1.running_var").unwrap()).kind,
        ValueKind::State { .. }
    ));
    assert_eq!(g.shape(net.logits), Shape::new4(1, 2, 16, 16));
    // Skip first in the concat.
    let cat = g.nodes().iter().find(|n| n.name == "dec0.concat1").unwrap();
    assert_eq!(
        g.producer(cat.inputs[1]).map(|n| g.node(n).name.as_str()),
        Some("up0")
    );
}

#[test]
fn training_graphs_for_every_option() {
    let base = UNetConfig {
        base: 4,
        depth: 2,
        ..UNetConfig::ronneberger2015()
    };
    let cfgs = vec![
        (base.clone(), vec![44, 52]),
        (
            UNetConfig {
                padding: Padding::Same,
                norm: Norm::Batch,
                residual: true,
                ..base.clone()
            },
            vec![13, 18],
        ),
        (
            UNetConfig {
                norm: Norm::Instance,
                act: Act::LeakyRelu(0.1),
                upsample: Upsampling::LinearConv,
                ..base.clone()
            },
            vec![44, 44],
        ),
        (
            UNetConfig {
                norm: Norm::Group(2),
                channels: ChannelScheme::Cicek,
                residual: true,
                ..base.clone()
            },
            vec![44, 60],
        ),
        (
            UNetConfig {
                base: 2,
                depth: 1,
                ..UNetConfig::cicek2016()
            },
            vec![20, 22, 24],
        ),
    ];
    for (cfg, sp) in cfgs {
        let net = build_unet(&cfg, 2, &sp, &Mode::Training(Loss::cross_entropy()))
            .unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
        let mut g = net.graph.clone();
        let grads = backward(&mut g, net.loss.unwrap()).unwrap();
        assert!(grads.unused.is_empty(), "{cfg:?}");
        assert_eq!(grads.params.len(), g.trainable_params().len());
        // One gradient per parameter, each of the parameter's shape.
        for (p, gr) in &grads.params {
            assert_eq!(g.shape(*p).dims, g.shape(*gr).dims, "{}", g.value(*p).name);
        }
        // No backward node for the data input.
        let dx_of_input = g
            .nodes()
            .iter()
            .any(|n| matches!(n.op, Op::ConvGradInput(a) if a.input == g.shape(net.input)));
        assert!(!dx_of_input, "gradient of the input data emitted");
    }
}

#[test]
fn dice_ce_with_weight_map() {
    let cfg = UNetConfig {
        base: 4,
        depth: 1,
        padding: Padding::Same,
        ..UNetConfig::ronneberger2015()
    };
    let ce = wunet::graph::ops::CrossEntropyAttrs {
        class_weights: Some(vec![1.0, 3.0]),
        weight_map: true,
        ignore_label: Some(255),
        reduction: wunet::graph::ops::Reduction::WeightedMean,
    };
    let dice = wunet::graph::ops::DiceAttrs {
        smooth: 1.0,
        batch_dice: true,
        ignore_label: None,
        include_background: true,
    };
    let net = build_unet(
        &cfg,
        1,
        &[8, 8],
        &Mode::Training(Loss::DiceCe {
            ce,
            dice,
            dice_weight: 0.5,
        }),
    )
    .unwrap();
    assert!(net.weight_map.is_some() && net.labels.is_some());
    let mut g = net.graph;
    let grads = backward(&mut g, net.loss.unwrap()).unwrap();
    assert_eq!(grads.params.len(), g.trainable_params().len());
}

#[test]
fn init_is_deterministic() {
    let cfg = UNetConfig {
        base: 4,
        depth: 2,
        norm: Norm::Batch,
        ..UNetConfig::ronneberger2015()
    };
    let net = build_unet(&cfg, 1, &[44, 44], &Mode::Inference).unwrap();
    let a = init_graph(&net.graph, 3);
    let b = init_graph(&net.graph, 3);
    assert_eq!(a, b);
    let g = &net.graph;
    for (v, vals) in &a {
        let name = &g.value(*v).name;
        assert_eq!(vals.len(), g.shape(*v).numel());
        if name.ends_with(".bias") || name.ends_with("running_mean") {
            assert!(vals.iter().all(|&x| x == 0.0), "{name}");
        } else if name.ends_with("running_var") || name.contains(".bn") {
            assert!(vals.iter().all(|&x| x == 1.0), "{name}");
        } else {
            assert!(vals.iter().any(|&x| x != 0.0), "{name}");
        }
    }
}

#[test]
fn model_command() {
    let out = model_report(&model_args("unet2d")).unwrap();
    assert_eq!(out.lines().last(), Some("parameters: 31030658"));
    assert!(out.contains("1x2x388x388"));
    let out = model_report(&model_args("unet3d --preset cicek2016")).unwrap();
    assert_eq!(out.lines().last(), Some("parameters: 19074627"));
    assert!(out.contains("parameters without norm affine: 19069955"));
    assert!(out.contains("1x3x44x44x28"));
    let out = model_report(&model_args("unet2d --base 4 --depth 2 --padding same --norm instance --act leaky --upsample linear --input 32x48 --batch 3")).unwrap();
    assert!(out.contains("3x2x32x48"), "{out}");
    assert!(model_report(&model_args("unet2d --preset cicek2016")).is_err());
    assert!(model_report(&model_args("unet3d --input 64x64")).is_err());
    // The binary prints the same.
    let bin = std::process::Command::new(env!("CARGO_BIN_EXE_wunet"))
        .args(["model", "unet2d"])
        .output()
        .unwrap();
    assert!(bin.status.success());
    assert_eq!(
        String::from_utf8_lossy(&bin.stdout).lines().last(),
        Some("parameters: 31030658")
    );
}

#[test]
fn plan_command_shows_a_saving() {
    let a = plan_args(
        "unet2d --base 32 --depth 4 --padding same --norm batch --input 256x256 --in-channels 1 --batch 2 --train",
    );
    let (net, p) = build_plan(&a).unwrap();
    assert_eq!(net.graph.shape(net.input), Shape::new4(2, 1, 256, 256));
    let r = &p.report;
    assert!(r.planned_bytes < r.unplanned_bytes / 2, "{r}");
    assert!(r.planned_bytes >= r.peak_live_bytes);
    assert_eq!(
        r.optimizer_state_bytes, r.trainable_param_bytes,
        "SGD momentum: one buffer per parameter"
    );
    let text = plan_report(&a).unwrap();
    for want in [
        "parameter bytes",
        "optimizer-state bytes",
        "without planner",
        "with planner",
        "largest tensor",
        "saving",
    ] {
        assert!(text.contains(want), "{text}");
    }
    // Largest tensor: the 2x64x256x256 concat of level 0.
    assert_eq!(r.largest.as_ref().unwrap().bytes, 2 * 64 * 256 * 256 * 4);
    // A tiny binding limit fails before any GPU work, naming the node.
    let e = build_plan(&plan_args(
        "unet2d --base 8 --depth 2 --padding same --input 64x64 --max-binding-bytes 65536",
    ))
    .unwrap_err();
    assert!(
        e.to_string().contains("enc0.conv1") && e.to_string().contains("65536"),
        "{e}"
    );
}
