//! Zarr stores (v2 and v3, with OME-Zarr multiscale metadata) through the
//! `zarrs` crate: the input of block-wise prediction ([`ZarrSource`]) and
//! its outputs ([`create_image`], [`ZarrSink`]).
//!
//! A store is named by its folder, optionally followed by the path of a node
//! inside it: `vol.zarr`, `vol.zarr/raw`, `vol.zarr/0`. The node is an array,
//! or an OME-Zarr image group whose `multiscales` metadata (NGFF 0.4: in the
//! group's attributes; 0.5: under `ome`) lists one array per level; `level`
//! picks one (0 = full resolution).
//!
//! Axes: the last three dimensions are `(z, y, x)` (a 2D array is one
//! section); leading dimensions (OME-Zarr's `t` and `c`) must have length 1.
//! Every numeric data type is read and converted to f32, as the image
//! readers of [`super::io`] do.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zarrs::array::{data_type, Array, ArrayBuilder, DataType};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::{Group, GroupBuilder};

/// Does `path` name a Zarr store (a component ending in `.zarr`, or a
/// folder holding Zarr metadata)?
pub fn is_zarr(path: &Path) -> bool {
    split_store(path).is_some()
}

/// The store folder and the node path inside it (`/` for the root).
pub fn split_store(path: &Path) -> Option<(PathBuf, String)> {
    let mut root = PathBuf::new();
    let mut comps = path.components();
    for c in comps.by_ref() {
        root.push(c);
        let name = c.as_os_str().to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".zarr") {
            let rest: Vec<String> = comps
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            return Some((root, format!("/{}", rest.join("/"))));
        }
    }
    let meta = ["zarr.json", ".zarray", ".zgroup"];
    meta.iter()
        .any(|m| path.join(m).is_file())
        .then(|| (path.to_path_buf(), "/".to_string()))
}

/// Open a filesystem store, naming the folder on failure.
pub fn open_store(root: &Path) -> Result<Arc<FilesystemStore>> {
    FilesystemStore::new(root)
        .map(Arc::new)
        .map_err(|e| Error::file(root, format!("cannot open as a Zarr store: {e}")))
}

/// A 3D (or 2D) array of a Zarr store, read box by box as f32.
pub struct ZarrSource {
    /// `store/path` of the array, for messages.
    pub name: String,
    array: Array<FilesystemStore>,
    /// Leading length-1 dimensions before `(z, y, x)`.
    lead: usize,
    /// `(z, y, x)`; a 2D array has `z = 1`.
    pub dims: [usize; 3],
    /// Chunk shape `(z, y, x)`.
    pub chunk: [usize; 3],
    /// Whether the array itself is 2D (no z dimension stored).
    flat: bool,
}

impl ZarrSource {
    /// Open the array at `path` (store folder + node path); an OME-Zarr
    /// image group resolves to its array at `level`.
    pub fn open(path: &Path, level: usize) -> Result<Self> {
        let (root, node) = split_store(path).ok_or_else(|| {
            Error::file(
                path,
                "not a Zarr store (no .zarr folder and no zarr.json/.zarray/.zgroup)",
            )
        })?;
        let store = open_store(&root)?;
        let node = resolve_level(&store, &root, &node, level)?;
        let name = format!("{}{}", root.display(), if node == "/" { "" } else { &node });
        let array = Array::open(store, &node)
            .map_err(|e| Error::file(&name, format!("cannot open the Zarr array: {e}")))?;
        Self::from_array(name, array)
    }

    fn from_array(name: String, array: Array<FilesystemStore>) -> Result<Self> {
        let shape: Vec<usize> = array.shape().iter().map(|&v| v as usize).collect();
        let nd = shape.len();
        if !(2..=5).contains(&nd) || shape[..nd.saturating_sub(3)].iter().any(|&l| l != 1) {
            return Err(Error::file(
                &name,
                format!("array shape {shape:?}: expected (z, y, x) or (y, x), with any leading dimensions (t, c) of length 1"),
            ));
        }
        if shape.contains(&0) {
            return Err(Error::file(
                &name,
                format!("array shape {shape:?} is empty"),
            ));
        }
        let zeros = vec![0u64; nd];
        let chunk = array
            .chunk_shape_usize(&zeros)
            .map_err(|e| Error::file(&name, format!("chunk grid: {e}")))?;
        let flat = nd == 2;
        let lead = nd.saturating_sub(3);
        let pick = |v: &[usize]| -> [usize; 3] {
            if flat {
                [1, v[0], v[1]]
            } else {
                [v[lead], v[lead + 1], v[lead + 2]]
            }
        };
        element_kind(array.data_type()).ok_or_else(|| {
            Error::file(
                &name,
                format!("data type {} is not numeric", array.data_type()),
            )
        })?;
        Ok(ZarrSource {
            dims: pick(&shape),
            chunk: pick(&chunk),
            name,
            array,
            lead,
            flat,
        })
    }

