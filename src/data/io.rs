//! Reading and writing images, volumes and label maps.
//!
//! * PNG (8/16-bit gray, gray+alpha, RGB(A)) through the `image` crate.
//! * TIFF (8/16/32/64-bit integer or float gray, RGB(A); every page of a
//!   multi-page file becomes one z section) through the `tiff` crate.
//! * NumPy `.npy` (u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, bool;
//!   C or Fortran order; axes `(y, x)` or `(z, y, x)`, leading size-1 axes
//!   dropped) through `npyz`.
//!
//! Colour images are converted to gray with the Rec. 709 luma weights
//! (0.2126 R + 0.7152 G + 0.0722 B, alpha dropped); label images must be gray
//! (RGB only when all three channels are equal). Every write goes to a
//! temporary file in the destination folder that is then renamed over the
//! target, so a reader never sees a half-written file. Every error names the
//! file.

use super::{numel, Array3, LabelVolume, Volume};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Gray values as decoded (exact for every integer type up to 32 bits).
struct Gray {
    values: Vec<f64>,
    dims: [usize; 3],
    /// The source had colour channels that differ somewhere.
    colour: bool,
}

fn ext_of(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// `true` for the file types [`read_image`] understands (by extension).
pub fn is_supported(path: &Path) -> bool {
    matches!(ext_of(path).as_str(), "png" | "tif" | "tiff" | "npy")
}

fn decode(path: &Path) -> Result<Gray> {
    crate::fsutil::check_regular_file(path)?;
    match ext_of(path).as_str() {
        "png" => decode_png(path),
        "tif" | "tiff" => decode_tiff(path),
        "npy" => decode_npy(path),
        e => Err(Error::file(
            path,
            format!("unsupported file type '.{e}' (expected .png, .tif, .tiff or .npy)"),
        )),
    }
}

/// Read an image or volume as `f32` gray values (raw intensities, not
/// normalised). NaN or infinite values are an error naming the file, the
/// count and the first position.
pub fn read_image(path: &Path) -> Result<Volume> {
    let g = decode(path)?;
    check_finite(path, &g)?;
    Ok(Array3 {
        data: g.values.iter().map(|&v| v as f32).collect(),
        dims: g.dims,
    })
}

/// Fail when `g` holds NaN or infinite values (they would normalise into an
/// all-NaN image that trains silently).
fn check_finite(path: &Path, g: &Gray) -> Result<()> {
    let mut bad = g.values.iter().enumerate().filter(|(_, v)| !v.is_finite());
    if let Some((first, v)) = bad.next() {
        let count = 1 + bad.count();
        let [_, h, w] = g.dims;
        let (z, y, x) = (
            first / (h * w).max(1),
            first / w.max(1) % h.max(1),
            first % w.max(1),
        );
        return Err(Error::file(
            path,
            format!(
                "{count} of {} values are not finite (NaN or infinite; the first, {v}, at (z, y, x) = ({z}, {y}, {x})); fix or mask the data",
                g.values.len()
            ),
        ));
    }
    Ok(())
}

/// The element count of a header's `dims`, checked for zero axes, overflow
/// and the host memory budget before anything is allocated.
fn header_count(path: &Path, dims: &[u64]) -> Result<usize> {
    // decoded values are held as f64 (8 bytes), plus the decoder's own buffer
    crate::checks::checked_count(dims, 16).map_err(|m| Error::file(path, m))
}

/// Read a label image or volume. Values must be integers in `i32` range and the
/// file must be gray (a colour file with equal channels is accepted).
pub fn read_labels(path: &Path) -> Result<LabelVolume> {
    let g = decode(path)?;
    if g.colour {
        return Err(Error::file(
            path,
            "label image has colour (R, G, B differ); labels must be gray",
        ));
    }
    let mut data = Vec::with_capacity(g.values.len());
    for (i, &v) in g.values.iter().enumerate() {
        if v.fract() != 0.0 || !(i32::MIN as f64..=i32::MAX as f64).contains(&v) {
            return Err(Error::file(
                path,
                format!("label value {v} at index {i} is not an integer in i32 range"),
            ));
        }
        data.push(v as i32);
    }
    Ok(Array3 { data, dims: g.dims })
}

// ---------------------------------------------------------------- PNG

fn decode_png(path: &Path) -> Result<Gray> {
    use image::DynamicImage as D;
    use image::ImageDecoder;
    let file = File::open(path).map_err(|e| Error::file(path, e))?;
    let perr = |e: image::ImageError| Error::file(path, format!("cannot decode PNG: {e}"));
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(crate::checks::host_budget_bytes());
    let dec =
        image::codecs::png::PngDecoder::with_limits(BufReader::new(file), limits).map_err(perr)?;
    let (w, h) = dec.dimensions();
    let channels = dec.color_type().channel_count() as u64;
    header_count(path, &[h as u64, w as u64, channels])?;
    let img = D::from_decoder(dec).map_err(perr)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let dims = [1, h, w];
    let (values, colour) = match img {
        D::ImageLuma8(b) => (b.into_raw().into_iter().map(f64::from).collect(), false),
        D::ImageLuma16(b) => (b.into_raw().into_iter().map(f64::from).collect(), false),
        D::ImageLumaA8(b) => (
            b.into_raw()
                .chunks_exact(2)
                .map(|p| f64::from(p[0]))
                .collect(),
            false,
        ),
        D::ImageLumaA16(b) => (
            b.into_raw()
                .chunks_exact(2)
                .map(|p| f64::from(p[0]))
                .collect(),
            false,
        ),
        D::ImageRgb8(b) => rgb_to_gray(
            &b.into_raw()
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>(),
            3,
        ),
        D::ImageRgba8(b) => rgb_to_gray(
            &b.into_raw()
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>(),
            4,
        ),
        D::ImageRgb16(b) => rgb_to_gray(
            &b.into_raw()
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>(),
            3,
        ),
        D::ImageRgba16(b) => rgb_to_gray(
            &b.into_raw()
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>(),
            4,
        ),
        other => (
            other
                .to_luma32f()
                .into_raw()
                .into_iter()
                .map(f64::from)
                .collect(),
            true,
        ),
    };
    Ok(Gray {
        values,
        dims,
        colour,
    })
}

/// Rec. 709 luma of interleaved pixels with `stride` samples (RGB or RGBA).
fn rgb_to_gray(px: &[f64], stride: usize) -> (Vec<f64>, bool) {
    let mut colour = false;
    let values = px
        .chunks_exact(stride)
        .map(|p| {
            if p[0] != p[1] || p[1] != p[2] {
                colour = true;
                0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2]
            } else {
                p[0]
            }
        })
        .collect();
    (values, colour)
}

