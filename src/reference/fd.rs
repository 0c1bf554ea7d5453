//! Finite-difference gradient checking for the reference ops.

/// Central-difference estimate of `d f / d x[i]` for every `i` in `which`,
/// with step `eps`, evaluated in f64 on a copy of `x`.
pub fn numeric_grad(
    f: &mut dyn FnMut(&[f32]) -> f64,
    x: &[f32],
    which: &[usize],
    eps: f64,
) -> Vec<f64> {
    let mut xp = x.to_vec();
    which
        .iter()
        .map(|&i| {
            let orig = xp[i];
            xp[i] = (orig as f64 + eps) as f32;
            let hi = f(&xp);
            xp[i] = (orig as f64 - eps) as f32;
            let lo = f(&xp);
            xp[i] = orig;
            let h = (orig as f64 + eps) as f32 as f64 - (orig as f64 - eps) as f32 as f64;
            (hi - lo) / h
        })
        .collect()
}

/// `sum(g * y)` in f64: the scalar whose gradient is the vector-Jacobian product with `g`.
pub fn dot(g: &[f32], y: &[f32]) -> f64 {
    g.iter().zip(y).map(|(a, b)| *a as f64 * *b as f64).sum()
}
