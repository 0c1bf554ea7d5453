// conv_coop_wgrad.wgsl: gradient of a convolution w.r.t. its weight on matrix units
// (cooperative matrices), 2D and 3D, groups = 1, any stride / padding / dilation (and, with x
// and dy swapped by the host, of a transposed convolution). f16 operands, f32 accumulation.
//
// Formula: dw[o,c,k] = sum_{n,q} dy[n,o,q] * x[n, c, q*s - p + k*dl]   (per axis; 0 outside x)
// GEMM view: DW[o, r] = sum_col DY[o, col] * X[r, col], r = (c, kd, kh, kw),
// col = (n, od, oh, ow); M = O, N = R = C*kD*kH*kW, K = batch * out spatial (long).
// Split-K: workgroup z covers col in [z*chunk, min((z+1)*chunk, K)), chunk = aux2 (a multiple
// of BK), and writes part[z][o][r] (f32); the host sums the splits in a fixed order
// (reduce.wgsl sum_splits), or the kernel writes dw itself when splits = 1. Every split is
// summed by one workgroup in a fixed order: results are bitwise reproducible run to run.
//
// Tiles: 256 invocations = 8 subgroups of 32 (subgroup size must be 32), block BM x BN of DW
// with BM*BN = 16384 (BM = 128, BN = 128 for O > 64; BM = 64, BN = 256 for O <= 64); subgroup
// s owns rows wm0 = (s % (BM/64))*64, columns wn0 = (s / (BM/64))*32: 4 x 2 fragments 16 x 16
// (acc00..acc31, f32). K slices of BK = 32 positions.
// Staging (rows padded by PAD halves):
//   As[m * (BK+PAD) + k]  dy slice, row-major (A, coopLoadT). Invocation: k = lane (position
//                         k0 + lane, its (n, sp) decoded once per slice), rows m = subgroup + 8j
//                         (j < BM/8): a subgroup reads 32 consecutive positions (coalesced).
//   Bs[n * (BK+PAD) + k]  X^T slice, i.e. B(k, n) column-major (B, coopLoad). Invocation:
//                         k = lane, taps r = r0 + subgroup*BN/8 + j (j < BN/8), walked by
//                         increments from a decode done once; a subgroup reads 32 consecutive
//                         positions of one tap row (coalesced at stride 1).
// Double buffering through registers as in conv_coop.wgsl (fetch slice i+1 while multiplying
// slice i). Epilogue: per-subgroup 16 x 16 scratch (Cs), lanes write 16 consecutive r per half
// subgroup, bounds-checked.
// Grid: x (linearised with y) = ceil(O/BM) * ceil(R/BN) tiles (m tile fastest), z = splits.
// Params: aux = splits, aux2 = chunk.
// Bindings: 0 params, 1 x (read, act), 2 dy (read, act), 3 out (read_write, f32: part or dw).
// Overrides: BM (64 or 128), PAD (8; the emulated variant used in tests sets 0 where 8 would
// not fit a 32 KiB workgroup memory).
enable f16;
enable wgpu_cooperative_matrix;

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

override BM: u32 = 128u;
override PAD: u32 = 8u;
// Derived (not meant to be set): block columns, staging row stride, scratch row stride.
override BN: u32 = 16384u / BM;
override AST: u32 = BK + PAD;
override CST: u32 = 16u + PAD / 2u;
const BK: u32 = 32u;

var<workgroup> As: array<f16, BM * AST>;
var<workgroup> Bs: array<f16, BN * AST>;
var<workgroup> Cs: array<f32, 8u * 16u * CST>;

