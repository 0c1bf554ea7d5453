//! The overlap-tile predictor: one inference graph (batch norm in eval mode)
//! on the GPU executor, fed batches of mirrored tiles.
//!
//! Memory: the host holds the image, the output (`classes` x image, plus one
//! weight sum for Gaussian blending) and one batch of tiles; the GPU holds
//! the network for one batch of input tiles. Flip test-time augmentation
//! runs every flip of a tile (4 in 2D, 8 in 3D) as batch items, unflips the
//! outputs and averages their softmax.

use super::tiles::{fit_geometry, plan, tile_geometry, TileGeometry};
use crate::data::tiling::{Accumulator, Blend, Tile};
use crate::data::{numel, ChannelVolume, Volume};
use crate::error::{Error, Result};
use crate::exec::{ExecOptions, Executor};
use crate::gpu::{Context, Tensor};
use crate::graph::ValueId;
use crate::model_io::checkpoint::{self, Checkpoint};
use crate::model_io::{parse_dims, InferMeta};
use crate::models::{build_unet_with, Mode, UNetConfig};
use crate::shape::Precision;
use std::path::Path;

/// How a [`Predictor`] runs.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictOptions {
    /// Tiles per GPU submission.
    pub batch: usize,
    pub blend: Blend,
    /// Flip test-time augmentation.
    pub tta: bool,
    /// Share of the output tile that neighbouring tiles overlap (at least).
    pub overlap: f32,
    /// Activation storage of the network (mixed: f16 activations; the
    /// checkpoint's f32 weights are used as they are).
    pub precision: Precision,
    /// The image's (y, x) is resized by this factor before the network, the
    /// output back to the image's size (1: none; `wunet predict --scale`).
    pub scale: f32,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            batch: 1,
            blend: Blend::Gaussian,
            tta: false,
            overlap: 0.25,
            precision: Precision::F32,
            scale: 1.0,
        }
    }
}

impl PredictOptions {
    /// The defaults a checkpoint asks for: its blend and its test-time
    /// flips (the training keys `blend` and `tta`), the rest as
    /// [`Default`]. `wunet predict` starts from these before its flags.
    pub fn from_meta(meta: &InferMeta) -> Result<Self> {
        Ok(PredictOptions {
            blend: parse_blend(&meta.blend)?,
            tta: meta.tta,
            ..Default::default()
        })
    }
}

/// What [`Predictor::run`] accumulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Softmax probabilities (averaged over flips with TTA).
    Probabilities,
    /// Raw logits (averaged over flips with TTA).
    Logits,
}

pub struct Predictor {
    /// Show the tiles done on stderr (a bar on a terminal, else a line
    /// every tenth of the tiles); off by default (training's validation).
    pub progress: bool,
    pub config: UNetConfig,
    pub geometry: TileGeometry,
    pub opts: PredictOptions,
    exec: Executor,
    input: ValueId,
    logits: ValueId,
}

pub use crate::model_io::checkpoint::is_optimizer_state;

/// Parse `gaussian` / `none`.
pub fn parse_blend(s: &str) -> Result<Blend> {
    match s {
        "gaussian" => Ok(Blend::Gaussian),
        "none" => Ok(Blend::None),
        _ => Err(Error::Other(format!(
            "blend '{s}': expected gaussian or none"
        ))),
    }
}

/// Load a checkpoint and its inference metadata.
pub fn load_checkpoint(path: &Path) -> Result<(Checkpoint, InferMeta)> {
    let ck = checkpoint::load(path)?;
    let meta = InferMeta::from_checkpoint(&ck, path)?;
    Ok((ck, meta))
}

impl Predictor {
    /// A predictor whose input tile is `request` rounded up to a size that
    /// works (see [`super::tiles`]), shrunk while one tensor of it would
    /// exceed the device's binding limit; weights are uninitialised until
    /// [`Self::load`].
    pub fn new(
        ctx: &Context,
        cfg: &UNetConfig,
        request: [usize; 3],
        opts: &PredictOptions,
    ) -> Result<Self> {
        Self::shrinking(ctx, cfg, request, opts, |r| tile_geometry(cfg, r))
    }

