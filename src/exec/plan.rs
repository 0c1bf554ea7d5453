//! Schedule and memory plan of a graph (no GPU types).
//!
//! 1. [`schedule`]: a topological order of all nodes. In-place updates
//!    (`Op::mutates`) run after every other reader of the updated value, and
//!    as early as possible otherwise (an optimiser update right after its
//!    gradient is complete, so gradients die early).
//! 2. [`liveness`]: first definition and last use (schedule positions) of
//!    every planned value: the activations and gradients. Parameters, state,
//!    inputs, labels and the outputs the caller keeps are persistent and not
//!    planned.
//! 3. In-place reuse: the output of an elementwise op (`Op::in_place_inputs`)
//!    takes over the buffer of an input of the same size that dies at that
//!    node; the output of an alias (`Op::is_alias`: `Identity`, left by
//!    `graph::fuse`) always shares its input's buffer. Values sharing a
//!    buffer this way form a group. Channel slices ([`super::slices`]): the
//!    inputs of a batch-1 `Concat` are placed as consecutive slices of its
//!    output, the outputs of a batch-1 `Split` as slices of its input, so
//!    producers write straight into the concatenation and the ops move nothing.
//! 4. Assignment of groups to memory, greedy by size (largest first; as in
//!    TFLite's planner): [`Strategy::Arena`] sub-allocates aligned offsets in
//!    one or a few large arenas, best-fit into the gaps between groups that
//!    are live at the same time; [`Strategy::SharedBuffers`] gives each group
//!    a whole buffer shared with groups that are never live together (for
//!    APIs that track usage per buffer, e.g. wgpu, where a dispatch must not
//!    bind one buffer both read-only and writable).
//!
//! Executor notes: wgpu tracks storage usage per whole buffer within a
//! dispatch, so binding two ranges of one arena, one `read` and one
//! `read_write`, in the same dispatch is a usage conflict. With
//! [`Strategy::Arena`] kernels must declare their arena bindings
//! `read_write` (allowed to alias); with [`Strategy::SharedBuffers`] distinct
//! groups are distinct buffers, and only in-place pairs (`Plan::in_place`)
//! bind the same buffer twice (again needing `read_write`, or
//! `PlanOptions::in_place = false`).

use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, StateRole, ValueId, ValueKind};
use crate::shape::Shape;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

/// How planned values are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Offsets inside one or a few arenas.
    Arena,
    /// One buffer per group of values, buffers reused over time.
    SharedBuffers,
}

#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Offset and size alignment in bytes (e.g. 256, wgpu's `min_storage_buffer_offset_alignment`).
    pub alignment: u64,
    /// Largest tensor one binding may hold (wgpu's `max_storage_buffer_binding_size`).
    pub max_binding_bytes: u64,
    /// Largest arena (wgpu's `max_buffer_size`); `None`: one arena.
    pub max_arena_bytes: Option<u64>,
    pub strategy: Strategy,
    /// Allow elementwise ops to overwrite an input that dies at the node.
    pub in_place: bool,
    /// Lay the inputs of a channel `Concat` (and the outputs of a channel `Split`) of batch
    /// 1 out as slices of its output (input), so the op moves nothing ([`super::slices`]).
    pub slices: bool,
    /// Node outputs the caller reads after the run (e.g. the loss): persistent.
    pub keep: Vec<ValueId>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            alignment: 256,
            max_binding_bytes: 128 << 20,
            max_arena_bytes: None,
            strategy: Strategy::Arena,
            in_place: true,
            slices: true,
            keep: Vec::new(),
        }
    }
}

/// Where a value lives during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Allocated by the executor for the life of the graph (parameters,
    /// state, inputs, labels, kept outputs).
    Persistent,
    /// `bytes` (aligned) at `offset` in arena (or shared buffer) `arena`.
    Arena {
        arena: usize,
        offset: u64,
        bytes: u64,
    },
}

/// Schedule positions of a value's definition and last use (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub def: usize,
    pub last: usize,
}

impl Interval {
    pub fn overlaps(&self, o: &Interval) -> bool {
        self.def <= o.last && o.def <= self.last
    }
}

