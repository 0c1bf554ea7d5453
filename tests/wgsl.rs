//! Every `kernels/*.wgsl` parses and validates with naga (no GPU needed), is
//! registered in `KERNELS`, and declares its bindings the way the runtime expects.

use std::collections::BTreeSet;
use wunet::gpu::pipelines::{reflect_bindings, BindKind, KERNELS};

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
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
        let mut v = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        v.validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
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
        let b = reflect_bindings(name, src).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            b.first(),
            Some(&BindKind::Uniform),
            "{name}: binding 0 must be the uniform params"
        );
        assert!(
            b[1..].iter().all(|k| *k != BindKind::Uniform),
            "{name}: only binding 0 may be uniform"
        );
    }
}
