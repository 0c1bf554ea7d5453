//! Division by a runtime constant without a divide instruction, for kernel
//! index decoding. CPU adapters (lavapipe) have no vector integer divide, so
//! each `/` in a kernel becomes eight scalar divides per 8-wide invocation
//! batch; a multiply-high and a shift are several times cheaper (measured: the
//! max-pool backward ran ~2x faster on lavapipe).
//!
//! Round-up method (Granlund & Montgomery 1994): for a divisor `1 <= d < 2^31`
//! let `l = ceil(log2 d)` and `m = ceil(2^(31+l) / d)` (which fits in u32).
//! For every `0 <= n < 2^31`, `floor(n/d) = floor(m*n / 2^(31+l))`, because
//! `m*d - 2^(31+l) = e < d <= 2^l` makes the error term `e*n / (d*2^(31+l))`
//! smaller than `1/d`. Kernels compute it as `mulhi(m, 2n) >> l` (`2n` fits in
//! u32), with `mulhi` built from 16-bit halves since WGSL has no 64-bit
//! integers. Kernel indices stay below 2^31 because a binding holds less than
//! 2^32 bytes, i.e. fewer than 2^30 elements.
//!
//! The WGSL side (`mulhi`, `fdiv`) is `kernels/precision/fastdiv.wgsl`, appended to
//! every kernel module; [`div`] here is its exact mirror and the tests check it
//! against `/`.

/// `(m, l)` for divisor `d` (`1 <= d < 2^31`). `d = 0` gives `(0, 0)` and
/// larger `d` are clamped to `2^31 - 1`: both only occur in tensors with no
/// elements (a non-empty one that large exceeds every binding limit), which
/// are never dispatched.
pub fn magic(d: usize) -> [u32; 2] {
    if d == 0 {
        return [0, 0];
    }
    let d = d.min((1 << 31) - 1);
    let l = usize::BITS - (d - 1).leading_zeros();
    let l = if d == 1 { 0 } else { l };
    let m = (1u64 << (31 + l)).div_ceil(d as u64);
    [m as u32, l]
}

/// High 32 bits of `a * b`, from 16-bit halves exactly as the kernels compute it.
pub fn mulhi(a: u32, b: u32) -> u32 {
    let (a0, a1, b0, b1) = (a & 0xffff, a >> 16, b & 0xffff, b >> 16);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let mid = (p00 >> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    a1 * b1 + (p01 >> 16) + (p10 >> 16) + (mid >> 16)
}

/// `n / d` for `n < 2^31` given `magic(d)`; the kernels' `fdiv`.
pub fn div(n: u32, mag: [u32; 2]) -> u32 {
    mulhi(mag[0], n << 1) >> mag[1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mulhi_is_exact() {
        let mut s = 0x1234_5678_9abc_def0u64;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let (a, b) = (s as u32, (s >> 32) as u32);
            assert_eq!(
                mulhi(a, b),
                ((a as u64 * b as u64) >> 32) as u32,
                "{a} * {b}"
            );
        }
        assert_eq!(mulhi(u32::MAX, u32::MAX), u32::MAX - 1);
    }

    #[test]
    fn division_is_exact() {
        let top = (1u32 << 31) - 1;
        let mut divisors: Vec<u32> = (1..=3000).collect();
        for p in 2..31 {
            divisors.extend([(1u32 << p) - 1, 1 << p, (1 << p) + 1, (1 << p) / 3 * 2 + 1]);
        }
        divisors.extend([top, top - 1, 65_535, 65_537, 1_000_003]);
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for &d in &divisors {
            let mag = magic(d as usize);
            let check = |n: u32| assert_eq!(div(n, mag), n / d, "{n} / {d}");
            for n in [
                0,
                1,
                d - 1,
                d,
                d + 1,
                top,
                top - 1,
                top / d * d,
                (top / d * d).saturating_sub(1),
            ] {
                check(n.min(top));
            }
            for k in 1..40u32 {
                let q = (top / d).min(k.wrapping_mul(2_654_435_761) % (top / d + 1));
                check(q * d);
                check((q * d).saturating_sub(1));
            }
            for _ in 0..200 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                check((s as u32) & top);
            }
        }
    }
}
