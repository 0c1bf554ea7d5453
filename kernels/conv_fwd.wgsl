// conv_fwd.wgsl: convolution forward, 2D and 3D (2D runs with D = kD = 1), groups = 1.
//
// Formula (cross-correlation, PyTorch semantics; taps outside the input read 0):
//   y[n,o,od,oh,ow] = b[o] + sum_{c,kd,kh,kw} w[o,c,kd,kh,kw]
//                     * x[n, c, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
// Implicit GEMM: Y[o, col] = sum_r W[o, r] * X[r, col] with col = (n, od, oh, ow) and
// r = (c, kd, kh, kw); M = O, N = batch * out spatial, K = C * kD*kH*kW.
//
// Entry points (same bindings and params):
//   main_tiled  GPUs. 128 threads; a workgroup owns a 64 (o) x 128 (col) tile of Y and walks K
//               in slices of 16, staging W and X slices in workgroup memory (double-buffered
//               through registers). Each thread keeps an 8x8 register block (see below).
//   main_cpu    CPU adapters (lavapipe). No workgroup memory, no barriers (both are expensive
//               when a CPU emulates them). A workgroup of WG (64, fewer for tiny outputs)
//               invocations owns OB output channels and WG/LPR output rows (LPR = lanes per row, params.aux), each lane PB
//               adjacent positions of its row; every invocation accumulates an OB x PB block.
//               Weight reads are the same address in every invocation (scalar loads).
//   main_direct Fallback / reference: one output per invocation.
// Grid: main_tiled: ceil(O/64) * ceil(N/128) workgroups, linearised over x and y.
//       main_cpu:   ceil(O/OB) * ceil(rows/(WG/LPR)) * ceil(out_w/(LPR*PB)), linearised.
//       main_direct: ceil(O*N/64) workgroups, linearised.
// Flags: bit 0 bias, bit 3 fused ReLU on the stored output (precision/epilogue.wgsl).
// Bindings: 0 params (uniform), 1 x (read), 2 w (read), 3 bias (read; used when flags & 1),
//           4 y (read_write). x and y are activations (`act`: f32, or f16 storage in mixed
//           precision; as the stride-1 input gradient they hold dy and dx); w and bias are f32.
//           x is widened to f32 when loaded into registers, the GEMM accumulates in f32 and y
//           is narrowed on store.

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
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;

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
    return f32(x[(((n * P.c + c) * P.in_d + u32(id)) * P.in_h + u32(ih)) * P.in_w + u32(iw)]);
}

fn bias_of(o: u32) -> f32 {
    if ((P.flags & 1u) != 0u) {
        return bias[o];
    }
    return 0.0;
}

// The output value stored: with the fused ReLU of flags bit 3 (precision/epilogue.wgsl).
fn out_act(v: f32) -> act {
    return store_act(v, (P.flags & 8u) != 0u);
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
    y[idx] = out_act(acc);
}

// ---------------------------------------------------------------- main_tiled
const BM: u32 = 64u;
const BN: u32 = 128u;
const BK: u32 = 16u;

var<workgroup> As: array<vec4<f32>, 256>;   // [BK][BM/4]
var<workgroup> Bs: array<vec4<f32>, 512>;   // [BK][BN/4]

