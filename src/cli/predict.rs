//! `wunet predict`: overlap-tile inference of one image or volume of any
//! size with a checkpoint written by `wunet train`.

use super::predict_zarr::{self, required, ZarrFlags};
use crate::data::dataset::{normalize, normalize_sections};
use crate::data::instances::{
    check_seed_threshold, watershed_instances, WatershedOptions, DEFAULT_SEED_THRESHOLD,
    NECK_RATIO_RANGE,
};
use crate::data::io::read_image;
use crate::data::objects::{scale_for_diameter, DiameterError, SCALE_RANGE};
use crate::data::{ChannelVolume, Volume};
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::infer::ensemble::{load_members, predict_mean};
use crate::infer::output::{write_instances, write_labels, write_overlay, write_probabilities};
use crate::infer::predict::{parse_blend, PredictOptions, Predictor};
use crate::model_io::{parse_dims, Checkpoint, InferMeta};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    /// A checkpoint written by `wunet train` (best.safetensors or
    /// last.safetensors). Several (the flag repeated, or several paths after
    /// it) are an ensemble: every one predicts the image and their class
    /// probabilities are averaged (they must agree on dims, channels,
    /// classes, label values and normalisation; files, not block-wise Zarr).
    #[arg(long, required_unless_present = "status", num_args = 1.., action = clap::ArgAction::Append)]
    pub checkpoint: Vec<PathBuf>,
    /// Image or volume: .png, .tif/.tiff (multi-page = volume) or .npy (z, y, x),
    /// or a Zarr / OME-Zarr store (vol.zarr, vol.zarr/path/to/array), predicted
    /// block by block, or a folder of images (every one; --output,
    /// --overlay and --probabilities are then folders). A 2D model predicts a
    /// volume section by section.
    #[arg(long, required_unless_present = "status")]
    pub input: Option<PathBuf>,
    /// Label output (.png, .tif/.tiff, .npy, or .zarr for a Zarr input), in the
    /// training data's label values; with instances, the object ids (0 =
    /// background, 1..N): a 16-bit PNG, a u32 .npy or a uint32 Zarr store.
    /// For a folder input, a folder (created if missing): NAME.EXT per image.
    #[arg(long, required_unless_present = "status")]
    pub output: Option<PathBuf>,
    /// Instance segmentation: write object ids (seeded watershed of the
    /// background / interior / boundary classes). The default for a
    /// checkpoint trained with --instances; an error for any other.
    #[arg(long)]
    pub instances: bool,
    #[command(flatten)]
    pub watershed: WatershedFlags,
    /// Also write the segmentation over the input as an RGB PNG (3D: the section
    /// with the most foreground); for a folder input, a folder (NAME.png).
    #[arg(long)]
    pub overlay: Option<PathBuf>,
    /// Also write class probabilities (.npy (classes, [z,] y, x), .tif, .png for 2
    /// classes, or .zarr for a Zarr input); for a folder input, a folder
    /// (NAME.npy).
    #[allow(rustdoc::broken_intra_doc_links)] // the text is clap's --help, not a link
    #[arg(long)]
    pub probabilities: Option<PathBuf>,
    #[command(flatten)]
    pub infer: InferFlags,
    #[command(flatten)]
    pub zarr: ZarrFlags,
}

/// The watershed's flags that `predict` and `eval` share (instance
/// checkpoints only).
#[derive(Args, Debug, Clone)]
pub struct WatershedFlags {
    /// Instances: seeds are the components of voxels with p(interior)
    /// above this, in [0.5, 1); lower lets doubtful voxels join seeds (close
    /// nuclei may merge), higher keeps only confident cores (a nucleus may
    /// split).
    #[arg(long, default_value_t = DEFAULT_SEED_THRESHOLD, allow_hyphen_values = true)]
    pub seed_threshold: f32,
    /// Instances: drop objects smaller than this many pixels / voxels
    /// (default: the checkpoint's, 1/20 of its median training object).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub min_size: Option<usize>,
    /// Instances: split a seed at a neck thinner than this share of its
    /// radius (distance to its edge), in [0, 1); 0: no splitting. Two
    /// nuclei whose confident interiors touch through a thin bridge become
    /// two objects (default: the checkpoint's, its training key
    /// `neck_ratio`).
    #[arg(long, allow_hyphen_values = true)]
    pub neck_ratio: Option<f32>,
}