// ---------------------------------------------------------------- TIFF

fn decode_tiff(path: &Path) -> Result<Gray> {
    use tiff::decoder::{Decoder, DecodingResult as R};
    use tiff::ColorType as C;
    let file = File::open(path).map_err(|e| Error::file(path, e))?;
    let terr = |e: tiff::TiffError| Error::file(path, format!("cannot decode TIFF: {e}"));
    let mut dec = Decoder::new(BufReader::new(file)).map_err(terr)?;
    let mut values = Vec::new();
    let mut colour = false;
    let mut hw = (0usize, 0usize);
    let mut pages = 0usize;
    loop {
        let (w, h) = dec.dimensions().map_err(terr)?;
        header_count(path, &[pages as u64 + 1, h as u64, w as u64])?;
        let (w, h) = (w as usize, h as usize);
        let spp = match dec.colortype().map_err(terr)? {
            C::Gray(b) if b >= 8 => 1,
            C::GrayA(_) => 2,
            C::RGB(_) => 3,
            C::RGBA(_) => 4,
            c => {
                return Err(Error::file(
                    path,
                    format!("unsupported TIFF colour type {c:?}"),
                ))
            }
        };
        if pages > 0 && (h, w) != hw {
            return Err(Error::file(
                path,
                format!(
                    "page {pages} is {h} x {w} but page 0 is {} x {}; a stack needs equal pages",
                    hw.0, hw.1
                ),
            ));
        }
        hw = (h, w);
        let page: Vec<f64> = match dec.read_image().map_err(terr)? {
            R::U8(v) => v.into_iter().map(f64::from).collect(),
            R::U16(v) => v.into_iter().map(f64::from).collect(),
            R::U32(v) => v.into_iter().map(f64::from).collect(),
            R::U64(v) => v.into_iter().map(|x| x as f64).collect(),
            R::I8(v) => v.into_iter().map(f64::from).collect(),
            R::I16(v) => v.into_iter().map(f64::from).collect(),
            R::I32(v) => v.into_iter().map(f64::from).collect(),
            R::I64(v) => v.into_iter().map(|x| x as f64).collect(),
            R::F16(v) => v.into_iter().map(|x| f64::from(x.to_f32())).collect(),
            R::F32(v) => v.into_iter().map(f64::from).collect(),
            R::F64(v) => v,
        };
        if page.len() / spp < w * h {
            return Err(Error::file(
                path,
                format!("page {pages}: {} samples for {h} x {w} x {spp}", page.len()),
            ));
        }
        match spp {
            1 => values.extend_from_slice(&page[..w * h]),
            2 => values.extend(page[..w * h * 2].chunks_exact(2).map(|p| p[0])),
            s => {
                let (g, c) = rgb_to_gray(&page[..w * h * s], s);
                colour |= c;
                values.extend(g);
            }
        }
        pages += 1;
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(terr)?;
    }
    Ok(Gray {
        values,
        dims: [pages, hw.0, hw.1],
        colour,
    })
}

