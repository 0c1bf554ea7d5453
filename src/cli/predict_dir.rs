//! `wunet predict --input FOLDER --output FOLDER`: every image of a folder
//! (`.png`, `.tif`/`.tiff`, `.npy`; hidden files skipped; name order), as
//! nnU-Net's and Cellpose's folder prediction. Each image `NAME.EXT` gives
//! `--output/NAME.EXT` (`.tiff` written as `.tif`), `--overlay/NAME.png` and
//! `--probabilities/NAME.npy`; the networks are built once and kept while
//! the images keep their size. An image that fails does not stop the
//! others: the run ends with an error listing the failed files.

use super::predict::{predict_file, Outputs, PredictArgs, PredictorCache};
use super::predict_zarr::required;
use crate::data::dataset::image_files;
use crate::error::{Error, Result};
use crate::fsutil::check_output_dir;
use crate::gpu::Context;
use crate::model_io::{Checkpoint, InferMeta};
use std::path::{Path, PathBuf};

/// What a folder prediction checks before the GPU opens: the input holds
/// images, no two of them write the same output, and every output folder
/// can be written and is not the input folder.
pub fn check_before_gpu(a: &PredictArgs, input: &Path) -> Result<()> {
    let files = images(input)?;
    for (flag, dir) in output_dirs(a)? {
        let file_like = crate::data::io::is_supported(dir);
        if file_like && !dir.is_dir() {
            return Err(Error::Other(format!(
                "{flag} {}: the input {} is a folder, so this is a folder too (NAME.EXT per image); give a folder name, not a file name",
                dir.display(),
                input.display()
            )));
        }
        check_output_dir(flag, dir)?;
        if same_folder(dir, input) {
            return Err(Error::Other(format!(
                "{flag} {}: is the input folder; the outputs would replace or mix with the images: give another folder",
                dir.display()
            )));
        }
    }
    plan(a, &files).map(|_| ())
}

/// Predict every image of the folder `input`; returns the reports of all.
pub fn run(
    ctx: &Context,
    a: &PredictArgs,
    members: &[(Checkpoint, InferMeta)],
    cache: &mut PredictorCache,
) -> Result<String> {
    let input = required(&a.input, "--input")?;
    let files = images(input)?;
    let jobs = plan(a, &files)?;
    for (flag, dir) in output_dirs(a)? {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("{flag}: {e}")))?;
    }
    let mut report = String::new();
    let mut failed = Vec::new();
    for (i, (file, out)) in jobs.iter().enumerate() {
        eprintln!("predict: image {}/{} {}", i + 1, jobs.len(), file.display());
        match predict_file(ctx, a, members, cache, file, out) {
            Ok(r) => report += &r,
            Err(e) => {
                eprintln!("predict: {} failed: {e}", file.display());
                failed.push(format!("  {}: {e}", file.display()));
            }
        }
    }
    let output = required(&a.output, "--output")?;
    if !failed.is_empty() {
        return Err(Error::Other(format!(
            "predict: {} of {} images in {} failed (the other {} were written to {}):\n{}",
            failed.len(),
            jobs.len(),
            input.display(),
            jobs.len() - failed.len(),
            output.display(),
            failed.join("\n")
        )));
    }
    report += &format!(
        "{} images of {} -> {}\n",
        jobs.len(),
        input.display(),
        output.display()
    );
    Ok(report)
}

/// The folder's images, or an error when it has none.
fn images(input: &Path) -> Result<Vec<PathBuf>> {
    let files = image_files(input)?;
    if files.is_empty() {
        return Err(Error::file(
            input,
            "--input: no images (.png, .tif, .tiff, .npy) in this folder",
        ));
    }
    Ok(files)
}

/// The output folders given: `--output`, and `--overlay` /
/// `--probabilities` when asked for.
fn output_dirs(a: &PredictArgs) -> Result<Vec<(&'static str, &Path)>> {
    let mut v = vec![("--output", required(&a.output, "--output")?)];
    if let Some(o) = &a.overlay {
        v.push(("--overlay", o.as_path()));
    }
    if let Some(p) = &a.probabilities {
        v.push(("--probabilities", p.as_path()));
    }
    Ok(v)
}

/// Each image with its output files; two images that would write the same
/// file (`a.png` and `a.tif` both give `a.*` overlays) are refused.
fn plan(a: &PredictArgs, files: &[PathBuf]) -> Result<Vec<(PathBuf, Outputs)>> {
    let output = required(&a.output, "--output")?;
    let mut seen: std::collections::BTreeMap<String, &Path> = Default::default();
    let mut jobs = Vec::with_capacity(files.len());
    for f in files {
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(prev) = seen.insert(stem.clone(), f) {
            return Err(Error::file(
                f,
                format!(
                    "--input: {} has the same name before its extension ('{stem}'); their outputs would overwrite each other: rename one",
                    prev.display()
                ),
            ));
        }
        let ext = match f.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("tiff") || e.eq_ignore_ascii_case("tif") => "tif",
            Some(e) if e.eq_ignore_ascii_case("npy") => "npy",
            _ => "png",
        };
        let out = Outputs {
            labels: output.join(format!("{stem}.{ext}")),
            overlay: a.overlay.as_ref().map(|d| d.join(format!("{stem}.png"))),
            probabilities: a
                .probabilities
                .as_ref()
                .map(|d| d.join(format!("{stem}.npy"))),
        };
        jobs.push((f.clone(), out));
    }
    Ok(jobs)
}

/// Whether `a` and `b` name the same existing folder.
fn same_folder(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
