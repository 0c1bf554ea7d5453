// cast.wgsl: dtype casts of mixed precision, optionally times the loss scale.
//
//   cast_to    y[i] = act(x[i] * (P.scaled != 0 ? scaler[0] : 1))   x f32 -> y act
//              (scaled: the loss gradient enters the f16 backward multiplied by the loss scale;
//              see amp.wgsl for the scaler state [scale, 1/scale, good_steps, skipped_steps])
//   cast_from  ya[i] = f32(xa[i])                                   xa act -> ya f32
// Thread mapping: one element per invocation, 256 per workgroup, grid linearised
// (i = (wid.x + wid.y * nwg.x) * 256 + lid).
// Bindings: 0 params (uniform), 1 x (read, f32), 2 y (read_write, act), 3 xa (read, act),
//           4 ya (read_write, f32), 5 scaler (read, f32 [4]). Each entry binds all of them
//           (the unused pair gets one-word dummies).

struct Params {
    len: u32,
    scaled: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;
@group(0) @binding(3) var<storage, read> xa: array<act>;
@group(0) @binding(4) var<storage, read_write> ya: array<f32>;
@group(0) @binding(5) var<storage, read> scaler: array<f32>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn cast_to(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        let s = select(1.0, scaler[0], P.scaled != 0u);
        y[i] = act(x[i] * s);
    }
}

@compute @workgroup_size(256)
fn cast_from(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        ya[i] = f32(xa[i]);
    }
}