// ---------------------------------------------------------------- NPY

fn decode_npy(path: &Path) -> Result<Gray> {
    use npyz::{DType, TypeChar as T};
    let file = File::open(path).map_err(|e| Error::file(path, e))?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| Error::file(path, format!("not a .npy file: {e}")))?;
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&s| usize::try_from(s).unwrap_or(usize::MAX))
        .collect();
    let fortran = npy.order() == npyz::Order::Fortran;
    let dims = npy_dims(&shape).map_err(|m| Error::file(path, m))?;
    header_count(path, npy.shape())?;
    let (tc, size) = match npy.dtype() {
        DType::Plain(ts) => (ts.type_char(), ts.size_field()),
        d => {
            return Err(Error::file(
                path,
                format!("unsupported structured dtype {}", d.descr()),
            ))
        }
    };
    let rerr = |e: std::io::Error| Error::file(path, format!("cannot read data: {e}"));
    let values: Vec<f64> = match (tc, size) {
        (T::Uint, 1) => npy
            .into_vec::<u8>()
            .map_err(rerr)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (T::Uint, 2) => npy
            .into_vec::<u16>()
            .map_err(rerr)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (T::Uint, 4) => npy
            .into_vec::<u32>()
            .map_err(rerr)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (T::Uint, 8) => npy
            .into_vec::<u64>()
            .map_err(rerr)?
            .into_iter()
            .map(|x| x as f64)
            .collect(),
        (T::Int, 1) => npy
            .into_vec::<i8>()
            .map_err(rerr)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (T::Int, 2) => npy
            .into_vec::<i16>()
            .map_err(rerr)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (T::Int, 4) => npy
            .into_vec::<i32>()
            .map_err(rerr)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (T::Int, 8) => npy
            .into_vec::<i64>()
            .map_err(rerr)?
            .into_iter()
            .map(|x| x as f64)
            .collect(),
        (T::Float, 4) => npy
            .into_vec::<f32>()
            .map_err(rerr)?
            .into_iter()
            .map(f64::from)
            .collect(),
        (T::Float, 8) => npy.into_vec::<f64>().map_err(rerr)?,
        (T::Bool, 1) => npy
            .into_vec::<bool>()
            .map_err(rerr)?
            .into_iter()
            .map(|b| b as u8 as f64)
            .collect(),
        _ => {
            return Err(Error::file(
                path,
                format!("unsupported dtype {:?}{size}", tc),
            ))
        }
    };
    if values.len() != numel(dims) {
        return Err(Error::file(
            path,
            format!("{} values for shape {:?}", values.len(), shape),
        ));
    }
    let values = if fortran {
        fortran_to_c(&values, dims)
    } else {
        values
    };
    Ok(Gray {
        values,
        dims,
        colour: false,
    })
}