impl WatershedFlags {
    /// Refuse a `--seed-threshold` outside [0.5, 1) and a `--neck-ratio`
    /// outside [0, 1).
    pub fn check(&self) -> Result<()> {
        check_seed_threshold(self.seed_threshold)
            .map_err(|m| Error::Other(format!("--seed-threshold {m}")))?;
        match self.neck_ratio {
            Some(r) => crate::checks::check_f64("--neck-ratio", r as f64, NECK_RATIO_RANGE),
            None => Ok(()),
        }
    }

    /// The watershed options for a checkpoint with `meta`.
    pub fn options(&self, meta: &InferMeta) -> Result<WatershedOptions> {
        self.check()?;
        // the flag was checked above; the checkpoint's value is checked here
        let neck_ratio = match self.neck_ratio {
            Some(r) => r,
            None => {
                let r = meta.neck_ratio;
                crate::checks::check_f64(
                    "the checkpoint's neck_ratio",
                    r as f64,
                    NECK_RATIO_RANGE,
                )?;
                r
            }
        };
        Ok(WatershedOptions {
            seed_threshold: self.seed_threshold,
            neck_ratio,
            min_size: self
                .min_size
                .unwrap_or(meta.min_object_size.max(1) as usize),
            ..WatershedOptions::default()
        })
    }
}

/// The inference flags that `predict` and `eval` share.
#[derive(Args, Debug, Clone)]
pub struct InferFlags {
    /// Flip test-time augmentation: the softmax averaged over all flips
    /// (4 in 2D, 8 in 3D); `--tta false` turns it off (default: the
    /// checkpoint's, its training key `tta`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub tta: Option<bool>,
    /// Overlapping tiles: gaussian or none (default: the checkpoint's).
    #[arg(long)]
    pub blend: Option<String>,
    /// Network input tile, N, HxW or DxHxW (default: the checkpoint's).
    #[arg(long, allow_hyphen_values = true)]
    pub tile: Option<String>,
    /// Tiles per GPU submission.
    #[arg(long, default_value_t = 1, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub batch: usize,
    /// Minimum overlap of neighbouring output tiles, as a share of the tile, in [0, 1).
    #[arg(long, default_value_t = 0.25, allow_hyphen_values = true)]
    pub overlap: f32,
    /// f32, mixed (f16 activations with the checkpoint's f32 weights) or auto
    /// (mixed where the adapter has f16 storage and matrix units).
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Resize the input's (y, x) by this factor before the network and the
    /// outputs back to the input's size (objects smaller than in training:
    /// > 1; default 1). Files and Zarr volumes (not texture prediction).
    #[arg(long, allow_hyphen_values = true, conflicts_with = "diameter")]
    pub scale: Option<f32>,
    /// The typical object diameter in the input, pixels in (y, x), as
    /// Cellpose's `diameter`: the input is resized by the checkpoint's
    /// median training diameter / D (printed by `wunet train`), i.e.
    /// `--scale` worked out for you.
    #[arg(long, allow_hyphen_values = true)]
    pub diameter: Option<f32>,
    /// A 2D model on a stack of sections (a volume): normalise each section
    /// on its own (`section`, as training normalised each 2D image; the
    /// default) or the stack as a whole (`stack`: one set of statistics, so
    /// that sections with few or no objects keep a dark background dark
    /// instead of stretching its noise). A 3D model normalises whole volumes.
    #[arg(long)]
    pub norm_scope: Option<String>,
}

