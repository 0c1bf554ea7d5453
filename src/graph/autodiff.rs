//! Reverse-mode autodiff over the graph from a scalar loss, and the optimiser
//! update nodes.
//!
//! All gradient rules live in one `match` ([`rule`]). The fused loss ops
//! already output `d loss / d logits`, so the loss scalar's gradient only
//! needs to travel through `Add` and `Scale` as a constant (e.g. `CE + 0.5 *
//! Dice`); everything else carries gradient tensors. A value read by several
//! nodes gets its contributions summed with `Add` nodes. Only values that
//! depend on a trainable parameter and that the loss depends on get
//! gradients, so no backward node is emitted for labels, indices, state or
//! the input data.

use super::init::Init;
use super::ir::{Graph, Node, NodeId, StateRole, ValueId};
use super::ops::*;
use crate::error::{Error, Result};
use crate::shape::DType;

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
enum Grad {
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
    let n_vals = g.values().len();
    // Values that depend on a trainable parameter.
    let mut requires: Vec<bool> = g.values().iter().map(|v| v.is_trainable()).collect();
    for node in g.nodes() {
        if node.inputs.iter().any(|v| requires[v.0]) {
            for o in &node.outputs {
                requires[o.0] = g.value(*o).dtype == DType::F32;
            }
        }
    }
    // Values the loss depends on.
    let mut reaches = vec![false; n_vals];
    reaches[loss.0] = true;
    for node in g.nodes().iter().rev() {
        if node.outputs.iter().any(|v| reaches[v.0]) {
            for i in &node.inputs {
                reaches[i.0] = true;
            }
        }
    }
    let need: Vec<bool> = (0..n_vals).map(|i| requires[i] && reaches[i]).collect();
    let mut grads: Vec<Option<Grad>> = vec![None; n_vals];
    grads[loss.0] = Some(Grad::Const(1.0));