/// `(y, x)` or `(z, y, x)` after dropping leading size-1 axes.
fn npy_dims(shape: &[usize]) -> std::result::Result<[usize; 3], String> {
    let mut s = shape;
    while s.len() > 3 && s[0] == 1 {
        s = &s[1..];
    }
    match s.len() {
        2 => Ok([1, s[0], s[1]]),
        3 => Ok([s[0], s[1], s[2]]),
        _ => Err(format!(
            "shape {shape:?}: expected axes (y, x) or (z, y, x)"
        )),
    }
}

/// Reorder a Fortran-order (first axis fastest) buffer to C order.
fn fortran_to_c<T: Copy>(v: &[T], d: [usize; 3]) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    for z in 0..d[0] {
        for y in 0..d[1] {
            for x in 0..d[2] {
                out.push(v[z + d[0] * (y + d[1] * x)]);
            }
        }
    }
    out
}

/// Element types [`write_npy`] writes: u8, u16, i32, i64, f32.
pub trait NpyElement: npyz::AutoSerialize + Copy {}
impl NpyElement for u8 {}
impl NpyElement for u16 {}
impl NpyElement for u32 {}
impl NpyElement for i32 {}
impl NpyElement for i64 {}
impl NpyElement for f32 {}

/// Write a `.npy` (format 1.0, C order, little-endian, shape `(z, y, x)`, always 3 axes).
pub fn write_npy<T: NpyElement>(path: &Path, arr: &Array3<T>) -> Result<()> {
    check_len(path, arr)?;
    let shape: Vec<u64> = arr.dims.iter().map(|&d| d as u64).collect();
    write_npy_nd(path, &shape, &arr.data)
}

/// Write `data` as a `.npy` of any `shape` (C order; the caller checks that
/// the shape holds `data.len()` elements).
pub fn write_npy_nd<T: NpyElement>(path: &Path, shape: &[u64], data: &[T]) -> Result<()> {
    use npyz::WriterBuilder;
    atomic_write(path, |w| {
        let mut wr = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(w)
            .begin_nd()?;
        wr.extend(data.iter().copied())?;
        wr.finish()
    })
}

fn check_len<T>(path: &Path, arr: &Array3<T>) -> Result<()> {
    if arr.data.len() != numel(arr.dims) {
        return Err(Error::file(
            path,
            format!(
                "array has {} elements for dims {:?}",
                arr.data.len(),
                arr.dims
            ),
        ));
    }
    if arr.data.is_empty() {
        return Err(Error::file(
            path,
            format!("refusing to write an empty array {:?}", arr.dims),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- writers

/// Write `body` to a temporary file next to `path`, then rename it over `path`.
/// On failure the temporary file is removed and the error names `path`.
pub fn atomic_write(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "not a file path"))?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut w = BufWriter::new(File::create(&tmp)?);
        body(&mut w)?;
        w.flush()?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::file(path, format!("cannot write: {e}")));
    }
    Ok(())
}

fn check_2d<T>(path: &Path, arr: &Array3<T>) -> Result<()> {
    check_len(path, arr)?;
    if arr.dims[0] != 1 {
        return Err(Error::file(
            path,
            format!("PNG holds one 2D image but dims are {:?}", arr.dims),
        ));
    }
    Ok(())
}

fn write_png_raw(
    path: &Path,
    w: usize,
    h: usize,
    buf: &[u8],
    ct: image::ExtendedColorType,
) -> Result<()> {
    use image::ImageEncoder;
    atomic_write(path, |out| {
        image::codecs::png::PngEncoder::new(out)
            .write_image(buf, w as u32, h as u32, ct)
            .map_err(std::io::Error::other)
    })
}

/// Write an 8-bit gray PNG (`dims[0]` must be 1).
pub fn write_png_gray8(path: &Path, img: &Array3<u8>) -> Result<()> {
    check_2d(path, img)?;
    write_png_raw(
        path,
        img.dims[2],
        img.dims[1],
        &img.data,
        image::ExtendedColorType::L8,
    )
}

