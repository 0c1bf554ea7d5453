//! Golden-runner plumbing shared by every adapter: the manifest types
//! (`../shared/golden/SCHEMA.md`), `.npy` loading, uploads, the comparison rule.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use wunet::{Context, DType, Shape, Tensor};

// ------------------------------------------------------------------ manifest

#[derive(Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub cases: Vec<CaseSpec>,
}

#[derive(Deserialize)]
pub struct CaseSpec {
    pub id: String,
    pub op: String,
    /// The engine may skip this case (otherwise a skip fails the run).
    #[serde(default)]
    pub optional: bool,
    /// Why the case is optional (wunet's manifest extension).
    #[serde(default)]
    pub optional_reason: Option<String>,
    #[serde(default)]
    pub attrs: serde_json::Value,
    #[serde(default)]
    pub inputs: BTreeMap<String, TensorSpec>,
    #[serde(default)]
    pub grad_output: BTreeMap<String, TensorSpec>,
    #[serde(default)]
    pub outputs: BTreeMap<String, TensorSpec>,
    #[serde(default)]
    pub grads: BTreeMap<String, TensorSpec>,
}

/// A `TENSOR` or `EXPECTED` entry.
#[derive(Deserialize, Clone)]
pub struct TensorSpec {
    pub file: String,
    pub shape: Vec<usize>,
    pub dtype: String,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    #[serde(default)]
    pub exact: bool,
}

impl TensorSpec {
    /// The file name without folder and `.npy`: the tensor's name in reports.
    pub fn stem(&self) -> String {
        let name = self.file.rsplit('/').next().unwrap_or(&self.file);
        name.strip_suffix(".npy").unwrap_or(name).to_string()
    }
}

/// Read `cases.json` in `dir`.
pub fn load_manifest(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join("cases.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if m.format != "dl-kernel-oracle" || m.version != 1 {
        return Err(format!(
            "{}: format {:?} version {} (want dl-kernel-oracle 1)",
            path.display(),
            m.format,
            m.version
        ));
    }
    Ok(m)
}

// ------------------------------------------------------------------ host tensors

