//! Metrics of a predictor on a labelled dataset, on whole images through the
//! same overlap-tile path as `wunet predict`.
//!
//! * `pixel_error`: wrong voxels / all voxels, pooled over the dataset.
//! * `rand_error`: the ISBI 2012 foreground-restricted adapted Rand error of
//!   the segments = connected components of the objects class (cells for
//!   ISBI, where class 1 is membrane), per image, averaged; 2D data only.
//! * `dice_<c>`, `iou_<c>`: per class from the pooled confusion counts;
//!   `mean_dice`: their mean over the classes `1..` (foreground).
//! * `isbi_*` (2D data, when asked for): the ISBI 2012 challenge's own
//!   scores of the objects class's *probability*, each the best over the
//!   thresholds 0.0, 0.1, ..., 1.0 (see [`crate::data::isbi_metrics`]):
//!   `isbi_pixel_error` (1 - max pixel F-score), `isbi_rand_error`
//!   (1 - max V_Rand) with `isbi_v_rand_split` / `_merge` at that threshold,
//!   `isbi_v_info` (max V_Info) with its split / merge terms, and the
//!   thresholds that gave them (`isbi_threshold_pixel`, `_rand`, `_info`).
//! * `instance_*` (instance checkpoints): seeded-watershed objects against
//!   the data's ids (see [`crate::data::instance_metrics`]): `instance_ap50`,
//!   `instance_mean_ap` (DSB 2018: mean over IoU 0.5:0.05:0.95), per image
//!   averaged; object counts, matches at IoU 0.5, splits and merges, summed.

use super::ensemble::predict_mean;
use super::predict::Predictor;
use crate::data::dataset::{Dataset, Sample};
use crate::data::instance_metrics::{instance_scores, mean_scores, InstanceScores};
use crate::data::instances::{watershed_instances, WatershedOptions};
use crate::data::isbi_metrics::{challenge_thresholds, ChallengeAccumulator, ChallengeScores};
use crate::data::metrics::{dice_iou, isbi_rand_error};
use crate::data::weightmap::instances_of_class;
use crate::data::{ChannelVolume, LabelVolume};
use crate::error::Result;
use crate::gpu::Context;

/// Scores of one evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub pixel_error: f64,
    /// `None` for 3D data or when no image has ground-truth segments.
    pub rand_error: Option<f64>,
    pub dice: Vec<Option<f64>>,
    pub iou: Vec<Option<f64>>,
    pub mean_dice: Option<f64>,
    pub images: usize,
    /// The ISBI 2012 challenge's scores; `None` when not asked for, for 3D
    /// data, or when no image has objects.
    pub challenge: Option<ChallengeScores>,
    /// Instance scores (mean over images) when asked for and the data has ids.
    pub instances: Option<InstanceScores>,
    /// Every image's own scores, in the data's order.
    pub per_image: Vec<ImageScores>,
}

impl Metrics {
    /// `(name, value)` in print order: pixel_error, rand_error, dice_c,
    /// iou_c, mean_dice (undefined ones left out).
    pub fn lines(&self) -> Vec<(String, f64)> {
        let mut v = vec![("pixel_error".to_string(), self.pixel_error)];
        if let Some(r) = self.rand_error {
            v.push(("rand_error".into(), r));
        }
        for (c, d) in self.dice.iter().enumerate() {
            if let Some(d) = d {
                v.push((format!("dice_{c}"), *d));
            }
        }
        for (c, d) in self.iou.iter().enumerate() {
            if let Some(d) = d {
                v.push((format!("iou_{c}"), *d));
            }
        }
        if let Some(m) = self.mean_dice {
            v.push(("mean_dice".into(), m));
        }
        if let Some(c) = &self.challenge {
            v.extend(challenge_lines(c));
        }
        if let Some(i) = &self.instances {
            v.extend(instance_lines(i));
        }
        v
    }

