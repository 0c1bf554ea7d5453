//! The GPU executor: a planned graph recorded once into a [`Program`] and
//! submitted as one command buffer per step.
//!
//! Persistent values (parameters, state, inputs, labels, kept outputs) get
//! their own tensors; every other value is a view into one of the plan's
//! shared buffers, reused over the schedule ([`Strategy::SharedBuffers`]:
//! wgpu tracks usage per buffer, so one dispatch never binds a buffer both
//! read-only and writable). Nothing is read back unless asked.

use super::dispatch::{encode_node, StepValues};
use super::plan::{plan, Placement, Plan, PlanOptions, Strategy};
use crate::error::{Error, Result};
use crate::gpu::{Context, DType, Program, Recorder, Tensor};
use crate::graph::ops::Op;
use crate::graph::{fuse, init_graph, FuseReport, Graph, NodeId, ValueId, ValueKind};
use crate::model_io::checkpoint::{Checkpoint, NamedTensor};
use crate::ops::optim;
use crate::shape::Shape;

/// How an executor is set up.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// Seed of the parameter initialisation.
    pub seed: u64,
    /// Node outputs to keep readable after a step (the loss is always kept).
    pub keep: Vec<ValueId>,
    /// Fuse memory-bound passes ([`crate::graph::fuse()`]) before planning, and plan
    /// batch-1 concatenations as channel slices (`PlanOptions::slices`);
    /// `None`: on unless the environment sets `WUNET_FUSE=0`.
    pub fuse: Option<bool>,
}

/// Is fusion on for `opts` (its `fuse`, else `WUNET_FUSE`, default on)?
pub fn fusion_enabled(opts: &ExecOptions) -> bool {
    opts.fuse
        .unwrap_or_else(|| std::env::var("WUNET_FUSE").map_or(true, |v| v.trim() != "0"))
}

