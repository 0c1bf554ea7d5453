//! The training configuration: one flat set of keys, each of which is both a
//! TOML key (`--config FILE`, and the run folder's `config.toml`) and a
//! command-line flag (`key_name` <-> `--key-name`). Precedence: built-in
//! defaults (which depend on `model`) < the run folder's `config.toml` (when
//! resuming) < `--config FILE` < flags.
//!
//! [`TrainFlags`] holds every key as an `Option` (clap flags and the parsed
//! file, with unknown keys rejected); [`TrainConfig`] is the resolved,
//! complete configuration that a run writes as `config.toml`.

use crate::data::dataset::ValPart;
use crate::data::labels::MAX_CLASSES;
use crate::data::normalize::TRAINING_KEYS;
use crate::data::sampler::SamplerOptions;
use crate::error::{Error, Result};
use crate::graph::ops::{CrossEntropyAttrs, DiceAttrs, Reduction, SgdAttrs};
use crate::graph::Optimizer;
use crate::model_io::parse_dims;
use crate::models::{Loss, Norm, Padding, UNetConfig, Upsampling};
use crate::train::schedule::LrSchedule;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The resolved configuration (every key present); see [`TrainFlags`] for the meanings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub data: String,
    pub model: String,
    pub synthetic_images: usize,
    pub synthetic_size: String,
    pub normalize: String,
    #[serde(default)]
    pub norm_clip: bool,
    pub foreground_value: i64,
    pub classes: usize,
    pub class_values: String,
    pub val_fraction: f64,
    pub val_axis: String,
    #[serde(default = "default_val_part")]
    pub val_part: String,
    /// Cross-validation fold `K/N` (empty: none): the images in name order
    /// cut into N contiguous groups, group K (from 0) the validation set;
    /// replaces `val_fraction`. Absent in configs written before the key
    /// existed: none.
    #[serde(default)]
    pub fold: String,
    pub base: usize,
    pub depth: usize,
    pub padding: String,
    pub norm: String,
    pub upsample: String,
    pub dropout: f32,
    pub patch: String,
    pub batch: usize,
    pub tile: String,
    pub loss: String,
    /// Dice + CE: whether the background's Dice counts (configs written
    /// before the key: it did).
    #[serde(default = "yes")]
    pub dice_background: bool,
    pub w0: f32,
    pub wmap_sigma: f32,
    pub wmap_balance: bool,
    pub objects_class: i64,
    pub optimizer: String,
    pub precision: String,
    pub lr: f64,
    pub schedule: String,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    pub elastic: bool,
    pub elastic_sigma: f32,
    pub flips: bool,
    #[serde(default = "aug_default::rotate_prob")]
    pub rotate_prob: f32,
    #[serde(default = "aug_default::rotate_degrees")]
    pub rotate_degrees: f32,
    #[serde(default = "aug_default::zoom_prob")]
    pub zoom_prob: f32,
    #[serde(default = "aug_default::zoom_range")]
    pub zoom_range: String,
    pub intensity: bool,
    #[serde(default = "aug_default::noise_prob")]
    pub noise_prob: f32,
    #[serde(default = "aug_default::noise_variance")]
    pub noise_variance: String,
    #[serde(default = "aug_default::blur_prob")]
    pub blur_prob: f32,
    #[serde(default = "aug_default::brightness_prob")]
    pub brightness_prob: f32,
    #[serde(default = "aug_default::contrast_prob")]
    pub contrast_prob: f32,
    #[serde(default = "aug_default::lowres_prob")]
    pub lowres_prob: f32,
    #[serde(default = "aug_default::gamma_prob")]
    pub gamma_prob: f32,
    #[serde(default = "aug_default::gamma_invert_prob")]
    pub gamma_invert_prob: f32,
    #[serde(default = "aug_default::gamma_range")]
    pub gamma_range: String,
    #[serde(default = "aug_default::gamma_range_of")]
    pub gamma_range_of: String,
    pub fg_prob: f32,
    pub prefetch: usize,
    pub overfit: usize,
    pub steps: u64,
    pub seed: u64,
    pub log_every: u64,
    pub val_every: u64,
    pub checkpoint_every: u64,
    pub val_metric: String,
    pub val_tta: bool,
    #[serde(default)]
    pub tta: bool,
    pub blend: String,
    pub out: String,
    pub instances: bool,
    #[serde(default)]
    pub neck_ratio: f32,
    /// A checkpoint to start from (fine-tuning); empty: random initialisation.
    #[serde(default)]
    pub init: String,
}