impl PredictArgs {
    /// What `wunet predict` checks before it opens the GPU: the flags'
    /// ranges, that the checkpoint and input are files, and that every
    /// output path can be written.
    pub fn check_before_gpu(&self) -> Result<()> {
        use crate::fsutil::check_output_file;
        self.infer.check()?;
        self.watershed.check()?;
        if predict_zarr::is_blockwise(self) {
            return predict_zarr::check_before_gpu(self);
        }
        let input = required(&self.input, "--input")?;
        if self.checkpoint.is_empty() {
            return Err(Error::Other(
                "--checkpoint is required (unless --status is given)".into(),
            ));
        }
        for ck in &self.checkpoint {
            crate::fsutil::check_regular_file(ck)?;
        }
        if input.is_dir() {
            return super::predict_dir::check_before_gpu(self, input);
        }
        crate::fsutil::check_regular_file(input)?;
        check_output_file(
            "--output",
            required(&self.output, "--output")?,
            &["png", "tif", "tiff", "npy"],
        )?;
        if let Some(o) = &self.overlay {
            check_output_file("--overlay", o, &["png"])?;
        }
        if let Some(p) = &self.probabilities {
            check_output_file("--probabilities", p, &["npy", "tif", "tiff", "png"])?;
        }
        Ok(())
    }

    /// The checkpoint of a run that takes exactly one (block-wise Zarr
    /// prediction; an ensemble is refused with the count).
    pub fn single_checkpoint(&self) -> Result<&Path> {
        match self.checkpoint.as_slice() {
            [] => Err(Error::Other(
                "--checkpoint is required (unless --status is given)".into(),
            )),
            [one] => Ok(one),
            many => Err(Error::Other(format!(
                "--checkpoint: block-wise Zarr prediction takes one checkpoint, not an ensemble of {}; predict with each and average the probability stores, or predict files (.tif, .npy) with the ensemble",
                many.len()
            ))),
        }
    }
}

impl InferFlags {
    /// Range-check the numeric flags (see [`crate::checks`]).
    pub fn check(&self) -> Result<()> {
        use crate::checks::{check_f64, check_int, Range};
        check_int("--batch", self.batch as i128, 1, 1024)?;
        if let Some(f) = self.scale {
            check_f64(
                "--scale",
                f as f64,
                Range::Closed(SCALE_RANGE[0] as f64, SCALE_RANGE[1] as f64),
            )?;
        }
        if let Some(d) = self.diameter {
            check_f64("--diameter", d as f64, Range::Positive)?;
        }
        if let Some(s) = self.norm_scope.as_deref() {
            if s != "section" && s != "stack" {
                return Err(bad_norm_scope(s));
            }
        }
        check_f64("--overlap", self.overlap as f64, Range::HalfOpen(0.0, 1.0))
    }

    /// Whether each z-section of a volume is normalised on its own
    /// (`--norm-scope`, for a model of `dims` dimensions).
    pub fn per_section(&self, dims: usize) -> Result<bool> {
        match (self.norm_scope.as_deref(), dims) {
            (None, d) => Ok(d == 2),
            (Some("stack"), _) => Ok(false),
            (Some("section"), 2) => Ok(true),
            (Some("section"), d) => Err(Error::Other(format!(
                "--norm-scope section: the checkpoint is a {d}D model, which normalises whole volumes; leave the flag out"
            ))),
            (Some(s), _) => Err(bad_norm_scope(s)),
        }
    }

