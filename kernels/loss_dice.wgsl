// loss_dice.wgsl: soft Dice loss over channels (axis 1), its per-class values and its gradient.
//
// logits N,C,S (S = D*H*W), labels N,1,S (i32). p = softmax(logits) over C, t = onehot(label).
// Pixels whose label is outside 0..C, or equals `ignore` with flags & 4, are left out of every
// sum and get gradient 0. Terms ("batch": one per class c, sums over n and space; flags & 1
// "sample": one per (n, c), sums over space, term index n*C + c):
//   I = sum p*t, Pp = sum p, T = sum t,  dice = (2I + smooth)/(Pp + T + smooth)
//   loss = scale * (1 - mean over the counted terms of dice); with flags & 128 class 0's terms
//   are not counted (no loss, no gradient; their dice is still written), inv_terms = 1/counted
// Gradient (upstream 1): with U = Pp + T + smooth, V = 2I + smooth, per term
//   dloss/dp = a*t + b,  a = -2*scale/(counted*U),  b = scale*V/(counted*U^2)  (0 uncounted)
//   dloss/dz_c = p_c * (g_c - sum_k p_k g_k),  g_k = dloss/dp_k at this pixel.
// Entry points (grids linearised over x and y; 64 invocations per workgroup):
//   lse       one workgroup per (n, chunk of pixels): lse[n*S + s] = logsumexp_c z (max-shifted).
//   partials  one workgroup per (c, n, chunk), id = (c*N + n)*cpp + q: part[3*id ..] = (I, Pp, T)
//             of that chunk; invocation lid handles pixels lid, lid + 64, ...; one barrier.
//   combine   one workgroup per term: sums its partials; dice[term] = V/U;
//             part[coef_off + 2*term ..] = (a, b).
//   total     one workgroup: loss[0] = scale*(1 - sum(counted dice)/counted) (+ loss[0] with flags & 32).
//   grad      one workgroup per (n, chunk of pixels): grad = dloss/dz (+ grad with flags & 64).
// Bindings: 0 params, 1 logits (read), 2 labels (read, i32), 3 lse (read_write, N*S),
//           4 part (read_write: 3 per (c, n, chunk), then 2 per term at coef_off),
//           5 dice (read_write, [terms]), 6 loss (read_write, 1), 7 grad (read_write, N*C*S).
//           logits and grad are activations / activation gradients (`act`: f32, or f16 storage
//           in mixed precision): loads widen to f32, stores narrow; lse, part, dice and loss are
//           f32 and every sum is in f32.

