// conv_wgrad.wgsl: gradient of a convolution w.r.t. its weight (and, with x and dy swapped by
// the host, of a transposed convolution), 2D and 3D, groups = 1.
//
// Formula: dw[o,c,k] = sum_{n,q} dy[n,o,q] * x[n, c, q*s - p + k*dl]   (per axis; 0 outside x)
// GEMM view: DW[o, r] = sum_col DY[o, col] * X[col, r], r = (c, kd, kh, kw), col = (n, od, oh, ow);
// M = O, N = C*kD*kH*kW, K = batch * out spatial (long). The K range is split over
// `splits` = num_workgroups.z slices; split z writes part[z][o][r] and the host sums the slices
// with reduce.wgsl's sum_splits (or the kernel writes dw directly when splits = 1).
//
// Entry points (same bindings and params):
//   main_tiled  GPUs: 128 threads, 64 (o) x 128 (r) tile, K slices of 16 positions staged in
//               workgroup memory, 8x8 register block per thread. Split z covers positions
//               [z*chunk, (z+1)*chunk), chunk = aux2 (multiple of 16).
//   main_cpu    CPU adapters: no workgroup memory or barriers. A workgroup of WG invocations
//               (64, fewer when there are fewer tap rows) owns WG consecutive tap rows (c, kd, kh) and OB output channels; each
//               invocation accumulates the OB x KW weights of its tap row over the output rows
//               [z*chunk, (z+1)*chunk) (chunk = aux2 rows of (n, od, oh)). dy reads are
//               uniform across the workgroup. KW, SW, DW, OB are pipeline constants.
// Params: aux = splits, aux2 = chunk. Grid x (linearised with y) = tiles; z = splits.
// Bindings: 0 params, 1 x (read), 2 dy (read), 3 out (read_write: part or dw).
//           x and dy are activations / activation gradients (`act`: f32, or f16 storage in
//           mixed precision), widened to f32 on load; part / dw (a parameter gradient) and every
//           sum are f32.

