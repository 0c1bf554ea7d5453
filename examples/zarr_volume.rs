//! Write a volume as an OME-Zarr store for `wunet predict --input vol.zarr`:
//! an image file (`.npy`, `.tif`) converted, or a synthetic nuclei volume of
//! any size made chunk by chunk (memory: one chunk), for trying block-wise
//! prediction and measuring it.
//!
//! ```text
//! cargo run --release --example zarr_volume -- --from stack.tif --out vol.zarr
//! cargo run --release --example zarr_volume -- --synthetic 512x1024x1024 --chunk 64x128x128 --out big.zarr
//! ```

use std::path::PathBuf;
use wunet::data::io::read_image;
use wunet::data::synthetic::nuclei_3d;
use wunet::data::zarr::{create_image, Compression, ImageSpec, OutType, ZarrSink};

fn dims(s: &str) -> [usize; 3] {
    let v: Vec<usize> = s.split('x').map(|t| t.parse().expect("DxHxW")).collect();
    [v[0], v[1], v[2]]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let out = PathBuf::from(flag("--out").ok_or("--out DIR.zarr is required")?);
    let chunk = dims(&flag("--chunk").unwrap_or_else(|| "64x64x64".into()));
    // the whole image (converted) or nothing (synthetic, made per chunk)
    let (shape, image) = match (flag("--from"), flag("--synthetic")) {
        (Some(f), _) => {
            let v = read_image(std::path::Path::new(&f))?;
            (v.dims, Some(v))
        }
        (None, Some(s)) => (dims(&s), None),
        _ => return Err("give --from FILE or --synthetic DxHxW".into()),
    };
    let spec = ImageSpec {
        axes: &["z", "y", "x"],
        shape: shape.iter().map(|&v| v as u64).collect(),
        chunk: chunk.iter().map(|&v| v as u64).collect(),
        dtype: OutType::U16,
        compression: Compression::Zstd,
        attributes: Default::default(),
        format: 3,
    };
    std::fs::create_dir_all(&out)?;
    create_image(&out, &spec)?;
    let sink = ZarrSink::open(&out)?;
    let grid: [usize; 3] = std::array::from_fn(|a| shape[a].div_ceil(chunk[a]));
    for cz in 0..grid[0] {
        for cy in 0..grid[1] {
            for cx in 0..grid[2] {
                let c = [cz, cy, cx];
                let seed = ((cz * grid[1] + cy) * grid[2] + cx) as u64;
                let values = chunk_values(&image, shape, chunk, c, seed);
                sink.store_chunk(&[cz as u64, cy as u64, cx as u64], &values)?;
            }
        }
    }
    println!(
        "{}: {shape:?} (z, y, x) uint16, chunks {chunk:?}",
        out.display()
    );
    Ok(())
}

/// One chunk's values (u16, the chunk's full size; outside the volume 0):
/// from the image, or a synthetic nuclei block scaled by 1000.
fn chunk_values(
    image: &Option<wunet::data::Volume>,
    shape: [usize; 3],
    chunk: [usize; 3],
    c: [usize; 3],
    seed: u64,
) -> Vec<u16> {
    let synthetic = image.is_none().then(|| nuclei_3d(seed, chunk).image);
    let mut v = vec![0u16; chunk.iter().product()];
    for z in 0..chunk[0] {
        for y in 0..chunk[1] {
            for x in 0..chunk[2] {
                let g = [
                    c[0] * chunk[0] + z,
                    c[1] * chunk[1] + y,
                    c[2] * chunk[2] + x,
                ];
                if (0..3).any(|a| g[a] >= shape[a]) {
                    continue;
                }
                let i = (z * chunk[1] + y) * chunk[2] + x;
                let f = match (image, &synthetic) {
                    (Some(im), _) => im.data[(g[0] * shape[1] + g[1]) * shape[2] + g[2]],
                    (None, Some(s)) => s.data[i] * 1000.0,
                    _ => 0.0,
                };
                v[i] = f.round().clamp(0.0, 65535.0) as u16;
            }
        }
    }
    v
}