// ---- matrix operations: begin (tests swap this section for kernels/emu/coop_matrix.wgsl) ----
alias FragA = coop_mat16x16<f16, A>;
alias FragB = coop_mat16x16<f16, B>;
alias FragC = coop_mat16x16<f32, C>;
// lane (unused here) lets the emulation spread an accumulator over its subgroup.
fn frag_zero(lane: u32) -> FragC {
    return FragC();
}
// A(r, k) = As[off + r*stride + k]
fn load_a(off: u32, stride: u32) -> FragA {
    return coopLoadT<FragA>(&As[off], stride);
}
// B(k, n) = Bs[off + k*stride + n]
fn load_b_rows(off: u32, stride: u32) -> FragB {
    return coopLoadT<FragB>(&Bs[off], stride);
}
// B(k, n) = Bs[off + n*stride + k]
fn load_b_cols(off: u32, stride: u32) -> FragB {
    return coopLoad<FragB>(&Bs[off], stride);
}
// c + a * b
fn mma(a: FragA, b: FragB, c: FragC) -> FragC {
    return coopMultiplyAdd(a, b, c);
}
// Cs[off + r*stride + n] = c(r, n)
fn store_c(c: FragC, off: u32, stride: u32) {
    coopStoreT(c, &Cs[off], stride);
}
// ---- matrix operations: end ----

