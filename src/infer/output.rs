//! Writing predictions: label maps, class probabilities and overlays, with
//! the file type chosen by the extension (`.png`, `.tif`/`.tiff`, `.npy`).

use crate::data::io::{
    overlay_rgb, write_npy, write_npy_nd, write_png_gray16, write_png_gray8, write_png_rgb,
    write_tiff, write_tiff_labels,
};
use crate::data::{Array3, ChannelVolume, LabelVolume, Volume};
use crate::error::{Error, Result};
use std::path::Path;

fn ext(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Class ids mapped to stored label values (`class_values[c]`; identity
/// where absent). For a PNG whose values are just 0 and 1, 1 is written as
/// 255 so that the mask is visible.
pub fn stored_labels(pred: &LabelVolume, class_values: &[i64], png: bool) -> LabelVolume {
    let mut vals: Vec<i64> = class_values.to_vec();
    let mut sorted = vals.clone();
    sorted.sort();
    if png && sorted == [0, 1] {
        vals.iter_mut().for_each(|v| *v *= 255);
    }
    pred.map(|&c| {
        vals.get(c as usize)
            .copied()
            .unwrap_or(c as i64)
            .clamp(i32::MIN as i64, i32::MAX as i64) as i32
    })
}

/// Write a label map (class ids → stored values) by extension.
pub fn write_labels(path: &Path, pred: &LabelVolume, class_values: &[i64]) -> Result<()> {
    let e = ext(path);
    let out = stored_labels(pred, class_values, e == "png");
    let (lo, hi) = out
        .data
        .iter()
        .fold((0i32, 0i32), |(a, b), &v| (a.min(v), b.max(v)));
    match e.as_str() {
        "png" => {
            if !out.is_2d() {
                return Err(Error::file(
                    path,
                    format!(
                        "a PNG holds one 2D image but the prediction is a volume {:?}; use .tif or .npy",
                        out.dims
                    ),
                ));
            }
            if lo >= 0 && hi <= 255 {
                write_png_gray8(path, &out.map(|&v| v as u8))
            } else if lo >= 0 && hi <= 65535 {
                write_png_gray16(path, &out.map(|&v| v as u16))
            } else {
                Err(Error::file(path, "label values do not fit a PNG"))
            }
        }
        "tif" | "tiff" => write_tiff_labels(path, &out),
        "npy" => {
            if lo >= 0 && hi <= 255 {
                write_npy(path, &out.map(|&v| v as u8))
            } else {
                write_npy(path, &out)
            }
        }
        _ => Err(Error::file(
            path,
            format!("unsupported output type '.{e}' (use .png, .tif, .tiff or .npy)"),
        )),
    }
}

/// Write instance ids (0 = background, 1..N objects) by extension: a 16-bit
/// PNG (2D, at most 65535 objects), a u32 `.npy` volume, or a TIFF stack in
/// the narrowest type that holds the ids.
pub fn write_instances(path: &Path, ids: &LabelVolume) -> Result<()> {
    let n = ids.data.iter().copied().max().unwrap_or(0).max(0);
    match ext(path).as_str() {
        "png" => {
            if !ids.is_2d() {
                return Err(Error::file(
                    path,
                    format!(
                        "a PNG holds one 2D image but the instances are a volume {:?}; use .npy or .tif",
                        ids.dims
                    ),
                ));
            }
            if n > u16::MAX as i32 {
                return Err(Error::file(
                    path,
                    format!(
                        "{n} objects do not fit a 16-bit PNG (at most 65535); use .npy (u32) or .tif"
                    ),
                ));
            }
            write_png_gray16(path, &ids.map(|&v| v.max(0) as u16))
        }
        "npy" => write_npy(path, &ids.map(|&v| v.max(0) as u32)),
        "tif" | "tiff" => write_tiff_labels(path, ids),
        e => Err(Error::file(
            path,
            format!("unsupported output type '.{e}' (use .png, .tif, .tiff or .npy)"),
        )),
    }
}

/// Write class probabilities: `.npy` with shape `(classes, z, y, x)` (2D:
/// `(classes, y, x)`), `.tif` with `classes x z` f32 pages (class-major), or
/// for 2 classes a `.png` of the class-1 probability (0..255).
pub fn write_probabilities(path: &Path, p: &ChannelVolume) -> Result<()> {
    let [d, h, w] = p.dims;
    match ext(path).as_str() {
        "npy" => {
            let mut shape = vec![p.channels as u64];
            if d > 1 {
                shape.push(d as u64);
            }
            shape.extend([h as u64, w as u64]);
            write_npy_nd(path, &shape, &p.data)
        }
        "tif" | "tiff" => write_tiff(
            path,
            &Array3 {
                data: p.data.clone(),
                dims: [p.channels * d, h, w],
            },
        ),
        "png" if p.channels == 2 && d == 1 => {
            let c1 = p.channel(1)?;
            write_png_gray8(
                path,
                &c1.map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8),
            )
        }
        e => Err(Error::file(
            path,
            format!("probabilities go to .npy or .tif (or .png for 2 classes in 2D), not '.{e}'"),
        )),
    }
}

/// Write an RGB overlay PNG of the prediction over the image (3D: the
/// section with the most predicted foreground; the middle one if none).
pub fn write_overlay(path: &Path, image: &Volume, pred: &LabelVolume) -> Result<()> {
    let n = image.dims[1] * image.dims[2];
    let fg = |z: usize| {
        pred.data
            .get(z * n..(z + 1) * n)
            .map_or(0, |s| s.iter().filter(|&&v| v > 0).count())
    };
    let z = (0..image.dims[0])
        .max_by_key(|&z| (fg(z), usize::MAX - z.abs_diff(image.dims[0] / 2)))
        .filter(|&z| fg(z) > 0)
        .unwrap_or(image.dims[0] / 2);
    let rgb = overlay_rgb(image, pred, z, 0.45)?;
    write_png_rgb(path, image.dims[2], image.dims[1], &rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values() {
        let p = Array3::from_vec([1, 1, 3], vec![0, 1, 1]).unwrap();
        assert_eq!(stored_labels(&p, &[255, 0], true).data, vec![255, 0, 0]);
        assert_eq!(stored_labels(&p, &[0, 1], true).data, vec![0, 255, 255]);
        assert_eq!(stored_labels(&p, &[0, 1], false).data, vec![0, 1, 1]);
    }
}