/// Keys that may differ between a run and its resumption.
pub const RESUMABLE_KEYS: [&str; 6] = [
    "steps",
    "log_every",
    "val_every",
    "checkpoint_every",
    "out",
    "prefetch",
];

impl TrainConfig {
    /// The defaults of a run on the user's data (`data`: `--data` given)
    /// or on the built-in synthetic data. 2D models on the user's data
    /// train with the NIH3T3-measured recipe (Dice + CE, more noise, 16 patches);
    /// everything else as [`Self::defaults`].
    pub fn defaults_for(model: &str, data: bool) -> TrainConfig {
        let mut d = TrainConfig::defaults(model);
        if data && d.model == "unet2d" {
            d.data_recipe_2d();
        }
        d
    }

    /// The 2D recipe for the user's data: Dice + CE (instead of the
    /// border-weighted CE for binary labels), Gaussian noise on 30 % of the
    /// patches at up to 0.5x the image's variance (nnU-Net: 10 % at up to
    /// 0.1x), 16 patches per step (nnU-Net's 2D batches are 12 or more).
    /// On NIH3T3 at 400 steps it gave validation Dice 0.899 / 0.902 (seeds
    /// 1 / 3) against 0.846 / 0.856 (seeds 1 / 2) of the synthetic demo's
    /// recipe (README, Robustness); it takes four times the demo's compute
    /// per step, which is why the built-in demo keeps 4 patches.
    fn data_recipe_2d(&mut self) {
        self.loss = "dicece".into();
        self.noise_prob = 0.3;
        self.noise_variance = "0,0.5".into();
        self.batch = 16;
    }

    /// Built-in defaults: sized so that `wunet train` with no flags finishes
    /// in a few minutes on a 2-core CPU (lavapipe) with a useful result.
    pub fn defaults(model: &str) -> TrainConfig {
        let three = model == "unet3d";
        TrainConfig {
            data: String::new(),
            model: if three { "unet3d" } else { "unet2d" }.into(),
            synthetic_images: if three { 6 } else { 20 },
            synthetic_size: if three { "32x96x96" } else { "256x256" }.into(),
            normalize: "auto".into(),
            norm_clip: false,
            foreground_value: -1,
            classes: 0,
            class_values: String::new(),
            val_fraction: 0.1,
            val_axis: "x".into(),
            val_part: default_val_part(),
            fold: String::new(),
            base: 8,
            depth: if three { 2 } else { 3 },
            padding: "same".into(),
            norm: "batch".into(),
            upsample: "convt".into(),
            dropout: 0.0,
            patch: if three { "16x64x64" } else { "128x128" }.into(),
            batch: if three { 2 } else { 4 },
            tile: if three { "64x160x160" } else { "512x512" }.into(),
            loss: "auto".into(),
            dice_background: true,
            w0: 10.0,
            wmap_sigma: 5.0,
            wmap_balance: true,
            objects_class: -1,
            optimizer: "adam".into(),
            precision: "f32".into(),
            lr: 2e-3,
            schedule: "poly".into(),
            momentum: 0.99,
            nesterov: false,
            weight_decay: 0.0,
            elastic: true,
            elastic_sigma: 10.0,
            flips: true,
            rotate_prob: aug_default::rotate_prob(),
            rotate_degrees: aug_default::rotate_degrees(),
            zoom_prob: aug_default::zoom_prob(),
            zoom_range: aug_default::zoom_range(),
            intensity: true,
            noise_prob: aug_default::noise_prob(),
            noise_variance: aug_default::noise_variance(),
            blur_prob: aug_default::blur_prob(),
            brightness_prob: aug_default::brightness_prob(),
            contrast_prob: aug_default::contrast_prob(),
            lowres_prob: aug_default::lowres_prob(),
            gamma_prob: aug_default::gamma_prob(),
            gamma_invert_prob: aug_default::gamma_invert_prob(),
            gamma_range: aug_default::gamma_range(),
            gamma_range_of: aug_default::gamma_range_of(),
            fg_prob: 0.33,
            prefetch: 4,
            overfit: 0,
            steps: if three { 60 } else { 300 },
            seed: 0,
            log_every: 10,
            val_every: if three { 30 } else { 100 },
            checkpoint_every: 100,
            val_metric: "mean_dice".into(),
            val_tta: false,
            tta: !three,
            blend: "gaussian".into(),
            out: String::new(),
            instances: false,
            neck_ratio: crate::data::instances::DEFAULT_NECK_RATIO,
            init: String::new(),
        }
    }

