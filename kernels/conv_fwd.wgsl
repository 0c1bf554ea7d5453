// conv_fwd.wgsl: convolution forward, 2D and 3D (2D runs with D = kD = 1), groups = 1.
//
// Formula (cross-correlation, PyTorch semantics; taps outside the input read 0):
//   y[n,o,od,oh,ow] = b[o] + sum_{c,kd,kh,kw} w[o,c,kd,kh,kw]
//                     * x[n, c, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
// Implicit GEMM: Y[o, col] = sum_r W[o, r] * X[r, col] with col = (n, od, oh, ow) and
// r = (c, kd, kh, kw); M = O, N = batch * out spatial, K = C * kD*kH*kW.
//
// Entry points (same bindings and params):
//   main_tiled  GPUs. 256 threads; a workgroup owns a 64 (o) x 128 (col) tile of Y and walks K
//               in slices of 8, staging W and X slices in workgroup memory. Thread (tx, ty) =
//               (lid % 16, lid / 16) keeps a 4x8 register block: rows ty + 16i, cols tx + 16j.
//               Each thread loads one fixed column of the X slice (its im2col address is
//               decoded once) and two W elements per slice.
//   main_cpu    CPU adapters (lavapipe). No workgroup memory, no barriers (both are expensive
//               when a CPU emulates them). A workgroup of 64 invocations owns OB output
//               channels and 64/LPR output rows (LPR = lanes per row, params.aux), each lane PB
//               adjacent positions of its row; every invocation accumulates an OB x PB block.
//               Weight reads are the same address in every invocation (scalar loads).
//   main_direct Fallback / reference: one output per invocation.
// Grid: main_tiled: ceil(O/64) * ceil(N/128) workgroups, linearised over x and y.
//       main_cpu:   ceil(O/OB) * ceil(rows/(64/LPR)) * ceil(out_w/(LPR*PB)), linearised.
//       main_direct: ceil(O*N/64) workgroups, linearised.
// Bindings: 0 params (uniform), 1 x (read), 2 w (read), 3 bias (read; used when flags & 1),
//           4 y (read_write).

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
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn out_spatial() -> u32 {
    return P.out_d * P.out_h * P.out_w;
}

fn in_spatial() -> u32 {
    return P.in_d * P.in_h * P.in_w;
}

// Input value for output column `col` (n, od, oh, ow) and reduction index r (c, kd, kh, kw);
// 0 outside the input.
fn im2col(n: u32, od: u32, oh: u32, ow: u32, r: u32) -> f32 {
    let c = r / P.kk;
    let t = r - c * P.kk;
    let khw = P.k_h * P.k_w;
    let kd = t / khw;
    let t2 = t - kd * khw;
    let kh = t2 / P.k_w;
    let kw = t2 - kh * P.k_w;
    let id = i32(od * P.s_d + kd * P.d_d) - i32(P.p_d);
    let ih = i32(oh * P.s_h + kh * P.d_h) - i32(P.p_h);
    let iw = i32(ow * P.s_w + kw * P.d_w) - i32(P.p_w);
    if (id < 0 || ih < 0 || iw < 0 || id >= i32(P.in_d) || ih >= i32(P.in_h) || iw >= i32(P.in_w)) {
        return 0.0;
    }
    return x[(((n * P.c + c) * P.in_d + u32(id)) * P.in_h + u32(ih)) * P.in_w + u32(iw)];
}

fn bias_of(o: u32) -> f32 {
    if ((P.flags & 1u) != 0u) {
        return bias[o];
    }
    return 0.0;
}