/// One node's share of a profiled step: name, op, dispatches, milliseconds.
pub type NodeTime = (String, &'static str, usize, f64);

/// One dispatch of a step: the node that records it, its kernel (module name
/// in `gpu::pipelines::KERNELS`, or an emulated variant) and entry point, and
/// its GPU time in milliseconds (0 where not timed).
#[derive(Clone, Debug)]
pub struct DispatchInfo {
    pub node: NodeId,
    pub kernel: &'static str,
    pub entry: &'static str,
    pub ms: f64,
}

pub struct Executor {
    /// The graph that runs: the caller's, fused unless fusion is off (every
    /// value keeps its id; see [`mod@crate::graph::fuse`]).
    pub graph: Graph,
    /// What fusion rewrote (all zero when off).
    pub fused: FuseReport,
    pub plan: Plan,
    tensors: Vec<Option<Tensor>>,
    program: Program,
    hyper: Tensor,
    class_weights: Vec<Option<Tensor>>,
    dice_scratch: Vec<Option<Tensor>>,
    /// Dropout masks change every step, so the program is re-recorded per step.
    rerecord: bool,
    /// Steps taken (the optimiser's t counts from 1).
    pub step: u64,
    adam_betas: Option<(f64, f64)>,
    /// The largest request per op-scratch slot seen while recording (recordings after
    /// the first allocate the slots at these sizes up front).
    scratch_sizes: std::sync::Mutex<[u64; crate::gpu::record::SCRATCH_SLOTS]>,
}

impl Executor {
    /// Plan `graph`, allocate its memory, initialise parameters and state from
    /// `opts.seed`, and record the step program.
    pub fn new(ctx: &Context, graph: Graph, opts: &ExecOptions) -> Result<Self> {
        let mut keep = opts.keep.clone();
        for n in graph.nodes() {
            if matches!(n.op, Op::SoftmaxCrossEntropy(_) | Op::DiceLoss(_)) {
                keep.push(n.outputs[0]);
            }
        }
        let fusion = fusion_enabled(opts);
        let (graph, fused) = if fusion {
            fuse(&graph, &keep)?
        } else {
            (graph, FuseReport::default())
        };
        let popts = PlanOptions {
            alignment: ctx.limits.min_storage_buffer_offset_alignment.max(4) as u64,
            max_binding_bytes: ctx
                .limits
                .max_storage_buffer_binding_size
                .min(ctx.limits.max_buffer_size),
            max_arena_bytes: Some(ctx.limits.max_buffer_size),
            strategy: Strategy::SharedBuffers,
            in_place: false,
            slices: fusion,
            keep,
        };
        let plan = plan(&graph, &popts)?;
        let mut arenas = Vec::with_capacity(plan.arenas.len());
        for &bytes in &plan.arenas {
            arenas.push(Tensor::empty(
                ctx,
                Shape::vector((bytes as usize).div_ceil(4)),
                DType::F32,
            )?);
        }
        // an allocation the device could not make (out of memory) fails here
        ctx.check_errors()?;
        let mut tensors: Vec<Option<Tensor>> = Vec::with_capacity(graph.values().len());
        for (i, v) in graph.values().iter().enumerate() {
            let t = match plan.placement[i] {
                Placement::Persistent => Tensor::zeros(ctx, v.shape, v.dtype)?,
                Placement::Arena { arena, offset, .. } => Tensor {
                    storage: arenas[arena].storage.clone(),
                    offset,
                    shape: v.shape,
                    dtype: v.dtype,
                },
            };
            tensors.push(Some(t));
        }
        for (id, data) in init_graph(&graph, opts.seed) {
            if let Some(t) = &tensors[id.0] {
                ctx.queue
                    .write_buffer(t.buffer(), t.offset, bytemuck::cast_slice(&data));
            }
        }
        let mut class_weights = vec![None; graph.nodes().len()];
        let mut dice_scratch = vec![None; graph.nodes().len()];
        let mut rerecord = false;
        let mut adam_betas = None;
        for (ni, n) in graph.nodes().iter().enumerate() {
            match &n.op {
                Op::SoftmaxCrossEntropy(a) => {
                    if let Some(w) = &a.class_weights {
                        class_weights[ni] = Some(Tensor::from_f32(ctx, w, Shape::vector(w.len()))?);
                    }
                }
                Op::DiceLoss(a) => {
                    let ls = graph.shape(n.inputs[0]);
                    let s = crate::shape::dice_shape(&ls, !a.batch_dice);
                    dice_scratch[ni] = Some(Tensor::zeros(ctx, s, DType::F32)?);
                }
                Op::Dropout(_) => rerecord = true,
                Op::AdamUpdate(a) => adam_betas = Some((a.beta1 as f64, a.beta2 as f64)),
                _ => {}
            }
        }
        let mut ex = Executor {
            graph,
            fused,
            plan,
            tensors,
            program: Program::default(),
            hyper: optim::hyper_tensor(ctx)?,
            class_weights,
            dice_scratch,
            rerecord,
            step: 0,
            adam_betas,
            scratch_sizes: Default::default(),
        };
        ex.program = ex.record(ctx, 0)?;
        Ok(ex)
    }

    fn record(&self, ctx: &Context, step: u64) -> Result<Program> {
        Ok(self.record_counted(ctx, step)?.0)
    }

    /// The tensor of a value.
    pub fn tensor(&self, v: ValueId) -> &Tensor {
        self.tensors[v.0]
            .as_ref()
            .expect("every value has a tensor")
    }

    fn persistent(&self, v: ValueId, what: &str) -> Result<&Tensor> {
        if self.plan.placement[v.0] != Placement::Persistent {
            return Err(Error::Other(format!(
                "{what}: value '{}' is not kept; pass it in ExecOptions::keep",
                self.graph.value(v).name
            )));
        }
        Ok(self.tensor(v))
    }

    /// Upload `data` into an input (or parameter) value.
    pub fn write_f32(&self, ctx: &Context, v: ValueId, data: &[f32]) -> Result<()> {
        let t = self.persistent(v, "write")?;
        if data.len() != t.numel() || t.dtype != DType::F32 {
            return Err(Error::shape(
                "write",
                format!(
                    "'{}' is {} {:?}; {} f32 values given",
                    self.graph.value(v).name,
                    t.shape,
                    t.dtype,
                    data.len()
                ),
            ));
        }
        ctx.queue
            .write_buffer(t.buffer(), t.offset, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Upload integer labels.
    pub fn write_i32(&self, ctx: &Context, v: ValueId, data: &[i32]) -> Result<()> {
        let t = self.persistent(v, "write")?;
        if data.len() != t.numel() || t.dtype != DType::I32 {
            return Err(Error::shape(
                "write",
                format!(
                    "'{}' is {} {:?}; {} i32 values given",
                    self.graph.value(v).name,
                    t.shape,
                    t.dtype,
                    data.len()
                ),
            ));
        }
        ctx.queue
            .write_buffer(t.buffer(), t.offset, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Read a kept value back (waits for the GPU).
    pub fn read_f32(&self, ctx: &Context, v: ValueId) -> Result<Vec<f32>> {
        self.persistent(v, "read")?.to_f32_vec(ctx)
    }

    /// Run one step: forward (and, for a training graph, loss, backward and
    /// the optimiser update at learning rate `lr`) as one submission.
    pub fn run(&mut self, ctx: &Context, lr: f32) -> Result<()> {
        self.advance(ctx, lr)?;
        if self.rerecord {
            self.program = self.record(ctx, self.step)?;
        }
        self.program.submit(ctx);
        Ok(())
    }

    /// Encode the recorded step into a host's encoder (embedding). Nothing
    /// is advanced: meant for inference graphs, whose step is the same every
    /// time (a training graph's step counter and learning rate are not updated).
    pub fn encode_step(&self, encoder: &mut wgpu::CommandEncoder) {
        self.program.encode(encoder);
    }

    /// Time every node of one step separately (each its own submission, waited
    /// for): `(node name, op name, milliseconds)` in schedule order. Slower
    /// than `run`; for finding where a step's time goes.
    pub fn profile(&mut self, ctx: &Context, lr: f32) -> Result<Vec<(String, &'static str, f64)>> {
        self.advance(ctx, lr)?;
        let mut out = Vec::new();
        for &nid in &self.plan.schedule {
            let node = self.graph.node(nid);
            let prog = ctx.record(|rec| self.encode(rec, self.step, &[nid], &mut Vec::new()))?;
            prog.submit(ctx);
            ctx.wait()?;
            let t0 = std::time::Instant::now();
            prog.submit(ctx);
            ctx.wait()?;
            out.push((
                node.name.clone(),
                node.op.name(),
                t0.elapsed().as_secs_f64() * 1e3,
            ));
        }
        Ok(out)
    }

    /// GPU time of every node of one step from timestamps written between the
    /// dispatches of the step's own program (one submission, as in training):
    /// `(node name, op name, dispatches, milliseconds)` in schedule order.
    /// `None` when the device cannot write timestamps inside passes.
    pub fn profile_gpu(&mut self, ctx: &Context, lr: f32) -> Result<Option<Vec<NodeTime>>> {
        self.advance(ctx, lr)?;
        let (prog, counts) = self.record_counted(ctx, self.step)?;
        let Some(times) = prog.gpu_times(ctx)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(counts.len());
        let mut at = 0;
        for (&nid, &k) in self.plan.schedule.iter().zip(&counts) {
            let node = self.graph.node(nid);
            let ms = times[at..at + k].iter().sum();
            out.push((node.name.clone(), node.op.name(), k, ms));
            at += k;
        }
        Ok(Some(out))
    }

    /// The kernel and entry point of every dispatch of one step, in order,
    /// with the node that records it (`(node, kernel, entry)`).
    pub fn step_dispatches(&self, ctx: &Context) -> Result<Vec<DispatchInfo>> {
        let (prog, counts) = self.record_counted(ctx, self.step)?;
        let mut out = Vec::with_capacity(prog.len());
        let mut ds = prog.dispatches.iter();
        for (&nid, &k) in self.plan.schedule.iter().zip(&counts) {
            for d in ds.by_ref().take(k) {
                out.push(DispatchInfo {
                    node: nid,
                    kernel: d.pipeline.kernel.name,
                    entry: d.pipeline.entry,
                    ms: 0.0,
                });
            }
        }
        Ok(out)
    }

    /// GPU time of every dispatch of one step (one submission, as in
    /// training), with its node, kernel and entry point; `None` when the
    /// device cannot write timestamps inside passes.
    pub fn profile_dispatches(
        &mut self,
        ctx: &Context,
        lr: f32,
    ) -> Result<Option<Vec<DispatchInfo>>> {
        self.advance(ctx, lr)?;
        let (prog, _) = self.record_counted(ctx, self.step)?;
        let Some(times) = prog.gpu_times(ctx)? else {
            return Ok(None);
        };
        let mut out = self.step_dispatches(ctx)?;
        for (d, ms) in out.iter_mut().zip(times) {
            d.ms = ms;
        }
        Ok(Some(out))
    }

    /// Count one more step and write its optimiser values (learning rate,
    /// bias corrections with the graph's Adam betas) into `hyper`.
    fn advance(&mut self, ctx: &Context, lr: f32) -> Result<()> {
        self.step += 1;
        let (b1, b2) = self.adam_betas.unwrap_or((0.9, 0.999));
        optim::write_hyper(ctx, &self.hyper, optim::hyper_values(self.step, lr, b1, b2))
    }

    /// The step program and the number of dispatches of each scheduled node.
    fn record_counted(&self, ctx: &Context, step: u64) -> Result<(Program, Vec<usize>)> {
        let mut counts = Vec::with_capacity(self.plan.schedule.len());
        let known = *self.scratch_sizes.lock().unwrap_or_else(|e| e.into_inner());
        let prog = ctx.record_presized(&known, |rec| {
            self.encode(rec, step, &self.plan.schedule, &mut counts)
        })?;
        let sc = prog.scratch;
        if sc.allocated_bytes <= sc.largest_bytes() {
            return Ok((prog, counts));
        }
        // Slots grew while recording: once more with each at its largest size (remembered
        // for the re-recordings of later steps).
        drop(prog);
        *self.scratch_sizes.lock().unwrap_or_else(|e| e.into_inner()) = sc.largest;
        counts.clear();
        let prog = ctx.record_presized(&sc.largest, |rec| {
            self.encode(rec, step, &self.plan.schedule, &mut counts)
        })?;
        Ok((prog, counts))
    }

    /// Record `nodes` (in order) for step `step`, pushing each node's number
    /// of dispatches onto `counts`.
    fn encode(
        &self,
        rec: &mut Recorder,
        step: u64,
        nodes: &[NodeId],
        counts: &mut Vec<usize>,
    ) -> Result<()> {
        let t = |v: ValueId| {
            self.tensors[v.0]
                .as_ref()
                .expect("every value has a tensor")
        };
        let cw = |ni: usize| self.class_weights[ni].as_ref();
        let ds = |ni: usize| self.dice_scratch[ni].as_ref();
        let sv = StepValues {
            hyper: &self.hyper,
            step,
            class_weights: &cw,
            dice_scratch: &ds,
        };
        for &nid in nodes {
            let before = rec.program.len();
            encode_node(rec, &self.graph, nid.0, self.graph.node(nid), &t, &sv)?;
            counts.push(rec.program.len() - before);
        }
        Ok(())
    }

    /// Number of kernel dispatches per step.
    pub fn dispatches(&self) -> usize {
        self.program.len()
    }

    /// The op scratch of the step program (see [`crate::gpu::Scratch`]).
    pub fn scratch(&self) -> crate::gpu::ScratchStats {
        self.program.scratch
    }

    /// Every parameter and state value (BN statistics, optimiser moments) with
    /// its name, for checkpoints.
    pub fn export(&self, ctx: &Context) -> Result<Checkpoint> {
        let mut ck = Checkpoint::default();
        for (i, v) in self.graph.values().iter().enumerate() {
            if matches!(v.kind, ValueKind::Param { .. } | ValueKind::State { .. }) {
                let data = self.tensor(ValueId(i)).to_f32_vec(ctx)?;
                ck.tensors.push(NamedTensor {
                    name: v.name.clone(),
                    shape: v.shape.logical(),
                    data,
                });
            }
        }
        ck.meta.insert("step".into(), self.step.to_string());
        Ok(ck)
    }

    /// Names and shapes `export` produces (for validating a checkpoint).
    pub fn expected_tensors(&self, with_optimizer: bool) -> Vec<(String, Vec<usize>)> {
        self.graph
            .values()
            .iter()
            .filter(|v| match &v.kind {
                ValueKind::Param { .. } => true,
                ValueKind::State { role, .. } => {
                    with_optimizer || *role == crate::graph::StateRole::NormStats
                }
                _ => false,
            })
            .map(|v| (v.name.clone(), v.shape.logical()))
            .collect()
    }

    /// Load every tensor of `ck` whose name the graph has (names and shapes
    /// must have been validated with `Checkpoint::check_against`).
    pub fn import(&mut self, ctx: &Context, ck: &Checkpoint) -> Result<()> {
        for nt in &ck.tensors {
            if let Some(id) = self.graph.find(&nt.name) {
                let t = self.tensor(id);
                if nt.data.len() != t.numel() {
                    return Err(Error::shape(
                        "import",
                        format!("'{}': {} values for {}", nt.name, nt.data.len(), t.shape),
                    ));
                }
                ctx.queue
                    .write_buffer(t.buffer(), t.offset, bytemuck::cast_slice(&nt.data));
            }
        }
        if let Some(s) = ck.meta.get("step").and_then(|s| s.parse().ok()) {
            self.step = s;
        }
        Ok(())
    }
}
