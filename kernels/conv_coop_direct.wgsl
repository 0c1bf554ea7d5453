// conv_coop_direct.wgsl: stride-1 convolution forward on matrix units (cooperative matrices)
// with the input staged once per channel chunk in workgroup memory and reused by every tap.
// 2D and 3D (2D runs with D = KD = TD = 1), groups 1, stride 1, dilation 1, any kernel size the
// host's tile table fits (KD, KH, KW <= 3) and any padding (taps outside the input read 0).
// f16 operands, f32 accumulation. The host also runs it for the stride-1 input gradient: the
// forward on dy with the flipped, transposed weight and pad' = k-1-pad (src/ops/conv.rs).
//
// Formula (cross-correlation, PyTorch semantics):
//   y[n,o,od,oh,ow] = b[o] + sum_{c,kd,kh,kw} w[o,c,kd,kh,kw] * x[n,c,od-pd+kd,oh-ph+kh,ow-pw+kw]
// GEMM view per tap t = (kd,kh,kw): Y[o, q] += W_t[o, c] * X[c, q + shift(t)], q an output
// position; M = O, N = positions, K = C per tap, all taps accumulated into the same fragments.
//
// Tiles: a workgroup of 256 invocations = 8 subgroups of 32 (the host uses this kernel only
// where the subgroup size is exactly 32) owns BM output channels x one output box of
// TD x TH x TW positions of one batch item (BN = TD*TH*TW positions, TW a multiple of 16, so
// that a 16-column fragment is 16 consecutive ow of one output row). Subgroup s owns rows
// wm0 = (s % WM)*16*WMF (WMF = 2 or 4 fragments of 16; WM = BM/(16*WMF) subgroups along M)
// and box-linear columns wn0 = (s / WM) * WNF*16 (WNF = 2 or 4 fragments): accumulators
// acc{0..WMF-1}{0..WNF-1}, so per tap WMF + WNF fragment loads feed WMF*WNF multiply-adds.
// BN = (8 / WM) * 16 * WNF. The host's rule (src/ops/coop/direct.rs, direct_tile): WMF = 2,
// BM = 32 for O <= 32, 64 for O <= 64 (and every O > 64 in 3D), else 128; WNF = 4 in 2D
// (BN 512 / 256 / 128), 2 in 3D (BN 256 / 128); the box TD x TH x TW with that many
// positions staging the fewest input positions per useful output (ties: wider). On real
// matrix units the host measures the rule's tile against its neighbours (WMF = 4 among
// them: 64 x 64 per subgroup with BM 128 or 64) and keeps the fastest (src/ops/coop/tuned.rs).
//
// Staging, per chunk of 16 input channels (K = 16 = one fragment step per tap):
//   Bs[p * CS + c]   the input box of the chunk, channel-innermost: box position
//                    p = (bd*BH + bh)*BW + bw over BD x BH x BW = (TD+KD-1) x (TH+KH-1) x
//                    (TW+KW-1), c < 16, CS = 16 + PAD halves per position. Zero outside the
//                    input (the halo at the borders, padding) and for channels >= C.
//                    Invocation: box positions p = lid + 256i (i < PPT = ceil(BOX/256)), all
//                    16 channels of each: consecutive invocations read consecutive input
//                    positions of one channel row (coalesced), bounds decided once per
//                    position.
//   B fragment of tap (kd,kh,kw) for output fragment f at box (td,th,tw0):
//                    B(k = c, n) = Bs[(((td+kd)*BH + th+kh)*BW + tw0+kw + n) * CS + c], a
//                    column-major load (coopLoad) with stride CS. Every tap shift moves the
//                    pointer by whole positions, i.e. by multiples of CS halves: with
//                    CS = 24 (48 bytes) every fragment pointer and the stride are 16-byte
//                    aligned (the Vulkan rule), no shifted copies are needed, and the 8 rows
//                    of each 8x8 load phase fall in 8 different 16-byte bank groups (48/16 = 3
//                    is odd).
//   As[(t*BM + m) * CS + c]   W for the chunk and the TPS = RPS*KW taps of a step (RPS rows
//                    (kd,kh) of taps), row-major A (coopLoadT), in f16.
//                    WPACK = 0: w holds the f32 weight (O, C, taps) as bits; invocation: (m, c)
//                    pairs m = lid/16 + 16i, c = lid%16 (i < BM/16), the TPS consecutive taps
//                    of each (contiguous in w), converted f32 -> f16.
//                    WPACK = 1: w holds the weight packed by weights.wgsl `pack_f16`: word
//                    ((chunk*KK + tap)*O + o)*8 + j = f16 pair (c = 16 chunk + 2j, +1), so a
//                    tap's BM rows are BM*8 consecutive words; invocation: words
//                    lid + 256i (i < WPW = TPS*BM/32), coalesced, no conversion.
// Steps: chunk-major, RSTEPS = KD*KH/RPS steps per chunk; a step stages the W rows of its taps
// (and, at the chunk's first step, the input box), then multiplies every tap of its rows:
// per tap WMF A loads, WNF B loads, WMF*WNF multiply-adds per subgroup. DB = 1: double buffering
// through registers: step i+1 is loaded from global memory into registers (xr, wr / wp)
// while step i is multiplied (loop: fetch(i+1), compute(i), barrier, store(i+1), barrier).
// DB = 0: fetched after the barrier (compute(i), barrier, fetch(i+1), store(i+1), barrier):
// fewer live registers (more workgroups per SM hide the latency instead).
// Epilogue: each subgroup stores one accumulator at a time (coopStoreT) into its own 16 x 16
// scratch (Cs, stride 16), then its 32 lanes write the fragment to y: lane -> column
// lane % 16 (16 consecutive ow), rows lane / 16 + 2t; bounds-checked in o and in the output
// box (partial boxes at the borders), bias added, converted to act.
// Phase rows (flags & 2): the up-convolution (transposed, kernel = stride = UKD x UKH x UKW,
// padding 0) as this kernel's 1x1 case: x is the transposed conv's input, the GEMM has
// M = O*UK rows (w row oc*UK + t = the weight of output channel oc at kernel phase t), and
// the epilogue writes row o at position q to the output voxel of its phase (y_index).
// Grid: ceil(O/BM) * N * ceil(out_d/TD) * ceil(out_h/TH) * ceil(out_w/TW) workgroups,
// linearised over x and y; tile t -> (m tile = t % tiles_m, box = t / tiles_m, w fastest) so
// the workgroups that share an input box run together.
// Workgroup memory: (TPS*BM + BOX) * CS * 2 + 8 KiB bytes; the host keeps it within the
// device limit (the table keeps (TPS*BM + BOX) * 24 <= 18432 halves: <= 45 KiB with PAD 8,
// <= 32 KiB with PAD 0).
// Params: the conv's shapes; flags bit 0 = bias, bit 3 = fused ReLU, bit 1 = phase rows (aux3, aux4, aux5 = UKD,
// UKH, UKW; out_* = the GEMM's positions = the input's).
// Bindings: 0 params (uniform), 1 x (read, act), 2 w (read, u32 words: f32 bits or packed f16
//           pairs, see WPACK), 3 bias (read, f32; used when flags & 1), 4 y (read_write, act).
// Overrides: BM (32, 64, 128), WMF (2, 4; BM >= 16*WMF), WNF (2, 4), TD, TH, TW (box), KD, KH, KW (kernel), RPS (rows of
// taps per step, divides KD*KH), PAD (8; the emulated variant used in tests may set 0),
// WPACK (0, 1: weight layout), DB (0, 1: register double buffering).
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
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;

