//! What a checkpoint carries besides its tensors, so that `wunet predict` and
//! `wunet eval` need no model flags: the network configuration, the input
//! normalisation, the label convention and the default tile, as TOML in the
//! safetensors metadata under the key [`META_KEY`]; and [`parse_dims`], the
//! size syntax (`HxW`, `DxHxW`) of `tile` and of the training size keys.

use super::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::models::{Act, ChannelScheme, Norm, Padding, UNetConfig, Upsampling};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Metadata key of [`InferMeta`] in a checkpoint.
pub const META_KEY: &str = "wunet";

/// A serialisable mirror of [`UNetConfig`].
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    pub dims: usize,
    pub in_channels: usize,
    pub classes: usize,
    pub base: usize,
    pub depth: usize,
    /// `valid` or `same`.
    pub padding: String,
    /// `none`, `batch`, `instance` or `group:G`.
    pub norm: String,
    /// `relu` or `leaky:SLOPE`.
    pub act: String,
    /// `convt` or `linear`.
    pub upsample: String,
    pub conv_bias: bool,
    pub upconv_bias: bool,
    /// `ronneberger` or `cicek`.
    pub channels: String,
    pub residual: bool,
    pub dropout: f32,
    pub bn_momentum: f32,
    pub norm_eps: f32,
}

impl From<&UNetConfig> for ModelMeta {
    fn from(c: &UNetConfig) -> Self {
        ModelMeta {
            dims: c.dims,
            in_channels: c.in_channels,
            classes: c.classes,
            base: c.base,
            depth: c.depth,
            padding: if c.padding == Padding::Same {
                "same"
            } else {
                "valid"
            }
            .into(),
            norm: match c.norm {
                Norm::None => "none".into(),
                Norm::Batch => "batch".into(),
                Norm::Instance => "instance".into(),
                Norm::Group(g) => format!("group:{g}"),
            },
            act: match c.act {
                Act::Relu => "relu".into(),
                Act::LeakyRelu(s) => format!("leaky:{s}"),
            },
            upsample: if c.upsample == Upsampling::LinearConv {
                "linear"
            } else {
                "convt"
            }
            .into(),
            conv_bias: c.conv_bias,
            upconv_bias: c.upconv_bias,
            channels: if c.channels == ChannelScheme::Cicek {
                "cicek"
            } else {
                "ronneberger"
            }
            .into(),
            residual: c.residual,
            dropout: c.dropout,
            bn_momentum: c.bn_momentum,
            norm_eps: c.norm_eps,
        }
    }
}

impl ModelMeta {
    /// The network configuration (errors name the bad field).
    pub fn to_config(&self) -> Result<UNetConfig> {
        let bad = |k: &str, v: &str| Error::Other(format!("model metadata: {k} = '{v}'"));
        let norm = match self.norm.as_str() {
            "none" => Norm::None,
            "batch" => Norm::Batch,
            "instance" => Norm::Instance,
            s => match s.strip_prefix("group:").and_then(|g| g.parse().ok()) {
                Some(g) => Norm::Group(g),
                None => return Err(bad("norm", s)),
            },
        };
        let act = match self.act.as_str() {
            "relu" => Act::Relu,
            s => match s.strip_prefix("leaky:").and_then(|g| g.parse().ok()) {
                Some(v) => Act::LeakyRelu(v),
                None => return Err(bad("act", s)),
            },
        };
        Ok(UNetConfig {
            dims: self.dims,
            in_channels: self.in_channels,
            classes: self.classes,
            base: self.base,
            depth: self.depth,
            padding: match self.padding.as_str() {
                "valid" => Padding::Valid,
                "same" => Padding::Same,
                s => return Err(bad("padding", s)),
            },
            norm,
            act,
            upsample: match self.upsample.as_str() {
                "convt" => Upsampling::ConvTranspose,
                "linear" => Upsampling::LinearConv,
                s => return Err(bad("upsample", s)),
            },
            conv_bias: self.conv_bias,
            upconv_bias: self.upconv_bias,
            channels: match self.channels.as_str() {
                "ronneberger" => ChannelScheme::Ronneberger,
                "cicek" => ChannelScheme::Cicek,
                s => return Err(bad("channels", s)),
            },
            residual: self.residual,
            dropout: self.dropout,
            bn_momentum: self.bn_momentum,
            norm_eps: self.norm_eps,
        })
    }
}

