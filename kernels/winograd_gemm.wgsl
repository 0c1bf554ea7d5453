// winograd_gemm.wgsl: the batched GEMM of the Winograd convolution (kernels/winograd.wgsl):
//   M[p][o][t] = sum_c U[p][o][c] * V[p][c][t]   for every transform point p < NP
// with the zero-padded scratch layouts U [NP][OP][CP], V [NP][CP][TC], M [NP][OP][TC]
// (OP, TC multiples of 8, CP a multiple of 4), so no edge checks are needed. The weight
// gradient runs it with (rows, K, columns) = (OP, tiles of a chunk, C rounded up to 8) in
// the (op, cp, tc) fields and flags & 4 to accumulate onto M.
//
// Thread mapping: register blocks without workgroup memory or barriers (as the
// ../shared/calib reg8x8 matmul): each invocation owns 8 rows (o) x 8 columns (t) of one
// point, reads U as vec4 along c and V as vec4 along t, accumulates 16 vec4s. A workgroup of
// 64 covers RW row blocks x 64/RW column blocks (RW override: 1, 2, 4 or 8; fewer rows when
// the layer has few output channels). Consecutive invocations take consecutive column
// blocks, or with ROWS_FIRST consecutive row blocks: the host sets it when the GEMM has
// fewer column blocks than a workgroup row holds (few tiles, or a narrow weight gradient),
// so that the live invocations are contiguous and fill whole SIMD groups (a CPU adapter
// runs 8 consecutive invocations as one vector; columns-first would leave one live lane in
// eight when there is one column block).
// Grid: NP * ceil(OP/(8*RW)) * ceil(TC/(8*64/RW)) workgroups, linearised.
// Bindings: 0 params (uniform, the Params of winograd.wgsl), 1 u (read, vec4), 2 v (read,
// vec4), 3 m (read_write, vec4).

struct Params {
    n: u32, c: u32, o: u32, flags: u32,
    in_d: u32, in_h: u32, in_w: u32, cp: u32,
    out_d: u32, out_h: u32, out_w: u32, op: u32,
    p_d: u32, p_h: u32, p_w: u32, tc: u32,
    t_d: u32, t_h: u32, t_w: u32, t0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

// Transform points (alpha^dims: 16, 36 or 64).
override NP: u32 = 16u;
override RW: u32 = 8u;
override ROWS_FIRST: bool = false;

@group(0) @binding(1) var<storage, read> u4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> m4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let cw = 64u / RW;
    let nrb = P.op / 8u;
    let ncb = P.tc / 8u;
    let wr = (nrb + RW - 1u) / RW;
    let wc = (ncb + cw - 1u) / cw;
    let g = wid.x + wid.y * nwg.x;
    let p = g / (wr * wc);
    let rest = g - p * wr * wc;
    var rl = lid / cw;
    var cl = lid % cw;
    if (ROWS_FIRST) {
        rl = lid % RW;
        cl = lid / RW;
    }
    let rb = (rest / wc) * RW + rl;
    let cb = (rest % wc) * cw + cl;
    if (p >= NP || rb >= nrb || cb >= ncb) {
        return;
    }
    let k4n = P.cp / 4u;
    let t4 = P.tc / 4u;
    let abase = (p * P.op + rb * 8u) * k4n;
    var bidx = p * P.cp * t4 + cb * 2u;
    let obase = (p * P.op + rb * 8u) * t4 + cb * 2u;
    var acc: array<vec4<f32>, 16>;
    // flags & 4: accumulate onto M (the weight gradient sums its chunks of tiles).
    if ((P.flags & 4u) != 0u) {
        for (var r = 0u; r < 8u; r++) {
            acc[2u * r] = m4[obase + r * t4];
            acc[2u * r + 1u] = m4[obase + r * t4 + 1u];
        }
    }
    for (var k4 = 0u; k4 < k4n; k4++) {
        var b0: array<vec4<f32>, 4>;
        var b1: array<vec4<f32>, 4>;
        for (var kk = 0u; kk < 4u; kk++) {
            b0[kk] = v4[bidx];
            b1[kk] = v4[bidx + 1u];
            bidx += t4;
        }
        for (var r = 0u; r < 8u; r++) {
            let av = u4[abase + r * k4n + k4];
            acc[2u * r] = fma(vec4(av.x), b0[0], acc[2u * r]);
            acc[2u * r] = fma(vec4(av.y), b0[1], acc[2u * r]);
            acc[2u * r] = fma(vec4(av.z), b0[2], acc[2u * r]);
            acc[2u * r] = fma(vec4(av.w), b0[3], acc[2u * r]);
            acc[2u * r + 1u] = fma(vec4(av.x), b1[0], acc[2u * r + 1u]);
            acc[2u * r + 1u] = fma(vec4(av.y), b1[1], acc[2u * r + 1u]);
            acc[2u * r + 1u] = fma(vec4(av.z), b1[2], acc[2u * r + 1u]);
            acc[2u * r + 1u] = fma(vec4(av.w), b1[3], acc[2u * r + 1u]);
        }
    }
    for (var r = 0u; r < 8u; r++) {
        m4[obase + r * t4] = acc[2u * r];
        m4[obase + r * t4 + 1u] = acc[2u * r + 1u];
    }
}