    /// Whether the array is 2D (one section, no z dimension stored).
    pub fn flat(&self) -> bool {
        self.flat
    }

    /// The values of the box `lo .. lo + dims` (z, y, x; x fastest) as f32.
    /// Non-finite values are an error naming the array, the chunk and the voxel.
    pub fn read_box(&self, lo: [usize; 3], dims: [usize; 3]) -> Result<Vec<f32>> {
        let mut ranges: Vec<std::ops::Range<u64>> = vec![0..1; self.lead];
        let first = if self.flat { 1 } else { 0 };
        for a in first..3 {
            ranges.push(lo[a] as u64..(lo[a] + dims[a]) as u64);
        }
        let chunk_of = |i: usize| -> String {
            let p = [i / (dims[1] * dims[2]), i / dims[2] % dims[1], i % dims[2]];
            let v: [usize; 3] = std::array::from_fn(|a| lo[a] + p[a]);
            let c: [usize; 3] = std::array::from_fn(|a| v[a] / self.chunk[a]);
            format!("chunk (z, y, x) = {c:?}, voxel {v:?}")
        };
        let values = match self.read_ranges(ranges) {
            Ok(v) => v,
            Err(e) => {
                return Err(self.failing_chunk(lo, dims).unwrap_or_else(|| {
                    Error::file(&self.name, format!("reading box {lo:?} + {dims:?}: {e}"))
                }))
            }
        };
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::file(
                &self.name,
                format!("{v} at {}: values must be finite", chunk_of(i)),
            ));
        }
        Ok(values)
    }

    /// The first chunk of the box `lo + dims` that cannot be read, as an
    /// error naming the array, the chunk and its key.
    fn failing_chunk(&self, lo: [usize; 3], dims: [usize; 3]) -> Option<Error> {
        let first: [usize; 3] = std::array::from_fn(|a| lo[a] / self.chunk[a]);
        let last: [usize; 3] = std::array::from_fn(|a| (lo[a] + dims[a] - 1) / self.chunk[a]);
        for z in first[0]..=last[0] {
            for y in first[1]..=last[1] {
                for x in first[2]..=last[2] {
                    let c = [z, y, x];
                    let mut index = vec![0u64; self.lead];
                    let spatial = if self.flat { &c[1..] } else { &c[..] };
                    index.extend(spatial.iter().map(|&v| v as u64));
                    let box_: Vec<std::ops::Range<u64>> = index
                        .iter()
                        .zip(self.array.chunk_shape_usize(&index).unwrap_or_default())
                        .map(|(&i, s)| i * s as u64..(i + 1) * s as u64)
                        .collect();
                    let clipped: Vec<std::ops::Range<u64>> = box_
                        .iter()
                        .zip(self.array.shape())
                        .map(|(r, &n)| r.start..r.end.min(n))
                        .collect();
                    if let Err(e) = self.read_ranges(clipped) {
                        let key = self.array.chunk_key(&index);
                        return Some(Error::file(
                            &self.name,
                            format!("chunk (z, y, x) = {c:?} (key {key}) cannot be read: {e}"),
                        ));
                    }
                }
            }
        }
        None
    }

    fn read_ranges(&self, r: Vec<std::ops::Range<u64>>) -> std::result::Result<Vec<f32>, String> {
        // through f64, as the file readers of `super::io` convert
        match element_kind(self.array.data_type()) {
            Some(Kind::U8) => self.read_as(&r, |x: u8| x as f64 as f32),
            Some(Kind::I8) => self.read_as(&r, |x: i8| x as f64 as f32),
            Some(Kind::U16) => self.read_as(&r, |x: u16| x as f64 as f32),
            Some(Kind::I16) => self.read_as(&r, |x: i16| x as f64 as f32),
            Some(Kind::U32) => self.read_as(&r, |x: u32| x as f64 as f32),
            Some(Kind::I32) => self.read_as(&r, |x: i32| x as f64 as f32),
            Some(Kind::U64) => self.read_as(&r, |x: u64| x as f64 as f32),
            Some(Kind::I64) => self.read_as(&r, |x: i64| x as f64 as f32),
            Some(Kind::F16) => self.read_as(&r, |x: half::f16| x.to_f32()),
            Some(Kind::F32) => self.read_as(&r, |x: f32| x),
            Some(Kind::F64) => self.read_as(&r, |x: f64| x as f32),
            None => Err(format!(
                "data type {} is not numeric",
                self.array.data_type()
            )),
        }
    }

    fn read_as<T: zarrs::array::ElementOwned>(
        &self,
        r: &[std::ops::Range<u64>],
        f: impl Fn(T) -> f32,
    ) -> std::result::Result<Vec<f32>, String> {
        self.array
            .retrieve_array_subset::<Vec<T>>(&r.to_vec())
            .map(|v| v.into_iter().map(f).collect())
            .map_err(|e| e.to_string())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    F32,
    F64,
}