/// Write a 16-bit gray PNG (`dims[0]` must be 1).
pub fn write_png_gray16(path: &Path, img: &Array3<u16>) -> Result<()> {
    check_2d(path, img)?;
    // the image crate takes 16-bit samples in native byte order (it writes PNG big-endian itself)
    let bytes: Vec<u8> = img.data.iter().flat_map(|v| v.to_ne_bytes()).collect();
    write_png_raw(
        path,
        img.dims[2],
        img.dims[1],
        &bytes,
        image::ExtendedColorType::L16,
    )
}

/// Write a 2D label map as an 8-bit gray PNG, each value multiplied by
/// `scale` (use 1 for class ids, 255 for a 0/1 mask to get 0/255).
/// Scaled values must lie in 0..=255.
pub fn write_png_labels(path: &Path, labels: &LabelVolume, scale: i32) -> Result<()> {
    check_2d(path, labels)?;
    let mut bytes = Vec::with_capacity(labels.data.len());
    for &v in &labels.data {
        let s = v as i64 * scale as i64;
        if !(0..=255).contains(&s) {
            return Err(Error::file(
                path,
                format!("label {v} x {scale} = {s} does not fit 8 bits"),
            ));
        }
        bytes.push(s as u8);
    }
    write_png_raw(
        path,
        labels.dims[2],
        labels.dims[1],
        &bytes,
        image::ExtendedColorType::L8,
    )
}

