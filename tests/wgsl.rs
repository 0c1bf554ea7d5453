//! Every `kernels/*.wgsl` parses and validates with naga (no GPU needed) in
//! both activation types (f32 and f16 storage, as `gpu::pipelines::compose`
//! builds them), is registered in `KERNELS`, and declares its bindings the way
//! the runtime expects.

use std::collections::BTreeSet;
use wunet::gpu::pipelines::{compose, reflect, BindKind, KERNELS};
use wunet::shape::DType;

fn validate(label: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{label}: {}", e.emit_to_string(src)));
    let mut v = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    );
    v.validate(&module)
        .unwrap_or_else(|e| panic!("{label}: {}", e.emit_to_string(src)));
}

#[test]
fn every_kernel_file_validates_and_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("kernels/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        let src = std::fs::read_to_string(&path).expect("readable");
        for act in [DType::F32, DType::F16] {
            let composed = compose(&src, act).expect("F32 and F16 compose");
            validate(
                &format!("{} ({act:?} activations)", path.display()),
                &composed,
            );
        }
        assert!(
            src.trim_start().starts_with("//"),
            "{}: must start with a header comment",
            path.display()
        );
        on_disk.insert(name);
    }
    let registered: BTreeSet<String> = KERNELS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        on_disk, registered,
        "kernels/ and gpu::pipelines::KERNELS must list the same files"
    );
    for (name, src) in KERNELS {
        for act in [DType::F32, DType::F16] {
            let b = reflect(name, &compose(src, act).expect("composes"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                b.first().map(|b| b.kind),
                Some(BindKind::Uniform),
                "{name}: binding 0 must be the uniform params"
            );
            assert!(
                b[1..].iter().all(|k| k.kind != BindKind::Uniform),
                "{name}: only binding 0 may be uniform"
            );
        }
    }
}

/// A kernel that declares its activations as `act` reads f16 in the F16
/// module and f32 in the F32 one; composing rejects other activation types.
#[test]
fn act_alias_sets_the_storage_type() {
    let src = "// t\n@group(0) @binding(0) var<uniform> p: u32;\n\
               @group(0) @binding(1) var<storage, read_write> x: array<act>;\n\
               @compute @workgroup_size(1) fn main() { x[0] = act(f32(x[1]) * 2.0); }\n";
    for (act, want) in [(DType::F32, DType::F32), (DType::F16, DType::F16)] {
        let composed = compose(src, act).expect("composes");
        validate("inline", &composed);
        let b = reflect("inline", &composed).expect("reflects");
        assert_eq!(b[1].elem, Some(want));
    }
    assert!(compose(src, DType::U32).is_err());
}