#[derive(Clone, Debug)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A tensor on the host: logical shape plus values (C order).
#[derive(Clone, Debug)]
pub struct Host {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Host {
    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> Self {
        Host {
            shape,
            data: Data::F32(v),
        }
    }
    pub fn i64(shape: Vec<usize>, v: Vec<i64>) -> Self {
        Host {
            shape,
            data: Data::I64(v),
        }
    }
    /// Drop axis 1 (size 1): an engine map `N,1,(D),H,W` as the golden `N,(D),H,W`.
    pub fn squeeze_c(mut self) -> Result<Self, String> {
        if self.shape.get(1) != Some(&1) {
            return Err(format!("cannot drop axis 1 of shape {:?}", self.shape));
        }
        self.shape.remove(1);
        Ok(self)
    }
    /// Read an f32 GPU tensor back, with its logical shape.
    pub fn from_tensor(ctx: &Context, t: &Tensor) -> Result<Self, String> {
        let shape = t.shape.logical();
        match t.dtype {
            DType::F32 | DType::F16 => Ok(Host::f32(
                shape,
                t.to_f32_vec(ctx).map_err(|e| e.to_string())?,
            )),
            DType::U32 => Ok(Host::i64(
                shape,
                t.to_u32_vec(ctx)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(i64::from)
                    .collect(),
            )),
            DType::I32 => Ok(Host::i64(
                shape,
                t.to_i32_vec(ctx)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(i64::from)
                    .collect(),
            )),
        }
    }
}

/// Read a plain little-endian C-order `.npy` of float32 or int64; errors name the file.
pub fn read_npy(path: &Path) -> Result<Host, String> {
    let p = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{p}: {e}"))?;
    let npy =
        npyz::NpyFile::new(&bytes[..]).map_err(|e| format!("{p}: not a valid .npy file: {e}"))?;
    if npy.order() != npyz::Order::C {
        return Err(format!("{p}: Fortran order is not supported"));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = npy.dtype().descr(); // a Python literal such as '<f4'
    let data = match descr.trim_matches('\'') {
        "<f4" => Data::F32(
            npy.into_vec::<f32>()
                .map_err(|e| format!("{p}: cannot read the data (truncated?): {e}"))?,
        ),
        "<i8" => Data::I64(
            npy.into_vec::<i64>()
                .map_err(|e| format!("{p}: cannot read the data (truncated?): {e}"))?,
        ),
        d => return Err(format!("{p}: dtype {d} (want <f4 float32 or <i8 int64)")),
    };
    let n = match &data {
        Data::F32(v) => v.len(),
        Data::I64(v) => v.len(),
    };
    if n != shape.iter().product::<usize>() {
        return Err(format!("{p}: {n} values for shape {shape:?}"));
    }
    Ok(Host { shape, data })
}

/// Load the file of `spec` (relative to `dir`) and check it against the manifest entry.
pub fn load(dir: &Path, spec: &TensorSpec) -> Result<Host, String> {
    let path: PathBuf = dir.join(&spec.file);
    let h = read_npy(&path)?;
    let p = path.display();
    if h.shape != spec.shape {
        return Err(format!(
            "{p}: shape {:?} but the manifest says {:?}",
            h.shape, spec.shape
        ));
    }
    match (&h.data, spec.dtype.as_str()) {
        (Data::F32(_), "float32") | (Data::I64(_), "int64") => Ok(h),
        _ => Err(format!(
            "{p}: file dtype does not match the manifest's {}",
            spec.dtype
        )),
    }
}

// ------------------------------------------------------------------ adapter interface

/// Why an adapter did not produce results.
pub enum Outcome {
    /// The case is valid but this engine cannot run it (reason printed).
    Skip(String),
    /// The case could not be run: bad file, engine error, ... (counted as a failure).
    Error(String),
}

impl From<wunet::Error> for Outcome {
    fn from(e: wunet::Error) -> Self {
        match e {
            wunet::Error::Unsupported { .. } => Outcome::Skip(e.to_string()),
            e => Outcome::Error(e.to_string()),
        }
    }
}

impl From<String> for Outcome {
    fn from(e: String) -> Self {
        Outcome::Error(e)
    }
}

pub type AdapterResult = Result<Produced, Outcome>;

/// What an adapter computed: outputs and gradients, keyed like the manifest's
/// `outputs` and `grads`. Every expected tensor must be present.
#[derive(Default)]
pub struct Produced {
    pub outputs: BTreeMap<String, Host>,
    pub grads: BTreeMap<String, Host>,
}

/// One case as an adapter sees it: the spec, its folder and the GPU context.
pub struct Case<'a> {
    pub spec: &'a CaseSpec,
    pub dir: &'a Path,
    pub ctx: &'a Context,
}

impl Case<'_> {
    pub fn input(&self, name: &str) -> Result<Host, Outcome> {
        let spec = self
            .spec
            .inputs
            .get(name)
            .ok_or_else(|| format!("case has no input '{name}'"))?;
        Ok(load(self.dir, spec)?)
    }
    pub fn has_input(&self, name: &str) -> bool {
        self.spec.inputs.contains_key(name)
    }
    /// The upstream gradient of the primary output (`grad_<primary>.npy`).
    pub fn grad_output(&self, primary: &str) -> Result<Host, Outcome> {
        let spec = self
            .spec
            .grad_output
            .get(primary)
            .ok_or_else(|| format!("case has no grad_output '{primary}'"))?;
        Ok(load(self.dir, spec)?)
    }

    // --- uploads