    /// Resolve: defaults < each layer in order (later wins). Every layer is
    /// checked for unknown keys and types; errors name `source` of the layer.
    pub fn resolve(layers: &[(String, TrainFlags)]) -> Result<TrainConfig> {
        let model = layers
            .iter()
            .rev()
            .find_map(|(_, l)| l.model.clone())
            .unwrap_or_else(|| "unet2d".into());
        if model != "unet2d" && model != "unet3d" {
            return Err(Error::Other(format!(
                "model '{model}': expected unet2d or unet3d"
            )));
        }
        let data = layers
            .iter()
            .rev()
            .find_map(|(_, l)| l.data.clone())
            .is_some_and(|d| !d.is_empty());
        let mut table = to_table(&TrainConfig::defaults_for(&model, data))?;
        let mut cfg = TrainConfig::defaults_for(&model, data);
        // check after each layer, so that an error names the layer (file or
        // flags) that brought the bad value
        for (source, l) in layers {
            for (k, v) in to_table(l)? {
                table.insert(k, v);
            }
            cfg = toml::Value::Table(table.clone())
                .try_into()
                .map_err(|e| Error::Other(format!("{source}: {e}")))?;
            cfg.check()
                .map_err(|e| Error::Other(format!("{source}: {e}")))?;
        }
        Ok(cfg)
    }

    /// Check every value that has a fixed vocabulary or range.
    pub fn check(&self) -> Result<()> {
        let one_of = |key: &str, v: &str, allowed: &[&str]| -> Result<()> {
            if allowed.contains(&v) {
                Ok(())
            } else {
                Err(Error::Other(format!(
                    "{key} = '{v}': expected one of {}",
                    allowed.join(", ")
                )))
            }
        };
        one_of("model", &self.model, &["unet2d", "unet3d"])?;
        one_of("normalize", &self.normalize, TRAINING_KEYS)?;
        one_of("val_axis", &self.val_axis, &["x", "y", "z"])?;
        one_of("val_part", &self.val_part, &["last", "first"])?;
        self.fold()?;
        one_of("padding", &self.padding, &["valid", "same"])?;
        one_of("norm", &self.norm, &["batch", "instance", "none"])?;
        one_of("upsample", &self.upsample, &["convt", "linear"])?;
        one_of("loss", &self.loss, &["auto", "wce", "dicece", "ce"])?;
        one_of("optimizer", &self.optimizer, &["sgd", "adam"])?;
        one_of("precision", &self.precision, &["f32", "mixed", "auto"])?;
        one_of("schedule", &self.schedule, &["poly", "constant"])?;
        one_of(
            "val_metric",
            &self.val_metric,
            &[
                "mean_dice",
                "pixel_error",
                "rand_error",
                "isbi_rand_error",
                "isbi_pixel_error",
            ],
        )?;
        one_of("blend", &self.blend, &["gaussian", "none"])?;
        one_of("gamma_range_of", &self.gamma_range_of, GAMMA_RANGE_OF)?;
        self.check_numbers()?;
        if !self.class_values_list()?.is_empty() && (self.classes > 0 || self.foreground_value >= 0)
        {
            return Err(Error::Other(format!(
                "class_values = '{}' sets the classes; leave classes ({}) and foreground_value ({}) unset",
                self.class_values, self.classes, self.foreground_value
            )));
        }
        if self.classes > 0 && self.foreground_value >= 0 {
            return Err(Error::Other(format!(
                "classes = {} takes the stored values as class ids; foreground_value = {} is for binary 0/v labels: give one of them",
                self.classes, self.foreground_value
            )));
        }
        self.patch_dims()?;
        self.tile_dims()?;
        self.synthetic_dims()?;
        Ok(())
    }

