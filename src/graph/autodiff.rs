//! Reverse-mode autodiff over the graph from a scalar loss, and the optimiser
//! update nodes.
//!
//! The driver is generic: each op's gradient rule lives beside its
//! declaration in its family module (`graph::ops::*`, reached through
//! [`crate::graph::Op::spec`]) and talks to the graph through [`Backward`].
//! The fused loss ops already output `d loss / d logits`, so the loss
//! scalar's gradient only needs to travel through `Add` and `Scale` as a
//! constant (e.g. `CE + 0.5 * Dice`); everything else carries gradient
//! tensors. A value read by several
//! nodes gets its contributions summed with `Add` nodes. Only values that
//! depend on a trainable parameter and that the loss depends on get
//! gradients, so no backward node is emitted for labels, indices, state or
//! the input data.

use super::init::Init;
use super::ir::{Graph, Node, NodeId, StateRole, ValueId};
use super::ops::*;
use crate::error::{Error, Result};
use crate::shape::{DType, Shape};

/// The result of [`backward`].
#[derive(Clone, Debug)]
pub struct Gradients {
    pub loss: ValueId,
    /// `(trainable parameter, its gradient)`, in parameter creation order.
    pub params: Vec<(ValueId, ValueId)>,
    /// Trainable parameters the loss does not depend on (they get no gradient).
    pub unused: Vec<ValueId>,
    /// The first node that [`backward`] added.
    pub first_node: NodeId,
}

impl Gradients {
    /// The gradient of parameter `p`, if it has one.
    pub fn of(&self, p: ValueId) -> Option<ValueId> {
        self.params.iter().find(|(q, _)| *q == p).map(|(_, g)| *g)
    }
}

/// A gradient: a tensor, or a known constant (only for scalars between the
/// loss ops and the objective).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Grad {
    Const(f32),
    Value(ValueId),
}

/// Add the backward pass of scalar `loss` to `g`.
pub fn backward(g: &mut Graph, loss: ValueId) -> Result<Gradients> {
    let lv = g.value(loss);
    if lv.shape.numel() != 1 || lv.dtype != DType::F32 {
        return Err(Error::shape(
            "backward",
            format!(
                "the loss '{}' must be an f32 scalar, got {}",
                lv.name, lv.shape
            ),
        ));
    }
    let n_fwd = g.nodes().len();
    let need = needs_gradient(g, loss);
    let mut grads: Vec<Option<Grad>> = vec![None; g.values().len()];
    grads[loss.0] = Some(Grad::Const(1.0));

    for id in (0..n_fwd).rev() {
        let node = g.node(NodeId(id)).clone();
        let gy: Vec<Option<Grad>> = node.outputs.iter().map(|o| grads[o.0]).collect();
        if gy.iter().all(|x| x.is_none()) || !node.inputs.iter().any(|v| need[v.0]) {
            continue;
        }
        let need_in: Vec<bool> = node.inputs.iter().map(|v| need[v.0]).collect();
        for (slot, gr) in node_gradients(g, &node, &gy, &need_in)? {
            let v = node.inputs[slot];
            if need[v.0] {
                accumulate(g, &mut grads, v, gr)?;
            }
        }
    }
    collect_params(g, &grads, loss, n_fwd)
}

/// Values that depend on a trainable parameter and that the loss depends on.
fn needs_gradient(g: &Graph, loss: ValueId) -> Vec<bool> {
    let mut requires: Vec<bool> = g.values().iter().map(|v| v.is_trainable()).collect();
    for node in g.nodes() {
        if node.inputs.iter().any(|v| requires[v.0]) {
            for o in &node.outputs {
                requires[o.0] = is_differentiable_dtype(g.value(*o).dtype);
            }
        }
    }
    let mut reaches = vec![false; g.values().len()];
    reaches[loss.0] = true;
    for node in g.nodes().iter().rev() {
        if node.outputs.iter().any(|v| reaches[v.0]) {
            for i in &node.inputs {
                reaches[i.0] = true;
            }
        }
    }
    requires
        .iter()
        .zip(&reaches)
        .map(|(r, s)| *r && *s)
        .collect()
}

/// The `(parameter, gradient)` pairs, in parameter creation order.
fn collect_params(
    g: &Graph,
    grads: &[Option<Grad>],
    loss: ValueId,
    n_fwd: usize,
) -> Result<Gradients> {
    let mut params = Vec::new();
    let mut unused = Vec::new();
    for p in g.trainable_params() {
        match grads.get(p.0).copied().flatten() {
            Some(Grad::Value(v)) => params.push((p, v)),
            Some(Grad::Const(_)) => {
                return Err(Error::unsupported(
                    "backward",
                    format!(
                        "parameter '{}' feeds the loss scalar directly; its gradient is a constant",
                        g.value(p).name
                    ),
                ))
            }
            None => unused.push(p),
        }
    }
    Ok(Gradients {
        loss,
        params,
        unused,
        first_node: NodeId(n_fwd),
    })
}

