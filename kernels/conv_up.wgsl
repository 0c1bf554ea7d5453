// conv_up.wgsl: the up-convolution, a transposed convolution whose kernel equals its stride on
// every axis (KD, KH >= 1, KW in 1, 2, 4, 8), padding 0, dilation 1, output_padding 0; 2D and
// 3D (2D runs with D = KD = 1), groups = 1. Weight (C_in, C_out, KD, KH, KW) as PyTorch.
//
// Every output voxel receives exactly one tap, so the op is kk = KD*KH*KW independent 1x1 GEMMs
// (one per kernel phase t = (td, th, tw)), computed as one GEMM over m = (o, t), the weight's
// own column order (w is C x M row-major, M = O*kk):
//   forward      y[n,o,KD*d+td,KH*h+th,KW*w+tw] = b[o] + sum_c x[n,c,d,h,w] * w[c,o,td,th,tw]
//                Y[m, col] = b[o] + sum_c W[c, m] X[c, col]   rows M = O*kk, cols batch*in_sp, K = C
//   grad input   dx[n,c,d,h,w] = sum_{o,t} w[c,o,t] * dy[n,o,KD*d+td,KH*h+th,KW*w+tw]
//                DX[c, col] = sum_m W[c, m] DY[m, col]        rows C, cols batch*in_sp, K = O*kk
//   grad weight  dw[c,o,t] = sum_{n,d,h,w} x[n,c,d,h,w] * dy[n,o,KD*d+td,KH*h+th,KW*w+tw]
//                DW[c, m] = sum_col X[c, col] DY[m, col]      rows C, cols O*kk, K = batch*in_sp
// where col = (n, d, h, w) is an input position, X[c, col] = x[x_col(col) + c*in_sp] and
// Y[m, col] = y[y_col(col) + y_row(m)]. y_row divides only by KD, KH, KW, which are pipeline
// constants (shifts and masks for powers of two), and in the K loops it is uniform across the
// workgroup; y_col / x_col are decoded once per thread and column (forward, grad input) or
// walked by increments per K slice (grad weight), never per stored element.
//
// Entry points (GPUs; same bindings and params). All three: 128 threads, a 64 (rows) x 128
// (cols) tile, K walked in slices of BK = 16 staged in workgroup memory; the next slice is
// fetched into registers while the current one is multiplied. Thread (tx, ty) = (lid % 16,
// lid / 16) keeps an 8x8 register block, rows {ty*4.., 32+ty*4..} x cols {tx*4.., 64+tx*4..},
// read from workgroup memory as vec4s. Global loads are 4-byte (the bindings are array<f32>, any
// size and offset) and coalesced: a warp instruction reads 32 adjacent addresses (128 bytes),
// or two runs of 16 for the slices read along K (w in main_dgrad, x in main_wgrad). Epilogue:
// the tile is staged in workgroup memory (two passes of 32 rows) and written back so that
// adjacent threads store adjacent addresses.
//   main_fwd    tile = 64 m x 128 input positions. Stores: thread lid owns phase tw = lid % KW
//               and columns lid/KW + j*128/KW (j < KW); a warp writes one contiguous run of an
//               output row, both (all KW) phases of the row interleaved. The staged tile is
//               XOR-swizzled by (row % KW) * 32/KW so that those reads are conflict-free.
//   main_dgrad  tile = 64 c x 128 input positions. dy slices are read like the forward's
//               stores (a warp reads a contiguous dy row segment, phases interleaved).
//   main_wgrad  tile = 64 c x 128 m, K = positions [z*chunk, (z+1)*chunk) of split z =
//               workgroup z; split z writes part[z][c][m] (dw itself when there is one split),
//               summed in a fixed order by reduce.wgsl's sum_splits (deterministic).
// Workgroup memory: 16 KB (the WebGPU default limit). Row strides (in floats) are padded so
// that the staging stores hit at most 2 threads per bank (KW <= 4): 68 for the x / w slices
// read along K, 144 (dgrad) and 132 (wgrad) for the dy slices; the vec4 reads of the
// multiply loop are conflict-free.
// Grid: ceil(rows/64) * ceil(cols/128) workgroups (linearised over x and y; the 64-row tile
// index varies fastest); main_wgrad: z = splits.
// Bindings: 0 params (uniform), 1 x (read, act; unused by main_dgrad), 2 dy (read, act; unused
// by main_fwd), 3 w (read, f32; unused by main_wgrad), 4 bias (read, f32; main_fwd when
// flags & 1), 5 out (read_write, act: y or dx), 6 part (read_write, f32: dw or the split
// partials of main_wgrad). Unused bindings take any tensor of their element type.
// Activations (x, dy, y, dx) are act (f32 or f16 storage): loaded through ld_x / ld_dy, stored
// through st_out; accumulation is f32 either way.