    /// As [`Self::new`], with the tile shrunk to what `image` needs.
    pub fn for_image(
        ctx: &Context,
        cfg: &UNetConfig,
        request: [usize; 3],
        image: [usize; 3],
        opts: &PredictOptions,
    ) -> Result<Self> {
        Self::shrinking(ctx, cfg, request, opts, |r| fit_geometry(cfg, r, image))
    }

    fn shrinking(
        ctx: &Context,
        cfg: &UNetConfig,
        mut request: [usize; 3],
        opts: &PredictOptions,
        geometry: impl Fn([usize; 3]) -> Result<TileGeometry>,
    ) -> Result<Self> {
        let mut tried: Option<[usize; 3]> = None;
        loop {
            let g = geometry(request)?;
            match Self::with_geometry(ctx, cfg, g, opts) {
                // shrink the longest axis by a quarter and try again, while
                // that still changes the tile (the geometry rounds requests
                // up to sizes the network takes)
                Err(Error::TooLarge { .. })
                    if tried != Some(g.in_tile)
                        && g.in_tile.iter().any(|&l| l > 2 << cfg.depth) =>
                {
                    tried = Some(g.in_tile);
                    let a = (0..3).max_by_key(|&a| g.in_tile[a]).unwrap_or(2);
                    request = g.in_tile;
                    request[a] = (g.in_tile[a] * 3 / 4).max(1);
                }
                r => return r,
            }
        }
    }

    fn with_geometry(
        ctx: &Context,
        cfg: &UNetConfig,
        g: TileGeometry,
        opts: &PredictOptions,
    ) -> Result<Self> {
        if opts.batch == 0 {
            return Err(Error::Other("predict: batch must be positive".into()));
        }
        let spatial: Vec<usize> = g.in_tile[3 - cfg.dims..].to_vec();
        let net = build_unet_with(cfg, opts.batch, &spatial, &Mode::Inference, opts.precision)?;
        let out = net.graph.shape(net.logits).spatial();
        // Same padding keeps the full size; valid gives exactly the out tile.
        if out != g.in_tile && out != g.out_tile {
            return Err(Error::Other(format!(
                "predict: tile {:?} gives output {out:?}, expected {:?}",
                g.in_tile, g.out_tile
            )));
        }
        let exec = Executor::new(
            ctx,
            net.graph.clone(),
            &ExecOptions {
                seed: 0,
                keep: vec![net.logits],
                ..Default::default()
            },
        )?;
        Ok(Predictor {
            progress: false,
            config: cfg.clone(),
            geometry: g,
            opts: opts.clone(),
            exec,
            input: net.input,
            logits: net.logits,
        })
    }

    /// Load the model tensors of a checkpoint read from `path` (optimiser
    /// state is ignored; a missing, extra or misshapen tensor is an error
    /// naming the file and the tensor).
    pub fn load(&mut self, ctx: &Context, ck: &Checkpoint, path: &Path) -> Result<()> {
        let model = ck.without_optimizer_state();
        model.check_against(path, &self.exec.expected_tensors(false))?;
        self.exec.import(ctx, &model)
    }

    /// Build a predictor from a checkpoint file: tile from `tile` or the
    /// checkpoint's default, shrunk to `image` dims when given. Returns the
    /// metadata too.
    pub fn from_checkpoint(
        ctx: &Context,
        path: &Path,
        tile: Option<[usize; 3]>,
        image: Option<[usize; 3]>,
        opts: &PredictOptions,
    ) -> Result<(Predictor, InferMeta)> {
        let (ck, meta) = load_checkpoint(path)?;
        let p = Self::from_loaded(ctx, &ck, &meta, path, tile, image, opts)?;
        Ok((p, meta))
    }

