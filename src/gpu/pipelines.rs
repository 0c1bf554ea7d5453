//! Kernel sources (compiled into the binary), their bind-group layouts (read
//! from the WGSL itself with naga), and a cache that builds each pipeline once
//! per (kernel, activation type, entry point, override constants).
//!
//! **Activation type.** A kernel that handles activations declares their
//! storage as `array<act>` and converts on load (`f32(x[i])`) and store
//! (`act(v)`); it accumulates in f32 either way. `act` is a type alias from
//! `kernels/precision/f32.wgsl` or `kernels/precision/f16.wgsl`, appended to
//! the kernel's module (the f16 variant also gets the `enable f16;`
//! directive in front). The same `.wgsl` file thus compiles to an f32 and an
//! f16-storage pipeline without any text substituted into it.

use crate::error::{Error, Result};
use crate::shape::DType;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Every WGSL file in `kernels/`, embedded at compile time. A test checks that
/// this list and the folder agree and that every file validates with naga.
pub const KERNELS: &[(&str, &str)] = &[
    ("conv_fwd", include_str!("../../kernels/conv_fwd.wgsl")),
    ("conv_dgrad", include_str!("../../kernels/conv_dgrad.wgsl")),
    ("conv_wgrad", include_str!("../../kernels/conv_wgrad.wgsl")),
    ("conv_coop", include_str!("../../kernels/conv_coop.wgsl")),
    (
        "conv_coop_wgrad",
        include_str!("../../kernels/conv_coop_wgrad.wgsl"),
    ),
    (
        "conv_coop_direct",
        include_str!("../../kernels/conv_coop_direct.wgsl"),
    ),
    (
        "conv_coop_direct_wgrad",
        include_str!("../../kernels/conv_coop_direct_wgrad.wgsl"),
    ),
    ("conv_up", include_str!("../../kernels/conv_up.wgsl")),
    ("winograd", include_str!("../../kernels/winograd.wgsl")),
    (
        "winograd_gemm",
        include_str!("../../kernels/winograd_gemm.wgsl"),
    ),
    ("reduce", include_str!("../../kernels/reduce.wgsl")),
    ("weights", include_str!("../../kernels/weights.wgsl")),
    ("norm_stats", include_str!("../../kernels/norm_stats.wgsl")),
    ("norm_grad", include_str!("../../kernels/norm_grad.wgsl")),
    ("norm_apply", include_str!("../../kernels/norm_apply.wgsl")),
    ("loss_ce", include_str!("../../kernels/loss_ce.wgsl")),
    (
        "loss_ce_grad",
        include_str!("../../kernels/loss_ce_grad.wgsl"),
    ),
    ("loss_dice", include_str!("../../kernels/loss_dice.wgsl")),
    ("optim", include_str!("../../kernels/optim.wgsl")),
    ("pool", include_str!("../../kernels/pool.wgsl")),
    ("upsample", include_str!("../../kernels/upsample.wgsl")),
    ("tensor", include_str!("../../kernels/tensor.wgsl")),
    ("activation", include_str!("../../kernels/activation.wgsl")),
    ("peak", include_str!("../../kernels/peak.wgsl")),
    ("amp", include_str!("../../kernels/amp.wgsl")),
    ("cast", include_str!("../../kernels/cast.wgsl")),
    ("peak_coop", include_str!("../../kernels/peak_coop.wgsl")),
    ("texture_io", include_str!("../../kernels/texture_io.wgsl")),
];

/// The source of a registered kernel, or of an emulated variant (see [`EMULATED`]).
pub fn kernel_source(name: &str) -> Option<&'static str> {
    if let Some(i) = EMULATED.iter().position(|(n, _)| *n == name) {
        static SOURCES: OnceLock<Vec<Option<String>>> = OnceLock::new();
        let all = SOURCES.get_or_init(|| {
            EMULATED
                .iter()
                .map(|(_, base)| {
                    let src = KERNELS.iter().find(|(n, _)| n == base)?.1;
                    emulated_source(src)
                })
                .collect()
        });
        return all[i].as_deref();
    }
    KERNELS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Variants of the cooperative-matrix kernels with the matrix operations emulated in plain
/// WGSL (name, registered kernel): the same staging, tap walks, split-K and epilogue run on
/// any adapter with f16 (lavapipe in CI), about 32x slower per matrix operation. For tests.
pub const EMULATED: &[(&str, &str)] = &[
    ("conv_coop_emu", "conv_coop"),
    ("conv_coop_wgrad_emu", "conv_coop_wgrad"),
    ("conv_coop_direct_emu", "conv_coop_direct"),
    ("conv_coop_direct_wgrad_emu", "conv_coop_direct_wgrad"),
];

/// Plain-WGSL stand-ins for the matrix operations (`kernels/emu/coop_matrix.wgsl`).
pub const COOP_EMULATION: &str = include_str!("../../kernels/emu/coop_matrix.wgsl");

