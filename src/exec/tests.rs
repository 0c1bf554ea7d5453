//! Planner tests: no two values live at the same time share memory (property
//! test over seeded random DAGs), the plan reduces the peak, schedules respect
//! in-place updates, and oversize tensors are rejected before any GPU work.

use super::plan::*;
use crate::graph::ops::{CrossEntropyAttrs, Reduction};
use crate::graph::*;
use crate::shape::{DType, Shape, Window};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn ce() -> CrossEntropyAttrs {
    CrossEntropyAttrs {
        class_weights: None,
        weight_map: false,
        ignore_label: None,
        reduction: Reduction::Mean,
    }
}

/// Check every invariant of `p` for `g`.
fn verify(g: &Graph, p: &Plan, opts: &PlanOptions) {
    // Schedule: a permutation in which every input is written before it is read.
    let mut pos = vec![usize::MAX; g.nodes().len()];
    for (i, n) in p.schedule.iter().enumerate() {
        assert_eq!(pos[n.0], usize::MAX, "node scheduled twice");
        pos[n.0] = i;
    }
    assert!(pos.iter().all(|&x| x != usize::MAX));
    for (i, n) in g.nodes().iter().enumerate() {
        for v in &n.inputs {
            if let Some(prod) = g.producer(*v) {
                assert!(
                    pos[prod.0] < pos[i],
                    "{} read before written",
                    g.value(*v).name
                );
            }
        }
        // In-place updates run after every other reader of the updated value.
        let consumers = g.consumers();
        for &m in n.op.mutates() {
            for (c, _) in &consumers[n.inputs[m].0] {
                if c.0 < i {
                    assert!(
                        pos[c.0] < pos[i],
                        "'{}' updated before '{}' reads it",
                        g.value(n.inputs[m]).name,
                        g.node(*c).name
                    );
                }
            }
        }
    }
    // Families: values tied by channel slices, in-place pairs and aliases (root index).
    let family = slice_families(g, p);
    // Placement: persistent exactly for non-activations and kept outputs.
    let planned: Vec<ValueId> = g
        .ids()
        .filter(|v| matches!(p.placement[v.0], Placement::Arena { .. }))
        .collect();
    for v in g.ids() {
        let want = g.producer(v).is_some() && !opts.keep.contains(&v);
        assert_eq!(
            matches!(p.placement[v.0], Placement::Arena { .. }),
            want,
            "{}",
            g.value(v).name
        );
        assert_eq!(p.live[v.0].is_some(), want);
    }
    let al = opts.alignment;
    let range = |v: ValueId| match p.placement[v.0] {
        Placement::Arena {
            arena,
            offset,
            bytes,
        } => (arena, offset, offset + bytes),
        Placement::Persistent => unreachable!(),
    };
    for &v in &planned {
        let (a, s, e) = range(v);
        assert!(s.is_multiple_of(al));
        assert!(e - s >= g.value(v).bytes());
        assert!(e <= p.arenas[a], "outside arena");
        let tied = family.iter().filter(|&&r| r == family[v.0]).count() > 1;
        if opts.strategy == Strategy::SharedBuffers && !tied {
            assert_eq!(s, 0);
        }
    }
    let in_place = |a: ValueId, b: ValueId| {
        p.in_place
            .iter()
            .any(|&(_, o, i)| (o == a && i == b) || (o == b && i == a))
    };
    verify_slices(g, p, &range);
    for (k, &a) in planned.iter().enumerate() {
        for &b in &planned[k + 1..] {
            let (la, lb) = (p.live[a.0].unwrap(), p.live[b.0].unwrap());
            let ((aa, sa, ea), (ab, sb, eb)) = (range(a), range(b));
            let share = aa == ab && sa < eb && sb < ea;
            // Inclusive intervals (computed here, not with Interval::overlaps).
            let overlap = la.def <= lb.last && lb.def <= la.last;
            let nested = (sa <= sb && eb <= ea) || (sb <= sa && ea <= eb);
            if overlap && share && !in_place(a, b) && family[a.0] == family[b.0] {
                // Channel slices and what shares their place: nested, never partial.
                assert!(
                    nested,
                    "'{}' and '{}' overlap partly",
                    g.value(a).name,
                    g.value(b).name
                );
            } else if overlap && share {
                assert!(
                    in_place(a, b) && (la.last == lb.def || lb.last == la.def),
                    "'{}' {la:?} and '{}' {lb:?} overlap in time and memory",
                    g.value(a).name,
                    g.value(b).name
                );
            }
        }
    }
    for &(n, o, i) in &p.in_place {
        assert_eq!(p.live[i.0].unwrap().last, pos[n.0]);
        assert_eq!(p.live[o.0].unwrap().def, pos[n.0]);
        assert!(g
            .node(n)
            .op
            .in_place_inputs()
            .iter()
            .any(|&s| g.node(n).inputs[s] == i));
    }
    let r = &p.report;
    assert!(
        r.planned_bytes >= r.peak_live_bytes,
        "below the lower bound"
    );
    if let Some(m) = opts.max_arena_bytes {
        assert!(p.arenas.iter().all(|&a| a <= m));
    }
}

