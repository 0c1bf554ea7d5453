//! [`TrainFlags`]: every training key as an optional flag (see the
//! parent module, [`crate::train::config`]).

use clap::Args;
use serde::{Deserialize, Serialize};

/// Every training key as an optional flag. Field names are the TOML keys.
#[derive(Args, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainFlags {
    // ---- data
    /// Data folder or file (image/label pairs, TIFF stacks or .npy volumes);
    /// empty or absent: the built-in synthetic dataset.
    #[arg(long)]
    pub data: Option<String>,
    /// unet2d or unet3d.
    #[arg(long)]
    pub model: Option<String>,
    /// Fine-tune: start from this checkpoint's weights (and batch-norm
    /// statistics) instead of a random initialisation, as Cellpose's
    /// `--pretrained_model` or nnU-Net's `-pretrained_weights`. The run takes
    /// the checkpoint's model, base, depth, padding, norm and upsample unless it
    /// sets them; what shapes the weights (those, and the classes of the data)
    /// must match the checkpoint's. The optimiser state, step count and
    /// schedule start afresh, and the run's data, normalisation and
    /// augmentation are its own.
    #[arg(long)]
    pub init: Option<String>,
    /// Instance segmentation: the label files hold instance ids (0 =
    /// background, 1..N objects; in a folder, `*instances*` files are
    /// preferred), trained as background / interior / boundary and turned
    /// back into objects by a seeded watershed (`wunet predict`, `eval`).
    /// The class keys (foreground_value, classes, class_values) are not used.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub instances: Option<bool>,
    /// Instances: the watershed's neck ratio stored in the checkpoint, the
    /// default of `wunet predict` / `eval --neck-ratio` (in [0, 1); 0: no
    /// splitting).
    #[arg(long, allow_hyphen_values = true)]
    pub neck_ratio: Option<f32>,
    /// Number of synthetic images / volumes (when no --data).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub synthetic_images: Option<usize>,
    /// Size of each synthetic image, HxW (2D) or DxHxW (3D).
    #[arg(long, allow_hyphen_values = true)]
    pub synthetic_size: Option<String>,
    /// Per-image intensity normalisation: auto, zscore, percentile (1-99 %,
    /// clipped), robust (median -> 0, 99.8th percentile -> 1; clipped to
    /// 0..1 with norm_clip), equalize (each value's rank in the image,
    /// centred: unchanged by gain, offset and gamma), equalize-normal (the
    /// rank's standard normal quantile: the same invariance, with the
    /// brightest and darkest ranks spread out) or log (z-score of
    /// ln(max(x - min, floor)), the floor the 1st percentile of the values
    /// above the minimum: unchanged by gain, offset and a gamma over the
    /// image's range, distances kept).
    /// auto: when most images are dark with bright objects (median within
    /// 10 % of the 1-99.8 % range above the 1st percentile), robust if the
    /// labelled objects are sparse (under 10 % of the pixels), else log;
    /// other images (EM, bright field) zscore.
    #[arg(long)]
    pub normalize: Option<String>,
    /// robust normalisation: clip to its percentile range (0..1).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub norm_clip: Option<bool>,
    /// Binary labels: the stored value that is class 1 (ISBI 2012 membrane: 0;
    /// nuclei masks: 255); -1: the rarer value.
    #[arg(long, allow_hyphen_values = true)]
    pub foreground_value: Option<i64>,
    /// Number of classes: label files hold the class ids 0..classes-1 as
    /// stored (0: decided from the data: binary 0/v, or 0..max).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub classes: Option<usize>,
    /// Class map: the stored label value of each class, comma-separated
    /// (e.g. "0,128,255": 0 -> class 0, 128 -> 1, 255 -> 2); empty: from the data.
    #[arg(long, allow_hyphen_values = true)]
    pub class_values: Option<String>,
    /// Validation share: the last images by name, or, for a single image or
    /// volume, the last (or first, val_part) part along val_axis.
    #[arg(long, allow_hyphen_values = true)]
    pub val_fraction: Option<f64>,
    /// Axis along which a single image or volume is split for validation: x, y or z.
    #[arg(long)]
    pub val_axis: Option<String>,
    /// Which end of a single image or volume is validation: last or first
    /// (two runs, one of each, hold out every part once).
    #[arg(long)]
    pub val_part: Option<String>,
    /// Cross-validation fold K/N: the images in name order cut into N
    /// contiguous groups, group K (0..N-1) held out for validation instead
    /// of val_fraction; N runs (0/N .. N-1/N) hold out every image once and
    /// make an ensemble (`wunet predict --checkpoint` with all N).
    #[arg(long, allow_hyphen_values = true)]
    pub fold: Option<String>,
    // ---- model
    /// Channels of the first level.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub base: Option<usize>,
    /// Number of poolings.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub depth: Option<usize>,
    /// valid (unpadded convs, the papers) or same.
    #[arg(long)]
    pub padding: Option<String>,
    /// batch, instance or none.
    #[arg(long)]
    pub norm: Option<String>,
    /// convt (transposed conv) or linear (interpolation + 1x1 conv).
    #[arg(long)]
    pub upsample: Option<String>,
    /// Dropout after the bottom block during training (0: none).
    #[arg(long, allow_hyphen_values = true)]
    pub dropout: Option<f32>,
    /// Network input patch, HxW or DxHxW (valid convs: the output is smaller).
    #[arg(long, allow_hyphen_values = true)]
    pub patch: Option<String>,
    /// Patches per step.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub batch: Option<usize>,
    /// Largest network input tile for validation and `wunet predict`, HxW or
    /// DxHxW (shrunk to what an image needs; larger images are tiled).
    #[arg(long, allow_hyphen_values = true)]
    pub tile: Option<String>,
    // ---- loss
    /// wce (cross entropy weighted by the U-Net border weight map), dicece,
    /// ce, or auto (wce for binary labels, dicece otherwise).
    #[arg(long)]
    pub loss: Option<String>,
    /// Dice + CE: false leaves the background class out of the Dice term
    /// (nnU-Net's choice; MONAI's include_background); its CE stays.
    #[arg(long)]
    pub dice_background: Option<bool>,
    /// Weight map: border weight w0 (paper: 10).
    #[arg(long, allow_hyphen_values = true)]
    pub w0: Option<f32>,
    /// Weight map: border width sigma in pixels (paper: 5).
    #[arg(long, allow_hyphen_values = true)]
    pub wmap_sigma: Option<f32>,
    /// Weight map: class-balancing term w_c (paper: yes); false: w_c = 1.
    #[arg(long)]
    pub wmap_balance: Option<bool>,
    /// The class whose connected components are the objects (cells, nuclei)
    /// of the weight map and the Rand error; -1: the class with more components.
    #[arg(long, allow_hyphen_values = true)]
    pub objects_class: Option<i64>,
    // ---- optimiser
    /// sgd (momentum) or adam.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// f32, mixed (f16 activations, f32 weights and sums, dynamic loss
    /// scaling) or auto (mixed where the adapter has f16 and matrix units).
    #[arg(long)]
    pub precision: Option<String>,
    /// Initial learning rate.
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// poly (lr * (1 - step/steps)^0.9) or constant.
    #[arg(long)]
    pub schedule: Option<String>,
    /// SGD momentum (the U-Net paper: 0.99).
    #[arg(long, allow_hyphen_values = true)]
    pub momentum: Option<f32>,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    pub nesterov: Option<bool>,
    /// L2 weight decay.
    #[arg(long, allow_hyphen_values = true)]
    pub weight_decay: Option<f32>,
    // ---- augmentation and sampling
    /// Elastic deformation (3x3 control grid).
    #[arg(long)]
    pub elastic: Option<bool>,
    /// Elastic displacement sigma in pixels (paper: 10).
    #[arg(long, allow_hyphen_values = true)]
    pub elastic_sigma: Option<f32>,
    /// Random flips and 90-degree rotations.
    #[arg(long)]
    pub flips: Option<bool>,
    /// Probability of a rotation by any angle in (y, x) (nnU-Net: 0.2).
    #[arg(long, allow_hyphen_values = true)]
    pub rotate_prob: Option<f32>,
    /// Largest rotation either way, in degrees (180: any angle).
    #[arg(long, allow_hyphen_values = true)]
    pub rotate_degrees: Option<f32>,
    /// Probability of a zoom in (y, x) (nnU-Net: 0.2).
    #[arg(long, allow_hyphen_values = true)]
    pub zoom_prob: Option<f32>,
    /// Zoom factor range "lo,hi" (nnU-Net: 0.7,1.4; > 1 magnifies).
    #[arg(long, allow_hyphen_values = true)]
    pub zoom_range: Option<String>,
    /// Intensity augmentation on (nnU-Net's set: the *_prob keys below;
    /// false: none of them).
    #[arg(long)]
    pub intensity: Option<bool>,
    /// Probability of additive Gaussian noise (nnU-Net: 0.1).
    #[arg(long, allow_hyphen_values = true)]
    pub noise_prob: Option<f32>,
    /// Variance range "lo,hi" of that noise, in units of the image's variance
    /// (nnU-Net: 0,0.1; equalised images take it on their raw values).
    #[arg(long, allow_hyphen_values = true)]
    pub noise_variance: Option<String>,
    /// Probability of a Gaussian blur, sigma 0.5-1 voxel (nnU-Net: 0.2).
    #[arg(long, allow_hyphen_values = true)]
    pub blur_prob: Option<f32>,
    /// Probability of a brightness factor 0.75-1.25 (nnU-Net: 0.15).
    #[arg(long, allow_hyphen_values = true)]
    pub brightness_prob: Option<f32>,
    /// Probability of a contrast factor 0.75-1.25 (nnU-Net: 0.15).
    #[arg(long, allow_hyphen_values = true)]
    pub contrast_prob: Option<f32>,
    /// Probability of simulated low resolution, zoom 0.5-1 (nnU-Net: 0.25).
    #[arg(long, allow_hyphen_values = true)]
    pub lowres_prob: Option<f32>,
    /// Probability of a gamma 0.7-1.5 (nnU-Net: 0.3).
    #[arg(long, allow_hyphen_values = true)]
    pub gamma_prob: Option<f32>,
    /// Probability of a gamma 0.7-1.5 on the inverted patch (nnU-Net: 0.1).
    #[arg(long, allow_hyphen_values = true)]
    pub gamma_invert_prob: Option<f32>,
    /// Gamma range "lo,hi" of both gamma transforms (nnU-Net: 0.7,1.5).
    #[arg(long, allow_hyphen_values = true)]
    pub gamma_range: Option<String>,
    /// The min..max the gamma acts on: image (the whole image's), patch
    /// (nnU-Net) or image-zscore (the image's, and its mean / std kept).
    #[arg(long)]
    pub gamma_range_of: Option<String>,
    /// Share of patches centred on a foreground voxel (nnU-Net: 0.33).
    #[arg(long, allow_hyphen_values = true)]
    pub fg_prob: Option<f32>,
    /// Batches prepared ahead on the background thread.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub prefetch: Option<usize>,
    /// Sanity check: train on this many fixed patches, without augmentation,
    /// and report the training pixel accuracy on them (a working setup fits
    /// them almost exactly); 0: off.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<usize>)]
    pub overfit: Option<usize>,
    // ---- run
    /// Training steps (total, counting from the first step of the run).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<u64>)]
    pub steps: Option<u64>,
    /// Seed of the initialisation and of the patch stream.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<u64>)]
    pub seed: Option<u64>,
    /// Read the loss back (progress bar, log.csv) every N steps.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<u64>)]
    pub log_every: Option<u64>,
    /// Validate every N steps (0: only at the end).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<u64>)]
    pub val_every: Option<u64>,
    /// Write last.safetensors every N steps (and at the end).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::checks::parse_count::<u64>)]
    pub checkpoint_every: Option<u64>,
    /// Metric that picks best.safetensors: mean_dice, pixel_error, rand_error
    /// (this crate's, of the argmax map), or the ISBI 2012 challenge's
    /// isbi_rand_error / isbi_pixel_error (best over thresholds; 2D).
    #[arg(long)]
    pub val_metric: Option<String>,
    /// Validation: flip test-time augmentation.
    #[arg(long)]
    pub val_tta: Option<bool>,
    /// Flip test-time augmentation stored in the checkpoint: the default of
    /// `wunet predict` / `eval --tta` (the softmax averaged over the 4 flips
    /// of (y, x), as nnU-Net's mirroring; unet3d: 8 flips, off by default).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub tta: Option<bool>,
    /// Overlapping tiles: gaussian or none.
    #[arg(long)]
    pub blend: Option<String>,
    /// Run folder (default: runs/<model>-NNN).
    #[allow(rustdoc::invalid_html_tags)] // the text is clap's --help, not HTML
    #[arg(long)]
    pub out: Option<String>,
}
