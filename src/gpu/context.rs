//! The GPU context: device, queue, adapter facts, pipeline cache and buffer pool.
//!
//! A [`Context`] is made either by the engine ([`Context::new`], which picks an
//! adapter) or from a host application's own device and queue
//! ([`Context::from_device`]), so that tests, the CLI and embedding apps share
//! one code path.

use super::pipelines::PipelineCache;
use super::pool::BufferPool;
use crate::error::{Error, Result};
use std::sync::Arc;

/// Which family of kernel variants suits the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterClass {
    /// A real GPU: workgroup-memory tiles with barriers.
    Gpu,
    /// A CPU rasteriser such as lavapipe: register blocks, no barriers.
    Cpu,
}

/// How to pick an adapter.
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// `vulkan`, `metal`, `dx12`, `gl` (comma-separated list allowed). `None`:
    /// `WUNET_BACKEND` from the environment, else every backend.
    pub backend: Option<String>,
    /// Case-insensitive substring of the adapter name (`WUNET_ADAPTER`).
    pub adapter: Option<String>,
}

/// Engine state bound to one device.
pub struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub class: AdapterClass,
    /// Features the device was opened with (`SHADER_F16` enables f16 storage,
    /// `EXPERIMENTAL_COOPERATIVE_MATRIX` the matrix-unit kernels).
    pub features: wgpu::Features,
    /// Matrix-unit configurations the adapter reports (empty without
    /// `EXPERIMENTAL_COOPERATIVE_MATRIX`, or for a host device given without its adapter).
    pub coop: Vec<wgpu::CooperativeMatrixProperties>,
    /// Whether the matrix-unit conv kernels run here (decided on first use, with a
    /// self-test; see `ops::coop::status`).
    pub(crate) coop_conv: std::sync::OnceLock<crate::ops::coop::CoopConv>,
    pub(crate) pipelines: PipelineCache,
    pub(crate) pool: Arc<BufferPool>,
    /// Errors the device reported outside an error scope (an engine-made
    /// device records them here instead of wgpu's default panic; see
    /// [`Context::check_errors`]).
    pub(crate) gpu_errors: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Parse a backend list such as `vulkan` or `vulkan,gl`.
pub fn parse_backends(s: &str) -> Result<wgpu::Backends> {
    let mut b = wgpu::Backends::empty();
    for part in s.split(',').map(|p| p.trim().to_ascii_lowercase()) {
        b |= match part.as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            "all" | "" => wgpu::Backends::all(),
            other => {
                return Err(Error::Gpu(format!(
                    "unknown backend '{other}' (expected vulkan, metal, dx12, gl or all)"
                )))
            }
        };
    }
    Ok(b)
}

