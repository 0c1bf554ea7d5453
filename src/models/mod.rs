//! Model builders ([`unet`]) and a torchinfo-like summary of a graph.

pub mod unet;

pub use unet::{
    build_unet, build_unet_with, Act, ChannelScheme, Loss, Mode, Norm, Padding, UNet, UNetConfig,
    Upsampling,
};

use crate::graph::{Graph, Op, ValueKind};
use crate::shape::Shape;

/// One row of the layer table: a forward node.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRow {
    pub name: String,
    pub op: &'static str,
    /// Shape of the node's first output.
    pub shape: Shape,
    /// Elements of the parameters the node reads.
    pub params: u64,
}

/// Parameter totals of a graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParamCounts {
    pub total: u64,
    pub trainable: u64,
    /// Affine parameters (gamma, beta) of batch, instance and group norms.
    pub norm_affine: u64,
}

/// The forward nodes of `g` with their output shapes and parameter counts.
pub fn layers(g: &Graph) -> Vec<LayerRow> {
    g.nodes()
        .iter()
        .filter(|n| !n.op.is_backward() && !n.outputs.is_empty())
        .map(|n| LayerRow {
            name: n.name.clone(),
            op: n.op.name(),
            shape: g.shape(n.outputs[0]),
            params: n
                .inputs
                .iter()
                .filter(|v| g.value(**v).is_param())
                .map(|v| g.shape(*v).numel() as u64)
                .sum(),
        })
        .collect()
}

/// Parameter counts; norm affine parameters are the gamma/beta inputs of norm nodes.
pub fn param_counts(g: &Graph) -> ParamCounts {
    let mut affine = vec![false; g.values().len()];
    for n in g.nodes() {
        if matches!(
            n.op,
            Op::BatchNorm(_) | Op::BatchNormRelu(_) | Op::InstanceNorm(_) | Op::GroupNorm(_)
        ) {
            affine[n.inputs[1].0] = true;
            affine[n.inputs[2].0] = true;
        }
    }
    let mut c = ParamCounts::default();
    for v in g.ids() {
        let val = g.value(v);
        if let ValueKind::Param { trainable, .. } = val.kind {
            let k = val.shape.numel() as u64;
            c.total += k;
            c.trainable += if trainable { k } else { 0 };
            c.norm_affine += if affine[v.0] { k } else { 0 };
        }
    }
    c
}

/// The layer table as text: `layer (op)`, output shape, parameters, then totals.
/// The last line is `parameters: <total>`.
pub fn summary(g: &Graph) -> String {
    let rows = layers(g);
    let w = rows
        .iter()
        .map(|r| r.name.len() + r.op.len() + 3)
        .max()
        .unwrap_or(10)
        .max(14);
    let mut s = format!(
        "{:<w$}  {:<22}  {:>12}\n",
        "layer (op)", "output shape", "parameters"
    );
    s += &format!("{}\n", "=".repeat(w + 38));
    for v in g
        .ids()
        .filter(|v| matches!(g.value(*v).kind, ValueKind::Input | ValueKind::Label))
    {
        let val = g.value(v);
        s += &format!(
            "{:<w$}  {:<22}  {:>12}\n",
            format!("{} (Input)", val.name),
            val.shape.to_string(),
            0
        );
    }
    for r in &rows {
        s += &format!(
            "{:<w$}  {:<22}  {:>12}\n",
            format!("{} ({})", r.name, r.op),
            r.shape.to_string(),
            r.params
        );
    }
    let c = param_counts(g);
    s += &format!("{}\n", "=".repeat(w + 38));
    s += &format!("trainable parameters: {}\n", c.trainable);
    s += &format!("norm affine parameters: {}\n", c.norm_affine);
    s += &format!(
        "parameters without norm affine: {}\n",
        c.total - c.norm_affine
    );
    s += &format!("parameter bytes: {}\n", c.total * 4);
    s += &format!("parameters: {}\n", c.total);
    s
}
