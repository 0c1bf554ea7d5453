//! The run's CSV log, `log.csv`: one row per logged step
//! (`step,loss,lr,val_pixel_error,val_rand_error,val_mean_dice,elapsed_s,loss_scale,skipped_steps,val_isbi_rand_error`),
//! validation columns empty where no validation ran, `loss_scale` and
//! `skipped_steps` (mixed precision: the loss scale and the steps skipped so
//! far for a non-finite gradient) empty in f32 runs, `val_isbi_rand_error`
//! (the ISBI 2012 challenge's Rand error, 1 - max V_Rand over thresholds)
//! empty unless `val_metric` is one of the challenge's scores. Logs of the
//! older 7- and 9-column formats are read and, on resume, rewritten in this one. A resumed run first
//! drops the rows after its checkpoint's step (written before an
//! interruption, and about to be redone), so every step appears once.

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const HEADER: &str =
    "step,loss,lr,val_pixel_error,val_rand_error,val_mean_dice,elapsed_s,loss_scale,skipped_steps,val_isbi_rand_error";
/// The header before the challenge's Rand error became a validation metric.
const HEADER_9: &str =
    "step,loss,lr,val_pixel_error,val_rand_error,val_mean_dice,elapsed_s,loss_scale,skipped_steps";
/// The header before mixed precision added `loss_scale` and `skipped_steps`.
const HEADER_7: &str = "step,loss,lr,val_pixel_error,val_rand_error,val_mean_dice,elapsed_s";

/// One row of `log.csv`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub step: u64,
    pub loss: Option<f64>,
    pub lr: Option<f64>,
    pub val_pixel_error: Option<f64>,
    pub val_rand_error: Option<f64>,
    pub val_mean_dice: Option<f64>,
    pub elapsed_s: Option<f64>,
    /// Mixed precision: the loss scale after this step.
    pub loss_scale: Option<f64>,
    /// Mixed precision: steps skipped so far for a non-finite gradient.
    pub skipped_steps: Option<f64>,
    /// The ISBI 2012 challenge's Rand error of the validation images (when
    /// `val_metric` is `isbi_rand_error` or `isbi_pixel_error`).
    pub val_isbi_rand_error: Option<f64>,
}

fn cell(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

impl Row {
    pub fn to_line(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.step,
            cell(self.loss),
            cell(self.lr),
            cell(self.val_pixel_error),
            cell(self.val_rand_error),
            cell(self.val_mean_dice),
            self.elapsed_s
                .map(|e| format!("{e:.3}"))
                .unwrap_or_default(),
            cell(self.loss_scale),
            cell(self.skipped_steps),
            cell(self.val_isbi_rand_error),
        )
    }

    fn parse(line: &str) -> Option<Row> {
        let f: Vec<&str> = line.split(',').collect();
        if ![7, 9, 10].contains(&f.len()) {
            return None;
        }
        let num = |s: &str| -> Option<Option<f64>> {
            if s.trim().is_empty() {
                Some(None)
            } else {
                s.trim().parse().ok().map(Some)
            }
        };
        Some(Row {
            step: f[0].trim().parse().ok()?,
            loss: num(f[1])?,
            lr: num(f[2])?,
            val_pixel_error: num(f[3])?,
            val_rand_error: num(f[4])?,
            val_mean_dice: num(f[5])?,
            elapsed_s: num(f[6])?,
            loss_scale: f.get(7).map_or(Some(None), |s| num(s))?,
            skipped_steps: f.get(8).map_or(Some(None), |s| num(s))?,
            val_isbi_rand_error: f.get(9).map_or(Some(None), |s| num(s))?,
        })
    }
}

/// Read every row of a log (errors name the file and line).
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read log: {e}")))?;
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if [HEADER, HEADER_9, HEADER_7].contains(&h.trim()) => {}
        _ => {
            return Err(Error::file(
                path,
                format!("not a wunet log (header must be '{HEADER}')"),
            ))
        }
    }
    let mut rows = Vec::new();
    for (i, l) in lines.enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        // A row cut short by a crash can only be the last one: drop it.
        match Row::parse(l) {
            Some(r) => rows.push(r),
            None if i + 2 == text.lines().count() => {}
            None => return Err(Error::file(path, format!("line {}: bad row '{l}'", i + 2))),
        }
    }
    Ok(rows)
}

