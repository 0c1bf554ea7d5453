//! The output stores of block-wise prediction: created once, whichever
//! worker gets there first, and a record of finished chunks.
//!
//! - **Creation** is atomic: a worker builds the store's metadata in a
//!   temporary folder beside it and renames it into place; a worker that
//!   loses the race (the rename finds the store there) drops its copy and
//!   opens the winner's. The probabilities store is renamed before the label
//!   store, so a worker that sees the label store sees both.
//! - **The record** (the label store's `wunet` attribute) says how the store
//!   is made: input, checkpoint fingerprint, tile geometry, chunking, region,
//!   output types and the normalisation statistics. A rerun must match it
//!   key for key (an error names the key and both values), and every worker
//!   uses the recorded statistics, so all write the same numbers.
//! - **Done chunks**: after a chunk's arrays are written, an empty marker
//!   `.wunet/done/<z>.<y>.<x>` is written (temp file, fsync, rename). A
//!   chunk without a marker is (re)computed, so a worker killed mid-chunk
//!   leaves nothing that a rerun would keep.

use crate::data::normalize::NormStats;
use crate::data::zarr::{create_image, open_store, ImageSpec};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a store was made; reruns must match it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    /// The input array (absolute store folder and node).
    pub input: String,
    /// `(z, y, x)` of the input; a 2D input has `z = 1`.
    pub input_dims: [usize; 3],
    /// Whether the input array is 2D (the outputs are too).
    pub flat: bool,
    /// FNV-1a hash of the checkpoint file's bytes.
    pub checkpoint: String,
    pub in_tile: [usize; 3],
    pub out_tile: [usize; 3],
    pub overlap: f32,
    pub blend: String,
    pub tta: bool,
    pub precision: String,
    /// The predicted region `[lo, hi)` per axis.
    pub roi: [[usize; 2]; 3],
    /// Output chunk `(z, y, x)`.
    pub chunk: [usize; 3],
    pub classes: usize,
    pub class_values: Vec<i64>,
    /// Element type of the label array.
    pub labels: String,
    /// Element type of the probabilities (`None`: not written).
    pub probabilities: Option<String>,
    pub normalize: String,
    /// Zarr format of the outputs (2 or 3).
    pub zarr_format: u8,
    /// `--scale`: the (y, x) factor the network saw the volume resized by
    /// (stores made before it was recorded: 1).
    #[serde(default = "unscaled")]
    pub scale: f32,
    /// Instance ids (the watershed's settings) instead of class labels
    /// (stores made before instances were possible: none).
    #[serde(default)]
    pub instances: Option<super::instances::InstanceRecord>,
    /// One per volume (3D model) or per section (2D model).
    pub stats: Vec<NormStats>,
}

fn unscaled() -> f32 {
    1.0
}

/// FNV-1a (64 bit) of a file's bytes, as hex.
pub fn fingerprint(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(format!("{h:016x}"))
}

/// Read the record of the label store at `root`.
pub fn read_record(root: &Path) -> Result<Record> {
    let store = open_store(root)?;
    let group = zarrs::group::Group::open(store, "/").map_err(|e| {
        Error::file(
            root,
            format!("not a store that wunet made (its root is not a Zarr group: {e})"),
        )
    })?;
    let rec = group.attributes().get("wunet").cloned().ok_or_else(|| {
        Error::file(
            root,
            "not a store that wunet made (no 'wunet' record); give a new --output",
        )
    })?;
    serde_json::from_value(rec)
        .map_err(|e| Error::file(root, format!("the 'wunet' record is damaged: {e}")))
}