    /// A metric by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.lines()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// `name: value` lines; a metric that is undefined on this data (no
    /// voxel of a class in the labels nor in the prediction, no objects for
    /// the Rand error) is printed as `name: undefined (why)`.
    pub fn to_text(&self) -> String {
        let mut s = format!("pixel_error: {:.6}\n", self.pixel_error);
        let undefined = |n: &str, why: &str| format!("{n}: undefined ({why})\n");
        match self.rand_error {
            Some(r) => s += &format!("rand_error: {r:.6}\n"),
            None => s += &undefined("rand_error", "no objects in the labels, or 3D data"),
        }
        for (name, v) in [("dice", &self.dice), ("iou", &self.iou)] {
            for (c, d) in v.iter().enumerate() {
                match d {
                    Some(d) => s += &format!("{name}_{c}: {d:.6}\n"),
                    None => {
                        s += &undefined(
                            &format!("{name}_{c}"),
                            "class absent from labels and prediction",
                        )
                    }
                }
            }
        }
        match self.mean_dice {
            Some(m) => s += &format!("mean_dice: {m:.6}\n"),
            None => s += &undefined("mean_dice", "no foreground class defined"),
        }
        if let Some(c) = &self.challenge {
            for (n, v) in challenge_lines(c) {
                s += &format!("{n}: {v:.6}\n");
            }
        }
        if let Some(i) = &self.instances {
            for (n, v) in instance_lines(i) {
                if n.ends_with("ap50") || n.ends_with("mean_ap") {
                    s += &format!("{n}: {v:.6}\n");
                } else {
                    s += &format!("{n}: {v}\n");
                }
            }
        }
        s
    }
}