    /// As [`Self::from_checkpoint`], for a checkpoint already read from `path`.
    pub fn from_loaded(
        ctx: &Context,
        ck: &Checkpoint,
        meta: &InferMeta,
        path: &Path,
        tile: Option<[usize; 3]>,
        image: Option<[usize; 3]>,
        opts: &PredictOptions,
    ) -> Result<Predictor> {
        let cfg = meta.unet().map_err(|e| Error::file(path, e.to_string()))?;
        let request = match tile {
            Some(t) => t,
            None => parse_dims("tile", &meta.tile, cfg.dims)
                .map_err(|e| Error::file(path, e.to_string()))?,
        };
        let mut p = match image {
            Some(d) => Self::for_image(ctx, &cfg, request, d, opts)?,
            None => Self::new(ctx, &cfg, request, opts)?,
        };
        p.load(ctx, ck, path)?;
        Ok(p)
    }

    /// The network's input tensor (`batch x channels x in_tile`), for
    /// feeding it on the GPU (see [`super::texture`]).
    pub fn input_tensor(&self) -> &Tensor {
        self.exec.tensor(self.input)
    }

    /// The network's output tensor (logits, `batch x classes x` its output size).
    pub fn logits_tensor(&self) -> &Tensor {
        self.exec.tensor(self.logits)
    }

    /// Record one forward pass over the current input tensor into `encoder`.
    pub fn encode_network(&self, encoder: &mut wgpu::CommandEncoder) {
        self.exec.encode_step(encoder);
    }

    /// Class probabilities of a whole image or volume (`classes` x dims).
    pub fn predict(&mut self, ctx: &Context, image: &Volume) -> Result<ChannelVolume> {
        self.run(ctx, image, Output::Probabilities)
    }

    /// Tile, run and assemble; with [`PredictOptions::scale`] on the
    /// resized image, the output resized back (linear).
    pub fn run(&mut self, ctx: &Context, image: &Volume, output: Output) -> Result<ChannelVolume> {
        use crate::data::resize::{resize_channels, resize_linear, zoomed_dims};
        let f = self.opts.scale;
        if f != 1.0 && image.data.len() == numel(image.dims) {
            let d = zoomed_dims(image.dims, f);
            if d != image.dims {
                let out = self.run_unscaled(ctx, &resize_linear(image, d), output)?;
                return Ok(resize_channels(&out, image.dims));
            }
        }
        self.run_unscaled(ctx, image, output)
    }

    fn run_unscaled(
        &mut self,
        ctx: &Context,
        image: &Volume,
        output: Output,
    ) -> Result<ChannelVolume> {
        if image.data.len() != numel(image.dims) || (self.config.dims == 2 && image.dims[0] != 1) {
            return Err(Error::shape(
                "predict",
                format!("image {:?} for a {}D U-Net", image.dims, self.config.dims),
            ));
        }
        let tplan = plan(image.dims, &self.geometry, self.opts.overlap)?;
        let mut acc = Accumulator::new(&tplan, self.config.classes, self.opts.blend);
        self.run_tiles(
            ctx,
            &tplan.tiles,
            output,
            |t| tplan.extract(image, t),
            |t, out| acc.add(t, out),
        )?;
        Ok(acc.finish())
    }