/// Write an interleaved 8-bit RGB image of `width` x `height`.
pub fn write_png_rgb(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<()> {
    if rgb.len() != width * height * 3 || rgb.is_empty() {
        return Err(Error::file(
            path,
            format!("{} bytes for a {width} x {height} RGB image", rgb.len()),
        ));
    }
    write_png_raw(path, width, height, rgb, image::ExtendedColorType::Rgb8)
}

/// An RGB overlay of section `z`: the image (0.5-99.5 percentile range scaled to gray) with
/// classes `1..` tinted in fixed colours at opacity `alpha` (0..1).
/// Returns interleaved RGB bytes of `dims[2]` x `dims[1]` for [`write_png_rgb`].
pub fn overlay_rgb(image: &Volume, labels: &LabelVolume, z: usize, alpha: f32) -> Result<Vec<u8>> {
    if image.dims != labels.dims || z >= image.dims[0] {
        return Err(Error::shape(
            "overlay_rgb",
            format!(
                "image {:?}, labels {:?}, section {z}",
                image.dims, labels.dims
            ),
        ));
    }
    const PALETTE: [[f32; 3]; 8] = [
        [255.0, 40.0, 40.0],
        [40.0, 220.0, 40.0],
        [60.0, 120.0, 255.0],
        [255.0, 210.0, 0.0],
        [230.0, 0.0, 230.0],
        [0.0, 220.0, 220.0],
        [255.0, 140.0, 0.0],
        [150.0, 80.0, 255.0],
    ];
    let n = image.dims[1] * image.dims[2];
    let img = &image.data[z * n..(z + 1) * n];
    let lab = &labels.data[z * n..(z + 1) * n];
    // display range: the 0.5 and 99.5 percentiles of the section, so that a
    // few bright outliers (16-bit microscopy) do not darken the whole image
    let (lo, hi) = crate::data::dataset::percentiles(img, 0.5, 99.5);
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    let a = alpha.clamp(0.0, 1.0);
    let mut out = Vec::with_capacity(n * 3);
    for (&v, &l) in img.iter().zip(lab) {
        let g = ((v - lo) * scale).clamp(0.0, 255.0);
        let rgb = match (l > 0).then(|| PALETTE[(l as usize - 1) % 8]) {
            Some(tint) => tint.map(|t| (1.0 - a) * g + a * t),
            None => [g; 3],
        };
        out.extend(rgb.iter().map(|c| c.round().clamp(0.0, 255.0) as u8));
    }
    Ok(out)
}

/// Sample types [`write_tiff`] writes.
pub trait TiffElement: Copy {
    #[doc(hidden)]
    fn write_page<W: std::io::Write + std::io::Seek>(
        enc: &mut tiff::encoder::TiffEncoder<W>,
        w: u32,
        h: u32,
        data: &[Self],
    ) -> tiff::TiffResult<()>;
}
macro_rules! tiff_element {
    ($t:ty, $c:ty) => {
        impl TiffElement for $t {
            fn write_page<W: std::io::Write + std::io::Seek>(
                enc: &mut tiff::encoder::TiffEncoder<W>,
                w: u32,
                h: u32,
                data: &[Self],
            ) -> tiff::TiffResult<()> {
                enc.write_image::<$c>(w, h, data)
            }
        }
    };
}
tiff_element!(u8, tiff::encoder::colortype::Gray8);
tiff_element!(u16, tiff::encoder::colortype::Gray16);
tiff_element!(i32, tiff::encoder::colortype::GrayI32);
tiff_element!(f32, tiff::encoder::colortype::Gray32Float);

/// Write a (multi-page) gray TIFF: one page per z section, uncompressed.
pub fn write_tiff<T: TiffElement>(path: &Path, arr: &Array3<T>) -> Result<()> {
    check_len(path, arr)?;
    let [d, h, w] = arr.dims;
    if h > u32::MAX as usize || w > u32::MAX as usize {
        return Err(Error::file(
            path,
            format!("dims {:?} too large for TIFF", arr.dims),
        ));
    }
    atomic_write(path, |out| {
        let mut enc = tiff::encoder::TiffEncoder::new(out).map_err(std::io::Error::other)?;
        for z in 0..d {
            T::write_page(
                &mut enc,
                w as u32,
                h as u32,
                &arr.data[z * h * w..(z + 1) * h * w],
            )
            .map_err(std::io::Error::other)?;
        }
        Ok(())
    })
}

/// Write a label volume as a TIFF stack in the narrowest of u8 / u16 / i32 that holds it.
pub fn write_tiff_labels(path: &Path, labels: &LabelVolume) -> Result<()> {
    let (lo, hi) = labels
        .data
        .iter()
        .fold((0i32, 0i32), |(a, b), &v| (a.min(v), b.max(v)));
    if lo >= 0 && hi <= 255 {
        write_tiff(path, &labels.map(|&v| v as u8))
    } else if lo >= 0 && hi <= 65535 {
        write_tiff(path, &labels.map(|&v| v as u16))
    } else {
        write_tiff(path, labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_dims_rules() {
        assert_eq!(npy_dims(&[4, 5]).unwrap(), [1, 4, 5]);
        assert_eq!(npy_dims(&[3, 4, 5]).unwrap(), [3, 4, 5]);
        assert_eq!(npy_dims(&[1, 1, 3, 4, 5]).unwrap(), [3, 4, 5]);
        assert!(npy_dims(&[7]).is_err());
        assert!(npy_dims(&[2, 3, 4, 5]).is_err());
    }

    #[test]
    fn fortran_reorder() {
        // C array a[z][y][x] = 100z + 10y + x, stored Fortran (z fastest).
        let d = [2, 3, 4];
        let mut f = vec![0; 24];
        for z in 0..2 {
            for y in 0..3 {
                for x in 0..4 {
                    f[z + 2 * (y + 3 * x)] = 100 * z + 10 * y + x;
                }
            }
        }
        let c = fortran_to_c(&f, d);
        assert_eq!(c[0], 0);
        assert_eq!(c[1], 1);
        assert_eq!(c[4], 10);
        assert_eq!(c[12], 100);
        assert_eq!(c[23], 123);
    }

    #[test]
    fn rgb_gray_flags_colour() {
        let (g, c) = rgb_to_gray(&[10.0, 10.0, 10.0, 1.0, 2.0, 3.0], 3);
        assert!(c);
        assert_eq!(g[0], 10.0);
        let (_, c) = rgb_to_gray(&[5.0, 5.0, 5.0, 9.0], 4);
        assert!(!c);
    }
}
