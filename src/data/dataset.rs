//! Labelled datasets: discovery of image/label pairs in a folder, loading,
//! per-image normalisation, the label convention, and train/validation splits.
//!
//! # Folder layouts
//! 1. `images/` + `labels/` subfolders (also `image`, `imgs`, `raw` /
//!    `label`, `masks`, `mask`, `gt`) with files of matching names;
//! 2. one folder where label files have `label`/`labels`/`mask`/`masks` in
//!    their name and image files `image`/`images`/`img`/`imgs`/`raw`/`volume`,
//!    paired by the name with that word removed: `train-image-00.png` ↔
//!    `train-label-00.png`, `stage08_image.npy` ↔ `stage08_mask.npy`,
//!    `raw.npy` ↔ `labels.npy`, `image-03.png` ↔ `mask-03.png`. Files with
//!    neither word (e.g. `stage08_instances.npy`), hidden files and other
//!    extensions are ignored.
//!
//! A path to a single image file loads that file and its partner. Files may be
//! `.png`, `.tif`/`.tiff` (multi-page = volume) or `.npy` (see [`super::io`]).
//!
//! # Label convention
//! Class ids are used as stored, except for *binary* datasets (every label
//! file holds only 0 and one other value `v`, e.g. 0/255 or 0/1): these are
//! mapped to {0, 1} so that **class 1 = foreground = the structure being
//! segmented**. Which stored value is the foreground is set by
//! [`DatasetOptions::invert`]: `Some(false)`: `v` → 1 (nuclei masks, where 255
//! = nucleus); `Some(true)`: 0 → 1 (ISBI 2012, where 0 = membrane and 255 =
//! cell, so class 1 = membrane as in the U-Net paper); `None` (default): the
//! value that is rarer over the whole dataset becomes class 1. On the shared
//! data this gives membrane = 1 for ISBI 2012 (22 % of pixels), nucleus = 1
//! for the NIH 3T3 (15–26 %) and mouse embryo (2 %) sets; the choice is
//! recorded in [`Dataset::labels`] so that callers can print it.

use super::io::{is_supported, read_image, read_labels};
use super::labels::{FileValues, LabelSpec};
pub use super::normalize::{
    normalize, normalize_keeping_levels, normalize_sections, percentiles, row_sums, NormStats,
    Normalize, RawLevels,
};
use super::weightmap::{instances_of_class, unet_weight_map, WeightMapOptions};
use super::{numel, LabelVolume, Volume};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which end of a single image or volume [`Dataset::split_spatial`] holds
/// out for validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValPart {
    /// The sections at the start of the axis.
    First,
    /// The sections at the end of the axis.
    Last,
}

/// How to load a dataset.
#[derive(Clone, Debug, Default)]
pub struct DatasetOptions {
    pub normalize: Normalize,
    /// Binary labels: which stored value is class 1 (see the module docs).
    /// `None` = the rarer value; `Some(true)` = 0 is class 1; `Some(false)` =
    /// the nonzero value is class 1. `Some(true)` on non-binary labels is an error.
    pub invert: Option<bool>,
    /// `> 0`: the stored values are the class ids `0..classes` (see [`super::labels`]).
    pub classes: usize,
    /// Non-empty: the stored value of each class (a class map).
    pub class_values: Vec<i32>,
    /// The label files hold instance ids (0 = background, 1..N objects):
    /// they become the 3-class target of [`super::instances`] and are kept
    /// in [`Sample::instances`]; the class keys above are not used. In a
    /// folder, label files named `*instances*` / `*instance*` are preferred.
    pub instances: bool,
}

impl DatasetOptions {
    /// The options behind the training keys `normalize` (`zscore`,
    /// `percentile`: 1-99 % clipped, `robust`: median to 0, 99.8 % to 1, clipped with
    /// `clip`; see [`Normalize::from_key`]; anything else, `auto` included,
    /// is z-score: resolve `auto` first) and `foreground_value` (binary
    /// labels: the stored value of class 1; 0: stored 0 is class 1;
    /// negative: the rarer value). Training and inference both load data
    /// through this one mapping.
    pub fn from_keys(normalize: &str, clip: bool, foreground_value: i64) -> Self {
        DatasetOptions {
            normalize: Normalize::from_key(normalize, clip).unwrap_or(Normalize::ZScore),
            invert: match foreground_value {
                v if v < 0 => None,
                0 => Some(true),
                _ => Some(false),
            },
            ..Default::default()
        }
    }
}