    /// Range-check every numeric key (the one table of their ranges).
    fn check_numbers(&self) -> Result<()> {
        use crate::checks::{check_f64, check_int, Range};
        let ints: [(&str, i128, i128, i128); 14] = [
            (
                "synthetic_images",
                self.synthetic_images as i128,
                1,
                100_000,
            ),
            (
                "foreground_value",
                self.foreground_value as i128,
                -1,
                i32::MAX as i128,
            ),
            ("base", self.base as i128, 1, 1024),
            ("depth", self.depth as i128, 1, 10),
            ("batch", self.batch as i128, 1, 4096),
            ("objects_class", self.objects_class as i128, -1, 1 << 16),
            ("prefetch", self.prefetch as i128, 1, 256),
            ("overfit", self.overfit as i128, 0, 1 << 20),
            ("steps", self.steps as i128, 1, u32::MAX as i128),
            ("log_every", self.log_every as i128, 1, u32::MAX as i128),
            ("val_every", self.val_every as i128, 0, u32::MAX as i128),
            (
                "checkpoint_every",
                self.checkpoint_every as i128,
                1,
                u32::MAX as i128,
            ),
            ("classes", self.classes as i128, 0, MAX_CLASSES as i128),
            ("seed", self.seed as i128, 0, u64::MAX as i128),
        ];
        for (k, v, lo, hi) in ints {
            check_int(k, v, lo, hi)?;
        }
        let floats = [
            ("val_fraction", self.val_fraction, Range::Open(0.0, 1.0)),
            ("dropout", self.dropout as f64, Range::HalfOpen(0.0, 1.0)),
            ("w0", self.w0 as f64, Range::NonNegative),
            ("wmap_sigma", self.wmap_sigma as f64, Range::Positive),
            ("lr", self.lr, Range::Positive),
            ("momentum", self.momentum as f64, Range::HalfOpen(0.0, 1.0)),
            ("weight_decay", self.weight_decay as f64, Range::NonNegative),
            (
                "elastic_sigma",
                self.elastic_sigma as f64,
                Range::NonNegative,
            ),
            ("fg_prob", self.fg_prob as f64, Range::Closed(0.0, 1.0)),
            (
                "neck_ratio",
                self.neck_ratio as f64,
                crate::data::instances::NECK_RATIO_RANGE,
            ),
            (
                "rotate_degrees",
                self.rotate_degrees as f64,
                Range::Closed(0.0, 180.0),
            ),
        ];
        for (k, v, r) in floats {
            check_f64(k, v, r)?;
        }
        let probs = [
            ("rotate_prob", self.rotate_prob),
            ("zoom_prob", self.zoom_prob),
            ("noise_prob", self.noise_prob),
            ("blur_prob", self.blur_prob),
            ("brightness_prob", self.brightness_prob),
            ("contrast_prob", self.contrast_prob),
            ("lowres_prob", self.lowres_prob),
            ("gamma_prob", self.gamma_prob),
            ("gamma_invert_prob", self.gamma_invert_prob),
        ];
        for (k, v) in probs {
            check_f64(k, v as f64, Range::Closed(0.0, 1.0))?;
        }
        self.zoom_limits()?;
        self.gamma_limits()?;
        self.noise_limits()?;
        Ok(())
    }

    /// `zoom_range` as `(lo, hi)`: two finite factors with `0 < lo <= hi <= 10`.
    pub fn zoom_limits(&self) -> Result<(f32, f32)> {
        range_key("zoom_range", &self.zoom_range, "0.7,1.4")
    }

    /// `gamma_range` as `(lo, hi)`: `0 < lo <= hi <= 10`.
    pub fn gamma_limits(&self) -> Result<(f32, f32)> {
        range_key("gamma_range", &self.gamma_range, "0.7,1.5")
    }

    /// `noise_variance` as `(lo, hi)`: `0 <= lo <= hi <= 10`.
    pub fn noise_limits(&self) -> Result<(f32, f32)> {
        range_key_from_zero("noise_variance", &self.noise_variance, "0,0.1")
    }

    pub fn dims(&self) -> usize {
        if self.model == "unet3d" {
            3
        } else {
            2
        }
    }

    /// `class_values` parsed (empty: from the data).
    pub fn class_values_list(&self) -> Result<Vec<i32>> {
        crate::data::labels::parse_class_values("class_values", &self.class_values)
    }

