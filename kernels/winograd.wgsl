// winograd.wgsl: Winograd convolution F(m x m, 3x3) (2D) and F(m x m x m, 3x3x3) (3D), m = 2 or 4,
// for stride-1, dilation-1 3x3(x3) convolutions with any padding (groups = 1).
//
// Formula (Lavin & Gray 2016): with alpha = m + 2 points per axis and the 1D matrices
// B^T (alpha x alpha), G (alpha x 3), A^T (m x alpha), an output tile Y (m^dims) of channel o is
//   Y = A^T [ sum_c (G g[o,c] G^T) .* (B^T d[c] B) ] A  (+ bias[o])
// where d[c] is the alpha^dims input box at the tile's origin (tile * m - pad; outside: 0) and
// the transforms apply along every axis. Per transform point p (alpha^dims of them) the sum
// over c is a GEMM: M[p][o][t] = sum_c U[p][o][c] * V[p][c][t], t = (n, tile_d, tile_h, tile_w).
// Points: m = 2: 0, 1, -1, inf; m = 4 (Lavin): 0, 1, -1, 2, -2, inf.
//
// Scratch layouts (f32, zero-padded so the GEMM needs no edge checks):
//   U [NP][OP][CP]   transformed weights, OP = O rounded up to 8, CP = C rounded up to 4.
//   V [NP][CP][TC]   transformed input of tiles t0 .. t0 + TC (one chunk; TC a multiple of 8).
//   M [NP][OP][TC]   GEMM result for the chunk.
//
// Entry points (specialised by the override constants MT = m and DIMS = 2 | 3); the GEMM
// between input and output transform is kernels/winograd_gemm.wgsl:
//   weights  one invocation per (o, c) of OP x CP: U = G g G^T (0 for o >= O or c >= C);
//            g = w[o, c], or with flags & 16 the flipped, transposed w[c, o, taps reversed]
//            (w of shape (C, O, 3, 3(, 3)): the stride-1 grad input as a forward on dy).
//            Grid: ceil(OP*CP/64) workgroups, linearised.
//   input    one invocation per (c, t) of CP x TC: loads d (alpha^dims, bounds-checked), writes
//            B^T d B (0 for c >= C or tiles past the last). Grid: ceil(CP*TC/64), linearised.
//   output   one invocation per (o, t) of O x TC: Y = A^T M A + bias (flags & 1), through a
//            ReLU with flags & 8 (precision/epilogue.wgsl), stored where inside y.
//            Grid: ceil(O*TC/64), linearised.
// Weight gradient: dw[o,c] = G^T [ sum_t (A dy_t[o] A^T) .* (B^T d_t[c] B) ] G
//   input    with flags & 2: V in the layout [NP][TC][CP] (tiles are the GEMM's K).
//   grad_out one invocation per (o, t) of OP x TC: W[p][o][t] = A dy A^T (dy bound as x).
//            Grid: ceil(OP*TC/64), linearised.
//   (the GEMM accumulates X[p][o][c] += sum_t W[p][o][t] V[p][t][c] over the chunks)
//   grad_weight one invocation per (o, c) of O x C: dw = G^T X G into f_out (f32 O,C,3,3(,3)).
//            Grid: ceil(O*C/64), linearised.
// Bindings (one layout; each entry uses some, the op binds placeholders for the rest):
//   0 params (uniform), 1 x (read, act: input of `input`, dy of `grad_out`), 2 f_in (read,
//   f32: w of `weights`, M of `output`, X of `grad_weight`), 3 bias (read; used by `output`
//   when flags & 1), 4 f_out (read_write, f32: U of `weights`, V of `input`, W of `grad_out`,
//   dw of `grad_weight`), 5 y (read_write, act: output of `output`).
// Activations (x, y) are `act` (f32, or f16 storage); everything else is f32.

struct Params {
    n: u32, c: u32, o: u32, flags: u32,
    in_d: u32, in_h: u32, in_w: u32, cp: u32,
    out_d: u32, out_h: u32, out_w: u32, op: u32,
    p_d: u32, p_h: u32, p_w: u32, tc: u32,
    t_d: u32, t_h: u32, t_w: u32, t0: u32,
    // fastdiv magics (src/ops/fastdiv.rs) of t_w, t_h, t_d, tc, cp and c for `fdiv`
    // (precision/fastdiv.wgsl): CPU adapters have no vector integer division, so index
    // decoding divides by multiply-high and shift.
    mg_tw: vec2<u32>, mg_th: vec2<u32>, mg_td: vec2<u32>,
    mg_tc: vec2<u32>, mg_cp: vec2<u32>, mg_c: vec2<u32>,
}

