// amp.wgsl: dynamic loss scaling of mixed precision, on the GPU (no readback per step).
//
// The loss scaler is a 4-value f32 state tensor [scale, 1/scale, good_steps, skipped_steps]. The
// backward starts from the loss gradient times `scale` (cast.wgsl cast_to, scaled), every
// parameter gradient is checked for Inf/NaN into a flag (finite_check), the optimiser divides
// by `scale` and skips the whole step when the flag is set (optim.wgsl), then update_scale
// adjusts the scale as PyTorch's GradScaler does: halve on overflow, double after `interval`
// clean steps.
//
//   clear_flag    flag[0] = 0 (one invocation; runs before the first finite_check of a step).
//   finite_check  flag[0] |= 1 if any of g0..g5 (lengths glen) holds an Inf or NaN (exponent
//                 bits all ones).
//   update_scale  one invocation: overflow (flag != 0): scale *= 0.5, good = 0, skipped += 1;
//                 else good += 1 and, when good reaches P.interval, scale *= 2 (at most 2^24),
//                 good = 0. Then 1/scale is stored.
// Thread mapping: finite_check one element per invocation, 256 per workgroup, grid linearised
// (i = (wid.x + wid.y * nwg.x) * 256 + lid) over the longest gradient; update_scale one
// workgroup of which invocation 0 works.
// Bindings: 0 params (uniform), 1..6 g0..g5 (read, f32; unused ones get a one-word dummy and
//           length 0), 7 flag (read_write, atomic u32 [1]), 8 scaler (read_write, f32 [4]).

struct Params {
    glen: array<vec4<u32>, 2>,
    interval: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> g0: array<f32>;
@group(0) @binding(2) var<storage, read> g1: array<f32>;
@group(0) @binding(3) var<storage, read> g2: array<f32>;
@group(0) @binding(4) var<storage, read> g3: array<f32>;
@group(0) @binding(5) var<storage, read> g4: array<f32>;
@group(0) @binding(6) var<storage, read> g5: array<f32>;
@group(0) @binding(7) var<storage, read_write> flag: array<atomic<u32>>;
@group(0) @binding(8) var<storage, read_write> scaler: array<f32>;

fn bad(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
}

@compute @workgroup_size(256)
fn finite_check(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    var b = false;
    if (i < P.glen[0].x) { b = b || bad(g0[i]); }
    if (i < P.glen[0].y) { b = b || bad(g1[i]); }
    if (i < P.glen[0].z) { b = b || bad(g2[i]); }
    if (i < P.glen[0].w) { b = b || bad(g3[i]); }
    if (i < P.glen[1].x) { b = b || bad(g4[i]); }
    if (i < P.glen[1].y) { b = b || bad(g5[i]); }
    if (b) {
        atomicOr(&flag[0], 1u);
    }
}

@compute @workgroup_size(1)
fn clear_flag() {
    atomicStore(&flag[0], 0u);
}

@compute @workgroup_size(256)
fn update_scale(@builtin(local_invocation_index) lid: u32) {
    if (lid != 0u) {
        return;
    }
    var scale = scaler[0];
    var good = scaler[2];
    if (atomicLoad(&flag[0]) != 0u) {
        scale = scale * 0.5;
        good = 0.0;
        scaler[3] = scaler[3] + 1.0;
    } else {
        good = good + 1.0;
        if (good >= f32(P.interval)) {
            scale = min(scale * 2.0, 16777216.0);
            good = 0.0;
        }
    }
    scaler[0] = scale;
    scaler[1] = 1.0 / scale;
    scaler[2] = good;
}
