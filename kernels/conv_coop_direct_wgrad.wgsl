// conv_coop_direct_wgrad.wgsl: weight gradient of a stride-1 convolution on matrix units
// (cooperative matrices) with the input staged once per output box and channel chunk and
// reused by every tap. 2D and 3D (2D runs with D = KD = TD = 1), groups 1, stride 1,
// dilation 1, any padding. f16 operands, f32 accumulation.
//
// Formula: dw[o,c,kd,kh,kw] = sum_{n,q} dy[n,o,q] * x[n, c, q + (kd,kh,kw) - pad]  (0 outside x)
// GEMM view per tap t: DW_t[o, c] = sum_q DY[o, q] * X[c, q + shift(t)]: M = O, N = 16
// channels of a chunk for each of the KK taps, K = output positions, walked box by box.
//
// Tiles: 256 invocations = 8 subgroups of 32 (subgroup size must be 32). A workgroup owns BM
// output channels (BM = 32 or 64: NP = BM/32 pairs of 16-row fragments) x one chunk of 16
// input channels x all KK taps, and sums over the output boxes of its split (z). Units
// (o pair, tap) are dealt to the subgroups: subgroup s owns pair p = s % NP and taps
// t_j = s / NP + (8/NP)*j, j < UPW = ceil(NP*KK/8) (taps >= KK are computed on a clamped
// offset and not written): accumulators acc{0,1}{j} (f32). Per 16-position K step a subgroup
// loads 2 A fragments (dy) and UPW B fragments (x, one per tap) for 2*UPW multiply-adds.
// Output box TD x TH x TW = BN positions (TW a multiple of 16, so a K step is 16 consecutive
// ow of one output row).
// Staging, per box (workgroup memory):
//   As[m * DS + q]   dy of the BM rows at the BN box positions q (box-linear), row-major A
//                    (coopLoadT), DS = BN + PAD; 0 outside the output and for o >= O.
//                    Invocation: q = lid % BN (decoded once), rows lid / BN + (256/BN)*i:
//                    consecutive invocations read consecutive ow (coalesced).
//   Bs[p * CS + c]   x of the chunk on the input box (output box + halo), channel-innermost,
//                    CS = 16 + PAD, exactly as in conv_coop_direct.wgsl (positions
//                    lid + 256i, 16 channels each). B of tap t for the K step at box
//                    (td,th,tw0): B(k = q, n = c) = Bs[(((td+kd)*BH + th+kh)*BW + tw0+kw + k)
//                    * CS + c], a row-major load (coopLoadT) with stride CS: every tap shift
//                    is a whole number of positions, so pointers and stride stay 16-byte
//                    aligned (CS = 24 halves = 48 bytes, also conflict-free).
// Double buffering through registers: box i+1 is loaded into registers while box i is
// multiplied (fetch(i+1), compute(i), barrier, store(i+1), barrier).
// Split-K: workgroup z sums boxes [z*aux2, min((z+1)*aux2, boxes)) in order and writes
// part[z][o][c*KK + t] (f32); the host sums the splits in a fixed order (reduce.wgsl
// sum_splits), or the kernel writes dw itself when splits = 1: bitwise reproducible.
// Epilogue: per-subgroup 16 x 16 scratch (Cs), lanes write 16 channels per half subgroup,
// bounds-checked in o, c and t.
// Grid: x (linearised with y) = ceil(O/BM) * ceil(C/16) tiles (m tile fastest), z = splits.
// Params: aux = splits, aux2 = boxes per split.
// Bindings: 0 params, 1 x (read, act), 2 dy (read, act), 3 out (read_write, f32: part or dw).
// Overrides: BM (32, 64), UPW (1..4), TD, TH, TW, KD, KH, KW, PAD (8; the emulated variant
// may set 0).
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

override BM: u32 = 32u;
override UPW: u32 = 4u;
override TD: u32 = 2u;
override TH: u32 = 4u;
override TW: u32 = 16u;
override KD: u32 = 3u;
override KH: u32 = 3u;
override KW: u32 = 3u;
override PAD: u32 = 8u;
// Derived (not meant to be set).
override NP: u32 = BM / 32u;
override BN: u32 = TD * TH * TW;
override DS: u32 = BN + PAD;
override CS: u32 = 16u + PAD;
override KK: u32 = KD * KH * KW;
override BD: u32 = TD + KD - 1u;
override BH: u32 = TH + KH - 1u;
override BW: u32 = TW + KW - 1u;
override BOX: u32 = BD * BH * BW;
override PPT: u32 = (BOX + 255u) / 256u;
override YPT: u32 = BM * BN / 256u;