@group(0) @binding(0) var<uniform> P: Params;
// One layout for the three entries; each uses some of the bindings (see the header).
@group(0) @binding(1) var<storage, read> x_in: array<act>;
@group(0) @binding(2) var<storage, read> f_in: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> y_out: array<act>;

override MT: u32 = 2u;
override DIMS: u32 = 2u;

const BT2 = array<f32, 16>(
    1.0, 0.0, -1.0, 0.0,
    0.0, 1.0, 1.0, 0.0,
    0.0, -1.0, 1.0, 0.0,
    0.0, 1.0, 0.0, -1.0);
const G2 = array<f32, 12>(
    1.0, 0.0, 0.0,
    0.5, 0.5, 0.5,
    0.5, -0.5, 0.5,
    0.0, 0.0, 1.0);
const AT2 = array<f32, 8>(
    1.0, 1.0, 1.0, 0.0,
    0.0, 1.0, -1.0, -1.0);
const BT4 = array<f32, 36>(
    4.0, 0.0, -5.0, 0.0, 1.0, 0.0,
    0.0, -4.0, -4.0, 1.0, 1.0, 0.0,
    0.0, 4.0, -4.0, -1.0, 1.0, 0.0,
    0.0, -2.0, -1.0, 2.0, 1.0, 0.0,
    0.0, 2.0, -1.0, -2.0, 1.0, 0.0,
    0.0, 4.0, 0.0, -5.0, 0.0, 1.0);
const G4 = array<f32, 18>(
    0.25, 0.0, 0.0,
    -0.16666667, -0.16666667, -0.16666667,
    -0.16666667, 0.16666667, -0.16666667,
    0.041666668, 0.083333336, 0.16666667,
    0.041666668, -0.083333336, 0.16666667,
    0.0, 0.0, 1.0);
const AT4 = array<f32, 24>(
    1.0, 1.0, 1.0, 1.0, 1.0, 0.0,
    0.0, 1.0, -1.0, 2.0, -2.0, 0.0,
    0.0, 1.0, 1.0, 4.0, 4.0, 0.0,
    0.0, 1.0, -1.0, 8.0, -8.0, 1.0);

fn alpha() -> u32 {
    return MT + 2u;
}

// Transform points per tile: alpha^DIMS.
fn npoints() -> u32 {
    let a = alpha();
    if (DIMS == 3u) {
        return a * a * a;
    }
    return a * a;
}

// Entry (i, j) of B^T (0), G (1), A^T (2), G^T (3) or A (4) for this MT.
fn mat(which: u32, i: u32, j: u32) -> f32 {
    if (which == 3u) {
        return base_mat(1u, j, i);
    }
    if (which == 4u) {
        return base_mat(2u, j, i);
    }
    return base_mat(which, i, j);
}

// Entry (i, j) of B^T (0), G (1) or A^T (2) for this MT.
fn base_mat(which: u32, i: u32, j: u32) -> f32 {
    if (MT == 2u) {
        if (which == 0u) { let t = BT2; return t[i * 4u + j]; }
        if (which == 1u) { let t = G2; return t[i * 3u + j]; }
        let t = AT2;
        return t[i * 4u + j];
    }
    if (which == 0u) { let t = BT4; return t[i * 6u + j]; }
    if (which == 1u) { let t = G4; return t[i * 3u + j]; }
    let t = AT4;
    return t[i * 6u + j];
}

// Apply matrix `which` (rows x cols) along one axis of the box in `v`: for every line that
// starts at base + l1 * s1 + l2 * s2 (l1 < n1, l2 < n2) with element stride `s`, the first
// `cols` entries are replaced by the `rows` entries of the product.
fn along(v: ptr<function, array<f32, 216>>, which: u32, rows: u32, cols: u32, s: u32,
         n1: u32, s1: u32, n2: u32, s2: u32) {
    for (var l2 = 0u; l2 < n2; l2++) {
        for (var l1 = 0u; l1 < n1; l1++) {
            let b = l1 * s1 + l2 * s2;
            var src: array<f32, 6>;
            for (var j = 0u; j < cols; j++) {
                src[j] = (*v)[b + j * s];
            }
            for (var i = 0u; i < rows; i++) {
                var acc = 0.0;
                for (var j = 0u; j < cols; j++) {
                    acc = fma(mat(which, i, j), src[j], acc);
                }
                (*v)[b + i * s] = acc;
            }
        }
    }
}

