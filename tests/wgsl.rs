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
        ("activation", &[1, 2, 3]), // a, b, out
        ("conv_fwd", &[1, 4]),      // x, y
        ("conv_dgrad", &[1, 4]),    // dy, dx
        ("conv_wgrad", &[1, 2]),    // x, dy
        ("reduce", &[1]),           // src (channel_sum: dy)
        ("weights", &[]),           // weights only
        ("norm_stats", &[1]),       // x
        ("norm_grad", &[1, 2]),     // x, g
        ("norm_apply", &[1, 2, 7]), // x, g, out
        ("loss_ce", &[1]),          // logits
        ("loss_ce_grad", &[1, 7]),  // logits, grad
        ("loss_dice", &[1, 7]),     // logits, grad
        ("optim", &[]),             // parameters and optimiser state only
        ("pool", &[1, 2]),          // src, dst (idx is u32)
        ("upsample", &[1, 2]),      // src, dst
        ("tensor", &[1, 2, 3]),     // a, b, y
        ("peak", &[1]),             // out (the FMA ceiling runs in act)
        ("peak_coop", &[]),         // f16 fragments from workgroup memory, f32 out
        ("amp", &[]),               // f32 gradients, u32 flag, f32 scaler
        ("cast", &[2, 3]),          // y (cast_to output), xa (cast_from input)
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
