// emu/coop_matrix.wgsl: plain-WGSL stand-ins for the cooperative-matrix operations of the
// coop kernels (conv_coop.wgsl, conv_coop_wgrad.wgsl). `pipelines::emulated_source` puts this
// file in place of a kernel's "matrix operations" section and drops its
// `enable wgpu_cooperative_matrix;`, so the kernel's staging, tap walks, split-K and epilogue run
// on any adapter with f16 (lavapipe in CI) and are checked against the CPU reference. Only the
// matrix unit itself (and the layout semantics of coopLoad/coopLoadT/coopStoreT, which
// tests/conv_coop.rs pins down on a real device) is left to the GPU tests.
//
// A "subgroup" here is 32 consecutive invocations (local_invocation_index / 32), as the
// kernels assume. A/B fragments are references (offset and strides into As / Bs), read when
// multiplied: the kernels multiply fragments in the same barrier interval they load them. An
// accumulator is spread over its 32 lanes like a matrix unit's: lane l holds row l / 2,
// columns (l % 2)*8 .. +8, in f32; products of f16 values are exact in f32 and summed in k order.
// Semantics mirrored: coopLoadT = row-major, coopLoad = column-major, coopStoreT = row-major,
// coopMultiplyAdd(a, b, c) = c + a*b, strides in elements.

struct FragA { off: u32, stride: u32 }
// B(k, n) = Bs[off + k*sk + n*sn]
struct FragB { off: u32, sk: u32, sn: u32 }
struct FragC { lane: u32, v: array<f32, 8> }

// 16, the depth of a fragment step, for the loops of mma and store_c. They read it from
// workgroup memory (stored by frag_zero, which every accumulator comes from) so that no
// compiler unrolls them: unrolled, the multiply-adds of a tap step made lavapipe's LLVM spend
// minutes per pipeline splitting the kernel into its barrier-separated coroutines. Every
// invocation stores the same value before it reads it.
var<workgroup> emu_k: u32;

fn frag_zero(lane: u32) -> FragC {
    emu_k = 16u;
    var c: FragC;
    c.lane = lane % 32u;
    return c;
}

// A(r, k) = As[off + r*stride + k]
fn load_a(off: u32, stride: u32) -> FragA {
    return FragA(off, stride);
}

// B(k, n) = Bs[off + k*stride + n]
fn load_b_rows(off: u32, stride: u32) -> FragB {
    return FragB(off, stride, 1u);
}

// B(k, n) = Bs[off + n*stride + k]
fn load_b_cols(off: u32, stride: u32) -> FragB {
    return FragB(off, 1u, stride);
}

// c + a * b
fn mma(a: FragA, b: FragB, c: FragC) -> FragC {
    var out = c;
    let r = c.lane / 2u;
    let n0 = (c.lane % 2u) * 8u;
    let kn = emu_k;
    for (var i = 0u; i < kn / 2u; i++) {
        var s = out.v[i];
        for (var k = 0u; k < kn; k++) {
            s = fma(f32(As[a.off + r * a.stride + k]), f32(Bs[b.off + k * b.sk + (n0 + i) * b.sn]), s);
        }
        out.v[i] = s;
    }
    return out;
}

// Cs[off + r*stride + n] = c(r, n)
fn store_c(c: FragC, off: u32, stride: u32) {
    let r = c.lane / 2u;
    let n0 = (c.lane % 2u) * 8u;
    let half = emu_k / 2u;
    for (var i = 0u; i < half; i++) {
        Cs[off + r * stride + n0 + i] = c.v[i];
    }
}