fn element_kind(t: &DataType) -> Option<Kind> {
    let table = [
        (data_type::uint8(), Kind::U8),
        (data_type::int8(), Kind::I8),
        (data_type::uint16(), Kind::U16),
        (data_type::int16(), Kind::I16),
        (data_type::uint32(), Kind::U32),
        (data_type::int32(), Kind::I32),
        (data_type::uint64(), Kind::U64),
        (data_type::int64(), Kind::I64),
        (data_type::float16(), Kind::F16),
        (data_type::float32(), Kind::F32),
        (data_type::float64(), Kind::F64),
    ];
    table.into_iter().find(|(d, _)| d == t).map(|(_, k)| k)
}

/// The array path of `node`: itself when it is an array, else the dataset
/// of `level` in its OME-Zarr `multiscales` metadata.
fn resolve_level(
    store: &Arc<FilesystemStore>,
    root: &Path,
    node: &str,
    level: usize,
) -> Result<String> {
    if Array::open(store.clone(), node).is_ok() {
        if level > 0 {
            return Err(Error::file(
                root,
                format!("--level {level}: {node} is an array, not an OME-Zarr image with levels"),
            ));
        }
        return Ok(node.to_string());
    }
    let here = format!("{}{node}", root.display());
    let group = Group::open(store.clone(), node)
        .map_err(|e| Error::file(&here, format!("neither a Zarr array nor a group: {e}")))?;
    let attrs = group.attributes();
    let ms = attrs
        .get("ome")
        .and_then(|o| o.get("multiscales"))
        .or_else(|| attrs.get("multiscales"))
        .and_then(|m| m.get(0))
        .ok_or_else(|| {
            Error::file(
                &here,
                "a group without OME-Zarr multiscales metadata: name the array (e.g. store.zarr/0)",
            )
        })?;
    let paths: Vec<String> = ms
        .get("datasets")
        .and_then(|d| d.as_array())
        .map(|d| {
            d.iter()
                .filter_map(|x| x.get("path").and_then(|p| p.as_str()).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let p = paths.get(level).ok_or_else(|| {
        Error::file(
            &here,
            format!(
                "--level {level}: the multiscales list {} levels ({paths:?})",
                paths.len()
            ),
        )
    })?;
    Ok(format!("{}/{p}", node.trim_end_matches('/')))
}

/// Chunk compression of the outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
    Blosc,
}

impl Compression {
    /// Parse `zstd`, `blosc` or `none`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "zstd" => Ok(Compression::Zstd),
            "blosc" => Ok(Compression::Blosc),
            "none" => Ok(Compression::None),
            _ => Err(Error::Other(format!(
                "--compression '{s}': expected zstd, blosc or none"
            ))),
        }
    }
}

/// The element type of an output array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutType {
    U8,
    U16,
    U32,
    F16,
}

impl OutType {
    fn data_type(self) -> DataType {
        match self {
            OutType::U8 => data_type::uint8(),
            OutType::U16 => data_type::uint16(),
            OutType::U32 => data_type::uint32(),
            OutType::F16 => data_type::float16(),
        }
    }

