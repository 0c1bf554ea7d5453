//! How the golden runner ends: the tally of the cases' verdicts, the
//! closing lines and the exit code. A failed case fails the run, and so does
//! a skipped case unless the manifest marks it `"optional": true` (why, in
//! `"optional_reason"`). Pure (no GPU, no files): `tests/golden_verdict.rs`
//! tests it. A mixed-precision run also reports the worst ratio per op family
//! and the cases it ran in f32 (ops without an F16 path).

use std::collections::BTreeMap;

/// What became of one case.
pub enum Verdict {
    /// Every tensor within tolerance: the worst `|got - exp| / (atol + rtol*|exp|)`.
    Pass(f64),
    Fail,
    /// The engine cannot run the case (why).
    Skip(String),
}

/// The cases' verdicts so far.
#[derive(Default)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Skipped cases that the manifest does not mark optional: `(id, why skipped)`.
    pub required_skipped: Vec<(String, String)>,
    /// The worst passing ratio and its case.
    pub worst: Option<(f64, String)>,
    /// The run's name in the closing line (`golden (mixed): ...`; none: `golden: ...`).
    pub label: Option<String>,
    /// Per op family: the worst passing ratio, its case, and the worst ratio of
    /// the family against the manifest's (f32) tolerance alone.
    pub families: BTreeMap<String, FamilyWorst>,
    /// Passing cases of a mixed run that ran in f32 (no F16 path): `(id, why)`.
    pub in_f32: Vec<(String, String)>,
}

/// The worst ratios of one op family (see [`Tally::families`]).
#[derive(Clone, Debug)]
pub struct FamilyWorst {
    pub ratio: f64,
    pub id: String,
    pub bare: f64,
}

/// The line printed for a skipped case.
pub fn skip_line(id: &str, why: &str, optional: bool, optional_reason: Option<&str>) -> String {
    match (optional, optional_reason) {
        (true, Some(r)) => format!("skip {id}: {why} [optional: {r}]"),
        (true, None) => format!("skip {id}: {why} [optional]"),
        (false, _) => format!("SKIP {id}: {why} [a required case: this fails the run]"),
    }
}

impl Tally {
    /// Count the verdict of case `id`; `optional` is the manifest's flag.
    pub fn add(&mut self, id: &str, optional: bool, v: Verdict) {
        match v {
            Verdict::Pass(r) => {
                self.passed += 1;
                if self.worst.as_ref().is_none_or(|w| r > w.0) {
                    self.worst = Some((r, id.to_string()));
                }
            }
            Verdict::Fail => self.failed += 1,
            Verdict::Skip(why) => {
                self.skipped += 1;
                if !optional {
                    self.required_skipped.push((id.to_string(), why));
                }
            }
        }
    }

    /// Record a passing case's ratios under its op family: `ratio` against the
    /// tolerance the run used, `bare` against the manifest's alone.
    pub fn family(&mut self, family: &str, id: &str, ratio: f64, bare: f64) {
        let f = self
            .families
            .entry(family.to_string())
            .or_insert_with(|| FamilyWorst {
                ratio,
                id: id.to_string(),
                bare,
            });
        if ratio > f.ratio {
            f.ratio = ratio;
            f.id = id.to_string();
        }
        f.bare = f.bare.max(bare);
    }

    /// The closing lines and the exit code: 1 when a case failed or a
    /// required case was skipped, 0 otherwise.
    pub fn finish(&self) -> (Vec<String>, i32) {
        let mut lines = Vec::new();
        for (fam, f) in &self.families {
            lines.push(format!(
                "family {fam}: worst ratio {:.4} ({}); {:.4} against the f32 tolerance alone",
                f.ratio, f.id, f.bare
            ));
        }
        if !self.in_f32.is_empty() {
            let ids: Vec<&str> = self.in_f32.iter().map(|(id, _)| id.as_str()).collect();
            let mut whys: Vec<&str> = self.in_f32.iter().map(|(_, w)| w.as_str()).collect();
            whys.dedup();
            lines.push(format!(
                "ran in f32 (no F16 path: {}): {} cases: {}",
                whys.join("; "),
                ids.len(),
                ids.join(" ")
            ));
        }
        if let Some((r, id)) = &self.worst {
            lines.push(format!("worst passing ratio {r:.4} ({id})"));
        }
        for (id, why) in &self.required_skipped {
            lines.push(format!(
                "FAIL {id}: skipped ({why}), but the manifest requires it (a case the \
                 engine need not run is marked \"optional\": true, with an \"optional_reason\")"
            ));
        }
        let required = if self.required_skipped.is_empty() {
            String::new()
        } else {
            format!(" ({} of them required)", self.required_skipped.len())
        };
        let label = match &self.label {
            Some(l) => format!("golden ({l})"),
            None => "golden".to_string(),
        };
        let in_f32 = if self.in_f32.is_empty() {
            String::new()
        } else {
            format!(" ({} of them in f32)", self.in_f32.len())
        };
        lines.push(format!(
            "{label}: {} passed{in_f32}, {} failed, {} skipped{required}",
            self.passed, self.failed, self.skipped
        ));
        let code = i32::from(self.failed > 0 || !self.required_skipped.is_empty());
        (lines, code)
    }
}
