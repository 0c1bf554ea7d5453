//! Checkpoints in safetensors: every parameter, optimiser state and BN running
//! statistic as a named f32 tensor, plus string metadata (step, config).
//! Writes are atomic; loads validate the file, and `check_against` validates
//! names and shapes against what a model expects, with errors that name them.

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    pub tensors: Vec<NamedTensor>,
    pub meta: BTreeMap<String, String>,
}

/// Optimiser state in a training checkpoint (not needed for inference): the
/// momentum / Adam moments, and the mixed-precision loss scaler.
pub fn is_optimizer_state(name: &str) -> bool {
    name.ends_with(".momentum_buffer")
        || name.ends_with(".exp_avg")
        || name.ends_with(".exp_avg_sq")
        || name == crate::graph::ops::amp::LOSS_SCALER
}

impl Checkpoint {
    /// The model tensors and metadata, without the optimiser state.
    pub fn without_optimizer_state(&self) -> Checkpoint {
        Checkpoint {
            tensors: self
                .tensors
                .iter()
                .filter(|t| !is_optimizer_state(&t.name))
                .cloned()
                .collect(),
            meta: self.meta.clone(),
        }
    }

    /// Fail when a tensor holds NaN or infinite values, naming the tensor,
    /// the count and `path` (a checkpoint of a diverged run is no model).
    pub fn check_finite(&self, path: &Path) -> Result<()> {
        for t in &self.tensors {
            let bad = t.data.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                return Err(Error::file(
                    path,
                    format!(
                        "tensor '{}' holds {bad} non-finite values (NaN or infinite) of {}; the run diverged before this checkpoint was written",
                        t.name,
                        t.data.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Fail unless every expected `(name, shape)` is present with that shape and
    /// nothing unexpected is there.
    pub fn check_against(&self, path: &Path, expected: &[(String, Vec<usize>)]) -> Result<()> {
        for (name, shape) in expected {
            match self.get(name) {
                None => return Err(Error::file(path, format!("checkpoint lacks tensor '{name}' (shape {shape:?})"))),
                Some(t) if &t.shape != shape => {
                    return Err(Error::file(
                        path,
                        format!("tensor '{name}' has shape {:?} in the checkpoint but the model needs {shape:?}", t.shape),
                    ))
                }
                _ => {}
            }
        }
        if let Some(extra) = self
            .tensors
            .iter()
            .find(|t| !expected.iter().any(|(n, _)| n == &t.name))
        {
            return Err(Error::file(
                path,
                format!(
                    "checkpoint has tensor '{}' that the model does not have",
                    extra.name
                ),
            ));
        }
        Ok(())
    }
}

/// Save atomically (temp file + rename).
pub fn save(path: &Path, ckpt: &Checkpoint) -> Result<()> {
    let mut views = Vec::with_capacity(ckpt.tensors.len());
    for t in &ckpt.tensors {
        if t.shape.iter().product::<usize>() != t.data.len() {
            return Err(Error::file(
                path,
                format!(
                    "tensor '{}': shape {:?} but {} values",
                    t.name,
                    t.shape,
                    t.data.len()
                ),
            ));
        }
        let view = safetensors::tensor::TensorView::new(
            Dtype::F32,
            t.shape.clone(),
            bytemuck::cast_slice(&t.data),
        )
        .map_err(|e| Error::file(path, format!("tensor '{}': {e}", t.name)))?;
        views.push((t.name.clone(), view));
    }
    let meta: HashMap<String, String> = ckpt
        .meta
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::file(path, format!("serialize: {e}")))?;
    write_atomic(path, &bytes)
}

/// Only the metadata of a checkpoint (its header), without reading the tensors:
/// for the configuration steps that need the model keys of a large file.
pub fn load_meta(path: &Path) -> Result<BTreeMap<String, String>> {
    use std::io::Read;
    let len = crate::fsutil::check_regular_file(path)?;
    let bad = |m: String| Error::file(path, format!("not a valid safetensors checkpoint: {m}"));
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::file(path, format!("cannot read checkpoint: {e}")))?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|e| bad(e.to_string()))?;
    let n = u64::from_le_bytes(n);
    if n > len.saturating_sub(8) {
        return Err(bad(format!("header of {n} bytes in a file of {len}")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("bad header: {e}")))?;
    let meta = match json.get("__metadata__") {
        Some(m) => {
            serde_json::from_value(m.clone()).map_err(|e| bad(format!("bad header: {e}")))?
        }
        None => BTreeMap::new(),
    };
    Ok(meta)
}

/// Load and validate the file format (f32 tensors only, finite values only;
/// the file size checked against the host memory budget before reading).
pub fn load(path: &Path) -> Result<Checkpoint> {
    let len = crate::fsutil::check_regular_file(path)?;
    crate::checks::checked_count(&[len], 2).map_err(|m| Error::file(path, m))?;
    let bytes = std::fs::read(path)
        .map_err(|e| Error::file(path, format!("cannot read checkpoint: {e}")))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::file(path, format!("not a valid safetensors checkpoint: {e}")))?;
    let (_, md) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::file(path, format!("bad header: {e}")))?;
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let v = st
            .tensor(&name)
            .map_err(|e| Error::file(path, format!("tensor '{name}': {e}")))?;
        if v.dtype() != Dtype::F32 {
            return Err(Error::file(
                path,
                format!(
                    "tensor '{name}' has dtype {:?}; wunet checkpoints hold F32 only",
                    v.dtype()
                ),
            ));
        }
        tensors.push(NamedTensor {
            name,
            shape: v.shape().to_vec(),
            data: bytemuck::pod_collect_to_vec(v.data()),
        });
    }
    let meta = md
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let ck = Checkpoint { tensors, meta };
    ck.check_finite(path)?;
    Ok(ck)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let mut meta = BTreeMap::new();
        meta.insert("step".into(), "42".into());
        Checkpoint {
            tensors: vec![
                NamedTensor {
                    name: "enc0.conv1.weight".into(),
                    shape: vec![4, 1, 3, 3],
                    data: (0..36).map(|i| i as f32).collect(),
                },
                NamedTensor {
                    name: "head.bias".into(),
                    shape: vec![2],
                    data: vec![0.5, -0.5],
                },
            ],
            meta,
        }
    }

    #[test]
    fn round_trip_and_validation() {
        let dir = std::env::temp_dir().join(format!("wunet-ckpt-{}", std::process::id()));
        let p = dir.join("last.safetensors");
        let c = sample();
        save(&p, &c).unwrap();
        let back = load(&p).unwrap();
        assert_eq!(back, c);
        let exp = vec![
            ("enc0.conv1.weight".to_string(), vec![4, 1, 3, 3]),
            ("head.bias".to_string(), vec![2]),
        ];
        back.check_against(&p, &exp).unwrap();
        let wrong = vec![
            ("enc0.conv1.weight".to_string(), vec![8, 1, 3, 3]),
            ("head.bias".to_string(), vec![2]),
        ];
        let e = back.check_against(&p, &wrong).unwrap_err().to_string();
        assert!(
            e.contains("enc0.conv1.weight")
                && e.contains("[4, 1, 3, 3]")
                && e.contains("[8, 1, 3, 3]"),
            "{e}"
        );
        let e = back.check_against(&p, &exp[..1]).unwrap_err().to_string();
        assert!(e.contains("head.bias"), "{e}");
        // A corrupt file is an error naming the file; the good one beside it is untouched.
        let bad = dir.join("corrupt.safetensors");
        std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(
            e.contains("corrupt.safetensors") && e.contains("not a valid"),
            "{e}"
        );
        assert_eq!(load(&p).unwrap(), c);
        // the header alone: the same metadata; a corrupt or truncated header refused
        assert_eq!(load_meta(&p).unwrap(), c.meta);
        let e = load_meta(&bad).unwrap_err().to_string();
        assert!(
            e.contains("corrupt.safetensors") && e.contains("not a valid"),
            "{e}"
        );
        let json = dir.join("json.safetensors");
        std::fs::write(&json, b"\x09\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
        let e = load_meta(&json).unwrap_err().to_string();
        assert!(
            e.contains("json.safetensors") && e.contains("bad header"),
            "{e}"
        );
        let short = dir.join("short.safetensors");
        std::fs::write(&short, b"\xff\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
        let e = load_meta(&short).unwrap_err().to_string();
        assert!(
            e.contains("short.safetensors") && e.contains("header of 255 bytes"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
