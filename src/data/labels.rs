//! The label convention of a dataset, decided once over all label files
//! before anything trains: which stored values are which classes.
//!
//! * A class map (`class_values`: the stored value of each class) maps
//!   exactly; a value outside it is an error naming the file and the value.
//! * A class count (`classes = N`) takes the stored values as class ids
//!   `0..N`; a value outside is an error naming the file.
//! * Otherwise: binary labels (0 and one other value over the whole
//!   dataset) map to {0, 1} (see [`super::dataset`] for which is class 1);
//!   other labels must be the class ids `0..K` with `K <= MAX_CLASSES`.
//!   One value only, more distinct values than [`MAX_CLASSES`], or values
//!   that are not `0..K` (files that disagree, 16-bit values, instance ids)
//!   are errors that name the files and their values and the flags that say
//!   what was meant (`--class-values`, `--classes`).

use super::dataset::LabelMapping;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Most classes a dataset may have without a class map or class count.
pub const MAX_CLASSES: usize = 64;

/// The stored values of one label file, with their voxel counts.
#[derive(Clone, Debug)]
pub struct FileValues {
    /// The sample's name (used when there is no file).
    pub name: String,
    /// The label file, when the sample came from one.
    pub path: Option<PathBuf>,
    /// Stored value -> voxel count.
    pub hist: BTreeMap<i32, u64>,
}

impl FileValues {
    fn label(&self) -> String {
        self.path
            .as_ref()
            .map_or(self.name.clone(), |p| p.display().to_string())
    }
}

/// What the user said about the labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSpec {
    /// `> 0`: the stored values are the class ids `0..classes`.
    pub classes: usize,
    /// Non-empty: the stored value of each class.
    pub class_values: Vec<i32>,
    /// Binary labels: which stored value is class 1 (see `DatasetOptions::invert`).
    pub invert: Option<bool>,
}

const HINT: &str = "say what the values mean with --class-values V0,V1,.. (the stored value of each class) or --classes N (values are class ids 0..N-1)";

/// A short list of values (the first 12, then how many more).
fn show_values<'a>(v: impl Iterator<Item = &'a i32>) -> String {
    let all: Vec<i32> = v.copied().collect();
    let head: Vec<String> = all.iter().take(12).map(|x| x.to_string()).collect();
    if all.len() > 12 {
        format!("{{{}, .. ({} values)}}", head.join(", "), all.len())
    } else {
        format!("{{{}}}", head.join(", "))
    }
}

/// The files and their value sets, at most 6 lines.
fn show_files(files: &[FileValues]) -> String {
    let mut lines: Vec<String> = files
        .iter()
        .take(6)
        .map(|f| format!("{}: {}", f.label(), show_values(f.hist.keys())))
        .collect();
    if files.len() > 6 {
        lines.push(format!("(and {} more files)", files.len() - 6));
    }
    lines.join("; ")
}

/// Decide the mapping and the class count from every file's values.
pub fn decide(files: &[FileValues], spec: &LabelSpec) -> Result<(LabelMapping, usize)> {
    if !spec.class_values.is_empty() {
        return by_map(files, &spec.class_values);
    }
    if spec.classes > 0 {
        return by_count(files, spec.classes);
    }
    let mut hist: BTreeMap<i32, u64> = BTreeMap::new();
    for f in files {
        for (&v, &c) in &f.hist {
            *hist.entry(v).or_default() += c;
        }
    }
    let values: Vec<i32> = hist.keys().copied().collect();
    if values.len() < 2 {
        return Err(Error::Other(format!(
            "labels: only the value {} occurs in every label file ({}): training needs at least two classes; check the label files, or {HINT}",
            values.first().copied().unwrap_or(0),
            show_files(files)
        )));
    }
    if values.len() == 2 && values[0] == 0 {
        return Ok((binary(&hist, values[1], spec.invert), 2));
    }
    if spec.invert.is_some() {
        return Err(Error::Other(format!(
            "labels: foreground_value is for binary labels (0 and one other value) but the labels hold {} ({}); leave it unset, or {HINT}",
            show_values(values.iter()),
            show_files(files)
        )));
    }
    if values.len() > MAX_CLASSES {
        return Err(Error::Other(format!(
            "labels: {} distinct values {} are more than {MAX_CLASSES} classes (intensities or instance ids?) in {}; {HINT}",
            values.len(),
            show_values(values.iter()),
            show_files(files)
        )));
    }
    let k = values.len();
    if values[0] != 0 || values[k - 1] as usize != k - 1 {
        return Err(Error::Other(format!(
            "labels: the values {} are not the class ids 0..{} (files disagree, or 16-bit / coded values): {}; {HINT}",
            show_values(values.iter()),
            k - 1,
            show_files(files)
        )));
    }
    Ok((LabelMapping::AsStored, k))
}

/// Binary labels 0 / `v`: which one is class 1.
fn binary(hist: &BTreeMap<i32, u64>, v: i32, invert: Option<bool>) -> LabelMapping {
    let zero_is_fg = invert.unwrap_or_else(|| hist[&0] < hist[&v]);
    if zero_is_fg {
        LabelMapping::Binary {
            foreground: 0,
            background: v,
        }
    } else {
        LabelMapping::Binary {
            foreground: v,
            background: 0,
        }
    }
}

