//! Exchanging data with a host application's textures (embedding).
//!
//! A 2D tensor plane `[n, c, :, :]` maps to an `R32Float` texture of the same
//! width and height. Copies are recorded into the host's own encoder, so they
//! order naturally with the host's rendering and the engine's programs.

use super::context::Context;
use super::tensor::Tensor;
use crate::error::{Error, Result};

fn check(op: &'static str, t: &Tensor, tex: &wgpu::Texture, n: usize, c: usize) -> Result<u64> {
    let s = t.shape;
    if tex.format() != wgpu::TextureFormat::R32Float {
        return Err(Error::shape(
            op,
            format!(
                "texture format {:?}; only R32Float is supported",
                tex.format()
            ),
        ));
    }
    if s.d() != 1 || tex.width() as usize != s.w() || tex.height() as usize != s.h() {
        return Err(Error::shape(
            op,
            format!(
                "tensor {s} plane and texture {}x{} (WxH) must have the same size (2D only)",
                tex.width(),
                tex.height()
            ),
        ));
    }
    if n >= s.n() || c >= s.c() {
        return Err(Error::shape(
            op,
            format!("plane (n={n}, c={c}) is outside tensor {s}"),
        ));
    }
    Ok(t.offset + ((n * s.c() + c) * s.h() * s.w()) as u64 * 4)
}

/// Row runs `(first row, rows)` to copy: all at once when the row pitch meets wgpu's
/// 256-byte rule, else one row at a time.
fn row_runs(row_bytes: u64, h: u32) -> Vec<(u32, u32)> {
    if row_bytes.is_multiple_of(256) {
        vec![(0, h)]
    } else {
        (0..h).map(|y| (y, 1)).collect()
    }
}

/// Copy plane `(n, c)` of `t` into `tex` (usage `COPY_DST`). Rows are copied one by one
/// when `W*4` is not a multiple of 256 bytes (wgpu's row-pitch rule).
pub fn copy_tensor_to_texture(
    enc: &mut wgpu::CommandEncoder,
    t: &Tensor,
    n: usize,
    c: usize,
    tex: &wgpu::Texture,
) -> Result<()> {
    let base = check("copy_tensor_to_texture", t, tex, n, c)?;
    let (w, h) = (tex.width(), tex.height());
    let row = w as u64 * 4;
    let rows = row_runs(row, h);
    for (y0, nh) in rows {
        enc.copy_buffer_to_texture(
            wgpu::TexelCopyBufferInfo {
                buffer: t.buffer(),
                layout: wgpu::TexelCopyBufferLayout {
                    offset: base + y0 as u64 * row,
                    bytes_per_row: if nh > 1 { Some(row as u32) } else { None },
                    rows_per_image: None,
                },
            },
            wgpu::TexelCopyTextureInfo {
                texture: tex,
                mip_level: 0,
                origin: wgpu::Origin3d { x: 0, y: y0, z: 0 },
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::Extent3d {
                width: w,
                height: nh,
                depth_or_array_layers: 1,
            },
        );
    }
    Ok(())
}

/// Copy `tex` (usage `COPY_SRC`) into plane `(n, c)` of `t`.
pub fn copy_texture_to_tensor(
    enc: &mut wgpu::CommandEncoder,
    tex: &wgpu::Texture,
    t: &Tensor,
    n: usize,
    c: usize,
) -> Result<()> {
    let base = check("copy_texture_to_tensor", t, tex, n, c)?;
    let (w, h) = (tex.width(), tex.height());
    let row = w as u64 * 4;
    let rows = row_runs(row, h);
    for (y0, nh) in rows {
        enc.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture: tex,
                mip_level: 0,
                origin: wgpu::Origin3d { x: 0, y: y0, z: 0 },
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: t.buffer(),
                layout: wgpu::TexelCopyBufferLayout {
                    offset: base + y0 as u64 * row,
                    bytes_per_row: if nh > 1 { Some(row as u32) } else { None },
                    rows_per_image: None,
                },
            },
            wgpu::Extent3d {
                width: w,
                height: nh,
                depth_or_array_layers: 1,
            },
        );
    }
    Ok(())
}

/// The texels of layer 0 of a 2D texture (usage `COPY_SRC`), rows packed
/// without padding, as stored: a read-back for tests, screenshots and
/// debugging (it waits for the GPU).
pub fn read_texture(ctx: &Context, tex: &wgpu::Texture) -> Result<Vec<u8>> {
    let texel = tex.format().block_copy_size(None).ok_or_else(|| {
        Error::shape(
            "read_texture",
            format!("texture format {:?} cannot be copied whole", tex.format()),
        )
    })?;
    let (w, h) = (tex.width(), tex.height());
    let row = (w * texel) as usize;
    let pitch = row.div_ceil(256) * 256;
    let staging = Tensor::zeros(
        ctx,
        crate::shape::Shape::vector(pitch * h as usize / 4),
        crate::shape::DType::U32,
    )?;
    ctx.with_encoder(|enc| {
        enc.copy_texture_to_buffer(
            tex.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: staging.buffer(),
                layout: wgpu::TexelCopyBufferLayout {
                    offset: staging.offset,
                    bytes_per_row: Some(pitch as u32),
                    rows_per_image: None,
                },
            },
            wgpu::Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
        );
        Ok(())
    })?;
    let bytes = staging.read_bytes(ctx)?;
    Ok((0..h as usize)
        .flat_map(|y| bytes[y * pitch..y * pitch + row].iter().copied())
        .collect())
}

impl Context {
    /// A fresh encoder, `f` records into it, then one submission.
    pub fn with_encoder(
        &self,
        f: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<()> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        f(&mut enc)?;
        self.queue.submit([enc.finish()]);
        Ok(())
    }
}