    /// A float32 input as an f32 tensor of its manifest shape.
    pub fn upload_f32(&self, name: &str) -> Result<Tensor, Outcome> {
        upload_f32(self.ctx, &self.input(name)?, name)
    }
    /// An int64 label map `N,(D),H,W` as an I32 tensor `N,1,(D),H,W`.
    pub fn upload_labels(&self, name: &str) -> Result<Tensor, Outcome> {
        let h = self.input(name)?;
        let Data::I64(v) = &h.data else {
            return Err(format!("input '{name}' is not int64").into());
        };
        let v: Vec<i32> = v
            .iter()
            .map(|&x| {
                i32::try_from(x).map_err(|_| format!("input '{name}': label {x} does not fit i32"))
            })
            .collect::<Result<_, _>>()?;
        let mut s = h.shape.clone();
        s.insert(1, 1);
        Ok(Tensor::from_i32(self.ctx, &v, shape_of(&s)?)?)
    }
    /// A float32 per-pixel map `N,(D),H,W` (e.g. a weight map) as an f32 tensor
    /// `N,1,(D),H,W`, the layout of the engine's label maps.
    pub fn upload_map_f32(&self, name: &str) -> Result<Tensor, Outcome> {
        let mut h = self.input(name)?;
        h.shape.insert(1, 1);
        upload_f32(self.ctx, &h, name)
    }
    /// An int64 index tensor as a U32 tensor of the same shape.
    pub fn upload_indices(&self, name: &str) -> Result<Tensor, Outcome> {
        let h = self.input(name)?;
        let Data::I64(v) = &h.data else {
            return Err(format!("input '{name}' is not int64").into());
        };
        let v: Vec<u32> = v
            .iter()
            .map(|&x| {
                u32::try_from(x).map_err(|_| format!("input '{name}': index {x} does not fit u32"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Tensor::from_u32(self.ctx, &v, shape_of(&h.shape)?)?)
    }
    /// The upstream gradient as an f32 tensor.
    pub fn upload_grad_output(&self, primary: &str) -> Result<Tensor, Outcome> {
        upload_f32(self.ctx, &self.grad_output(primary)?, primary)
    }
    pub fn read(&self, t: &Tensor) -> Result<Host, Outcome> {
        Ok(Host::from_tensor(self.ctx, t)?)
    }

    // --- attrs

    fn attr(&self, key: &str) -> Result<&serde_json::Value, Outcome> {
        self.spec
            .attrs
            .get(key)
            .ok_or_else(|| Outcome::Error(format!("attrs has no '{key}'")))
    }
    pub fn attr_usizes(&self, key: &str) -> Result<Vec<usize>, Outcome> {
        let v = self.attr(key)?;
        let arr = v
            .as_array()
            .ok_or_else(|| format!("attrs.{key} is not a list: {v}"))?;
        arr.iter()
            .map(|x| {
                x.as_u64()
                    .map(|u| u as usize)
                    .ok_or_else(|| Outcome::Error(format!("attrs.{key}: {x} is not a count")))
            })
            .collect()
    }
    pub fn attr_usize(&self, key: &str) -> Result<usize, Outcome> {
        let v = self.attr(key)?;
        v.as_u64()
            .map(|u| u as usize)
            .ok_or_else(|| Outcome::Error(format!("attrs.{key} is not a count: {v}")))
    }
    pub fn attr_f64(&self, key: &str) -> Result<f64, Outcome> {
        let v = self.attr(key)?;
        v.as_f64()
            .ok_or_else(|| Outcome::Error(format!("attrs.{key} is not a number: {v}")))
    }
    pub fn attr_bool(&self, key: &str) -> Result<bool, Outcome> {
        let v = self.attr(key)?;
        v.as_bool()
            .ok_or_else(|| Outcome::Error(format!("attrs.{key} is not a bool: {v}")))
    }
    pub fn attr_str(&self, key: &str) -> Result<String, Outcome> {
        let v = self.attr(key)?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| Outcome::Error(format!("attrs.{key} is not a string: {v}")))
    }
}

/// A per-axis list of 2 (`H, W`) or 3 (`D, H, W`) values as `[D, H, W]`
/// (`fill` for D in 2D).
pub fn spatial3(v: &[usize], fill: usize) -> [usize; 3] {
    match v.len() {
        2 => [fill, v[0], v[1]],
        3 => [v[0], v[1], v[2]],
        _ => [fill; 3],
    }
}

/// An engine `Shape` for a logical shape of rank 0..=5.
pub fn shape_of(dims: &[usize]) -> Result<Shape, Outcome> {
    Ok(Shape::from_slice(dims)?)
}

pub fn upload_f32(ctx: &Context, h: &Host, what: &str) -> Result<Tensor, Outcome> {
    let Data::F32(v) = &h.data else {
        return Err(format!("'{what}' is not float32").into());
    };
    Ok(Tensor::from_f32(ctx, v, shape_of(&h.shape)?)?)
}

// ------------------------------------------------------------------ comparison

/// The worst element of a comparison.
pub struct Mismatch {
    pub ratio: f64,
    pub index: usize,
    pub got: String,
    pub expected: String,
    pub bad: usize,
    pub total: usize,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worst ratio {:.4} at index {} (got {}, expected {})",
            self.ratio, self.index, self.got, self.expected
        )
    }
}

