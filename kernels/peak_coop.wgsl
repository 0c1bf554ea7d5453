// peak_coop.wgsl: matrix-unit ceiling (`wunet bench peak`), f16 x f16 -> f32 16x16x16 fragments.
//
//   mma      Every subgroup loads one A and one B fragment (f16) from workgroup memory, then runs
//            8 independent accumulator chains c = coopMultiplyAdd(a, b, c) P.iters times and stores
//            them: 8 * 2 * 16^3 FLOP per iteration per subgroup.
// Thread mapping: 256 invocations per workgroup; subgroup s = local_invocation_index / P.n (the
// subgroup size, passed by the host) stores its accumulators at out[((wg * 8 + s) * 8 + j) * 256].
// Needs `EXPERIMENTAL_COOPERATIVE_MATRIX` with a 16x16x16 f16 -> f32 configuration.
// Bindings: 0 params (uniform), 1 out (read_write, f32).
enable f16;
enable wgpu_cooperative_matrix;

struct Params {
    iters: u32,
    n: u32,
    threads: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

var<workgroup> tile_a: array<f16, 256>;
var<workgroup> tile_b: array<f16, 256>;

@compute @workgroup_size(256)
fn mma_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    tile_a[lid] = f16(f32(lid & 15u) * 0.01);
    tile_b[lid] = f16(f32(lid >> 4u) * 0.01);
    workgroupBarrier();
    let a = coopLoad<coop_mat16x16<f16, A>>(&tile_a[0], 16u);
    let b = coopLoad<coop_mat16x16<f16, B>>(&tile_b[0], 16u);
    var c0 = coop_mat16x16<f32, C>();
    var c1 = coop_mat16x16<f32, C>();
    var c2 = coop_mat16x16<f32, C>();
    var c3 = coop_mat16x16<f32, C>();
    var c4 = coop_mat16x16<f32, C>();
    var c5 = coop_mat16x16<f32, C>();
    var c6 = coop_mat16x16<f32, C>();
    var c7 = coop_mat16x16<f32, C>();
    for (var k = 0u; k < P.iters; k++) {
        c0 = coopMultiplyAdd(a, b, c0);
        c1 = coopMultiplyAdd(a, b, c1);
        c2 = coopMultiplyAdd(a, b, c2);
        c3 = coopMultiplyAdd(a, b, c3);
        c4 = coopMultiplyAdd(a, b, c4);
        c5 = coopMultiplyAdd(a, b, c5);
        c6 = coopMultiplyAdd(a, b, c6);
        c7 = coopMultiplyAdd(a, b, c7);
    }
    let base = ((wid.x + wid.y * nwg.x) * (256u / P.n) + lid / P.n) * 8u * 256u;
    coopStore(c0, &out[base], 16u);
    coopStore(c1, &out[base + 256u], 16u);
    coopStore(c2, &out[base + 512u], 16u);
    coopStore(c3, &out[base + 768u], 16u);
    coopStore(c4, &out[base + 1024u], 16u);
    coopStore(c5, &out[base + 1280u], 16u);
    coopStore(c6, &out[base + 1536u], 16u);
    coopStore(c7, &out[base + 1792u], 16u);
}
