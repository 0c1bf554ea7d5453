//! Ensembles: several checkpoints predict the same image and their class
//! probabilities are averaged, as nnU-Net's default inference averages the
//! softmax of its five cross-validation models (Isensee et al. 2021). The
//! members may differ in everything that shapes the network (base, depth,
//! padding, norm, tile, seed, training data); they must agree on what goes
//! in and what comes out, which [`check_members`] checks.
//!
//! `wunet predict` and `wunet eval` take `--checkpoint` more than once (or
//! several paths after one `--checkpoint`); every member runs its own
//! overlap-tile prediction of the whole image (its own tile, blend, flips
//! and resize) and [`predict_mean`] averages the results. The GPU holds
//! every member's network at once.

use super::predict::{load_checkpoint, Predictor};
use crate::data::{ChannelVolume, Volume};
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::model_io::{Checkpoint, InferMeta};
use std::path::Path;

/// A metadata key's value as text.
type KeyText = fn(&InferMeta) -> String;

/// The keys on which every member must agree with the first, with a
/// reader of each as text: the input (dimensions, channels,
/// normalisation) and the output (classes, their stored label values, the
/// objects class, instance classes).
const MUST_AGREE: [(&str, KeyText); 8] = [
    ("dims", |m| m.model.dims.to_string()),
    ("in_channels", |m| m.model.in_channels.to_string()),
    ("classes", |m| m.model.classes.to_string()),
    ("normalize", |m| m.normalize.clone()),
    ("norm_clip", |m| m.norm_clip.to_string()),
    ("class_values", |m| format!("{:?}", m.class_values)),
    ("objects_class", |m| m.objects_class.to_string()),
    ("instances", |m| m.instances.to_string()),
];

/// Refuse an ensemble whose members disagree with the first on what goes in
/// or comes out (the error names both files and every key with both
/// values); an empty list is refused too.
///
/// ```
/// use std::path::Path;
/// use wunet::infer::ensemble::check_members;
/// use wunet::model_io::{InferMeta, ModelMeta};
/// use wunet::models::UNetConfig;
///
/// let a = InferMeta::for_model(ModelMeta::from(&UNetConfig::ronneberger2015()), "572x572");
/// // another width and tile: fine, the probabilities are still comparable
/// let mut b = a.clone();
/// b.model.base = 32;
/// b.tile = "444x444".into();
/// let (pa, pb) = (Path::new("fold0.safetensors"), Path::new("fold1.safetensors"));
/// check_members(&[(pa, &a), (pb, &b)]).unwrap();
/// // another label convention: refused
/// b.class_values = vec![255, 0];
/// let e = check_members(&[(pa, &a), (pb, &b)]).unwrap_err().to_string();
/// assert!(e.contains("class_values [255, 0] (fold0.safetensors: [0, 1])"), "{e}");
/// ```
pub fn check_members(members: &[(&Path, &InferMeta)]) -> Result<()> {
    let Some(&(first, m0)) = members.first() else {
        return Err(Error::Other("ensemble: no checkpoint given".into()));
    };
    for &(path, m) in &members[1..] {
        let differ: Vec<String> = MUST_AGREE
            .iter()
            .filter(|(_, get)| get(m) != get(m0))
            .map(|(key, get)| format!("{key} {} ({}: {})", get(m), first.display(), get(m0)))
            .collect();
        if !differ.is_empty() {
            return Err(Error::file(
                path,
                format!(
                    "ensemble: this checkpoint differs from the first in {}; an ensemble averages the class probabilities of models that take the same input and predict the same classes",
                    differ.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The class probabilities of `image` averaged over `members` (each runs
/// [`Predictor::predict`] with its own options); one member gives its own
/// probabilities unchanged.
pub fn predict_mean(
    ctx: &Context,
    members: &mut [Predictor],
    image: &Volume,
) -> Result<ChannelVolume> {
    let n = members.len();
    let mut sum: Option<ChannelVolume> = None;
    for (k, p) in members.iter_mut().enumerate() {
        if n > 1 && p.progress {
            eprintln!("ensemble: member {}/{n}", k + 1);
        }
        let probs = p.predict(ctx, image)?;
        let Some(s) = sum.as_mut() else {
            sum = Some(probs);
            continue;
        };
        if probs.channels != s.channels || probs.dims != s.dims {
            return Err(Error::shape(
                "ensemble",
                format!(
                    "member {} predicted {} classes x {:?}, the first {} x {:?}",
                    k + 1,
                    probs.channels,
                    probs.dims,
                    s.channels,
                    s.dims
                ),
            ));
        }
        for (a, v) in s.data.iter_mut().zip(&probs.data) {
            *a += v;
        }
    }
    let mut sum = sum.ok_or_else(|| Error::Other("ensemble: no predictor".into()))?;
    if n > 1 {
        let inv = 1.0 / n as f32;
        sum.data.iter_mut().for_each(|v| *v *= inv);
    }
    Ok(sum)
}

/// Read the checkpoints at `paths` with their metadata and
/// [`check_members`] them (the first error names its file).
pub fn load_members(paths: &[impl AsRef<Path>]) -> Result<Vec<(Checkpoint, InferMeta)>> {
    let loaded = paths
        .iter()
        .map(|p| load_checkpoint(p.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let named: Vec<(&Path, &InferMeta)> = paths
        .iter()
        .zip(&loaded)
        .map(|(p, (_, m))| (p.as_ref(), m))
        .collect();
    check_members(&named)?;
    Ok(loaded)
}
