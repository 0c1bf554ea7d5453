//! `wunet eval`: metrics of a checkpoint on a labelled dataset, one
//! `name: value` line per metric on stdout (see [`crate::infer::eval`]).

use crate::cli::predict::predictors;
use crate::cli::predict::InferFlags;
use crate::data::dataset::{normalize, Dataset, DatasetOptions, Normalize, Sample};
use crate::data::perturb::Perturb;
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::infer::ensemble::load_members;
use crate::infer::eval::{evaluate, Metrics};
use crate::model_io::{Checkpoint, InferMeta};
use crate::train::config::{TrainConfig, TrainFlags};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A checkpoint written by `wunet train`. Several (the flag repeated, or
    /// several paths after it) are an ensemble: their class probabilities
    /// averaged before scoring (as `wunet predict`).
    #[arg(long, required = true, num_args = 1.., action = clap::ArgAction::Append)]
    pub checkpoint: Vec<PathBuf>,
    /// Labelled data (same layouts as `wunet train --data`).
    #[arg(long)]
    pub data: PathBuf,
    /// all: every pair; val: only the validation split the run used
    /// (its val_fraction: the last images by name, or the last (val_part
    /// first: the first) part of a single volume along its val_axis).
    #[arg(long, default_value = "all")]
    pub split: String,
    /// The data's label convention: the stored value of each class of the
    /// checkpoint, comma-separated (default: the checkpoint's own class
    /// values; e.g. "255,0" for ISBI 2012 with a model whose class 1 is membrane).
    #[arg(long, allow_hyphen_values = true)]
    pub class_values: Option<String>,
    /// Instance segmentation: also score the watershed's objects against
    /// the data's instance ids (AP at IoU 0.5, mean AP over 0.5:0.05:0.95,
    /// counts, splits, merges). The default for a checkpoint trained with
    /// --instances; an error for any other.
    #[arg(long)]
    pub instances: bool,
    #[command(flatten)]
    pub watershed: crate::cli::predict::WatershedFlags,
    /// Robustness test: perturb the raw images (and, for zoom, the labels)
    /// before normalisation: gamma:G, gain:F, offset:V (a share of the
    /// image's maximum), noise:S (sigma as a share of the image's range),
    /// zoom:F or background0 (see `tools/robustness.sh`).
    #[arg(long, allow_hyphen_values = true)]
    pub perturb: Option<String>,
    /// Also write every image's own scores as CSV (a row per image: pixel
    /// error, Rand error, Dice per class, the challenge's scores at the
    /// image's best threshold, instance AP), as nnU-Net's per-case summary.
    #[arg(long)]
    pub per_image: Option<PathBuf>,
    #[command(flatten)]
    pub infer: InferFlags,
}

impl EvalArgs {
    /// What `wunet eval` checks before it opens the GPU: the flags' ranges
    /// and that the checkpoint is a file.
    pub fn check_before_gpu(&self) -> Result<()> {
        self.infer.check()?;
        self.watershed.check()?;
        if let Some(p) = &self.perturb {
            Perturb::parse("--perturb", p)?;
        }
        for ck in &self.checkpoint {
            crate::fsutil::check_regular_file(ck)?;
        }
        if let Some(p) = &self.per_image {
            crate::fsutil::check_output_file("--per-image", p, &["csv"])?;
        }
        Ok(())
    }
}

/// The stored value of each checkpoint class in the data: `--class-values`,
/// else the checkpoint's own class values.
fn data_class_values(a: &EvalArgs, ck_values: &[i64], classes: usize) -> Result<Vec<i32>> {
    let v = match &a.class_values {
        Some(s) => crate::data::labels::parse_class_values("--class-values", s)?,
        None => ck_values.iter().map(|&v| v as i32).collect(),
    };
    if v.len() != classes {
        return Err(Error::Other(format!(
            "--class-values {v:?}: the checkpoint {} predicts {classes} classes; give one stored value per class",
            a.first().display()
        )));
    }
    Ok(v)
}

