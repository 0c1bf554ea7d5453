// conv_coop.wgsl: convolution forward on matrix units (cooperative matrices), 2D and 3D
// (2D runs with D = kD = 1), groups = 1, any stride / padding / dilation. f16 operands,
// f32 accumulation. Also the stride-1 input gradient: the host runs this kernel on dy with the
// flipped, transposed weight and pad' = dil*(k-1) - pad (src/ops/conv.rs::dgrad_any).
//
// Formula (cross-correlation, PyTorch semantics; taps outside the input read 0):
//   y[n,o,od,oh,ow] = b[o] + sum_{c,kd,kh,kw} w[o,c,kd,kh,kw]
//                     * x[n, c, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
// Implicit GEMM: Y[o, col] = sum_r W[o, r] * X[r, col], col = (n, od, oh, ow),
// r = (c, kd, kh, kw); M = O, N = batch * out spatial, K = C * kD*kH*kW.
// Operands are rounded to f16 while they are staged (x read as act: f32 or f16; w is the f32
// master weight); products are summed in f32 by the matrix units; bias is added in f32 and
// the result stored as act.
//
// Tiles: a workgroup of 256 invocations = 8 subgroups of 32 (the host uses this kernel only
// where the subgroup size is exactly 32) owns a BM x BN block of Y, BM*BN = 16384:
//   BM = 128, BN = 128 (override BM = 128; the host's choice for O > 64), or
//   BM = 64,  BN = 256 (BM = 64; for O <= 64).
// Subgroup s = local_invocation_index / 32 owns a 64 x 32 warp tile: rows wm0 = (s % (BM/64))*64,
// columns wn0 = (s / (BM/64))*32, i.e. 4 x 2 fragments of 16 x 16 (accumulators acc00..acc31,
// f32). K is walked in slices of BK = 32 (two 16-deep fragment steps per slice).
// Staging (workgroup memory, rows padded by PAD halves so the 8 rows a matrix load reads fall
// in different banks):
//   As[m * (BK+PAD) + k]   W slice, row-major (A operand, coopLoadT). Invocation: k = lane,
//                          rows m = subgroup + 8j (j < BM/8): a subgroup reads 32 consecutive
//                          weights of one row (coalesced), converting f32 -> f16.
//   Bs[k * (BN+PAD) + n]   X slice, row-major (B operand, coopLoadT). Invocation: column
//                          n = lid % BN (its (n, od, oh, ow) decoded once), k rows
//                          (lid / BN) * BN/8 + j (j < BN/8): consecutive invocations read
//                          consecutive output positions (coalesced at stride 1). The tap walk
//                          (c, kd, kh, kw) goes by increments, no division per staged element.
// Double buffering through registers: slice i+1 is loaded from global memory into registers
// while slice i is multiplied from workgroup memory (loop below: fetch(i+1), compute(i),
// barrier, store(i+1), barrier).
// Epilogue: each subgroup stores one accumulator at a time (coopStoreT) into its own 16 x 16
// scratch (Cs, row stride 16 + PAD/2), then its 32 lanes write the fragment to y: lane -> column
// lane % 16, rows lane / 16 + 2t; 16 consecutive outputs per half-subgroup, bounds-checked in
// o and col (partial tiles, batch boundaries inside a tile), bias added, through a ReLU with
// flags & 8 (precision/epilogue.wgsl), converted to act.
// Grid: ceil(O/BM) * ceil(N/BN) workgroups, linearised over x and y; tile index
// t -> (m tile = t % tiles_m, n tile = t / tiles_m) so the workgroups that share an X block run
// together.
// Bindings: 0 params (uniform), 1 x (read, act), 2 w (read, f32), 3 bias (read, f32; used when
//           flags & 1), 4 y (read_write, act).
// Overrides: BM (64 or 128), PAD (8; the emulated variant used in tests may set 0).
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
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;

override BM: u32 = 128u;
override PAD: u32 = 8u;
// Derived (not meant to be set): block columns, staging row strides, scratch row stride.
override BN: u32 = 16384u / BM;
override AST: u32 = BK + PAD;
override BST: u32 = BN + PAD;
override CST: u32 = 16u + PAD / 2u;
const BK: u32 = 32u;

var<workgroup> As: array<f16, BM * AST>;
var<workgroup> Bs: array<f16, BK * BST>;
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

fn bias_of(o: u32) -> f32 {
    if ((P.flags & 1u) != 0u) {
        return bias[o];
    }
    return 0.0;
}