/// The biggest single value of the graph.
#[derive(Clone, Debug)]
pub struct LargestTensor {
    pub value: ValueId,
    pub name: String,
    /// The node that writes it (or first reads it, for inputs and parameters).
    pub node: String,
    pub op: &'static str,
    pub shape: Shape,
    pub bytes: u64,
}

/// Byte counts of a plan.
#[derive(Clone, Debug, Default)]
pub struct MemoryReport {
    pub param_count: u64,
    pub param_bytes: u64,
    pub trainable_param_bytes: u64,
    pub optimizer_state_bytes: u64,
    pub norm_state_bytes: u64,
    /// Graph inputs and labels.
    pub input_bytes: u64,
    /// Outputs kept for the caller.
    pub kept_bytes: u64,
    /// Number of planned values (activations and gradients).
    pub planned_values: usize,
    /// Sum of the planned values' sizes: the memory without a planner.
    pub unplanned_bytes: u64,
    /// Sum of the arena (or shared buffer) sizes: the memory with the planner.
    pub planned_bytes: u64,
    /// Most bytes live at one schedule step: a lower bound for any layout.
    pub peak_live_bytes: u64,
    pub arenas: usize,
    pub in_place: usize,
    /// `Concat` / `Split` nodes laid out as slices (no copy).
    pub slices: usize,
    pub largest: Option<LargestTensor>,
}

/// A complete schedule and memory plan.
#[derive(Clone, Debug)]
pub struct Plan {
    pub schedule: Vec<NodeId>,
    /// Per value (indexed by `ValueId.0`).
    pub placement: Vec<Placement>,
    /// Per value; `None` for persistent values.
    pub live: Vec<Option<Interval>>,
    /// Arena (or shared buffer) sizes in bytes.
    pub arenas: Vec<u64>,
    /// `(node, output, input)`: the output overwrites the input's buffer.
    pub in_place: Vec<(NodeId, ValueId, ValueId)>,
    /// `(node, whole, parts)`: a `Concat` whose inputs (a `Split` whose outputs) are
    /// placed as consecutive channel slices of its output (input); the op moves nothing.
    pub slices: Vec<(NodeId, ValueId, Vec<ValueId>)>,
    pub report: MemoryReport,
}

pub(super) fn align_up(b: u64, a: u64) -> u64 {
    b.max(1).div_ceil(a.max(1)) * a.max(1)
}

/// Topological order of all nodes (see the module docs).
pub fn schedule(g: &Graph) -> Result<Vec<NodeId>> {
    let n = g.nodes().len();
    let consumers = g.consumers();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in g.nodes().iter().enumerate() {
        preds[i].extend(
            node.inputs
                .iter()
                .filter_map(|v| g.producer(*v))
                .map(|p| p.0),
        );
        for &m in node.op.mutates() {
            for &(c, _) in &consumers[node.inputs[m].0] {
                if c.0 < i {
                    // Readers (and earlier writers) created before an update see the old value.
                    preds[i].push(c.0);
                } else if c.0 > i && g.node(c).op.mutates().is_empty() {
                    // A plain reader created after the update sees the new value.
                    preds[c.0].push(i);
                }
            }
        }
    }
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indeg = vec![0usize; n];
    let mut anchor: Vec<usize> = (0..n).collect();
    for (i, p) in preds.iter_mut().enumerate() {
        p.sort_unstable();
        p.dedup();
        p.retain(|&x| x != i);
        if g.node(NodeId(i)).outputs.is_empty() {
            anchor[i] = p.iter().copied().max().unwrap_or(i);
        }
        for &x in p.iter() {
            succ[x].push(i);
            indeg[i] += 1;
        }
    }
    let mut heap: BinaryHeap<Reverse<(usize, usize)>> = (0..n)
        .filter(|&i| indeg[i] == 0)
        .map(|i| Reverse((anchor[i], i)))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse((_, i))) = heap.pop() {
        order.push(NodeId(i));
        for &s in &succ[i] {
            indeg[s] -= 1;
            if indeg[s] == 0 {
                heap.push(Reverse((anchor[s], s)));
            }
        }
    }
    if order.len() != n {
        return Err(Error::shape(
            "schedule",
            format!(
                "the graph has a cycle ({} of {n} nodes ordered)",
                order.len()
            ),
        ));
    }
    Ok(order)
}