const MATRIX_BEGIN: &str = "// ---- matrix operations: begin";
const MATRIX_END: &str = "// ---- matrix operations: end ----";

/// `source` (a coop kernel) with its marked matrix-operations section replaced by
/// [`COOP_EMULATION`] and without `enable wgpu_cooperative_matrix;`; `None` if the markers
/// are missing. The kernel's own lines are untouched: this swaps one plain `.wgsl` file in
/// for a section of another, for testing on adapters without matrix units.
pub fn emulated_source(source: &str) -> Option<String> {
    let b = source.find(MATRIX_BEGIN)?;
    let e = source[b..].find(MATRIX_END)? + b + MATRIX_END.len();
    let head = source[..b].replacen("enable wgpu_cooperative_matrix;", "", 1);
    Some(format!("{head}{COOP_EMULATION}{}", &source[e..]))
}

/// The alias declarations that give `act` its meaning, per activation type.
const ACT_F32: &str = include_str!("../../kernels/precision/f32.wgsl");
const ACT_F16: &str = include_str!("../../kernels/precision/f16.wgsl");
const EPILOGUE: &str = include_str!("../../kernels/precision/epilogue.wgsl");
const FASTDIV: &str = include_str!("../../kernels/precision/fastdiv.wgsl");
const LANES: &str = include_str!("../../kernels/precision/lanes.wgsl");

/// The module compiled for `source` with activations stored as `act`
/// (F32 or F16): the kernel, then the alias file, the activation store
/// (`precision/epilogue.wgsl`), the fast division (`precision/fastdiv.wgsl`) and the
/// packing of small work items into workgroups (`precision/lanes.wgsl`);
/// F16 modules start with `enable f16;`.
pub fn compose(source: &str, act: DType) -> Result<Cow<'_, str>> {
    match act {
        DType::F32 => Ok(Cow::Owned(format!(
            "{source}\n{ACT_F32}\n{EPILOGUE}\n{FASTDIV}\n{LANES}"
        ))),
        DType::F16 => Ok(Cow::Owned(format!(
            "enable f16;\n{source}\n{ACT_F16}\n{EPILOGUE}\n{FASTDIV}\n{LANES}"
        ))),
        other => Err(Error::Gpu(format!(
            "activations are stored as F32 or F16, not {other:?}"
        ))),
    }
}

/// Binding kinds of a kernel's group 0, in binding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindKind {
    Uniform,
    StorageRead,
    StorageReadWrite,
}

/// One binding of group 0: its kind and, for storage arrays, the element
/// scalar type (`array<vec4<f32>>` and `array<atomic<u32>>` count as F32, U32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub kind: BindKind,
    pub elem: Option<DType>,
}

fn scalar_dtype(s: naga::Scalar) -> Option<DType> {
    match (s.kind, s.width) {
        (naga::ScalarKind::Float, 4) => Some(DType::F32),
        (naga::ScalarKind::Float, 2) => Some(DType::F16),
        (naga::ScalarKind::Uint, 4) => Some(DType::U32),
        (naga::ScalarKind::Sint, 4) => Some(DType::I32),
        _ => None,
    }
}

fn elem_dtype(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Option<DType> {
    match &module.types[ty].inner {
        naga::TypeInner::Array { base, .. } => elem_dtype(module, *base),
        naga::TypeInner::Scalar(s) => scalar_dtype(*s),
        naga::TypeInner::Vector { scalar, .. } => scalar_dtype(*scalar),
        naga::TypeInner::Atomic(s) => scalar_dtype(*s),
        _ => None,
    }
}

/// Read the bindings of group 0 from WGSL source.
pub fn reflect_bindings(name: &str, source: &str) -> Result<Vec<BindKind>> {
    Ok(reflect(name, source)?.into_iter().map(|b| b.kind).collect())
}

/// Read the bindings of group 0 (kinds and element types) from WGSL source.
pub fn reflect(name: &str, source: &str) -> Result<Vec<Binding>> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| {
        Error::Gpu(format!(
            "kernel {name}: WGSL parse error: {}",
            e.emit_to_string(source)
        ))
    })?;
    let mut slots: Vec<(u32, Binding)> = Vec::new();
    for (_, g) in module.global_variables.iter() {
        let Some(rb) = &g.binding else { continue };
        if rb.group != 0 {
            return Err(Error::Gpu(format!(
                "kernel {name}: only bind group 0 is supported"
            )));
        }
        let kind = match g.space {
            naga::AddressSpace::Uniform => BindKind::Uniform,
            naga::AddressSpace::Storage { access }
                if access.contains(naga::StorageAccess::STORE) =>
            {
                BindKind::StorageReadWrite
            }
            naga::AddressSpace::Storage { .. } => BindKind::StorageRead,
            other => {
                return Err(Error::Gpu(format!(
                    "kernel {name}: unsupported binding space {other:?}"
                )))
            }
        };
        let elem = match kind {
            BindKind::Uniform => None,
            _ => elem_dtype(&module, g.ty),
        };
        slots.push((rb.binding, Binding { kind, elem }));
    }
    slots.sort_by_key(|s| s.0);
    for (i, (b, _)) in slots.iter().enumerate() {
        if *b != i as u32 {
            return Err(Error::Gpu(format!(
                "kernel {name}: bindings must be numbered 0..n without gaps"
            )));
        }
    }
    Ok(slots.into_iter().map(|s| s.1).collect())
}