struct Params {
    n: u32, c: u32, o: u32, flags: u32,
    in_d: u32, in_h: u32, in_w: u32, in_sp: u32,
    out_h: u32, out_w: u32, out_hw: u32, out_sp: u32,
    m: u32, chunk: u32, aux: u32, aux2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> dy: array<act>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<act>;
@group(0) @binding(6) var<storage, read_write> part: array<f32>;

// Kernel = stride per axis: 1, 2 or 4.
override KD: u32 = 1u;
override KH: u32 = 2u;
override KW: u32 = 2u;

const BM: u32 = 64u;
const BN: u32 = 128u;
const BK: u32 = 16u;

// Operand slices (A: BK x 64, B: BK x 128) during the K loop, the staged 32 x 128 output
// rows in the epilogue.
var<workgroup> sm: array<vec4<f32>, 1024>;

fn ld_x(i: u32) -> f32 {
    return f32(x[i]);
}

fn ld_dy(i: u32) -> f32 {
    return f32(dy[i]);
}

fn ld_w(i: u32) -> f32 {
    return w[i];
}

fn st_out(i: u32, v: f32) {
    out[i] = act(v);
}

// Offset of input position col = n*in_sp + s in x: x[n, c, s] = x[x_col(col) + c*in_sp].
fn x_col(col: u32) -> u32 {
    let n = col / P.in_sp;
    return col + n * (P.c - 1u) * P.in_sp;
}

// Output block of input position (n, d, h, w) in y / dy: y[y_at(p) + y_row(m)].
fn y_at(p: vec4<u32>) -> u32 {
    return p.x * P.o * P.out_sp + p.y * KD * P.out_hw + p.z * KH * P.out_w + p.w * KW;
}

// (n, d, h, w) of input position col.
fn pos_of(col: u32) -> vec4<u32> {
    let n = col / P.in_sp;
    let s = col - n * P.in_sp;
    let t = s / P.in_w;
    return vec4<u32>(n, t / P.in_h, t % P.in_h, s - t * P.in_w);
}

fn y_col(col: u32) -> u32 {
    return y_at(pos_of(col));
}

// Offset of row m = (o, td, th, tw) in y / dy.
fn y_row(m: u32) -> u32 {
    let kk = KD * KH * KW;
    let o = m / kk;
    let t = m % kk;
    return o * P.out_sp + (t / (KH * KW)) * P.out_hw + ((t / KW) % KH) * P.out_w + t % KW;
}

// The position BK further on (walked, no division; past the end it keeps counting n).
fn pos_next(p: vec4<u32>) -> vec4<u32> {
    var q = p;
    q.w += BK;
    loop {
        if (q.w < P.in_w) {
            break;
        }
        q.w -= P.in_w;
        q.z += 1u;
        if (q.z == P.in_h) {
            q.z = 0u;
            q.y += 1u;
            if (q.y == P.in_d) {
                q.y = 0u;
                q.x += 1u;
            }
        }
    }
    return q;
}

fn x_at(p: vec4<u32>) -> u32 {
    return ((p.x * P.c * P.in_d + p.y) * P.in_h + p.z) * P.in_w + p.w;
}

fn bias_of(o: u32) -> f32 {
    if ((P.flags & 1u) != 0u) {
        return bias[o];
    }
    return 0.0;
}

// Column swizzle of staged output row r in main_fwd (keeps vec4 groups whole).
fn swz(r: u32) -> u32 {
    return (r % KW) * (32u / KW);
}

// ---------------------------------------------------------------- main_fwd
// Staging: W^T slice rows k = lid/64 + 2j (j < 8) at m = m0 + lid%64 (row stride 16 vec4);
// X slice column n0 + lid, rows k0..k0+15 (row stride 32 vec4, at vec4 256).

fn fwd_fetch_w(k0: u32, lid: u32, m: u32) -> array<f32, 8> {
    var r: array<f32, 8>;
    let ok = m < P.m;
    let mc = min(m, P.m - 1u);
    for (var j = 0u; j < 8u; j++) {
        let k = k0 + lid / 64u + 2u * j;
        r[j] = select(0.0, ld_w(min(k, P.c - 1u) * P.m + mc), ok && k < P.c);
    }
    return r;
}

fn fwd_fetch_x(k0: u32, xb: u32, ok: bool) -> array<f32, 16> {
    var r: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        let k = k0 + j;
        r[j] = select(0.0, ld_x(xb + min(k, P.c - 1u) * P.in_sp), ok && k < P.c);
    }
    return r;
}

