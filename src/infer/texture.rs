//! Segmenting a host application's texture on the GPU, inside the host's frame.
//!
//! [`TexturePredictor`] runs the same overlap-tile prediction as
//! [`Predictor`] (tiles fitted to the image, mirrored borders, Gaussian or
//! owned-region blending, flip TTA, the checkpoint's input normalisation) but
//! reads its input from a texture and writes class ids or a class
//! probability into a texture, with every step recorded into the host's own
//! `wgpu::CommandEncoder`: nothing goes through the CPU. The kernels are in
//! `kernels/texture_io.wgsl`; the host submits the encoder when it likes.
//!
//! ```no_run
//! # fn frame(ctx: &wunet::Context, input: &wgpu::Texture, mask: &wgpu::Texture) -> wunet::Result<()> {
//! use wunet::infer::texture::{TextureInput, TextureOutput, TexturePredictor};
//! let mut seg = TexturePredictor::from_checkpoint(
//!     ctx,
//!     std::path::Path::new("runs/default/best.safetensors"),
//!     &Default::default(),
//! )?;
//! let mut enc = ctx.device.create_command_encoder(&Default::default());
//! seg.encode(ctx, &mut enc, TextureInput::new(input), TextureOutput::Mask(mask))?;
//! // ... the host's own render pass reads `mask` here ...
//! ctx.queue.submit([enc.finish()]);
//! # Ok(()) }
//! ```

use super::predict::{load_checkpoint, PredictOptions, Predictor};
use super::tiles::plan;
use crate::data::dataset::Normalize;
use crate::data::tiling::{gaussian_weights, Blend, TilePlan};
use crate::error::{Error, Result};
use crate::gpu::{Context, Program, Recorder, Tensor};
use crate::model_io::checkpoint::Checkpoint;
use crate::model_io::InferMeta;
use crate::shape::{DType, Shape};
use std::path::{Path, PathBuf};
use wgpu::TextureFormat as F;

const KERNEL: &str = "texture_io";
/// Pixels per partial sum of the image statistics (a multiple of 256).
const MIN_CHUNK: usize = 4096;
/// At most this many partial sums (the final pass is one workgroup).
const MAX_PARTS: usize = 4096;

/// The texture to segment and which of its channels holds the image.
#[derive(Clone, Copy, Debug)]
pub struct TextureInput<'a> {
    /// A 2D texture with usage `COPY_SRC`: `R8Unorm`, `R16Unorm`, `R16Uint`,
    /// `R32Float`, or (one channel) `Rgba8Unorm`, `Rgba8UnormSrgb`,
    /// `Bgra8Unorm`, `Bgra8UnormSrgb`. Stored values are used (an 8-bit
    /// texel k reads as k, as `wunet predict` reads a PNG).
    pub texture: &'a wgpu::Texture,
    /// Channel of a 4-channel texture (0 = R, ..., 3 = A); 0 otherwise.
    pub channel: u32,
}

impl<'a> TextureInput<'a> {
    /// Channel 0 of `texture`.
    pub fn new(texture: &'a wgpu::Texture) -> Self {
        TextureInput {
            texture,
            channel: 0,
        }
    }
}

/// Where [`TexturePredictor::encode`] writes (a 2D texture of the input's
/// size with usage `COPY_DST`).
#[derive(Clone, Copy, Debug)]
pub enum TextureOutput<'a> {
    /// Class ids (argmax of the probabilities): `R8Uint` or `R32Uint`.
    Mask(&'a wgpu::Texture),
    /// The probability of `class`: `R32Float`, or `R8Unorm` (x 255).
    Probability {
        texture: &'a wgpu::Texture,
        class: usize,
    },
}

impl<'a> TextureOutput<'a> {
    /// The texture written.
    pub fn texture(&self) -> &'a wgpu::Texture {
        match *self {
            TextureOutput::Mask(t) => t,
            TextureOutput::Probability { texture, .. } => texture,
        }
    }
}

