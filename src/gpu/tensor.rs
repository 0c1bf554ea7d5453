//! GPU tensors: a range of a storage buffer plus a shape and element type.

use super::context::Context;
use super::pool::{BufferPool, USAGE};
use crate::error::{Error, Result};
pub use crate::shape::DType;
use crate::shape::Shape;
use std::sync::{Arc, Weak};

/// Owns one `wgpu::Buffer`; a pooled one goes back to its pool on drop.
pub struct Storage {
    buffer: Option<wgpu::Buffer>,
    class: u64,
    pool: Weak<BufferPool>,
}

impl Storage {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer
            .as_ref()
            .expect("storage buffer present until drop")
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let (Some(b), Some(pool)) = (self.buffer.take(), self.pool.upgrade()) {
            pool.give_back(b, self.class);
        }
    }
}

/// A tensor on the GPU: `shape.numel()` elements of `dtype` starting at `offset`
/// bytes into `storage` (bound as whole 4-byte words: an F16 tensor of odd size
/// has one padding half at the end). Cloning shares the storage.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) storage: Arc<Storage>,
    pub offset: u64,
    pub shape: Shape,
    pub dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({}, {:?})", self.shape, self.dtype)
    }
}

impl Tensor {
    /// Uninitialised tensor from the pool (contents are whatever the buffer held).
    pub fn empty(ctx: &Context, shape: Shape, dtype: DType) -> Result<Self> {
        let bytes = binding_bytes(shape, dtype);
        ctx.check_binding_size("tensor", &format!("a {shape} tensor"), bytes)?;
        let (buffer, class) = ctx.pool.take(bytes);
        Ok(Tensor {
            storage: Arc::new(Storage {
                buffer: Some(buffer),
                class,
                pool: Arc::downgrade(&ctx.pool),
            }),
            offset: 0,
            shape,
            dtype,
        })
    }

    /// Zero-filled tensor.
    pub fn zeros(ctx: &Context, shape: Shape, dtype: DType) -> Result<Self> {
        let t = Self::empty(ctx, shape, dtype)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.clear_buffer(t.buffer(), t.offset, Some(t.size_bytes()));
        ctx.queue.submit([enc.finish()]);
        Ok(t)
    }

    fn upload(ctx: &Context, bytes: &[u8], shape: Shape, dtype: DType) -> Result<Self> {
        if bytes.len() as u64 != shape.bytes_of(dtype) {
            return Err(Error::shape(
                "upload",
                format!(
                    "{} elements given for a {shape} tensor ({} elements)",
                    bytes.len() as u64 / dtype.size(),
                    shape.numel()
                ),
            ));
        }
        let t = Self::empty(ctx, shape, dtype)?;
        if !bytes.is_empty() {
            // write_buffer needs whole 4-byte words: pad an odd-length F16 upload.
            let mut padded;
            let words = if !bytes.len().is_multiple_of(4) {
                padded = bytes.to_vec();
                padded.resize(bytes.len().next_multiple_of(4), 0);
                &padded[..]
            } else {
                bytes
            };
            ctx.queue.write_buffer(t.buffer(), t.offset, words);
        }
        Ok(t)
    }

    pub fn from_f32(ctx: &Context, data: &[f32], shape: Shape) -> Result<Self> {
        Self::upload(ctx, bytemuck::cast_slice(data), shape, DType::F32)
    }
    pub fn from_u32(ctx: &Context, data: &[u32], shape: Shape) -> Result<Self> {
        Self::upload(ctx, bytemuck::cast_slice(data), shape, DType::U32)
    }
    pub fn from_i32(ctx: &Context, data: &[i32], shape: Shape) -> Result<Self> {
        Self::upload(ctx, bytemuck::cast_slice(data), shape, DType::I32)
    }
    /// An F16 tensor holding `data` rounded to half precision (round to nearest even).
    pub fn from_f32_as_f16(ctx: &Context, data: &[f32], shape: Shape) -> Result<Self> {
        let h: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
        Self::upload(ctx, bytemuck::cast_slice(&h), shape, DType::F16)
    }