// 128 threads; thread (tx, ty) = (lid % 16, lid / 16) owns rows {ty*4.., 32+ty*4..} and
// columns {tx*4.., 64+tx*4..} of the tile: an 8x8 register block, read from workgroup memory as
// vec4s. Staging: W rows m = lid/2, k half (lid%2)*8 (8 values); X column lid, all 16 k rows (its
// im2col coordinates decoded once; the k decode walks by increments, no divisions). The next
// slice is fetched into registers while the current one is multiplied (double buffering).
@compute @workgroup_size(128)
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
    let in_sp = in_spatial();
    let hw = P.in_h * P.in_w;

    // X column of this thread.
    let gcol = n0 + lid;
    let col_ok = gcol < NC;
    let gc = min(gcol, NC - 1u);
    let cn = gc / osp;
    let csp = gc - cn * osp;
    let cow = csp % P.out_w;
    let coh = (csp / P.out_w) % P.out_h;
    let cod = csp / (P.out_w * P.out_h);
    let id0 = i32(cod * P.s_d) - i32(P.p_d);
    let ih0 = i32(coh * P.s_h) - i32(P.p_h);
    let iw0 = i32(cow * P.s_w) - i32(P.p_w);
    let xbase = cn * P.c * in_sp;
    // W staging position of this thread.
    let am = lid / 2u;
    let ak = (lid % 2u) * 8u;
    let arow_ok = m0 + am < P.o;
    let abase = (m0 + am) * K;

    var a_reg: array<f32, 8>;
    var b_reg: array<f32, 16>;
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    var k0 = 0u;
    loop {
        // ---- fetch slice k0 into registers
        for (var j = 0u; j < 8u; j++) {
            let k = k0 + ak + j;
            a_reg[j] = select(0.0, w[abase + min(k, K - 1u)], arow_ok && k < K);
        }
        {
            let c_ = k0 / P.kk;
            let t = k0 - c_ * P.kk;
            let khw = P.k_h * P.k_w;
            var c = c_;
            var kd = t / khw;
            var kh = (t - kd * khw) / P.k_w;
            var kw = t - kd * khw - kh * P.k_w;
            for (var j = 0u; j < 16u; j++) {
                let id = id0 + i32(kd * P.d_d);
                let ih = ih0 + i32(kh * P.d_h);
                let iw = iw0 + i32(kw * P.d_w);
                let ok = col_ok && k0 + j < K && id >= 0 && ih >= 0 && iw >= 0
                    && id < i32(P.in_d) && ih < i32(P.in_h) && iw < i32(P.in_w);
                let xi = xbase + c * in_sp + u32(max(id, 0)) * hw + u32(max(ih, 0)) * P.in_w + u32(max(iw, 0));
                b_reg[j] = 0.0;
                if (ok) {
                    b_reg[j] = f32(x[xi]);
                }
                kw += 1u;
                if (kw == P.k_w) {
                    kw = 0u;
                    kh += 1u;
                    if (kh == P.k_h) {
                        kh = 0u;
                        kd += 1u;
                        if (kd == P.k_d) {
                            kd = 0u;
                            c += 1u;
                        }
                    }
                }
            }
        }
        workgroupBarrier();
        // ---- registers -> workgroup memory
        for (var j = 0u; j < 8u; j++) {
            As[(ak + j) * 16u + am / 4u][am % 4u] = a_reg[j];
        }
        for (var j = 0u; j < 16u; j++) {
            Bs[j * 32u + lid / 4u][lid % 4u] = b_reg[j];
        }
        workgroupBarrier();
        // ---- multiply the slice
        let tx = lid % 16u;
        let ty = lid / 16u;
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
        k0 += BK;
        if (k0 >= K) {
            break;
        }
    }

    let tx = lid % 16u;
    let ty = lid / 16u;
    for (var ri = 0u; ri < 8u; ri++) {
        let o = m0 + (ri / 4u) * 32u + ty * 4u + ri % 4u;
        if (o >= P.o) {
            continue;
        }
        let bo = bias_of(o);
        for (var h = 0u; h < 2u; h++) {
            let v = acc[ri * 2u + h];
            for (var j = 0u; j < 4u; j++) {
                let col = n0 + h * 64u + tx * 4u + j;
                if (col < NC) {
                    let n = col / osp;
                    y[(n * P.o + o) * osp + (col - n * osp)] = out_act(v[j] + bo);
                }
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
// Invocations per workgroup: 64, or fewer (down to 8) when the output is so small that
// 64 lanes could not all get positions.
override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main_cpu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let span = (PB - 1u) * SW + (KW - 1u) * DW + 1u;
    // aux = lanes per output row (LPR); a workgroup covers WG / LPR rows.
    let lpr = P.aux;
    let rpw = WG / lpr;
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
                        v[t] = f32(x[xrow + u32(iw)]);
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
                y[(n * P.o + o) * osp + sp] = out_act(acc[i * PB + p] + bias_of(o));
            }
        }
    }
}
