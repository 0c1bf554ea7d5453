//! The graph: values with static shapes and dtypes, and nodes (ops) that
//! read and write them. Nodes are kept in creation order, which is always a
//! valid topological order (a node can only read values that exist).

use super::infer::TypeOf;
use super::init::Init;
use super::ops::Op;
use crate::error::{Error, Result};
use crate::shape::{DType, Shape};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Index of a value in [`Graph::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// Index of a node in [`Graph::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What kind of persistent state a [`ValueKind::State`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateRole {
    /// Running mean / variance of a batch norm.
    NormStats,
    /// Momentum or Adam moments.
    Optimizer,
}

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueKind {
    /// Graph input (data), written by the caller.
    Input,
    /// Label input (or a weight map), written by the caller; never differentiated.
    Label,
    /// A parameter, initialised from `init`; only `trainable` ones get gradients.
    Param { trainable: bool, init: Init },
    /// Persistent state updated in place (running stats, optimiser moments).
    State { role: StateRole, init: Init },
    /// Output `slot` of node `node` (an intermediate).
    Activation { node: NodeId, slot: usize },
}

#[derive(Clone, Debug)]
pub struct Value {
    pub name: String,
    pub shape: Shape,
    pub dtype: DType,
    pub kind: ValueKind,
}

impl Value {
    /// Bytes of the value's buffer (rounded up to whole 4-byte words, as bindings need).
    pub fn bytes(&self) -> u64 {
        self.shape.bytes_of(self.dtype).next_multiple_of(4)
    }
    /// The node that writes this value, if it is an activation.
    pub fn producer(&self) -> Option<NodeId> {
        match self.kind {
            ValueKind::Activation { node, .. } => Some(node),
            _ => None,
        }
    }
    pub fn is_trainable(&self) -> bool {
        matches!(
            self.kind,
            ValueKind::Param {
                trainable: true,
                ..
            }
        )
    }
    pub fn is_param(&self) -> bool {
        matches!(self.kind, ValueKind::Param { .. })
    }
    pub fn init(&self) -> Option<Init> {
        match self.kind {
            ValueKind::Param { init, .. } | ValueKind::State { init, .. } => Some(init),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

/// A dataflow graph with static shapes.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    values: Vec<Value>,
    nodes: Vec<Node>,
    by_name: HashMap<String, ValueId>,
    node_names: HashSet<String>,
    scope: String,
    counters: HashMap<String, usize>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    pub fn value(&self, v: ValueId) -> &Value {
        &self.values[v.0]
    }
    pub fn node(&self, n: NodeId) -> &Node {
        &self.nodes[n.0]
    }
    pub fn shape(&self, v: ValueId) -> Shape {
        self.values[v.0].shape
    }
    /// The value called `name`, if any.
    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.by_name.get(name).copied()
    }
    /// The node that writes `v` (None for inputs, parameters and state).
    pub fn producer(&self, v: ValueId) -> Option<NodeId> {
        self.values[v.0].producer()
    }
    /// All outputs of the node that wrote `v` (e.g. a BatchNorm's saved statistics).
    pub fn siblings(&self, v: ValueId) -> &[ValueId] {
        match self.producer(v) {
            Some(n) => &self.nodes[n.0].outputs,
            None => &[],
        }
    }
    /// Parameters in creation order.
    pub fn params(&self) -> Vec<ValueId> {
        self.ids().filter(|v| self.value(*v).is_param()).collect()
    }
    /// Trainable parameters in creation order.
    pub fn trainable_params(&self) -> Vec<ValueId> {
        self.ids()
            .filter(|v| self.value(*v).is_trainable())
            .collect()
    }
    /// Values of one kind predicate, in creation order.
    pub fn ids(&self) -> impl Iterator<Item = ValueId> + '_ {
        (0..self.values.len()).map(ValueId)
    }
    /// Every `(node, input slot)` reading each value, indexed by value.
    pub fn consumers(&self) -> Vec<Vec<(NodeId, usize)>> {
        let mut c = vec![Vec::new(); self.values.len()];
        for (n, node) in self.nodes.iter().enumerate() {
            for (slot, v) in node.inputs.iter().enumerate() {
                c[v.0].push((NodeId(n), slot));
            }
        }
        c
    }
    /// Sum of the bytes of the values matching `pred`.
    pub fn bytes_where(&self, pred: impl Fn(&Value) -> bool) -> u64 {
        self.values
            .iter()
            .filter(|v| pred(v))
            .map(|v| v.bytes())
            .sum()
    }

    /// Prefix for automatic node names (e.g. `"enc0"`); empty for none.
    pub fn set_scope(&mut self, scope: &str) {
        self.scope = scope.to_string();
    }
    pub fn scope(&self) -> &str {
        &self.scope
    }

    fn new_value(
        &mut self,
        name: &str,
        shape: Shape,
        dtype: DType,
        kind: ValueKind,
    ) -> Result<ValueId> {
        if self.by_name.contains_key(name) || self.node_names.contains(name) {
            return Err(Error::shape(
                "graph",
                format!("a value or node named '{name}' already exists"),
            ));
        }
        let id = ValueId(self.values.len());
        self.values.push(Value {
            name: name.to_string(),
            shape,
            dtype,
            kind,
        });
        self.by_name.insert(name.to_string(), id);
        Ok(id)
    }

    /// A data input (f32).
    pub fn input(&mut self, name: &str, shape: Shape) -> Result<ValueId> {
        self.new_value(name, shape, DType::F32, ValueKind::Input)
    }
    /// A data input of any dtype.
    pub fn input_typed(&mut self, name: &str, shape: Shape, dtype: DType) -> Result<ValueId> {
        self.new_value(name, shape, dtype, ValueKind::Input)
    }
    /// A label input (`I32` class indices, or `F32` for a weight map).
    pub fn label(&mut self, name: &str, shape: Shape, dtype: DType) -> Result<ValueId> {
        self.new_value(name, shape, dtype, ValueKind::Label)
    }
    /// A trainable parameter.
    pub fn param(&mut self, name: &str, shape: Shape, init: Init) -> Result<ValueId> {
        self.new_value(
            name,
            shape,
            DType::F32,
            ValueKind::Param {
                trainable: true,
                init,
            },
        )
    }
    /// A parameter that gets no gradient.
    pub fn param_frozen(&mut self, name: &str, shape: Shape, init: Init) -> Result<ValueId> {
        self.new_value(
            name,
            shape,
            DType::F32,
            ValueKind::Param {
                trainable: false,
                init,
            },
        )
    }
    /// Persistent state, updated in place by the ops that mutate it.
    pub fn state(
        &mut self,
        name: &str,
        shape: Shape,
        role: StateRole,
        init: Init,
    ) -> Result<ValueId> {
        self.new_value(name, shape, DType::F32, ValueKind::State { role, init })
    }
    /// Mark a parameter trainable or frozen.
    /// Replace the initialiser of a parameter or state value.
    pub fn set_init(&mut self, v: ValueId, new: crate::graph::Init) -> Result<()> {
        match &mut self.values[v.0].kind {
            ValueKind::Param { init, .. } | ValueKind::State { init, .. } => {
                *init = new;
                Ok(())
            }
            _ => Err(Error::shape(
                "graph",
                format!("'{}' has no initialiser", self.values[v.0].name),
            )),
        }
    }

    pub fn set_trainable(&mut self, v: ValueId, trainable: bool) -> Result<()> {
        match &mut self.values[v.0].kind {
            ValueKind::Param { trainable: t, .. } => {
                *t = trainable;
                Ok(())
            }
            _ => Err(Error::shape(
                "graph",
                format!("'{}' is not a parameter", self.values[v.0].name),
            )),
        }
    }

    /// A unique node name: the op's first parameter input without its
    /// `.weight` suffix (`enc0.conv1`), else `scope.op<k>` (`enc0.relu2`).
    fn auto_name(&mut self, op: &Op, inputs: &[ValueId]) -> String {
        let from_param = inputs
            .iter()
            .skip(1)
            .map(|v| &self.values[v.0])
            .find(|v| v.is_param())
            .map(|v| {
                v.name
                    .strip_suffix(".weight")
                    .unwrap_or(&v.name)
                    .to_string()
            });
        if let Some(n) = from_param {
            return n;
        }
        let base = if self.scope.is_empty() {
            op.name().to_lowercase()
        } else {
            format!("{}.{}", self.scope, op.name().to_lowercase())
        };
        let k = self.counters.entry(base.clone()).or_insert(0);
        *k += 1;
        format!("{base}{k}")
    }

    fn unique_node_name(&self, want: String) -> String {
        let free = |n: &str| !self.node_names.contains(n) && !self.by_name.contains_key(n);
        if free(&want) {
            return want;
        }
        (2..)
            .map(|i| format!("{want}_{i}"))
            .find(|n| free(n))
            .unwrap_or(want)
    }

    /// Add a node with an automatic name; returns its outputs.
    pub fn add_node(&mut self, op: Op, inputs: &[ValueId]) -> Result<Vec<ValueId>> {
        let name = self.auto_name(&op, inputs);
        self.add_node_named(&name, op, inputs)
    }

    /// Add a node called `name` (made unique with a `_k` suffix); checks the
    /// inputs and infers the output shapes. Errors name the node, the op and
    /// the shapes.
    pub fn add_node_named(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[ValueId],
    ) -> Result<Vec<ValueId>> {
        let name = self.unique_node_name(name.to_string());
        let id = NodeId(self.nodes.len());
        if let Some(bad) = inputs.iter().find(|v| v.0 >= self.values.len()) {
            return Err(Error::shape(
                op.name(),
                format!("node {id} '{name}': input {bad} does not exist"),
            ));
        }
        let types: Vec<TypeOf> = inputs
            .iter()
            .map(|v| (self.values[v.0].shape, self.values[v.0].dtype))
            .collect();
        let outs = op.infer(&types).map_err(|msg| {
            let names: Vec<String> = inputs
                .iter()
                .map(|v| format!("'{}'", self.values[v.0].name))
                .collect();
            Error::shape(
                op.name(),
                format!("node {id} '{name}' (inputs {}): {msg}", names.join(", ")),
            )
        })?;
        for &m in op.mutates() {
            if self.values[inputs[m].0].producer().is_some() {
                return Err(Error::shape(
                    op.name(),
                    format!(
                        "node {id} '{name}': updates '{}' in place, which must be a parameter or state",
                        self.values[inputs[m].0].name
                    ),
                ));
            }
        }
        self.node_names.insert(name.clone());
        let multi = outs.len() > 1;
        let mut out_ids = Vec::with_capacity(outs.len());
        for (slot, (shape, dtype)) in outs.into_iter().enumerate() {
            let vname = if multi {
                format!("{name}:{slot}")
            } else {
                name.clone()
            };
            let vid = ValueId(self.values.len());
            self.values.push(Value {
                name: vname.clone(),
                shape,
                dtype,
                kind: ValueKind::Activation { node: id, slot },
            });
            self.by_name.entry(vname).or_insert(vid);
            out_ids.push(vid);
        }
        self.nodes.push(Node {
            name,
            op,
            inputs: inputs.to_vec(),
            outputs: out_ids.clone(),
        });
        Ok(out_ids)
    }

    /// Replace the op and inputs of node `n` in place (`graph::fuse`): the
    /// new op must pass its shape rule on the new inputs and give the node's
    /// existing outputs exactly (count, shapes, dtypes), so every value keeps
    /// its id. Inputs must be written before `n` (creation order stays a
    /// topological order).
    pub(crate) fn rewrite_node(&mut self, n: NodeId, op: Op, inputs: &[ValueId]) -> Result<()> {
        let node = &self.nodes[n.0];
        let late = inputs
            .iter()
            .find(|v| v.0 >= self.values.len() || self.producer(**v).is_some_and(|p| p >= n));
        if let Some(bad) = late {
            return Err(Error::shape(
                op.name(),
                format!(
                    "rewrite of node {n} '{}': input {bad} is not written before it",
                    node.name
                ),
            ));
        }
        let types: Vec<TypeOf> = inputs
            .iter()
            .map(|v| (self.values[v.0].shape, self.values[v.0].dtype))
            .collect();
        let outs = op.infer(&types).map_err(|msg| {
            Error::shape(
                op.name(),
                format!("rewrite of node {n} '{}': {msg}", node.name),
            )
        })?;
        let same = outs.len() == node.outputs.len()
            && outs
                .iter()
                .zip(&node.outputs)
                .all(|(t, v)| t.0 == self.values[v.0].shape && t.1 == self.values[v.0].dtype);
        if !same {
            return Err(Error::shape(
                op.name(),
                format!(
                    "rewrite of node {n} '{}' ({}): the outputs would change",
                    node.name,
                    node.op.name()
                ),
            ));
        }
        let node = &mut self.nodes[n.0];
        node.op = op;
        node.inputs = inputs.to_vec();
        Ok(())
    }

    /// Add a node with exactly one output and return it.
    pub fn add1(&mut self, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        let name = op.name();
        let outs = self.add_node(op, inputs)?;
        outs.first()
            .copied()
            .ok_or_else(|| Error::shape(name, "the op has no outputs"))
    }

    /// One line per node: `#id name = Op(inputs) -> shapes`.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let ins: Vec<&str> = n
                .inputs
                .iter()
                .map(|v| self.values[v.0].name.as_str())
                .collect();
            let outs: Vec<String> = n
                .outputs
                .iter()
                .map(|v| self.values[v.0].shape.to_string())
                .collect();
            s += &format!(
                "#{i} {} = {}({}) -> {}\n",
                n.name,
                n.op.name(),
                ins.join(", "),
                outs.join(", ")
            );
        }
        s
    }
}
