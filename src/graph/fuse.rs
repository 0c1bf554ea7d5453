//! Fusion: a pure rewrite of a built graph (forward, backward and updates)
//! that folds memory-bound elementwise passes into their neighbours.
//!
//! Pattern (the U-Net's `conv -> batch norm -> relu` blocks):
//! - forward: `y = BatchNorm(x, ..)`, `z = Relu(y)` where `y` has no other
//!   reader becomes `y = BatchNormRelu(x, ..)` (the normalise kernel applies
//!   the ReLU before it stores) and `z = Identity(y)`;
//! - its backward pair: `g = ReluGrad(dz, z)`, `.. = BatchNormGrad(g, x, ..)`
//!   where `g` has no other reader becomes `g = Identity(dz)` and
//!   `.. = BatchNormReluGrad(g, x, .., z)` (the two batch-norm backward
//!   kernels mask `g` with `z > 0` as they load it).
//!
//! - `y = Conv(x, w, b)`, `z = Relu(y)` where `y` has no other reader becomes
//!   `y = ConvRelu(x, w, b)` (every conv forward kernel applies the ReLU as it
//!   stores, `kernels/precision/epilogue.wgsl`) and `z = Identity(y)`; its
//!   backward `ReluGrad(dz, z)` stays (three gradient ops read its output).
//!
//! `Identity` is an alias ([`super::ops::OpSpec::alias`]): the planner gives
//! its output its input's buffer and nothing is recorded, so a fused step
//! saves the ReLU pass, the ReLU-gradient pass and their buffers, while
//! every value and node keeps its id (callers' `ValueId`s stay valid).
//!
//! The fused ops compute exactly what the unfused pair does: the forward
//! stores `act(v > 0 ? v : 0)` of the value `v` the batch norm would have
//! stored and the ReLU would have read back (the same for f32 and for f16
//! storage: rounding keeps the sign), and the backward reads
//! `g = dz > 0 ? dz : 0` by the same `select` as `relu_bwd`. Values the
//! caller keeps are never fused away.

use super::ir::{Graph, NodeId, ValueId};
use super::ops::Op;
use crate::error::Result;

/// What [`fuse`] rewrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuseReport {
    /// Batch norms that now apply the ReLU (forward).
    pub bn_relu: usize,
    /// Batch-norm gradients that now apply the ReLU's mask (backward).
    pub bn_relu_grad: usize,
    /// Convolutions that now apply the ReLU as they store (forward).
    pub conv_relu: usize,
}

/// The fused graph of `g` (see the module docs); values in `keep` are read
/// by the caller and are never fused away.
pub fn fuse(g: &Graph, keep: &[ValueId]) -> Result<(Graph, FuseReport)> {
    let mut out = g.clone();
    let mut report = FuseReport::default();
    let consumers = g.consumers();
    for (i, n) in g.nodes().iter().enumerate() {
        let Op::BatchNorm(a) = n.op else { continue };
        let Some(relu) = sole_reader(g, &consumers, n.outputs[0], keep, &Op::Relu) else {
            continue;
        };
        let (y, z) = (n.outputs[0], g.node(relu).outputs[0]);
        out.rewrite_node(NodeId(i), Op::BatchNormRelu(a), &n.inputs)?;
        out.rewrite_node(relu, Op::Identity, &[y])?;
        report.bn_relu += 1;
        if let Some((relu_grad, bn_grad)) = backward_pair(g, &consumers, NodeId(i), z, keep) {
            let rg = g.node(relu_grad);
            let bg = g.node(bn_grad);
            let mut ins = bg.inputs.clone();
            ins.push(z);
            out.rewrite_node(relu_grad, Op::Identity, &[rg.inputs[0]])?;
            out.rewrite_node(bn_grad, Op::BatchNormReluGrad(a), &ins)?;
            report.bn_relu_grad += 1;
        }
    }
    for (i, n) in g.nodes().iter().enumerate() {
        let Op::Conv(a) = n.op else { continue };
        let Some(relu) = sole_reader(g, &consumers, n.outputs[0], keep, &Op::Relu) else {
            continue;
        };
        out.rewrite_node(NodeId(i), Op::ConvRelu(a), &n.inputs)?;
        out.rewrite_node(relu, Op::Identity, &[n.outputs[0]])?;
        report.conv_relu += 1;
    }
    Ok((out, report))
}

/// The node reading `v`, when it is the only reader, runs `op` and `v` is
/// not kept.
fn sole_reader(
    g: &Graph,
    consumers: &[Vec<(NodeId, usize)>],
    v: ValueId,
    keep: &[ValueId],
    op: &Op,
) -> Option<NodeId> {
    match consumers[v.0].as_slice() {
        [(n, 0)] if !keep.contains(&v) && g.node(*n).op == *op => Some(*n),
        _ => None,
    }
}

/// The `(ReluGrad, BatchNormGrad)` nodes of the batch norm `bn` whose ReLU
/// output is `z`: the batch-norm gradient reads the saved statistics of
/// `bn`, and its gradient input is a `ReluGrad` of `z` read by it alone.
fn backward_pair(
    g: &Graph,
    consumers: &[Vec<(NodeId, usize)>],
    bn: NodeId,
    z: ValueId,
    keep: &[ValueId],
) -> Option<(NodeId, NodeId)> {
    let mean = g.node(bn).outputs[1];
    let bn_grad = consumers[mean.0].iter().find_map(|&(c, slot)| {
        let node = g.node(c);
        (slot == 3 && matches!(node.op, Op::BatchNormGrad(_))).then_some(c)
    })?;
    let grad_in = g.node(bn_grad).inputs[0];
    let relu_grad = g.producer(grad_in)?;
    let rg = g.node(relu_grad);
    let reads_z = rg.op == Op::ReluGrad && rg.inputs[1] == z;
    let only_bn = sole_reader(g, consumers, grad_in, keep, &g.node(bn_grad).op).is_some();
    (reads_z && only_bn).then_some((relu_grad, bn_grad))
}
