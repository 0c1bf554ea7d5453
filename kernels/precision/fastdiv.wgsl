// precision/fastdiv.wgsl: division by a runtime constant without a divide instruction, for
// index decoding (CPU adapters have no vector integer division); the host side, the magics
// and the proof are src/ops/fastdiv.rs. Appended to every kernel module after the epilogue
// (src/gpu/pipelines.rs::compose); a kernel passes the magic of its divisor in its params.

// High 32 bits of a * b, from 16-bit halves (WGSL has no 64-bit integers).
fn mulhi(a: u32, b: u32) -> u32 {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    return a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}

// n / d for n < 2^31, with mag = (m, l) = fastdiv::magic(d).
fn fdiv(n: u32, mag: vec2<u32>) -> u32 {
    return mulhi(mag.x, n << 1u) >> mag.y;
}