/// Union of the values tied to a channel slice (the whole, its parts, and whatever
/// shares their place in place or as an alias): each value's root; untied values are
/// their own root.
fn slice_families(g: &Graph, p: &Plan) -> Vec<usize> {
    fn find(r: &mut [usize], mut v: usize) -> usize {
        while r[v] != v {
            r[v] = r[r[v]];
            v = r[v];
        }
        v
    }
    let mut root: Vec<usize> = (0..g.values().len()).collect();
    let mut tied = vec![false; root.len()];
    let unite = |r: &mut Vec<usize>, t: &mut Vec<bool>, a: usize, b: usize| {
        let (ra, rb) = (find(r, a), find(r, b));
        r[ra.max(rb)] = ra.min(rb);
        t[a] = true;
        t[b] = true;
    };
    for (_, whole, parts) in &p.slices {
        for part in parts {
            unite(&mut root, &mut tied, whole.0, part.0);
        }
    }
    // In-place pairs and aliases in schedule order, so chains over a slice are followed.
    for &nid in &p.schedule {
        let n = g.node(nid);
        let mut pairs: Vec<(usize, usize)> = p
            .in_place
            .iter()
            .filter(|e| e.0 == nid)
            .map(|e| (e.1 .0, e.2 .0))
            .collect();
        if n.op.is_alias() && p.live[n.outputs[0].0].is_some() {
            pairs.push((n.outputs[0].0, n.inputs[0].0));
        }
        for (o, i) in pairs {
            if tied[i] || tied[o] {
                unite(&mut root, &mut tied, o, i);
            }
        }
    }
    (0..root.len()).map(|v| find(&mut root, v)).collect()
}

/// Every slice: batch 1, the parts at consecutive offsets inside the whole, the whole
/// planned; the slice count in the report.
fn verify_slices(g: &Graph, p: &Plan, range: &dyn Fn(ValueId) -> (usize, u64, u64)) {
    assert_eq!(p.report.slices, p.slices.len());
    for (n, whole, parts) in &p.slices {
        assert!(matches!(g.node(*n).op, Op::Concat | Op::Split(_)));
        assert_eq!(g.shape(*whole).n(), 1);
        let (a, mut at, end) = range(*whole);
        for part in parts {
            let (pa, s, _) = range(*part);
            assert_eq!(
                (pa, s),
                (a, at),
                "'{}' not at its slice",
                g.value(*part).name
            );
            at += g.value(*part).bytes();
        }
        assert!(at <= end);
    }
}