    /// The (y, x) resize factor: `--scale`, or the checkpoint's training
    /// diameter over `--diameter` (with a line for stderr), or 1.
    pub fn scale(&self, meta: &InferMeta, checkpoint: &Path) -> Result<(f32, Option<String>)> {
        let Some(d) = self.diameter else {
            return Ok((self.scale.unwrap_or(1.0), None));
        };
        let trained = meta.object_diameter;
        let [lo, hi] = SCALE_RANGE;
        let f = scale_for_diameter(trained, d).map_err(|e| match e {
            DiameterError::Unknown => Error::file(
                checkpoint,
                "--diameter: the checkpoint does not know its training objects' diameter (written before wunet recorded it, or trained on labels with no object); give --scale F instead",
            ),
            DiameterError::NotPositive => {
                Error::Other(format!("--diameter {d}: must be a positive number of pixels"))
            }
            DiameterError::OutOfRange(f) => Error::Other(format!(
                "--diameter {d}: the resize {trained:.1} / {d} = {f:.3} is outside [{lo}, {hi}] (the checkpoint's training objects are {trained:.1} px across)"
            )),
        })?;
        let line = format!(
            "resize: x{f:.3} in (y, x) (--diameter {d}: the checkpoint's training objects are {trained:.1} px across)"
        );
        Ok((f, Some(line)))
    }

    /// One line for stderr: whether the flips are on, and who said so.
    pub fn tta_line(&self, opts: &PredictOptions) -> String {
        let on = if opts.tta { "on" } else { "off" };
        match self.tta {
            Some(_) => format!("test-time flips: {on} (--tta)"),
            None => format!("test-time flips: {on} (the checkpoint's training key tta; --tta true|false overrides)"),
        }
    }

    /// The `--tile` request (`None`: the checkpoint's tile) and the
    /// predictor options; what a flag leaves open comes from the checkpoint.
    pub fn resolve(
        &self,
        ctx: &Context,
        meta: &InferMeta,
        checkpoint: &Path,
        dims: usize,
    ) -> Result<(Option<[usize; 3]>, PredictOptions)> {
        let tile = self
            .tile
            .as_deref()
            .map(|t| parse_dims("--tile", t, dims))
            .transpose()?;
        let base = PredictOptions::from_meta(meta)?;
        let (scale, line) = self.scale(meta, checkpoint)?;
        if let Some(line) = line {
            eprintln!("{line}");
        }
        let opts = PredictOptions {
            batch: self.batch,
            blend: match self.blend.as_deref() {
                Some(b) => parse_blend(b)?,
                None => base.blend,
            },
            tta: self.tta.unwrap_or(base.tta),
            overlap: self.overlap,
            precision: ctx.precision(&self.precision)?,
            scale,
        };
        Ok((tile, opts))
    }
}

fn bad_norm_scope(s: &str) -> Error {
    Error::Other(format!("--norm-scope {s}: expected section or stack"))
}

/// One predictor per checkpoint of `members` (read from `paths`), each
/// with the flags' options resolved against its own metadata and its tile
/// fitted to `fit`; a line per member on stderr (the flips, and for an
/// ensemble which member).
pub fn predictors(
    ctx: &Context,
    infer: &InferFlags,
    paths: &[PathBuf],
    members: &[(Checkpoint, InferMeta)],
    fit: [usize; 3],
) -> Result<Vec<Predictor>> {
    let mut ps = Vec::with_capacity(members.len());
    for (k, (path, (ck, meta))) in paths.iter().zip(members).enumerate() {
        let cfg = meta.unet().map_err(|e| Error::file(path, e.to_string()))?;
        let (tile, opts) = infer.resolve(ctx, meta, path, cfg.dims)?;
        let flips = infer.tta_line(&opts);
        match members.len() {
            1 => eprintln!("{flips}"),
            n => eprintln!("ensemble: member {}/{n} {}: {flips}", k + 1, path.display()),
        }
        let mut p = Predictor::from_loaded(ctx, ck, meta, path, tile, Some(fit), &opts)?;
        p.progress = true;
        ps.push(p);
    }
    Ok(ps)
}

/// The members' predictors, kept between the images of a folder while the
/// size they are fitted to stays the same.
#[derive(Default)]
pub struct PredictorCache {
    built: Option<([usize; 3], Vec<Predictor>)>,
}

