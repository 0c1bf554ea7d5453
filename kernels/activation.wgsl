// activation.wgsl: elementwise activations and their backwards, any shape (flat).
//
//   relu_fwd     y = x > 0 ? x : 0
//   relu_bwd     dx = x > 0 ? dy : 0            (a = x or y: y > 0 exactly when x > 0; grad 0 at 0)
//   leaky_fwd    y = x > 0 ? x : alpha*x        (alpha = slope)
//   leaky_bwd    dx = x > 0 ? dy : alpha*dy     (a = x; grad at 0 is the slope)
//   sigmoid_fwd  y = 1 / (1 + exp(-x))
//   sigmoid_bwd  dx = dy * y * (1 - y)          (a = y)
//   dropout      y = keep(seed, i) ? a * alpha : 0, alpha = 1/(1-p). The mask is a counter-based
//                hash of (seed, element index i): keep iff (hash(seed, i) >> 8) >= thr with
//                thr = round(p * 2^24), hash(seed, i) = pcg(pcg(i) ^ pcg(seed)) (PCG-RXS-M-XS
//                output hash). Nothing is stored: the backward is the same entry applied to dy
//                with the same seed. `reference::activation::dropout_hash` is the same function.
// Thread mapping: one element per invocation, 256 per workgroup, grid linearised
// (id = wid.x + wid.y * nwg.x).
// Bindings: 0 params (uniform), 1 a (read: x, or y for sigmoid_bwd), 2 b (read: dy for the
//           backwards; the forwards bind a again), 3 out (read_write: y or dx).
//           a, b and out are activations (`act`: f32, or f16 storage in mixed precision); every
//           value is widened to f32 on load, computed in f32 and narrowed on store.

struct Params {
    len: u32,
    seed: u32,
    thr: u32,
    alpha: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<act>;
@group(0) @binding(2) var<storage, read> b: array<act>;
@group(0) @binding(3) var<storage, read_write> out: array<act>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn relu_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        let x = f32(a[i]);
        out[i] = act(select(0.0, x, x > 0.0));
    }
}

@compute @workgroup_size(256)
fn relu_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        out[i] = act(select(0.0, f32(b[i]), f32(a[i]) > 0.0));
    }
}

@compute @workgroup_size(256)
fn leaky_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        let x = f32(a[i]);
        out[i] = act(select(P.alpha * x, x, x > 0.0));
    }
}

@compute @workgroup_size(256)
fn leaky_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        let g = f32(b[i]);
        out[i] = act(select(P.alpha * g, g, f32(a[i]) > 0.0));
    }
}

@compute @workgroup_size(256)
fn sigmoid_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        out[i] = act(1.0 / (1.0 + exp(-f32(a[i]))));
    }
}

@compute @workgroup_size(256)
fn sigmoid_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        let y = f32(a[i]);
        out[i] = act(f32(b[i]) * y * (1.0 - y));
    }
}

fn pcg(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        let h = pcg(pcg(i) ^ pcg(P.seed));
        out[i] = act(select(0.0, f32(a[i]) * P.alpha, (h >> 8u) >= P.thr));
    }
}
