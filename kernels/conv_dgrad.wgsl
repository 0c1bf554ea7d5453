// conv_dgrad.wgsl: gradient of a convolution w.r.t. its input, and (with the bias flag) the
// forward of a transposed convolution, 2D and 3D, groups = 1. (Stride-1 input gradients run
// conv_fwd on flipped weights instead; this kernel serves the strided cases.)
//
// Formula: dx[n,c,i] = b[c] + sum_{o,k : i + p - k*dl = q*s, 0 <= q < out} dy[n,o,q] * w[o,c,k]
// per axis (i, k, q are (d, h, w) triples). A transposed convolution with ConvTranspose weight
// (C_in, C_out, k..) is exactly this with dy := its input, w read as (O = C_in, C = C_out),
// dx := its output.
//
// Stride-phase decomposition: workgroup z = phase r (r_a in 0..s_a per axis, W fastest). A
// phase covers the positions i = r + s*j; for those only the taps k = k0 + t*ks (t < kc,
// ks = s / gcd(dl, s)) satisfy the divisibility, and q = j + D0 - t*m exactly, with
// D0 = (r + p - k0*dl) / s and m = ks*dl / s. No multiply is wasted on a tap that cannot
// contribute: the U-Net 2x2 stride-2 up-convolution is 4 (2D) or 8 (3D) dense GEMMs with
// K = C_in, all in one dispatch.
// GEMM view per phase: DX[c, col] = sum_{r'} A[c, r'] * B[r', col], col = (n, jd, jh, jw),
// r' = (o, td, th, tw); M = C, N = batch * jd*jh*jw, K = O * kc_d*kc_h*kc_w.
//
// Entry points (same bindings and params; grid x*y = tiles of the largest phase, z = phases):
//   main_tiled  GPUs: 128 threads, 64 (c) x 128 (col) tile, K slices of 16 staged in workgroup
//               memory and double-buffered through registers, 8x8 register block per thread
//               (rows {ty*4.., 32+ty*4..}, cols {tx*4.., 64+tx*4..}).
//   main_cpu    CPU adapters: no workgroup memory or barriers. A workgroup of WG (64, fewer
//               for tiny outputs) invocations owns CB channels and WG/lpr phase rows (n, jd, jh) (lpr = lanes per row);
//               each invocation accumulates CB channels x PB adjacent positions (pipeline
//               constants). Weight reads are uniform.
//   main_direct Fallback: one output per invocation.
// Bindings: 0 params, 1 dy (read), 2 w (read), 3 bias (read, used when flags & 1), 4 dx (rw).
//           dy and dx are activations / activation gradients (`act`: f32, or f16 storage in
//           mixed precision; for the transposed convolution its input and output); w and bias
//           are f32. dy is widened to f32 on load, sums are in f32, dx is narrowed on store.