/// An error naming the first key where `have` (the store) and `want` (this
/// run) differ, or `Ok` when they agree (the statistics are not compared:
/// they follow from the input, and the store's are used).
pub fn check_matches(root: &Path, have: &Record, want: &Record) -> Result<()> {
    let (a, b) = (
        serde_json::to_value(have).unwrap_or_default(),
        serde_json::to_value(want).unwrap_or_default(),
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Ok(());
    };
    for (k, va) in a {
        if k == "stats" {
            continue;
        }
        let vb = b.get(k).cloned().unwrap_or_default();
        if *va != vb {
            return Err(Error::file(
                root,
                format!(
                    "this store was made with {k} = {va}, this run has {k} = {vb}; rerun with the store's settings or give a new --output"
                ),
            ));
        }
    }
    Ok(())
}

/// Create the stores of `specs` (`(folder, image)`, renamed in this order)
/// unless they exist; `Ok(true)` when this worker made them.
pub fn create_once(specs: &[(&Path, ImageSpec)]) -> Result<bool> {
    let mut made = false;
    for (root, spec) in specs {
        if root.exists() {
            continue;
        }
        let tmp = temp_beside(root);
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::file(&tmp, e))?;
        create_image(&tmp, spec)?;
        std::fs::create_dir_all(tmp.join(".wunet/done")).map_err(|e| Error::file(&tmp, e))?;
        match std::fs::rename(&tmp, root) {
            Ok(()) => made = true,
            Err(_) if root.exists() => {
                // another worker was first: use its store
                let _ = std::fs::remove_dir_all(&tmp);
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(Error::file(root, format!("cannot create the store: {e}")));
            }
        }
    }
    Ok(made)
}

fn temp_beside(root: &Path) -> PathBuf {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out.zarr".into());
    root.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn marker(root: &Path, chunk: [usize; 3]) -> PathBuf {
    root.join(".wunet/done")
        .join(format!("{}.{}.{}", chunk[0], chunk[1], chunk[2]))
}

/// Has `chunk` been finished?
pub fn is_done(root: &Path, chunk: [usize; 3]) -> bool {
    marker(root, chunk).is_file()
}

/// Record `chunk` as finished (after its arrays are written).
pub fn mark_done(root: &Path, chunk: [usize; 3]) -> Result<()> {
    crate::fsutil::write_atomic(&marker(root, chunk), b"")
}

/// The output chunks that touch the record's region, in C order.
pub fn chunks_of(rec: &Record) -> Vec<[usize; 3]> {
    let r: [(usize, usize); 3] = std::array::from_fn(|a| {
        let c = rec.chunk[a].max(1);
        (rec.roi[a][0] / c, rec.roi[a][1].div_ceil(c))
    });
    let mut v = Vec::new();
    for z in r[0].0..r[0].1 {
        for y in r[1].0..r[1].1 {
            for x in r[2].0..r[2].1 {
                v.push([z, y, x]);
            }
        }
    }
    v
}

/// `wunet predict --status`: done and missing chunks of a label store.
pub fn status(root: &Path) -> Result<String> {
    let rec = read_record(root)?;
    let all = chunks_of(&rec);
    let missing: Vec<[usize; 3]> = all.iter().copied().filter(|&c| !is_done(root, c)).collect();
    let mut s = format!(
        "{}: {} of {} chunks done, {} missing (chunk {:?}, region {:?})\n",
        root.display(),
        all.len() - missing.len(),
        all.len(),
        missing.len(),
        rec.chunk,
        rec.roi
    );
    if let Some(ir) = rec.instances {
        s += &match super::instances::joined(root)? {
            Some(j) => format!(
                "instances: joined, {} objects ({} pieces merged across chunk faces, {} under {} voxels dropped)\n",
                j.objects, j.merges, j.dropped, ir.min_size
            ),
            None => "instances: not joined yet (the worker that finds every chunk done joins them; rerun any part once all are)\n".into(),
        };
    }
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(20).map(|c| format!("{c:?}")).collect();
        s += &format!(
            "missing (z, y, x): {}{}\n",
            shown.join(" "),
            if missing.len() > 20 { " ..." } else { "" }
        );
    }
    Ok(s)
}