impl EvalArgs {
    /// The first `--checkpoint` (clap requires one; the members of an
    /// ensemble agree on everything read from it).
    fn first(&self) -> &std::path::Path {
        self.checkpoint
            .first()
            .map_or(std::path::Path::new(""), |p| p)
    }
}

/// Evaluate; returns the metrics (print them with [`Metrics::to_text`]).
pub fn run_eval(ctx: &Context, a: &EvalArgs) -> Result<Metrics> {
    let members = load_members(&a.checkpoint)?; // refuses an empty list
    let meta = &members[0].1;
    let cfg = meta
        .unet()
        .map_err(|e| Error::file(a.first(), e.to_string()))?;
    let ds = load_scored_data(a, meta, &members)?;
    if cfg.dims == 3 && !ds.is_3d() {
        return Err(Error::file(
            &a.data,
            "a 3D model needs volumes, but the data is 2D",
        ));
    }
    let mut ps = predictors(ctx, &a.infer, &a.checkpoint, &members, ds.max_dims())?;
    eprintln!("{}", crate::infer::eval::METRICS_LEGEND);
    let instances = crate::cli::predict::instances_wanted(a.instances, meta, a.first())?
        .then(|| a.watershed.options(meta))
        .transpose()?;
    let m = evaluate(
        ctx,
        &mut ps,
        &ds,
        meta.objects_class as i32,
        true,
        instances,
    )?;
    if let Some(p) = &a.per_image {
        let csv = crate::infer::eval::per_image_csv(&m.per_image);
        crate::data::io::atomic_write(p, |w| std::io::Write::write_all(w, csv.as_bytes()))?;
        eprintln!("per-image scores: {}", p.display());
    }
    Ok(m)
}

/// The samples to score, as the model saw them in training: loaded with
/// the checkpoint's label convention, perturbed (`--perturb`), the split
/// (`--split`), normalised (a 2D model: every image or section on its own
/// unless `--norm-scope stack`; a 3D model: every volume), a 2D model's
/// volumes cut into sections.
fn load_scored_data(
    a: &EvalArgs,
    meta: &InferMeta,
    members: &[(Checkpoint, InferMeta)],
) -> Result<Dataset> {
    let dims = meta.model.dims;
    let opts = meta.dataset_options();
    let mode = opts.normalize;
    let per_section = a.infer.per_section(dims)?;
    let map = data_class_values(a, &meta.class_values, meta.model.classes)?;
    let perturb = a
        .perturb
        .as_deref()
        .map(|p| Perturb::parse("--perturb", p))
        .transpose()?;
    let mut ds = Dataset::load(
        &a.data,
        &DatasetOptions {
            // with --perturb, 3D volumes are normalised after it
            normalize: if dims == 2 || perturb.is_some() {
                Normalize::None
            } else {
                mode
            },
            class_values: map.clone(),
            ..opts
        },
    )
    .map_err(|e| {
        Error::Other(format!(
            "{e}\n{}: the checkpoint's classes are stored as {:?} (class c = the c-th value); the data's labels use other values: state the data's convention with --class-values (the data's stored value of each class, e.g. {})",
            a.first().display(),
            meta.class_values,
            map.iter().rev().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
        ))
    })?;
    if let Some(p) = perturb {
        for (i, smp) in ds.samples.iter_mut().enumerate() {
            p.apply(smp, i as u64);
            if dims == 3 {
                normalize(&mut smp.image, mode);
            }
        }
        eprintln!("perturbed: {p:?}");
    }
    ds = match a.split.as_str() {
        "all" => ds,
        "val" => validation_part(a, members, ds)?,
        s => return Err(Error::Other(format!("--split {s}: expected all or val"))),
    };
    // --norm-scope stack: a 2D model's volumes normalised whole, before sectioning
    let stacked = dims == 2 && ds.is_3d() && !per_section;
    if stacked {
        for smp in &mut ds.samples {
            normalize(&mut smp.image, mode);
        }
    }
    if dims == 2 && ds.is_3d() {
        ds.samples = sections(&ds)?;
    }
    if dims == 2 && !stacked {
        for smp in &mut ds.samples {
            normalize(&mut smp.image, mode);
        }
    }
    if ds.n_classes > meta.model.classes {
        return Err(Error::file(
            &a.data,
            format!(
                "labels hold {} classes but the model predicts {}",
                ds.n_classes, meta.model.classes
            ),
        ));
    }
    Ok(ds)
}