/// Everything inference needs besides the weights.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InferMeta {
    pub model: ModelMeta,
    /// Per-image normalisation of the input: `zscore`, `percentile` or
    /// `robust` (the training key `auto` is stored resolved).
    pub normalize: String,
    /// `robust` normalisation clips to its percentile range. Absent in
    /// checkpoints written before the key existed: `false`.
    #[serde(default)]
    pub norm_clip: bool,
    /// Stored label value of each class (class `c` is written as
    /// `class_values[c]`; e.g. ISBI 2012: `[255, 0]`, membrane = class 1 = 0).
    pub class_values: Vec<i64>,
    /// Binary labels: the stored value of class 1 when loading labels (-1: the rarer value).
    pub foreground_value: i64,
    /// The class whose connected components are objects (cells, nuclei):
    /// the segments of the Rand error.
    pub objects_class: i64,
    /// Default network input tile, `HxW` or `DxHxW`.
    pub tile: String,
    /// Tile blending: `gaussian` or `none`.
    pub blend: String,
    /// Trained for instance segmentation (classes background / interior /
    /// boundary; `wunet predict` and `eval` turn them into objects).
    /// Absent in checkpoints written before the key existed: `false`.
    #[serde(default)]
    pub instances: bool,
    /// Instances: objects smaller than this many pixels / voxels are
    /// dropped unless `--min-size` says otherwise (`wunet train`: 1/20 of
    /// the median training object). Absent in checkpoints written before
    /// the key existed: 0, none dropped.
    #[serde(default)]
    pub min_object_size: u64,
    /// Instances: the watershed's neck ratio unless `--neck-ratio` says
    /// otherwise (the training key `neck_ratio`). Absent in checkpoints
    /// written before the key existed: 0, no splitting.
    #[serde(default)]
    pub neck_ratio: f32,
    /// Flip test-time augmentation unless `--tta` says otherwise (the
    /// training key `tta`). Absent in checkpoints written before the key
    /// existed: `false`, as `wunet predict` and `eval` ran then.
    #[serde(default)]
    pub tta: bool,
    /// The median diameter of the training objects, pixels in (y, x)
    /// ([`crate::data::objects`]): `wunet predict --diameter D` resizes the
    /// input by this / D ([`crate::data::objects::scale_for_diameter`], the
    /// factor to put in `PredictOptions::scale`). Absent in checkpoints written before the key
    /// existed, or trained on labels with no object: 0, unknown.
    #[serde(default)]
    pub object_diameter: f32,
}

impl InferMeta {
    /// The metadata of a network made in code rather than by `wunet train`:
    /// per-image z-scores, class `c` stored as the value `c`, class 1 the
    /// objects, input tiles of `tile` (`HxW` or `DxHxW`) blended with a
    /// Gaussian, and none of training's options (no instances, no TTA, the
    /// objects' diameter unknown). Change fields with struct update syntax.
    ///
    /// ```
    /// use wunet::model_io::{InferMeta, ModelMeta};
    /// use wunet::models::UNetConfig;
    ///
    /// let net = UNetConfig::ronneberger2015();
    /// let meta = InferMeta {
    ///     blend: "none".into(),
    ///     ..InferMeta::for_model(ModelMeta::from(&net), "572x572")
    /// };
    /// assert_eq!(meta.class_values, [0, 1]);
    /// assert_eq!(meta.unet().unwrap(), net);
    /// ```
    pub fn for_model(model: ModelMeta, tile: &str) -> InferMeta {
        InferMeta {
            class_values: (0..model.classes as i64).collect(),
            model,
            normalize: "zscore".into(),
            norm_clip: false,
            foreground_value: -1,
            objects_class: 1,
            tile: tile.into(),
            blend: "gaussian".into(),
            instances: false,
            min_object_size: 0,
            neck_ratio: 0.0,
            tta: false,
            object_diameter: 0.0,
        }
    }

