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

    pub fn len(&self) -> usize {
        self.dispatches.len()
    }
    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }
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
}

impl<'c> Recorder<'c> {
    pub fn new(ctx: &'c Context) -> Self {
        Recorder {
            ctx,
            program: Program::default(),
        }
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
        let mut rec = Recorder::new(self);
        f(&mut rec)?;
        Ok(rec.finish())
    }
}
