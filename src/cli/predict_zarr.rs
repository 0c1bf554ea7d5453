//! `wunet predict` on Zarr stores: block-wise, bounded memory, any number
//! of workers (see [`crate::infer::blocks`]).

use super::predict::{instances_wanted, PredictArgs};
use crate::data::zarr::{is_zarr, Compression, OutType};
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::infer::blocks::instances::InstanceRecord;
use crate::infer::blocks::{self, BlockJob};
use crate::infer::predict::load_checkpoint;
use crate::model_io::parse_dims;
use crate::model_io::InferMeta;
use clap::Args;
use std::path::{Path, PathBuf};

/// The flags of block-wise prediction (Zarr input and output).
#[derive(Args, Debug, Clone)]
pub struct ZarrFlags {
    /// Zarr input: the OME-Zarr multiscale level to read (0 = full resolution).
    #[arg(long, default_value_t = 0, value_parser = crate::checks::parse_count::<usize>)]
    pub level: usize,
    /// Zarr output: this worker's share of the chunks, K/N with K = 1..N
    /// (every N-th chunk from the K-th). Finished chunks are skipped on a rerun.
    #[arg(long, default_value = "1/1")]
    pub part: String,
    /// Zarr output: predict only this box, z0:z1,y0:y1,x0:x1 (voxels; a 2D image: y0:y1,x0:x1).
    #[arg(long)]
    pub roi: Option<String>,
    /// Zarr output: host memory for one chunk's work, e.g. 512MiB or 4GiB.
    #[arg(long, default_value = "2GiB")]
    pub max_memory: String,
    /// Zarr output chunk: N (a cube), HxW (one section deep) or DxHxW
    /// (default: the input's chunks, fitted to --max-memory).
    #[arg(long)]
    pub chunk: Option<String>,
    /// Zarr output compression: zstd, blosc or none.
    #[arg(long, default_value = "zstd")]
    pub compression: String,
    /// Zarr outputs: format 3 (OME-Zarr 0.5) or 2 (OME-Zarr 0.4).
    #[arg(long, default_value_t = 3)]
    pub zarr_format: u8,
    /// Zarr probabilities: f16, or u8 (round(255 p)).
    #[arg(long, default_value = "f16")]
    pub prob_type: String,
    /// Report the done and missing chunks of a Zarr output store, and exit.
    #[arg(long)]
    pub status: Option<PathBuf>,
}

/// Does this `predict` run go block by block (a Zarr input or output)?
pub fn is_blockwise(a: &PredictArgs) -> bool {
    let z = |p: &Option<PathBuf>| p.as_deref().is_some_and(is_zarr);
    z(&a.input) || z(&a.output)
}

/// Check the flags of a block-wise run before the GPU opens.
pub fn check_before_gpu(a: &PredictArgs) -> Result<()> {
    let (input, output) = (
        required(&a.input, "--input")?,
        required(&a.output, "--output")?,
    );
    if !is_zarr(input) || !is_zarr(output) {
        return Err(Error::Other(format!(
            "a Zarr volume is predicted block by block from a Zarr input into a Zarr output: --input {} and --output {} must both be .zarr stores",
            input.display(),
            output.display()
        )));
    }
    if a.overlay.is_some() {
        return Err(Error::Other(
            "--overlay: not written for Zarr outputs".into(),
        ));
    }
    a.watershed.check()?;
    let checkpoint = a.single_checkpoint()?;
    if !input.exists() {
        return Err(Error::file(input, "no such Zarr store"));
    }
    crate::fsutil::check_regular_file(checkpoint)?;
    job_of(a, None).map(|_| ())
}

/// The argument of a flag that `--status` makes optional.
pub fn required<'a>(p: &'a Option<PathBuf>, flag: &str) -> Result<&'a Path> {
    p.as_deref()
        .ok_or_else(|| Error::Other(format!("{flag} is required (unless --status is given)")))
}

/// The worker's job from the flags (with the GPU and the checkpoint's
/// metadata: `--precision` and the inference defaults resolved).
fn job_of(a: &PredictArgs, resolve: Option<(&Context, &InferMeta)>) -> Result<BlockJob> {
    let z = &a.zarr;
    let prob_type = match z.prob_type.as_str() {
        "f16" => OutType::F16,
        "u8" => OutType::U8,
        s => {
            return Err(Error::Other(format!(
                "--prob-type '{s}': expected f16 or u8"
            )))
        }
    };
    let checkpoint = a.single_checkpoint()?;
    let (tile, opts, instances) = match resolve {
        Some((ctx, meta)) => {
            let (tile, opts) = a.infer.resolve(ctx, meta, checkpoint, meta.model.dims)?;
            a.infer.per_section(meta.model.dims)?; // --norm-scope checked against the model
            let instances = match instances_wanted(a.instances, meta, checkpoint)? {
                true => Some(InstanceRecord::of(&a.watershed.options(meta)?)),
                false => None,
            };
            (tile, opts, instances)
        }
        None => (None, Default::default(), None),
    };
    Ok(BlockJob {
        checkpoint: checkpoint.to_path_buf(),
        input: required(&a.input, "--input")?.to_path_buf(),
        level: z.level,
        output: required(&a.output, "--output")?.to_path_buf(),
        probabilities: a.probabilities.clone().map(|p| (p, prob_type)),
        part: parse_part(&z.part)?,
        roi: z.roi.as_deref().map(parse_roi).transpose()?,
        max_memory: parse_bytes("--max-memory", &z.max_memory)?,
        chunk: z.chunk.as_deref().map(parse_chunk).transpose()?,
        compression: Compression::parse(&z.compression)?,
        zarr_format: match z.zarr_format {
            2 | 3 => z.zarr_format,
            f => return Err(Error::Other(format!("--zarr-format {f}: expected 2 or 3"))),
        },
        tile,
        opts,
        instances,
        norm_stack: a.infer.norm_scope.as_deref() == Some("stack"),
    })
}