    /// `patch` as `(z, y, x)` (2D: z = 1).
    pub fn patch_dims(&self) -> Result<[usize; 3]> {
        parse_dims("patch", &self.patch, self.dims())
    }
    /// `tile` as `(z, y, x)`.
    pub fn tile_dims(&self) -> Result<[usize; 3]> {
        parse_dims("tile", &self.tile, self.dims())
    }
    /// `synthetic_size` as `(z, y, x)`.
    pub fn synthetic_dims(&self) -> Result<[usize; 3]> {
        parse_dims("synthetic_size", &self.synthetic_size, self.dims())
    }

    /// `val_part` as a [`ValPart`].
    pub fn val_part(&self) -> ValPart {
        if self.val_part == "first" {
            ValPart::First
        } else {
            ValPart::Last
        }
    }

    /// `fold` as `(K, N)`, or `None` without one; `K/N` needs N >= 2 and
    /// 0 <= K < N.
    pub fn fold(&self) -> Result<Option<(usize, usize)>> {
        if self.fold.is_empty() {
            return Ok(None);
        }
        let parsed = self
            .fold
            .split_once('/')
            .and_then(|(k, n)| {
                Some((
                    k.trim().parse::<usize>().ok()?,
                    n.trim().parse::<usize>().ok()?,
                ))
            })
            .filter(|&(k, n)| (2..=1000).contains(&n) && k < n);
        match parsed {
            Some(f) => Ok(Some(f)),
            None => Err(Error::Other(format!(
                "fold = '{}': expected K/N with 2 <= N <= 1000 and 0 <= K < N (e.g. 0/5 .. 4/5 for nnU-Net's five folds)",
                self.fold
            ))),
        }
    }

    /// `val_axis` as an array axis (0 = z, 1 = y, 2 = x).
    pub fn val_axis_index(&self) -> usize {
        match self.val_axis.as_str() {
            "z" => 0,
            "y" => 1,
            _ => 2,
        }
    }

    /// The network for `classes` classes and single-channel input.
    pub fn unet(&self, classes: usize) -> UNetConfig {
        let mut c = if self.dims() == 3 {
            UNetConfig::cicek2016()
        } else {
            UNetConfig::ronneberger2015()
        };
        c.in_channels = 1;
        c.classes = classes;
        c.base = self.base;
        c.depth = self.depth;
        c.padding = if self.padding == "same" {
            Padding::Same
        } else {
            Padding::Valid
        };
        c.norm = match self.norm.as_str() {
            "batch" => Norm::Batch,
            "instance" => Norm::Instance,
            _ => Norm::None,
        };
        c.upsample = if self.upsample == "linear" {
            Upsampling::LinearConv
        } else {
            Upsampling::ConvTranspose
        };
        c.dropout = self.dropout;
        c
    }

    /// The loss for a dataset with `classes` classes (`auto`: wce for binary labels).
    pub fn loss_fn(&self, classes: usize) -> Loss {
        let ce = |weight_map: bool| CrossEntropyAttrs {
            class_weights: None,
            weight_map,
            ignore_label: None,
            reduction: Reduction::Mean,
        };
        match self.resolved_loss(classes) {
            "wce" => Loss::CrossEntropy(ce(true)),
            "ce" => Loss::CrossEntropy(ce(false)),
            _ => Loss::DiceCe {
                ce: ce(false),
                dice: DiceAttrs {
                    smooth: 1e-5,
                    batch_dice: true,
                    ignore_label: None,
                    include_background: self.dice_background,
                },
                dice_weight: 1.0,
            },
        }
    }

    /// `loss` with `auto` resolved.
    pub fn resolved_loss(&self, classes: usize) -> &str {
        match self.loss.as_str() {
            "auto" if classes == 2 => "wce",
            "auto" => "dicece",
            l => l,
        }
    }

    pub fn optimizer_fn(&self) -> Optimizer {
        if self.optimizer == "adam" {
            let mut o = Optimizer::adam();
            if let Optimizer::Adam(a) = &mut o {
                a.weight_decay = self.weight_decay;
            }
            o
        } else {
            Optimizer::Sgd(SgdAttrs {
                momentum: self.momentum,
                nesterov: self.nesterov,
                weight_decay: self.weight_decay,
                amp: false,
            })
        }
    }