/// `--split val`: the part of the data the checkpoints' training held out
/// for validation, by their stored configurations; the members of an
/// ensemble must have held out the same samples (cross-validation folds,
/// which did not, have no common validation part).
fn validation_part(
    a: &EvalArgs,
    members: &[(Checkpoint, InferMeta)],
    ds: Dataset,
) -> Result<Dataset> {
    let Some(((ck0, _), rest)) = members.split_first() else {
        return Err(Error::Other("--checkpoint is required".into()));
    };
    let mut others = Vec::with_capacity(rest.len());
    for (path, (ck, _)) in a.checkpoint[1..].iter().zip(rest) {
        others.push(held_out(path, ck, ds.clone())?);
    }
    let first = held_out(a.first(), ck0, ds)?;
    for (path, p) in a.checkpoint[1..].iter().zip(&others) {
        if !same_samples(p, &first) {
            return Err(Error::file(
                path,
                format!(
                    "--split val: this checkpoint held out {:?}, the first ({}) {:?}; an ensemble is scored on data none of its members trained on: use --split all on separate data",
                    part_names(p),
                    a.first().display(),
                    part_names(&first)
                ),
            ));
        }
    }
    Ok(first)
}

/// Whether two held-out parts are the same samples: names, sizes and
/// voxels (one volume split at another fraction or from the other end
/// keeps its name).
fn same_samples(a: &Dataset, b: &Dataset) -> bool {
    let same = |x: &Sample, y: &Sample| {
        x.name == y.name
            && x.image.dims == y.image.dims
            && (x.image.data.iter())
                .zip(&y.image.data)
                .all(|(p, q)| p.to_bits() == q.to_bits())
    };
    a.samples.len() == b.samples.len() && a.samples.iter().zip(&b.samples).all(|(x, y)| same(x, y))
}

/// A held-out part for a message: each sample's name and (z, y, x) size.
fn part_names(d: &Dataset) -> Vec<String> {
    d.samples
        .iter()
        .map(|s| format!("{} {:?}", s.name, s.image.dims))
        .collect()
}

/// The validation part of `ds` by the configuration stored in the
/// checkpoint `ck` read from `path`.
fn held_out(path: &std::path::Path, ck: &Checkpoint, ds: Dataset) -> Result<Dataset> {
    let text = ck
        .meta
        .get("config")
        .ok_or_else(|| Error::file(path, "no training configuration stored; use --split all"))?;
    // through the defaults, so that checkpoints written before a key
    // existed still resolve
    let flags: TrainFlags =
        toml::from_str(text).map_err(|e| Error::file(path, format!("bad stored config: {e}")))?;
    let tc = TrainConfig::resolve(&[(path.display().to_string(), flags)])?;
    Ok(crate::train::prepare::split(&tc, ds)?.1)
}

/// A 2D model scores a volume section by section: every section of every
/// volume as a sample of its own, named `volume[z]`.
fn sections(ds: &Dataset) -> Result<Vec<Sample>> {
    let mut secs = Vec::new();
    for s in &ds.samples {
        for z in 0..s.image.dims[0] {
            secs.push(Sample {
                name: format!("{}[{z}]", s.name),
                image: s.image.section(z)?,
                labels: s.labels.section(z)?,
                weights: None,
                instances: s.instances.as_ref().map(|v| v.section(z)).transpose()?,
                raw_levels: None,
            });
        }
    }
    Ok(secs)
}