    /// Run the network over `tiles` in order: `input_of` gives a tile's
    /// input window (`in_tile` voxels), `sink` receives its output tile
    /// (`classes x out_tile`, averaged over the flips of TTA). Batches of
    /// [`PredictOptions::batch`] items; a tile is handed on after its last flip.
    pub fn run_tiles(
        &mut self,
        ctx: &Context,
        tiles: &[Tile],
        output: Output,
        mut input_of: impl FnMut(&Tile) -> Result<Vec<f32>>,
        mut sink: impl FnMut(&Tile, &[f32]) -> Result<()>,
    ) -> Result<()> {
        let g = self.geometry;
        let classes = self.config.classes;
        let flips = tta_flips(self.opts.tta, g.in_tile);
        let b = self.opts.batch;
        let (ni, no) = (numel(g.in_tile), numel(g.out_tile));
        // Work items: (tile, flip); a tile's result is complete after its last flip.
        let items: Vec<(usize, usize)> = (0..tiles.len())
            .flat_map(|t| (0..flips.len()).map(move |f| (t, f)))
            .collect();
        let mut input = vec![0.0f32; b * ni];
        let mut sum = vec![0.0f32; classes * no];
        let mut cur_tile = usize::MAX;
        // the mirrored crop of the current tile, shared by its flips
        let mut cut: Option<(usize, Vec<f32>)> = None;
        let mut shown = TileProgress::start(self.progress, tiles.len(), items.len());
        for chunk in items.chunks(b) {
            shown.advance(chunk.len());
            input.iter_mut().for_each(|v| *v = 0.0);
            for (k, &(t, f)) in chunk.iter().enumerate() {
                if cut.as_ref().is_none_or(|c| c.0 != t) {
                    cut = Some((t, input_of(&tiles[t])?));
                }
                if let Some((_, tile)) = &cut {
                    flip_into(tile, g.in_tile, flips[f], &mut input[k * ni..(k + 1) * ni]);
                }
            }
            self.exec.write_f32(ctx, self.input, &input)?;
            self.exec.run(ctx, 0.0)?;
            let full = self.exec.read_f32(ctx, self.logits)?;
            let full_spatial = full.len() / (b * classes);
            for (k, &(t, f)) in chunk.iter().enumerate() {
                if t != cur_tile {
                    sum.iter_mut().for_each(|v| *v = 0.0);
                    cur_tile = t;
                }
                let item = &full[k * classes * full_spatial..(k + 1) * classes * full_spatial];
                let mut out = crop_centre(item, classes, g.in_tile, full_spatial, g.out_tile);
                if output == Output::Probabilities {
                    softmax(&mut out, classes);
                }
                let unflipped = unflip(&out, classes, g.out_tile, flips[f]);
                for (s, v) in sum.iter_mut().zip(&unflipped) {
                    *s += v;
                }
                if f + 1 == flips.len() {
                    let inv = 1.0 / flips.len() as f32;
                    sum.iter_mut().for_each(|v| *v *= inv);
                    sink(&tiles[t], &sum)?;
                }
            }
        }
        shown.finish();
        Ok(())
    }
}

/// The flips of test-time augmentation (every flip of the tile's axes
/// longer than 1), or none.
fn tta_flips(tta: bool, in_tile: [usize; 3]) -> Vec<[bool; 3]> {
    if !tta {
        return vec![[false; 3]];
    }
    let axes: Vec<usize> = (0..3).filter(|&a| in_tile[a] > 1).collect();
    (0..1usize << axes.len())
        .map(|m| {
            let mut f = [false; 3];
            for (k, &a) in axes.iter().enumerate() {
                f[a] = m >> k & 1 == 1;
            }
            f
        })
        .collect()
}

/// The tiles of one image done so far, on stderr.
struct TileProgress {
    bar: Option<indicatif::ProgressBar>,
    /// Without a terminal: print a line every `every` items.
    lines: Option<usize>,
    done: usize,
    total: usize,
    tiles: usize,
}

impl TileProgress {
    fn start(show: bool, tiles: usize, total: usize) -> Self {
        let bar = indicatif::ProgressBar::new(total as u64);
        let terminal = show && !bar.is_hidden() && total > 1;
        if let Ok(st) = indicatif::ProgressStyle::with_template(
            "  tiles {bar:30} {pos}/{len} ({per_sec}, ETA {eta})",
        ) {
            bar.set_style(st);
        }
        TileProgress {
            bar: terminal.then_some(bar),
            lines: (show && !terminal && total > 1).then_some(total.div_ceil(10).max(1)),
            done: 0,
            total,
            tiles,
        }
    }