/// Which storage bindings of each kernel hold activations (`array<act>`): f16 in
/// the F16 module and f32 in the F32 one. Every other storage binding
/// (parameters, statistics, losses, scratch, indices, labels) is a 4-byte type
/// in both. Binding 0 is the params block.
#[test]
fn activation_bindings_are_act_and_nothing_else() {
    let table: &[(&str, &[usize])] = &[
        ("activation", &[1, 2, 3]),          // a, b, out
        ("conv_fwd", &[1, 4]),               // x, y
        ("conv_dgrad", &[1, 4]),             // dy, dx
        ("conv_wgrad", &[1, 2]),             // x, dy
        ("reduce", &[1]),                    // src (channel_sum: dy)
        ("weights", &[]),                    // weights only
        ("norm_stats", &[1]),                // x
        ("norm_grad", &[1, 2, 8]),           // x, g, mask
        ("norm_apply", &[1, 2, 7, 8]),       // x, g, mask, out
        ("loss_ce", &[1]),                   // logits
        ("loss_ce_grad", &[1, 7]),           // logits, grad
        ("loss_dice", &[1, 7]),              // logits, grad
        ("optim", &[]),                      // parameters and optimiser state only
        ("pool", &[1, 2]),                   // src, dst (idx is u32)
        ("upsample", &[1, 2]),               // src, dst
        ("tensor", &[1, 2, 3]),              // a, b, y
        ("peak", &[1]),                      // out (the FMA ceiling runs in act)
        ("peak_coop", &[]),                  // f16 fragments from workgroup memory, f32 out
        ("amp", &[]),                        // f32 gradients, u32 flag, f32 scaler
        ("cast", &[2, 3]),                   // y (cast_to output), xa (cast_from input)
        ("conv_up", &[1, 2, 5]),             // x, dy, out (part is f32)
        ("conv_coop", &[1, 4]),              // x, y
        ("conv_coop_wgrad", &[1, 2]),        // x, dy
        ("conv_coop_direct", &[1, 4]),       // x, y
        ("conv_coop_direct_wgrad", &[1, 2]), // x, dy
        ("texture_io", &[5]),                // tile (network input / output)
        ("winograd", &[1, 5]),               // x, y (weights and transforms are f32)
        ("winograd_gemm", &[]),              // f32 scratch only
    ];
    let names: BTreeSet<&str> = table.iter().map(|(n, _)| *n).collect();
    let registered: BTreeSet<&str> = KERNELS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, registered, "the table must list every kernel");
    for (name, acts) in table {
        let src = KERNELS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| *s)
            .expect("registered");
        let b16 = reflect(name, &compose(src, DType::F16).expect("composes")).expect("reflects");
        let b32 = reflect(name, &compose(src, DType::F32).expect("composes")).expect("reflects");
        for i in 1..b16.len() {
            let is_act = acts.contains(&i);
            assert_eq!(
                b16[i].elem == Some(DType::F16),
                is_act,
                "{name} binding {i}: f16 in the F16 module iff it is an activation ({:?})",
                b16[i].elem
            );
            assert_ne!(
                b32[i].elem,
                Some(DType::F16),
                "{name} binding {i} in the F32 module"
            );
            if is_act {
                assert_eq!(b32[i].elem, Some(DType::F32), "{name} binding {i}");
            }
        }
    }
}

/// The cooperative-matrix kernels with their matrix operations emulated in plain WGSL (the
/// variant the CPU-adapter tests run) validate in both activation types.
#[test]
fn emulated_coop_kernels_validate() {
    for (name, base) in wunet::gpu::pipelines::EMULATED {
        let src = wunet::gpu::pipelines::kernel_source(name)
            .unwrap_or_else(|| panic!("{name}: no emulated source for {base}"));
        assert!(
            !src.contains("coop_mat16x16") && !src.contains("\nenable wgpu_cooperative_matrix;"),
            "{name}: matrix types left in the emulated source"
        );
        for act in [DType::F32, DType::F16] {
            validate(
                &format!("{name} ({act:?} activations)"),
                &compose(src, act).expect("composes"),
            );
        }
    }
}