struct Params {
    n: u32, c: u32, s: u32, chunk: u32,
    cpp: u32, flags: u32, ignore: i32, coef_off: u32,
    smoothing: f32, scale: f32, inv_terms: f32, terms: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> logits: array<act>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;
@group(0) @binding(5) var<storage, read_write> dice: array<f32>;
@group(0) @binding(6) var<storage, read_write> loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad: array<act>;

const WG: u32 = 64u;
var<workgroup> red_a: array<f32, 64>;
var<workgroup> red_b: array<f32, 64>;
var<workgroup> red_c: array<f32, 64>;

fn is_valid(l: i32) -> bool {
    return l >= 0 && l < i32(P.c) && !((P.flags & 4u) != 0u && l == P.ignore);
}

// Whether term t counts in the loss (flags & 128: class 0's terms do not).
fn counted(t: u32) -> bool {
    if ((P.flags & 128u) == 0u) {
        return true;
    }
    var c = t;
    if ((P.flags & 1u) != 0u) {
        c = t % P.c;
    }
    return c != 0u;
}

fn term_of(n: u32, c: u32) -> u32 {
    if ((P.flags & 1u) != 0u) {
        return n * P.c + c;
    }
    return c;
}

@compute @workgroup_size(64)
fn lse_pixels(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let id = wid.x + wid.y * nwg.x;
    if (id >= P.n * P.cpp) {
        return;
    }
    let n = id / P.cpp;
    let q = id - n * P.cpp;
    let end = min(q * P.chunk + P.chunk, P.s);
    for (var s = q * P.chunk + lid; s < end; s += WG) {
        let zb = n * P.c * P.s + s;
        var mx = f32(logits[zb]);
        for (var c = 1u; c < P.c; c++) {
            mx = max(mx, f32(logits[zb + c * P.s]));
        }
        var se = 0.0;
        for (var c = 0u; c < P.c; c++) {
            se += exp(f32(logits[zb + c * P.s]) - mx);
        }
        lse[n * P.s + s] = mx + log(se);
    }
}

@compute @workgroup_size(64)
fn partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let id = wid.x + wid.y * nwg.x;
    let per_c = P.n * P.cpp;
    if (id >= P.c * per_c) {
        return;
    }
    let c = id / per_c;
    let rest = id - c * per_c;
    let n = rest / P.cpp;
    let q = rest - n * P.cpp;
    let end = min(q * P.chunk + P.chunk, P.s);
    var si = 0.0;
    var sp = 0.0;
    var st = 0.0;
    for (var s = q * P.chunk + lid; s < end; s += WG) {
        let pix = n * P.s + s;
        let lab = labels[pix];
        if (is_valid(lab)) {
            let p = exp(f32(logits[(n * P.c + c) * P.s + s]) - lse[pix]);
            sp += p;
            if (u32(lab) == c) {
                si += p;
                st += 1.0;
            }
        }
    }
    red_a[lid] = si;
    red_b[lid] = sp;
    red_c[lid] = st;
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
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let t = wid.x + wid.y * nwg.x;
    if (t >= P.terms) {
        return;
    }
    var first = 0u;
    var count = 0u;
    if ((P.flags & 1u) != 0u) {
        let n = t / P.c;
        let c = t - n * P.c;
        first = (c * P.n + n) * P.cpp;
        count = P.cpp;
    } else {
        first = t * P.n * P.cpp;
        count = P.n * P.cpp;
    }
    var si = 0.0;
    var sp = 0.0;
    var st = 0.0;
    for (var j = lid; j < count; j += WG) {
        let i = 3u * (first + j);
        si += part[i];
        sp += part[i + 1u];
        st += part[i + 2u];
    }
    red_a[lid] = si;
    red_b[lid] = sp;
    red_c[lid] = st;
    workgroupBarrier();
    if (lid == 0u) {
        var ti = 0.0;
        var tp = 0.0;
        var tt = 0.0;
        for (var j = 0u; j < WG; j++) {
            ti += red_a[j];
            tp += red_b[j];
            tt += red_c[j];
        }
        let u = tp + tt + P.smoothing;
        let v = 2.0 * ti + P.smoothing;
        dice[t] = v / u;
        var f = P.scale * P.inv_terms / u;
        if (!counted(t)) {
            f = 0.0;
        }
        part[P.coef_off + 2u * t] = -2.0 * f;
        part[P.coef_off + 2u * t + 1u] = f * v / u;
    }
}

@compute @workgroup_size(64)
fn total(@builtin(local_invocation_index) lid: u32) {
    var sd = 0.0;
    for (var j = lid; j < P.terms; j += WG) {
        if (counted(j)) {
            sd += dice[j];
        }
    }
    red_a[lid] = sd;
    workgroupBarrier();
    if (lid == 0u) {
        var t = 0.0;
        for (var j = 0u; j < WG; j++) {
            t += red_a[j];
        }
        var l = P.scale * (1.0 - t * P.inv_terms);
        if ((P.flags & 32u) != 0u) {
            l += loss[0];
        }
        loss[0] = l;
    }
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
    let end = min(q * P.chunk + P.chunk, P.s);
    let acc = (P.flags & 64u) != 0u;
    for (var s = q * P.chunk + lid; s < end; s += WG) {
        let zb = n * P.c * P.s + s;
        let pix = n * P.s + s;
        let lab = labels[pix];
        if (!is_valid(lab)) {
            if (!acc) {
                for (var c = 0u; c < P.c; c++) {
                    grad[zb + c * P.s] = act(0.0);
                }
            }
            continue;
        }
        let l = lse[pix];
        var dp = 0.0;
        for (var c = 0u; c < P.c; c++) {
            let t = term_of(n, c);
            var gk = part[P.coef_off + 2u * t + 1u];
            if (u32(lab) == c) {
                gk += part[P.coef_off + 2u * t];
            }
            dp = fma(exp(f32(logits[zb + c * P.s]) - l), gk, dp);
        }
        for (var c = 0u; c < P.c; c++) {
            let t = term_of(n, c);
            var gk = part[P.coef_off + 2u * t + 1u];
            if (u32(lab) == c) {
                gk += part[P.coef_off + 2u * t];
            }
            var v = exp(f32(logits[zb + c * P.s]) - l) * (gk - dp);
            if (acc) {
                v += f32(grad[zb + c * P.s]);
            }
            grad[zb + c * P.s] = act(v);
        }
    }
}
