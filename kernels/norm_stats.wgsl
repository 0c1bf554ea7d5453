// norm_stats.wgsl: forward statistics of batch, instance and group norm (2D and 3D).
//
// Vocabulary (shared with norm_grad.wgsl and norm_apply.wgsl): x is N,C,S with S = D*H*W.
// A "plane" p = n*C + c is the S contiguous values of one (n, c). A "set" k is what one mean
// and variance are taken over; it is a union of `pps` planes:
//   batch norm:           set k = channel c,  planes k + j*C  (j = n)  -> set_a = 1,  set_b = C
//   group norm (G groups): set k = n*G + g,    planes k*Cg + j (Cg = C/G) -> set_a = Cg, set_b = 1
//   (instance norm is group norm with G = C.)
// plane(k, j) = k*set_a + j*set_b; m = pps*S values per set.
// Planes are cut into `cpp` chunks of `chunk` values (the last one shorter).
//
// Lanes: a work item (a (plane, chunk) of partials, a set of combine) is summed by L lanes,
//   L = 2^item_lanes (partials) or 2^set_lanes (combine), 1 <= L <= 64; a workgroup of 64
//   invocations takes 64/L consecutive items (lane = lid % L). The host picks L from the
//   item's length (about 16 values per lane), so small planes (deep U-Net levels) share a
//   workgroup instead of leaving 60 of 64 invocations idle behind a barrier each
//   (`lanes_of`, precision/lanes.wgsl).
// partials: L lanes per (plane, chunk), id = p*cpp + q.
//   Exact two-pass over the chunk (the second pass rereads it from cache):
//     shift = x[first of chunk]; cm = sum(x - shift)/cnt; M2 = sum(((x - shift) - cm)^2)
//   part[2*id] = shift + cm (chunk mean), part[2*id + 1] = M2 (centred sum of squares).
//   Each lane sums a strided subset in f32; the item's L partial sums meet in workgroup
//   memory (one barrier per pass; every lane adds the L values itself, in lane order).
// combine: L lanes per set k. Chan's merge of the chunk statistics, two passes:
//     mean = m0 + sum(cnt_i*(mean_i - m0))/m        (m0 = the set's first chunk mean)
//     var  = sum(M2_i + cnt_i*(mean_i - mean)^2)/m   (biased)
//   mean[k] = mean, invstd[k] = 1/sqrt(var + eps); with flags & 1 (batch norm training) also
//     rmean[k] = (1-momentum)*rmean[k] + momentum*mean
//     rvar[k]  = (1-momentum)*rvar[k]  + momentum*var*m/(m-1)   (unbiased; `unbias` = m/(m-1))
// Grid: partials ceil(planes*cpp*L/64) workgroups, combine ceil(sets*L/64), linearised (x, y).
// Bindings: 0 params, 1 x (read), 2 part (read_write, 2 floats per (plane, chunk)),
//           3 mean (read_write, [sets]), 4 invstd (read_write, [sets]),
//           5 rmean (read_write, [C]; dummy unless flags & 1), 6 rvar (read_write, likewise).
//           x is an activation (`act`: f32, or f16 storage in mixed precision), widened to f32
//           on load; part, mean, invstd, rmean and rvar are f32 and every sum is in f32.

struct Params {
    s: u32, c: u32, planes: u32, chunk: u32,
    cpp: u32, sets: u32, pps: u32, flags: u32,
    set_a: u32, set_b: u32, set_q: u32, set_r: u32,
    eps: f32, momentum: f32, unbias: f32, inv_m: f32,
    sums_off: u32, pad0: u32, item_lanes: u32, set_lanes: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;
@group(0) @binding(3) var<storage, read_write> mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> invstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> rmean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rvar: array<f32>;

const WG: u32 = 64u;
var<workgroup> red_a: array<f32, 64>;
var<workgroup> red_b: array<f32, 64>;

// The item's sum of red_a (red_b) over its lanes' slots, in lane order.
fn total_a(gr: Lanes) -> f32 {
    var t = 0.0;
    for (var j = 0u; j < gr.count; j++) {
        t += red_a[gr.first + j];
    }
    return t;
}

fn total_b(gr: Lanes) -> f32 {
    var t = 0.0;
    for (var j = 0u; j < gr.count; j++) {
        t += red_b[gr.first + j];
    }
    return t;
}

@compute @workgroup_size(64)
fn partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let gr = lanes_of(wid.x + wid.y * nwg.x, lid, P.item_lanes, WG);
    let id = gr.item;
    let lane = gr.lane;
    let live = id < P.planes * P.cpp;
    // Dead items (past the last) read nothing and write nothing, but meet the barriers.
    let p = select(0u, id / P.cpp, live);
    let q = select(0u, id - p * P.cpp, live);
    let start = q * P.chunk;
    let end = select(start, min(start + P.chunk, P.s), live);
    let base = p * P.s;
    let shift = select(0.0, f32(x[base + start]), live);
    var s1 = 0.0;
    for (var i = start + lane; i < end; i += gr.count) {
        s1 += f32(x[base + i]) - shift;
    }
    red_a[lid] = s1;
    workgroupBarrier();
    let cm = total_a(gr) / f32(max(end - start, 1u));
    var s2 = 0.0;
    for (var i = start + lane; i < end; i += gr.count) {
        let d = (f32(x[base + i]) - shift) - cm;
        s2 = fma(d, d, s2);
    }
    red_b[lid] = s2;
    workgroupBarrier();
    if (live && lane == 0u) {
        part[2u * id] = shift + cm;
        part[2u * id + 1u] = total_b(gr);
    }
}

// Index of the j-th partial of set k (j < pps*cpp) and its value count.
fn part_index(k: u32, j: u32) -> u32 {
    let jp = j / P.cpp;
    let q = j - jp * P.cpp;
    return (k * P.set_a + jp * P.set_b) * P.cpp + q;
}

fn part_count(j: u32) -> f32 {
    let q = j % P.cpp;
    return f32(min(P.chunk, P.s - q * P.chunk));
}

@compute @workgroup_size(64)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let gr = lanes_of(wid.x + wid.y * nwg.x, lid, P.set_lanes, WG);
    let k = gr.item;
    let lane = gr.lane;
    let live = k < P.sets;
    let per = select(0u, P.pps * P.cpp, live);
    let m0 = select(0.0, part[2u * part_index(k, 0u)], live);
    var s1 = 0.0;
    for (var j = lane; j < per; j += gr.count) {
        s1 = fma(part_count(j), part[2u * part_index(k, j)] - m0, s1);
    }
    red_a[lid] = s1;
    workgroupBarrier();
    let mu = m0 + total_a(gr) * P.inv_m;
    var s2 = 0.0;
    for (var j = lane; j < per; j += gr.count) {
        let i = part_index(k, j);
        let d = part[2u * i] - mu;
        s2 += part[2u * i + 1u] + part_count(j) * d * d;
    }
    red_b[lid] = s2;
    workgroupBarrier();
    if (live && lane == 0u) {
        let v = total_b(gr) * P.inv_m;
        mean[k] = mu;
        invstd[k] = 1.0 / sqrt(v + P.eps);
        if ((P.flags & 1u) != 0u) {
            rmean[k] = (1.0 - P.momentum) * rmean[k] + P.momentum * mu;
            rvar[k] = (1.0 - P.momentum) * rvar[k] + P.momentum * v * P.unbias;
        }
    }
}