type Overrides = Vec<(&'static str, f64)>;

/// The cooperative-matrix kernels and the override sets the host uses (their tile sizes
/// have no defaults).
fn coop_override_sets() -> Vec<(&'static str, Vec<Overrides>)> {
    // Override sets per kernel: the im2col kernels' two tiles; the direct kernel's tiles of
    // the U-Net layers (2D BM 32 / 64 / 128, 3D BM 32 / 64), a 1x1 and a 3x1 kernel, and
    // 64 x 64 blocks per subgroup (WMF 4) in 2D and 3D.
    let bm = |v: f64| vec![("BM", v)];
    let direct = |bm: f64, wnf: f64, b: [f64; 3], k: [f64; 3], rps: f64| {
        vec![
            ("BM", bm),
            ("WNF", wnf),
            ("TD", b[0]),
            ("TH", b[1]),
            ("TW", b[2]),
            ("KD", k[0]),
            ("KH", k[1]),
            ("KW", k[2]),
            ("RPS", rps),
        ]
    };
    let wmf4 = |mut o: Overrides| {
        o.push(("WMF", 4.0));
        o
    };
    let wgrad = |bm: f64, upw: f64, b: [f64; 3], k: [f64; 3]| {
        vec![
            ("BM", bm),
            ("UPW", upw),
            ("TD", b[0]),
            ("TH", b[1]),
            ("TW", b[2]),
            ("KD", k[0]),
            ("KH", k[1]),
            ("KW", k[2]),
        ]
    };
    let k2 = [1.0, 3.0, 3.0];
    let k3 = [3.0, 3.0, 3.0];
    vec![
        ("conv_coop", vec![bm(64.0), bm(128.0)]),
        ("conv_coop_wgrad", vec![bm(64.0), bm(128.0)]),
        (
            "conv_coop_direct",
            vec![
                direct(32.0, 4.0, [1.0, 16.0, 32.0], k2, 1.0),
                direct(64.0, 4.0, [1.0, 16.0, 16.0], k2, 1.0),
                direct(128.0, 4.0, [1.0, 8.0, 16.0], k2, 1.0),
                direct(32.0, 2.0, [4.0, 4.0, 16.0], k3, 1.0),
                direct(64.0, 2.0, [2.0, 4.0, 16.0], k3, 1.0),
                direct(128.0, 4.0, [1.0, 2.0, 64.0], [1.0, 1.0, 1.0], 1.0),
                direct(32.0, 4.0, [1.0, 8.0, 64.0], [1.0, 3.0, 1.0], 3.0),
                // 64 x 64 per subgroup (WMF 4; measured candidates, not the rule's)
                wmf4(direct(128.0, 4.0, [1.0, 8.0, 32.0], k2, 1.0)),
                wmf4(direct(64.0, 2.0, [1.0, 16.0, 16.0], k2, 1.0)),
                wmf4(direct(128.0, 2.0, [2.0, 4.0, 16.0], k3, 1.0)),
            ],
        ),
        (
            "conv_coop_direct_wgrad",
            vec![
                wgrad(64.0, 3.0, [1.0, 8.0, 16.0], k2),
                wgrad(32.0, 2.0, [1.0, 8.0, 16.0], k2),
                wgrad(32.0, 4.0, [2.0, 4.0, 16.0], k3),
            ],
        ),
    ]
}

/// naga 30 decorates every array type with ArrayStride, also those of workgroup and function
/// variables, which spirv-val >= 2025 rejects under Vulkan rules
/// (VUID-StandaloneSpirv-None-10684; every kernel with workgroup memory or local arrays hits
/// it, and drivers accept it). Drop those decorations so that the check sees the rest: arrays
/// that are also reached through buffers, structs or other arrays keep theirs.
fn strip_workgroup_array_strides(words: &[u32]) -> Vec<u32> {
    const OP_DECORATE: u32 = 71;
    const OP_TYPE_POINTER: u32 = 32;
    const OP_TYPE_ARRAY: u32 = 28;
    const OP_TYPE_RUNTIME_ARRAY: u32 = 29;
    const OP_TYPE_STRUCT: u32 = 30;
    const ARRAY_STRIDE: u32 = 6;
    // Function, Private, Workgroup: storage classes without explicit layout.
    const NO_LAYOUT: [u32; 3] = [7, 6, 4];
    let mut list = Vec::new();
    let mut i = 5;
    while i < words.len() {
        let n = ((words[i] >> 16) as usize).max(1);
        list.push((i, n));
        i += n;
    }
    let mut local = std::collections::HashSet::new();
    let mut laid_out = std::collections::HashSet::new();
    for &(i, n) in &list {
        match words[i] & 0xffff {
            OP_TYPE_POINTER if n == 4 => {
                if NO_LAYOUT.contains(&words[i + 2]) {
                    local.insert(words[i + 3]);
                } else {
                    laid_out.insert(words[i + 3]);
                }
            }
            OP_TYPE_ARRAY | OP_TYPE_RUNTIME_ARRAY if n >= 3 => {
                laid_out.insert(words[i + 2]);
            }
            OP_TYPE_STRUCT => laid_out.extend(&words[i + 2..i + n]),
            _ => {}
        }
    }
    let mut out = words[..5].to_vec();
    for &(i, n) in &list {
        let strip = words[i] & 0xffff == OP_DECORATE
            && n == 4
            && words[i + 2] == ARRAY_STRIDE
            && local.contains(&words[i + 1])
            && !laid_out.contains(&words[i + 1]);
        if !strip {
            out.extend_from_slice(&words[i..i + n]);
        }
    }
    out
}

/// `spirv-val` to run: `$SPIRV_VAL`, else `spirv-val` on the PATH.
fn spirv_val() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("SPIRV_VAL") {
        return Some(p.into());
    }
    let ok = std::process::Command::new("spirv-val")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then(|| "spirv-val".into())
}