struct Params {
    n: u32, c: u32, o: u32, flags: u32,
    in_d: u32, in_h: u32, in_w: u32, kk: u32,
    out_d: u32, out_h: u32, out_w: u32, aux: u32,
    k_d: u32, k_h: u32, k_w: u32, lpr: u32,
    s_d: u32, s_h: u32, s_w: u32, aux3: u32,
    p_d: u32, p_h: u32, p_w: u32, aux4: u32,
    d_d: u32, d_h: u32, d_w: u32, aux5: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> dy: array<act>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<act>;

// One stride phase: per axis (x = d, y = h, z = w) the residue r, first tap k0, tap step ks,
// tap count kc, q offset D0, q step per tap m, and the number of positions j.
struct Phase {
    r: vec3<u32>,
    k0: vec3<u32>,
    ks: vec3<u32>,
    kc: vec3<u32>,
    d0: vec3<i32>,
    m: vec3<i32>,
    j: vec3<u32>,
}

fn gcd(a0: u32, b0: u32) -> u32 {
    var a = a0;
    var b = b0;
    loop {
        if (b == 0u) {
            break;
        }
        let t = a % b;
        a = b;
        b = t;
    }
    return a;
}

// (k0, ks, kc, d0, m, jn) of one axis for residue r.
fn axis_phase(r: u32, k: u32, s: u32, p: u32, dl: u32, len: u32) -> array<i32, 6> {
    let step = s / gcd(dl, s);
    let want = (r + p) % s;
    var k0 = 0u;
    var kc = 0u;
    for (var t = 0u; t < min(step, k); t++) {
        if ((t * dl) % s == want) {
            k0 = t;
            kc = (k - t + step - 1u) / step;
            break;
        }
    }
    let d0 = (i32(r + p) - i32(k0 * dl)) / i32(s);
    let m = i32(step * dl / s);
    let jn = select(0u, (len - r + s - 1u) / s, len > r);
    return array<i32, 6>(i32(k0), i32(step), i32(kc), d0, m, i32(jn));
}

fn phase_of(z: u32) -> Phase {
    let rw = z % P.s_w;
    let rh = (z / P.s_w) % P.s_h;
    let rd = z / (P.s_w * P.s_h);
    let a = axis_phase(rd, P.k_d, P.s_d, P.p_d, P.d_d, P.in_d);
    let b = axis_phase(rh, P.k_h, P.s_h, P.p_h, P.d_h, P.in_h);
    let c = axis_phase(rw, P.k_w, P.s_w, P.p_w, P.d_w, P.in_w);
    var ph: Phase;
    ph.r = vec3<u32>(rd, rh, rw);
    ph.k0 = vec3<u32>(u32(a[0]), u32(b[0]), u32(c[0]));
    ph.ks = vec3<u32>(u32(a[1]), u32(b[1]), u32(c[1]));
    ph.kc = vec3<u32>(u32(a[2]), u32(b[2]), u32(c[2]));
    ph.d0 = vec3<i32>(a[3], b[3], c[3]);
    ph.m = vec3<i32>(a[4], b[4], c[4]);
    ph.j = vec3<u32>(u32(a[5]), u32(b[5]), u32(c[5]));
    return ph;
}

fn bias_of(c: u32) -> f32 {
    if ((P.flags & 1u) != 0u) {
        return bias[c];
    }
    return 0.0;
}

fn dx_index(ph: Phase, n: u32, c: u32, j: vec3<u32>) -> u32 {
    let i = ph.r + j * vec3<u32>(P.s_d, P.s_h, P.s_w);
    return (((n * P.c + c) * P.in_d + i.x) * P.in_h + i.y) * P.in_w + i.z;
}

fn col_decode(ph: Phase, col: u32) -> vec4<u32> {
    let pn = ph.j.x * ph.j.y * ph.j.z;
    let n = col / pn;
    let s = col - n * pn;
    return vec4<u32>(n, s / (ph.j.y * ph.j.z), (s / ph.j.z) % ph.j.y, s % ph.j.z);
}

// Weight index of (o, c) at tap numbers t = (td, th, tw) of the phase.
fn w_index(ph: Phase, o: u32, c: u32, t: vec3<u32>) -> u32 {
    let k = ph.k0 + t * ph.ks;
    return ((o * P.c + c) * P.k_d + k.x) * P.k_h * P.k_w + k.y * P.k_w + k.z;
}

// dy[n, o, j + d0 - t*m] or 0 outside.
fn dy_at(ph: Phase, n: u32, o: u32, j: vec3<u32>, t: vec3<u32>) -> f32 {
    let q = vec3<i32>(j) + ph.d0 - vec3<i32>(t) * ph.m;
    if (any(q < vec3<i32>(0)) || q.x >= i32(P.out_d) || q.y >= i32(P.out_h) || q.z >= i32(P.out_w)) {
        return 0.0;
    }
    return f32(dy[(((n * P.o + o) * P.out_d + u32(q.x)) * P.out_h + u32(q.y)) * P.out_w + u32(q.z)]);
}

fn tap_decode(ph: Phase, t: u32) -> vec3<u32> {
    return vec3<u32>(t / (ph.kc.y * ph.kc.z), (t / ph.kc.z) % ph.kc.y, t % ph.kc.z);
}

// ---------------------------------------------------------------- main_direct
@compute @workgroup_size(64)
fn main_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let ph = phase_of(wid.z);
    let pn = ph.j.x * ph.j.y * ph.j.z;
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (idx >= P.n * P.c * pn) {
        return;
    }
    let c = (idx / pn) % P.c;
    let n = idx / (pn * P.c);
    let d = col_decode(ph, n * pn + idx % pn);
    let kv = ph.kc.x * ph.kc.y * ph.kc.z;
    var acc = bias_of(c);
    for (var o = 0u; o < P.o; o++) {
        for (var t = 0u; t < kv; t++) {
            let tt = tap_decode(ph, t);
            acc += w[w_index(ph, o, c, tt)] * dy_at(ph, n, o, d.yzw, tt);
        }
    }
    dx[dx_index(ph, n, c, d.yzw)] = act(acc);
}