    /// Size of one element in bytes.
    pub fn bytes(self) -> usize {
        match self {
            OutType::U8 => 1,
            OutType::U16 | OutType::F16 => 2,
            OutType::U32 => 4,
        }
    }

    /// The name used in metadata and messages.
    pub fn name(self) -> &'static str {
        match self {
            OutType::U8 => "uint8",
            OutType::U16 => "uint16",
            OutType::U32 => "uint32",
            OutType::F16 => "float16",
        }
    }
}

/// Describe an output image: an OME-Zarr group at `root` with one level,
/// the array `0`.
pub struct ImageSpec<'a> {
    /// Axis names, e.g. `["c", "z", "y", "x"]` (`c`: channel, others space).
    pub axes: &'a [&'a str],
    pub shape: Vec<u64>,
    pub chunk: Vec<u64>,
    pub dtype: OutType,
    pub compression: Compression,
    /// Extra group attributes (wunet's record of how the store was made).
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Zarr format: 3 (OME-Zarr 0.5) or 2 (OME-Zarr 0.4).
    pub format: u8,
}

/// Write the metadata of the image `spec` into the (new, empty) folder
/// `root`: OME-Zarr 0.5 on Zarr v3, or OME-Zarr 0.4 on Zarr v2 (`format` 2).
pub fn create_image(root: &Path, spec: &ImageSpec) -> Result<()> {
    if spec.format == 2 {
        return create_image_v2(root, spec);
    }
    let store = open_store(root)?;
    let fail = |e: String| Error::file(root, format!("cannot write Zarr metadata: {e}"));
    let mut group = GroupBuilder::new()
        .build(store.clone(), "/")
        .map_err(|e| fail(e.to_string()))?;
    let attrs = group.attributes_mut();
    let mut ome = multiscales(spec.axes);
    ome.insert("version".into(), "0.5".into());
    attrs.insert("ome".into(), serde_json::Value::Object(ome));
    attrs.extend(spec.attributes.clone());
    group.store_metadata().map_err(|e| fail(e.to_string()))?;
    let mut b = ArrayBuilder::new(
        spec.shape.clone(),
        spec.chunk.clone(),
        spec.dtype.data_type(),
        fill_zero(spec.dtype),
    );
    b.dimension_names(Some(spec.axes.to_vec()));
    b.bytes_to_bytes_codecs(codecs(spec.compression, spec.dtype)?);
    let array = b.build(store, "/0").map_err(|e| fail(e.to_string()))?;
    array.store_metadata().map_err(|e| fail(e.to_string()))
}

/// `{"multiscales": [...]}` of an image with one level, the array `0`.
fn multiscales(axes: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let axes: Vec<serde_json::Value> = axes
        .iter()
        .map(|&a| {
            let kind = if a == "c" { "channel" } else { "space" };
            serde_json::json!({"name": a, "type": kind})
        })
        .collect();
    let scale = vec![1.0; axes.len()];
    let mut m = serde_json::Map::new();
    m.insert(
        "multiscales".into(),
        serde_json::json!([{
            "name": "wunet",
            "version": "0.4",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
        }]),
    );
    m
}