/// The cooperative-matrix kernels go through naga's SPIR-V backend the way wgpu's Vulkan
/// backend drives it (overrides processed, SPIR-V 1.6, every capability allowed), for both
/// activation types and the tile configurations the host uses, and the result passes
/// `spirv-val --target-env vulkan1.3` where a spirv-val that knows SPV_KHR_cooperative_matrix
/// is installed (SPIRV-Tools 2023.4 or later; older ones are reported and skipped).
#[test]
fn coop_kernels_compile_to_valid_spirv() {
    let val = spirv_val();
    // WUNET_SPV_DIR keeps the SPIR-V files there (for spirv-dis); else a temp dir, removed.
    let keep = std::env::var_os("WUNET_SPV_DIR").map(std::path::PathBuf::from);
    let dir = keep
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("wunet-spv-{}", std::process::id())));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut skipped = None;
    let kernels = coop_override_sets();
    for (name, sets) in &kernels {
        let name = *name;
        let src = wunet::gpu::pipelines::kernel_source(name).expect("registered");
        for act in [DType::F32, DType::F16] {
            let composed = compose(src, act).expect("composes");
            let module = naga::front::wgsl::parse_str(&composed)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&composed)));
            let mut v = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            );
            let info = v
                .validate(&module)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&composed)));
            for (si, set) in sets.iter().enumerate() {
                let label = format!("{name} ({act:?} activations, {set:?})");
                let consts: naga::back::PipelineConstants =
                    set.iter().map(|(k, v)| (k.to_string(), *v)).collect();
                let (m, i) = naga::back::pipeline_constants::process_overrides(
                    &module, &info, None, &consts,
                )
                .unwrap_or_else(|e| panic!("{label}: overrides: {e:?}"));
                let opts = naga::back::spv::Options {
                    lang_version: (1, 6),
                    ..Default::default()
                };
                let words = naga::back::spv::write_vec(&m, &i, &opts, None)
                    .unwrap_or_else(|e| panic!("{label}: SPIR-V backend: {e:?}"));
                let Some(val) = &val else {
                    skipped = Some("spirv-val not installed (apt install spirv-tools)".to_string());
                    continue;
                };
                let path = dir.join(format!("{name}-{act:?}-{si}.spv"));
                let words = strip_workgroup_array_strides(&words);
                std::fs::write(&path, bytemuck::cast_slice(&words)).expect("write spv");
                let out = std::process::Command::new(val)
                    .args(["--target-env", "vulkan1.3"])
                    .arg(&path)
                    .output()
                    .expect("run spirv-val");
                let msg = String::from_utf8_lossy(&out.stderr).to_string()
                    + &String::from_utf8_lossy(&out.stdout);
                if !out.status.success() && msg.contains("Invalid capability operand: 6022") {
                    skipped = Some(format!(
                        "{} does not know SPV_KHR_cooperative_matrix (too old): {}",
                        val.display(),
                        msg.trim()
                    ));
                    continue;
                }
                assert!(out.status.success(), "{label}: spirv-val failed:\n{msg}");
            }
        }
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Some(why) = skipped {
        eprintln!("skip: spirv-val check: {why}");
    }
}

/// What a backend's translation of one module needs.
struct Target {
    api: &'static str,
    /// Does wgpu 30 compile this module on that API at all?
    /// (`f16`: SHADER_F16 storage; `coop`: cooperative matrices.)
    runs: fn(f16: bool, coop: bool) -> bool,
    translate: fn(&naga::Module, &naga::valid::ModuleInfo, coop: bool) -> Result<usize, String>,
}

fn to_spirv(m: &naga::Module, i: &naga::valid::ModuleInfo, coop: bool) -> Result<usize, String> {
    let opts = naga::back::spv::Options {
        lang_version: if coop { (1, 6) } else { (1, 3) },
        ..Default::default()
    };
    naga::back::spv::write_vec(m, i, &opts, None)
        .map(|w| w.len())
        .map_err(|e| format!("{e:?}"))
}

fn to_msl(m: &naga::Module, i: &naga::valid::ModuleInfo, _: bool) -> Result<usize, String> {
    // MSL 2.4: f16 and simdgroup matrices (wgpu needs 2.3+ for cooperative matrices)
    let opts = naga::back::msl::Options {
        lang_version: (2, 4),
        ..Default::default()
    };
    naga::back::msl::write_string(m, i, &opts, &Default::default())
        .map(|(s, _)| s.len())
        .map_err(|e| format!("{e:?}"))
}