    /// Store into a checkpoint's metadata.
    pub fn store(&self, ck: &mut Checkpoint) -> Result<()> {
        let s = toml::to_string(self).map_err(|e| Error::Other(format!("metadata: {e}")))?;
        ck.meta.insert(META_KEY.into(), s);
        Ok(())
    }

    /// Read from a checkpoint loaded from `path`.
    pub fn from_checkpoint(ck: &Checkpoint, path: &Path) -> Result<InferMeta> {
        let s = ck.meta.get(META_KEY).ok_or_else(|| {
            Error::file(
                path,
                format!(
                    "checkpoint has no '{META_KEY}' metadata (model configuration); was it written by `wunet train`?"
                ),
            )
        })?;
        let m: InferMeta = toml::from_str(s)
            .map_err(|e| Error::file(path, format!("bad '{META_KEY}' metadata: {e}")))?;
        m.check()
            .map_err(|e| Error::file(path, format!("bad '{META_KEY}' metadata: {e}")))?;
        Ok(m)
    }

    /// The sizes and the label convention fit together (a checkpoint from
    /// elsewhere, or an edited one, is refused before a network is built).
    fn check(&self) -> Result<()> {
        let m = &self.model;
        if m.dims != 2 && m.dims != 3 {
            return Err(Error::Other(format!(
                "model dims = {}: expected 2 or 3",
                m.dims
            )));
        }
        crate::checks::check_net_sizes(
            Some(m.base),
            Some(m.depth),
            Some(m.in_channels),
            Some(m.classes),
            None,
        )?;
        if self.class_values.len() != m.classes {
            return Err(Error::Other(format!(
                "class_values {:?} has {} values for {} classes",
                self.class_values,
                self.class_values.len(),
                m.classes
            )));
        }
        Ok(())
    }

    /// The network configuration.
    pub fn unet(&self) -> Result<UNetConfig> {
        self.model.to_config()
    }

    /// Options for loading a labelled dataset the way training did.
    pub fn dataset_options(&self) -> crate::data::dataset::DatasetOptions {
        crate::data::dataset::DatasetOptions {
            instances: self.instances,
            ..crate::data::dataset::DatasetOptions::from_keys(
                &self.normalize,
                self.norm_clip,
                self.foreground_value,
            )
        }
    }
}

/// Parse `HxW` (2D; z = 1) or `DxHxW` (3D); a single `N` means N on every axis.
pub fn parse_dims(key: &str, s: &str, dims: usize) -> Result<[usize; 3]> {
    let v: std::result::Result<Vec<usize>, _> =
        s.split('x').map(|p| p.trim().parse::<usize>()).collect();
    let bad = || {
        Error::Other(format!(
            "{key} = '{s}': expected {} positive sizes like {}",
            dims,
            if dims == 3 { "16x64x64" } else { "128x128" }
        ))
    };
    let v = v.map_err(|_| bad())?;
    if v.contains(&0) {
        return Err(bad());
    }
    match (dims, v.as_slice()) {
        (_, [n]) if dims == 2 => Ok([1, *n, *n]),
        (_, [n]) => Ok([*n, *n, *n]),
        (2, [h, w]) => Ok([1, *h, *w]),
        (3, [d, h, w]) => Ok([*d, *h, *w]),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_meta_round_trip() {
        for mut c in [UNetConfig::ronneberger2015(), UNetConfig::cicek2016()] {
            c.norm = Norm::Group(4);
            c.act = Act::LeakyRelu(0.01);
            let m = ModelMeta::from(&c);
            let back: ModelMeta = toml::from_str(&toml::to_string(&m).unwrap()).unwrap();
            assert_eq!(back.to_config().unwrap(), c);
        }
    }

    #[test]
    fn dims_parse() {
        assert_eq!(parse_dims("p", "128x96", 2).unwrap(), [1, 128, 96]);
        assert_eq!(parse_dims("p", "64", 3).unwrap(), [64, 64, 64]);
        assert!(parse_dims("p", "8x0", 2).is_err());
        assert!(parse_dims("p", "8x8x8", 2).is_err());
    }
}
