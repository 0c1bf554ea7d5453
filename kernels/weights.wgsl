// weights.wgsl: weight re-layouts.
//
// flip_transpose: out[c, o, kd, kh, kw] = w[o, c, kD-1-kd, kH-1-kh, kW-1-kw]
//   Turns a convolution weight (O, C, k..) into the weight of its stride-1 input gradient:
//   dx = conv(dy, flip_transpose(w), pad = dil*(k-1) - pad), so the fast forward kernels
//   also serve the backward. One invocation per output element, 256 per workgroup,
//   grid linearised.
// Bindings: 0 params, 1 w (read), 2 out (read_write).

struct Params {
    o: u32, c: u32, kk: u32, pad0: u32,
    k_d: u32, k_h: u32, k_w: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn flip_transpose(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= P.o * P.c * P.kk) {
        return;
    }
    let t = i % P.kk;
    let co = i / P.kk;
    let o = co % P.o;
    let c = co / P.o;
    out[i] = w[(o * P.c + c) * P.kk + (P.kk - 1u - t)];
}
