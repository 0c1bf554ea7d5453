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
// partials: one workgroup (64 invocations) per (plane, chunk), id = p*cpp + q.
//   Exact two-pass over the chunk (the second pass rereads it from cache):
//     shift = x[first of chunk]; cm = sum(x - shift)/cnt; M2 = sum(((x - shift) - cm)^2)
//   part[2*id] = shift + cm (chunk mean), part[2*id + 1] = M2 (centred sum of squares).
//   Each invocation sums a strided subset in f32; the 64 partial sums meet in workgroup
//   memory (one barrier per pass; every invocation adds the 64 values itself).
// combine: one workgroup per set k. Chan's merge of the chunk statistics, two passes:
//     mean = m0 + sum(cnt_i*(mean_i - m0))/m        (m0 = the set's first chunk mean)
//     var  = sum(M2_i + cnt_i*(mean_i - mean)^2)/m   (biased)
//   mean[k] = mean, invstd[k] = 1/sqrt(var + eps); with flags & 1 (batch norm training) also
//     rmean[k] = (1-momentum)*rmean[k] + momentum*mean
//     rvar[k]  = (1-momentum)*rvar[k]  + momentum*var*m/(m-1)   (unbiased; `unbias` = m/(m-1))
// Grid: partials planes*cpp workgroups, combine `sets` workgroups, linearised (x, y).
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
    sums_off: u32, pad0: u32, pad1: u32, pad2: u32,
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

fn total_a() -> f32 {
    var t = 0.0;
    for (var j = 0u; j < WG; j++) {
        t += red_a[j];
    }
    return t;
}

fn total_b() -> f32 {
    var t = 0.0;
    for (var j = 0u; j < WG; j++) {
        t += red_b[j];
    }
    return t;
}

@compute @workgroup_size(64)
fn partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let id = wid.x + wid.y * nwg.x;
    if (id >= P.planes * P.cpp) {
        return;
    }
    let p = id / P.cpp;
    let q = id - p * P.cpp;
    let start = q * P.chunk;
    let end = min(start + P.chunk, P.s);
    let base = p * P.s;
    let shift = f32(x[base + start]);
    var s1 = 0.0;
    for (var i = start + lid; i < end; i += WG) {
        s1 += f32(x[base + i]) - shift;
    }
    red_a[lid] = s1;
    workgroupBarrier();
    let cm = total_a() / f32(end - start);
    var s2 = 0.0;
    for (var i = start + lid; i < end; i += WG) {
        let d = (f32(x[base + i]) - shift) - cm;
        s2 = fma(d, d, s2);
    }
    red_b[lid] = s2;
    workgroupBarrier();
    if (lid == 0u) {
        part[2u * id] = shift + cm;
        part[2u * id + 1u] = total_b();
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
    let k = wid.x + wid.y * nwg.x;
    if (k >= P.sets) {
        return;
    }
    let per = P.pps * P.cpp;
    let m0 = part[2u * part_index(k, 0u)];
    var s1 = 0.0;
    for (var j = lid; j < per; j += WG) {
        s1 = fma(part_count(j), part[2u * part_index(k, j)] - m0, s1);
    }
    red_a[lid] = s1;
    workgroupBarrier();
    let mu = m0 + total_a() * P.inv_m;
    var s2 = 0.0;
    for (var j = lid; j < per; j += WG) {
        let i = part_index(k, j);
        let d = part[2u * i] - mu;
        s2 += part[2u * i + 1u] + part_count(j) * d * d;
    }
    red_b[lid] = s2;
    workgroupBarrier();
    if (lid == 0u) {
        let v = total_b() * P.inv_m;
        mean[k] = mu;
        invstd[k] = 1.0 / sqrt(v + P.eps);
        if ((P.flags & 1u) != 0u) {
            rmean[k] = (1.0 - P.momentum) * rmean[k] + P.momentum * mu;
            rvar[k] = (1.0 - P.momentum) * rvar[k] + P.momentum * v * P.unbias;
        }
    }
}