/// The challenge's scores as `(name, value)`, names prefixed `isbi_`.
fn challenge_lines(c: &ChallengeScores) -> Vec<(String, f64)> {
    [
        ("isbi_pixel_error", c.pixel_error),
        ("isbi_rand_error", c.rand_error),
        ("isbi_v_rand_split", c.v_rand.split),
        ("isbi_v_rand_merge", c.v_rand.merge),
        ("isbi_v_info", c.v_info.f_score),
        ("isbi_v_info_split", c.v_info.split),
        ("isbi_v_info_merge", c.v_info.merge),
        ("isbi_threshold_pixel", c.pixel_threshold as f64),
        ("isbi_threshold_rand", c.rand_threshold as f64),
        ("isbi_threshold_info", c.info_threshold as f64),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect()
}

/// Instance scores as `(name, value)`, names prefixed `instance_`.
fn instance_lines(i: &InstanceScores) -> Vec<(String, f64)> {
    [
        ("instance_ap50", i.ap50),
        ("instance_mean_ap", i.mean_ap),
        ("instance_true_objects", i.true_objects as f64),
        ("instance_pred_objects", i.pred_objects as f64),
        ("instance_matched50", i.tp50 as f64),
        ("instance_splits", i.splits as f64),
        ("instance_merges", i.merges as f64),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect()
}

/// What the two kinds of printed metrics are (for a legend on stderr).
pub const METRICS_LEGEND: &str = "eval: pixel_error, rand_error, dice_*, iou_*: of the argmax class map (this crate's; rand_error = foreground-restricted adapted Rand error of the objects' 4-connected components); isbi_*: the ISBI 2012 challenge's definitions on the objects class's probability, best of thresholds 0.0:0.1:1.0 (pixel error = 1 - max pixel F-score, Rand error = 1 - max V_Rand, V_Info; Arganda-Carreras et al. 2015, Fiji trainableSegmentation.metrics)";

/// `true` if a lower value of `metric` is better.
pub fn lower_is_better(metric: &str) -> bool {
    metric.ends_with("error")
}

/// `true` if `metric` is one of the ISBI 2012 challenge's scores
/// (`isbi_*`), which [`evaluate`] computes only when asked for.
pub fn is_challenge_metric(metric: &str) -> bool {
    metric.starts_with("isbi_")
}

/// The class whose face-connected components are the objects: for binary
/// labels, the class with more components summed over the samples (cells
/// between a connected membrane network: class 0 on ISBI 2012; nuclei on
/// one background: class 1); 1 for more classes.
pub fn auto_objects_class(data: &Dataset) -> i32 {
    if data.n_classes != 2 {
        return 1;
    }
    let count = |l: &LabelVolume, c: i32| {
        instances_of_class(l, c, false)
            .data
            .iter()
            .copied()
            .max()
            .unwrap_or(0) as u64
    };
    let (mut c0, mut c1) = (0u64, 0u64);
    for s in data.samples.iter().take(8) {
        c0 += count(&s.labels, 0);
        c1 += count(&s.labels, 1);
    }
    if c0 > c1 {
        0
    } else {
        1
    }
}

/// One image's scores, `(name, value)` in the order of [`Metrics::lines`]
/// (undefined ones left out): `pixel_error`, `rand_error`, `dice_<c>`, the
/// challenge's `isbi_pixel_error`, `isbi_rand_error`, `isbi_v_info` (each at
/// this image's best threshold) and `instance_ap50`, `instance_mean_ap`,
/// `instance_true_objects`, `instance_pred_objects`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageScores {
    pub name: String,
    pub values: Vec<(String, f64)>,
}

/// The dataset's sums, image by image.
struct Pooled {
    tp: Vec<u64>,
    fp: Vec<u64>,
    fne: Vec<u64>,
    wrong: u64,
    total: u64,
    rand: Vec<f64>,
    isbi: ChallengeAccumulator,
    inst: Vec<InstanceScores>,
}

/// Predict every sample of `data` and score it; with `instances`, also
/// score the watershed's objects (made with those options) against the
/// samples' instance ids. Several `members` are an ensemble: their class
/// probabilities are averaged ([`super::ensemble::predict_mean`]); one
/// predictor is `std::slice::from_mut(&mut p)`.
pub fn evaluate(
    ctx: &Context,
    members: &mut [Predictor],
    data: &Dataset,
    objects_class: i32,
    challenge: bool,
    instances: Option<WatershedOptions>,
) -> Result<Metrics> {
    let (classes, progress) = match members.first() {
        Some(p) => (p.config.classes, p.progress),
        None => return Err(crate::error::Error::Other("eval: no predictor".into())),
    };
    let k = classes.max(data.n_classes);
    let mut pool = Pooled {
        tp: vec![0; k],
        fp: vec![0; k],
        fne: vec![0; k],
        wrong: 0,
        total: 0,
        rand: Vec::new(),
        isbi: ChallengeAccumulator::new(challenge_thresholds()),
        inst: Vec::new(),
    };
    let want = Wanted {
        k,
        objects_class,
        challenge,
        instances: instances.as_ref(),
    };
    let mut per_image = Vec::with_capacity(data.samples.len());
    for (i, s) in data.samples.iter().enumerate() {
        if progress {
            eprintln!(
                "eval: image {}/{} {} {:?}",
                i + 1,
                data.samples.len(),
                s.name,
                s.image.dims
            );
        }
        let probs = predict_mean(ctx, members, &s.image)?;
        per_image.push(score_sample(&probs, s, &want, &mut pool)?);
    }
    Ok(pool.finish(data.samples.len(), per_image))
}

/// What [`score_sample`] computes.
struct Wanted<'a> {
    /// Classes scored (`0..k`).
    k: usize,
    objects_class: i32,
    challenge: bool,
    instances: Option<&'a WatershedOptions>,
}

