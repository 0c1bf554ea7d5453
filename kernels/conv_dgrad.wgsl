// conv_dgrad.wgsl: gradient of a convolution w.r.t. its input, and (with the bias flag) the
// forward of a transposed convolution, 2D and 3D, groups = 1.
//
// Formula: dx[n,c,i] = b[c] + sum_{o,k : i + p - k*dl = q*s, 0 <= q < out} dy[n,o,q] * w[o,c,k]
// per axis (i, k, q are (d, h, w) triples). A transposed convolution with ConvTranspose weight
// (C_in, C_out, k..) is exactly this with dy := its input, w read as (O = C_in, C = C_out),
// dx := its output.
//
// Stride-phase decomposition: the host launches one dispatch per phase r (r_a in 0..s_a per
// axis). A phase covers the positions i = r + s*j; for those only the taps k = k0 + t*ks
// (t < kc) satisfy the divisibility, and q = j + (r + p - k*dl) / s exactly. So no multiply is
// wasted on a tap that cannot contribute: the U-Net 2x2 stride-2 up-convolution becomes 4 (2D)
// or 8 (3D) dense GEMMs with K = C_in, one per output phase.
// GEMM view per phase: DX[c, col] = sum_{r'} A[c, r'] * B[r', col], col = (n, jd, jh, jw),
// r' = (o, td, th, tw); M = C, N = batch * jd*jh*jw, K = O * kc_d*kc_h*kc_w.
//
// Entry points (same bindings and params):
//   main_tiled  GPUs: 256 threads, 64 (c) x 128 (col) tile, K slices of 8 in workgroup memory,
//               4x8 register block per thread (rows ty + 16i, cols tx + 16j).
//   main_cpu    CPU adapters: no workgroup memory or barriers. A workgroup of 64 invocations
//               owns CB channels and 64/lpr phase rows (n, jd, jh) (lpr = lanes per row);
//               each invocation accumulates CB channels x PB adjacent positions (pipeline
//               constants). Weight reads are uniform.
//   main_direct Fallback: one output per invocation.
// Bindings: 0 params, 1 dy (read), 2 w (read), 3 bias (read, used when flags & 1), 4 dx (rw).

struct Params {
    n: u32, c: u32, o: u32, flags: u32,
    in_d: u32, in_h: u32, in_w: u32, kk: u32,
    out_d: u32, out_h: u32, out_w: u32, kv: u32,
    k_d: u32, k_h: u32, k_w: u32, lpr: u32,
    s_d: u32, s_h: u32, s_w: u32, pad1: u32,
    p_d: u32, p_h: u32, p_w: u32, pad2: u32,
    d_d: u32, d_h: u32, d_w: u32, pad3: u32,
    r_d: u32, r_h: u32, r_w: u32, pad4: u32,
    k0_d: u32, k0_h: u32, k0_w: u32, pad5: u32,
    ks_d: u32, ks_h: u32, ks_w: u32, pad6: u32,
    kc_d: u32, kc_h: u32, kc_w: u32, pad7: u32,
    j_d: u32, j_h: u32, j_w: u32, pad8: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

fn bias_of(c: u32) -> f32 {
    if ((P.flags & 1u) != 0u) {
        return bias[c];
    }
    return 0.0;
}

// Tap number t (of this phase's valid taps) -> (kd, kh, kw).
fn tap_of(t: u32) -> vec3<u32> {
    let tw = t % P.kc_w;
    let th = (t / P.kc_w) % P.kc_h;
    let td = t / (P.kc_w * P.kc_h);
    return vec3<u32>(P.k0_d + td * P.ks_d, P.k0_h + th * P.ks_h, P.k0_w + tw * P.ks_w);
}

// Offset from j to q on one axis for tap k: (r + p - k*dl) / s (exact).
fn delta(r: u32, p: u32, k: u32, dl: u32, s: u32) -> i32 {
    return (i32(r + p) - i32(k * dl)) / i32(s);
}

fn w_index(o: u32, c: u32, k: vec3<u32>) -> u32 {
    return ((o * P.c + c) * P.k_d + k.x) * P.k_h * P.k_w + k.y * P.k_w + k.z;
}

// dy[n, o, j + delta(k)] or 0 outside.
fn dy_at(n: u32, o: u32, j: vec3<u32>, k: vec3<u32>) -> f32 {
    let qd = i32(j.x) + delta(P.r_d, P.p_d, k.x, P.d_d, P.s_d);
    let qh = i32(j.y) + delta(P.r_h, P.p_h, k.y, P.d_h, P.s_h);
    let qw = i32(j.z) + delta(P.r_w, P.p_w, k.z, P.d_w, P.s_w);
    if (qd < 0 || qh < 0 || qw < 0 || qd >= i32(P.out_d) || qh >= i32(P.out_h) || qw >= i32(P.out_w)) {
        return 0.0;
    }
    return dy[(((n * P.o + o) * P.out_d + u32(qd)) * P.out_h + u32(qh)) * P.out_w + u32(qw)];
}

fn dx_index(n: u32, c: u32, j: vec3<u32>) -> u32 {
    let id = P.r_d + j.x * P.s_d;
    let ih = P.r_h + j.y * P.s_h;
    let iw = P.r_w + j.z * P.s_w;
    return (((n * P.c + c) * P.in_d + id) * P.in_h + ih) * P.in_w + iw;
}

fn phase_numel() -> u32 {
    return P.j_d * P.j_h * P.j_w;
}

fn col_decode(col: u32) -> vec4<u32> {
    let pn = phase_numel();
    let n = col / pn;
    let s = col % pn;
    return vec4<u32>(n, s / (P.j_h * P.j_w), (s / P.j_w) % P.j_h, s % P.j_w);
}

// ---------------------------------------------------------------- main_direct
@compute @workgroup_size(64)
fn main_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let pn = phase_numel();
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (idx >= P.n * P.c * pn) {
        return;
    }
    let c = (idx / pn) % P.c;
    let n = idx / (pn * P.c);
    let d = col_decode(n * pn + idx % pn);
    let j = d.yzw;
    var acc = bias_of(c);
    for (var o = 0u; o < P.o; o++) {
        for (var t = 0u; t < P.kv; t++) {
            let k = tap_of(t);
            acc += w[w_index(o, c, k)] * dy_at(n, o, j, k);
        }
    }
    dx[dx_index(n, c, j)] = acc;
}