impl PredictorCache {
    /// The predictors fitted to `fit`: the kept ones, or built anew.
    fn get(
        &mut self,
        ctx: &Context,
        a: &PredictArgs,
        members: &[(Checkpoint, InferMeta)],
        fit: [usize; 3],
    ) -> Result<&mut Vec<Predictor>> {
        if self.built.as_ref().is_none_or(|(f, _)| *f != fit) {
            // drop the old networks first: both sets need not fit on the GPU
            self.built = None;
            let ps = predictors(ctx, &a.infer, &a.checkpoint, members, fit)?;
            self.built = Some((fit, ps));
        }
        match &mut self.built {
            Some((_, ps)) => Ok(ps),
            None => Err(Error::Other("predict: no predictor".into())),
        }
    }
}

/// Probabilities of `image` (normalised as in training), read from
/// `input`, averaged over the checkpoints of an ensemble; a 2D model on a
/// volume runs section by section.
pub fn predict_volume(
    ctx: &Context,
    a: &PredictArgs,
    members: &[(Checkpoint, InferMeta)],
    cache: &mut PredictorCache,
    input: &Path,
    image: &Volume,
) -> Result<ChannelVolume> {
    let meta = &members
        .first()
        .ok_or_else(|| Error::Other("--checkpoint is required".into()))?
        .1;
    let (dims, classes) = (meta.model.dims, meta.model.classes);
    if dims == 3 && image.dims[0] == 1 {
        return Err(Error::file(
            input,
            "a 3D model needs a volume, but this is a 2D image",
        ));
    }
    let section = [1, image.dims[1], image.dims[2]];
    let fit = if dims == 2 { section } else { image.dims };
    let ps = cache.get(ctx, a, members, fit)?;
    if dims == 3 || image.dims[0] == 1 {
        return predict_mean(ctx, ps, image);
    }
    let mut out = ChannelVolume::zeros(classes, image.dims);
    let n = section[1] * section[2];
    for z in 0..image.dims[0] {
        eprintln!("predict: section {}/{}", z + 1, image.dims[0]);
        let pz = predict_mean(ctx, ps, &image.section(z)?)?;
        for c in 0..classes {
            let dst = (c * image.dims[0] + z) * n;
            out.data[dst..dst + n].copy_from_slice(&pz.data[c * n..(c + 1) * n]);
        }
    }
    Ok(out)
}

/// Where one image's results go: the labels (or object ids) and, when
/// asked for, the overlay and the probabilities.
pub struct Outputs {
    pub labels: PathBuf,
    pub overlay: Option<PathBuf>,
    pub probabilities: Option<PathBuf>,
}

impl Outputs {
    /// The flags' files (`--output`, `--overlay`, `--probabilities`).
    fn of(a: &PredictArgs) -> Result<Outputs> {
        Ok(Outputs {
            labels: required(&a.output, "--output")?.to_path_buf(),
            overlay: a.overlay.clone(),
            probabilities: a.probabilities.clone(),
        })
    }