/// How stored label values were turned into class ids.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelMapping {
    /// Used as stored.
    AsStored,
    /// Binary labels: stored `foreground` → 1, stored `background` → 0.
    Binary { foreground: i32, background: i32 },
    /// A class map: class `c` is stored as the `c`-th value.
    Map(Vec<i32>),
}

impl LabelMapping {
    /// The stored value of each class (`classes` of them).
    pub fn class_values(&self, classes: usize) -> Vec<i64> {
        match self {
            LabelMapping::Binary {
                foreground,
                background,
            } => vec![*background as i64, *foreground as i64],
            LabelMapping::Map(v) => v.iter().map(|&x| x as i64).collect(),
            LabelMapping::AsStored => (0..classes as i64).collect(),
        }
    }
}

/// One image with its class labels (same dims) and an optional weight map.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub image: Volume,
    pub labels: LabelVolume,
    pub weights: Option<Volume>,
    /// Instance ids (0 = background), when loaded with `instances`.
    pub instances: Option<LabelVolume>,
    /// An equalised image's raw values at evenly spaced ranks
    /// ([`crate::data::normalize::raw_levels`]): the training noise is
    /// added to raw intensities through them. `None` for other modes.
    pub raw_levels: Option<RawLevels>,
}

/// Paths of one image/label pair.
#[derive(Clone, Debug, PartialEq)]
pub struct PairPaths {
    pub name: String,
    pub image: PathBuf,
    pub labels: PathBuf,
}

/// A list of normalised images with class labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub samples: Vec<Sample>,
    /// `max class id + 1` (at least 2).
    pub n_classes: usize,
    pub labels: LabelMapping,
}

const LABEL_WORDS: [&str; 4] = ["labels", "label", "masks", "mask"];
const IMAGE_WORDS: [&str; 6] = ["images", "image", "imgs", "img", "volume", "raw"];
const INSTANCE_WORDS: [&str; 2] = ["instances", "instance"];
const LABEL_DIRS: [&str; 5] = ["labels", "label", "masks", "mask", "gt"];
const IMAGE_DIRS: [&str; 4] = ["images", "image", "imgs", "raw"];

/// The pairing key: the stem with the first (longest) role word removed.
fn pair_key(stem: &str, words: &[&str]) -> Option<String> {
    let lower = stem.to_ascii_lowercase();
    words.iter().find_map(|w| {
        lower
            .find(w)
            .map(|i| format!("{}{}", &stem[..i], &stem[i + w.len()..]))
    })
}

/// The supported image files of `dir` (`.png`, `.tif`, `.tiff`, `.npy`;
/// hidden files skipped), in name order.
pub(crate) fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::file(dir, format!("cannot list folder: {e}")))?;
    let mut files = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| Error::file(dir, e))?.path();
        let hidden = p
            .file_name()
            .map(|n| n.to_string_lossy().starts_with('.'))
            .unwrap_or(true);
        if p.is_file() && !hidden && is_supported(&p) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn find_subdir(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_dir())
}

fn insert_unique(map: &mut BTreeMap<String, PathBuf>, key: String, p: PathBuf) -> Result<()> {
    if let Some(prev) = map.get(&key) {
        return Err(Error::file(
            &p,
            format!(
                "ambiguous pairing: {} has the same pairing name '{key}'",
                prev.display()
            ),
        ));
    }
    map.insert(key, p);
    Ok(())
}

/// Find the image/label pairs of a folder (or of the folder of one image
/// file, returning only that file's pair). Sorted by name. Errors name an
/// unpaired or ambiguous file.
pub fn find_pairs(path: &Path) -> Result<Vec<PairPaths>> {
    find_pairs_for(path, false)
}

