//! The run-folder lock: `run.lock` holds the process id of the training
//! that uses the folder, so that a second training (or a second `--resume`)
//! of the same folder stops with a message instead of interleaving writes.
//! A lock whose process is gone (killed, crashed) is stale: it is reported
//! and replaced. The lock is removed when the run ends.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the lock file in a run folder.
pub const LOCK_FILE: &str = "run.lock";

/// A held lock; dropping it removes the file.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Take the lock of the run folder `dir` (which exists).
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id())
                        .and_then(|_| f.sync_all())
                        .map_err(|e| Error::file(&path, format!("cannot write lock: {e}")))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    check_stale(dir, &path)?;
                }
                Err(e) => return Err(Error::file(&path, format!("cannot create lock: {e}"))),
            }
        }
        Err(Error::file(&path, "cannot take the run folder's lock"))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An existing lock: an error if its process lives, else removed (stale).
fn check_stale(dir: &Path, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let pid = text.trim().parse::<u32>().ok();
    let young = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() < 5);
    let busy = match pid {
        Some(p) => p != std::process::id() && process_alive(p),
        // being written by a process that has just created it
        None => young,
    };
    if busy {
        return Err(Error::file(
            dir,
            format!(
                "another training (process {}) is using this run folder; wait for it to end or choose another --out (if no such process runs, delete {})",
                pid.map_or("?".into(), |p| p.to_string()),
                path.display()
            ),
        ));
    }
    eprintln!(
        "{}: removing a stale lock (process {} is gone)",
        dir.display(),
        pid.map_or("?".into(), |p| p.to_string())
    );
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Whether process `pid` exists.
#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether process `pid` exists (unknown off Unix: assumed alive).
#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    true
}
