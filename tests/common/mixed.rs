//! Mixed-precision test helpers: every op runs twice through its wrappers,
//! once with F16 activations and once with F32 activations holding the same
//! f16-rounded values, and is compared with the CPU reference on those values.
//!
//! Widening f16 to f32 is exact, so both runs read the same numbers and do the
//! same f32 arithmetic (the kernels accumulate in f32 either way); they differ
//! only where an F16 output is rounded on store. Tolerances (`atol + rtol*|ref|`):
//! - [`STORED`]: an F16 output against the F32 run's f32 value: one rounding to
//!   nearest, |err| <= 2^-11 |v| for normal values; rtol 2^-10 (one f16 ulp)
//!   leaves room for a value next to a rounding tie whose last f32 bits differ
//!   between the two compiled modules. atol 2^-24 is the f16 subnormal spacing
//!   (below 2^-14 the rounding error is absolute).
//! - [`SAME`]: an F32 output (statistics, losses, parameter gradients) of the
//!   same f32 arithmetic on the same values in both modules: equal up to the
//!   last f32 bits (the modules may contract or order operations differently).
//! - exact (bit-identical): copies, selections, maxima ([`exact`]).
//! - against the reference: the family's f32 tolerance (its tests/<family>.rs)
//!   plus [`ROUNDING`] for an F16 output (one more rounding of the result).
#![allow(dead_code)]

use super::{assert_close, ctx};
use wunet::{Context, DType, Shape, Tensor};

/// F16 output vs the F32 run: one f16 rounding (see the module docs).
pub const STORED: (f32, f32) = (1.0 / 16_777_216.0, 1.0 / 1024.0);
/// F32 output vs the F32 run: the same f32 arithmetic on the same values.
pub const SAME: (f32, f32) = (1e-6, 1e-5);
/// What one f16 rounding of the result adds to a family's f32 tolerance.
pub const ROUNDING: (f32, f32) = (1.0 / 16_777_216.0, 1.0 / 1024.0);

/// The test context if it stores f16 (`SHADER_F16`), else `None` with a message.
pub fn f16_ctx() -> Option<&'static Context> {
    let c = ctx()?;
    if !c.features.contains(wgpu::Features::SHADER_F16) {
        eprintln!("skip: the adapter has no SHADER_F16 ({})", c.describe());
        return None;
    }
    Some(c)
}

/// `v` rounded to f16 (to nearest even) and widened back.
pub fn round16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

/// An activation tensor of dtype `act` holding `v` rounded to f16.
pub fn act_t(c: &Context, v: &[f32], s: Shape, act: DType) -> Tensor {
    match act {
        DType::F16 => Tensor::from_f32_as_f16(c, v, s),
        _ => Tensor::from_f32(c, &round16(v), s),
    }
    .expect("upload")
}

pub fn f32_t(c: &Context, v: &[f32], s: Shape) -> Tensor {
    Tensor::from_f32(c, v, s).expect("upload")
}

pub fn read(c: &Context, t: &Tensor) -> Vec<f32> {
    t.to_f32_vec(c).expect("readback")
}

/// Run `f` with F16 activations, then with F32 ones: `[mixed, f32]`.
pub fn both<T>(f: impl Fn(DType) -> wunet::Result<T>) -> [T; 2] {
    [DType::F16, DType::F32].map(|act| f(act).unwrap_or_else(|e| panic!("{act:?} run: {e}")))
}

fn dtypes(what: &str, h: &Tensor, f: &Tensor, want: [DType; 2]) {
    assert_eq!([h.dtype, f.dtype], want, "{what}: dtypes of the two runs");
    assert_eq!(h.shape, f.shape, "{what}: shapes");
}

/// An activation output: F16 in the mixed run, F32 in the other, within [`STORED`].
pub fn stored(c: &Context, what: &str, h: &Tensor, f: &Tensor) {
    dtypes(what, h, f, [DType::F16, DType::F32]);
    assert_close(what, &read(c, h), &read(c, f), STORED.0, STORED.1);
}

/// An activation output that moves or selects values: bit-identical in both runs.
pub fn exact(c: &Context, what: &str, h: &Tensor, f: &Tensor) {
    dtypes(what, h, f, [DType::F16, DType::F32]);
    same_bits(what, &read(c, h), &read(c, f));
}

/// An F32 output (statistics, losses, bias gradients), F32 in both runs, within [`SAME`].
pub fn same(c: &Context, what: &str, h: &Tensor, f: &Tensor) {
    dtypes(what, h, f, [DType::F32, DType::F32]);
    assert_close(what, &read(c, h), &read(c, f), SAME.0, SAME.1);
}

/// An F16 output against the reference: the family's f32 tolerance `fam`
/// (atol, rtol) plus one f16 rounding.
pub fn near_ref(what: &str, got: &[f32], want: &[f32], fam: (f32, f32)) {
    assert_close(what, got, want, fam.0 + ROUNDING.0, fam.1 + ROUNDING.1);
}

/// Fail at the first element whose bits differ.
pub fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: differs at {i}: got {}, want {}", got[i], want[i]);
    }
}

/// The error message of `r`, or a panic naming `what` if it succeeded.
pub fn err<T>(what: &str, r: wunet::Result<T>) -> String {
    match r {
        Ok(_) => panic!("{what}: expected an error"),
        Err(e) => e.to_string(),
    }
}