/// OME-Zarr 0.4 on Zarr v2: `.zgroup`, `.zattrs` and `0/.zarray`, written
/// as the v2 specification spells them (chunks are then written by zarrs).
fn create_image_v2(root: &Path, spec: &ImageSpec) -> Result<()> {
    let mut attrs = multiscales(spec.axes);
    attrs.extend(spec.attributes.clone());
    let dtype = match spec.dtype {
        OutType::U8 => "|u1",
        OutType::U16 => "<u2",
        OutType::U32 => "<u4",
        OutType::F16 => "<f2",
    };
    let compressor = match spec.compression {
        Compression::None => serde_json::Value::Null,
        Compression::Zstd => serde_json::json!({"id": "zstd", "level": 3}),
        Compression::Blosc => {
            serde_json::json!({"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 1, "blocksize": 0})
        }
    };
    let zarray = serde_json::json!({
        "zarr_format": 2, "shape": spec.shape, "chunks": spec.chunk, "dtype": dtype,
        "compressor": compressor, "fill_value": 0, "order": "C", "filters": null,
        "dimension_separator": "/",
    });
    let files = [
        (root.join(".zgroup"), serde_json::json!({"zarr_format": 2})),
        (root.join(".zattrs"), serde_json::Value::Object(attrs)),
        (root.join("0/.zarray"), zarray),
        (
            root.join("0/.zattrs"),
            serde_json::json!({"_ARRAY_DIMENSIONS": spec.axes}),
        ),
    ];
    for (path, value) in files {
        crate::fsutil::write_atomic(&path, value.to_string().as_bytes())?;
    }
    Ok(())
}

fn fill_zero(t: OutType) -> zarrs::array::FillValue {
    match t {
        OutType::U8 => 0u8.into(),
        OutType::U16 => 0u16.into(),
        OutType::U32 => 0u32.into(),
        OutType::F16 => half::f16::ZERO.into(),
    }
}

fn codecs(
    c: Compression,
    t: OutType,
) -> Result<Vec<Arc<dyn zarrs::array::BytesToBytesCodecTraits>>> {
    use zarrs::array::codec::{BloscCodec, BloscCompressor, BloscShuffleMode, ZstdCodec};
    Ok(match c {
        Compression::None => vec![],
        Compression::Zstd => vec![Arc::new(ZstdCodec::new(3, false))],
        Compression::Blosc => {
            let level = 5u8
                .try_into()
                .map_err(|_| Error::Other("blosc: compression level 5 refused".into()))?;
            let codec = BloscCodec::new(
                BloscCompressor::Zstd,
                level,
                None,
                BloscShuffleMode::Shuffle,
                Some(t.bytes()),
            )
            .map_err(|e| Error::Other(format!("blosc: {e}")))?;
            vec![Arc::new(codec)]
        }
    })
}

/// The image array (`0`) of an output store made by [`create_image`].
pub struct ZarrSink {
    pub name: String,
    array: Array<FilesystemStore>,
}

impl ZarrSink {
    /// Open the array `0` of the store at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        let name = format!("{}/0", root.display());
        let array = Array::open(open_store(root)?, "/0")
            .map_err(|e| Error::file(&name, format!("cannot open the output array: {e}")))?;
        Ok(ZarrSink { name, array })
    }

    /// Shape, chunk shape and element type, as written in the metadata.
    pub fn layout(&self) -> (Vec<u64>, Vec<u64>, String) {
        let zeros = vec![0u64; self.array.shape().len()];
        let chunk = self
            .array
            .chunk_shape(&zeros)
            .map(|c| c.iter().map(|v| v.get()).collect())
            .unwrap_or_default();
        (
            self.array.shape().to_vec(),
            chunk,
            self.array.data_type().to_string(),
        )
    }

    /// Store one whole chunk (`values` in the array's element type, x fastest).
    pub fn store_chunk<T: zarrs::array::Element>(&self, index: &[u64], values: &[T]) -> Result<()> {
        self.array
            .store_chunk(index, values)
            .map_err(|e| Error::file(&self.name, format!("writing chunk {index:?}: {e}")))
    }

    /// Read one chunk back (tests and checks).
    pub fn read_chunk<T: zarrs::array::ElementOwned>(&self, index: &[u64]) -> Result<Vec<T>> {
        self.array
            .retrieve_chunk::<Vec<T>>(index)
            .map_err(|e| Error::file(&self.name, format!("reading chunk {index:?}: {e}")))
    }

    /// Read a box (`ranges` per dimension) of the array.
    pub fn read<T: zarrs::array::ElementOwned>(
        &self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> Result<Vec<T>> {
        self.array
            .retrieve_array_subset::<Vec<T>>(&ranges)
            .map_err(|e| Error::file(&self.name, format!("reading {ranges:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_paths() {
        let (r, n) = split_store(Path::new("/data/vol.zarr/raw/s0")).unwrap();
        assert_eq!(r, PathBuf::from("/data/vol.zarr"));
        assert_eq!(n, "/raw/s0");
        let (r, n) = split_store(Path::new("vol.ZARR")).unwrap();
        assert_eq!((r, n.as_str()), (PathBuf::from("vol.ZARR"), "/"));
        assert!(split_store(Path::new("/nonexistent/vol.tif")).is_none());
    }
}