/// How the texel bytes of a supported input format are read.
#[derive(Clone, Copy, Debug, PartialEq)]
struct InputFormat {
    /// 0 = u8, 1 = u16, 2 = f32 (the decode kernel's codes).
    code: u32,
    texel_bytes: u32,
    channels: u32,
    /// Bytes per channel.
    channel_bytes: u32,
}

fn input_format(f: F) -> Option<InputFormat> {
    let (code, texel_bytes, channels, channel_bytes) = match f {
        F::R8Unorm => (0, 1, 1, 1),
        F::Rgba8Unorm | F::Rgba8UnormSrgb => (0, 4, 4, 1),
        F::Bgra8Unorm | F::Bgra8UnormSrgb => (0, 4, 4, 1),
        F::R16Unorm | F::R16Uint => (1, 2, 1, 2),
        F::R32Float => (2, 4, 1, 4),
        _ => return None,
    };
    Some(InputFormat {
        code,
        texel_bytes,
        channels,
        channel_bytes,
    })
}

/// The finish kernel's format code and bytes per texel of an output format.
fn output_format(out: &TextureOutput) -> Option<(u32, u32)> {
    let mask = matches!(out, TextureOutput::Mask(_));
    match (mask, out.texture().format()) {
        (true, F::R8Uint) => Some((0, 1)),
        (true, F::R32Uint) => Some((1, 4)),
        (false, F::R32Float) => Some((2, 4)),
        (false, F::R8Unorm) => Some((3, 1)),
        _ => None,
    }
}

/// Uniform parameters of `kernels/texture_io.wgsl` (field order as there).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    width: u32,
    height: u32,
    pitch_words: u32,
    format: u32,
    channel: u32,
    texel_bytes: u32,
    classes: u32,
    tile_h: u32,
    tile_w: u32,
    org_y: i32,
    org_x: i32,
    item: u32,
    flip: u32,
    full_h: u32,
    full_w: u32,
    crop_y: u32,
    crop_x: u32,
    lo_y: u32,
    lo_x: u32,
    hi_y: u32,
    hi_x: u32,
    blend: u32,
    first: u32,
    scale: f32,
    mode: u32,
    chunk: u32,
    parts: u32,
}

/// A predictor and its scratch memory for one texture size.
struct Sized {
    dims: [usize; 2],
    predictor: Predictor,
    plan: TilePlan,
    /// Texel rows as copied (padded to 256 bytes).
    raw: Tensor,
    img: Tensor,
    stats: Tensor,
    gauss: Tensor,
    acc: Tensor,
    /// Output rows (padded to 256 bytes).
    out: Tensor,
}

/// Overlap-tile prediction from a texture into a texture, recorded into the
/// host's encoder (see the module docs).
pub struct TexturePredictor {
    ck: Checkpoint,
    meta: InferMeta,
    path: PathBuf,
    opts: PredictOptions,
    normalize: Normalize,
    sized: Option<Sized>,
}

/// `row_bytes` rounded up to wgpu's 256-byte copy pitch.
fn pitch(row_bytes: u32) -> u32 {
    row_bytes.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT
}

impl TexturePredictor {
    /// Load a checkpoint written by `wunet train` (a 2D, one-channel model).
    pub fn from_checkpoint(ctx: &Context, path: &Path, opts: &PredictOptions) -> Result<Self> {
        let (ck, meta) = load_checkpoint(path)?;
        Self::from_loaded(ctx, ck, meta, path, opts)
    }