/// Is `v` planned (an activation not kept for the caller)?
fn is_planned(g: &Graph, v: ValueId, keep: &[ValueId]) -> bool {
    g.producer(v).is_some() && !keep.contains(&v)
}

/// Live interval of every planned value over `order`.
pub fn liveness(g: &Graph, order: &[NodeId], keep: &[ValueId]) -> Vec<Option<Interval>> {
    let mut pos = vec![0usize; g.nodes().len()];
    for (p, n) in order.iter().enumerate() {
        pos[n.0] = p;
    }
    let mut live: Vec<Option<Interval>> = g
        .ids()
        .map(|v| {
            g.producer(v)
                .filter(|_| is_planned(g, v, keep))
                .map(|n| Interval {
                    def: pos[n.0],
                    last: pos[n.0],
                })
        })
        .collect();
    for (i, node) in g.nodes().iter().enumerate() {
        for v in &node.inputs {
            if let Some(iv) = &mut live[v.0] {
                iv.last = iv.last.max(pos[i]);
            }
        }
    }
    live
}

/// Fail if any value exceeds the binding limit; the error names the node, op, shape and limit.
pub fn check_binding_limits(g: &Graph, max_binding_bytes: u64) -> Result<()> {
    let consumers = g.consumers();
    for v in g.ids() {
        let val = g.value(v);
        if val.bytes() > max_binding_bytes {
            let node = g
                .producer(v)
                .or_else(|| consumers[v.0].first().map(|c| c.0));
            let (nname, op) = node
                .map(|n| (g.node(n).name.clone(), g.node(n).op.name()))
                .unwrap_or((String::from("-"), "graph"));
            return Err(Error::TooLarge {
                op,
                what: format!(
                    "node '{nname}' ({op}): value '{}' of shape {} ({:?})",
                    val.name, val.shape, val.dtype
                ),
                bytes: val.bytes(),
                limit: max_binding_bytes,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
    }
    Ok(())
}

/// Values that share one block of memory (in-place reuse, aliases, channel slices).
pub(super) struct Group {
    pub(super) members: Vec<ValueId>,
    pub(super) size: u64,
    pub(super) live: Interval,
    /// Moved into a larger group by a channel slice: not placed itself.
    pub(super) merged: bool,
}

/// The groups being built, with each planned value's group and byte offset in it.
pub(super) struct Groups {
    pub(super) list: Vec<Group>,
    pub(super) of: Vec<Option<usize>>,
    pub(super) offset: Vec<u64>,
}

/// Schedule, liveness, in-place reuse and buffer assignment (see the module docs).
pub fn plan(g: &Graph, opts: &PlanOptions) -> Result<Plan> {
    check_binding_limits(g, opts.max_binding_bytes)?;
    let order = schedule(g)?;
    let live = liveness(g, &order, &opts.keep);
    // A slice whose group a dispatch would bind both read and written is undone (at most
    // one round per sliced node).
    let mut denied = Vec::new();
    loop {
        let (gs, in_place, slices) = group_values(g, opts, &order, &live, &denied);
        let conflicts = match slices.is_empty() {
            true => Vec::new(),
            false => super::slices::conflicts(g, &gs, &in_place, &slices),
        };
        if conflicts.is_empty() {
            return place(g, opts, order, live, gs, in_place, slices);
        }
        denied.extend(conflicts);
    }
}

/// One group per planned value, merged by in-place reuse, aliases and channel slices
/// (except the slices of the `denied` nodes).
#[allow(clippy::type_complexity)]
fn group_values(
    g: &Graph,
    opts: &PlanOptions,
    order: &[NodeId],
    live: &[Option<Interval>],
    denied: &[NodeId],
) -> (
    Groups,
    Vec<(NodeId, ValueId, ValueId)>,
    Vec<(NodeId, ValueId, Vec<ValueId>)>,
) {
    let al = opts.alignment.max(1);
    let size_of = |v: ValueId| align_up(g.value(v).bytes(), al);
    let n = g.values().len();
    let mut gs = Groups {
        list: Vec::new(),
        of: vec![None; n],
        offset: vec![0; n],
    };
    let mut in_place = Vec::new();
    let mut slices = Vec::new();
    for (p, &nid) in order.iter().enumerate() {
        let node = g.node(nid);
        if opts.slices && !denied.contains(&nid) {
            if let Some(s) = super::slices::slice(g, node, live, al, &mut gs) {
                slices.push((nid, s.0, s.1));
                continue;
            }
        }
        for &o in &node.outputs {
            let Some(iv) = live[o.0] else { continue };
            if let Some(x) = alias_input(g, node, o, &gs) {
                // An alias (`Identity`): its input's place, live until both die.
                join(&mut gs, o, x, iv);
                continue;
            }
            let target = if opts.in_place && o == node.outputs[0] {
                in_place_target(g, node, o, p, live, &gs)
            } else {
                None
            };
            match target {
                Some(v) => {
                    join(&mut gs, o, v, iv);
                    in_place.push((nid, o, v));
                }
                None => {
                    gs.of[o.0] = Some(gs.list.len());
                    gs.list.push(Group {
                        members: vec![o],
                        size: size_of(o),
                        live: iv,
                        merged: false,
                    });
                }
            }
        }
    }
    (gs, in_place, slices)
}

/// `o` joins the group of `v` at `v`'s offset; the group lives until `o` dies too.
pub(super) fn join(gs: &mut Groups, o: ValueId, v: ValueId, iv: Interval) {
    let gi = gs.of[v.0].unwrap_or_default();
    gs.list[gi].members.push(o);
    gs.list[gi].live.last = gs.list[gi].live.last.max(iv.last);
    gs.of[o.0] = Some(gi);
    gs.offset[o.0] = gs.offset[v.0];
}

/// The input an elementwise op may overwrite with `o` at schedule position `p`: of the
/// same shape and type, dying here, in a group that dies here.
fn in_place_target(
    g: &Graph,
    node: &crate::graph::Node,
    o: ValueId,
    p: usize,
    live: &[Option<Interval>],
    gs: &Groups,
) -> Option<ValueId> {
    node.op
        .in_place_inputs()
        .iter()
        .map(|&s| node.inputs[s])
        .find(|&v| {
            live[v.0].is_some_and(|l| l.last == p)
                && gs.of[v.0].is_some_and(|gi| gs.list[gi].live.last == p)
                && g.value(v).shape.dims == g.value(o).shape.dims
                && g.value(v).dtype == g.value(o).dtype
        })
}

/// Place the groups (greedy by size, and by time; the smaller layout wins) and build the plan.
#[allow(clippy::too_many_arguments)]
fn place(
    g: &Graph,
    opts: &PlanOptions,
    order: Vec<NodeId>,
    live: Vec<Option<Interval>>,
    gs: Groups,
    in_place: Vec<(NodeId, ValueId, ValueId)>,
    slices: Vec<(NodeId, ValueId, Vec<ValueId>)>,
) -> Result<Plan> {
    let groups = &gs.list;
    let al = opts.alignment.max(1);
    let size_of = |v: ValueId| align_up(g.value(v).bytes(), al);
    let mut by_size: Vec<usize> = (0..groups.len()).filter(|&i| !groups[i].merged).collect();
    by_size.sort_by_key(|&i| (Reverse(groups[i].size), groups[i].live.def, i));
    let mut by_time = by_size.clone();
    by_time.sort_by_key(|&i| (groups[i].live.def, Reverse(groups[i].size), i));
    let max_arena = opts.max_arena_bytes.unwrap_or(u64::MAX);
    if let Some(&big) = by_size.first() {
        if groups[big].size > max_arena {
            let v = groups[big].members[0];
            return Err(Error::TooLarge {
                op: g
                    .producer(v)
                    .map(|n| g.node(n).op.name())
                    .unwrap_or("graph"),
                what: format!("value '{}' of shape {}", g.value(v).name, g.value(v).shape),
                bytes: groups[big].size,
                limit: max_arena,
                limit_name: "max_buffer_size",
            });
        }
    }
    let a1 = assign(groups, &by_size, opts.strategy, max_arena);
    let a2 = assign(groups, &by_time, opts.strategy, max_arena);
    let (arenas, where_) = if a2.0.iter().sum::<u64>() < a1.0.iter().sum::<u64>() {
        a2
    } else {
        a1
    };

    let placement: Vec<Placement> = g
        .ids()
        .map(|v| match gs.of[v.0] {
            Some(gi) => Placement::Arena {
                arena: where_[gi].0,
                offset: where_[gi].1 + gs.offset[v.0],
                bytes: size_of(v),
            },
            None => Placement::Persistent,
        })
        .collect();
    let mut report = report(g, opts, &live, groups, &arenas, in_place.len(), order.len());
    report.slices = slices.len();
    Ok(Plan {
        schedule: order,
        placement,
        live,
        arenas,
        in_place,
        slices,
        report,
    })
}

/// The input of an alias op's output `o` (`Op::is_alias`), when that input is
/// planned (else `o` gets a buffer of its own and the op copies).
fn alias_input(g: &Graph, node: &crate::graph::Node, o: ValueId, gs: &Groups) -> Option<ValueId> {
    let x = *node.inputs.first()?;
    let same = g.value(x).bytes() == g.value(o).bytes();
    (node.op.is_alias() && o == node.outputs[0] && same && gs.of[x.0].is_some()).then_some(x)
}

/// Place the groups in `order`: arena sizes and `(arena, offset)` per group.
fn assign(
    groups: &[Group],
    order: &[usize],
    strategy: Strategy,
    max_arena: u64,
) -> (Vec<u64>, Vec<(usize, u64)>) {
    let mut arenas: Vec<u64> = Vec::new();
    let mut placed: Vec<Vec<(usize, u64)>> = Vec::new(); // per arena: (group, offset)
    let mut where_: Vec<(usize, u64)> = vec![(0, 0); groups.len()];
    for &gi in order {
        let (size, lv) = (groups[gi].size, groups[gi].live);
        let choice = match strategy {
            Strategy::Arena => best_offset(groups, &placed, &arenas, size, lv, max_arena),
            // Best fit among the buffers free over `lv` that are large enough.
            Strategy::SharedBuffers => (0..arenas.len())
                .filter(|&a| {
                    arenas[a] >= size
                        && placed[a]
                            .iter()
                            .all(|&(o, _)| !groups[o].live.overlaps(&lv))
                })
                .min_by_key(|&a| (arenas[a], a))
                .map(|a| (a, 0)),
        };
        let (a, off) = choice.unwrap_or_else(|| {
            arenas.push(0);
            placed.push(Vec::new());
            (arenas.len() - 1, 0)
        });
        arenas[a] = arenas[a].max(off + size);
        placed[a].push((gi, off));
        where_[gi] = (a, off);
    }
    (arenas, where_)
}

/// Best-fit `(arena, offset)` for a group of `size` live over `lv`: the
/// tightest gap between groups live at the same time, else the end of the
/// live blocks of the arena that grows least; `None`: open a new arena.
fn best_offset(
    groups: &[Group],
    placed: &[Vec<(usize, u64)>],
    arenas: &[u64],
    size: u64,
    lv: Interval,
    max_arena: u64,
) -> Option<(usize, u64)> {
    let mut gap: Option<(u64, usize, u64)> = None; // (waste, arena, offset)
    let mut tail: Option<(u64, usize, u64)> = None; // (growth, arena, offset)
    for (a, list) in placed.iter().enumerate() {
        let mut busy: Vec<(u64, u64)> = list
            .iter()
            .filter(|(o, _)| groups[*o].live.overlaps(&lv))
            .map(|&(o, off)| (off, off + groups[o].size))
            .collect();
        busy.sort_unstable();
        let mut end = 0u64;
        for &(s, e) in &busy {
            if s >= end + size && gap.is_none_or(|b| s - end - size < b.0) {
                gap = Some((s - end - size, a, end));
            }
            end = end.max(e);
        }
        let growth = (end + size).saturating_sub(arenas[a]);
        if end + size <= max_arena && tail.is_none_or(|b| growth < b.0) {
            tail = Some((growth, a, end));
        }
    }
    gap.or(tail).map(|(_, a, off)| (a, off))
}

fn report(
    g: &Graph,
    opts: &PlanOptions,
    live: &[Option<Interval>],
    groups: &[Group],
    arenas: &[u64],
    in_place: usize,
    steps: usize,
) -> MemoryReport {
    let consumers = g.consumers();
    let mut r = MemoryReport {
        param_count: g
            .values()
            .iter()
            .filter(|v| v.is_param())
            .map(|v| v.shape.numel() as u64)
            .sum(),
        param_bytes: g.bytes_where(|v| v.is_param()),
        trainable_param_bytes: g.bytes_where(|v| v.is_trainable()),
        optimizer_state_bytes: g.bytes_where(|v| {
            matches!(
                v.kind,
                ValueKind::State {
                    role: StateRole::Optimizer,
                    ..
                }
            )
        }),
        norm_state_bytes: g.bytes_where(|v| {
            matches!(
                v.kind,
                ValueKind::State {
                    role: StateRole::NormStats,
                    ..
                }
            )
        }),
        input_bytes: g.bytes_where(|v| matches!(v.kind, ValueKind::Input | ValueKind::Label)),
        kept_bytes: opts.keep.iter().map(|v| g.value(*v).bytes()).sum(),
        planned_values: live.iter().filter(|l| l.is_some()).count(),
        unplanned_bytes: g
            .ids()
            .filter(|v| live[v.0].is_some())
            .map(|v| g.value(v).bytes())
            .sum(),
        planned_bytes: arenas.iter().sum(),
        arenas: arenas.len(),
        in_place,
        ..Default::default()
    };
    let mut delta = vec![0i128; steps + 1];
    for gr in groups.iter().filter(|gr| !gr.merged) {
        delta[gr.live.def] += gr.size as i128;
        delta[gr.live.last + 1] -= gr.size as i128;
    }
    let mut cur = 0i128;
    for d in delta {
        cur += d;
        r.peak_live_bytes = r.peak_live_bytes.max(cur as u64);
    }
    if let Some(v) = g.ids().max_by_key(|v| (g.value(*v).bytes(), Reverse(v.0))) {
        let node = g
            .producer(v)
            .or_else(|| consumers[v.0].first().map(|c| c.0));
        let (nname, op) = node
            .map(|n| (g.node(n).name.clone(), g.node(n).op.name()))
            .unwrap_or((String::from("-"), "-"));
        let val = g.value(v);
        r.largest = Some(LargestTensor {
            value: v,
            name: val.name.clone(),
            node: nname,
            op,
            shape: val.shape,
            bytes: val.bytes(),
        });
    }
    r
}

/// `123456789 B (117.7 MiB)`.
pub fn fmt_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b as f64;
    let mut u = 0;
    while x >= 1024.0 && u < U.len() - 1 {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{b} B ({x:.1} {})", U[u])
    }
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "parameter bytes:        {} ({} parameters)",
            fmt_bytes(self.param_bytes),
            self.param_count
        )?;
        writeln!(
            f,
            "optimizer-state bytes:  {}",
            fmt_bytes(self.optimizer_state_bytes)
        )?;
        writeln!(
            f,
            "norm-state bytes:       {}",
            fmt_bytes(self.norm_state_bytes)
        )?;
        writeln!(f, "input+label bytes:      {}", fmt_bytes(self.input_bytes))?;
        writeln!(
            f,
            "without planner:        {} ({} tensors)",
            fmt_bytes(self.unplanned_bytes),
            self.planned_values
        )?;
        let saving = if self.unplanned_bytes > 0 {
            100.0 * (1.0 - self.planned_bytes as f64 / self.unplanned_bytes as f64)
        } else {
            0.0
        };
        writeln!(
            f,
            "with planner:           {} ({} arena(s), {} in place, saving {saving:.1}%)",
            fmt_bytes(self.planned_bytes),
            self.arenas,
            self.in_place
        )?;
        writeln!(
            f,
            "peak live (lower bound): {}",
            fmt_bytes(self.peak_live_bytes)
        )?;
        if let Some(l) = &self.largest {
            writeln!(
                f,
                "largest tensor:         '{}' {} from node '{}' ({}): {}",
                l.name,
                l.shape,
                l.node,
                l.op,
                fmt_bytes(l.bytes)
            )?;
        }
        Ok(())
    }
}
