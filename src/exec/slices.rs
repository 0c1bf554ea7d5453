//! Concatenation by slices: the memory planner's rule that lets producers write
//! straight into the channel block of a concatenated value (no copy).
//!
//! In `N, C, (D), H, W` layout the channel blocks of a concatenation are contiguous
//! only for batch 1 (with batch N each input is N separate runs). So for a batch-1
//! `Concat` whose inputs are planned values, each alone in its memory group and
//! each starting at an offset the device can bind (`PlanOptions::alignment`), the
//! inputs' groups move into one group for the output at the inputs' channel
//! offsets: the producers write their slices, and `Concat` finds every input
//! already in place (`ops::tensor::concat_channels_into` skips such inputs). The
//! gradient's `Split` is the mirror image: its outputs become slices of its input.
//! With batch > 1 or an unaligned offset the ops copy, as before.
//!
//! A merged group is one buffer. wgpu forbids one dispatch from binding a buffer
//! both read-only and writable, so `conflicts` names the slice nodes whose groups
//! some other dispatch would bind that way (reading one slice while writing another
//! or the whole); the planner undoes those and plans again.

use super::plan::{align_up, join, Group, Groups, Interval};
use crate::graph::{Graph, Node, NodeId, Op, ValueId};

/// Byte offsets of `parts` laid end to end in `whole` (batch 1, same element type),
/// when every offset is a multiple of `al` and the parts fill `whole` exactly.
fn offsets(g: &Graph, whole: ValueId, parts: &[ValueId], al: u64) -> Option<Vec<u64>> {
    let w = g.value(whole);
    if w.shape.n() != 1 || parts.iter().any(|&p| g.value(p).dtype != w.dtype) {
        return None;
    }
    let mut at = 0u64;
    let mut out = Vec::with_capacity(parts.len());
    for &p in parts {
        if !at.is_multiple_of(al) {
            return None;
        }
        out.push(at);
        at += g.value(p).bytes();
    }
    (at == w.bytes()).then_some(out)
}

/// Lay `node` out as channel slices where the rule above allows: the whole value and
/// its parts, with `gs` updated; `None` leaves everything as it was.
pub(super) fn slice(
    g: &Graph,
    node: &Node,
    live: &[Option<Interval>],
    al: u64,
    gs: &mut Groups,
) -> Option<(ValueId, Vec<ValueId>)> {
    match node.op {
        Op::Concat => concat(g, node, live, al, gs),
        Op::Split(_) => split(g, node, live, al, gs),
        _ => None,
    }
}

/// `Concat`: a new group for the output holding every input's group at its offset.
fn concat(
    g: &Graph,
    node: &Node,
    live: &[Option<Interval>],
    al: u64,
    gs: &mut Groups,
) -> Option<(ValueId, Vec<ValueId>)> {
    let y = node.outputs[0];
    let iv = live[y.0]?;
    let offs = offsets(g, y, &node.inputs, al)?;
    let mut taken: Vec<usize> = Vec::new();
    for &x in &node.inputs {
        let gi = gs.of[x.0]?;
        let whole_group =
            gs.offset[x.0] == 0 && gs.list[gi].size == align_up(g.value(x).bytes(), al);
        if !whole_group || taken.contains(&gi) {
            return None;
        }
        taken.push(gi);
    }
    let new = gs.list.len();
    let mut group = Group {
        members: vec![y],
        size: align_up(g.value(y).bytes(), al),
        live: iv,
        merged: false,
    };
    gs.of[y.0] = Some(new);
    gs.offset[y.0] = 0;
    for (&gi, &off) in taken.iter().zip(&offs) {
        let old = &mut gs.list[gi];
        old.merged = true;
        group.live.def = group.live.def.min(old.live.def);
        group.live.last = group.live.last.max(old.live.last);
        for &m in &old.members {
            gs.offset[m.0] += off;
            gs.of[m.0] = Some(new);
            group.members.push(m);
        }
    }
    gs.list.push(group);
    Some((y, node.inputs.clone()))
}

/// `Split`: every output joins the input's group at its offset.
fn split(
    g: &Graph,
    node: &Node,
    live: &[Option<Interval>],
    al: u64,
    gs: &mut Groups,
) -> Option<(ValueId, Vec<ValueId>)> {
    let x = node.inputs[0];
    gs.of[x.0]?;
    let offs = offsets(g, x, &node.outputs, al)?;
    let ivs: Vec<Interval> = node
        .outputs
        .iter()
        .map(|o| live[o.0])
        .collect::<Option<_>>()?;
    for ((&o, off), iv) in node.outputs.iter().zip(offs).zip(ivs) {
        join(gs, o, x, iv);
        gs.offset[o.0] += off;
    }
    Some((x, node.outputs.clone()))
}

/// The slice nodes whose group another node binds both read and written: a node
/// with an input and an output in one group that is neither an in-place pair, an
/// alias in place, nor the slice node itself.
pub(super) fn conflicts(
    g: &Graph,
    gs: &Groups,
    in_place: &[(NodeId, ValueId, ValueId)],
    slices: &[(NodeId, ValueId, Vec<ValueId>)],
) -> Vec<NodeId> {
    let mut bad_groups = Vec::new();
    for (i, node) in g.nodes().iter().enumerate() {
        let nid = NodeId(i);
        if slices.iter().any(|s| s.0 == nid) {
            continue;
        }
        for &o in &node.outputs {
            let Some(go) = gs.of[o.0] else { continue };
            let clash = node.inputs.iter().any(|&x| {
                let same_place = gs.offset[x.0] == gs.offset[o.0];
                gs.of[x.0] == Some(go)
                    && !in_place.contains(&(nid, o, x))
                    && !(node.op.is_alias() && same_place)
            });
            if clash && !bad_groups.contains(&go) {
                bad_groups.push(go);
            }
        }
    }
    slices
        .iter()
        .filter(|(_, whole, _)| gs.of[whole.0].is_some_and(|gw| bad_groups.contains(&gw)))
        .map(|s| s.0)
        .collect()
}