    /// As [`Self::from_checkpoint`], for a checkpoint already read from `path`.
    pub fn from_loaded(
        _ctx: &Context,
        ck: Checkpoint,
        meta: InferMeta,
        path: &Path,
        opts: &PredictOptions,
    ) -> Result<Self> {
        let cfg = meta.unet().map_err(|e| Error::file(path, e.to_string()))?;
        if cfg.dims != 2 || cfg.in_channels != 1 {
            return Err(Error::file(
                path,
                format!(
                    "texture prediction needs a 2D model with 1 input channel; this one is {}D with {} channels",
                    cfg.dims, cfg.in_channels
                ),
            ));
        }
        if opts.scale != 1.0 {
            return Err(Error::Other(format!(
                "PredictOptions::scale = {}: texture prediction runs at the texture's own resolution (1 only); resize the texture, or use Predictor",
                opts.scale
            )));
        }
        let normalize = match meta.dataset_options().normalize {
            n @ (Normalize::ZScore | Normalize::None) => n,
            Normalize::Percentile { .. } => {
                return Err(Error::file(
                    path,
                    "the checkpoint normalises input by percentiles, which texture prediction does not do on the GPU yet (zscore models only); use `wunet predict` or Predictor",
                ))
            }
            Normalize::Log => {
                return Err(Error::file(
                    path,
                    "the checkpoint normalises the log of its input (normalize = log), which texture prediction does not do on the GPU (zscore models only); use `wunet predict` or Predictor",
                ))
            }
            Normalize::Equalize(_) => {
                return Err(Error::file(
                    path,
                    format!("the checkpoint equalises its input (normalize = {}), which texture prediction does not do on the GPU (zscore models only); use `wunet predict` or Predictor", meta.normalize),
                ))
            }
        };
        Ok(TexturePredictor {
            ck,
            meta,
            path: path.to_path_buf(),
            opts: opts.clone(),
            normalize,
            sized: None,
        })
    }

    /// Classes of the model (the probability planes; mask values `0..classes`).
    pub fn classes(&self) -> usize {
        self.meta.model.classes
    }

    /// Stored label value of each class, from the checkpoint (e.g. ISBI:
    /// `[255, 0]`); the mask holds class ids.
    pub fn class_values(&self) -> &[i64] {
        &self.meta.class_values
    }

    /// Record the prediction of `input` into `output` in `encoder`: copy the
    /// texels, normalise, predict every tile batch, blend and write. The
    /// network is built (or reused) for the input's size on first use.
    pub fn encode(
        &mut self,
        ctx: &Context,
        encoder: &mut wgpu::CommandEncoder,
        input: TextureInput,
        output: TextureOutput,
    ) -> Result<()> {
        let fmt = check_input(&input)?;
        let (w, h) = (input.texture.width(), input.texture.height());
        let (out_code, out_bytes) = check_output(&output, w, h, self.classes())?;
        let (norm, opts) = (self.normalize, self.opts.clone());
        let sized = self.sized_for(ctx, [h as usize, w as usize])?;
        copy_in(encoder, input.texture, &sized.raw, fmt);
        let decode = ctx.record(|rec| record_decode(rec, sized, fmt, input.channel))?;
        decode.encode(encoder);
        let stats = ctx.record(|rec| record_stats(rec, sized, norm))?;
        stats.encode(encoder);
        encode_tiles(ctx, encoder, sized, norm, &opts)?;
        let finish = ctx.record(|rec| record_finish(rec, sized, &output, out_code, out_bytes))?;
        finish.encode(encoder);
        copy_out(encoder, &sized.out, &output, out_bytes);
        Ok(())
    }