// ---------------------------------------------------------------- main_tiled
const BM: u32 = 64u;
const BN: u32 = 128u;
const BK: u32 = 8u;

var<workgroup> As: array<f32, 512>;   // [BK][BM]
var<workgroup> Bs: array<f32, 1024>;  // [BK][BN]

@compute @workgroup_size(256)
fn main_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let NC = P.n * phase_numel();
    let K = P.o * P.kv;
    let tiles_n = (NC + BN - 1u) / BN;
    let tiles_m = (P.c + BM - 1u) / BM;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_m * tiles_n) {
        return;
    }
    let m0 = (tile / tiles_n) * BM;
    let n0 = (tile % tiles_n) * BN;

    let bcol = lid % BN;
    let brow = lid / BN;
    let gcol = n0 + bcol;
    let col_ok = gcol < NC;
    let cd = col_decode(min(gcol, NC - 1u));

    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc: array<f32, 32>;
    for (var i = 0u; i < 32u; i++) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < K; k0 += BK) {
        for (var i = 0u; i < 2u; i++) {
            let e = lid + i * 256u;
            let m = e / BK;
            let kc = e % BK;
            let c = m0 + m;
            let r = k0 + kc;
            var v = 0.0;
            if (c < P.c && r < K) {
                let o = r / P.kv;
                v = w[w_index(o, c, tap_of(r - o * P.kv))];
            }
            As[kc * BM + m] = v;
        }
        for (var i = 0u; i < 4u; i++) {
            let kr = brow + 2u * i;
            let r = k0 + kr;
            var v = 0.0;
            if (col_ok && r < K) {
                let o = r / P.kv;
                v = dy_at(cd.x, o, cd.yzw, tap_of(r - o * P.kv));
            }
            Bs[kr * BN + bcol] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 8>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = As[kk * BM + ty + 16u * i];
            }
            for (var j = 0u; j < 8u; j++) {
                b[j] = Bs[kk * BN + tx + 16u * j];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 8u; j++) {
                    acc[i * 8u + j] = fma(a[i], b[j], acc[i * 8u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let c = m0 + ty + 16u * i;
        if (c >= P.c) {
            continue;
        }
        let bc = bias_of(c);
        for (var j = 0u; j < 8u; j++) {
            let col = n0 + tx + 16u * j;
            if (col < NC) {
                let d = col_decode(col);
                dx[dx_index(d.x, c, d.yzw)] = acc[i * 8u + j] + bc;
            }
        }
    }
}

// ---------------------------------------------------------------- main_cpu
// Register block: CB input channels x PB adjacent phase positions along W per invocation.
override CB: u32 = 8u;
override PB: u32 = 4u;

@compute @workgroup_size(64)
fn main_cpu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    // lpr = lanes per row; a workgroup covers 64 / lpr rows of the phase.
    let rpw = 64u / P.lpr;
    let wtiles = (P.j_w + P.lpr * PB - 1u) / (P.lpr * PB);
    let rows = P.n * P.j_d * P.j_h;
    let rgroups = (rows + rpw - 1u) / rpw;
    let cblocks = (P.c + CB - 1u) / CB;
    let g = wid.x + wid.y * nwg.x;
    if (g >= cblocks * rgroups * wtiles) {
        return;
    }
    let cb = g % cblocks;
    let rest = g / cblocks;
    let wt = rest % wtiles;
    let row_raw = (rest / wtiles) * rpw + lid / P.lpr;
    let row_ok = row_raw < rows;
    let row = min(row_raw, rows - 1u);
    let jh = row % P.j_h;
    let jd = (row / P.j_h) % P.j_d;
    let n = row / (P.j_h * P.j_d);
    let jw0 = (wt * P.lpr + lid % P.lpr) * PB;
    let c0 = cb * CB;
    let clast = P.c - 1u;

    var acc: array<f32, 32>;
    for (var i = 0u; i < CB * PB; i++) {
        acc[i] = 0.0;
    }
    // Taps outer (their offsets cost integer divisions), channels o inner.
    let osp = P.out_d * P.out_h * P.out_w;
    for (var td = 0u; td < P.kc_d; td++) {
        let kd = P.k0_d + td * P.ks_d;
        let qd = i32(jd) + delta(P.r_d, P.p_d, kd, P.d_d, P.s_d);
        if (qd < 0 || qd >= i32(P.out_d)) {
            continue;
        }
        for (var th = 0u; th < P.kc_h; th++) {
            let kh = P.k0_h + th * P.ks_h;
            let qh = i32(jh) + delta(P.r_h, P.p_h, kh, P.d_h, P.s_h);
            if (qh < 0 || qh >= i32(P.out_h)) {
                continue;
            }
            let dyrow = ((n * P.o * P.out_d + u32(qd)) * P.out_h + u32(qh)) * P.out_w;
            for (var tw = 0u; tw < P.kc_w; tw++) {
                let kw = P.k0_w + tw * P.ks_w;
                let dw = delta(P.r_w, P.p_w, kw, P.d_w, P.s_w);
                var ok: array<bool, 8>;
                var qs: array<u32, 8>;
                for (var p = 0u; p < PB; p++) {
                    let jw = jw0 + p;
                    let qw = i32(jw) + dw;
                    ok[p] = row_ok && jw < P.j_w && qw >= 0 && qw < i32(P.out_w);
                    qs[p] = dyrow + u32(max(qw, 0));
                }
                let wt0 = kd * P.k_h * P.k_w + kh * P.k_w + kw;
                for (var o = 0u; o < P.o; o++) {
                    var v: array<f32, 8>;
                    for (var p = 0u; p < PB; p++) {
                        v[p] = 0.0;
                        if (ok[p]) {
                            v[p] = dy[qs[p] + o * osp];
                        }
                    }
                    let wb = o * P.c * P.kk + wt0;
                    for (var i = 0u; i < CB; i++) {
                        let wv = w[wb + min(c0 + i, clast) * P.kk];
                        for (var p = 0u; p < PB; p++) {
                            acc[i * PB + p] = fma(wv, v[p], acc[i * PB + p]);
                        }
                    }
                }
            }
        }
    }
    for (var p = 0u; p < PB; p++) {
        let jw = jw0 + p;
        if (!row_ok || jw >= P.j_w) {
            continue;
        }
        let j = vec3<u32>(jd, jh, jw);
        for (var i = 0u; i < CB; i++) {
            let c = c0 + i;
            if (c < P.c) {
                dx[dx_index(n, c, j)] = acc[i * PB + p] + bias_of(c);
            }
        }
    }
}
