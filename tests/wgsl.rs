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