    /// The `texture_io` dispatches of one [`Self::encode`] (decode,
    /// statistics, every item's extract and accumulate, the output rows) as
    /// one program, without the texel copies and the network, which are timed
    /// on their own: for benchmarking the I/O kernels (`wunet bench all`).
    /// Also returns the bytes those dispatches move (compulsory traffic).
    pub fn io_program(
        &mut self,
        ctx: &Context,
        input: TextureInput,
        output: TextureOutput,
    ) -> Result<(Program, f64)> {
        let fmt = check_input(&input)?;
        let (w, h) = (input.texture.width(), input.texture.height());
        let (code, out_bytes) = check_output(&output, w, h, self.classes())?;
        let (norm, opts) = (self.normalize, self.opts.clone());
        let s = self.sized_for(ctx, [h as usize, w as usize])?;
        let fl = flips(opts.tta);
        let items = s.plan.tiles.len() * fl.len();
        let prog = ctx.record(|rec| {
            record_decode(rec, s, fmt, input.channel)?;
            record_stats(rec, s, norm)?;
            for t in 0..s.plan.tiles.len() {
                for (f, &flip) in fl.iter().enumerate() {
                    let k = (t * fl.len() + f) % opts.batch.max(1);
                    record_extract(rec, s, norm, k, t, flip)?;
                    record_accumulate(rec, s, &opts, k, t, (f, flip, fl.len()))?;
                }
            }
            record_finish(rec, s, &output, code, out_bytes)
        })?;
        Ok((prog, io_bytes(s, fmt, out_bytes, items)))
    }

    /// The predictor and scratch tensors for a texture of `dims` (H, W),
    /// kept while the size stays the same.
    fn sized_for(&mut self, ctx: &Context, dims: [usize; 2]) -> Result<&Sized> {
        if self.sized.as_ref().is_none_or(|s| s.dims != dims) {
            self.sized = None;
            self.sized = Some(self.build_sized(ctx, dims)?);
        }
        self.sized
            .as_ref()
            .ok_or_else(|| Error::Other("texture predictor: no network".into()))
    }

    fn build_sized(&self, ctx: &Context, dims: [usize; 2]) -> Result<Sized> {
        let image = [1, dims[0], dims[1]];
        let predictor = Predictor::from_loaded(
            ctx,
            &self.ck,
            &self.meta,
            &self.path,
            None,
            Some(image),
            &self.opts,
        )?;
        let plan = plan(image, &predictor.geometry, self.opts.overlap)?;
        let n = dims[0] * dims[1];
        let words = |bytes_per_texel: u32| pitch(dims[1] as u32 * bytes_per_texel) as usize / 4;
        let parts = n.div_ceil(chunk_of(n));
        let classes = predictor.config.classes;
        Ok(Sized {
            dims,
            raw: Tensor::zeros(ctx, Shape::vector(words(4) * dims[0]), DType::U32)?,
            img: Tensor::zeros(ctx, Shape::vector(n), DType::F32)?,
            stats: Tensor::zeros(ctx, Shape::vector(2 + parts), DType::F32)?,
            gauss: Tensor::from_f32(
                ctx,
                &gaussian_weights(plan.out_tile, 1.0 / 8.0),
                Shape::vector(plan.out_tile.iter().product()),
            )?,
            acc: Tensor::zeros(ctx, Shape::vector((classes + 1) * n), DType::F32)?,
            out: Tensor::zeros(ctx, Shape::vector(words(4) * dims[0]), DType::U32)?,
            predictor,
            plan,
        })
    }
}

/// Compulsory bytes of [`TexturePredictor::io_program`]: texels read and the
/// image written (decode), the image read twice (statistics), per item the
/// input tile written and read from the image (extract) and the output tile
/// read with its accumulator planes read and written (accumulate), and the
/// planes read and the output rows written (finish).
fn io_bytes(s: &Sized, fmt: InputFormat, out_bytes: u32, items: usize) -> f64 {
    let n = (s.dims[0] * s.dims[1]) as f64;
    let c = s.predictor.config.classes as f64;
    let act = s.predictor.input_tensor().dtype.size() as f64;
    let tile_in: f64 = s.plan.in_tile.iter().product::<usize>() as f64;
    let tile_out: f64 = s.plan.out_tile.iter().product::<usize>() as f64;
    let decode = n * (fmt.texel_bytes as f64 + 4.0);
    let stats = 2.0 * n * 4.0;
    let per_item = tile_in * (act + 4.0) + tile_out * (c * act + 2.0 * (c + 1.0) * 4.0);
    let finish = n * ((c + 1.0) * 4.0 + out_bytes as f64);
    decode + stats + items as f64 * per_item + finish
}

