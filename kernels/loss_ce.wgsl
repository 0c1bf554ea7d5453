// loss_ce.wgsl: softmax cross-entropy over channels (axis 1), per-pixel terms and the scalar loss.
//
// logits N,C,S (S = D*H*W), labels N,1,S (i32). For pixel (n, s) with label l:
//   lse = max_c z_c + log(sum_c exp(z_c - max)),  nll = lse - z_l
//   valid = 0 <= l < C and not (flags & 4 and l == ignore)
//   w = (flags & 1 ? class_w[l] : 1) * (flags & 2 ? wmap[n*S + s] : 1)   (0 where not valid)
// pixels: lse[n*S + s] = lse (for loss_ce_grad.wgsl and the Dice kernels); with flags & 16
//   nll_map[n*S + s] = nll (0 where not valid); per workgroup partial sums
//   part[3*id ..] = (sum w*nll, sum w, number of valid pixels).
//   One workgroup (64 invocations) per (n, chunk of `chunk` pixels), id = n*cpp + q;
//   invocation lid handles pixels lid, lid + 64, ... (consecutive invocations read
//   consecutive addresses of every class plane); one barrier, then invocation 0 adds up.
// combine: one workgroup; norm = flags & 8 ("weighted_mean") ? sum w : number of valid pixels;
//   loss[0] = scale * sum(w*nll) / norm and part[aux_off] = scale / norm (both 0 if norm = 0).
// Bindings: 0 params, 1 logits (read), 2 labels (read, i32), 3 class_w (read, [C]; flags & 1),
//           4 wmap (read, N*S; flags & 2), 5 lse (read_write, N*S), 6 nll_map (read_write, N*S;
//           flags & 16), 7 part (read_write, 3*nparts + 1), 8 loss (read_write, 1).
//           logits are activations (`act`: f32, or f16 storage in mixed precision), widened to
//           f32 on load; lse, nll_map, part and loss stay f32 and every sum is in f32.

struct Params {
    n: u32, c: u32, s: u32, chunk: u32,
    cpp: u32, flags: u32, ignore: i32, nparts: u32,
    scale: f32, aux_off: u32, pad0: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> logits: array<act>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> class_w: array<f32>;
@group(0) @binding(4) var<storage, read> wmap: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<storage, read_write> nll_map: array<f32>;
@group(0) @binding(7) var<storage, read_write> part: array<f32>;
@group(0) @binding(8) var<storage, read_write> loss: array<f32>;

const WG: u32 = 64u;
var<workgroup> red_a: array<f32, 64>;
var<workgroup> red_b: array<f32, 64>;
var<workgroup> red_c: array<f32, 64>;

fn is_valid(l: i32) -> bool {
    return l >= 0 && l < i32(P.c) && !((P.flags & 4u) != 0u && l == P.ignore);
}

fn pixel_weight(l: u32, pix: u32) -> f32 {
    var w = 1.0;
    if ((P.flags & 1u) != 0u) {
        w = class_w[l];
    }
    if ((P.flags & 2u) != 0u) {
        w *= wmap[pix];
    }
    return w;
}

@compute @workgroup_size(64)
fn pixels(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let id = wid.x + wid.y * nwg.x;
    if (id >= P.n * P.cpp) {
        return;
    }
    let n = id / P.cpp;
    let q = id - n * P.cpp;
    let start = q * P.chunk;
    let end = min(start + P.chunk, P.s);
    var swn = 0.0;
    var sw = 0.0;
    var cnt = 0.0;
    for (var s = start + lid; s < end; s += WG) {
        let zb = n * P.c * P.s + s;
        var mx = f32(logits[zb]);
        for (var c = 1u; c < P.c; c++) {
            mx = max(mx, f32(logits[zb + c * P.s]));
        }
        var se = 0.0;
        for (var c = 0u; c < P.c; c++) {
            se += exp(f32(logits[zb + c * P.s]) - mx);
        }
        let l = mx + log(se);
        let pix = n * P.s + s;
        lse[pix] = l;
        let lab = labels[pix];
        var nll = 0.0;
        if (is_valid(lab)) {
            nll = l - f32(logits[zb + u32(lab) * P.s]);
            let w = pixel_weight(u32(lab), pix);
            swn = fma(w, nll, swn);
            sw += w;
            cnt += 1.0;
        }
        if ((P.flags & 16u) != 0u) {
            nll_map[pix] = nll;
        }
    }
    red_a[lid] = swn;
    red_b[lid] = sw;
    red_c[lid] = cnt;
    workgroupBarrier();
    if (lid == 0u) {
        var ta = 0.0;
        var tb = 0.0;
        var tc = 0.0;
        for (var j = 0u; j < WG; j++) {
            ta += red_a[j];
            tb += red_b[j];
            tc += red_c[j];
        }
        part[3u * id] = ta;
        part[3u * id + 1u] = tb;
        part[3u * id + 2u] = tc;
    }
}

@compute @workgroup_size(64)
fn combine(@builtin(local_invocation_index) lid: u32) {
    var ta = 0.0;
    var tb = 0.0;
    var tc = 0.0;
    for (var j = lid; j < P.nparts; j += WG) {
        ta += part[3u * j];
        tb += part[3u * j + 1u];
        tc += part[3u * j + 2u];
    }
    red_a[lid] = ta;
    red_b[lid] = tb;
    red_c[lid] = tc;
    workgroupBarrier();
    if (lid == 0u) {
        var swn = 0.0;
        var sw = 0.0;
        var cnt = 0.0;
        for (var j = 0u; j < WG; j++) {
            swn += red_a[j];
            sw += red_b[j];
            cnt += red_c[j];
        }
        var norm = cnt;
        if ((P.flags & 8u) != 0u) {
            norm = sw;
        }
        var l = 0.0;
        var inv = 0.0;
        if (norm != 0.0) {
            inv = P.scale / norm;
            l = swn * inv;
        }
        loss[0] = l;
        part[P.aux_off] = inv;
    }
}
