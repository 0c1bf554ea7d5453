// norm_apply.wgsl: elementwise passes of batch, instance and group norm (2D and 3D).
//
// Planes, sets, chunks and the Params block are as in norm_stats.wgsl; plane p = n*C + c
// belongs to set k = (p / set_q) % set_r and uses gamma[c], beta[c].
// normalize:  y = (x - mean[k]) * invstd[k] * gamma[c] + beta[c]
// grad_input: xhat = (x - mean[k])*invstd[k], with the set sums Sh = sum_set(g*gamma),
//             Shx = sum_set(g*gamma*xhat) from norm_grad.wgsl (aux[sums_off + 2k], +1):
//               dx = invstd * (gamma[c]*g - Sh/m - xhat*Shx/m)
//             with flags & 4 (batch norm eval, statistics are constants): dx = g*gamma[c]*invstd.
// With flags & 2 the invstd binding holds a variance and invstd = 1/sqrt(v + eps) (eval mode).
// Fused ReLU (flags & 8): normalize stores y = v > 0 ? v : 0 (v the value above, as relu_fwd of
//             activation.wgsl); grad_input reads g = mask > 0 ? g : 0 (as relu_bwd), mask the
//             fused forward's output.
// Thread mapping: L = 2^item_lanes lanes per (plane, chunk of `chunk` values), 64/L of them
// per workgroup (as norm_stats.wgsl's partials); lane l handles values l, l + L, ...
// Grid: ceil(planes*cpp*L/64) workgroups, linearised (x, y).
// Bindings: 0 params, 1 x (read), 2 g (read; normalize: unused), 3 mean (read), 4 invstd (read),
//           5 gamma (read), 6 aux (read: normalize: beta [C]; grad_input: the norm_grad part
//           buffer with the set sums at sums_off; unused with flags & 4), 7 mask (read; used by
//           grad_input with flags & 8), 8 out (read_write).
//           x, g, mask and out are activations / activation gradients (`act`: f32, or f16 storage in
//           mixed precision), widened to f32 on load and narrowed on store; mean, invstd,
//           gamma and aux are f32.

struct Params {
    s: u32, c: u32, planes: u32, chunk: u32,
    cpp: u32, sets: u32, pps: u32, flags: u32,
    set_a: u32, set_b: u32, set_q: u32, set_r: u32,
    eps: f32, momentum: f32, unbias: f32, inv_m: f32,
    sums_off: u32, pad0: u32, item_lanes: u32, set_lanes: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> g: array<act>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> invstd: array<f32>;
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read> aux: array<f32>;
@group(0) @binding(7) var<storage, read> mask: array<act>;
@group(0) @binding(8) var<storage, read_write> out: array<act>;

const WG: u32 = 64u;

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

@compute @workgroup_size(64)
fn normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let ln = lanes_of(wid.x + wid.y * nwg.x, lid, P.item_lanes, WG);
    let id = ln.item;
    let lane = ln.lane;
    let lanes = ln.count;
    if (id >= P.planes * P.cpp) {
        return;
    }
    let p = id / P.cpp;
    let q = id - p * P.cpp;
    let start = q * P.chunk;
    let end = min(start + P.chunk, P.s);
    let base = p * P.s;
    let c = p % P.c;
    let k = (p / P.set_q) % P.set_r;
    let mu = mean[k];
    let a = gamma[c] * set_invstd(k);
    let b = aux[c];
    if ((P.flags & 8u) != 0u) {
        for (var i = start + lane; i < end; i += lanes) {
            let v = fma(f32(x[base + i]) - mu, a, b);
            out[base + i] = store_act(v, true);
        }
        return;
    }
    for (var i = start + lane; i < end; i += lanes) {
        out[base + i] = act(fma(f32(x[base + i]) - mu, a, b));
    }
}

@compute @workgroup_size(64)
fn grad_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let ln = lanes_of(wid.x + wid.y * nwg.x, lid, P.item_lanes, WG);
    let id = ln.item;
    let lane = ln.lane;
    let lanes = ln.count;
    if (id >= P.planes * P.cpp) {
        return;
    }
    let p = id / P.cpp;
    let q = id - p * P.cpp;
    let start = q * P.chunk;
    let end = min(start + P.chunk, P.s);
    let base = p * P.s;
    let c = p % P.c;
    let k = (p / P.set_q) % P.set_r;
    let is = set_invstd(k);
    let gc = gamma[c] * is;
    if ((P.flags & 4u) != 0u) {
        for (var i = start + lane; i < end; i += lanes) {
            out[base + i] = act(grad_at(base + i) * gc);
        }
        return;
    }
    let mu = mean[k];
    let a = is * aux[P.sums_off + 2u * k] * P.inv_m;
    let b = is * is * aux[P.sums_off + 2u * k + 1u] * P.inv_m;
    for (var i = start + lane; i < end; i += lanes) {
        out[base + i] = act(fma(gc, grad_at(base + i), -fma(f32(x[base + i]) - mu, b, a)));
    }
}
