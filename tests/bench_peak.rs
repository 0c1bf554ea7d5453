//! `wunet bench peak` measures every ceiling the adapter has, each a finite
//! positive figure with its kernel named (values are never asserted: speed is
//! measured in benches, not tests).

mod common;

#[test]
fn peak_measures_each_ceiling_the_adapter_has() {
    let Some(ctx) = common::ctx() else { return };
    let peaks = wunet::bench::peak::measure(ctx, 1).expect("peak runs");
    let names: Vec<&str> = peaks.iter().map(|p| p.name).collect();
    for want in ["fma_f32", "read", "write", "copy"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let f16 = ctx.features.contains(wgpu::Features::SHADER_F16);
    assert_eq!(names.contains(&"fma_f16"), f16, "fma_f16 iff SHADER_F16");
    for p in &peaks {
        assert!(
            p.value.is_finite() && p.value > 0.0 && p.median_ms > 0.0,
            "{p:?}"
        );
        assert!(p.kernel.starts_with("peak"), "{p:?}");
    }
}