/// A random DAG: 1x1 convs, relus, adds, concats, pools, crops and a CE loss.
fn random_graph(seed: u64, train: bool) -> (Graph, ValueId) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut g = Graph::new();
    let (h, w) = (rng.random_range(6..12usize), rng.random_range(6..12usize));
    // Batch 1 for half the seeds: the concatenations are then planned as channel slices.
    let n = 1 + (seed / 2) as usize % 2;
    let x = g
        .input("x", Shape::new4(n, rng.random_range(1..5), h, w))
        .unwrap();
    let mut pool = vec![x];
    let steps = rng.random_range(5..40);
    for i in 0..steps {
        let a = pool[rng.random_range(0..pool.len())];
        let sa = g.shape(a);
        let v = match rng.random_range(0..7) {
            0 | 1 => g
                .conv_layer(
                    &format!("c{i}"),
                    a,
                    rng.random_range(1..9),
                    Window::cube(2, 1, 1, 0),
                    rng.random(),
                )
                .unwrap(),
            2 => g.relu(a).unwrap(),
            3 => match pool.iter().copied().find(|&b| b != a && g.shape(b) == sa) {
                Some(b) => g.add(a, b).unwrap(),
                None => g.scale(a, 0.5).unwrap(),
            },
            4 => match pool
                .iter()
                .copied()
                .find(|&b| g.shape(b).spatial() == sa.spatial())
            {
                Some(b) => g.concat(&[a, b]).unwrap(),
                None => g.relu(a).unwrap(),
            },
            5 if sa.h() >= 4 && sa.w() >= 4 => g.max_pool(a, Window::cube(2, 2, 2, 0)).unwrap().0,
            _ if sa.h() > 2 => g.center_crop(a, [1, sa.h() - 1, sa.w()]).unwrap(),
            _ => g.relu(a).unwrap(),
        };
        pool.push(v);
    }
    let last = *pool.last().unwrap();
    let sl = g.shape(last);
    let logits = g
        .conv_layer("head", last, 3, Window::cube(2, 1, 1, 0), true)
        .unwrap();
    let labels = g.label("labels", sl.with_c(1), DType::I32).unwrap();
    let loss = g.softmax_cross_entropy(logits, labels, None, ce()).unwrap();
    if train {
        let grads = backward(&mut g, loss).unwrap();
        let opt = if seed.is_multiple_of(2) {
            Optimizer::sgd(0.9)
        } else {
            Optimizer::adam()
        };
        append_optimizer(&mut g, &grads.params, &opt).unwrap();
    }
    (g, loss)
}

#[test]
fn random_dags_never_share_live_memory() {
    let mut sliced = 0;
    for seed in 0..60u64 {
        let (g, loss) = random_graph(seed, seed % 3 != 0);
        for strategy in [Strategy::Arena, Strategy::SharedBuffers] {
            for in_place in [false, true] {
                let max_arena = if seed % 5 == 0 { Some(64 << 10) } else { None };
                let opts = PlanOptions {
                    alignment: [4, 256][seed as usize % 2],
                    in_place,
                    strategy,
                    keep: vec![loss],
                    max_arena_bytes: max_arena,
                    ..Default::default()
                };
                let p = plan(&g, &opts).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                verify(&g, &p, &opts);
                assert!(
                    p.report.planned_bytes <= align_sum(&g, &p, opts.alignment),
                    "seed {seed}"
                );
                sliced += p.slices.len();
            }
        }
    }
    assert!(sliced > 0, "no concatenation was planned as slices");
}

fn align_sum(g: &Graph, p: &Plan, al: u64) -> u64 {
    g.ids()
        .filter(|v| p.live[v.0].is_some())
        .map(|v| g.value(v).bytes().div_ceil(al) * al)
        .sum()
}

#[test]
fn chain_reuses_two_buffers() {
    let mut g = Graph::new();
    let mut x = g.input("x", Shape::new4(1, 8, 16, 16)).unwrap();
    for i in 0..10 {
        x = g
            .conv_layer(&format!("c{i}"), x, 8, Window::cube(2, 3, 1, 1), false)
            .unwrap();
    }
    let opts = PlanOptions {
        keep: vec![x],
        ..Default::default()
    };
    let p = plan(&g, &opts).unwrap();
    verify(&g, &p, &opts);
    let t = 8 * 16 * 16 * 4;
    assert_eq!(p.report.unplanned_bytes, 9 * t);
    assert_eq!(
        p.report.planned_bytes,
        2 * t,
        "ping-pong between two buffers"
    );
    assert_eq!(p.report.peak_live_bytes, 2 * t);
}