/// Pixels per partial sum for an image of `n` pixels.
fn chunk_of(n: usize) -> usize {
    n.div_ceil(MAX_PARTS).div_ceil(256).max(MIN_CHUNK / 256) * 256
}

/// `input texture (640x480 R8Unorm)`: how errors name a texture (wgpu keeps
/// no label to read back).
fn name(what: &str, t: &wgpu::Texture) -> String {
    format!(
        "{what} texture ({}x{} {:?})",
        t.width(),
        t.height(),
        t.format()
    )
}

fn usage_error(what: &str, t: &wgpu::Texture, need: wgpu::TextureUsages) -> Error {
    Error::shape(
        "TexturePredictor::encode",
        format!(
            "{} lacks usage {need:?} (it has {:?})",
            name(what, t),
            t.usage()
        ),
    )
}

fn check_plain_2d(what: &str, t: &wgpu::Texture) -> Result<()> {
    if t.dimension() != wgpu::TextureDimension::D2
        || t.depth_or_array_layers() != 1
        || t.sample_count() != 1
    {
        return Err(Error::shape(
            "TexturePredictor::encode",
            format!(
                "{} must be a single-sampled 2D texture with one layer ({:?}, {} layers, {} samples)",
                name(what, t),
                t.dimension(),
                t.depth_or_array_layers(),
                t.sample_count()
            ),
        ));
    }
    Ok(())
}

fn check_input(input: &TextureInput) -> Result<InputFormat> {
    let t = input.texture;
    check_plain_2d("input", t)?;
    let fmt = input_format(t.format()).ok_or_else(|| {
        Error::shape(
            "TexturePredictor::encode",
            format!(
                "{}: expected R8Unorm, R16Unorm, R16Uint, R32Float or Rgba8Unorm/Bgra8Unorm (one channel)",
                name("input", t)
            ),
        )
    })?;
    if input.channel >= fmt.channels {
        return Err(Error::shape(
            "TexturePredictor::encode",
            format!(
                "{} has {} channel(s); channel {} asked",
                name("input", t),
                fmt.channels,
                input.channel
            ),
        ));
    }
    if !t.usage().contains(wgpu::TextureUsages::COPY_SRC) {
        return Err(usage_error("input", t, wgpu::TextureUsages::COPY_SRC));
    }
    Ok(fmt)
}

fn check_output(out: &TextureOutput, w: u32, h: u32, classes: usize) -> Result<(u32, u32)> {
    if let TextureOutput::Probability { class, .. } = *out {
        if class >= classes {
            return Err(Error::shape(
                "TexturePredictor::encode",
                format!("probability of class {class} asked; the model has {classes} classes"),
            ));
        }
    }
    let t = out.texture();
    check_plain_2d("output", t)?;
    let codes = output_format(out).ok_or_else(|| {
        Error::shape(
            "TexturePredictor::encode",
            format!(
                "{}: a mask needs R8Uint or R32Uint, a probability R32Float or R8Unorm",
                name("output", t)
            ),
        )
    })?;
    if (t.width(), t.height()) != (w, h) {
        return Err(Error::shape(
            "TexturePredictor::encode",
            format!(
                "{}: must have the input's size {w}x{h} (W x H)",
                name("output", t)
            ),
        ));
    }
    if !t.usage().contains(wgpu::TextureUsages::COPY_DST) {
        return Err(usage_error("output", t, wgpu::TextureUsages::COPY_DST));
    }
    Ok(codes)
}

fn copy_in(enc: &mut wgpu::CommandEncoder, tex: &wgpu::Texture, raw: &Tensor, fmt: InputFormat) {
    let row = pitch(tex.width() * fmt.texel_bytes);
    enc.copy_texture_to_buffer(
        tex.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: raw.buffer(),
            layout: wgpu::TexelCopyBufferLayout {
                offset: raw.offset,
                bytes_per_row: Some(row),
                rows_per_image: None,
            },
        },
        tex.size(),
    );
}