struct Params {
    n: u32, c: u32, o: u32, flags: u32,
    in_d: u32, in_h: u32, in_w: u32, kk: u32,
    out_d: u32, out_h: u32, out_w: u32, aux: u32,
    k_d: u32, k_h: u32, k_w: u32, aux2: u32,
    s_d: u32, s_h: u32, s_w: u32, aux3: u32,
    p_d: u32, p_h: u32, p_w: u32, aux4: u32,
    d_d: u32, d_h: u32, d_w: u32, aux5: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> dy: array<act>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

fn out_spatial() -> u32 {
    return P.out_d * P.out_h * P.out_w;
}

// Tap decode r -> (c, kd, kh, kw).
fn tap_decode(r: u32) -> vec4<u32> {
    let c = r / P.kk;
    let t = r - c * P.kk;
    let khw = P.k_h * P.k_w;
    let kd = t / khw;
    let t2 = t - kd * khw;
    let kh = t2 / P.k_w;
    return vec4<u32>(c, kd, kh, t2 - kh * P.k_w);
}

// ---------------------------------------------------------------- main_tiled
const BM: u32 = 64u;
const BN: u32 = 128u;
const BK: u32 = 16u;

var<workgroup> As: array<vec4<f32>, 256>;   // [BK][BM/4]  dy
var<workgroup> Bs: array<vec4<f32>, 512>;   // [BK][BN/4]  x

// 128 threads, 8x8 register block per thread (rows {ty*4.., 32+ty*4..}, cols {tx*4..,
// 64+tx*4..}). Staging: dy rows m = lid/2 with 8 consecutive positions; x column r = lid with
// 16 consecutive positions (the position decode walks by increments). Double-buffered through
// registers.
@compute @workgroup_size(128)
fn main_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let osp = out_spatial();
    let R = P.c * P.kk;
    let KT = P.n * osp;
    let tiles_n = (R + BN - 1u) / BN;
    let tiles_m = (P.o + BM - 1u) / BM;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_m * tiles_n) {
        return;
    }
    let m0 = (tile / tiles_n) * BM;
    let n0 = (tile % tiles_n) * BN;
    let kbeg = wid.z * P.aux2;
    let kend = min(kbeg + P.aux2, KT);

    let gr = n0 + lid;
    let r_ok = gr < R;
    let tp = tap_decode(min(gr, R - 1u));
    let in_sp = P.in_d * P.in_h * P.in_w;
    let koff = vec3<i32>(i32(tp.y * P.d_d) - i32(P.p_d), i32(tp.z * P.d_h) - i32(P.p_h), i32(tp.w * P.d_w) - i32(P.p_w));
    let am = lid / 2u;
    let ak = (lid % 2u) * 8u;
    let ao = m0 + am;
    let arow_ok = ao < P.o;
    let tx = lid % 16u;
    let ty = lid / 16u;

    var a_reg: array<f32, 8>;
    var b_reg: array<f32, 16>;
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var k0 = kbeg; k0 < kend; k0 += BK) {
        {
            let c0 = k0 + ak;
            var n = c0 / osp;
            var sp = c0 - n * osp;
            for (var j = 0u; j < 8u; j++) {
                var v = 0.0;
                if (arow_ok && c0 + j < kend) {
                    v = f32(dy[(n * P.o + ao) * osp + sp]);
                }
                a_reg[j] = v;
                sp += 1u;
                if (sp == osp) {
                    sp = 0u;
                    n += 1u;
                }
            }
        }
        {
            var n = k0 / osp;
            let sp0 = k0 - n * osp;
            var ow = sp0 % P.out_w;
            var oh = (sp0 / P.out_w) % P.out_h;
            var od = sp0 / (P.out_w * P.out_h);
            for (var j = 0u; j < 16u; j++) {
                let id = i32(od * P.s_d) + koff.x;
                let ih = i32(oh * P.s_h) + koff.y;
                let iw = i32(ow * P.s_w) + koff.z;
                var v = 0.0;
                if (r_ok && k0 + j < kend && id >= 0 && ih >= 0 && iw >= 0 && id < i32(P.in_d) && ih < i32(P.in_h) && iw < i32(P.in_w)) {
                    v = f32(x[(n * P.c + tp.x) * in_sp + (u32(id) * P.in_h + u32(ih)) * P.in_w + u32(iw)]);
                }
                b_reg[j] = v;
                ow += 1u;
                if (ow == P.out_w) {
                    ow = 0u;
                    oh += 1u;
                    if (oh == P.out_h) {
                        oh = 0u;
                        od += 1u;
                        if (od == P.out_d) {
                            od = 0u;
                            n += 1u;
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
    let base = wid.z * P.o * R;
    for (var ri = 0u; ri < 8u; ri++) {
        let o = m0 + (ri / 4u) * 32u + ty * 4u + ri % 4u;
        if (o >= P.o) {
            continue;
        }
        for (var h = 0u; h < 2u; h++) {
            let v = acc[ri * 2u + h];
            for (var j = 0u; j < 4u; j++) {
                let r = n0 + h * 64u + tx * 4u + j;
                if (r < R) {
                    part[base + o * R + r] = v[j];
                }
            }
        }
    }
}

// ---------------------------------------------------------------- main_cpu
// An invocation owns one tap row (c, kd, kh) - all KW taps along W - for OB output channels:
// OB*KW accumulators. It walks the output positions of its row range; the KW input values
// of a position are a sliding window (SLIDE: stride 1, dilation 1 along W, one new load per
// position) and dy[o, position] is the same address in every invocation (a scalar load).
override OB: u32 = 8u;
override KW: u32 = 3u;
override SW: u32 = 1u;
override DW: u32 = 1u;
// Invocations per workgroup: 64, or fewer (down to 8) when there are fewer tap rows.
override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main_cpu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let R = P.c * P.kk;
    let RR = P.c * P.k_d * P.k_h;
    let rtiles = (RR + WG - 1u) / WG;
    let oblocks = (P.o + OB - 1u) / OB;
    let g = wid.x + wid.y * nwg.x;
    if (g >= rtiles * oblocks) {
        return;
    }
    let ob = g % oblocks;
    let rt = g / oblocks;
    let rr = rt * WG + lid;
    let rr_ok = rr < RR;
    let rrc = min(rr, RR - 1u);
    let kh = rrc % P.k_h;
    let kd = (rrc / P.k_h) % P.k_d;
    let c = rrc / (P.k_h * P.k_d);
    let o0 = ob * OB;
    let olast = P.o - 1u;
    let osp = out_spatial();
    let in_sp = P.in_d * P.in_h * P.in_w;
    let rows = P.n * P.out_d * P.out_h;
    let rbeg = wid.z * P.aux2;
    let rend = min(rbeg + P.aux2, rows);
    let slide = SW == 1u && DW == 1u;

    var acc: array<f32, 32>;
    for (var i = 0u; i < OB * KW; i++) {
        acc[i] = 0.0;
    }
    for (var row = rbeg; row < rend; row++) {
        let oh = row % P.out_h;
        let od = (row / P.out_h) % P.out_d;
        let n = row / (P.out_h * P.out_d);
        let id = i32(od * P.s_d + kd * P.d_d) - i32(P.p_d);
        let ih = i32(oh * P.s_h + kh * P.d_h) - i32(P.p_h);
        let row_ok = rr_ok && id >= 0 && ih >= 0 && id < i32(P.in_d) && ih < i32(P.in_h);
        let xrow = (n * P.c + c) * in_sp + (u32(max(id, 0)) * P.in_h + u32(max(ih, 0))) * P.in_w;
        let dyrow = n * P.o * osp + (od * P.out_h + oh) * P.out_w;
        let iw0 = -i32(P.p_w);
        var v: array<f32, 32>;
        if (slide) {
            for (var kw = 0u; kw + 1u < KW; kw++) {
                let iw = iw0 + i32(kw);
                v[kw + 1u] = 0.0;
                if (row_ok && iw >= 0 && iw < i32(P.in_w)) {
                    v[kw + 1u] = f32(x[xrow + u32(iw)]);
                }
            }
        }
        for (var ow = 0u; ow < P.out_w; ow++) {
            if (slide) {
                for (var kw = 0u; kw + 1u < KW; kw++) {
                    v[kw] = v[kw + 1u];
                }
                let iw = iw0 + i32(ow + KW - 1u);
                v[KW - 1u] = 0.0;
                if (row_ok && iw >= 0 && iw < i32(P.in_w)) {
                    v[KW - 1u] = f32(x[xrow + u32(iw)]);
                }
            } else {
                for (var kw = 0u; kw < KW; kw++) {
                    let iw = iw0 + i32(ow * SW + kw * DW);
                    v[kw] = 0.0;
                    if (row_ok && iw >= 0 && iw < i32(P.in_w)) {
                        v[kw] = f32(x[xrow + u32(iw)]);
                    }
                }
            }
            for (var i = 0u; i < OB; i++) {
                let gv = f32(dy[dyrow + min(o0 + i, olast) * osp + ow]);
                for (var kw = 0u; kw < KW; kw++) {
                    acc[i * KW + kw] = fma(gv, v[kw], acc[i * KW + kw]);
                }
            }
        }
    }
    if (!rr_ok) {
        return;
    }
    let base = wid.z * P.o * R;
    let r0 = rr * KW;
    for (var i = 0u; i < OB; i++) {
        let o = o0 + i;
        if (o < P.o) {
            for (var kw = 0u; kw < KW; kw++) {
                part[base + o * R + r0 + kw] = acc[i * KW + kw];
            }
        }
    }
}