/// [`find_pairs`]; with `instances`, a flat folder's `*instances*` files
/// are the label files when there are any (beside `*mask*` files).
pub fn find_pairs_for(path: &Path, instances: bool) -> Result<Vec<PairPaths>> {
    if path.is_file() {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let all = find_pairs_for(dir, instances)?;
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let want = canon(path);
        return match all
            .into_iter()
            .find(|pp| canon(&pp.image) == want || canon(&pp.labels) == want)
        {
            Some(pp) => Ok(vec![pp]),
            None => Err(Error::file(
                path,
                "no partner found for this file (see data::dataset docs for naming)",
            )),
        };
    }
    if !path.is_dir() {
        return Err(Error::file(path, "no such file or folder"));
    }
    let mut images = BTreeMap::new();
    let mut labels = BTreeMap::new();
    if let (Some(idir), Some(ldir)) = (
        find_subdir(path, &IMAGE_DIRS),
        find_subdir(path, &LABEL_DIRS),
    ) {
        for p in image_files(&idir)? {
            let s = stem(&p);
            insert_unique(&mut images, pair_key(&s, &IMAGE_WORDS).unwrap_or(s), p)?;
        }
        for p in image_files(&ldir)? {
            let s = stem(&p);
            insert_unique(&mut labels, pair_key(&s, &LABEL_WORDS).unwrap_or(s), p)?;
        }
    } else {
        let files = image_files(path)?;
        // instance ids: files named *instances* are the labels when present
        let ids_named = instances
            && files
                .iter()
                .any(|p| pair_key(&stem(p), &INSTANCE_WORDS).is_some());
        for p in files {
            let s = stem(&p);
            if ids_named {
                if let Some(k) = pair_key(&s, &INSTANCE_WORDS) {
                    insert_unique(&mut labels, k, p)?;
                } else if pair_key(&s, &LABEL_WORDS).is_none() {
                    if let Some(k) = pair_key(&s, &IMAGE_WORDS) {
                        insert_unique(&mut images, k, p)?;
                    }
                }
            } else if let Some(k) = pair_key(&s, &LABEL_WORDS) {
                insert_unique(&mut labels, k, p)?;
            } else if let Some(k) = pair_key(&s, &IMAGE_WORDS) {
                insert_unique(&mut images, k, p)?;
            }
        }
    }
    for (k, p) in &labels {
        if !images.contains_key(k) {
            return Err(Error::file(p, "label file has no matching image"));
        }
    }
    let mut pairs = Vec::new();
    for (k, img) in images {
        let lab = labels
            .remove(&k)
            .ok_or_else(|| Error::file(&img, "image has no matching label file"))?;
        pairs.push(PairPaths {
            name: stem(&img),
            image: img,
            labels: lab,
        });
    }
    if pairs.is_empty() {
        return Err(Error::file(
            path,
            "no image/label pairs found (expected images/ + labels/ subfolders, or files named *image* / *label* or *mask*)",
        ));
    }
    Ok(pairs)
}

/// Value histogram of labels (value → count).
fn histogram(labels: &[i32], into: &mut BTreeMap<i32, u64>) {
    let max = labels.iter().copied().max().unwrap_or(0);
    let min = labels.iter().copied().min().unwrap_or(0);
    if min >= 0 && max < 1 << 16 {
        let mut h = vec![0u64; max as usize + 1];
        for &l in labels {
            h[l as usize] += 1;
        }
        for (v, c) in h.into_iter().enumerate().filter(|(_, c)| *c > 0) {
            *into.entry(v as i32).or_default() += c;
        }
    } else {
        for &l in labels {
            *into.entry(l).or_default() += 1;
        }
    }
}

impl Dataset {
    /// Normalise every image in place (keeping an equalised image's raw
    /// levels in [`Sample::raw_levels`]).
    pub fn normalize_images(&mut self, mode: Normalize) {
        for s in &mut self.samples {
            s.raw_levels = normalize_keeping_levels(&mut s.image, mode);
        }
    }

    /// Load every pair under `path` (see the module docs).
    pub fn load(path: &Path, opts: &DatasetOptions) -> Result<Dataset> {
        let pairs = find_pairs_for(path, opts.instances)?;
        let mut raw = Vec::with_capacity(pairs.len());
        for pp in &pairs {
            let image = read_image(&pp.image)?;
            let labels = read_labels(&pp.labels)?;
            if image.dims != labels.dims {
                return Err(Error::file(
                    &pp.labels,
                    format!(
                        "labels are {:?} (z, y, x) but image {} is {:?}",
                        labels.dims,
                        pp.image.display(),
                        image.dims
                    ),
                ));
            }
            raw.push((pp.name.clone(), image, labels, Some(pp.labels.clone())));
        }
        Self::build(raw, opts)
    }