fn backends_from(opts: &ContextOptions) -> Result<wgpu::Backends> {
    match opts
        .backend
        .clone()
        .or_else(|| std::env::var("WUNET_BACKEND").ok())
    {
        Some(s) => parse_backends(&s),
        None => Ok(wgpu::Backends::all()),
    }
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter the selected backends expose.
pub fn enumerate_adapters(opts: &ContextOptions) -> Result<Vec<wgpu::Adapter>> {
    let inst = instance(backends_from(opts)?);
    Ok(pollster::block_on(
        inst.enumerate_adapters(wgpu::Backends::all()),
    ))
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

impl Context {
    /// Pick an adapter (discrete > integrated > CPU; native APIs before GL) and
    /// open a device with the adapter's full limits.
    pub fn new(opts: &ContextOptions) -> Result<Self> {
        let mut adapters = enumerate_adapters(opts)?;
        let wanted = opts
            .adapter
            .clone()
            .or_else(|| std::env::var("WUNET_ADAPTER").ok());
        if let Some(w) = &wanted {
            let w = w.to_ascii_lowercase();
            adapters.retain(|a| a.get_info().name.to_ascii_lowercase().contains(&w));
        }
        adapters.sort_by_key(|a| {
            let i = a.get_info();
            (type_rank(i.device_type), backend_rank(i.backend))
        });
        let adapter = adapters.into_iter().next().ok_or_else(|| {
            Error::Gpu(format!(
                "no GPU adapter found (backends: {:?}{}). Install a Vulkan driver; without a GPU install \
                 Mesa's lavapipe (Debian: mesa-vulkan-drivers libvulkan1).",
                backends_from(opts).unwrap_or(wgpu::Backends::all()),
                wanted.map(|w| format!(", name containing '{w}'")).unwrap_or_default()
            ))
        })?;
        Self::open(&adapter)
    }

    /// Open a device on `adapter` with its full limits and the optional features wunet uses.
    pub fn open(adapter: &wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = wanted_features(adapter);
        let experimental = if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            // SAFETY: the only experimental feature requested is cooperative
            // matrices, used by kernels that are checked against the f32 path
            // on this device before they are chosen (see `ops::coop`).
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let desc = wgpu::DeviceDescriptor {
            label: Some("wunet"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: experimental,
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::Gpu(format!("request_device on '{}' failed: {e}", info.name)))?;
        let ctx = Self::from_adapter_device(adapter, device, queue);
        // out of memory and other device errors become an error of the
        // next check (Executor setup, wait), not a panic
        let errors = ctx.gpu_errors.clone();
        ctx.device.on_uncaptured_error(Arc::new(move |e| {
            if let Ok(mut v) = errors.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(ctx)
    }

    /// Fail with the first error the device reported since the last check
    /// (an engine-made device only; a host device keeps the host's handler).
    pub fn check_errors(&self) -> Result<()> {
        let first = self
            .gpu_errors
            .lock()
            .map(|mut v| v.drain(..).next())
            .unwrap_or(None);
        match first {
            None => Ok(()),
            Some(e) => Err(Error::Gpu(format!(
                "the device reported: {}; if it ran out of memory, use a smaller --tile, --batch or --patch",
                e.trim()
            ))),
        }
    }

    /// Wrap a host application's device and queue, with the adapter it came
    /// from, so that the matrix-unit configurations are known (embedding).
    pub fn from_adapter_device(
        adapter: &wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
    ) -> Self {
        let mut ctx = Self::from_device(device, queue, adapter.get_info());
        if ctx
            .features
            .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
        {
            ctx.coop = adapter.cooperative_matrix_properties();
        }
        ctx
    }

    /// Wrap a host application's device and queue (embedding). The engine
    /// uses the device's own limits; nothing is created until ops run.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Self {
        let limits = device.limits();
        let class = match info.device_type {
            wgpu::DeviceType::Cpu => AdapterClass::Cpu,
            _ => AdapterClass::Gpu,
        };
        let class = match std::env::var("WUNET_KERNELS").ok().as_deref() {
            Some("cpu") => AdapterClass::Cpu,
            Some("gpu") => AdapterClass::Gpu,
            _ => class,
        };
        Context {
            pool: Arc::new(BufferPool::new(device.clone())),
            gpu_errors: Arc::new(std::sync::Mutex::new(Vec::new())),
            pipelines: PipelineCache::new(device.clone()),
            features: device.features(),
            coop: Vec::new(),
            coop_conv: std::sync::OnceLock::new(),
            device,
            queue,
            info,
            limits,
            class,
        }
    }

    /// Can this device write timestamps between the dispatches of a pass
    /// (GPU timing of single kernels, `Program::gpu_times`)?
    pub fn has_gpu_timestamps(&self) -> bool {
        self.features.contains(
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
        )
    }

    /// Can this device store activations in f16 (`SHADER_F16`)?
    pub fn has_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Does the device have a matrix-unit path for f16 convolutions (a
    /// 16x16x16 f16 -> f32 cooperative-matrix configuration)?
    pub fn has_matrix_units(&self) -> bool {
        has_f16_matrix_config(&self.coop)
    }

    /// `--precision f32|mixed|auto` on this device: auto is mixed where the
    /// device has f16 storage and matrix units, else f32; mixed without f16
    /// storage is an error naming the adapter.
    pub fn precision(&self, choice: &str) -> Result<crate::shape::Precision> {
        use crate::shape::Precision;
        match choice {
            "f32" => Ok(Precision::F32),
            "mixed" if self.has_f16() => Ok(Precision::Mixed),
            "mixed" => Err(Error::Gpu(format!(
                "--precision mixed needs f16 storage (SHADER_F16), which {} lacks; use f32 or auto",
                self.describe()
            ))),
            "auto" if self.has_f16() && self.has_matrix_units() => Ok(Precision::Mixed),
            "auto" => Ok(Precision::F32),
            other => Err(Error::Other(format!(
                "--precision '{other}': expected f32, mixed or auto"
            ))),
        }
    }

    /// Buffer pool counters (allocations, reuses, live bytes).
    pub fn pool_stats(&self) -> super::pool::PoolStats {
        self.pool.stats()
    }

    /// A one-line description: `name (backend, type, driver)`.
    pub fn describe(&self) -> String {
        describe_info(&self.info)
    }

    /// Block until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("device poll failed: {e}")))?;
        self.check_errors()
    }

    /// Check a buffer / binding size against the device limits before any GPU work.
    pub fn check_binding_size(&self, op: &'static str, what: &str, bytes: u64) -> Result<()> {
        let lim = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if bytes > lim {
            let limit_name =
                if self.limits.max_storage_buffer_binding_size <= self.limits.max_buffer_size {
                    "max_storage_buffer_binding_size"
                } else {
                    "max_buffer_size"
                };
            return Err(Error::TooLarge {
                op,
                what: what.to_string(),
                bytes,
                limit: lim,
                limit_name,
            });
        }
        Ok(())
    }
}

/// Is there a 16x16x16 f16 x f16 -> f32 configuration among `configs` (the
/// one the matrix-unit kernels use)?
pub fn has_f16_matrix_config(configs: &[wgpu::CooperativeMatrixProperties]) -> bool {
    configs.iter().any(|p| {
        (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
            && p.ab_type == wgpu::CooperativeScalarType::F16
            && p.cr_type == wgpu::CooperativeScalarType::F32
    })
}

/// The optional features wunet uses, where the adapter has them: f16 storage
/// (`SHADER_F16`), GPU timestamps between dispatches (profiling), and
/// cooperative matrices unless `WUNET_NO_COOP` is set.
fn wanted_features(adapter: &wgpu::Adapter) -> wgpu::Features {
    let have = adapter.features();
    let mut want = (wgpu::Features::SHADER_F16
        | wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
        & have;
    if std::env::var_os("WUNET_NO_COOP").is_none() {
        want |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX & have;
    }
    want
}

pub fn describe_info(i: &wgpu::AdapterInfo) -> String {
    format!(
        "{} ({:?}, {:?}, {} {})",
        i.name, i.backend, i.device_type, i.driver, i.driver_info
    )
}

/// The `wunet devices` report for one adapter.
pub fn adapter_report(a: &wgpu::Adapter) -> String {
    let i = a.get_info();
    let l = a.limits();
    let f = a.features();
    let yn = |b: bool| if b { "yes" } else { "no" };
    format!(
        "{name}\n  backend: {backend:?}\n  type: {ty:?}\n  driver: {driver} {dinfo}\n  vendor/device: {vendor:#06x}/{device:#06x}\n  \
         max_buffer_size: {mbs}\n  max_storage_buffer_binding_size: {msb}\n  max_storage_buffers_per_shader_stage: {nsb}\n  \
         max_compute_workgroup_storage_size: {wgs}\n  max_compute_invocations_per_workgroup: {inv}\n  \
         max_compute_workgroup_size: {x}x{y}x{z}\n  max_compute_workgroups_per_dimension: {wpd}\n  \
         min_storage_buffer_offset_alignment: {align}\n  shader_f16: {f16}\n  subgroup: {sg}\n  timestamp_query: {ts}\n  \
         cooperative_matrix: {coop}",
        name = i.name,
        backend = i.backend,
        ty = i.device_type,
        driver = i.driver,
        dinfo = i.driver_info,
        vendor = i.vendor,
        device = i.device,
        mbs = l.max_buffer_size,
        msb = l.max_storage_buffer_binding_size,
        nsb = l.max_storage_buffers_per_shader_stage,
        wgs = l.max_compute_workgroup_storage_size,
        inv = l.max_compute_invocations_per_workgroup,
        x = l.max_compute_workgroup_size_x,
        y = l.max_compute_workgroup_size_y,
        z = l.max_compute_workgroup_size_z,
        wpd = l.max_compute_workgroups_per_dimension,
        align = l.min_storage_buffer_offset_alignment,
        f16 = yn(f.contains(wgpu::Features::SHADER_F16)),
        sg = yn(f.contains(wgpu::Features::SUBGROUP)),
        ts = yn(f.contains(wgpu::Features::TIMESTAMP_QUERY)),
        coop = coop_report(a),
    )
}

/// The adapter's matrix-unit configurations, `MxNxK AB->CR` each, or `no`.
fn coop_report(a: &wgpu::Adapter) -> String {
    if !a
        .features()
        .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
    {
        return "no".into();
    }
    let list: Vec<String> = a
        .cooperative_matrix_properties()
        .iter()
        .map(|p| {
            format!(
                "{}x{}x{} {:?}->{:?}",
                p.m_size, p.n_size, p.k_size, p.ab_type, p.cr_type
            )
        })
        .collect();
    if list.is_empty() {
        "no configurations".into()
    } else {
        list.join(", ")
    }
}
