// reduce.wgsl: sums used by several ops.
//
// sum_splits:  out[i] = sum_{s < splits} part[s*len + i]  (+ out[i] when flags & 1)
//              Thread mapping: one invocation per i, 256 per workgroup, grid linearised.
// channel_sum: out[c] = sum_{n, sp} x[(n*C + c)*S + sp]  (+ out[c] when flags & 1)
//              (the bias gradient). One workgroup of 256 per channel: thread t sums
//              sp = t, t + 256, .. of every plane n in turn, in f32, then a tree reduction in
//              workgroup memory (8 barriers, once per channel).
// Bindings: 0 params, 1 src (read, `act`: channel_sum reads an activation gradient dy, f16 in
//           mixed precision; sum_splits is given f32 partial sums, so it always runs in the f32
//           module, where act = f32), 2 out (read_write, f32: bias or weight gradients).
// Loads widen to f32; every sum accumulates in f32.

struct Params {
    len: u32,     // sum_splits: elements per split; channel_sum: S (spatial size)
    splits: u32,  // sum_splits: number of splits; channel_sum: N (batch)
    c: u32,       // channel_sum: channels
    flags: u32,   // bit 0: accumulate into out
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<act>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn sum_splits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= P.len) {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < P.splits; s++) {
        acc += f32(src[s * P.len + i]);
    }
    if ((P.flags & 1u) != 0u) {
        acc += out[i];
    }
    out[i] = acc;
}

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn channel_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let c = wid.x + wid.y * nwg.x;
    if (c >= P.c) {
        return;
    }
    // Plane by plane (no division per element: CPU adapters have no vector integer division).
    var acc = 0.0;
    for (var n = 0u; n < P.splits; n++) {
        let base = (n * P.c + c) * P.len;
        for (var s = lid; s < P.len; s += 256u) {
            acc += f32(src[base + s]);
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var r = partial[0];
        if ((P.flags & 1u) != 0u) {
            r += out[c];
        }
        out[c] = r;
    }
}