    /// A dataset from in-memory images and stored labels, with the same label
    /// mapping and normalisation as [`Dataset::load`].
    pub fn from_arrays(
        items: Vec<(String, Volume, LabelVolume)>,
        opts: &DatasetOptions,
    ) -> Result<Dataset> {
        for (name, img, lab) in &items {
            if img.dims != lab.dims
                || img.data.len() != numel(img.dims)
                || lab.data.len() != numel(lab.dims)
            {
                return Err(Error::shape(
                    "Dataset::from_arrays",
                    format!(
                        "{name}: image {:?} ({} values), labels {:?} ({} values)",
                        img.dims,
                        img.data.len(),
                        lab.dims,
                        lab.data.len()
                    ),
                ));
            }
        }
        Self::build(
            items.into_iter().map(|(n, i, l)| (n, i, l, None)).collect(),
            opts,
        )
    }

    fn build(
        raw: Vec<(String, Volume, LabelVolume, Option<PathBuf>)>,
        opts: &DatasetOptions,
    ) -> Result<Dataset> {
        if raw.is_empty() {
            return Err(Error::shape("Dataset", "no samples"));
        }
        let mut files = Vec::with_capacity(raw.len());
        for (name, _, lab, path) in &raw {
            if let Some(&v) = lab.data.iter().find(|&&v| v < 0) {
                let msg = format!("negative label value {v}; class ids must be >= 0");
                return Err(match path {
                    Some(p) => Error::file(p, msg),
                    None => Error::shape("Dataset", format!("{name}: {msg}")),
                });
            }
            let mut hist = BTreeMap::new();
            histogram(&lab.data, &mut hist);
            files.push(FileValues {
                name: name.clone(),
                path: path.clone(),
                hist,
            });
        }
        if opts.instances {
            return Self::build_instances(raw, opts.normalize);
        }
        let spec = LabelSpec {
            classes: opts.classes,
            class_values: opts.class_values.clone(),
            invert: opts.invert,
        };
        let (mapping, n_classes) = super::labels::decide(&files, &spec)?;
        let samples = raw
            .into_iter()
            .map(|(name, mut image, mut labels, _)| {
                super::labels::apply(&mapping, &mut labels.data);
                let raw_levels = normalize_keeping_levels(&mut image, opts.normalize);
                Sample {
                    name,
                    image,
                    labels,
                    weights: None,
                    instances: None,
                    raw_levels,
                }
            })
            .collect();
        Ok(Dataset {
            samples,
            n_classes,
            labels: mapping,
        })
    }