override BM: u32 = 64u;
override WMF: u32 = 2u;
override WNF: u32 = 4u;
override TD: u32 = 1u;
override TH: u32 = 16u;
override TW: u32 = 16u;
override KD: u32 = 1u;
override KH: u32 = 3u;
override KW: u32 = 3u;
override RPS: u32 = 1u;
override PAD: u32 = 8u;
override WPACK: u32 = 0u;
override DB: u32 = 1u;
// Derived (not meant to be set): staging stride, box extents, per-invocation counts.
override CS: u32 = 16u + PAD;
override WM: u32 = BM / (16u * WMF);
override BD: u32 = TD + KD - 1u;
override BH: u32 = TH + KH - 1u;
override BW: u32 = TW + KW - 1u;
override BOX: u32 = BD * BH * BW;
override PPT: u32 = (BOX + 255u) / 256u;
override TPS: u32 = RPS * KW;
override RSTEPS: u32 = KD * KH / RPS;
override WPW: u32 = TPS * BM / 32u;

var<workgroup> As: array<f16, TPS * BM * CS>;
var<workgroup> Bs: array<f16, BOX * CS>;
var<workgroup> Cs: array<f32, 2048>;

// Per-invocation staging state (see "Staging" above).
var<private> xb: array<u32, 3>;   // input offset of box position lid + 256i, channel 0
var<private> xok: array<bool, 3>; // that position lies inside the input
var<private> xr: array<f16, 48>;  // its 16 channels of the chunk
var<private> wr: array<f16, 32>;  // WPACK = 0: weights (m, c) of the step's taps
var<private> wp: array<u32, 16>;  // WPACK = 1: packed weight words of the step

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

