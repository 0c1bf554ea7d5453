// reduce.wgsl: sums used by several ops.
//
// sum_splits:  out[i] = sum_{s < splits} part[s*len + i]  (+ out[i] when flags & 1)
//              Thread mapping: one invocation per i, 256 per workgroup, grid linearised.
// channel_sum: out[c] = sum_{n, sp} x[(n*C + c)*S + sp]  (+ out[c] when flags & 1)
//              (the bias gradient). L = 2^lanes lanes per channel (1 <= L <= 256, the host
//              picks about 16 values per lane), 256/L channels per workgroup: lane t sums
//              sp = t, t + L, .. of every plane n in turn, in f32, then a tree reduction in
//              workgroup memory (1 + log2 L barriers). Grid: ceil(C*L/256), linearised.
// Bindings: 0 params, 1 src (read, `act`: channel_sum reads an activation gradient dy, f16 in
//           mixed precision; sum_splits is given f32 partial sums, so it always runs in the f32
//           module, where act = f32), 2 out (read_write, f32: bias or weight gradients).
// Loads widen to f32; every sum accumulates in f32.

struct Params {
    len: u32,     // sum_splits: elements per split; channel_sum: S (spatial size)
    splits: u32,  // sum_splits: number of splits; channel_sum: N (batch)
    c: u32,       // channel_sum: channels
    flags: u32,   // bit 0: accumulate into out
    lanes: u32,   // channel_sum: log2 of the lanes per channel
    pad0: u32, pad1: u32, pad2: u32,
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
    let ln = lanes_of(wid.x + wid.y * nwg.x, lid, P.lanes, 256u);
    let c = ln.item;
    let lane = ln.lane;
    let lanes = ln.count;
    // Plane by plane (no division per element: CPU adapters have no vector integer division).
    // Channels past the last sum nothing but meet the barriers.
    let planes = select(0u, P.splits, c < P.c);
    var acc = 0.0;
    for (var n = 0u; n < planes; n++) {
        let base = (n * P.c + c) * P.len;
        for (var s = lane; s < P.len; s += lanes) {
            acc += f32(src[base + s]);
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = lanes >> 1u; s > 0u; s >>= 1u) {
        if (lane < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    if (lane == 0u && c < P.c) {
        var r = partial[lid];
        if ((P.flags & 1u) != 0u) {
            r += out[c];
        }
        out[c] = r;
    }
}