// ---------------------------------------------------------------- main_tiled
const BM: u32 = 64u;
const BN: u32 = 128u;
const BK: u32 = 16u;

var<workgroup> As: array<vec4<f32>, 256>;   // [BK][BM/4]
var<workgroup> Bs: array<vec4<f32>, 512>;   // [BK][BN/4]

@compute @workgroup_size(128)
fn main_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let ph = phase_of(wid.z);
    let NC = P.n * ph.j.x * ph.j.y * ph.j.z;
    let kv = ph.kc.x * ph.kc.y * ph.kc.z;
    let K = P.o * kv;
    let tiles_n = (NC + BN - 1u) / BN;
    let tiles_m = (P.c + BM - 1u) / BM;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_m * tiles_n) {
        return;
    }
    let m0 = (tile / tiles_n) * BM;
    let n0 = (tile % tiles_n) * BN;

    let gcol = n0 + lid;
    let col_ok = gcol < NC;
    let cd = col_decode(ph, min(gcol, max(NC, 1u) - 1u));
    let am = lid / 2u;
    let ak = (lid % 2u) * 8u;
    let ac = m0 + am;
    let arow_ok = ac < P.c;

    var a_reg: array<f32, 8>;
    var b_reg: array<f32, 16>;
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    let tx = lid % 16u;
    let ty = lid / 16u;
    // This thread's column: q = j + d0 - t*m per axis; dy offset of (n, o = 0).
    let qb = vec3<i32>(cd.yzw) + ph.d0;
    let osp = P.out_d * P.out_h * P.out_w;
    let dyn = cd.x * P.o * osp;
    let khw = P.k_h * P.k_w;
    for (var k0 = 0u; k0 < K; k0 += BK) {
        // Reduction index r = o*kv + t, t = (td, th, tw): decoded once per slice, then
        // walked by increments (no divisions in the loops).
        {
            let r0 = k0 + ak;
            var o = r0 / kv;
            var t = r0 - o * kv;
            var tw = t % ph.kc.z;
            var th = (t / ph.kc.z) % ph.kc.y;
            var td = t / (ph.kc.z * ph.kc.y);
            for (var j = 0u; j < 8u; j++) {
                var v = 0.0;
                if (arow_ok && r0 + j < K) {
                    let k = ph.k0 + vec3<u32>(td, th, tw) * ph.ks;
                    v = w[((o * P.c + ac) * P.k_d + k.x) * khw + k.y * P.k_w + k.z];
                }
                a_reg[j] = v;
                tw += 1u;
                if (tw == ph.kc.z) {
                    tw = 0u;
                    th += 1u;
                    if (th == ph.kc.y) {
                        th = 0u;
                        td += 1u;
                        if (td == ph.kc.x) {
                            td = 0u;
                            o += 1u;
                        }
                    }
                }
            }
        }
        {
            var o = k0 / kv;
            var t = k0 - o * kv;
            var tw = t % ph.kc.z;
            var th = (t / ph.kc.z) % ph.kc.y;
            var td = t / (ph.kc.z * ph.kc.y);
            for (var j = 0u; j < 16u; j++) {
                let q = qb - vec3<i32>(i32(td), i32(th), i32(tw)) * ph.m;
                var v = 0.0;
                if (col_ok && k0 + j < K && all(q >= vec3<i32>(0)) && q.x < i32(P.out_d) && q.y < i32(P.out_h)
                    && q.z < i32(P.out_w)) {
                    v = f32(dy[dyn + o * osp + (u32(q.x) * P.out_h + u32(q.y)) * P.out_w + u32(q.z)]);
                }
                b_reg[j] = v;
                tw += 1u;
                if (tw == ph.kc.z) {
                    tw = 0u;
                    th += 1u;
                    if (th == ph.kc.y) {
                        th = 0u;
                        td += 1u;
                        if (td == ph.kc.x) {
                            td = 0u;
                            o += 1u;
                        }
                    }
                }
            }
        }
        workgroupBarrier();
        for (var j = 0u; j < 8u; j++) {
            As[(ak + j) * 16u + am / 4u][am % 4u] = a_reg[j];
        }
        for (var j = 0u; j < 16u; j++) {
            Bs[j * 32u + lid / 4u][lid % 4u] = b_reg[j];
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = As[kk * 16u + ty];
            let a1 = As[kk * 16u + 8u + ty];
            let b0 = Bs[kk * 32u + tx];
            let b1 = Bs[kk * 32u + 16u + tx];
            for (var i = 0u; i < 4u; i++) {
                acc[i * 2u] = fma(vec4<f32>(a0[i]), b0, acc[i * 2u]);
                acc[i * 2u + 1u] = fma(vec4<f32>(a0[i]), b1, acc[i * 2u + 1u]);
                acc[8u + i * 2u] = fma(vec4<f32>(a1[i]), b0, acc[8u + i * 2u]);
                acc[8u + i * 2u + 1u] = fma(vec4<f32>(a1[i]), b1, acc[8u + i * 2u + 1u]);
            }
        }
    }
    for (var ri = 0u; ri < 8u; ri++) {
        let c = m0 + (ri / 4u) * 32u + ty * 4u + ri % 4u;
        if (c >= P.c) {
            continue;
        }
        let bc = bias_of(c);
        for (var h = 0u; h < 2u; h++) {
            let v = acc[ri * 2u + h];
            for (var j = 0u; j < 4u; j++) {
                let col = n0 + h * 64u + tx * 4u + j;
                if (col < NC) {
                    let d = col_decode(ph, col);
                    dx[dx_index(ph, d.x, c, d.yzw)] = act(v[j] + bc);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- main_cpu
// Register block: CB input channels x PB adjacent phase positions along W per invocation.
override CB: u32 = 8u;
override PB: u32 = 4u;
override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main_cpu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let ph = phase_of(wid.z);
    // lpr = lanes per row; a workgroup covers WG / lpr rows of the phase.
    let rpw = WG / P.lpr;
    let wtiles = (ph.j.z + P.lpr * PB - 1u) / (P.lpr * PB);
    let rows = P.n * ph.j.x * ph.j.y;
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
    let jh = row % ph.j.y;
    let jd = (row / ph.j.y) % ph.j.x;
    let n = row / (ph.j.y * ph.j.x);
    let jw0 = (wt * P.lpr + lid % P.lpr) * PB;
    let c0 = cb * CB;
    let clast = P.c - 1u;

    var acc: array<f32, 32>;
    for (var i = 0u; i < CB * PB; i++) {
        acc[i] = 0.0;
    }
    // Taps outer, channels o inner.
    let osp = P.out_d * P.out_h * P.out_w;
    for (var td = 0u; td < ph.kc.x; td++) {
        let qd = i32(jd) + ph.d0.x - i32(td) * ph.m.x;
        if (qd < 0 || qd >= i32(P.out_d)) {
            continue;
        }
        for (var th = 0u; th < ph.kc.y; th++) {
            let qh = i32(jh) + ph.d0.y - i32(th) * ph.m.y;
            if (qh < 0 || qh >= i32(P.out_h)) {
                continue;
            }
            let dyrow = ((n * P.o * P.out_d + u32(qd)) * P.out_h + u32(qh)) * P.out_w;
            for (var tw = 0u; tw < ph.kc.z; tw++) {
                let dw = ph.d0.z - i32(tw) * ph.m.z;
                var ok: array<bool, 8>;
                var qs: array<u32, 8>;
                for (var p = 0u; p < PB; p++) {
                    let jw = jw0 + p;
                    let qw = i32(jw) + dw;
                    ok[p] = row_ok && jw < ph.j.z && qw >= 0 && qw < i32(P.out_w);
                    qs[p] = dyrow + u32(max(qw, 0));
                }
                let wt0 = w_index(ph, 0u, 0u, vec3<u32>(td, th, tw));
                for (var o = 0u; o < P.o; o++) {
                    var v: array<f32, 8>;
                    for (var p = 0u; p < PB; p++) {
                        v[p] = 0.0;
                        if (ok[p]) {
                            v[p] = f32(dy[qs[p] + o * osp]);
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
        if (!row_ok || jw >= ph.j.z) {
            continue;
        }
        let j = vec3<u32>(jd, jh, jw);
        for (var i = 0u; i < CB; i++) {
            let c = c0 + i;
            if (c < P.c) {
                dx[dx_index(ph, n, c, j)] = act(acc[i * PB + p] + bias_of(c));
            }
        }
    }
}