    /// Instance ids to the 3-class target (background / interior /
    /// boundary), the ids kept beside it; errors name the label file.
    fn build_instances(
        raw: Vec<(String, Volume, LabelVolume, Option<PathBuf>)>,
        mode: Normalize,
    ) -> Result<Dataset> {
        use super::instances::{check_instance_ids, instance_target, INSTANCE_CLASSES};
        let mut samples = Vec::with_capacity(raw.len());
        for (name, mut image, ids, path) in raw {
            let what = path
                .as_ref()
                .map_or(name.clone(), |p| p.display().to_string());
            check_instance_ids(&what, &ids)?;
            let raw_levels = normalize_keeping_levels(&mut image, mode);
            samples.push(Sample {
                name,
                image,
                labels: instance_target(&ids),
                weights: None,
                instances: Some(ids),
                raw_levels,
            });
        }
        Ok(Dataset {
            samples,
            n_classes: INSTANCE_CLASSES,
            labels: LabelMapping::AsStored,
        })
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
    /// `true` if any sample has more than one z section.
    pub fn is_3d(&self) -> bool {
        self.samples.iter().any(|s| s.image.dims[0] > 1)
    }
    /// The largest (z, y, x) extent of the samples' images, axis by axis
    /// (1 without samples): the size a predictor for all of them fits.
    pub fn max_dims(&self) -> [usize; 3] {
        let most = |a: usize| self.samples.iter().map(|s| s.image.dims[a]).max();
        std::array::from_fn(|a| most(a).unwrap_or(1))
    }
    /// Voxel count per class over all samples (length `n_classes`).
    pub fn class_counts(&self) -> Vec<u64> {
        let mut c = vec![0u64; self.n_classes];
        for s in &self.samples {
            for &l in &s.labels.data {
                if let Some(x) = c.get_mut(l as usize) {
                    *x += 1;
                }
            }
        }
        c
    }

    fn with_samples(&self, samples: Vec<Sample>) -> Dataset {
        Dataset {
            samples,
            n_classes: self.n_classes,
            labels: self.labels.clone(),
        }
    }

    /// Split into (train, validation) with the samples at `val` indices as validation.
    pub fn split_indices(self, val: &[usize]) -> Result<(Dataset, Dataset)> {
        let n = self.samples.len();
        if let Some(&bad) = val.iter().find(|&&i| i >= n) {
            return Err(Error::shape(
                "Dataset::split_indices",
                format!("index {bad} but {n} samples"),
            ));
        }
        let meta = self.with_samples(Vec::new());
        let (mut tr, mut va) = (Vec::new(), Vec::new());
        for (i, s) in self.samples.into_iter().enumerate() {
            if val.contains(&i) {
                va.push(s)
            } else {
                tr.push(s)
            }
        }
        Ok((meta.with_samples(tr), meta.with_samples(va)))
    }

    /// Split into (train, validation): the last `ceil(n * val_fraction)`
    /// samples in name order are the validation set (at least 1, at most
    /// n - 1; e.g. ISBI 2012 with 0.1 → sections 27–29). Needs 2 samples;
    /// for a single volume use [`Dataset::split_spatial`].
    pub fn split_fraction(self, val_fraction: f32) -> Result<(Dataset, Dataset)> {
        let n = self.samples.len();
        if n < 2 || !(val_fraction > 0.0 && val_fraction < 1.0) {
            return Err(Error::shape(
                "Dataset::split_fraction",
                format!("{n} samples, fraction {val_fraction}: needs >= 2 samples and 0 < fraction < 1 (use split_spatial for one volume)"),
            ));
        }
        // (1 - 1e-6): 30 x 0.1f32 is 3.0000000447, which must give 3
        let k = ((n as f64 * val_fraction as f64 * (1.0 - 1e-6)).ceil() as usize).clamp(1, n - 1);
        let val: Vec<usize> = (n - k..n).collect();
        self.split_indices(&val)
    }

    /// Split into (train, validation) for cross-validation fold `k` of `n`:
    /// the samples in name order cut into `n` contiguous groups (sizes
    /// differing by at most one; neighbouring sections of a series stay
    /// together), group `k` the validation set. Needs `n` samples or more.
    pub fn split_fold(self, k: usize, n: usize) -> Result<(Dataset, Dataset)> {
        let len = self.samples.len();
        if n < 2 || k >= n || len < n {
            return Err(Error::shape(
                "Dataset::split_fold",
                format!("fold {k}/{n} of {len} samples: needs 0 <= k < n, n >= 2 and at least n samples"),
            ));
        }
        let val: Vec<usize> = (k * len / n..(k + 1) * len / n).collect();
        self.split_indices(&val)
    }

    /// Cut every sample along `axis` (0 = z, 1 = y, 2 = x) into (train,
    /// validation): `round(len * val_fraction)` sections at the `part` end
    /// are validation, the rest training.
    pub fn split_spatial(
        self,
        val_fraction: f32,
        axis: usize,
        part: ValPart,
    ) -> Result<(Dataset, Dataset)> {
        if axis > 2 || !(val_fraction > 0.0 && val_fraction < 1.0) {
            return Err(Error::shape(
                "Dataset::split_spatial",
                format!("axis {axis}, fraction {val_fraction}"),
            ));
        }
        let meta = self.with_samples(Vec::new());
        let (mut tr, mut va) = (Vec::new(), Vec::new());
        for s in self.samples {
            let len = s.image.dims[axis];
            if len < 2 {
                return Err(Error::shape(
                    "Dataset::split_spatial",
                    format!("{}: axis {axis} has length {len}", s.name),
                ));
            }
            let k = ((len as f64 * val_fraction as f64).round() as usize).clamp(1, len - 1);
            let (train, val) = match part {
                ValPart::Last => ((0, len - k), (len - k, len)),
                ValPart::First => ((k, len), (0, k)),
            };
            let crop = |lo: usize, hi: usize| -> Result<Sample> {
                let mut o = [0; 3];
                let mut sz = s.image.dims;
                o[axis] = lo;
                sz[axis] = hi - lo;
                Ok(Sample {
                    name: s.name.clone(),
                    image: s.image.crop(o, sz)?,
                    labels: s.labels.crop(o, sz)?,
                    weights: s.weights.as_ref().map(|w| w.crop(o, sz)).transpose()?,
                    instances: s.instances.as_ref().map(|w| w.crop(o, sz)).transpose()?,
                    raw_levels: s.raw_levels.clone(),
                })
            };
            tr.push(crop(train.0, train.1)?);
            va.push(crop(val.0, val.1)?);
        }
        Ok((meta.with_samples(tr), meta.with_samples(va)))
    }

    /// Compute the U-Net weight map of every sample. The instances are the
    /// connected components of class `object_class` (0 for ISBI-style
    /// membrane labels, where the cells are class 0; 1 for nuclei).
    pub fn compute_weight_maps(
        &mut self,
        object_class: i32,
        opts: &WeightMapOptions,
    ) -> Result<()> {
        for s in &mut self.samples {
            // the true objects when the data has ids, else the class's components
            let inst = match &s.instances {
                Some(ids) => ids.clone(),
                None => instances_of_class(&s.labels, object_class, false),
            };
            s.weights = Some(unet_weight_map(&s.labels, self.n_classes, &inst, opts)?);
        }
        Ok(())
    }
}

/// A convenience: the raw label values of a file (for reporting).
pub fn label_values(labels: &LabelVolume) -> Vec<(i32, u64)> {
    let mut h = BTreeMap::new();
    histogram(&labels.data, &mut h);
    h.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Array3;

    #[test]
    fn pairing_keys() {
        assert_eq!(
            pair_key("train-label-00", &LABEL_WORDS).unwrap(),
            "train--00"
        );
        assert_eq!(
            pair_key("train-image-00", &IMAGE_WORDS).unwrap(),
            "train--00"
        );
        assert_eq!(pair_key("stage08_mask", &LABEL_WORDS).unwrap(), "stage08_");
        assert_eq!(pair_key("stage08_image", &IMAGE_WORDS).unwrap(), "stage08_");
        assert_eq!(pair_key("labels", &LABEL_WORDS).unwrap(), "");
        assert_eq!(pair_key("raw", &IMAGE_WORDS).unwrap(), "");
        assert_eq!(pair_key("Train-Volume", &IMAGE_WORDS).unwrap(), "Train-");
        assert!(pair_key("stage08_instances", &LABEL_WORDS).is_none());
        assert!(pair_key("stage08_instances", &IMAGE_WORDS).is_none());
    }

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile(np.arange(11.0), [1, 99]) == [0.1, 9.9]
        let v: Vec<f32> = (0..11).map(|i| i as f32).collect();
        let (a, b) = percentiles(&v, 1.0, 99.0);
        assert!((a - 0.1).abs() < 1e-5 && (b - 9.9).abs() < 1e-5, "{a} {b}");
        let mut img = Array3::from_vec([1, 1, 11], v).unwrap();
        normalize(
            &mut img,
            Normalize::Percentile {
                lo: 1.0,
                hi: 99.0,
                clip: true,
            },
        );
        assert_eq!(img.data[0], 0.0);
        assert_eq!(img.data[10], 1.0);
        assert!((img.data[5] - (5.0 - 0.1) / 9.8).abs() < 1e-6);
    }