    /// Wrap a buffer the host application owns (embedding). The buffer needs
    /// `STORAGE` usage (and `COPY_SRC` to read it back). `offset` must be a
    /// multiple of the device's `min_storage_buffer_offset_alignment`.
    pub fn from_buffer(
        ctx: &Context,
        buffer: wgpu::Buffer,
        offset: u64,
        shape: Shape,
        dtype: DType,
    ) -> Result<Self> {
        let align = ctx.limits.min_storage_buffer_offset_alignment as u64;
        if !offset.is_multiple_of(align) {
            return Err(Error::shape(
                "from_buffer",
                format!("offset {offset} is not a multiple of {align}"),
            ));
        }
        if offset + binding_bytes(shape, dtype) > buffer.size() {
            return Err(Error::shape(
                "from_buffer",
                format!(
                    "a {shape} {dtype:?} tensor at offset {offset} needs {} bytes; the buffer has {}",
                    binding_bytes(shape, dtype),
                    buffer.size()
                ),
            ));
        }
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(Error::Gpu(
                "from_buffer: the buffer lacks STORAGE usage".into(),
            ));
        }
        Ok(Tensor {
            storage: Arc::new(Storage {
                buffer: Some(buffer),
                class: 0,
                pool: Weak::new(),
            }),
            offset,
            shape,
            dtype,
        })
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        self.storage.buffer()
    }
    /// Bytes bound for this tensor (whole 4-byte words, at least one).
    pub fn size_bytes(&self) -> u64 {
        binding_bytes(self.shape, self.dtype)
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// The same storage seen with another shape of equal element count.
    pub fn reshape(&self, shape: Shape) -> Result<Self> {
        if shape.numel() != self.shape.numel() {
            return Err(Error::shape(
                "reshape",
                format!("{} -> {shape}: element counts differ", self.shape),
            ));
        }
        Ok(Tensor {
            shape,
            ..self.clone()
        })
    }

    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer(),
            offset: self.offset,
            size: wgpu::BufferSize::new(self.size_bytes()),
        })
    }

    /// Copy the contents back to the host (waits for all submitted work).
    pub fn read_bytes(&self, ctx: &Context) -> Result<Vec<u8>> {
        let size = self.size_bytes();
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wunet.readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(self.buffer(), self.offset, &staging, 0, size);
        ctx.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        ctx.wait()?;
        rx.recv()
            .map_err(|_| Error::Gpu("readback: map callback never ran".into()))?
            .map_err(|e| Error::Gpu(format!("readback: map failed: {e}")))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("readback: mapped range: {e}")))?;
        let mut out = view.to_vec();
        drop(view);
        staging.unmap();
        out.truncate(self.shape.bytes_of(self.dtype) as usize);
        Ok(out)
    }

    /// The values as f32 (F16 tensors are widened exactly; U32/I32 bits are reinterpreted).
    pub fn to_f32_vec(&self, ctx: &Context) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(ctx)?;
        if self.dtype == DType::F16 {
            let h: Vec<half::f16> = bytemuck::pod_collect_to_vec(&bytes);
            return Ok(h.into_iter().map(half::f16::to_f32).collect());
        }
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
    pub fn to_u32_vec(&self, ctx: &Context) -> Result<Vec<u32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(ctx)?))
    }
    pub fn to_i32_vec(&self, ctx: &Context) -> Result<Vec<i32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(ctx)?))
    }
}

/// Bytes a tensor's binding covers: its elements rounded up to whole 4-byte words, at least one.
pub fn binding_bytes(shape: Shape, dtype: DType) -> u64 {
    shape.bytes_of(dtype).next_multiple_of(4).max(4)
}

/// Usage flags of pooled buffers (for hosts that create buffers to wrap).
pub const TENSOR_USAGE: wgpu::BufferUsages = USAGE;