fn to_hlsl(m: &naga::Module, i: &naga::valid::ModuleInfo, _: bool) -> Result<usize, String> {
    // shader model 6.2: 16-bit types (SHADER_F16 on DX12)
    let opts = naga::back::hlsl::Options {
        shader_model: naga::back::hlsl::ShaderModel::V6_2,
        ..Default::default()
    };
    let pipeline = naga::back::hlsl::PipelineOptions::default();
    let mut out = String::new();
    naga::back::hlsl::Writer::new(&mut out, &opts, &pipeline)
        .write(m, i, None)
        .map_err(|e| format!("{e:?}"))?;
    Ok(out.len())
}

/// GLSL ES 3.10 (wgpu's GL backend creates an ES context), one entry point at a time.
fn to_glsl(m: &naga::Module, i: &naga::valid::ModuleInfo, _: bool) -> Result<usize, String> {
    let opts = naga::back::glsl::Options {
        version: naga::back::glsl::Version::Embedded {
            version: 310,
            is_webgl: false,
        },
        ..Default::default()
    };
    let mut len = 0;
    for ep in &m.entry_points {
        let pipeline = naga::back::glsl::PipelineOptions {
            shader_stage: ep.stage,
            entry_point: ep.name.clone(),
            multiview: None,
        };
        let mut out = String::new();
        let mut w = naga::back::glsl::Writer::new(
            &mut out,
            m,
            i,
            &opts,
            &pipeline,
            naga::proc::BoundsCheckPolicies::default(),
        )
        .map_err(|e| format!("{}: {e:?}", ep.name))?;
        w.write().map_err(|e| format!("{}: {e:?}", ep.name))?;
        len += out.len();
    }
    Ok(len)
}

/// Metal and DX12 cannot run here, so every kernel is translated the way those backends
/// would (MSL, HLSL), and to SPIR-V (Vulkan) and GLSL ES (GL), in every activation type
/// and override set the host uses on that API; a shader a backend would reject fails here.
/// Not translated, because wgpu 30 never compiles them there: cooperative-matrix kernels on
/// DX12 and GL (wgpu exposes cooperative matrices on Vulkan and Metal only), f16 modules on
/// GL (no SHADER_F16).
#[test]
fn every_kernel_translates_for_every_backend() {
    let targets = [
        Target {
            api: "Vulkan (SPIR-V)",
            runs: |_, _| true,
            translate: to_spirv,
        },
        Target {
            api: "Metal (MSL 2.4)",
            runs: |_, _| true,
            translate: to_msl,
        },
        Target {
            api: "DX12 (HLSL SM 6.2)",
            runs: |_, coop| !coop,
            translate: to_hlsl,
        },
        Target {
            api: "GL (GLSL ES 3.10)",
            runs: |f16, coop| !f16 && !coop,
            translate: to_glsl,
        },
    ];
    let coop_sets = coop_override_sets();
    let mut translated = 0;
    let mut failures = Vec::new();
    for (name, src) in KERNELS {
        let coop = src.contains("enable wgpu_cooperative_matrix;");
        let sets: Vec<Overrides> = match coop_sets.iter().find(|(n, _)| n == name) {
            Some((_, sets)) => sets.clone(),
            None => vec![Vec::new()],
        };
        for act in [DType::F32, DType::F16] {
            let composed = compose(src, act).expect("composes");
            let module = naga::front::wgsl::parse_str(&composed)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&composed)));
            let info = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&composed)));
            for set in &sets {
                let consts: naga::back::PipelineConstants =
                    set.iter().map(|(k, v)| (k.to_string(), *v)).collect();
                let (m, i) = naga::back::pipeline_constants::process_overrides(
                    &module, &info, None, &consts,
                )
                .unwrap_or_else(|e| panic!("{name} {set:?}: overrides: {e:?}"));
                for t in &targets {
                    if !(t.runs)(act == DType::F16, coop) {
                        continue;
                    }
                    match (t.translate)(&m, &i, coop) {
                        Ok(len) if len > 0 => translated += 1,
                        Ok(_) => failures.push(format!("{name} {act:?} {}: empty output", t.api)),
                        Err(e) => failures.push(format!("{name} {act:?} {set:?} {}: {e}", t.api)),
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} translation(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{translated} translations of {} kernels", KERNELS.len());
}
