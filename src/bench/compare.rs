//! `wunet bench compare A.jsonl B.jsonl [--threshold 0.10]`: per-entry
//! ratios of two `--json` result files, matched on `(op, shape, variant)`.
//! An entry regresses when B's median time exceeds A's by more than the
//! threshold (a fraction); the command exits 1 when any entry regresses, 2
//! on unreadable input, 0 otherwise (see `main.rs`), for use in CI.

use super::json::{read_jsonl, Line, Record};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// One matched entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    pub key: (String, String, String),
    pub a_ms: f64,
    pub b_ms: f64,
    /// `b_ms / a_ms`: above 1 is slower.
    pub ratio: f64,
    pub regressed: bool,
}

/// The comparison of two result files.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    pub ratios: Vec<Ratio>,
    /// Entries only in A, only in B.
    pub only_a: Vec<(String, String, String)>,
    pub only_b: Vec<(String, String, String)>,
    /// Ceilings (`bench peak` lines) of A and B: (name, A, B).
    pub ceilings: Vec<(String, f64, f64)>,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.ratios.iter().filter(|r| r.regressed).count()
    }

    /// The report `bench compare` prints.
    pub fn text(&self, threshold: f64) -> String {
        let mut s = String::new();
        for (name, a, b) in &self.ceilings {
            s += &format!("ceiling {name:<22} {a:>10.2} -> {b:>10.2}  x{:.3}\n", b / a);
        }
        for r in &self.ratios {
            let (op, shape, variant) = &r.key;
            let flag = if r.regressed { "  REGRESSION" } else { "" };
            s += &format!(
                "{op:<24} {shape:<18} {:>10.3} -> {:>10.3} ms  x{:.3}{flag}  {variant}\n",
                r.a_ms, r.b_ms, r.ratio
            );
        }
        for k in &self.only_a {
            s += &format!("only in A: {} {} {}\n", k.0, k.1, k.2);
        }
        for k in &self.only_b {
            s += &format!("only in B: {} {} {}\n", k.0, k.1, k.2);
        }
        s += &format!(
            "{} entries compared, {} slower than A by more than {:.0}%\n",
            self.ratios.len(),
            self.regressions(),
            threshold * 100.0
        );
        s
    }
}

fn split(lines: Vec<Line>) -> (Vec<super::json::PeakRecord>, Vec<Record>) {
    let mut peaks = Vec::new();
    let mut recs = Vec::new();
    for l in lines {
        match l {
            Line::Peak(p) => peaks.push(p),
            Line::Kernel(r) => recs.push(r),
        }
    }
    (peaks, recs)
}

/// Compare the results `b` against the baseline `a`; an entry regresses
/// when `b / a > 1 + threshold`.
pub fn compare_lines(a: Vec<Line>, b: Vec<Line>, threshold: f64) -> Comparison {
    let (pa, ra) = split(a);
    let (pb, rb) = split(b);
    let mut c = Comparison::default();
    if let (Some(pa), Some(pb)) = (pa.first(), pb.first()) {
        c.ceilings = vec![
            ("fma_gflops".into(), pa.fma_gflops, pb.fma_gflops),
            (
                "bandwidth_read_gbps".into(),
                pa.bandwidth_read_gbps,
                pb.bandwidth_read_gbps,
            ),
        ];
    }
    let bmap: BTreeMap<_, &Record> = rb.iter().map(|r| (r.key(), r)).collect();
    let amap: BTreeMap<_, &Record> = ra.iter().map(|r| (r.key(), r)).collect();
    for r in &ra {
        match bmap.get(&r.key()) {
            Some(rb) => {
                let ratio = rb.median_ms / r.median_ms.max(1e-12);
                c.ratios.push(Ratio {
                    key: r.key(),
                    a_ms: r.median_ms,
                    b_ms: rb.median_ms,
                    ratio,
                    regressed: ratio > 1.0 + threshold,
                });
            }
            None => c.only_a.push(r.key()),
        }
    }
    c.only_b = rb
        .iter()
        .map(|r| r.key())
        .filter(|k| !amap.contains_key(k))
        .collect();
    c
}

/// Read and compare two files (errors name the file and line).
pub fn compare_files(a: &Path, b: &Path, threshold: f64) -> Result<Comparison> {
    if !(threshold.is_finite() && threshold >= 0.0) {
        return Err(Error::Other(format!(
            "--threshold {threshold}: expected a fraction >= 0, e.g. 0.1 for 10%"
        )));
    }
    let c = compare_lines(read_jsonl(a)?, read_jsonl(b)?, threshold);
    if c.ratios.is_empty() {
        return Err(Error::Other(format!(
            "{} and {}: no entry (op, shape, variant) in common",
            a.display(),
            b.display()
        )));
    }
    Ok(c)
}