/// Score one sample's probabilities: add to the dataset's sums and return
/// the image's own scores.
fn score_sample(
    probs: &ChannelVolume,
    s: &Sample,
    want: &Wanted,
    pool: &mut Pooled,
) -> Result<ImageScores> {
    let pred = probs.argmax();
    let mut row = ImageScores {
        name: s.name.clone(),
        values: Vec::new(),
    };
    let wrong = pred
        .data
        .iter()
        .zip(&s.labels.data)
        .filter(|(a, b)| a != b)
        .count() as u64;
    pool.wrong += wrong;
    pool.total += pred.data.len() as u64;
    row.push("pixel_error", wrong as f64 / pred.data.len().max(1) as f64);
    let oc = want.objects_class;
    let objects = s.image.is_2d() && s.labels.data.contains(&oc);
    if objects {
        let r = isbi_rand_error(&pred, &s.labels, oc)?.error;
        pool.rand.push(r);
        row.push("rand_error", r);
    }
    for cs in dice_iou(&pred, &s.labels, want.k)? {
        pool.tp[cs.class] += cs.tp;
        pool.fp[cs.class] += cs.fp;
        pool.fne[cs.class] += cs.fn_;
        if let Some(d) = cs.dice {
            row.push(&format!("dice_{}", cs.class), d);
        }
    }
    if objects && want.challenge && want.instances.is_none() && (oc as usize) < probs.channels {
        let mut one = ChallengeAccumulator::new(challenge_thresholds());
        one.add(&probs.channel(oc as usize)?, &s.labels, oc)?;
        if let Some(c) = one.finish() {
            row.push("isbi_pixel_error", c.pixel_error);
            row.push("isbi_rand_error", c.rand_error);
            row.push("isbi_v_info", c.v_info.f_score);
        }
        pool.isbi.merge(&one)?;
    }
    if let (Some(opts), Some(ids)) = (want.instances, &s.instances) {
        let got = watershed_instances(probs, opts)?;
        let sc = instance_scores(&got, ids)?;
        row.push("instance_ap50", sc.ap50);
        row.push("instance_mean_ap", sc.mean_ap);
        row.push("instance_true_objects", sc.true_objects as f64);
        row.push("instance_pred_objects", sc.pred_objects as f64);
        pool.inst.push(sc);
    }
    Ok(row)
}

impl ImageScores {
    fn push(&mut self, name: &str, v: f64) {
        self.values.push((name.to_string(), v));
    }
}

impl Pooled {
    /// The dataset's metrics from the sums of `images` images.
    fn finish(self, images: usize, per_image: Vec<ImageScores>) -> Metrics {
        let score = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
        let k = self.tp.len();
        let dice: Vec<Option<f64>> = (0..k)
            .map(|c| score(2 * self.tp[c], 2 * self.tp[c] + self.fp[c] + self.fne[c]))
            .collect();
        let iou: Vec<Option<f64>> = (0..k)
            .map(|c| score(self.tp[c], self.tp[c] + self.fp[c] + self.fne[c]))
            .collect();
        let fg: Vec<f64> = dice.iter().skip(1).flatten().copied().collect();
        let rand = &self.rand;
        Metrics {
            pixel_error: self.wrong as f64 / self.total.max(1) as f64,
            rand_error: (!rand.is_empty()).then(|| rand.iter().sum::<f64>() / rand.len() as f64),
            mean_dice: (!fg.is_empty()).then(|| fg.iter().sum::<f64>() / fg.len() as f64),
            dice,
            iou,
            images,
            challenge: self.isbi.finish(),
            instances: mean_scores(&self.inst),
            per_image,
        }
    }
}

/// `per_image` as CSV: a header `image,<every score any image has>` (in
/// first-seen order) and a row per image, a score the image lacks left
/// empty.
pub fn per_image_csv(per_image: &[ImageScores]) -> String {
    let mut cols: Vec<&str> = Vec::new();
    for r in per_image {
        for (n, _) in &r.values {
            if !cols.contains(&n.as_str()) {
                cols.push(n);
            }
        }
    }
    let mut s = format!("image,{}\n", cols.join(","));
    for r in per_image {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| {
                r.values
                    .iter()
                    .find(|(n, _)| n == c)
                    .map_or(String::new(), |(_, v)| format!("{v:.6}"))
            })
            .collect();
        let name = if r.name.contains([',', '"']) {
            format!("\"{}\"", r.name.replace('"', "\"\""))
        } else {
            r.name.clone()
        };
        s += &format!("{name},{}\n", cells.join(","));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_image_csv_has_every_score_and_quotes_names() {
        let row = |name: &str, v: &[(&str, f64)]| ImageScores {
            name: name.into(),
            values: v.iter().map(|(n, x)| (n.to_string(), *x)).collect(),
        };
        let csv = per_image_csv(&[
            row("a", &[("pixel_error", 0.5), ("dice_1", 0.25)]),
            row("b,\"c\"", &[("pixel_error", 0.125), ("rand_error", 1.0)]),
        ]);
        assert_eq!(
            csv,
            "image,pixel_error,dice_1,rand_error\na,0.500000,0.250000,\n\"b,\"\"c\"\"\",0.125000,,1.000000\n"
        );
    }
}
