//! The one place where numeric values given by a user are range-checked
//! (training keys and flags, inference and bench flags), and where sizes
//! read from file headers are checked against the host memory budget before
//! anything is allocated. Every error names the flag or key and the value.

use crate::error::{Error, Result};

/// Where a value must lie.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Range {
    /// `lo <= v < hi`.
    HalfOpen(f64, f64),
    /// `lo <= v <= hi`.
    Closed(f64, f64),
    /// `lo < v < hi`.
    Open(f64, f64),
    /// `v > 0` (and finite).
    Positive,
    /// `v >= 0` (and finite).
    NonNegative,
}

impl Range {
    fn contains(self, v: f64) -> bool {
        match self {
            Range::HalfOpen(lo, hi) => lo <= v && v < hi,
            Range::Closed(lo, hi) => lo <= v && v <= hi,
            Range::Open(lo, hi) => lo < v && v < hi,
            Range::Positive => v > 0.0,
            Range::NonNegative => v >= 0.0,
        }
    }

    fn describe(self) -> String {
        match self {
            Range::HalfOpen(lo, hi) => format!("in [{lo}, {hi})"),
            Range::Closed(lo, hi) => format!("in [{lo}, {hi}]"),
            Range::Open(lo, hi) => format!("in ({lo}, {hi})"),
            Range::Positive => "finite and > 0".into(),
            Range::NonNegative => "finite and >= 0".into(),
        }
    }
}

/// Check that `v` (given as `key`) is finite and lies in `range`.
pub fn check_f64(key: &str, v: f64, range: Range) -> Result<()> {
    if v.is_finite() && range.contains(v) {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "{key} = {v}: must be {}",
            range.describe()
        )))
    }
}

/// Check that the integer `v` (given as `key`) lies in `lo..=hi`.
pub fn check_int(key: &str, v: i128, lo: i128, hi: i128) -> Result<()> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(Error::Other(format!("{key} = {v}: must be in {lo}..={hi}")))
    }
}

/// Range-check the network-size flags shared by `model`, `plan` and
/// `bench unet*` (`None`: not given). The same ranges as the training keys.
pub fn check_net_sizes(
    base: Option<usize>,
    depth: Option<usize>,
    in_channels: Option<usize>,
    classes: Option<usize>,
    batch: Option<usize>,
) -> Result<()> {
    let keys = [
        ("--base", base, 1, 1024),
        ("--depth", depth, 1, 10),
        ("--in-channels", in_channels, 1, 1024),
        ("--classes", classes, 1, 1024),
        ("--batch", batch, 1, 4096),
    ];
    for (k, v, lo, hi) in keys {
        if let Some(v) = v {
            check_int(k, v as i128, lo, hi)?;
        }
    }
    Ok(())
}

/// Clap value parser of a whole-number flag: a negative or fractional value
/// gets a message naming the value and the rule (instead of being taken for a flag).
pub fn parse_count<T: std::str::FromStr>(s: &str) -> std::result::Result<T, String> {
    s.trim()
        .parse::<T>()
        .map_err(|_| format!("{s}: must be a whole number >= 0"))
}

/// Bytes of host memory that one loaded file may take (decoded, at 8 bytes
/// per value): the environment variable `WUNET_MAX_LOAD_BYTES` when set,
/// else half of the available memory (`/proc/meminfo`), else 16 GiB.
pub fn host_budget_bytes() -> u64 {
    if let Some(v) = std::env::var("WUNET_MAX_LOAD_BYTES")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        return v;
    }
    available_memory().map_or(16 << 30, |m| m / 2)
}

/// `MemAvailable` of `/proc/meminfo` in bytes (Linux; `None` elsewhere).
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The element count of `dims` with overflow-safe arithmetic, checked to be
/// nonzero on every axis and to fit `bytes_per_value` bytes each within
/// [`host_budget_bytes`]. The message (for the caller to prefix with the
/// file or request) names the shape and the budget.
pub fn checked_count(dims: &[u64], bytes_per_value: u64) -> std::result::Result<usize, String> {
    if let Some(a) = dims.iter().position(|&d| d == 0) {
        return Err(format!(
            "shape {dims:?} has a zero-length axis {a}; nothing to read"
        ));
    }
    let budget = host_budget_bytes();
    let too_big = || {
        format!(
            "shape {dims:?} needs more than the host memory budget of {budget} bytes (set WUNET_MAX_LOAD_BYTES to change it)"
        )
    };
    let n = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(too_big)?;
    let bytes = n.checked_mul(bytes_per_value).ok_or_else(too_big)?;
    if bytes > budget {
        return Err(too_big());
    }
    usize::try_from(n).map_err(|_| too_big())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_key() {
        assert!(check_f64("momentum", 0.99, Range::HalfOpen(0.0, 1.0)).is_ok());
        let e = check_f64("momentum", 1.0, Range::HalfOpen(0.0, 1.0)).unwrap_err();
        assert!(e.to_string().contains("momentum = 1"), "{e}");
        assert!(check_f64("lr", f64::NAN, Range::Positive).is_err());
        assert!(check_f64("w0", f64::INFINITY, Range::NonNegative).is_err());
        assert!(check_f64("w0", 0.0, Range::NonNegative).is_ok());
        assert!(check_int("depth", 9, 1, 8).is_err());
    }

    #[test]
    fn counts_overflow_and_zero() {
        assert_eq!(checked_count(&[2, 3], 8).unwrap(), 6);
        assert!(checked_count(&[0, 3], 8).is_err());
        assert!(checked_count(&[u64::MAX, 3], 8).is_err());
        assert!(checked_count(&[1 << 40, 1 << 30], 1).is_err());
    }
}