pub struct KernelModule {
    pub name: &'static str,
    /// Storage type of `act` in this module (F32 or F16).
    pub act: DType,
    pub module: wgpu::ShaderModule,
    pub bind_layout: wgpu::BindGroupLayout,
    pub pipeline_layout: wgpu::PipelineLayout,
    pub bindings: Vec<Binding>,
}

pub struct Pipeline {
    pub kernel: Arc<KernelModule>,
    pub entry: &'static str,
    pub compute: wgpu::ComputePipeline,
}

type Key = (&'static str, DType, &'static str, Vec<(&'static str, u64)>);

pub struct PipelineCache {
    device: wgpu::Device,
    modules: Mutex<HashMap<(&'static str, DType), Arc<KernelModule>>>,
    pipelines: Mutex<HashMap<Key, Arc<Pipeline>>>,
}

impl PipelineCache {
    pub fn new(device: wgpu::Device) -> Self {
        PipelineCache {
            device,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
        }
    }

    fn module(&self, name: &'static str, act: DType) -> Result<Arc<KernelModule>> {
        if let Some(m) = self.modules.lock().map_err(poisoned)?.get(&(name, act)) {
            return Ok(m.clone());
        }
        let raw =
            kernel_source(name).ok_or_else(|| Error::Gpu(format!("no kernel named '{name}'")))?;
        let source = compose(raw, act)?;
        let bindings = reflect(name, &source)?;
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match b.kind {
                        BindKind::Uniform => wgpu::BufferBindingType::Uniform,
                        BindKind::StorageRead => {
                            wgpu::BufferBindingType::Storage { read_only: true }
                        }
                        BindKind::StorageReadWrite => {
                            wgpu::BufferBindingType::Storage { read_only: false }
                        }
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let bind_layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(name),
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(name),
                bind_group_layouts: &[Some(&bind_layout)],
                immediate_size: 0,
            });
        // SAFETY: every kernel guards its own indices against the sizes in its
        // params, and every op checks shapes and binding sizes on the host
        // before dispatching, so the runtime bounds checks naga would add are
        // redundant (and cost ~20% in the inner loops of the conv kernels).
        let module = unsafe {
            self.device.create_shader_module_trusted(
                wgpu::ShaderModuleDescriptor {
                    label: Some(name),
                    source: wgpu::ShaderSource::Wgsl(source.into_owned().into()),
                },
                wgpu::ShaderRuntimeChecks::unchecked(),
            )
        };
        let m = Arc::new(KernelModule {
            name,
            act,
            module,
            bind_layout,
            pipeline_layout,
            bindings,
        });
        self.modules
            .lock()
            .map_err(poisoned)?
            .insert((name, act), m.clone());
        Ok(m)
    }

    /// The pipeline for `kernel`'s `entry`, with activations stored as `act`
    /// (F32 or F16) and the given override constants.
    pub fn get(
        &self,
        kernel: &'static str,
        act: DType,
        entry: &'static str,
        overrides: &[(&'static str, f64)],
    ) -> Result<Arc<Pipeline>> {
        let key: Key = (
            kernel,
            act,
            entry,
            overrides.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        );
        if let Some(p) = self.pipelines.lock().map_err(poisoned)?.get(&key) {
            return Ok(p.clone());
        }
        let km = self.module(kernel, act)?;
        let constants: Vec<(&str, f64)> = overrides.to_vec();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let started = std::time::Instant::now();
        let compute = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel),
                layout: Some(&km.pipeline_layout),
                module: &km.module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "pipeline {kernel}::{entry} ({act:?} activations) {overrides:?}: {err}"
            )));
        }
        if log_pipelines() {
            eprintln!(
                "wunet: pipeline {kernel}::{entry} ({act:?}) {overrides:?} built in {:.2} s",
                started.elapsed().as_secs_f64()
            );
        }
        let p = Arc::new(Pipeline {
            kernel: km,
            entry,
            compute,
        });
        self.pipelines
            .lock()
            .map_err(poisoned)?
            .insert(key, p.clone());
        Ok(p)
    }

    pub fn len(&self) -> usize {
        self.pipelines.lock().map(|p| p.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `WUNET_LOG_PIPELINES=1`: print each pipeline the cache creates, with the time
/// `create_compute_pipeline` took, to stderr. A driver that compiles at the first dispatch
/// (lavapipe) shows its compile time as the gap to the next line instead.
fn log_pipelines() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("WUNET_LOG_PIPELINES").is_ok_and(|v| v == "1"))
}

fn poisoned<T>(_: T) -> Error {
    Error::Gpu("pipeline cache lock poisoned".into())
}