var<workgroup> As: array<f16, BM * DS>;
var<workgroup> Bs: array<f16, BOX * CS>;
var<workgroup> Cs: array<f32, 2048>;

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

// Box-relative offset (halves) of tap t in the staged input box.
fn tap_offset(t: u32) -> u32 {
    let kw = t % KW;
    let kh = (t / KW) % KH;
    let kd = t / (KW * KH);
    return ((kd * BH + kh) * BW + kw) * CS;
}

// Write one 16 x 16 accumulator: rows o0.., channels c0 + lane%16, tap t, to part at zb.
// Called in uniform control flow.
fn write_frag(acc: FragC, cs0: u32, o0: u32, c0: u32, t: u32, zb: u32, lane: u32) {
    store_c(acc, cs0, 16u);
    workgroupBarrier();
    let ec = lane % 16u;
    let c = c0 + ec;
    let R = P.c * KK;
    for (var s = 0u; s < 8u; s++) {
        let r = lane / 16u + 2u * s;
        let o = o0 + r;
        if (o < P.o && c < P.c && t < KK) {
            part[zb + o * R + c * KK + t] = Cs[cs0 + r * 16u + ec];
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let tiles_m = (P.o + BM - 1u) / BM;
    let chunks = (P.c + 15u) / 16u;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_m * chunks) {
        return;
    }
    let m0 = (tile % tiles_m) * BM;
    let c0 = (tile / tiles_m) * 16u;
    let tdn = (P.out_d + TD - 1u) / TD;
    let thn = (P.out_h + TH - 1u) / TH;
    let twn = (P.out_w + TW - 1u) / TW;
    let nb = P.n * tdn * thn * twn;
    let b_beg = wid.z * P.aux2;
    let b_end = min(b_beg + P.aux2, nb);
    let warp = lid / 32u;
    let lane = lid % 32u;
    let pr = warp % NP;
    let tap0 = warp / NP;
    let tstep = 8u / NP;
    let in_sp = P.in_d * P.in_h * P.in_w;
    let osp = P.out_d * P.out_h * P.out_w;

    // This subgroup's taps (offsets clamped to a real tap).
    var to: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) {
        to[j] = tap_offset(min(tap0 + tstep * j, KK - 1u));
    }
    // dy staging: this invocation's box position q (fixed) and rows lid / BN + (256/BN)*i.
    let yq = lid % BN;
    let yqw = yq % TW;
    let yqh = (yq / TW) % TH;
    let yqd = yq / (TW * TH);
    let yo0 = lid / BN;
    // x staging: this invocation's box positions lid + 256i (box-relative decode).
    var xbd: array<u32, 3>;
    var xbh: array<u32, 3>;
    var xbw: array<u32, 3>;
    for (var i = 0u; i < PPT; i++) {
        let p = lid + 256u * i;
        xbw[i] = p % BW;
        xbh[i] = (p / BW) % BH;
        xbd[i] = p / (BW * BH);
    }

    var xr: array<f16, 48>;
    var yr: array<f16, 32>;
    var acc00 = frag_zero(lane);
    var acc01 = frag_zero(lane);
    var acc02 = frag_zero(lane);
    var acc03 = frag_zero(lane);
    var acc10 = frag_zero(lane);
    var acc11 = frag_zero(lane);
    var acc12 = frag_zero(lane);
    var acc13 = frag_zero(lane);

    var b = b_beg;
    loop {
        if (b < b_end) {
            // Box b -> (n, od0, oh0, ow0), w fastest.
            var s = b;
            let ow0 = (s % twn) * TW;
            s = s / twn;
            let oh0 = (s % thn) * TH;
            s = s / thn;
            let od0 = (s % tdn) * TD;
            let n = s / tdn;
            // ---- dy rows of the tile at this invocation's box position
            let od = od0 + yqd;
            let oh = oh0 + yqh;
            let ow = ow0 + yqw;
            let q_ok = od < P.out_d && oh < P.out_h && ow < P.out_w;
            let yb = n * P.o * osp + (od * P.out_h + oh) * P.out_w + ow;
            for (var i = 0u; i < YPT; i++) {
                let o = m0 + yo0 + (256u / BN) * i;
                var v = f16(0.0);
                if (q_ok && o < P.o) {
                    v = f16(dy[yb + o * osp]);
                }
                yr[i] = v;
            }
            // ---- x of the chunk on the input box
            for (var i = 0u; i < PPT; i++) {
                let p = lid + 256u * i;
                let id = i32(od0 + xbd[i]) - i32(P.p_d);
                let ih = i32(oh0 + xbh[i]) - i32(P.p_h);
                let iw = i32(ow0 + xbw[i]) - i32(P.p_w);
                let ok = p < BOX && u32(id) < P.in_d && u32(ih) < P.in_h && u32(iw) < P.in_w;
                let xb = n * P.c * in_sp + (u32(id) * P.in_h + u32(ih)) * P.in_w + u32(iw);
                for (var j = 0u; j < 16u; j++) {
                    var v = f16(0.0);
                    if (ok && c0 + j < P.c) {
                        v = f16(x[xb + (c0 + j) * in_sp]);
                    }
                    xr[i * 16u + j] = v;
                }
            }
        }
        if (b > b_beg) {
            for (var kf = 0u; kf < BN / 16u; kf++) {
                let q0 = kf * 16u;
                let tw0 = q0 % TW;
                let th = (q0 / TW) % TH;
                let td = q0 / (TW * TH);
                let xo = ((td * BH + th) * BW + tw0) * CS;
                let a0 = load_a(pr * 32u * DS + q0, DS);
                let a1 = load_a((pr * 32u + 16u) * DS + q0, DS);
                let b0 = load_b_rows(xo + to[0], CS);
                acc00 = mma(a0, b0, acc00);
                acc10 = mma(a1, b0, acc10);
                if (UPW > 1u) {
                    let b1 = load_b_rows(xo + to[1], CS);
                    acc01 = mma(a0, b1, acc01);
                    acc11 = mma(a1, b1, acc11);
                }
                if (UPW > 2u) {
                    let b2 = load_b_rows(xo + to[2], CS);
                    acc02 = mma(a0, b2, acc02);
                    acc12 = mma(a1, b2, acc12);
                }
                if (UPW > 3u) {
                    let b3 = load_b_rows(xo + to[3], CS);
                    acc03 = mma(a0, b3, acc03);
                    acc13 = mma(a1, b3, acc13);
                }
            }
        }
        if (b >= b_end) {
            break;
        }
        workgroupBarrier();
        for (var i = 0u; i < YPT; i++) {
            As[(yo0 + (256u / BN) * i) * DS + yq] = yr[i];
        }
        for (var i = 0u; i < PPT; i++) {
            let p = lid + 256u * i;
            if (p < BOX) {
                for (var j = 0u; j < 16u; j++) {
                    Bs[p * CS + j] = xr[i * 16u + j];
                }
            }
        }
        workgroupBarrier();
        b += 1u;
    }

    // ---- epilogue
    let zb = wid.z * P.o * P.c * KK;
    let cs0 = warp * 256u;
    let o0 = m0 + pr * 32u;
    write_frag(acc00, cs0, o0, c0, tap0, zb, lane);
    write_frag(acc10, cs0, o0 + 16u, c0, tap0, zb, lane);
    if (UPW > 1u) {
        write_frag(acc01, cs0, o0, c0, tap0 + tstep, zb, lane);
        write_frag(acc11, cs0, o0 + 16u, c0, tap0 + tstep, zb, lane);
    }
    if (UPW > 2u) {
        write_frag(acc02, cs0, o0, c0, tap0 + 2u * tstep, zb, lane);
        write_frag(acc12, cs0, o0 + 16u, c0, tap0 + 2u * tstep, zb, lane);
    }
    if (UPW > 3u) {
        write_frag(acc03, cs0, o0, c0, tap0 + 3u * tstep, zb, lane);
        write_frag(acc13, cs0, o0 + 16u, c0, tap0 + 3u * tstep, zb, lane);
    }
}