/// Sum a new contribution into the gradient of `v`.
fn accumulate(g: &mut Graph, grads: &mut [Option<Grad>], v: ValueId, new: Grad) -> Result<()> {
    grads[v.0] = Some(match (grads[v.0], new) {
        (None, n) => n,
        (Some(Grad::Const(a)), Grad::Const(b)) => Grad::Const(a + b),
        (Some(Grad::Value(a)), Grad::Value(b)) => {
            let name = format!("grad.{}.acc", g.value(v).name);
            Grad::Value(g.add_node_named(&name, Op::Add, &[a, b])?[0])
        }
        _ => {
            return Err(Error::unsupported(
                "backward",
                format!(
                    "'{}' receives both a constant and a tensor gradient",
                    g.value(v).name
                ),
            ))
        }
    });
    Ok(())
}

/// Run the gradient rule of `node`'s op (from its spec) and check that every
/// output gradient the loss depends on was used.
fn node_gradients(
    g: &mut Graph,
    node: &Node,
    gy: &[Option<Grad>],
    need: &[bool],
) -> Result<Vec<(usize, Grad)>> {
    let spec = node.op.spec();
    let rule = spec.grads.ok_or_else(|| {
        Error::unsupported(
            spec.name,
            format!(
                "node '{}': no gradient rule (backward and update ops are not differentiated)",
                node.name
            ),
        )
    })?;
    let mut b = Backward {
        g,
        node,
        gy,
        need,
        read: vec![false; gy.len()],
        out: Vec::new(),
    };
    rule(&mut b)?;
    if let Some(i) = (0..gy.len()).find(|&i| gy[i].is_some() && !b.read[i]) {
        return Err(Error::unsupported(
            spec.name,
            format!(
                "node '{}': output {i} is not differentiable but the loss depends on it",
                node.name
            ),
        ));
    }
    Ok(b.out)
}

/// What a gradient rule sees of one forward node: its inputs and outputs, the
/// gradients of its outputs, which inputs need a gradient; and what it does:
/// add backward nodes ([`Backward::emit`]) and hand gradients to inputs
/// ([`Backward::give`]).
pub struct Backward<'a> {
    g: &'a mut Graph,
    /// The forward node.
    pub node: &'a Node,
    gy: &'a [Option<Grad>],
    need: &'a [bool],
    read: Vec<bool>,
    out: Vec<(usize, Grad)>,
}

impl Backward<'_> {
    /// Input `i` of the forward node.
    pub fn input(&self, i: usize) -> ValueId {
        self.node.inputs[i]
    }
    /// Output `i` of the forward node (a forward value, not a gradient).
    pub fn output(&self, i: usize) -> ValueId {
        self.node.outputs[i]
    }
    pub fn shape(&self, v: ValueId) -> Shape {
        self.g.shape(v)
    }
    pub fn dtype(&self, v: ValueId) -> DType {
        self.g.value(v).dtype
    }
    /// Does input `i` need a gradient?
    pub fn needs(&self, i: usize) -> bool {
        self.need.get(i).copied().unwrap_or(false)
    }
    /// The gradient of output `i`, tensor or constant, if the loss depends on it.
    pub fn grad_of(&mut self, i: usize) -> Option<Grad> {
        self.read[i] = true;
        self.gy[i]
    }
    /// The tensor gradient of output 0 (an error if it is a constant or missing).
    pub fn dy(&mut self) -> Result<ValueId> {
        match self.grad_of(0) {
            Some(Grad::Value(v)) => Ok(v),
            _ => Err(self.error(
                "only the loss scalar may carry a constant gradient, and its output 0 must have one",
            )),
        }
    }
    /// Add the backward node `grad.<node>.<what>`; returns its outputs.
    pub fn emit(&mut self, what: &str, op: Op, inputs: &[ValueId]) -> Result<Vec<ValueId>> {
        let name = format!("grad.{}.{what}", self.node.name);
        self.g.add_node_named(&name, op, inputs)
    }
    /// As [`Backward::emit`] for an op with one output.
    pub fn emit1(&mut self, what: &str, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        Ok(self.emit(what, op, inputs)?[0])
    }
    /// Hand the tensor gradient `v` to input `i`.
    pub fn give(&mut self, i: usize, v: ValueId) {
        self.out.push((i, Grad::Value(v)));
    }
    /// Hand a gradient (tensor or constant) to input `i`.
    pub fn give_grad(&mut self, i: usize, gr: Grad) {
        self.out.push((i, gr));
    }
    /// An error naming the op and the node.
    pub fn error(&self, msg: &str) -> Error {
        Error::unsupported(
            self.node.op.name(),
            format!("node '{}': {msg}", self.node.name),
        )
    }
}