/// `--chunk`: `N` (a cube), `HxW` (one section deep) or `DxHxW`.
fn parse_chunk(c: &str) -> Result<[usize; 3]> {
    if c.matches('x').count() == 1 {
        return parse_dims("--chunk", &format!("1x{c}"), 3);
    }
    parse_dims("--chunk", c, 3)
}

/// `K/N` with 1 <= K <= N.
pub fn parse_part(s: &str) -> Result<(usize, usize)> {
    let bad = || {
        Error::Other(format!(
            "--part '{s}': expected K/N with 1 <= K <= N, e.g. 2/8"
        ))
    };
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// `z0:z1,y0:y1,x0:x1` (or `y0:y1,x0:x1`, z = 0:1).
pub fn parse_roi(s: &str) -> Result<[[usize; 2]; 3]> {
    let bad = || {
        Error::Other(format!(
            "--roi '{s}': expected z0:z1,y0:y1,x0:x1 (or y0:y1,x0:x1) in voxels"
        ))
    };
    let axes: Vec<[usize; 2]> = s
        .split(',')
        .map(|r| {
            let (a, b) = r.split_once(':').ok_or_else(bad)?;
            Ok([
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ])
        })
        .collect::<Result<_>>()?;
    match axes.as_slice() {
        [z, y, x] => Ok([*z, *y, *x]),
        [y, x] => Ok([[0, 1], *y, *x]),
        _ => Err(bad()),
    }
}

/// Bytes from `123`, `64KiB`, `512MiB`, `2GiB` (or KB/MB/GB = powers of 1000).
pub fn parse_bytes(flag: &str, s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => 0,
    };
    match num.parse::<f64>() {
        Ok(v) if scale > 0 && v.is_finite() && v > 0.0 => Ok((v * scale as f64) as u64),
        _ => Err(Error::Other(format!(
            "{flag} '{s}': expected a size such as 512MiB or 2GiB"
        ))),
    }
}

/// Run the worker; returns its report.
pub fn run(ctx: &Context, a: &PredictArgs) -> Result<String> {
    let (ck, meta) = load_checkpoint(a.single_checkpoint()?)?;
    let job = job_of(a, Some((ctx, &meta)))?;
    let r = blocks::run(ctx, &job, &ck, &meta)?;
    let vps = r.voxels as f64 / r.seconds.max(1e-9);
    let mut s = format!(
        "{} -> {}: part {}/{}: {} of its {} chunks predicted, {} already done ({} chunks {:?} in the region); {} voxels in {:.2} s ({:.0} voxels/s){}\n",
        job.input.display(),
        job.output.display(),
        job.part.0,
        job.part.1,
        r.chunks_done,
        r.chunks_mine,
        r.chunks_skipped,
        r.chunks_total,
        r.chunk,
        r.voxels,
        r.seconds,
        vps,
        if r.created { "; created the store" } else { "" }
    );
    if r.chunks_done > 0 && r.chunks_done == r.chunks_total {
        s += &format!(
            "tiles: {} run for the {} of the region's tile grid ({:.2}x; tiles at chunk faces run once per chunk)\n",
            r.tiles,
            r.tiles_distinct,
            r.tiles as f64 / r.tiles_distinct.max(1) as f64
        );
    } else {
        s += &format!("tiles: {} run\n", r.tiles);
    }
    if let (Some(j), Some(ir)) = (&r.join, job.instances) {
        s += &format!(
            "instances: {} objects (ids 1..{}, 0 = background; {} pieces joined across chunk faces, {} objects under {} voxels dropped; seeds p(interior) > {}, neck ratio {}){}\n",
            j.objects,
            j.objects,
            j.merges,
            j.dropped,
            ir.min_size,
            ir.seed_threshold,
            ir.neck_ratio,
            if j.rewritten == 0 { "; joined before" } else { "" }
        );
    } else if job.instances.is_some() {
        s += &format!(
            "instances: not joined yet: {} chunks of the region are not done; the worker that finds every chunk done joins them (rerun any part)\n",
            r.join_waiting
        );
    }
    if let Some(kib) = peak_resident_kib() {
        s += &format!("peak resident memory: {:.1} MiB\n", kib as f64 / 1024.0);
    }
    Ok(s)
}

/// The process's peak resident set (Linux `VmHWM`), in KiB.
pub fn peak_resident_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values() {
        assert_eq!(parse_part("2/8").unwrap(), (2, 8));
        assert!(
            parse_part("0/8").is_err() && parse_part("9/8").is_err() && parse_part("x").is_err()
        );
        assert_eq!(
            parse_roi("0:4,2:10,3:9").unwrap(),
            [[0, 4], [2, 10], [3, 9]]
        );
        assert_eq!(parse_roi("2:10,3:9").unwrap(), [[0, 1], [2, 10], [3, 9]]);
        assert!(parse_roi("1:2:3").is_err());
        assert_eq!(parse_chunk("40x30").unwrap(), [1, 40, 30]);
        assert_eq!(parse_chunk("8x40x30").unwrap(), [8, 40, 30]);
        assert_eq!(parse_bytes("m", "64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("m", "2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("m", "1000").unwrap(), 1000);
        assert!(parse_bytes("m", "lots").is_err() && parse_bytes("m", "-3MiB").is_err());
    }
}