// Phase rows (flags & 2, the up-convolution): UK = aux3*aux4*aux5 GEMM rows per output
// channel, row o = oc*UK + (pd*aux4 + ph)*aux5 + pw.
fn phase_rows() -> bool {
    return (P.flags & 2u) != 0u;
}

// The output channel (and bias entry) of GEMM row o.
fn out_channel(o: u32) -> u32 {
    if (phase_rows()) {
        return o / (P.aux3 * P.aux4 * P.aux5);
    }
    return o;
}

fn bias_of(o: u32) -> f32 {
    if ((P.flags & 1u) != 0u) {
        return bias[out_channel(o)];
    }
    return 0.0;
}

// Index in y of GEMM row o at position (od, oh, ow) of batch item n: y[n, o, od, oh, ow], or
// with phase rows y[n, oc, od*aux3 + pd, oh*aux4 + ph, ow*aux5 + pw] of the
// (out_d*aux3, out_h*aux4, out_w*aux5) output (every output voxel gets exactly one row).
fn y_index(n: u32, o: u32, od: u32, oh: u32, ow: u32) -> u32 {
    if (!phase_rows()) {
        let osp = P.out_d * P.out_h * P.out_w;
        return (n * P.o + o) * osp + (od * P.out_h + oh) * P.out_w + ow;
    }
    let uk = P.aux3 * P.aux4 * P.aux5;
    let t = o % uk;
    let pw = t % P.aux5;
    let ph = (t / P.aux5) % P.aux4;
    let pd = t / (P.aux5 * P.aux4);
    let yh = P.out_h * P.aux4;
    let yw = P.out_w * P.aux5;
    let plane = (n * (P.o / uk) + o / uk) * P.out_d * P.aux3 + od * P.aux3 + pd;
    return (plane * yh + oh * P.aux4 + ph) * yw + ow * P.aux5 + pw;
}

// Write one 16 x 16 accumulator of a subgroup to y: rows o0.., columns = box-linear output
// positions nf .. nf+15 of the box at (od0, oh0, ow0) of batch item n. cs0 = the subgroup's
// scratch. Called in uniform control flow.
fn write_frag(acc: FragC, cs0: u32, o0: u32, nf: u32, lane: u32, n: u32, od0: u32, oh0: u32,
              ow0: u32) {
    store_c(acc, cs0, 16u);
    workgroupBarrier();
    let ec = lane % 16u;
    let q = nf + ec;
    let ow = ow0 + q % TW;
    let oh = oh0 + (q / TW) % TH;
    let od = od0 + q / (TW * TH);
    let ok = od < P.out_d && oh < P.out_h && ow < P.out_w;
    for (var t = 0u; t < 8u; t++) {
        let r = lane / 16u + 2u * t;
        let o = o0 + r;
        if (ok && o < P.o) {
            y[y_index(n, o, od, oh, ow)] =
                store_act(Cs[cs0 + r * 16u + ec] + bias_of(o), (P.flags & 8u) != 0u);
        }
    }
    workgroupBarrier();
}

// Load step `step` (its weights; at a chunk's first step also the input box) from global
// memory into this invocation's registers. m0 = the workgroup's first output channel.
fn fetch(step: u32, m0: u32, lid: u32, in_sp: u32) {
    let c0 = (step / RSTEPS) * 16u;
    let rs = step % RSTEPS;
    if (WPACK != 0u) {
        // the step's taps are TPS consecutive blocks of O*8 words; rows m0.. of each
        let blk = (step / RSTEPS) * P.kk + rs * TPS;
        for (var i = 0u; i < WPW; i++) {
            let q = lid + 256u * i;
            let o = m0 + (q / 8u) % BM;
            let src = ((blk + q / (BM * 8u)) * P.o + min(o, P.o - 1u)) * 8u + q % 8u;
            wp[i] = select(0u, w[src], o < P.o);
        }
    } else {
        // taps rs*TPS .. +TPS of (o, c), contiguous in w
        let c = c0 + lid % 16u;
        for (var i = 0u; i < BM / 16u; i++) {
            let o = m0 + lid / 16u + 16u * i;
            let ok = o < P.o && c < P.c;
            let base = (min(o, P.o - 1u) * P.c + min(c, P.c - 1u)) * P.kk + rs * TPS;
            for (var t = 0u; t < TPS; t++) {
                wr[i * TPS + t] = select(f16(0.0), f16(bitcast<f32>(w[base + t])), ok);
            }
        }
    }
    if (rs == 0u) {
        for (var i = 0u; i < PPT; i++) {
            for (var j = 0u; j < 16u; j++) {
                var v = f16(0.0);
                if (xok[i] && c0 + j < P.c) {
                    v = f16(x[xb[i] + (c0 + j) * in_sp]);
                }
                xr[i * 16u + j] = v;
            }
        }
    }
}

