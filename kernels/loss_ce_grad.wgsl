// loss_ce_grad.wgsl: gradient of the softmax cross-entropy (loss_ce.wgsl) w.r.t. the logits,
// for an upstream gradient of 1:
//   grad[n, c, s] = (exp(z_c - lse) - [c == l]) * w * inv        (0 where the pixel is not valid)
// with lse from loss_ce::pixels, w the pixel weight and inv = scale/norm = part[aux_off] from
// loss_ce::combine (the same Params block and flags as loss_ce.wgsl).
// Thread mapping: one workgroup (64 invocations) per (n, chunk of `chunk` pixels); invocation
// lid handles pixels lid, lid + 64, ... and loops over the classes. No barriers.
// Bindings: 0 params, 1 logits (read), 2 labels (read, i32), 3 class_w (read), 4 wmap (read),
//           5 lse (read), 6 part (read; inv at aux_off), 7 grad (read_write, N*C*S).
//           logits and grad are activations / activation gradients (`act`: f32, or f16 storage
//           in mixed precision): computed in f32, narrowed on store; the rest is f32.

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
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> part: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad: array<act>;

const WG: u32 = 64u;

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
fn grad_logits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let id = wid.x + wid.y * nwg.x;
    if (id >= P.n * P.cpp) {
        return;
    }
    let n = id / P.cpp;
    let q = id - n * P.cpp;
    let start = q * P.chunk;
    let end = min(start + P.chunk, P.s);
    let inv = part[P.aux_off];
    for (var s = start + lid; s < end; s += WG) {
        let zb = n * P.c * P.s + s;
        let pix = n * P.s + s;
        let lab = labels[pix];
        if (!is_valid(lab)) {
            for (var c = 0u; c < P.c; c++) {
                grad[zb + c * P.s] = act(0.0);
            }
            continue;
        }
        let f = pixel_weight(u32(lab), pix) * inv;
        let l = lse[pix];
        for (var c = 0u; c < P.c; c++) {
            var p = exp(f32(logits[zb + c * P.s]) - l);
            if (i32(c) == lab) {
                p -= 1.0;
            }
            grad[zb + c * P.s] = act(p * f);
        }
    }
}