    fn advance(&mut self, n: usize) {
        let before = self.done;
        self.done += n;
        if let Some(b) = &self.bar {
            b.set_position(self.done as u64);
        }
        if let Some(every) = self.lines {
            if before / every != self.done / every || self.done == self.total {
                eprintln!(
                    "  tiles: {}/{} ({} tiles x flips)",
                    self.done, self.total, self.tiles
                );
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The output tile: the network output as is (valid convs: `full_spatial ==
/// out`), or its centre (same padding: `full_spatial == in`).
fn crop_centre(
    item: &[f32],
    classes: usize,
    in_tile: [usize; 3],
    full_spatial: usize,
    out: [usize; 3],
) -> Vec<f32> {
    let no = numel(out);
    if full_spatial == no {
        return item.to_vec();
    }
    let c: [usize; 3] = std::array::from_fn(|a| (in_tile[a] - out[a]) / 2);
    let mut v = Vec::with_capacity(classes * no);
    for ch in 0..classes {
        let base = ch * full_spatial;
        for z in 0..out[0] {
            for y in 0..out[1] {
                let s = base + ((z + c[0]) * in_tile[1] + y + c[1]) * in_tile[2] + c[2];
                v.extend_from_slice(&item[s..s + out[2]]);
            }
        }
    }
    v
}

/// Softmax over channels, in place (`classes` planes).
fn softmax(v: &mut [f32], classes: usize) {
    let n = v.len() / classes;
    for i in 0..n {
        let m = (0..classes)
            .map(|c| v[c * n + i])
            .fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0;
        for c in 0..classes {
            let e = (v[c * n + i] - m).exp();
            v[c * n + i] = e;
            s += e;
        }
        for c in 0..classes {
            v[c * n + i] /= s;
        }
    }
}

/// Copy `src` (dims `d`) into `dst` flipped along the marked axes.
fn flip_into(src: &[f32], d: [usize; 3], f: [bool; 3], dst: &mut [f32]) {
    let m = |i: usize, a: usize| if f[a] { d[a] - 1 - i } else { i };
    for z in 0..d[0] {
        for y in 0..d[1] {
            let (sz, sy) = (m(z, 0), m(y, 1));
            let srow = (sz * d[1] + sy) * d[2];
            let drow = (z * d[1] + y) * d[2];
            if f[2] {
                for x in 0..d[2] {
                    dst[drow + x] = src[srow + d[2] - 1 - x];
                }
            } else {
                dst[drow..drow + d[2]].copy_from_slice(&src[srow..srow + d[2]]);
            }
        }
    }
}

/// Undo a flip on every channel plane.
fn unflip(v: &[f32], classes: usize, d: [usize; 3], f: [bool; 3]) -> Vec<f32> {
    if f == [false; 3] {
        return v.to_vec();
    }
    let n = numel(d);
    let mut out = vec![0.0; v.len()];
    for c in 0..classes {
        flip_into(&v[c * n..(c + 1) * n], d, f, &mut out[c * n..(c + 1) * n]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_are_involutions() {
        let d = [2, 3, 4];
        let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
        for m in 0..8 {
            let f = [m & 1 == 1, m & 2 == 2, m & 4 == 4];
            let mut a = vec![0.0; 24];
            flip_into(&v, d, f, &mut a);
            assert_eq!(unflip(&a, 1, d, f), v);
        }
        let mut a = vec![0.0; 24];
        flip_into(&v, d, [false, false, true], &mut a);
        assert_eq!(&a[..4], &[3.0, 2.0, 1.0, 0.0]);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut v = vec![1.0, -2.0, 3.0, 0.5];
        softmax(&mut v, 2);
        assert!((v[0] + v[2] - 1.0).abs() < 1e-6 && (v[1] + v[3] - 1.0).abs() < 1e-6);
        assert!(v[2] > v[0]);
    }
}