fn by_map(files: &[FileValues], map: &[i32]) -> Result<(LabelMapping, usize)> {
    let mut seen = std::collections::BTreeSet::new();
    if map.len() < 2 || !map.iter().all(|v| seen.insert(*v)) {
        return Err(Error::Other(format!(
            "class_values = {map:?}: needs at least two distinct values"
        )));
    }
    for f in files {
        let outside: Vec<i32> = f
            .hist
            .keys()
            .copied()
            .filter(|v| !map.contains(v))
            .collect();
        if !outside.is_empty() {
            return Err(Error::Other(format!(
                "{}: label values {} are not in the class map {map:?} (class c is stored as the c-th value); the file holds {}",
                f.label(),
                show_values(outside.iter()),
                show_values(f.hist.keys())
            )));
        }
    }
    Ok((LabelMapping::Map(map.to_vec()), map.len()))
}

fn by_count(files: &[FileValues], classes: usize) -> Result<(LabelMapping, usize)> {
    if classes < 2 {
        return Err(Error::Other(format!(
            "classes = {classes}: needs at least two classes"
        )));
    }
    for f in files {
        let outside: Vec<i32> = f
            .hist
            .keys()
            .copied()
            .filter(|&v| v < 0 || v as usize >= classes)
            .collect();
        if !outside.is_empty() {
            return Err(Error::Other(format!(
                "{}: label values {} are not class ids 0..{} (classes = {classes}); give --class-values to map stored values to classes",
                f.label(),
                show_values(outside.iter()),
                classes - 1
            )));
        }
    }
    Ok((LabelMapping::AsStored, classes))
}

/// Apply `mapping` to stored labels (in place): class ids.
pub fn apply(mapping: &LabelMapping, labels: &mut [i32]) {
    match mapping {
        LabelMapping::AsStored => {}
        LabelMapping::Binary { foreground, .. } => {
            for l in labels {
                *l = (*l == *foreground) as i32;
            }
        }
        LabelMapping::Map(values) => {
            for l in labels {
                *l = values.iter().position(|v| v == l).unwrap_or(0) as i32;
            }
        }
    }
}

/// Parse a class map `"V0,V1,.."` (empty: none).
pub fn parse_class_values(key: &str, s: &str) -> Result<Vec<i32>> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: std::result::Result<Vec<i32>, _> =
        s.split(',').map(|p| p.trim().parse::<i32>()).collect();
    let v = v.map_err(|_| {
        Error::Other(format!(
            "{key} = '{s}': expected comma-separated integer label values like 255,0"
        ))
    })?;
    let mut seen = std::collections::BTreeSet::new();
    if v.len() < 2 || !v.iter().all(|x| seen.insert(*x)) {
        return Err(Error::Other(format!(
            "{key} = '{s}': needs at least two distinct values"
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, v: &[(i32, u64)]) -> FileValues {
        FileValues {
            name: name.into(),
            path: None,
            hist: v.iter().copied().collect(),
        }
    }

    #[test]
    fn auto_rules() {
        let spec = LabelSpec::default();
        let (m, k) = decide(&[file("a", &[(0, 5), (255, 1)])], &spec).unwrap();
        assert_eq!(k, 2);
        assert_eq!(
            m,
            LabelMapping::Binary {
                foreground: 255,
                background: 0
            }
        );
        // files that disagree
        let e = decide(
            &[file("a", &[(0, 5), (1, 1)]), file("b", &[(0, 5), (255, 1)])],
            &spec,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("a: {0, 1}") && e.contains("b: {0, 255}"), "{e}");
        // one value
        let e = decide(&[file("a", &[(0, 5)])], &spec)
            .unwrap_err()
            .to_string();
        assert!(e.contains("only the value 0"), "{e}");
        // too many
        let many: Vec<(i32, u64)> = (0..300).map(|v| (v, 1)).collect();
        let e = decide(&[file("a", &many)], &spec).unwrap_err().to_string();
        assert!(e.contains("300 distinct"), "{e}");
        // with a map, the same disagreeing values are fine when covered
        let s = LabelSpec {
            class_values: vec![0, 1, 255],
            ..Default::default()
        };
        let (m, k) = decide(
            &[file("a", &[(0, 5), (1, 1)]), file("b", &[(0, 5), (255, 1)])],
            &s,
        )
        .unwrap();
        assert_eq!(k, 3);
        let mut l = vec![255, 0, 1];
        apply(&m, &mut l);
        assert_eq!(l, vec![2, 0, 1]);
        let s = LabelSpec {
            classes: 4,
            ..Default::default()
        };
        assert_eq!(decide(&[file("a", &[(0, 5), (3, 1)])], &s).unwrap().1, 4);
        assert!(decide(&[file("a", &[(0, 5), (4, 1)])], &s).is_err());
        assert!(parse_class_values("k", "1,1").is_err());
        assert_eq!(parse_class_values("k", "255, 0").unwrap(), vec![255, 0]);
    }
}