// Apply matrix `which` (rows x cols) along x, y (and z) of a box with strides 1, a, a*a
// whose extent is `cols` per axis before and `rows` per axis after.
fn transform(v: ptr<function, array<f32, 216>>, which: u32, rows: u32, cols: u32) {
    let a = alpha();
    let nz = select(1u, cols, DIMS == 3u);
    along(v, which, rows, cols, 1u, cols, a, nz, a * a);
    along(v, which, rows, cols, a, rows, 1u, nz, a * a);
    if (DIMS == 3u) {
        along(v, which, rows, cols, a * a, rows, 1u, rows, a);
    }
}

// ---------------------------------------------------------------- weights

@compute @workgroup_size(64)
fn weights(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (idx >= P.op * P.cp) {
        return;
    }
    let o = fdiv(idx, P.mg_cp);
    let c = idx - o * P.cp;
    let a = alpha();
    let np = npoints();
    let kd = select(1u, 3u, DIMS == 3u);
    var v: array<f32, 216>;
    let live = o < P.o && c < P.c;
    if (live) {
        // flags & 16: g[o, c] is the flipped, transposed forward weight w[c, o, taps reversed]
        // (a stride-1 grad input), read in place.
        let flip = (P.flags & 16u) != 0u;
        let taps = kd * 9u;
        let base = select(o * P.c + c, c * P.o + o, flip) * taps;
        for (var z = 0u; z < kd; z++) {
            for (var y = 0u; y < 3u; y++) {
                for (var x = 0u; x < 3u; x++) {
                    let t = (z * 3u + y) * 3u + x;
                    v[(z * a + y) * a + x] = f_in[base + select(t, taps - 1u - t, flip)];
                }
            }
        }
        transform(&v, 1u, a, 3u);
    }
    for (var p = 0u; p < np; p++) {
        f_out[(p * P.op + o) * P.cp + c] = select(0.0, v[p], live);
    }
}

// Tile t (n, td, th, tw) of the N x T_D x T_H x T_W tile grid, tw fastest.
fn tile_of(t: u32) -> vec4<u32> {
    let q1 = fdiv(t, P.mg_tw);
    let q2 = fdiv(q1, P.mg_th);
    let n = fdiv(q2, P.mg_td);
    return vec4<u32>(n, q2 - n * P.t_d, q1 - q2 * P.t_h, t - q1 * P.t_w);
}

// ---------------------------------------------------------------- input

@compute @workgroup_size(64)
fn input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (idx >= P.cp * P.tc) {
        return;
    }
    let c = fdiv(idx, P.mg_tc);
    let tl = idx - c * P.tc;
    let t = P.t0 + tl;
    let a = alpha();
    let np = npoints();
    let ntiles = P.n * P.t_d * P.t_h * P.t_w;
    var v: array<f32, 216>;
    if (c < P.c && t < ntiles) {
        let q = tile_of(t);
        let n = q.x;
        let td = q.y;
        let th = q.z;
        let tw = q.w;
        let iz0 = i32(td * MT) - i32(P.p_d);
        let iy0 = i32(th * MT) - i32(P.p_h);
        let ix0 = i32(tw * MT) - i32(P.p_w);
        let xc = (n * P.c + c) * P.in_d;
        let az = select(1u, a, DIMS == 3u);
        for (var z = 0u; z < az; z++) {
            let iz = iz0 + i32(z);
            for (var y = 0u; y < a; y++) {
                let iy = iy0 + i32(y);
                let row_ok = iz >= 0 && iz < i32(P.in_d) && iy >= 0 && iy < i32(P.in_h);
                let row = ((xc + u32(max(iz, 0))) * P.in_h + u32(max(iy, 0))) * P.in_w;
                for (var xx = 0u; xx < a; xx++) {
                    let ix = ix0 + i32(xx);
                    var val = 0.0;
                    if (row_ok && ix >= 0 && ix < i32(P.in_w)) {
                        val = f32(x_in[row + u32(ix)]);
                    }
                    v[(z * a + y) * a + xx] = val;
                }
            }
        }
        transform(&v, 0u, a, a);
    }
    // flags & 2: the weight-gradient layout [NP][TC][CP] (tiles as the GEMM's K).
    let tiles_major = (P.flags & 2u) != 0u;
    for (var p = 0u; p < np; p++) {
        var at = (p * P.cp + c) * P.tc + tl;
        if (tiles_major) {
            at = (p * P.tc + tl) * P.cp + c;
        }
        f_out[at] = v[p];
    }
}

// ---------------------------------------------------------------- output