// Write one 16 x 16 accumulator of a subgroup to part: rows o0.., this lane's tap column
// (offset ob, valid when col_ok). Called in uniform control flow.
fn write_frag(acc: FragC, cs0: u32, o0: u32, ob: u32, col_ok: bool, lane: u32, R: u32) {
    store_c(acc, cs0, CST);
    workgroupBarrier();
    let ec = lane % 16u;
    for (var t = 0u; t < 8u; t++) {
        let r = lane / 16u + 2u * t;
        let o = o0 + r;
        if (col_ok && o < P.o) {
            part[ob + o * R] = Cs[cs0 + r * CST + ec];
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let osp = P.out_d * P.out_h * P.out_w;
    let R = P.c * P.kk;
    let KT = P.n * osp;
    let tiles_m = (P.o + BM - 1u) / BM;
    let tiles_n = (R + BN - 1u) / BN;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_m * tiles_n) {
        return;
    }
    let m0 = (tile % tiles_m) * BM;
    let n0 = (tile / tiles_m) * BN;
    let kbeg = wid.z * P.aux2;
    let kend = min(kbeg + P.aux2, KT);
    let warp = lid / 32u;
    let lane = lid % 32u;
    let wm0 = (warp % (BM / 64u)) * 64u;
    let wn0 = (warp / (BM / 64u)) * 32u;

    // X^T staging: this invocation's first tap r0 = n0 + warp*RPT, decoded once.
    let RPT = BN / 8u;
    let in_sp = P.in_d * P.in_h * P.in_w;
    let khw = P.k_h * P.k_w;
    let r0 = n0 + warp * RPT;
    let c0 = r0 / P.kk;
    let rt = r0 - c0 * P.kk;
    let kd0 = rt / khw;
    let kh0 = (rt - kd0 * khw) / P.k_w;
    let kw0 = rt - kd0 * khw - kh0 * P.k_w;

    var a_reg: array<f16, 16>;
    var b_reg: array<f16, 32>;
    var acc00 = frag_zero(lane);
    var acc01 = frag_zero(lane);
    var acc10 = frag_zero(lane);
    var acc11 = frag_zero(lane);
    var acc20 = frag_zero(lane);
    var acc21 = frag_zero(lane);
    var acc30 = frag_zero(lane);
    var acc31 = frag_zero(lane);

    var k0 = kbeg;
    loop {
        if (k0 < kend) {
            // This lane's position p = (n, od, oh, ow).
            let p = k0 + lane;
            let p_ok = p < kend;
            let pc = min(p, KT - 1u);
            let n = pc / osp;
            let sp = pc - n * osp;
            // ---- dy slice: rows m0 + warp + 8j, position p
            let dyb = n * P.o * osp + sp;
            for (var j = 0u; j < BM / 8u; j++) {
                let o = m0 + warp + 8u * j;
                let v = dy[dyb + min(o, P.o - 1u) * osp];
                a_reg[j] = select(f16(0.0), f16(v), p_ok && o < P.o);
            }
            // ---- x slice: taps r0 + j at position p
            let ow = sp % P.out_w;
            let st = sp / P.out_w;
            let oh = st % P.out_h;
            let od = st / P.out_h;
            let id0 = i32(od * P.s_d) - i32(P.p_d);
            let ih0 = i32(oh * P.s_h) - i32(P.p_h);
            let iw0 = i32(ow * P.s_w) - i32(P.p_w);
            var c = c0;
            var kd = kd0;
            var kh = kh0;
            var kw = kw0;
            var id = id0 + i32(kd0 * P.d_d);
            var ih = ih0 + i32(kh0 * P.d_h);
            var iw = iw0 + i32(kw0 * P.d_w);
            var cb = (n * P.c + c0) * in_sp;
            for (var j = 0u; j < RPT; j++) {
                var v = f16(0.0);
                if (p_ok && c < P.c && u32(id) < P.in_d && u32(ih) < P.in_h && u32(iw) < P.in_w) {
                    v = f16(x[cb + (u32(id) * P.in_h + u32(ih)) * P.in_w + u32(iw)]);
                }
                b_reg[j] = v;
                kw += 1u;
                iw += i32(P.d_w);
                if (kw == P.k_w) {
                    kw = 0u;
                    iw = iw0;
                    kh += 1u;
                    ih += i32(P.d_h);
                    if (kh == P.k_h) {
                        kh = 0u;
                        ih = ih0;
                        kd += 1u;
                        id += i32(P.d_d);
                        if (kd == P.k_d) {
                            kd = 0u;
                            id = id0;
                            c += 1u;
                            cb += in_sp;
                        }
                    }
                }
            }
        }
        if (k0 > kbeg) {
            for (var kk = 0u; kk < BK; kk += 16u) {
                let a0 = load_a(wm0 * AST + kk, AST);
                let a1 = load_a((wm0 + 16u) * AST + kk, AST);
                let a2 = load_a((wm0 + 32u) * AST + kk, AST);
                let a3 = load_a((wm0 + 48u) * AST + kk, AST);
                let b0 = load_b_cols(wn0 * AST + kk, AST);
                let b1 = load_b_cols((wn0 + 16u) * AST + kk, AST);
                acc00 = mma(a0, b0, acc00);
                acc01 = mma(a0, b1, acc01);
                acc10 = mma(a1, b0, acc10);
                acc11 = mma(a1, b1, acc11);
                acc20 = mma(a2, b0, acc20);
                acc21 = mma(a2, b1, acc21);
                acc30 = mma(a3, b0, acc30);
                acc31 = mma(a3, b1, acc31);
            }
        }
        if (k0 >= kend) {
            break;
        }
        workgroupBarrier();
        for (var j = 0u; j < BM / 8u; j++) {
            As[(warp + 8u * j) * AST + lane] = a_reg[j];
        }
        for (var j = 0u; j < RPT; j++) {
            Bs[(warp * RPT + j) * AST + lane] = b_reg[j];
        }
        workgroupBarrier();
        k0 += BK;
    }

    // ---- epilogue: this lane's two tap columns (fragment columns 0 and 1)
    let ecol0 = n0 + wn0 + lane % 16u;
    let ecol1 = ecol0 + 16u;
    let zb = wid.z * P.o * R;
    let cs0 = warp * 16u * CST;
    let o0 = m0 + wm0;
    let ok0 = ecol0 < R;
    let ok1 = ecol1 < R;
    write_frag(acc00, cs0, o0, zb + ecol0, ok0, lane, R);
    write_frag(acc01, cs0, o0, zb + ecol1, ok1, lane, R);
    write_frag(acc10, cs0, o0 + 16u, zb + ecol0, ok0, lane, R);
    write_frag(acc11, cs0, o0 + 16u, zb + ecol1, ok1, lane, R);
    write_frag(acc20, cs0, o0 + 32u, zb + ecol0, ok0, lane, R);
    write_frag(acc21, cs0, o0 + 32u, zb + ecol1, ok1, lane, R);
    write_frag(acc30, cs0, o0 + 48u, zb + ecol0, ok0, lane, R);
    write_frag(acc31, cs0, o0 + 48u, zb + ecol1, ok1, lane, R);
}
