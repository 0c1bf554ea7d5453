//! Recording GPU work. Ops append [`Dispatch`]es to a [`Recorder`]; the
//! recorder is either submitted at once (eager use) or kept as a
//! [`Program`] and replayed every training step, so a whole step is one
//! compute pass in one command buffer, submitted once.

use super::context::Context;
use super::pipelines::{BindKind, Binding, Pipeline};
use super::tensor::{Storage, Tensor};
use crate::error::{Error, Result};
use crate::shape::DType;
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// One prepared kernel launch: pipeline, bound resources and grid.
pub struct Dispatch {
    pub pipeline: Arc<Pipeline>,
    pub bind_group: wgpu::BindGroup,
    pub groups: [u32; 3],
    /// The storages bound here stay out of the buffer pool while the dispatch
    /// exists, so a kept [`Program`] never sees its buffers handed to others.
    _keep: Vec<Arc<Storage>>,
}

/// A recorded sequence of dispatches that can be submitted many times.
#[derive(Default)]
pub struct Program {
    pub dispatches: Vec<Dispatch>,
    /// The op scratch of this recording ([`Recorder::scratch`]).
    pub scratch: ScratchStats,
}

/// Temporary buffers that one op needs only between its own dispatches
/// (transformed or packed weights, Winograd transforms, split-K partial sums).
/// Each kind is a slot: every op of a recording that asks for a slot gets the
/// same buffer (grown to the largest request), as a cuDNN workspace is shared
/// by the layers. Dispatches run in recording order with barriers between
/// them, so the next op's use of a slot starts after the last op's ends. An
/// op that needs two temporaries at once takes two different slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scratch {
    /// Flipped / transposed / phase-split weights a conv builds for its kernel.
    Weights,
    /// Weights packed to f16 pairs (the cooperative-matrix direct kernel); may be
    /// built from `Weights`.
    Packed,
    /// Winograd transformed weights `U` (weight gradient: the accumulator `X`).
    WinogradU,
    /// Winograd transformed input `V` of one chunk of tiles.
    WinogradV,
    /// Winograd products `M` of one chunk (weight gradient: transformed `dy`).
    WinogradM,
    /// Split-K partial sums of a weight gradient, before `sum_splits`.
    Partials,
}

/// Number of [`Scratch`] slots.
pub const SCRATCH_SLOTS: usize = 6;

/// Bytes of op scratch in a recording: what the ops asked for in all (the
/// memory each would hold on its own) and what the shared slots allocated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScratchStats {
    pub requests: usize,
    pub requested_bytes: u64,
    pub allocated_bytes: u64,
    /// The largest request per slot: what a recording that knew them ahead
    /// allocates ([`Context::record_presized`]).
    pub largest: [u64; SCRATCH_SLOTS],
}

impl ScratchStats {
    /// Bytes of the slots sized to their largest requests.
    pub fn largest_bytes(&self) -> u64 {
        self.largest.iter().sum()
    }
}