    for id in (0..n_fwd).rev() {
        let node = g.node(NodeId(id)).clone();
        let gy: Vec<Option<Grad>> = node.outputs.iter().map(|o| grads[o.0]).collect();
        if gy.iter().all(|x| x.is_none()) || !node.inputs.iter().any(|v| need[v.0]) {
            continue;
        }
        let need_in: Vec<bool> = node.inputs.iter().map(|v| need[v.0]).collect();
        for (slot, gr) in rule(g, &node, &gy, &need_in)? {
            let v = node.inputs[slot];
            if need[v.0] {
                accumulate(g, &mut grads, v, gr)?;
            }
        }
    }

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

/// The gradient table: contributions `(input slot, gradient)` of one forward
/// node, given the gradients `gy` of its outputs and which inputs need one.
fn rule(g: &mut Graph, n: &Node, gy: &[Option<Grad>], need: &[bool]) -> Result<Vec<(usize, Grad)>> {
    use Grad::Value as V;
    let (x, outs) = (n.inputs[0], &n.outputs);
    let xs = g.shape(x);
    let op_name = n.op.name();
    let node_name = n.name.clone();
    let nm = |what: &str| format!("grad.{node_name}.{what}");
    // The tensor gradient of output 0.
    let dy = || -> Result<ValueId> {
        match gy[0] {
            Some(Grad::Value(v)) => Ok(v),
            _ => Err(Error::unsupported(
                op_name,
                format!("node '{node_name}': only the loss scalar may carry a constant gradient, and its output 0 must have one"),
            )),
        }
    };
    if !matches!(n.op, Op::Split(_)) && gy.iter().skip(1).any(|x| x.is_some()) {
        return Err(Error::unsupported(
            op_name,
            format!(
                "node '{node_name}': output 1+ is not differentiable but the loss depends on it"
            ),
        ));
    }
    let mut r = Vec::new();
    match &n.op {
        Op::Conv(a) => {
            let dy = dy()?;
            if need[0] {
                let at = WindowGradAttrs { window: a.window, input: xs };
                r.push((0, V(g.add_node_named(&nm("dx"), Op::ConvGradInput(at), &[dy, n.inputs[1]])?[0])));
            }
            if need[1] {
                let at = WindowAttrs { window: a.window };
                r.push((1, V(g.add_node_named(&nm("dw"), Op::ConvGradWeight(at), &[x, dy])?[0])));
            }
            if a.bias && need[2] {
                r.push((2, V(g.add_node_named(&nm("db"), Op::BiasGrad, &[dy])?[0])));
            }
        }
        Op::ConvTranspose(a) => {
            let dy = dy()?;
            let at = WindowAttrs { window: a.window };
            if need[0] {
                r.push((0, V(g.add_node_named(&nm("dx"), Op::ConvTransposeGradInput(at), &[dy, n.inputs[1]])?[0])));
            }
            if need[1] {
                r.push((1, V(g.add_node_named(&nm("dw"), Op::ConvTransposeGradWeight(at), &[x, dy])?[0])));
            }
            if a.bias && need[2] {
                r.push((2, V(g.add_node_named(&nm("db"), Op::BiasGrad, &[dy])?[0])));
            }
        }
        Op::MaxPool(a) => {
            let at = WindowGradAttrs { window: a.window, input: xs };
            r.push((0, V(g.add_node_named(&nm("dx"), Op::MaxPoolGrad(at), &[dy()?, outs[1]])?[0])));
        }
        Op::AvgPool(a) => {
            let at = AvgPoolGradAttrs { pool: *a, input: xs };
            r.push((0, V(g.add_node_named(&nm("dx"), Op::AvgPoolGrad(at), &[dy()?])?[0])));
        }
        Op::MaxUnpool(_) => {
            r.push((0, V(g.add_node_named(&nm("dx"), Op::MaxUnpoolGrad, &[dy()?, n.inputs[1]])?[0])));
        }
        Op::BatchNorm(_) | Op::InstanceNorm(_) | Op::GroupNorm(_) => {
            let op = match &n.op {
                Op::BatchNorm(a) => Op::BatchNormGrad(*a),
                Op::InstanceNorm(a) => Op::InstanceNormGrad(*a),
                Op::GroupNorm(a) => Op::GroupNormGrad(*a),
                _ => unreachable!("outer match"),
            };
            let o = g.add_node_named(&nm("d"), op, &[dy()?, x, n.inputs[1], outs[1], outs[2]])?;
            r.extend([(0, V(o[0])), (1, V(o[1])), (2, V(o[2]))]);
        }
        Op::Relu => r.push((0, V(g.add_node_named(&nm("dx"), Op::ReluGrad, &[dy()?, outs[0]])?[0]))),
        Op::LeakyRelu(a) => {
            // y has the sign of x when slope >= 0; reading y lets the forward run in place.
            let v = if a.slope >= 0.0 { outs[0] } else { x };
            r.push((0, V(g.add_node_named(&nm("dx"), Op::LeakyReluGrad(*a), &[dy()?, v])?[0])));
        }
        Op::Sigmoid => r.push((0, V(g.add_node_named(&nm("dx"), Op::SigmoidGrad, &[dy()?, outs[0]])?[0]))),
        Op::Dropout(a) => r.push((0, V(g.add_node_named(&nm("dx"), Op::DropoutGrad(*a), &[dy()?])?[0]))),
        Op::Concat => {
            let sizes: Vec<usize> = n.inputs.iter().map(|v| g.shape(*v).c()).collect();
            let parts = g.add_node_named(&nm("dx"), Op::Split(SplitAttrs { sizes }), &[dy()?])?;
            r.extend(parts.into_iter().enumerate().map(|(i, p)| (i, V(p))));
        }
        Op::Split(_) => {
            let mut parts = Vec::new();
            for (i, o) in outs.iter().enumerate() {
                parts.push(match gy[i] {
                    Some(Grad::Value(v)) => v,
                    None => g.add_node_named(&nm(&format!("zero{i}")), Op::Zeros(g.shape(*o)), &[])?[0],
                    Some(Grad::Const(_)) => {
                        return Err(Error::unsupported(op_name, "constant gradient on a split output"))
                    }
                });
            }
            let dx = if parts.len() == 1 { parts[0] } else { g.add_node_named(&nm("dx"), Op::Concat, &parts)?[0] };
            r.push((0, V(dx)));
        }
        Op::CenterCrop(a) => {
            let at = CropGradAttrs { offset: a.offset, input: xs.spatial() };
            r.push((0, V(g.add_node_named(&nm("dx"), Op::CenterCropGrad(at), &[dy()?])?[0])));
        }
        Op::Pad(a) => r.push((0, V(g.add_node_named(&nm("dx"), Op::PadGrad(*a), &[dy()?])?[0]))),
        Op::Add => {
            let gr = gy[0].ok_or_else(|| Error::shape(op_name, "no gradient"))?;
            r.extend([(0, gr), (1, gr)]);
        }
        Op::Scale(a) => match gy[0] {
            Some(Grad::Const(c)) => r.push((0, Grad::Const(c * a.alpha))),
            _ => r.push((0, V(g.add_node_named(&nm("dx"), Op::Scale(*a), &[dy()?])?[0]))),
        },
        Op::Upsample(a) => r.push((0, V(g.add_node_named(&nm("dx"), Op::UpsampleGrad(*a), &[dy()?])?[0]))),
        Op::SoftmaxCrossEntropy(_) | Op::DiceLoss(_) => match gy[0] {
            Some(Grad::Const(1.0)) => r.push((0, V(outs[1]))),
            Some(Grad::Const(c)) => {
                r.push((0, V(g.add_node_named(&nm("dx"), Op::Scale(ScaleAttrs { alpha: c }), &[outs[1]])?[0])))
            }
            _ => {
                return Err(Error::unsupported(
                    op_name,
                    format!("node '{node_name}': a loss may reach the objective only through Add and Scale"),
                ))
            }
        },
        Op::Zeros(_) => {}
        op => {
            return Err(Error::unsupported(
                op.name(),
                format!("node '{node_name}': no gradient rule (backward and update ops are not differentiated)"),
            ))
        }
    }
    Ok(r)
}

/// Every node's op has a GPU kernel.
pub fn backward_uses_only_kernel_ops(g: &Graph) -> bool {
    g.nodes().iter().all(|n| n.op.has_kernel())
}

/// As [`backward_uses_only_kernel_ops`], naming the first node without a kernel.
pub fn check_kernel_ops(g: &Graph) -> Result<()> {
    match g
        .nodes()
        .iter()
        .enumerate()
        .find(|(_, n)| !n.op.has_kernel())
    {
        Some((i, n)) => Err(Error::unsupported(
            n.op.name(),
            format!("node #{i} '{}' has no GPU kernel", n.name),
        )),
        None => Ok(()),
    }
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
        })
    }
    /// Adam with PyTorch's defaults (0.9, 0.999, 1e-8, no weight decay).
    pub fn adam() -> Self {
        Optimizer::Adam(AdamAttrs {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        })
    }
    /// Optimizer-state tensors per parameter.
    pub fn states_per_param(&self) -> usize {
        match self {
            Optimizer::Sgd(a) => (a.momentum != 0.0) as usize,
            Optimizer::Adam(_) => 2,
        }
    }
}

/// Add one update node per `(param, grad)`, creating the optimiser state
/// (`<param>.momentum_buffer`, or `<param>.exp_avg` and `<param>.exp_avg_sq`,
/// all zeros). Returns the update nodes.
pub fn append_optimizer(
    g: &mut Graph,
    params: &[(ValueId, ValueId)],
    opt: &Optimizer,
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
        let (op, ins) = match opt {
            Optimizer::Sgd(a) if a.momentum != 0.0 => {
                (Op::SgdUpdate(*a), vec![p, grad, state("momentum_buffer")?])
            }
            Optimizer::Sgd(a) => (Op::SgdUpdate(*a), vec![p, grad]),
            Optimizer::Adam(a) => {
                let m = state("exp_avg")?;
                (Op::AdamUpdate(*a), vec![p, grad, m, state("exp_avg_sq")?])
            }
        };
        g.add_node_named(&format!("update.{pname}"), op, &ins)?;
        nodes.push(NodeId(g.nodes().len() - 1));
    }
    Ok(nodes)
}