    /// A PNG holds one 2D image: refuse PNG outputs for a volume before any
    /// prediction runs (the flag, the file and the volume's size named).
    fn fit(&self, input: &Path, dims: [usize; 3]) -> Result<()> {
        if dims[0] <= 1 {
            return Ok(());
        }
        let outputs = [
            ("--output", Some(&self.labels)),
            ("--overlay", self.overlay.as_ref()),
            ("--probabilities", self.probabilities.as_ref()),
        ];
        for (flag, path) in outputs {
            let Some(p) = path else { continue };
            let png = p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("png"));
            if png {
                return Err(Error::file(
                    p,
                    format!(
                        "{flag}: a PNG holds one 2D image but {} is a volume {dims:?} (z, y, x); use .tif or .npy",
                        input.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Whether to write instances: the checkpoint's `instances`, which the
/// `--instances` flag may only confirm (a semantic checkpoint has no
/// boundary class to separate objects with).
pub fn instances_wanted(
    flag: bool,
    meta: &InferMeta,
    checkpoint: &std::path::Path,
) -> Result<bool> {
    if flag && !meta.instances {
        return Err(Error::file(
            checkpoint,
            format!(
                "--instances: this checkpoint was trained without --instances ({} classes {:?}, no background / interior / boundary target); train with --instances on instance-id labels",
                meta.model.classes, meta.class_values
            ),
        ));
    }
    Ok(meta.instances)
}

/// Run `wunet predict`; returns a short report.
pub fn run_predict(ctx: &Context, a: &PredictArgs) -> Result<String> {
    if predict_zarr::is_blockwise(a) {
        return predict_zarr::run(ctx, a);
    }
    let input = required(&a.input, "--input")?;
    let members = load_members(&a.checkpoint)?; // refuses an empty list
    let mut cache = PredictorCache::default();
    if input.is_dir() {
        return super::predict_dir::run(ctx, a, &members, &mut cache);
    }
    let mut s = predict_file(ctx, a, &members, &mut cache, input, &Outputs::of(a)?)?;
    if let Some(kib) = predict_zarr::peak_resident_kib() {
        s += &format!("peak resident memory: {:.1} MiB\n", kib as f64 / 1024.0);
    }
    Ok(s)
}

/// Predict the image or volume at `input` into `out`; returns its report.
pub fn predict_file(
    ctx: &Context,
    a: &PredictArgs,
    members: &[(Checkpoint, InferMeta)],
    cache: &mut PredictorCache,
    input: &Path,
    out: &Outputs,
) -> Result<String> {
    let (first, meta) = (&a.checkpoint[0], &members[0].1);
    let mut image = read_image(input)?;
    out.fit(input, image.dims)?;
    // the probabilities, their blend weights and the labels, on the host
    let [d, h, w] = image.dims;
    let per_voxel = 2 * meta.model.classes as u64 + 2;
    crate::checks::checked_count(&[per_voxel, d as u64, h as u64, w as u64], 4)
        .map_err(|m| Error::file(input, format!("predict: the outputs of this image: {m}")))?;
    // the overlay shows the raw intensities; keep them only when asked
    let raw = out.overlay.as_ref().map(|_| image.clone());
    let mode = meta.dataset_options().normalize;
    if a.infer.per_section(meta.model.dims)? {
        // as in training, where every 2D image was normalised on its own
        normalize_sections(&mut image, mode);
    } else {
        normalize(&mut image, mode);
    }
    let t = std::time::Instant::now();
    let probs = predict_volume(ctx, a, members, cache, input, &image)?;
    let secs = t.elapsed().as_secs_f64();
    let pred = probs.argmax();
    let mut s = format!(
        "{} {:?} (z, y, x) -> {} in {secs:.2} s\n",
        input.display(),
        image.dims,
        out.labels.display()
    );
    if instances_wanted(a.instances, meta, first)? {
        let opts = a.watershed.options(meta)?;
        let ids = watershed_instances(&probs, &opts)?;
        write_instances(&out.labels, &ids)?;
        let n = ids.data.iter().copied().max().unwrap_or(0);
        s += &format!(
            "instances: {n} objects (ids 1..{n}, 0 = background; seeds p(interior) > {}, neck ratio {}, objects of >= {} voxels)\n",
            opts.seed_threshold, opts.neck_ratio, opts.min_size
        );
    } else {
        write_labels(&out.labels, &pred, &meta.class_values)?;
    }
    if let (Some(o), Some(raw)) = (&out.overlay, &raw) {
        write_overlay(o, raw, &pred)?;
        s += &format!("overlay: {}\n", o.display());
    }
    if let Some(pp) = &out.probabilities {
        write_probabilities(pp, &probs)?;
        s += &format!("probabilities: {}\n", pp.display());
    }
    s += &class_shares(&pred, probs.channels);
    Ok(s)
}

/// One line: the share of the voxels of each class in `pred`.
fn class_shares(pred: &crate::data::LabelVolume, classes: usize) -> String {
    let counts = (0..classes)
        .map(|c| {
            let k = pred.data.iter().filter(|&&v| v == c as i32).count();
            format!(
                "class {c}: {:.1}%",
                100.0 * k as f64 / pred.data.len().max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("{counts}\n")
}