/// Compare `got` with the expected tensor: `Ok(worst ratio)` or the reason it fails.
/// Floats: `|got-exp| <= atol + rtol*|exp|`, NaN/Inf fail. `exact` ints must be equal.
pub fn compare(spec: &TensorSpec, exp: &Host, got: &Host) -> Result<f64, CompareFail> {
    if got.shape != exp.shape {
        return Err(CompareFail::Shape(format!(
            "shape {:?} but expected {:?}",
            got.shape, exp.shape
        )));
    }
    match (&exp.data, &got.data) {
        (Data::F32(e), Data::F32(g)) => {
            let (Some(rtol), Some(atol)) = (spec.rtol, spec.atol) else {
                return Err(CompareFail::Shape("manifest entry has no rtol/atol".into()));
            };
            let mut worst = (0.0f64, 0usize);
            let mut bad = 0;
            for (i, (&gv, &ev)) in g.iter().zip(e).enumerate() {
                let (gv, ev) = (gv as f64, ev as f64);
                let diff = (gv - ev).abs();
                let lim = atol + rtol * ev.abs();
                let r = if !gv.is_finite() || !ev.is_finite() {
                    f64::INFINITY
                } else if lim > 0.0 {
                    diff / lim
                } else if diff == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                };
                if r > 1.0 {
                    bad += 1;
                }
                if r > worst.0 {
                    worst = (r, i);
                }
            }
            if bad == 0 {
                return Ok(worst.0);
            }
            let i = worst.1;
            Err(CompareFail::Values(Mismatch {
                ratio: worst.0,
                index: i,
                got: format!("{}", g[i]),
                expected: format!("{}", e[i]),
                bad,
                total: e.len(),
            }))
        }
        (Data::I64(_), Data::I64(_)) if !spec.exact => Err(CompareFail::Shape(
            "int64 tensor without \"exact\": true in the manifest".into(),
        )),
        (Data::I64(e), Data::I64(g)) => {
            let bad = g.iter().zip(e).filter(|(a, b)| a != b).count();
            match g.iter().zip(e).position(|(a, b)| a != b) {
                None => Ok(0.0),
                Some(i) => Err(CompareFail::Values(Mismatch {
                    ratio: f64::INFINITY,
                    index: i,
                    got: g[i].to_string(),
                    expected: e[i].to_string(),
                    bad,
                    total: e.len(),
                })),
            }
        }
        (Data::F32(_), _) => Err(CompareFail::Shape(
            "got an integer tensor, expected float32".into(),
        )),
        (Data::I64(_), _) => Err(CompareFail::Shape(
            "got a float tensor, expected int64".into(),
        )),
    }
}

pub enum CompareFail {
    /// Shape, dtype or manifest problem (printed as is).
    Shape(String),
    /// Values out of tolerance.
    Values(Mismatch),
}