@compute @workgroup_size(128)
fn main_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let NC = P.n * P.in_sp;
    let M = P.m;
    let K = P.c;
    let tiles_m = (M + BM - 1u) / BM;
    let tiles_n = (NC + BN - 1u) / BN;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_m * tiles_n) {
        return;
    }
    let m0 = (tile % tiles_m) * BM;
    let n0 = (tile / tiles_m) * BN;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let am = m0 + lid % 64u;
    let bcol = n0 + lid;
    let b_ok = bcol < NC;
    let xb = x_col(min(bcol, NC - 1u));

    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    var a_reg = fwd_fetch_w(0u, lid, am);
    var b_reg = fwd_fetch_x(0u, xb, b_ok);
    for (var k0 = 0u; k0 < K; k0 += BK) {
        workgroupBarrier();
        for (var j = 0u; j < 8u; j++) {
            sm[(lid / 64u + 2u * j) * 16u + (lid % 64u) / 4u][lid % 4u] = a_reg[j];
        }
        for (var j = 0u; j < 16u; j++) {
            sm[256u + j * 32u + lid / 4u][lid % 4u] = b_reg[j];
        }
        workgroupBarrier();
        if (k0 + BK < K) {
            a_reg = fwd_fetch_w(k0 + BK, lid, am);
            b_reg = fwd_fetch_x(k0 + BK, xb, b_ok);
        }
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = sm[kk * 16u + ty];
            let a1 = sm[kk * 16u + 8u + ty];
            let b0 = sm[256u + kk * 32u + tx];
            let b1 = sm[256u + kk * 32u + 16u + tx];
            for (var i = 0u; i < 4u; i++) {
                acc[i * 2u] = fma(vec4<f32>(a0[i]), b0, acc[i * 2u]);
                acc[i * 2u + 1u] = fma(vec4<f32>(a0[i]), b1, acc[i * 2u + 1u]);
                acc[8u + i * 2u] = fma(vec4<f32>(a1[i]), b0, acc[8u + i * 2u]);
                acc[8u + i * 2u + 1u] = fma(vec4<f32>(a1[i]), b1, acc[8u + i * 2u + 1u]);
            }
        }
    }

    // Epilogue: pass p stages tile rows 32p.. (swizzled), then thread lid stores phase tw of
    // columns lid/KW + j*128/KW for every row group (o, td, th) of the pass.
    let kk = KD * KH * KW;
    let tw = lid % KW;
    for (var p = 0u; p < 2u; p++) {
        workgroupBarrier();
        for (var i = 0u; i < 4u; i++) {
            let r = ty * 4u + i;
            let s = swz(r);
            sm[r * 32u + ((tx * 4u) ^ s) / 4u] = select(acc[i * 2u], acc[8u + i * 2u], p == 1u);
            sm[r * 32u + ((64u + tx * 4u) ^ s) / 4u] =
                select(acc[i * 2u + 1u], acc[8u + i * 2u + 1u], p == 1u);
        }
        workgroupBarrier();
        for (var j = 0u; j < KW; j++) {
            let cl = lid / KW + j * (BN / KW);
            let col = n0 + cl;
            if (col < NC) {
                let yc = y_col(col);
                for (var g = 0u; g < 32u / KW; g++) {
                    let r = g * KW + tw;
                    let m = m0 + p * 32u + r;
                    if (m < M) {
                        let sc = cl ^ swz(r);
                        st_out(yc + y_row(m), sm[r * 32u + sc / 4u][sc % 4u] + bias_of(m / kk));
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- main_dgrad
// Staging: W slice As[k][c] (row stride 17 vec4): thread k = lid % 16, c = m0 + lid/16 + 8j.
// DY slice Bs[k][col] (row stride 36 vec4, at vec4 272): thread lid owns phase tw = lid % KW
// and columns cl_j = lid/KW + j*128/KW (j < KW); its element i (< 16) is column cl_(i % KW),
// row (i / KW)*KW + tw.

fn dgrad_fetch_w(k0: u32, lid: u32, m0: u32) -> array<f32, 8> {
    var r: array<f32, 8>;
    let k = k0 + lid % 16u;
    let kc = min(k, P.m - 1u);
    for (var j = 0u; j < 8u; j++) {
        let c = m0 + lid / 16u + 8u * j;
        r[j] = select(0.0, ld_w(min(c, P.c - 1u) * P.m + kc), c < P.c && k < P.m);
    }
    return r;
}

// Row k = kb + tw of a group starting at kb (a multiple of KW, as M is): y_row(k) =
// y_row(kb) + tw, and y_row(kb) is the same in every thread (uniform).
fn dgrad_fetch_dy(k0: u32, tw: u32, yb: array<u32, 4>, ok: array<bool, 4>) -> array<f32, 16> {
    var r: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        let j = i % KW;
        let kb = k0 + (i / KW) * KW;
        let ro = y_row(min(kb, P.m - KW)) + tw;
        r[i] = select(0.0, ld_dy(yb[j] + ro), ok[j] && kb < P.m);
    }
    return r;
}

@compute @workgroup_size(128)
fn main_dgrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let NC = P.n * P.in_sp;
    let K = P.m;
    let tiles_m = (P.c + BM - 1u) / BM;
    let tiles_n = (NC + BN - 1u) / BN;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_m * tiles_n) {
        return;
    }
    let m0 = (tile % tiles_m) * BM;
    let n0 = (tile / tiles_m) * BN;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let tw = lid % KW;
    var yb: array<u32, 4>;
    var yok: array<bool, 4>;
    // All four entries (constant indices; those past KW are unused).
    for (var j = 0u; j < 4u; j++) {
        let col = n0 + lid / KW + j * (BN / KW);
        yok[j] = col < NC;
        yb[j] = y_col(min(col, NC - 1u));
    }

    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    var a_reg = dgrad_fetch_w(0u, lid, m0);
    var b_reg = dgrad_fetch_dy(0u, tw, yb, yok);
    for (var k0 = 0u; k0 < K; k0 += BK) {
        workgroupBarrier();
        for (var j = 0u; j < 8u; j++) {
            let c = lid / 16u + 8u * j;
            sm[(lid % 16u) * 17u + c / 4u][c % 4u] = a_reg[j];
        }
        for (var i = 0u; i < 16u; i++) {
            let cl = lid / KW + (i % KW) * (BN / KW);
            sm[272u + ((i / KW) * KW + tw) * 36u + cl / 4u][cl % 4u] = b_reg[i];
        }
        workgroupBarrier();
        if (k0 + BK < K) {
            a_reg = dgrad_fetch_w(k0 + BK, lid, m0);
            b_reg = dgrad_fetch_dy(k0 + BK, tw, yb, yok);
        }
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = sm[kk * 17u + ty];
            let a1 = sm[kk * 17u + 8u + ty];
            let b0 = sm[272u + kk * 36u + tx];
            let b1 = sm[272u + kk * 36u + 16u + tx];
            for (var i = 0u; i < 4u; i++) {
                acc[i * 2u] = fma(vec4<f32>(a0[i]), b0, acc[i * 2u]);
                acc[i * 2u + 1u] = fma(vec4<f32>(a0[i]), b1, acc[i * 2u + 1u]);
                acc[8u + i * 2u] = fma(vec4<f32>(a1[i]), b0, acc[8u + i * 2u]);
                acc[8u + i * 2u + 1u] = fma(vec4<f32>(a1[i]), b1, acc[8u + i * 2u + 1u]);
            }
        }
    }

    // Epilogue: thread lid stores column n0 + lid of every staged row (a warp: 32 adjacent dx).
    let col = n0 + lid;
    let xc = x_col(min(col, NC - 1u));
    for (var p = 0u; p < 2u; p++) {
        workgroupBarrier();
        for (var i = 0u; i < 4u; i++) {
            let r = ty * 4u + i;
            sm[r * 32u + tx] = select(acc[i * 2u], acc[8u + i * 2u], p == 1u);
            sm[r * 32u + 16u + tx] = select(acc[i * 2u + 1u], acc[8u + i * 2u + 1u], p == 1u);
        }
        workgroupBarrier();
        if (col < NC) {
            for (var r = 0u; r < 32u; r++) {
                let c = m0 + p * 32u + r;
                if (c < P.c) {
                    st_out(xc + c * P.in_sp, sm[r * 32u + lid / 4u][lid % 4u]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- main_wgrad
// Staging: X slice As[k][c] (row stride 17 vec4): thread position k = lid % 16 of the slice,
// c = m0 + lid/16 + 8j. DY slice Bs[k][m] (row stride 33 vec4, at vec4 272): thread
// q = lid % (16*KW) reads position k = q / KW, phase tw = q % KW, rows
// m = n0 + 8i + (lid/(16*KW))*KW + tw (i < 16): a warp reads contiguous dy row segments.
// The positions of both are walked by BK per slice (pos_next).

fn wgrad_fetch_x(pa: vec4<u32>, ok: bool, lid: u32, m0: u32) -> array<f32, 8> {
    var r: array<f32, 8>;
    let xa = select(0u, x_at(pa), ok);
    for (var j = 0u; j < 8u; j++) {
        let c = m0 + lid / 16u + 8u * j;
        r[j] = select(0.0, ld_x(xa + min(c, P.c - 1u) * P.in_sp), ok && c < P.c);
    }
    return r;
}

// Row m = n0 + 8i + ml (ml = lid/(16*KW)*KW + tw < 8). When kk divides 8, n0 + 8i is a
// multiple of kk and y_row(m) = y_row(n0 + 8i) (uniform) + y_row(ml) (fixed per thread).
fn wgrad_fetch_dy(pb: vec4<u32>, ok: bool, lid: u32, n0: u32) -> array<f32, 16> {
    var r: array<f32, 16>;
    let yb = select(0u, y_at(pb), ok);
    let ml = (lid / (16u * KW)) * KW + lid % KW;
    let split = 8u % (KD * KH * KW) == 0u;
    let yl = yb + select(0u, y_row(ml), split);
    for (var i = 0u; i < 16u; i++) {
        let m = n0 + 8u * i + ml;
        var a = yb + y_row(min(m, P.m - 1u));
        if (split) {
            a = yl + y_row(min(n0 + 8u * i, P.m - 1u));
        }
        r[i] = select(0.0, ld_dy(select(0u, a, m < P.m)), ok && m < P.m);
    }
    return r;
}

@compute @workgroup_size(128)
fn main_wgrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let NC = P.n * P.in_sp;
    let N = P.m;
    let tiles_m = (P.c + BM - 1u) / BM;
    let tiles_n = (N + BN - 1u) / BN;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_m * tiles_n) {
        return;
    }
    let m0 = (tile % tiles_m) * BM;
    let n0 = (tile / tiles_m) * BN;
    let kbeg = wid.z * P.chunk;
    let kend = min(kbeg + P.chunk, NC);
    let tx = lid % 16u;
    let ty = lid / 16u;
    let q = lid % (16u * KW);
    // Slice positions of this thread (A: k = lid % 16; B: k = q / KW), walked by BK.
    var pa = pos_of(min(kbeg + lid % 16u, NC - 1u));
    var pb = pos_of(min(kbeg + q / KW, NC - 1u));

    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    var a_reg = wgrad_fetch_x(pa, kbeg + lid % 16u < kend, lid, m0);
    var b_reg = wgrad_fetch_dy(pb, kbeg + q / KW < kend, lid, n0);
    for (var k0 = kbeg; k0 < kend; k0 += BK) {
        workgroupBarrier();
        for (var j = 0u; j < 8u; j++) {
            let c = lid / 16u + 8u * j;
            sm[(lid % 16u) * 17u + c / 4u][c % 4u] = a_reg[j];
        }
        for (var i = 0u; i < 16u; i++) {
            let ml = 8u * i + (lid / (16u * KW)) * KW + lid % KW;
            sm[272u + (q / KW) * 33u + ml / 4u][ml % 4u] = b_reg[i];
        }
        workgroupBarrier();
        let k1 = k0 + BK;
        if (k1 < kend) {
            pa = pos_next(pa);
            pb = pos_next(pb);
            a_reg = wgrad_fetch_x(pa, k1 + lid % 16u < kend, lid, m0);
            b_reg = wgrad_fetch_dy(pb, k1 + q / KW < kend, lid, n0);
        }
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = sm[kk * 17u + ty];
            let a1 = sm[kk * 17u + 8u + ty];
            let b0 = sm[272u + kk * 33u + tx];
            let b1 = sm[272u + kk * 33u + 16u + tx];
            for (var i = 0u; i < 4u; i++) {
                acc[i * 2u] = fma(vec4<f32>(a0[i]), b0, acc[i * 2u]);
                acc[i * 2u + 1u] = fma(vec4<f32>(a0[i]), b1, acc[i * 2u + 1u]);
                acc[8u + i * 2u] = fma(vec4<f32>(a1[i]), b0, acc[8u + i * 2u]);
                acc[8u + i * 2u + 1u] = fma(vec4<f32>(a1[i]), b1, acc[8u + i * 2u + 1u]);
            }
        }
    }

    // Epilogue: thread lid stores column n0 + lid (m) of every staged row c: part[z][c][m].
    let m = n0 + lid;
    let base = wid.z * P.c * N + m;
    for (var p = 0u; p < 2u; p++) {
        workgroupBarrier();
        for (var i = 0u; i < 4u; i++) {
            let r = ty * 4u + i;
            sm[r * 32u + tx] = select(acc[i * 2u], acc[8u + i * 2u], p == 1u);
            sm[r * 32u + 16u + tx] = select(acc[i * 2u + 1u], acc[8u + i * 2u + 1u], p == 1u);
        }
        workgroupBarrier();
        if (m < N) {
            for (var r = 0u; r < 32u; r++) {
                let c = m0 + p * 32u + r;
                if (c < P.c) {
                    part[base + c * N] = sm[r * 32u + lid / 4u][lid % 4u];
                }
            }
        }
    }
}