/// Checks on the whole graph that per-node rules cannot make: the saved
/// statistics of an eval-mode batch norm (its kernel does not write them)
/// have no readers. Every op is dispatchable by construction (the dispatch
/// table is an exhaustive match; `exec` tests record a graph of every op).
pub fn check_kernel_ops(g: &Graph) -> Result<()> {
    let cons = g.consumers();
    for (i, n) in g.nodes().iter().enumerate() {
        if let Op::BatchNorm(a) | Op::BatchNormRelu(a) = &n.op {
            if !a.training && n.outputs[1..].iter().any(|v| !cons[v.0].is_empty()) {
                return Err(Error::unsupported(
                    n.op.name(),
                    format!(
                        "node #{i} '{}': the saved statistics of an eval-mode batch norm are not computed",
                        n.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Optimiser for [`append_optimizer`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd(SgdAttrs),
    Adam(AdamAttrs),
}

impl Optimizer {
    /// SGD with momentum (the U-Net paper uses 0.99), no weight decay.
    pub fn sgd(momentum: f32) -> Self {
        Optimizer::Sgd(SgdAttrs {
            momentum,
            nesterov: false,
            weight_decay: 0.0,
            amp: false,
        })
    }
    /// Adam with PyTorch's defaults (0.9, 0.999, 1e-8, no weight decay).
    pub fn adam() -> Self {
        Optimizer::Adam(AdamAttrs::default())
    }
    /// Optimizer-state tensors per parameter.
    pub fn states_per_param(&self) -> usize {
        match self {
            Optimizer::Sgd(a) => (a.momentum != 0.0) as usize,
            Optimizer::Adam(_) => 2,
        }
    }
}

/// Mixed precision: as [`append_optimizer`], with a `FiniteCheck` of every
/// gradient in front of the updates, updates that divide by the loss scale in
/// `scaler` and skip the step on overflow, and an `UpdateScale` after them
/// (growth after `interval` clean steps). Returns the update nodes.
pub fn append_optimizer_amp(
    g: &mut Graph,
    params: &[(ValueId, ValueId)],
    opt: &Optimizer,
    scaler: ValueId,
    interval: u32,
) -> Result<Vec<NodeId>> {
    let grads: Vec<ValueId> = params.iter().map(|p| p.1).collect();
    let flag = g.add_node_named("amp.finite_check", Op::FiniteCheck, &grads)?[0];
    let amp_opt = match *opt {
        Optimizer::Sgd(a) => Optimizer::Sgd(SgdAttrs { amp: true, ..a }),
        Optimizer::Adam(a) => Optimizer::Adam(AdamAttrs { amp: true, ..a }),
    };
    let nodes = add_updates(g, params, &amp_opt, &[flag, scaler])?;
    g.add_node_named(
        "amp.update_scale",
        Op::UpdateScale(UpdateScaleAttrs { interval }),
        &[scaler, flag],
    )?;
    Ok(nodes)
}

/// Add one update node per `(param, grad)`, creating the optimiser state
/// (`<param>.momentum_buffer`, or `<param>.exp_avg` and `<param>.exp_avg_sq`,
/// all zeros). Returns the update nodes.
pub fn append_optimizer(
    g: &mut Graph,
    params: &[(ValueId, ValueId)],
    opt: &Optimizer,
) -> Result<Vec<NodeId>> {
    add_updates(g, params, opt, &[])
}

/// The update nodes, each with `extra` inputs appended (the amp pair).
fn add_updates(
    g: &mut Graph,
    params: &[(ValueId, ValueId)],
    opt: &Optimizer,
    extra: &[ValueId],
) -> Result<Vec<NodeId>> {
    let mut nodes = Vec::with_capacity(params.len());
    for &(p, grad) in params {
        let (pname, shape) = (g.value(p).name.clone(), g.shape(p));
        let mut state = |suffix: &str| {
            g.state(
                &format!("{pname}.{suffix}"),
                shape,
                StateRole::Optimizer,
                Init::Zeros,
            )
        };
        let (op, mut ins) = match opt {
            Optimizer::Sgd(a) if a.momentum != 0.0 => {
                (Op::SgdUpdate(*a), vec![p, grad, state("momentum_buffer")?])
            }
            Optimizer::Sgd(a) => (Op::SgdUpdate(*a), vec![p, grad]),
            Optimizer::Adam(a) => {
                let m = state("exp_avg")?;
                (Op::AdamUpdate(*a), vec![p, grad, m, state("exp_avg_sq")?])
            }
        };
        ins.extend_from_slice(extra);
        g.add_node_named(&format!("update.{pname}"), op, &ins)?;
        nodes.push(NodeId(g.nodes().len() - 1));
    }
    Ok(nodes)
}