// Write the registers of step `step` to As (and, at a chunk's first step, Bs).
fn store(step: u32, lid: u32) {
    if (WPACK != 0u) {
        for (var i = 0u; i < WPW; i++) {
            let q = lid + 256u * i;
            let a = ((q / (BM * 8u)) * BM + (q / 8u) % BM) * CS + 2u * (q % 8u);
            let v = unpack2x16float(wp[i]); // exact: the halves widened
            As[a] = f16(v.x);
            As[a + 1u] = f16(v.y);
        }
    } else {
        for (var i = 0u; i < BM / 16u; i++) {
            for (var t = 0u; t < TPS; t++) {
                As[(t * BM + lid / 16u + 16u * i) * CS + lid % 16u] = wr[i * TPS + t];
            }
        }
    }
    if (step % RSTEPS == 0u) {
        for (var i = 0u; i < PPT; i++) {
            let p = lid + 256u * i;
            if (p < BOX) {
                for (var j = 0u; j < 16u; j++) {
                    Bs[p * CS + j] = xr[i * 16u + j];
                }
            }
        }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let tiles_m = (P.o + BM - 1u) / BM;
    let tdn = (P.out_d + TD - 1u) / TD;
    let thn = (P.out_h + TH - 1u) / TH;
    let twn = (P.out_w + TW - 1u) / TW;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_m * P.n * tdn * thn * twn) {
        return;
    }
    let m0 = (tile % tiles_m) * BM;
    var s = tile / tiles_m;
    let ow0 = (s % twn) * TW;
    s = s / twn;
    let oh0 = (s % thn) * TH;
    s = s / thn;
    let od0 = (s % tdn) * TD;
    let n = s / tdn;
    let warp = lid / 32u;
    let lane = lid % 32u;
    let wm0 = (warp % WM) * 16u * WMF;
    let wn0 = (warp / WM) * WNF * 16u;
    let in_sp = P.in_d * P.in_h * P.in_w;

    // Box offsets (halves) of this subgroup's column fragments at tap (0,0,0).
    var xf: array<u32, 4>;
    for (var f = 0u; f < 4u; f++) {
        let q = wn0 + 16u * f;
        let tw0 = q % TW;
        let th = (q / TW) % TH;
        let td = q / (TW * TH);
        xf[f] = ((td * BH + th) * BW + tw0) * CS;
    }

    // X staging: this invocation's box positions lid + 256i, decoded once.
    for (var i = 0u; i < PPT; i++) {
        let p = lid + 256u * i;
        let bw = p % BW;
        let bh = (p / BW) % BH;
        let bd = p / (BW * BH);
        let id = i32(od0 + bd) - i32(P.p_d);
        let ih = i32(oh0 + bh) - i32(P.p_h);
        let iw = i32(ow0 + bw) - i32(P.p_w);
        xok[i] = p < BOX && u32(id) < P.in_d && u32(ih) < P.in_h && u32(iw) < P.in_w;
        xb[i] = n * P.c * in_sp + (u32(id) * P.in_h + u32(ih)) * P.in_w + u32(iw);
    }
    var acc00 = frag_zero(lane);
    var acc01 = frag_zero(lane);
    var acc02 = frag_zero(lane);
    var acc03 = frag_zero(lane);
    var acc10 = frag_zero(lane);
    var acc11 = frag_zero(lane);
    var acc12 = frag_zero(lane);
    var acc13 = frag_zero(lane);
    // WMF = 4: rows 32..63 of the subgroup's block
    var acc20 = frag_zero(lane);
    var acc21 = frag_zero(lane);
    var acc22 = frag_zero(lane);
    var acc23 = frag_zero(lane);
    var acc30 = frag_zero(lane);
    var acc31 = frag_zero(lane);
    var acc32 = frag_zero(lane);
    var acc33 = frag_zero(lane);

    let nsteps = ((P.c + 15u) / 16u) * RSTEPS;
    var step = 0u;
    loop {
        if (DB != 0u && step < nsteps) {
            fetch(step, m0, lid, in_sp);
        }
        if (step > 0u) {
            let rs = (step - 1u) % RSTEPS;
            for (var r = 0u; r < RPS; r++) {
                let row = rs * RPS + r;
                let kd = row / KH;
                let kh = row % KH;
                for (var kw = 0u; kw < KW; kw++) {
                    let t = r * KW + kw;
                    let xo = ((kd * BH + kh) * BW + kw) * CS;
                    let a0 = load_a((t * BM + wm0) * CS, CS);
                    let a1 = load_a((t * BM + wm0 + 16u) * CS, CS);
                    var a2 = a0;
                    var a3 = a1;
                    if (WMF > 2u) {
                        a2 = load_a((t * BM + wm0 + 32u) * CS, CS);
                        a3 = load_a((t * BM + wm0 + 48u) * CS, CS);
                    }
                    let b0 = load_b_cols(xf[0] + xo, CS);
                    acc00 = mma(a0, b0, acc00);
                    acc10 = mma(a1, b0, acc10);
                    if (WMF > 2u) {
                        acc20 = mma(a2, b0, acc20);
                        acc30 = mma(a3, b0, acc30);
                    }
                    let b1 = load_b_cols(xf[1] + xo, CS);
                    acc01 = mma(a0, b1, acc01);
                    acc11 = mma(a1, b1, acc11);
                    if (WMF > 2u) {
                        acc21 = mma(a2, b1, acc21);
                        acc31 = mma(a3, b1, acc31);
                    }
                    if (WNF > 2u) {
                        let b2 = load_b_cols(xf[2] + xo, CS);
                        acc02 = mma(a0, b2, acc02);
                        acc12 = mma(a1, b2, acc12);
                        if (WMF > 2u) {
                            acc22 = mma(a2, b2, acc22);
                            acc32 = mma(a3, b2, acc32);
                        }
                        let b3 = load_b_cols(xf[3] + xo, CS);
                        acc03 = mma(a0, b3, acc03);
                        acc13 = mma(a1, b3, acc13);
                        if (WMF > 2u) {
                            acc23 = mma(a2, b3, acc23);
                            acc33 = mma(a3, b3, acc33);
                        }
                    }
                }
            }
        }
        if (step >= nsteps) {
            break;
        }
        workgroupBarrier();
        if (DB == 0u) {
            fetch(step, m0, lid, in_sp);
        }
        store(step, lid);
        workgroupBarrier();
        step += 1u;
    }

    // ---- epilogue
    let cs0 = warp * 256u;
    let o0 = m0 + wm0;
    write_frag(acc00, cs0, o0, wn0, lane, n, od0, oh0, ow0);
    write_frag(acc01, cs0, o0, wn0 + 16u, lane, n, od0, oh0, ow0);
    write_frag(acc10, cs0, o0 + 16u, wn0, lane, n, od0, oh0, ow0);
    write_frag(acc11, cs0, o0 + 16u, wn0 + 16u, lane, n, od0, oh0, ow0);
    if (WNF > 2u) {
        write_frag(acc02, cs0, o0, wn0 + 32u, lane, n, od0, oh0, ow0);
        write_frag(acc03, cs0, o0, wn0 + 48u, lane, n, od0, oh0, ow0);
        write_frag(acc12, cs0, o0 + 16u, wn0 + 32u, lane, n, od0, oh0, ow0);
        write_frag(acc13, cs0, o0 + 16u, wn0 + 48u, lane, n, od0, oh0, ow0);
    }
    if (WMF > 2u) {
        write_frag(acc20, cs0, o0 + 32u, wn0, lane, n, od0, oh0, ow0);
        write_frag(acc21, cs0, o0 + 32u, wn0 + 16u, lane, n, od0, oh0, ow0);
        write_frag(acc30, cs0, o0 + 48u, wn0, lane, n, od0, oh0, ow0);
        write_frag(acc31, cs0, o0 + 48u, wn0 + 16u, lane, n, od0, oh0, ow0);
        if (WNF > 2u) {
            write_frag(acc22, cs0, o0 + 32u, wn0 + 32u, lane, n, od0, oh0, ow0);
            write_frag(acc23, cs0, o0 + 32u, wn0 + 48u, lane, n, od0, oh0, ow0);
            write_frag(acc32, cs0, o0 + 48u, wn0 + 32u, lane, n, od0, oh0, ow0);
            write_frag(acc33, cs0, o0 + 48u, wn0 + 48u, lane, n, od0, oh0, ow0);
        }
    }
}
