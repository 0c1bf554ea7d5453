//! Golden-runner plumbing shared by every adapter: the manifest types
//! (`../shared/golden/SCHEMA.md`), `.npy` loading, the precision of a run,
//! uploads and read-backs (the comparison rule is in `compare.rs`).

use serde::Deserialize;
use std::cell::Cell;
use std::collections::BTreeMap;
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
    /// Terms summed per element (the schema's tolerance input; the mixed run's
    /// f16 terms use it too).
    #[serde(default)]
    pub k_reduce: Option<f64>,
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
    /// Read a GPU tensor back (F16 widened to f32), with its logical shape.
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

/// The precision a golden run checks the ops in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Every float tensor F32 (the default run).
    F32,
    /// Mixed precision as in training with `--precision mixed`: activations and
    /// activation gradients F16; weights, parameter gradients, statistics,
    /// losses, weight maps and optimiser state F32.
    Mixed,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Mixed => "mixed",
        }
    }
    /// The dtype of activations and activation gradients.
    pub fn act_dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Mixed => DType::F16,
        }
    }
}

/// One case as an adapter sees it: the spec, its folder, the GPU context and
/// the precision of the run.
///
/// Each adapter says per tensor which kind it is: activations and activation
/// gradients go through [`Case::upload_act`] / [`Case::upload_grad_act`] and come
/// back through [`Case::read_act`] (F16 in the mixed run); weights, biases,
/// gamma/beta, statistics, losses, weight maps, parameter gradients and
/// optimiser state through [`Case::upload_f32`] / [`Case::read_f32`] (F32 in
/// both runs); labels and indices through `upload_labels` / `upload_indices` /
/// [`Case::read_int`].
pub struct Case<'a> {
    pub spec: &'a CaseSpec,
    pub dir: &'a Path,
    pub ctx: &'a Context,
    pub precision: Precision,
    /// Activation tensors uploaded so far: a mixed run of an op with an F16 path
    /// that uploaded none fails (an adapter that forgot to say `upload_act`).
    pub act_uploads: Cell<usize>,
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
    /// The dtype of activations in this run: F32, or F16 in the mixed run.
    pub fn act_dtype(&self) -> DType {
        self.precision.act_dtype()
    }

    // --- uploads

    /// A float32 input that is F32 in every precision (weights, bias, gamma,
    /// beta, running statistics, optimiser state), of its manifest shape.
    pub fn upload_f32(&self, name: &str) -> Result<Tensor, Outcome> {
        upload_f32(self.ctx, &self.input(name)?, name)
    }
    /// A float32 activation input (`x`, `logits`, feature maps): F32, or
    /// rounded to F16 in the mixed run.
    pub fn upload_act(&self, name: &str) -> Result<Tensor, Outcome> {
        self.act(&self.input(name)?, name)
    }
    /// The upstream gradient of an activation output (`grad_y`): F32, or
    /// rounded to F16 in the mixed run.
    pub fn upload_grad_act(&self, primary: &str) -> Result<Tensor, Outcome> {
        self.act(&self.grad_output(primary)?, primary)
    }
    fn act(&self, h: &Host, what: &str) -> Result<Tensor, Outcome> {
        self.act_uploads.set(self.act_uploads.get() + 1);
        match self.precision {
            Precision::F32 => upload_f32(self.ctx, h, what),
            Precision::Mixed => {
                let Data::F32(v) = &h.data else {
                    return Err(format!("'{what}' is not float32").into());
                };
                Ok(Tensor::from_f32_as_f16(self.ctx, v, shape_of(&h.shape)?)?)
            }
        }
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
    /// A float32 per-pixel map `N,(D),H,W` (e.g. a weight map) as an F32 tensor
    /// `N,1,(D),H,W` (the layout of the engine's label maps) in every precision.
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

    // --- read-backs (each checks the dtype the run should have produced)

    /// An activation output or activation gradient: F32, or F16 in the mixed run.
    pub fn read_act(&self, t: &Tensor) -> Result<Host, Outcome> {
        self.read_as(t, self.act_dtype(), "an activation")
    }
    /// An output that is F32 in every precision (losses, statistics, parameter
    /// gradients, optimiser state).
    pub fn read_f32(&self, t: &Tensor) -> Result<Host, Outcome> {
        self.read_as(t, DType::F32, "an F32")
    }
    /// An integer output (indices: U32, label maps: I32).
    pub fn read_int(&self, t: &Tensor) -> Result<Host, Outcome> {
        match t.dtype {
            DType::U32 | DType::I32 => Ok(Host::from_tensor(self.ctx, t)?),
            d => Err(format!("an integer output {} came back as {d:?}", t.shape).into()),
        }
    }
    fn read_as(&self, t: &Tensor, want: DType, what: &str) -> Result<Host, Outcome> {
        if t.dtype != want {
            return Err(format!(
                "{what} output {} is {:?}, want {want:?} in the {} run",
                t.shape,
                t.dtype,
                self.precision.name()
            )
            .into());
        }
        Ok(Host::from_tensor(self.ctx, t)?)
    }

    /// max |v| of a float32 input (or, with `grad`, of the upstream gradient of
    /// that output): the scale the mixed run's f16 error terms use.
    pub fn max_abs(&self, name: &str, grad: bool) -> Result<f64, Outcome> {
        let h = if grad {
            self.grad_output(name)?
        } else {
            self.input(name)?
        };
        match &h.data {
            Data::F32(v) => Ok(v.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs()))),
            Data::I64(_) => Err(format!("'{name}' is not float32").into()),
        }
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