    #[test]
    fn zscore() {
        let mut img = Array3::from_vec([1, 1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        normalize(&mut img, Normalize::ZScore);
        let mean: f32 = img.data.iter().sum::<f32>() / 4.0;
        let var: f32 = img.data.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
        let mut c = Array3::filled([1, 2, 2], 7.0f32);
        normalize(&mut c, Normalize::ZScore);
        assert!(c.data.iter().all(|&v| v == 0.0));
        // sections on their own: a stack whose second section is 10x + 5 of
        // the first gives both the same values
        let mut st =
            Array3::from_vec([2, 1, 4], vec![1.0, 2.0, 3.0, 4.0, 15.0, 25.0, 35.0, 45.0]).unwrap();
        normalize_sections(&mut st, Normalize::ZScore);
        for i in 0..4 {
            assert!((st.data[i] - img.data[i]).abs() < 1e-5);
            assert!((st.data[4 + i] - img.data[i]).abs() < 1e-5);
        }
    }

    fn item(name: &str, labels: Vec<i32>) -> (String, Volume, LabelVolume) {
        let n = labels.len();
        (
            name.into(),
            Array3::filled([1, 1, n], 1.0),
            Array3::from_vec([1, 1, n], labels).unwrap(),
        )
    }

    #[test]
    fn binary_mapping_rules() {
        // 0 rare (like ISBI membranes): auto makes 0 the foreground.
        let d = Dataset::from_arrays(vec![item("a", vec![0, 255, 255, 255])], &Default::default())
            .unwrap();
        assert_eq!(
            d.labels,
            LabelMapping::Binary {
                foreground: 0,
                background: 255
            }
        );
        assert_eq!(d.samples[0].labels.data, vec![1, 0, 0, 0]);
        assert_eq!(d.n_classes, 2);
        // 255 rare (nuclei): 255 is the foreground.
        let d =
            Dataset::from_arrays(vec![item("a", vec![0, 0, 0, 255])], &Default::default()).unwrap();
        assert_eq!(d.samples[0].labels.data, vec![0, 0, 0, 1]);
        // explicit choice wins over the counts
        let o = DatasetOptions {
            invert: Some(false),
            ..Default::default()
        };
        let d = Dataset::from_arrays(vec![item("a", vec![0, 255, 255, 255])], &o).unwrap();
        assert_eq!(d.samples[0].labels.data, vec![0, 1, 1, 1]);
        // multi-class: as stored; invert is an error
        let d =
            Dataset::from_arrays(vec![item("a", vec![0, 1, 2, 2])], &Default::default()).unwrap();
        assert_eq!(d.labels, LabelMapping::AsStored);
        assert_eq!(d.n_classes, 3);
        let o = DatasetOptions {
            invert: Some(true),
            ..Default::default()
        };
        assert!(Dataset::from_arrays(vec![item("a", vec![0, 1, 2])], &o).is_err());
        assert!(Dataset::from_arrays(vec![item("a", vec![0, -1])], &Default::default()).is_err());
    }

    #[test]
    fn splits() {
        let items: Vec<_> = (0..10)
            .map(|i| item(&format!("s{i}"), vec![0, 1]))
            .collect();
        let d = Dataset::from_arrays(items, &Default::default()).unwrap();
        let (tr, va) = d.clone().split_fraction(0.1).unwrap();
        assert_eq!((tr.len(), va.len()), (9, 1));
        assert_eq!(va.samples[0].name, "s9");
        let (tr, va) = d.clone().split_indices(&[0, 3]).unwrap();
        assert_eq!(
            va.samples
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            vec!["s0", "s3"]
        );
        assert_eq!(tr.len(), 8);
        assert!(d.clone().split_indices(&[10]).is_err());
        // five folds of ten: contiguous pairs, every sample held out once
        let mut held = Vec::new();
        for k in 0..5 {
            let (tr, va) = d.clone().split_fold(k, 5).unwrap();
            assert_eq!((tr.len(), va.len()), (8, 2));
            held.extend(va.samples.iter().map(|s| s.name.clone()));
        }
        assert_eq!(held, (0..10).map(|i| format!("s{i}")).collect::<Vec<_>>());
        // three of ten: groups of 3, 3, 4
        let sizes: Vec<usize> = (0..3)
            .map(|k| d.clone().split_fold(k, 3).unwrap().1.len())
            .collect();
        assert_eq!(sizes, [3, 3, 4]);
        assert!(d.clone().split_fold(5, 5).is_err() && d.clone().split_fold(0, 11).is_err());
        let one = Dataset::from_arrays(
            vec![item("v", vec![0, 1, 0, 1, 1, 0, 0, 1, 0, 1])],
            &Default::default(),
        )
        .unwrap();
        assert!(one.clone().split_fraction(0.2).is_err());
        let (tr, va) = one.clone().split_spatial(0.2, 2, ValPart::Last).unwrap();
        assert_eq!(tr.samples[0].labels.dims, [1, 1, 8]);
        assert_eq!(va.samples[0].labels.data, vec![0, 1]);
        // the first part held out: the other end, training the rest
        let (tr, va) = one.split_spatial(0.3, 2, ValPart::First).unwrap();
        assert_eq!(tr.samples[0].labels.data, vec![1, 1, 0, 0, 1, 0, 1]);
        assert_eq!(va.samples[0].labels.data, vec![0, 1, 0]);
    }
}
