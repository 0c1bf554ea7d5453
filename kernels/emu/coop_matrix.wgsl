// emu/coop_matrix.wgsl: plain-WGSL stand-ins for the cooperative-matrix operations of the
// coop kernels (conv_coop.wgsl, conv_coop_wgrad.wgsl). `pipelines::emulated_source` puts this
// file in place of a kernel's "matrix operations" section and drops its
// `enable wgpu_cooperative_matrix;`, so the kernel's staging, tap walks, split-K and epilogue run
// on any adapter with f16 (lavapipe in CI) and are checked against the CPU reference. Only the
// matrix unit itself (and the layout semantics of coopLoad/coopLoadT/coopStoreT, which
// tests/conv_coop.rs pins down on a real device) is left to the GPU tests.
//
// Every invocation holds whole 16 x 16 fragments (row-major, f32) and computes whole products:
// 32 times the work of the real thing, fine for test sizes. Operands are f16 values widened
// exactly, products summed in f32 in k order, like a matrix unit with f32 accumulation.
// Semantics mirrored: coopLoadT = row-major, coopLoad = column-major, coopStoreT = row-major,
// coopMultiplyAdd(a, b, c) = c + a*b, strides in elements.

struct FragA { v: array<f32, 256> }
struct FragB { v: array<f32, 256> }
struct FragC { v: array<f32, 256> }

fn frag_zero() -> FragC {
    return FragC();
}

// A(r, k) = As[off + r*stride + k]
fn load_a(off: u32, stride: u32) -> FragA {
    var m: FragA;
    for (var r = 0u; r < 16u; r++) {
        for (var k = 0u; k < 16u; k++) {
            m.v[r * 16u + k] = f32(As[off + r * stride + k]);
        }
    }
    return m;
}

// B(k, n) = Bs[off + k*stride + n]
fn load_b_rows(off: u32, stride: u32) -> FragB {
    var m: FragB;
    for (var k = 0u; k < 16u; k++) {
        for (var n = 0u; n < 16u; n++) {
            m.v[k * 16u + n] = f32(Bs[off + k * stride + n]);
        }
    }
    return m;
}

// B(k, n) = Bs[off + n*stride + k]
fn load_b_cols(off: u32, stride: u32) -> FragB {
    var m: FragB;
    for (var k = 0u; k < 16u; k++) {
        for (var n = 0u; n < 16u; n++) {
            m.v[k * 16u + n] = f32(Bs[off + n * stride + k]);
        }
    }
    return m;
}

// c + a * b
fn mma(a: FragA, b: FragB, c: FragC) -> FragC {
    var out = c;
    for (var r = 0u; r < 16u; r++) {
        for (var n = 0u; n < 16u; n++) {
            var s = out.v[r * 16u + n];
            for (var k = 0u; k < 16u; k++) {
                s = fma(a.v[r * 16u + k], b.v[k * 16u + n], s);
            }
            out.v[r * 16u + n] = s;
        }
    }
    return out;
}

// Cs[off + r*stride + n] = c(r, n) (every invocation of the subgroup writes the same values)
fn store_c(c: FragC, off: u32, stride: u32) {
    for (var r = 0u; r < 16u; r++) {
        for (var n = 0u; n < 16u; n++) {
            Cs[off + r * stride + n] = c.v[r * 16u + n];
        }
    }
}