// ---------------------------------------------------------------- main_direct
@compute @workgroup_size(64)
fn main_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let osp = out_spatial();
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (idx >= P.n * P.o * osp) {
        return;
    }
    let sp = idx % osp;
    let no = idx / osp;
    let o = no % P.o;
    let n = no / P.o;
    let ow = sp % P.out_w;
    let oh = (sp / P.out_w) % P.out_h;
    let od = sp / (P.out_w * P.out_h);
    let K = P.c * P.kk;
    var acc = bias_of(o);
    for (var r = 0u; r < K; r++) {
        acc += w[o * K + r] * im2col(n, od, oh, ow, r);
    }
    y[idx] = acc;
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
    let osp = out_spatial();
    let NC = P.n * osp;
    let K = P.c * P.kk;
    let tiles_n = (NC + BN - 1u) / BN;
    let tiles_m = (P.o + BM - 1u) / BM;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_m * tiles_n) {
        return;
    }
    let m0 = (tile / tiles_n) * BM;
    let n0 = (tile % tiles_n) * BN;

    // The X column this thread stages, decoded once.
    let bcol = lid % BN;
    let brow = lid / BN;          // 0 or 1; rows brow + 2i
    let gcol = n0 + bcol;
    let col_ok = gcol < NC;
    let cn = gcol / osp;
    let csp = gcol % osp;
    let cow = csp % P.out_w;
    let coh = (csp / P.out_w) % P.out_h;
    let cod = csp / (P.out_w * P.out_h);

    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc: array<f32, 32>;
    for (var i = 0u; i < 32u; i++) {
        acc[i] = 0.0;
    }

    for (var k0 = 0u; k0 < K; k0 += BK) {
        // Stage W[m0.., k0..k0+8] (512 values, 2 per thread; consecutive lids read consecutive r).
        for (var i = 0u; i < 2u; i++) {
            let e = lid + i * 256u;
            let m = e / BK;
            let kc = e % BK;
            let o = m0 + m;
            let r = k0 + kc;
            var v = 0.0;
            if (o < P.o && r < K) {
                v = w[o * K + r];
            }
            As[kc * BM + m] = v;
        }
        // Stage X[k0..k0+8, n0..n0+128] (1024 values, 4 per thread, one column each).
        for (var i = 0u; i < 4u; i++) {
            let kr = brow + 2u * i;
            let r = k0 + kr;
            var v = 0.0;
            if (col_ok && r < K) {
                v = im2col(cn, cod, coh, cow, r);
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
        let o = m0 + ty + 16u * i;
        if (o >= P.o) {
            continue;
        }
        let bo = bias_of(o);
        for (var j = 0u; j < 8u; j++) {
            let col = n0 + tx + 16u * j;
            if (col < NC) {
                let n = col / osp;
                let sp = col % osp;
                y[(n * P.o + o) * osp + sp] = acc[i * 8u + j] + bo;
            }
        }
    }
}

// ---------------------------------------------------------------- main_cpu
// Register block: OB output channels x PB adjacent output positions per invocation
// (OB*PB <= 32). The kernel width KW, stride SW and dilation DW along W are pipeline
// constants, so the row segment an invocation needs for one (c, kd, kh) - SPAN =
// (PB-1)*SW + (KW-1)*DW + 1 <= 16 values - is loaded once and every tap reads it from
// registers (a sliding window): PB*KW*OB multiply-adds per SPAN loads.
override OB: u32 = 8u;
override PB: u32 = 4u;
override KW: u32 = 3u;
override SW: u32 = 1u;
override DW: u32 = 1u;

@compute @workgroup_size(64)
fn main_cpu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let span = (PB - 1u) * SW + (KW - 1u) * DW + 1u;
    // aux = lanes per output row (LPR); a workgroup covers 64 / LPR rows.
    let lpr = P.aux;
    let rpw = 64u / lpr;
    let wtiles = (P.out_w + lpr * PB - 1u) / (lpr * PB);
    let rows = P.n * P.out_d * P.out_h;
    let rgroups = (rows + rpw - 1u) / rpw;
    let oblocks = (P.o + OB - 1u) / OB;
    let g = wid.x + wid.y * nwg.x;
    if (g >= oblocks * rgroups * wtiles) {
        return;
    }
    let ob = g % oblocks;
    let rest = g / oblocks;
    let wt = rest % wtiles;
    let row_raw = (rest / wtiles) * rpw + lid / lpr;
    let row_ok = row_raw < rows;
    let row = min(row_raw, rows - 1u);
    let oh = row % P.out_h;
    let od = (row / P.out_h) % P.out_d;
    let n = row / (P.out_h * P.out_d);
    let ow0 = (wt * lpr + lid % lpr) * PB;
    let o0 = ob * OB;
    let K = P.c * P.kk;
    let khw = P.k_h * P.k_w;
    let ih0 = i32(oh * P.s_h) - i32(P.p_h);
    let id0 = i32(od * P.s_d) - i32(P.p_d);
    let iw0 = i32(ow0 * SW) - i32(P.p_w);
    // Positions past the row end read nothing (their results are discarded).
    let iw_end = min(i32(P.in_w), iw0 + i32(span));
    let ow_ok = row_ok && ow0 < P.out_w;

    var acc: array<f32, 32>;
    for (var i = 0u; i < OB * PB; i++) {
        acc[i] = 0.0;
    }
    // Rows past O are clamped to the last channel (results discarded): no branch inside.
    let olast = P.o - 1u;
    for (var c = 0u; c < P.c; c++) {
        let xc = (n * P.c + c) * P.in_d;
        for (var kd = 0u; kd < P.k_d; kd++) {
            let id = id0 + i32(kd * P.d_d);
            if (id < 0 || id >= i32(P.in_d)) {
                continue;
            }
            for (var kh = 0u; kh < P.k_h; kh++) {
                let ih = ih0 + i32(kh * P.d_h);
                if (ih < 0 || ih >= i32(P.in_h)) {
                    continue;
                }
                let xrow = ((xc + u32(id)) * P.in_h + u32(ih)) * P.in_w;
                var v: array<f32, 16>;
                for (var t = 0u; t < span; t++) {
                    let iw = iw0 + i32(t);
                    v[t] = 0.0;
                    if (ow_ok && iw >= 0 && iw < iw_end) {
                        v[t] = x[xrow + u32(iw)];
                    }
                }
                let rbase = c * P.kk + kd * khw + kh * KW;
                for (var i = 0u; i < OB; i++) {
                    let wrow = min(o0 + i, olast) * K + rbase;
                    for (var kw = 0u; kw < KW; kw++) {
                        let wv = w[wrow + kw];
                        for (var p = 0u; p < PB; p++) {
                            acc[i * PB + p] = fma(wv, v[p * SW + kw * DW], acc[i * PB + p]);
                        }
                    }
                }
            }
        }
    }
    let osp = out_spatial();
    for (var p = 0u; p < PB; p++) {
        let ow = ow0 + p;
        if (!row_ok || ow >= P.out_w) {
            continue;
        }
        let sp = (od * P.out_h + oh) * P.out_w + ow;
        for (var i = 0u; i < OB; i++) {
            let o = o0 + i;
            if (o < P.o) {
                y[(n * P.o + o) * osp + sp] = acc[i * PB + p] + bias_of(o);
            }
        }
    }
}
