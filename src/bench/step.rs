//! A U-Net training step profiled op by op (`wunet bench unet2d|unet3d
//! --profile`, and the step lines of `wunet bench all`): every dispatch of
//! the step with its GPU time, grouped by op, each group placed under the
//! adapter's ceilings with the costs of [`super::cost::op_cost`], and the
//! whole step's share of the FMA peak.

use super::cost::Cost;
use super::json::{Record, What};
use super::ops::{group_by_op, time_nodes, NodeTimes, OpGroup, Setup};
use crate::error::Result;
use crate::exec::DispatchInfo;
use crate::gpu::Context;
use crate::train::session::{Session, SessionSpec};

/// A session of `spec` with a synthetic batch uploaded.
pub fn session(ctx: &Context, spec: &SessionSpec) -> Result<Session> {
    let s = Session::new(ctx, spec)?;
    let n_in: usize = spec.batch * spec.spatial.iter().product::<usize>();
    let img: Vec<f32> = (0..n_in)
        .map(|i| ((i * 7919) % 997) as f32 / 997.0 - 0.5)
        .collect();
    let out = s.exec.graph.shape(s.net.logits);
    let lab: Vec<i32> = (0..out.n() * out.spatial_numel())
        .map(|i| ((i / 7) % 2) as i32)
        .collect();
    s.set_batch(ctx, &img, &lab, None)?;
    Ok(s)
}

/// One step, profiled.
pub struct StepProfile {
    pub times: NodeTimes,
    /// Every dispatch of the step (with GPU times of the last run where
    /// timestamps exist, else 0).
    pub dispatches: Vec<DispatchInfo>,
    /// The step's ops, slowest first.
    pub groups: Vec<(&'static str, OpGroup)>,
    /// Sorted per-run step times (the sum over nodes).
    pub total_ms: Vec<f64>,
    pub cost: Cost,
}

/// Run one warm-up step, then profile `runs` steps of `s`.
pub fn profile_step(ctx: &Context, s: &mut Session, runs: usize) -> Result<StepProfile> {
    s.step(ctx, 1e-3)?;
    ctx.wait()?;
    let plain = s.exec.step_dispatches(ctx)?;
    let times = time_nodes(ctx, &mut s.exec, runs)?;
    let dispatches = times.last.clone().unwrap_or(plain);
    let mut groups = group_by_op(&s.exec, &dispatches, &times.per_node, None);
    groups.sort_by(|a, b| {
        let (ma, mb) = (super::median(&a.1.times), super::median(&b.1.times));
        mb.total_cmp(&ma)
    });
    let n = runs.max(1);
    let mut total_ms = vec![0.0; n];
    for v in times.per_node.values() {
        for (t, ms) in total_ms.iter_mut().zip(v) {
            *t += ms;
        }
    }
    total_ms.sort_by(|a, b| a.total_cmp(b));
    let mut cost = Cost::default();
    for (_, g) in &groups {
        cost += g.cost;
    }
    Ok(StepProfile {
        times,
        dispatches,
        groups,
        total_ms,
        cost,
    })
}

/// The records of a profiled step: one per op (`case` = `name`, e.g.
/// `unet2d.step`, shape = `input`), then the whole step (`op` = `step`).
pub fn step_records(name: &str, input: &str, p: &StepProfile, setup: &Setup) -> Vec<Record> {
    let mut out = Vec::new();
    for (op, g) in &p.groups {
        let kernels: Vec<&str> = g.kernels.iter().map(|s| s.as_str()).collect();
        let what = What {
            op: op.to_string(),
            shape: input.to_string(),
            variant: format!("{} {} nodes: {}", g.act, g.nodes, kernels.join(",")),
            case: name.to_string(),
        };
        out.push(Record::new(
            setup.env,
            what,
            p.times.timer,
            &g.times,
            g.cost,
            &setup.ceilings,
        ));
    }
    let what = What {
        op: "step".into(),
        shape: input.to_string(),
        variant: format!("{} dispatches", p.dispatches.len()),
        case: name.to_string(),
    };
    out.push(Record::new(
        setup.env,
        what,
        p.times.timer,
        &p.total_ms,
        p.cost,
        &setup.ceilings,
    ));
    out
}