@compute @workgroup_size(64)
fn output(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    let ntiles = P.n * P.t_d * P.t_h * P.t_w;
    if (idx >= P.o * P.tc) {
        return;
    }
    let o = fdiv(idx, P.mg_tc);
    let tl = idx - o * P.tc;
    let t = P.t0 + tl;
    if (t >= ntiles) {
        return;
    }
    let a = alpha();
    let np = npoints();
    var v: array<f32, 216>;
    for (var p = 0u; p < np; p++) {
        v[p] = f_in[(p * P.op + o) * P.tc + tl];
    }
    transform(&v, 2u, MT, a);
    var b = 0.0;
    if ((P.flags & 1u) != 0u) {
        b = bias[o];
    }
    let q = tile_of(t);
    let n = q.x;
    let td = q.y;
    let th = q.z;
    let tw = q.w;
    let yc = (n * P.o + o) * P.out_d;
    let mz = select(1u, MT, DIMS == 3u);
    for (var z = 0u; z < mz; z++) {
        let oz = td * MT + z;
        for (var yy = 0u; yy < MT; yy++) {
            let oy = th * MT + yy;
            if (oz >= P.out_d || oy >= P.out_h) {
                continue;
            }
            let row = ((yc + oz) * P.out_h + oy) * P.out_w;
            for (var xx = 0u; xx < MT; xx++) {
                let ox = tw * MT + xx;
                if (ox < P.out_w) {
                    y_out[row + ox] = store_act(v[(z * a + yy) * a + xx] + b, (P.flags & 8u) != 0u);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- weight gradient
// dw[o,c] = G^T [ sum_t (A dy_t[o] A^T) .* (B^T d_t[c] B) ] G (the transposed F(m,3) identity:
// the 3x3(x3) taps are the outputs, the m^dims dy tile the filter).

// One invocation per (o, t) of OP x TC: W[p][o][t] = (A dy A^T)[p] for the chunk's tiles
// (0 for o >= O or tiles past the last). Reads dy as x_in (O channels), writes f_out.
@compute @workgroup_size(64)
fn grad_out(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (idx >= P.op * P.tc) {
        return;
    }
    let o = fdiv(idx, P.mg_tc);
    let tl = idx - o * P.tc;
    let t = P.t0 + tl;
    let a = alpha();
    let np = npoints();
    let ntiles = P.n * P.t_d * P.t_h * P.t_w;
    var v: array<f32, 216>;
    if (o < P.o && t < ntiles) {
        let q = tile_of(t);
        let n = q.x;
        let td = q.y;
        let th = q.z;
        let tw = q.w;
        let yc = (n * P.o + o) * P.out_d;
        let mz = select(1u, MT, DIMS == 3u);
        for (var z = 0u; z < mz; z++) {
            let oz = td * MT + z;
            for (var yy = 0u; yy < MT; yy++) {
                let oy = th * MT + yy;
                let row_ok = oz < P.out_d && oy < P.out_h;
                let row = ((yc + min(oz, P.out_d - 1u)) * P.out_h + min(oy, P.out_h - 1u)) * P.out_w;
                for (var xx = 0u; xx < MT; xx++) {
                    let ox = tw * MT + xx;
                    var val = 0.0;
                    if (row_ok && ox < P.out_w) {
                        val = f32(x_in[row + ox]);
                    }
                    v[(z * a + yy) * a + xx] = val;
                }
            }
        }
        transform(&v, 4u, a, MT);
    }
    for (var p = 0u; p < np; p++) {
        f_out[(p * P.op + o) * P.tc + tl] = v[p];
    }
}

// One invocation per (o, c) of O x C: dw = G^T X G from X[p][o][c] (f_in, [NP][OP][CP]),
// stored as f32 O, C, 3, 3(, 3) into f_out.
@compute @workgroup_size(64)
fn grad_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (idx >= P.o * P.c) {
        return;
    }
    let o = fdiv(idx, P.mg_c);
    let c = idx - o * P.c;
    let a = alpha();
    let np = npoints();
    var v: array<f32, 216>;
    for (var p = 0u; p < np; p++) {
        v[p] = f_in[(p * P.op + o) * P.cp + c];
    }
    transform(&v, 3u, 3u, a);
    let kd = select(1u, 3u, DIMS == 3u);
    let base = (o * P.c + c) * kd * 9u;
    for (var z = 0u; z < kd; z++) {
        for (var y = 0u; y < 3u; y++) {
            for (var x = 0u; x < 3u; x++) {
                f_out[base + (z * 3u + y) * 3u + x] = v[(z * a + y) * a + x];
            }
        }
    }
}
