// peak.wgsl: the adapter's own ceilings (`wunet bench peak`), measured on the spot.
//
//   fma      out[i] = sum of 8 independent chains a = fma(a, m, c) on vec4<act>, P.iters times:
//            32 FMA (64 FLOP) per iteration per invocation; act = f32 gives the f32 FMA peak,
//            act = f16 the f16 one (packed half arithmetic where the GPU has it).
//   read     out[i] = sum over a grid-stride loop of src (vec4<f32>): bytes read = 16 * P.n.
//   write    dst[j] = constant over a grid-stride loop: bytes written = 16 * P.n.
//   copy     dst[j] = src[j] over a grid-stride loop: 16 * P.n bytes read and as many written.
// Thread mapping: 256 invocations per workgroup, linear id i = (wid.x + wid.y * nwg.x) * 256 + lid;
// the bandwidth entries stride by the total invocation count P.threads.
// Bindings: 0 params (uniform), 1 out (read_write, act: one value per invocation),
//           2 src (read, vec4<f32>), 3 dst (read_write, vec4<f32>).

struct Params {
    iters: u32,
    n: u32,
    threads: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<act>;
@group(0) @binding(2) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dst: array<vec4<f32>>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn fma_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    let s = act(f32(i & 1023u) * 1e-4);
    var a0 = vec4<act>(s);
    var a1 = vec4<act>(s + act(0.1));
    var a2 = vec4<act>(s + act(0.2));
    var a3 = vec4<act>(s + act(0.3));
    var a4 = vec4<act>(s + act(0.4));
    var a5 = vec4<act>(s + act(0.5));
    var a6 = vec4<act>(s + act(0.6));
    var a7 = vec4<act>(s + act(0.7));
    let m = vec4<act>(act(0.999));
    let c = vec4<act>(act(0.001));
    for (var k = 0u; k < P.iters; k++) {
        a0 = fma(a0, m, c);
        a1 = fma(a1, m, c);
        a2 = fma(a2, m, c);
        a3 = fma(a3, m, c);
        a4 = fma(a4, m, c);
        a5 = fma(a5, m, c);
        a6 = fma(a6, m, c);
        a7 = fma(a7, m, c);
    }
    let t = vec4<f32>(a0 + a1 + a2 + a3) + vec4<f32>(a4 + a5 + a6 + a7);
    out[i] = act(t.x + t.y + t.z + t.w);
}

@compute @workgroup_size(256)
fn read_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    var acc = vec4<f32>(0.0);
    for (var j = i; j < P.n; j += P.threads) {
        acc += src[j];
    }
    out[i] = act(acc.x + acc.y + acc.z + acc.w);
}

@compute @workgroup_size(256)
fn write_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    let v = vec4<f32>(f32(i));
    for (var j = i; j < P.n; j += P.threads) {
        dst[j] = v;
    }
}

@compute @workgroup_size(256)
fn copy_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    for (var j = i; j < P.n; j += P.threads) {
        dst[j] = src[j];
    }
}
