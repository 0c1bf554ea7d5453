//! Kernel sources (compiled into the binary), their bind-group layouts (read
//! from the WGSL itself with naga), and a cache that builds each pipeline once
//! per (kernel, entry point, override constants).

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Every WGSL file in `kernels/`, embedded at compile time. A test checks that
/// this list and the folder agree and that every file validates with naga.
pub const KERNELS: &[(&str, &str)] = &[
    ("conv_fwd", include_str!("../../kernels/conv_fwd.wgsl")),
    ("conv_dgrad", include_str!("../../kernels/conv_dgrad.wgsl")),
    ("conv_wgrad", include_str!("../../kernels/conv_wgrad.wgsl")),
    ("conv_up", include_str!("../../kernels/conv_up.wgsl")),
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
];

pub fn kernel_source(name: &str) -> Option<&'static str> {
    KERNELS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Binding kinds of a kernel's group 0, in binding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindKind {
    Uniform,
    StorageRead,
    StorageReadWrite,
}

/// Read the bindings of group 0 from WGSL source.
pub fn reflect_bindings(name: &str, source: &str) -> Result<Vec<BindKind>> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| {
        Error::Gpu(format!(
            "kernel {name}: WGSL parse error: {}",
            e.emit_to_string(source)
        ))
    })?;
    let mut slots: Vec<(u32, BindKind)> = Vec::new();
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
        slots.push((rb.binding, kind));
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
    pub module: wgpu::ShaderModule,
    pub bind_layout: wgpu::BindGroupLayout,
    pub pipeline_layout: wgpu::PipelineLayout,
    pub bindings: Vec<BindKind>,
}

pub struct Pipeline {
    pub kernel: Arc<KernelModule>,
    pub entry: &'static str,
    pub compute: wgpu::ComputePipeline,
}

type Key = (&'static str, &'static str, Vec<(&'static str, u64)>);

pub struct PipelineCache {
    device: wgpu::Device,
    modules: Mutex<HashMap<&'static str, Arc<KernelModule>>>,
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

    fn module(&self, name: &'static str) -> Result<Arc<KernelModule>> {
        if let Some(m) = self.modules.lock().map_err(poisoned)?.get(name) {
            return Ok(m.clone());
        }
        let source =
            kernel_source(name).ok_or_else(|| Error::Gpu(format!("no kernel named '{name}'")))?;
        let bindings = reflect_bindings(name, source)?;
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, k)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match k {
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
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                },
                wgpu::ShaderRuntimeChecks::unchecked(),
            )
        };
        let m = Arc::new(KernelModule {
            name,
            module,
            bind_layout,
            pipeline_layout,
            bindings,
        });
        self.modules
            .lock()
            .map_err(poisoned)?
            .insert(name, m.clone());
        Ok(m)
    }

    /// The pipeline for `kernel`'s `entry` with the given override constants.
    pub fn get(
        &self,
        kernel: &'static str,
        entry: &'static str,
        overrides: &[(&'static str, f64)],
    ) -> Result<Arc<Pipeline>> {
        let key: Key = (
            kernel,
            entry,
            overrides.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        );
        if let Some(p) = self.pipelines.lock().map_err(poisoned)?.get(&key) {
            return Ok(p.clone());
        }
        let km = self.module(kernel)?;
        let constants: Vec<(&str, f64)> = overrides.to_vec();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
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
                "pipeline {kernel}::{entry} {overrides:?}: {err}"
            )));
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

fn poisoned<T>(_: T) -> Error {
    Error::Gpu("pipeline cache lock poisoned".into())
}