impl Program {
    /// Encode into a host application's own encoder (embedding).
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wunet"),
            timestamp_writes: None,
        });
        for d in &self.dispatches {
            pass.set_pipeline(&d.pipeline.compute);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
        }
    }

    /// One command buffer, one submission.
    pub fn submit(&self, ctx: &Context) -> wgpu::SubmissionIndex {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wunet.step"),
            });
        self.encode(&mut enc);
        ctx.queue.submit([enc.finish()])
    }

    /// GPU time of every dispatch, in milliseconds, measured with timestamps
    /// written between the dispatches of one compute pass (the program runs
    /// once, as in a step). `None` when the device lacks
    /// `TIMESTAMP_QUERY_INSIDE_PASSES`. A dispatch's time includes the wait
    /// for the barrier in front of it, so the times add up to the pass.
    pub fn gpu_times(&self, ctx: &Context) -> Result<Option<Vec<f64>>> {
        if !ctx.has_gpu_timestamps() {
            return Ok(None);
        }
        let n = self.dispatches.len();
        let stamps = self.timestamps(ctx)?;
        let period_ms = ctx.queue.get_timestamp_period() as f64 * 1e-6;
        Ok(Some(
            (0..n)
                .map(|i| stamps[i + 1].saturating_sub(stamps[i]) as f64 * period_ms)
                .collect(),
        ))
    }

    /// GPU time of the whole program in milliseconds, from timestamps the
    /// compute pass writes at its beginning and end (`TIMESTAMP_QUERY`, for
    /// devices without timestamps inside passes). `None` without
    /// `TIMESTAMP_QUERY`.
    pub fn gpu_pass_time(&self, ctx: &Context) -> Result<Option<f64>> {
        if !ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Ok(None);
        }
        let qs = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("wunet.pass_time"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wunet.pass_time"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &qs,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            for d in &self.dispatches {
                pass.set_pipeline(&d.pipeline.compute);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
        }
        let stamps = resolve_timestamps(ctx, enc, &qs, 2)?;
        let period_ms = ctx.queue.get_timestamp_period() as f64 * 1e-6;
        Ok(Some(stamps[1].saturating_sub(stamps[0]) as f64 * period_ms))
    }

    /// Raw timestamps: one before the first dispatch and one after each.
    fn timestamps(&self, ctx: &Context) -> Result<Vec<u64>> {
        let count = self.dispatches.len() as u32 + 1;
        let qs = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("wunet.profile"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wunet.profile"),
                timestamp_writes: None,
            });
            pass.write_timestamp(&qs, 0);
            for (i, d) in self.dispatches.iter().enumerate() {
                pass.set_pipeline(&d.pipeline.compute);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
                pass.write_timestamp(&qs, i as u32 + 1);
            }
        }
        resolve_timestamps(ctx, enc, &qs, count)
    }

    pub fn len(&self) -> usize {
        self.dispatches.len()
    }
    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }
}

