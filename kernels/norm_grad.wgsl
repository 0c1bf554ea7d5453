// norm_grad.wgsl: backward reductions of batch, instance and group norm (2D and 3D).
//
// Planes, sets, chunks and the Params block are as in norm_stats.wgsl. With g = dL/dy,
// xhat = (x - mean[k])*invstd[k] and h = g*gamma[c]:
//   dx      = invstd/m * (m*h - sum_set(h) - xhat*sum_set(h*xhat))    (norm_apply.wgsl)
//   dgamma_c = sum_{n, space} g*xhat,   dbeta_c = sum_{n, space} g
// Lanes (as in norm_stats.wgsl): L = 2^item_lanes lanes per (plane, chunk) in partials,
//   2^set_lanes per output item in combine; 64/L items per workgroup.
// partials: L lanes per (plane, chunk), id = p*cpp + q:
//   part[2*id] = sum(g), part[2*id + 1] = invstd * sum(g*(x - mean)) over the chunk.
//   With flags & 2 the invstd binding holds a variance (batch norm eval: running_var) and
//   invstd = 1/sqrt(v + eps) is formed here.
//   Fused ReLU (flags & 8): g is read as mask > 0 ? g : 0 (as relu_bwd of activation.wgsl),
//   mask the fused forward's output (norm_apply.wgsl's normalize with flags & 8).
// combine: L lanes per output item i in [0, sets + C):
//   i < sets:  the set sums  part[sums_off + 2i] = sum_set(h), part[sums_off + 2i + 1] =
//              sum_set(h*xhat), i.e. the plane partials of the set weighted by gamma[c]
//              (read from the copy of gamma at part[gamma_off + c], made by tensor.wgsl's
//              copy before partials: 8 storage buffers, wgpu's default limit);
//   i >= sets: channel c = i - sets: dbeta[c] = sum over n and chunks of part[2*id],
//              dgamma[c] = the same of part[2*id + 1].
//   The L lanes sum strided subsets of the partials in f32, one barrier.
// Grid: partials ceil(planes*cpp*L/64) workgroups, combine ceil((sets + C)*L/64),
//   linearised (x, y).
// Bindings: 0 params, 1 x (read), 2 g (read), 3 mean (read, [sets]),
//           4 invstd (read, [sets]; variance when flags & 2),
//           5 part (read_write: 2 floats per (plane, chunk), then 2 per set at sums_off, then
//             gamma [C] at gamma_off), 6 dgamma (read_write, [C]), 7 dbeta (read_write, [C]),
//           8 mask (read; flags & 8).
//           x, g and mask are activations / activation gradients (`act`: f32, or f16 storage in mixed
//           precision), widened to f32 on load; everything else is f32, every sum is in f32.

struct Params {
    s: u32, c: u32, planes: u32, chunk: u32,
    cpp: u32, sets: u32, pps: u32, flags: u32,
    set_a: u32, set_b: u32, set_q: u32, set_r: u32,
    eps: f32, momentum: f32, unbias: f32, inv_m: f32,
    sums_off: u32, gamma_off: u32, item_lanes: u32, set_lanes: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> g: array<act>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> invstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> part: array<f32>;
@group(0) @binding(6) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(7) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(8) var<storage, read> mask: array<act>;

const WG: u32 = 64u;
var<workgroup> red_a: array<f32, 64>;
var<workgroup> red_b: array<f32, 64>;

// The gradient at i, through the fused ReLU's mask with flags & 8.
fn grad_at(i: u32) -> f32 {
    let gv = f32(g[i]);
    if ((P.flags & 8u) != 0u) {
        return select(0.0, gv, f32(mask[i]) > 0.0);
    }
    return gv;
}

fn set_invstd(k: u32) -> f32 {
    let v = invstd[k];
    if ((P.flags & 2u) != 0u) {
        return 1.0 / sqrt(v + P.eps);
    }
    return v;
}

// The item's two totals (lane order) into part[at], part[at + 1].
fn store_totals(gr: Lanes, at: u32) {
    var ta = 0.0;
    var tb = 0.0;
    for (var j = 0u; j < gr.count; j++) {
        ta += red_a[gr.first + j];
        tb += red_b[gr.first + j];
    }
    part[at] = ta;
    part[at + 1u] = tb;
}

@compute @workgroup_size(64)
fn partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let gr = lanes_of(wid.x + wid.y * nwg.x, lid, P.item_lanes, WG);
    let id = gr.item;
    let lane = gr.lane;
    let live = id < P.planes * P.cpp;
    // Dead items (past the last) read nothing and write nothing, but meet the barrier.
    let p = select(0u, id / P.cpp, live);
    let q = select(0u, id - p * P.cpp, live);
    let start = q * P.chunk;
    let end = select(start, min(start + P.chunk, P.s), live);
    let base = p * P.s;
    let k = (p / P.set_q) % P.set_r;
    let mu = select(0.0, mean[k], live);
    var sg = 0.0;
    var sgx = 0.0;
    for (var i = start + lane; i < end; i += gr.count) {
        let gv = grad_at(base + i);
        sg += gv;
        sgx = fma(gv, f32(x[base + i]) - mu, sgx);
    }
    red_a[lid] = sg;
    red_b[lid] = select(0.0, sgx * set_invstd(k), live);
    workgroupBarrier();
    if (live && lane == 0u) {
        store_totals(gr, 2u * id);
    }
}

@compute @workgroup_size(64)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let gr = lanes_of(wid.x + wid.y * nwg.x, lid, P.set_lanes, WG);
    let i = gr.item;
    let lane = gr.lane;
    let live = i < P.sets + P.c;
    var sa = 0.0;
    var sb = 0.0;
    if (live && i < P.sets) {
        let per = P.pps * P.cpp;
        for (var j = lane; j < per; j += gr.count) {
            let jp = j / P.cpp;
            let plane = i * P.set_a + jp * P.set_b;
            let pi = plane * P.cpp + (j - jp * P.cpp);
            let gm = part[P.gamma_off + plane % P.c];
            sa = fma(gm, part[2u * pi], sa);
            sb = fma(gm, part[2u * pi + 1u], sb);
        }
    } else if (live) {
        let c = i - P.sets;
        let n_count = P.planes / P.c;
        let per = n_count * P.cpp;
        for (var j = lane; j < per; j += gr.count) {
            let n = j / P.cpp;
            let pi = (n * P.c + c) * P.cpp + (j - n * P.cpp);
            sa += part[2u * pi];
            sb += part[2u * pi + 1u];
        }
    }
    red_a[lid] = sa;
    red_b[lid] = sb;
    workgroupBarrier();
    if (live && lane == 0u) {
        var ta = 0.0;
        var tb = 0.0;
        for (var j = 0u; j < gr.count; j++) {
            ta += red_a[gr.first + j];
            tb += red_b[gr.first + j];
        }
        if (i < P.sets) {
            part[P.sums_off + 2u * i] = ta;
            part[P.sums_off + 2u * i + 1u] = tb;
        } else {
            dbeta[i - P.sets] = ta;
            dgamma[i - P.sets] = tb;
        }
    }
}