#[test]
fn elementwise_chain_runs_in_place() {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new4(2, 3, 10, 10)).unwrap();
    let mut y = g
        .conv_layer("c", x, 4, Window::cube(2, 3, 1, 1), true)
        .unwrap();
    for _ in 0..4 {
        y = g.relu(y).unwrap();
        y = g.scale(y, 2.0).unwrap();
    }
    let last = g.sigmoid(y).unwrap();
    let opts = PlanOptions {
        keep: vec![last],
        ..Default::default()
    };
    let p = plan(&g, &opts).unwrap();
    verify(&g, &p, &opts);
    let t = (2 * 4 * 10 * 10 * 4u64).div_ceil(256) * 256;
    assert_eq!(p.report.planned_bytes, t);
    assert_eq!(p.in_place.len(), 8);
    let p2 = plan(
        &g,
        &PlanOptions {
            in_place: false,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(p2.report.planned_bytes, 2 * t);
}

#[test]
fn updates_follow_their_gradient() {
    let (g, loss) = random_graph(4, true);
    let p = plan(
        &g,
        &PlanOptions {
            keep: vec![loss],
            ..Default::default()
        },
    )
    .unwrap();
    let pos: std::collections::HashMap<usize, usize> = p
        .schedule
        .iter()
        .enumerate()
        .map(|(i, n)| (n.0, i))
        .collect();
    for (i, n) in g.nodes().iter().enumerate() {
        if n.outputs.is_empty() {
            // The update runs right after the last of its dependencies.
            let grad_pos = pos[&g.producer(n.inputs[1]).unwrap().0];
            assert!(pos[&i] > grad_pos);
            assert!(
                pos[&i] <= grad_pos + 3,
                "update '{}' delayed: {} vs {grad_pos}",
                n.name,
                pos[&i]
            );
        }
    }
}

#[test]
fn oversize_tensor_is_an_error_naming_node_op_shape_limit() {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new4(1, 4, 64, 64)).unwrap();
    let y = g
        .conv_layer("enc0.conv1", x, 64, Window::cube(2, 3, 1, 1), true)
        .unwrap();
    let opts = PlanOptions {
        max_binding_bytes: 512 << 10,
        keep: vec![y],
        ..Default::default()
    };
    let e = plan(&g, &opts).unwrap_err().to_string();
    for want in ["enc0.conv1", "Conv", "1x64x64x64", "524288", "1048576"] {
        assert!(e.contains(want), "'{e}' lacks '{want}'");
    }
}

#[test]
fn unet_training_plans_are_valid() {
    use crate::models::*;
    let cfgs = [
        UNetConfig {
            base: 4,
            depth: 2,
            norm: Norm::Batch,
            residual: true,
            ..UNetConfig::ronneberger2015()
        },
        UNetConfig {
            base: 2,
            depth: 1,
            ..UNetConfig::cicek2016()
        },
    ];
    for (cfg, sp) in cfgs.iter().zip([vec![44, 52], vec![20, 22, 24]]) {
        let mut net = build_unet(cfg, 2, &sp, &Mode::Training(Loss::cross_entropy())).unwrap();
        let loss = net.loss.unwrap();
        let grads = backward(&mut net.graph, loss).unwrap();
        append_optimizer(&mut net.graph, &grads.params, &Optimizer::adam()).unwrap();
        for strategy in [Strategy::Arena, Strategy::SharedBuffers] {
            let opts = PlanOptions {
                keep: vec![loss],
                strategy,
                ..Default::default()
            };
            let p = plan(&net.graph, &opts).unwrap();
            verify(&net.graph, &p, &opts);
            assert!(p.report.planned_bytes < p.report.unplanned_bytes);
        }
    }
}

/// Batch 1: every skip concatenation and its gradient's split are channel slices (one
/// per level, each way), and the plan needs no more memory than without them; batch 2
/// copies as before.
#[test]
fn unet_concatenations_are_slices_at_batch_1() {
    use crate::models::*;
    let cfg = UNetConfig {
        base: 4,
        depth: 2,
        norm: Norm::Batch,
        padding: Padding::Same,
        ..UNetConfig::cicek2016()
    };
    for batch in [1, 2] {
        let mut net = build_unet(
            &cfg,
            batch,
            &[16, 12, 20],
            &Mode::Training(Loss::cross_entropy()),
        )
        .unwrap();
        let loss = net.loss.unwrap();
        let grads = backward(&mut net.graph, loss).unwrap();
        append_optimizer(&mut net.graph, &grads.params, &Optimizer::sgd(0.9)).unwrap();
        let with = |slices: bool| PlanOptions {
            keep: vec![loss],
            strategy: Strategy::SharedBuffers,
            in_place: false,
            slices,
            ..Default::default()
        };
        let p = plan(&net.graph, &with(true)).unwrap();
        verify(&net.graph, &p, &with(true));
        let plain = plan(&net.graph, &with(false)).unwrap();
        assert!(plain.slices.is_empty());
        let want = if batch == 1 { 2 * cfg.depth } else { 0 };
        assert_eq!(p.report.slices, want, "batch {batch}");
        assert!(
            p.report.planned_bytes <= plain.report.planned_bytes,
            "batch {batch}"
        );
    }
}
