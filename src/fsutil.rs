//! File helpers: atomic writes (temp file in the same folder, fsync, rename),
//! so a crash or a full disk never leaves a half-written file in place of a
//! good one.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::file(&dir, format!("cannot create folder: {e}")))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::file(path, format!("write failed: {e}")));
    }
    Ok(())
}

/// Check that `path` is a regular file before reading it (a folder, a pipe
/// or a device such as /dev/zero would fail late or never end); returns its
/// length in bytes.
pub fn check_regular_file(path: &Path) -> Result<u64> {
    let m = std::fs::metadata(path).map_err(|e| Error::file(path, e))?;
    if !m.is_file() {
        return Err(Error::file(
            path,
            "not a regular file (a folder, pipe or device); give a file",
        ));
    }
    Ok(m.len())
}

/// Check, before any work, that `path` (given with `flag`) can be written:
/// not a folder, its folder exists, and a file can be created there.
/// `exts`: the accepted extensions (empty: any).
pub fn check_output_file(flag: &str, path: &Path, exts: &[&str]) -> Result<()> {
    let bad = |msg: String| Error::Other(format!("{flag} {}: {msg}", path.display()));
    if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(bad("is a folder; give a file name".into()));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !exts.is_empty() && !exts.contains(&ext.as_str()) {
        return Err(bad(format!(
            "unsupported file type '.{ext}' (use .{})",
            exts.join(", .")
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(bad(format!(
            "the folder {} does not exist (create it first)",
            dir.display()
        )));
    }
    probe_write(&dir).map_err(|e| bad(format!("cannot write in {}: {e}", dir.display())))
}

/// Check, before any work, that the folder `path` (given with `flag`) exists
/// and is writable, or can be created (its nearest existing ancestor is a
/// writable folder).
pub fn check_output_dir(flag: &str, path: &Path) -> Result<()> {
    let bad = |msg: String| Error::Other(format!("{flag} {}: {msg}", path.display()));
    let mut p = path.to_path_buf();
    loop {
        if p.exists() {
            if !p.is_dir() {
                return Err(bad(format!("{} is a file, not a folder", p.display())));
            }
            return probe_write(&p)
                .map_err(|e| bad(format!("cannot write in {}: {e}", p.display())));
        }
        match p.parent() {
            Some(q) if !q.as_os_str().is_empty() => p = q.to_path_buf(),
            _ => p = std::path::PathBuf::from("."),
        }
    }
}

/// Create and remove a probe file in `dir`.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".wunet-probe-{}", std::process::id()));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// Remove the temporary files that an interrupted atomic write left in
/// `dir` (`.NAME.PID.tmp` and `.NAME.tmp-PID-N`); returns their names.
pub fn remove_stale_temps(dir: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return removed;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let temp = name.starts_with('.') && (name.ends_with(".tmp") || name.contains(".tmp-"));
        if temp && e.path().is_file() && std::fs::remove_file(e.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}