    pub fn schedule_fn(&self) -> LrSchedule {
        if self.schedule == "constant" {
            LrSchedule::Constant { lr: self.lr }
        } else {
            LrSchedule::poly(self.lr, self.steps)
        }
    }

    /// Patch sampling and augmentation per the keys: flips on every axis of
    /// the patch (z only in 3D), 90-degree rotations, rotations by any angle
    /// and zoom in (y, x), the paper's elastic deformation (3x3(x3) control
    /// points; in-plane only, as 3D stacks are usually anisotropic) and
    /// nnU-Net's intensity transforms.
    pub fn sampler_options(&self, patch_out: [usize; 3], margin: [usize; 3]) -> SamplerOptions {
        use crate::data::augment::{
            AffineOptions, AugmentOptions, ElasticOptions, GammaRangeOf, IntensityOptions,
        };
        let three = self.dims() == 3;
        let augment = if self.overfit > 0 {
            AugmentOptions::none()
        } else {
            AugmentOptions {
                flip: if self.flips {
                    [three, true, true]
                } else {
                    [false; 3]
                },
                rot90: self.flips,
                affine: Some(AffineOptions {
                    rotate_prob: self.rotate_prob,
                    max_degrees: self.rotate_degrees,
                    zoom_prob: self.zoom_prob,
                    // checked in check()
                    zoom: self.zoom_limits().unwrap_or((1.0, 1.0)),
                }),
                elastic: self.elastic.then_some(ElasticOptions {
                    grid: [3, 3, 3],
                    sigma: self.elastic_sigma,
                    in_plane: true,
                    prob: 1.0,
                }),
                intensity: self.intensity.then(|| IntensityOptions {
                    noise_prob: self.noise_prob,
                    // checked in check()
                    noise_variance: self.noise_limits().unwrap_or((0.0, 0.0)),
                    blur_prob: self.blur_prob,
                    brightness_prob: self.brightness_prob,
                    contrast_prob: self.contrast_prob,
                    lowres_prob: self.lowres_prob,
                    gamma_prob: self.gamma_prob,
                    gamma_invert_prob: self.gamma_invert_prob,
                    // checked in check()
                    gamma: self.gamma_limits().unwrap_or((1.0, 1.0)),
                    gamma_range_of: GammaRangeOf::parse(&self.gamma_range_of)
                        .unwrap_or(GammaRangeOf::Patch),
                    ..IntensityOptions::default()
                }),
            }
        };
        SamplerOptions {
            patch: patch_out,
            margin,
            batch_size: self.batch,
            fg_prob: self.fg_prob,
            augment,
            seed: self.seed,
            repeat: self.overfit,
        }
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Other(format!("config to TOML: {e}")))
    }

    /// Keys (other than [`RESUMABLE_KEYS`]) whose values differ from `other`.
    pub fn differing_keys(&self, other: &TrainConfig) -> Result<Vec<String>> {
        let a = to_table(self)?;
        let b = to_table(other)?;
        Ok(a.iter()
            .filter(|(k, v)| !RESUMABLE_KEYS.contains(&k.as_str()) && b.get(*k) != Some(*v))
            .map(|(k, v)| {
                format!(
                    "{k} (run: {}, now: {v})",
                    b.get(k).map(|x| x.to_string()).unwrap_or_default()
                )
            })
            .collect())
    }
}

/// Parse a TOML configuration file into flags (unknown keys are errors naming the file).
pub fn read_config_file(path: &Path) -> Result<TrainFlags> {
    crate::fsutil::check_regular_file(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read config: {e}")))?;
    toml::from_str(&text).map_err(|e| Error::file(path, format!("bad config: {e}")))
}

fn to_table<T: Serialize>(v: &T) -> Result<toml::Table> {
    toml::Table::try_from(v).map_err(|e| Error::Other(format!("configuration: {e}")))
}

#[path = "config_flags.rs"]
mod flags;
pub use flags::TrainFlags;

#[path = "config_aug.rs"]
mod aug;
use aug::{aug_default, range_key, range_key_from_zero, GAMMA_RANGE_OF};

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

/// `val_part` of a config written before the key existed.
fn default_val_part() -> String {
    "last".into()
}

fn yes() -> bool {
    true
}