/// Resolve `count` timestamps of `qs` after the work recorded in `enc`,
/// submit, wait, and read them back.
fn resolve_timestamps(
    ctx: &Context,
    mut enc: wgpu::CommandEncoder,
    qs: &wgpu::QuerySet,
    count: u32,
) -> Result<Vec<u64>> {
    let bytes = count as u64 * 8;
    let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("wunet.profile.resolve"),
        size: bytes,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let read = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("wunet.profile.read"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    enc.resolve_query_set(qs, 0..count, &resolve, 0);
    enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, bytes);
    ctx.queue.submit([enc.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    read.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    ctx.wait()?;
    rx.recv()
        .map_err(|_| Error::Gpu("profile: map callback never ran".into()))?
        .map_err(|e| Error::Gpu(format!("profile: map failed: {e}")))?;
    let view = read
        .get_mapped_range(..)
        .map_err(|e| Error::Gpu(format!("profile: mapped range: {e}")))?;
    let out: Vec<u64> = bytemuck::pod_collect_to_vec(&view);
    Ok(out)
}

/// Fail unless `tensors` fill the storage bindings after the params exactly,
/// each with an element type its binding reads: F16 only where the kernel
/// declares f16 (directly or as `act`), 4-byte types where it declares a
/// 4-byte type (kernels that copy bits bind u32/i32 data as f32 words).
fn check_bindings(kernel: &str, bindings: &[Binding], tensors: &[&Tensor]) -> Result<()> {
    if bindings.first().map(|b| b.kind) != Some(BindKind::Uniform)
        || bindings.len() != tensors.len() + 1
    {
        return Err(Error::Gpu(format!(
            "kernel {kernel}: expects {} bindings after params, {} given",
            bindings.len().saturating_sub(1),
            tensors.len()
        )));
    }
    for (i, (b, t)) in bindings[1..].iter().zip(tensors).enumerate() {
        let Some(elem) = b.elem else { continue };
        if (elem == DType::F16) != (t.dtype == DType::F16) {
            return Err(Error::Gpu(format!(
                "kernel {kernel}: binding {} holds {elem:?} elements, given a {:?} tensor {}",
                i + 1,
                t.dtype,
                t.shape
            )));
        }
    }
    Ok(())
}

/// Collects dispatches for one batch of work.
pub struct Recorder<'c> {
    pub ctx: &'c Context,
    pub program: Program,
    scratch: [Option<Tensor>; SCRATCH_SLOTS],
}

impl<'c> Recorder<'c> {
    pub fn new(ctx: &'c Context) -> Self {
        Recorder {
            ctx,
            program: Program::default(),
            scratch: Default::default(),
        }
    }

    /// An f32 temporary of `shape` in scratch slot `slot` (see [`Scratch`]): a
    /// view of the slot's buffer, which grows when a request is larger than
    /// any before it. Its contents are undefined and live until the next op
    /// that takes the same slot.
    pub fn scratch(&mut self, slot: Scratch, shape: crate::shape::Shape) -> Result<Tensor> {
        let bytes = super::tensor::binding_bytes(shape, DType::F32);
        let stats = &mut self.program.scratch;
        stats.requests += 1;
        stats.requested_bytes += bytes;
        let largest = &mut stats.largest[slot as usize];
        *largest = (*largest).max(bytes);
        let held = &mut self.scratch[slot as usize];
        let base = match held.take() {
            Some(t) if t.size_bytes() >= bytes => t,
            _ => {
                stats.allocated_bytes += bytes;
                Tensor::empty(self.ctx, shape, DType::F32)?
            }
        };
        let view = Tensor {
            storage: base.storage.clone(),
            offset: 0,
            shape,
            dtype: DType::F32,
        };
        *held = Some(base);
        Ok(view)
    }

    /// Append a launch of `kernel::entry`. Binding 0 of every kernel is its
    /// uniform `params`; `tensors` fill bindings 1.. in order. The kernel's
    /// activation type `act` is F16 when any bound tensor is F16, else F32;
    /// every tensor's dtype is checked against its binding's element type.
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        kernel: &'static str,
        entry: &'static str,
        overrides: &[(&'static str, f64)],
        params: &P,
        tensors: &[&Tensor],
        groups: [u32; 3],
    ) -> Result<()> {
        let act = if tensors.iter().any(|t| t.dtype == DType::F16) {
            DType::F16
        } else {
            DType::F32
        };
        let pipeline = self.ctx.pipelines.get(kernel, act, entry, overrides)?;
        check_bindings(kernel, &pipeline.kernel.bindings, tensors)?;
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::Gpu(format!(
                "kernel {kernel}: grid {groups:?} exceeds {max} workgroups per dimension"
            )));
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let ubuf = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(kernel),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: ubuf.as_entire_binding(),
        }];
        for (i, t) in tensors.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: t.binding(),
            });
        }
        let bind_group = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel),
                layout: &pipeline.kernel.bind_layout,
                entries: &entries,
            });
        let keep = tensors.iter().map(|t| t.storage.clone()).collect();
        self.program.dispatches.push(Dispatch {
            pipeline,
            bind_group,
            groups,
            _keep: keep,
        });
        Ok(())
    }

    /// Split `n` workgroups over x and y so no dimension exceeds the device
    /// limit. Kernels rebuild the linear id as `wid.x + wid.y * nwg.x`.
    pub fn grid(&self, n: u64) -> Result<[u32; 3]> {
        let max = self.ctx.limits.max_compute_workgroups_per_dimension as u64;
        if n <= max {
            return Ok([n as u32, 1, 1]);
        }
        let y = n.div_ceil(max);
        if y > max {
            return Err(Error::Gpu(format!("{n} workgroups exceed the device grid")));
        }
        let x = n.div_ceil(y);
        Ok([x as u32, y as u32, 1])
    }

    pub fn finish(self) -> Program {
        self.program
    }
}

impl Context {
    /// Record ops with `f`, then submit them as one command buffer.
    pub fn run<T>(&self, f: impl FnOnce(&mut Recorder) -> Result<T>) -> Result<T> {
        let mut rec = Recorder::new(self);
        let out = f(&mut rec)?;
        rec.program.submit(self);
        Ok(out)
    }

    /// Record ops into a reusable [`Program`].
    pub fn record(&self, f: impl FnOnce(&mut Recorder) -> Result<()>) -> Result<Program> {
        self.record_presized(&[0; SCRATCH_SLOTS], f)
    }

    /// [`Context::record`] with every scratch slot allocated up front at the
    /// size of `largest` ([`ScratchStats::largest`] of an earlier recording of
    /// the same ops), so no slot grows on the way.
    pub fn record_presized(
        &self,
        largest: &[u64; SCRATCH_SLOTS],
        f: impl FnOnce(&mut Recorder) -> Result<()>,
    ) -> Result<Program> {
        let mut rec = Recorder::new(self);
        for (slot, &bytes) in rec.scratch.iter_mut().zip(largest) {
            if bytes > 0 {
                let words = crate::shape::Shape::vector((bytes / 4) as usize);
                *slot = Some(Tensor::empty(self, words, DType::F32)?);
                rec.program.scratch.allocated_bytes += bytes;
            }
        }
        f(&mut rec)?;
        Ok(rec.finish())
    }
}