fn copy_out(enc: &mut wgpu::CommandEncoder, out: &Tensor, target: &TextureOutput, bytes: u32) {
    let tex = target.texture();
    enc.copy_buffer_to_texture(
        wgpu::TexelCopyBufferInfo {
            buffer: out.buffer(),
            layout: wgpu::TexelCopyBufferLayout {
                offset: out.offset,
                bytes_per_row: Some(pitch(tex.width() * bytes)),
                rows_per_image: None,
            },
        },
        tex.as_image_copy(),
        tex.size(),
    );
}

/// One dispatch of `entry` over `threads` invocations (256 per workgroup),
/// with every binding of the kernel bound (`tile`: the network tensor the
/// entry point uses).
fn dispatch(
    rec: &mut Recorder,
    s: &Sized,
    entry: &'static str,
    p: &Params,
    tile: &Tensor,
    threads: usize,
) -> Result<()> {
    let groups = rec.grid(threads.div_ceil(256) as u64)?;
    rec.dispatch(
        KERNEL,
        entry,
        &[],
        p,
        &[&s.raw, &s.img, &s.stats, &s.gauss, tile, &s.acc, &s.out],
        groups,
    )
}

fn base_params(s: &Sized) -> Params {
    Params {
        n: (s.dims[0] * s.dims[1]) as u32,
        width: s.dims[1] as u32,
        height: s.dims[0] as u32,
        classes: s.predictor.config.classes as u32,
        scale: 1.0,
        ..Params::default()
    }
}

fn record_decode(rec: &mut Recorder, s: &Sized, fmt: InputFormat, channel: u32) -> Result<()> {
    let p = Params {
        pitch_words: pitch(s.dims[1] as u32 * fmt.texel_bytes) / 4,
        format: fmt.code,
        channel: channel * fmt.channel_bytes,
        texel_bytes: fmt.texel_bytes,
        ..base_params(s)
    };
    dispatch(
        rec,
        s,
        "decode",
        &p,
        s.predictor.input_tensor(),
        p.n as usize,
    )
}

/// Mean, then the z-score scale, as `data::dataset::normalize` (two passes).
fn record_stats(rec: &mut Recorder, s: &Sized, norm: Normalize) -> Result<()> {
    if norm != Normalize::ZScore {
        return Ok(());
    }
    let n = s.dims[0] * s.dims[1];
    let chunk = chunk_of(n);
    let parts = n.div_ceil(chunk);
    let t = s.predictor.input_tensor();
    for mode in [0, 1] {
        let p = Params {
            mode,
            chunk: chunk as u32,
            parts: parts as u32,
            ..base_params(s)
        };
        dispatch(rec, s, "sum_partial", &p, t, parts * 256)?;
        dispatch(rec, s, "sum_final", &p, t, 1)?;
    }
    Ok(())
}

/// The flips of test-time augmentation (bit 0: x, bit 1: y), as the CPU
/// predictor orders them.
fn flips(tta: bool) -> Vec<u32> {
    if tta {
        vec![0, 2, 1, 3]
    } else {
        vec![0]
    }
}

/// Every batch of (tile, flip) items: extract, the network, accumulate.
fn encode_tiles(
    ctx: &Context,
    enc: &mut wgpu::CommandEncoder,
    s: &Sized,
    norm: Normalize,
    opts: &PredictOptions,
) -> Result<()> {
    enc.clear_buffer(s.acc.buffer(), s.acc.offset, Some(s.acc.size_bytes()));
    let fl = flips(opts.tta);
    let items: Vec<(usize, usize)> = (0..s.plan.tiles.len())
        .flat_map(|t| (0..fl.len()).map(move |f| (t, f)))
        .collect();
    for chunk in items.chunks(opts.batch.max(1)) {
        let extract = ctx.record(|rec| {
            for (k, &(t, f)) in chunk.iter().enumerate() {
                record_extract(rec, s, norm, k, t, fl[f])?;
            }
            Ok(())
        })?;
        extract.encode(enc);
        s.predictor.encode_network(enc);
        let acc = ctx.record(|rec| {
            for (k, &(t, f)) in chunk.iter().enumerate() {
                record_accumulate(rec, s, opts, k, t, (f, fl[f], fl.len()))?;
            }
            Ok(())
        })?;
        acc.encode(enc);
    }
    Ok(())
}

