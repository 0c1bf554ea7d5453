// weights.wgsl: weight re-layouts.
//
// flip_transpose: out[c, o, kd, kh, kw] = w[o, c, kD-1-kd, kH-1-kh, kW-1-kw]
//   Turns a convolution weight (O, C, k..) into the weight of its stride-1 input gradient:
//   dx = conv(dy, flip_transpose(w), pad = dil*(k-1) - pad), so the fast forward kernels
//   also serve the backward. One invocation per (c, o) pair (i = c*O + o) copying its kD*kH*kW
//   taps (one division per pair: CPU adapters have no vector integer division), 256 per
//   workgroup, grid linearised.
// pack_f16: out word ((k*KK + t)*O + o)*8 + j = pack2x16float(w[o, 16k + 2j, t],
//   w[o, 16k + 2j + 1, t]) (0 for channels >= C), k < ceil(C/16): the layout
//   conv_coop_direct.wgsl stages with WPACK = 1 (a tap's rows of one 16-channel chunk are
//   contiguous, 16 halves per row). One invocation per word, 256 per workgroup, grid
//   linearised.
// phase_rows: out[(o*KK + t)*C + c] = w[c, o, t] for a transposed-convolution weight
//   (C_in = C, C_out = O, taps t < KK): the weight of its up-convolution as a 1x1
//   convolution with O*KK output rows (conv_coop_direct.wgsl, phase rows). One invocation
//   per element, 256 per workgroup, grid linearised.
// Bindings: 0 params, 1 w (read, f32), 2 out (read_write, u32 words: f32 bits for
//   flip_transpose and phase_rows, f16 pairs for pack_f16).

struct Params {
    o: u32, c: u32, kk: u32, pad0: u32,
    k_d: u32, k_h: u32, k_w: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn flip_transpose(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= P.o * P.c) {
        return;
    }
    let c = i / P.o;
    let o = i - c * P.o;
    let src = (o * P.c + c) * P.kk + P.kk - 1u;
    for (var t = 0u; t < P.kk; t++) {
        out[i * P.kk + t] = bitcast<u32>(w[src - t]);
    }
}

@compute @workgroup_size(256)
fn pack_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    let chunks = (P.c + 15u) / 16u;
    if (i >= chunks * P.kk * P.o * 8u) {
        return;
    }
    let o = (i / 8u) % P.o;
    let t = (i / (8u * P.o)) % P.kk;
    let c = (i / (8u * P.o * P.kk)) * 16u + 2u * (i % 8u);
    var v = vec2<f32>(0.0, 0.0);
    if (c < P.c) {
        v.x = w[(o * P.c + c) * P.kk + t];
    }
    if (c + 1u < P.c) {
        v.y = w[(o * P.c + c + 1u) * P.kk + t];
    }
    out[i] = pack2x16float(v);
}

@compute @workgroup_size(256)
fn phase_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= P.o * P.c * P.kk) {
        return;
    }
    let c = i % P.c;
    let r = i / P.c;
    out[i] = bitcast<u32>(w[(c * P.o + r / P.kk) * P.kk + r % P.kk]);
}