// Write one 16 x 16 accumulator of a subgroup to y: rows o0.., this lane's column (y offset
// yb, valid when col_ok). cs0 = the subgroup's scratch. Called in uniform control flow.
fn write_frag(acc: FragC, cs0: u32, o0: u32, yb: u32, col_ok: bool, lane: u32, osp: u32) {
    store_c(acc, cs0, CST);
    workgroupBarrier();
    let ec = lane % 16u;
    for (var t = 0u; t < 8u; t++) {
        let r = lane / 16u + 2u * t;
        let o = o0 + r;
        if (col_ok && o < P.o) {
            y[yb + o * osp] = store_act(Cs[cs0 + r * CST + ec] + bias_of(o), (P.flags & 8u) != 0u);
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let osp = P.out_d * P.out_h * P.out_w;
    let NC = P.n * osp;
    let K = P.c * P.kk;
    let tiles_m = (P.o + BM - 1u) / BM;
    let tiles_n = (NC + BN - 1u) / BN;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_m * tiles_n) {
        return;
    }
    let m0 = (tile % tiles_m) * BM;
    let n0 = (tile / tiles_m) * BN;
    let warp = lid / 32u;
    let lane = lid % 32u;
    let wm0 = (warp % (BM / 64u)) * 64u;
    let wn0 = (warp / (BM / 64u)) * 32u;

    // X staging: this invocation's column and the first of its KPT k rows.
    let KPT = BN / 8u;
    let bcol = lid % BN;
    let bk0 = (lid / BN) * KPT;
    let in_sp = P.in_d * P.in_h * P.in_w;
    let gcol = n0 + bcol;
    let col_ok = gcol < NC;
    let gc = min(gcol, NC - 1u);
    let cn = gc / osp;
    let csp = gc - cn * osp;
    let cow = csp % P.out_w;
    let ct = csp / P.out_w;
    let coh = ct % P.out_h;
    let cod = ct / P.out_h;
    let id0 = i32(cod * P.s_d) - i32(P.p_d);
    let ih0 = i32(coh * P.s_h) - i32(P.p_h);
    let iw0 = i32(cow * P.s_w) - i32(P.p_w);
    let xbase = cn * P.c * in_sp;
    let khw = P.k_h * P.k_w;

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

    // Iteration i loads slice i into registers, multiplies slice i-1 (already in workgroup
    // memory), then stores slice i to workgroup memory.
    var k0 = 0u;
    loop {
        if (k0 < K) {
            // ---- W slice: rows m0 + warp + 8j, column k0 + lane
            let k = k0 + lane;
            let kc = min(k, K - 1u);
            for (var j = 0u; j < BM / 8u; j++) {
                let o = m0 + warp + 8u * j;
                let v = w[min(o, P.o - 1u) * K + kc];
                a_reg[j] = f16(select(0.0, v, o < P.o && k < K));
            }
            // ---- X slice: column gcol, rows k0 + bk0 + j, tap walk by increments
            let ks = k0 + bk0;
            var c = ks / P.kk;
            let t = ks - c * P.kk;
            var kd = t / khw;
            let t2 = t - kd * khw;
            var kh = t2 / P.k_w;
            var kw = t2 - kh * P.k_w;
            var id = id0 + i32(kd * P.d_d);
            var ih = ih0 + i32(kh * P.d_h);
            var iw = iw0 + i32(kw * P.d_w);
            var cb = xbase + c * in_sp;
            for (var j = 0u; j < KPT; j++) {
                var v = f16(0.0);
                if (col_ok && c < P.c && u32(id) < P.in_d && u32(ih) < P.in_h && u32(iw) < P.in_w) {
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
        if (k0 > 0u) {
            for (var kk = 0u; kk < BK; kk += 16u) {
                let a0 = load_a(wm0 * AST + kk, AST);
                let a1 = load_a((wm0 + 16u) * AST + kk, AST);
                let a2 = load_a((wm0 + 32u) * AST + kk, AST);
                let a3 = load_a((wm0 + 48u) * AST + kk, AST);
                let b0 = load_b_rows(kk * BST + wn0, BST);
                let b1 = load_b_rows(kk * BST + wn0 + 16u, BST);
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
        if (k0 >= K) {
            break;
        }
        workgroupBarrier();
        for (var j = 0u; j < BM / 8u; j++) {
            As[(warp + 8u * j) * AST + lane] = a_reg[j];
        }
        for (var j = 0u; j < KPT; j++) {
            Bs[(bk0 + j) * BST + bcol] = b_reg[j];
        }
        workgroupBarrier();
        k0 += BK;
    }

    // ---- epilogue: this lane's two output columns (fragment columns 0 and 1)
    let ecol0 = n0 + wn0 + lane % 16u;
    let ecol1 = ecol0 + 16u;
    let en0 = min(ecol0, NC - 1u) / osp;
    let en1 = min(ecol1, NC - 1u) / osp;
    let yb0 = en0 * P.o * osp + (min(ecol0, NC - 1u) - en0 * osp);
    let yb1 = en1 * P.o * osp + (min(ecol1, NC - 1u) - en1 * osp);
    let ok0 = ecol0 < NC;
    let ok1 = ecol1 < NC;
    let cs0 = warp * 16u * CST;
    let o0 = m0 + wm0;
    write_frag(acc00, cs0, o0, yb0, ok0, lane, osp);
    write_frag(acc01, cs0, o0, yb1, ok1, lane, osp);
    write_frag(acc10, cs0, o0 + 16u, yb0, ok0, lane, osp);
    write_frag(acc11, cs0, o0 + 16u, yb1, ok1, lane, osp);
    write_frag(acc20, cs0, o0 + 32u, yb0, ok0, lane, osp);
    write_frag(acc21, cs0, o0 + 32u, yb1, ok1, lane, osp);
    write_frag(acc30, cs0, o0 + 48u, yb0, ok0, lane, osp);
    write_frag(acc31, cs0, o0 + 48u, yb1, ok1, lane, osp);
}