fn record_extract(
    rec: &mut Recorder,
    s: &Sized,
    norm: Normalize,
    item: usize,
    tile: usize,
    flip: u32,
) -> Result<()> {
    let t = &s.plan.tiles[tile];
    let it = s.plan.in_tile;
    let p = Params {
        tile_h: it[1] as u32,
        tile_w: it[2] as u32,
        org_y: t.in_origin[1] as i32,
        org_x: t.in_origin[2] as i32,
        item: item as u32,
        flip,
        mode: u32::from(norm == Normalize::ZScore),
        ..base_params(s)
    };
    dispatch(
        rec,
        s,
        "extract",
        &p,
        s.predictor.input_tensor(),
        it[1] * it[2],
    )
}

/// Add item `item`'s output (flip `f.1`, the `f.0`-th of `f.2`) for `tile`.
fn record_accumulate(
    rec: &mut Recorder,
    s: &Sized,
    opts: &PredictOptions,
    item: usize,
    tile: usize,
    f: (usize, u32, usize),
) -> Result<()> {
    let t = &s.plan.tiles[tile];
    let (ot, it) = (s.plan.out_tile, s.plan.in_tile);
    let logits = s.predictor.logits_tensor();
    let full = logits.shape.spatial();
    let crop = if full == ot {
        [0; 3]
    } else {
        std::array::from_fn(|a| (it[a] - ot[a]) / 2)
    };
    let img = [1, s.dims[0], s.dims[1]];
    let (lo, hi) = match opts.blend {
        Blend::None => (t.own_lo, t.own_hi),
        Blend::Gaussian => (
            [0; 3],
            std::array::from_fn(|a| ot[a].min(img[a] - t.out_origin[a])),
        ),
    };
    let p = Params {
        tile_h: ot[1] as u32,
        tile_w: ot[2] as u32,
        org_y: t.out_origin[1] as i32,
        org_x: t.out_origin[2] as i32,
        item: item as u32,
        flip: f.1,
        full_h: full[1] as u32,
        full_w: full[2] as u32,
        crop_y: crop[1] as u32,
        crop_x: crop[2] as u32,
        lo_y: lo[1] as u32,
        lo_x: lo[2] as u32,
        hi_y: hi[1] as u32,
        hi_x: hi[2] as u32,
        blend: u32::from(opts.blend == Blend::Gaussian),
        first: u32::from(f.0 == 0),
        scale: 1.0 / f.2 as f32,
        ..base_params(s)
    };
    dispatch(
        rec,
        s,
        "accumulate",
        &p,
        logits,
        (hi[1] - lo[1]) * (hi[2] - lo[2]),
    )
}

fn record_finish(
    rec: &mut Recorder,
    s: &Sized,
    out: &TextureOutput,
    code: u32,
    bytes: u32,
) -> Result<()> {
    let class = match out {
        TextureOutput::Mask(_) => 0,
        TextureOutput::Probability { class, .. } => *class as u32,
    };
    let p = Params {
        pitch_words: pitch(s.dims[1] as u32 * bytes) / 4,
        format: code,
        channel: class,
        texel_bytes: bytes,
        blend: u32::from(s.predictor.opts.blend == Blend::Gaussian),
        ..base_params(s)
    };
    let words = p.pitch_words as usize * s.dims[0];
    dispatch(rec, s, "finish", &p, s.predictor.input_tensor(), words)
}