/// An open log, appending.
pub struct CsvLog {
    pub path: PathBuf,
    file: File,
}

impl CsvLog {
    /// Start a new log (replacing any file there).
    pub fn create(path: &Path) -> Result<CsvLog> {
        write_atomic(path, format!("{HEADER}\n").as_bytes())?;
        Self::open(path)
    }

    /// Continue a log after a checkpoint at `step`: rows past it are dropped.
    /// Returns the log and the kept rows. A missing log starts a new one.
    pub fn resume(path: &Path, step: u64) -> Result<(CsvLog, Vec<Row>)> {
        if !path.exists() {
            return Ok((Self::create(path)?, Vec::new()));
        }
        let mut rows = read_rows(path)?;
        rows.retain(|r| r.step <= step);
        let mut text = format!("{HEADER}\n");
        for r in &rows {
            text += &r.to_line();
            text.push('\n');
        }
        write_atomic(path, text.as_bytes())?;
        Ok((Self::open(path)?, rows))
    }

    fn open(path: &Path) -> Result<CsvLog> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::file(path, format!("cannot open log: {e}")))?;
        Ok(CsvLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Append a row (flushed, so a crash loses at most this row).
    pub fn append(&mut self, row: &Row) -> Result<()> {
        writeln!(self.file, "{}", row.to_line())
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::file(&self.path, format!("cannot write log: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_append_resume() {
        let dir = std::env::temp_dir().join(format!("wunet-log-{}", std::process::id()));
        let p = dir.join("log.csv");
        let mut l = CsvLog::create(&p).unwrap();
        for s in 1..=5 {
            l.append(&Row {
                step: s,
                loss: Some(1.0 / s as f64),
                lr: Some(0.01),
                val_mean_dice: (s == 4).then_some(0.5),
                elapsed_s: Some(s as f64),
                ..Default::default()
            })
            .unwrap();
        }
        drop(l);
        let (mut l, kept) = CsvLog::resume(&p, 3).unwrap();
        assert_eq!(kept.len(), 3);
        l.append(&Row {
            step: 4,
            ..Default::default()
        })
        .unwrap();
        let rows = read_rows(&p).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.step).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(rows[1].loss, Some(0.5));
        assert_eq!(rows[3].loss, None);
        std::fs::write(&p, "nope\n").unwrap();
        let e = read_rows(&p).unwrap_err().to_string();
        assert!(e.contains("log.csv"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn older_formats_read_and_resume_into_this_one() {
        let dir = std::env::temp_dir().join(format!("wunet-log-old-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("log.csv");
        for (header, row) in [
            (HEADER_7, "5,0.5,0.01,0.1,0.2,0.7,1.500"),
            (HEADER_9, "5,0.5,0.01,0.1,0.2,0.7,1.500,1024,3"),
        ] {
            std::fs::write(&p, format!("{header}\n{row}\n6,0.4,0.01,,,,2.000\n")).unwrap();
            let rows = read_rows(&p).unwrap();
            assert_eq!(rows.len(), 2, "{header}");
            assert_eq!(rows[0].val_mean_dice, Some(0.7));
            assert_eq!(rows[0].val_isbi_rand_error, None);
            let (_, kept) = CsvLog::resume(&p, 5).unwrap();
            assert_eq!(kept.len(), 1);
            let text = std::fs::read_to_string(&p).unwrap();
            assert_eq!(
                text.lines().next(),
                Some(HEADER),
                "rewritten in the new format"
            );
            assert_eq!(read_rows(&p).unwrap(), kept);
        }
        let r = Row {
            step: 7,
            val_isbi_rand_error: Some(0.0625),
            ..Default::default()
        };
        assert_eq!(Row::parse(&r.to_line()), Some(r));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
