//! Plain CPU batch, instance and group normalisation (f64 accumulation),
//! argument order as in `ops::norm`.
//!
//! A "set" is what one mean and variance are taken over: a channel for batch
//! norm (over N and space), an `(n, group)` for group norm (over the group's
//! channels and space), an `(n, c)` for instance norm (group norm with
//! `G = C`). Variances are biased (divide by m); `invstd = 1/sqrt(var + eps)`.
//! The `_f64` functions return unrounded outputs for finite-difference checks.

use crate::shape::Shape;

/// Which values one statistic is taken over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormSets {
    /// Per channel over batch and space (batch norm).
    Batch,
    /// Per (n, group) over the group's channels and space; `Groups(C)` is instance norm.
    Groups(usize),
}

impl NormSets {
    fn count(self, xs: &Shape) -> usize {
        match self {
            NormSets::Batch => xs.c(),
            NormSets::Groups(g) => xs.n() * g,
        }
    }
    fn set_of(self, xs: &Shape, n: usize, c: usize) -> usize {
        match self {
            NormSets::Batch => c,
            NormSets::Groups(g) => n * g + c / (xs.c() / g),
        }
    }
    fn m(self, xs: &Shape) -> usize {
        match self {
            NormSets::Batch => crate::shape::batch_norm_count(xs),
            NormSets::Groups(g) => crate::shape::group_norm_count(xs, g),
        }
    }
}

/// Forward outputs: `y`, and the saved per-set `mean` and `invstd` for the backward.
#[derive(Clone, Debug)]
pub struct NormOut {
    pub y: Vec<f32>,
    pub mean: Vec<f32>,
    pub invstd: Vec<f32>,
}

/// Backward outputs.
#[derive(Clone, Debug)]
pub struct NormGrads {
    pub dx: Vec<f32>,
    pub dgamma: Vec<f32>,
    pub dbeta: Vec<f32>,
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&a| a as f32).collect()
}

/// Visit every element as `(index, n, c, set)`.
fn for_each(xs: &Shape, sets: NormSets, mut f: impl FnMut(usize, usize, usize, usize)) {
    let sp = xs.spatial_numel();
    for n in 0..xs.n() {
        for c in 0..xs.c() {
            let k = sets.set_of(xs, n, c);
            let base = (n * xs.c() + c) * sp;
            for i in base..base + sp {
                f(i, n, c, k);
            }
        }
    }
}

/// Two-pass per-set mean and biased variance in f64.
pub fn set_stats(x: &[f32], xs: &Shape, sets: NormSets) -> (Vec<f64>, Vec<f64>) {
    let ns = sets.count(xs);
    let m = sets.m(xs) as f64;
    let mut mean = vec![0f64; ns];
    for_each(xs, sets, |i, _, _, k| mean[k] += x[i] as f64);
    mean.iter_mut().for_each(|v| *v /= m);
    let mut var = vec![0f64; ns];
    for_each(xs, sets, |i, _, _, k| {
        var[k] += (x[i] as f64 - mean[k]).powi(2)
    });
    var.iter_mut().for_each(|v| *v /= m);
    (mean, var)
}

/// `y = (x - mean)/sqrt(var + eps)*gamma + beta` with the batch statistics of `sets`;
/// returns `(y, mean, var)` unrounded.
pub fn normalize_f64(
    x: &[f32],
    xs: &Shape,
    sets: NormSets,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mean, var) = set_stats(x, xs, sets);
    let mut y = vec![0f64; x.len()];
    for_each(xs, sets, |i, _, c, k| {
        y[i] = (x[i] as f64 - mean[k]) / (var[k] + eps as f64).sqrt() * gamma[c] as f64
            + beta[c] as f64;
    });
    (y, mean, var)
}

fn norm_out(
    x: &[f32],
    xs: &Shape,
    sets: NormSets,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> (NormOut, Vec<f64>, Vec<f64>) {
    let (y, mean, var) = normalize_f64(x, xs, sets, gamma, beta, eps);
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps as f64).sqrt()).collect();
    (
        NormOut {
            y: to_f32(&y),
            mean: to_f32(&mean),
            invstd: to_f32(&invstd),
        },
        mean,
        var,
    )
}

/// Batch norm, training mode: batch statistics, and the running statistics updated in
/// place (`momentum` = weight of the new statistic; the running variance takes the
/// unbiased variance `var*m/(m-1)`). Panics if `m = N*D*H*W < 2`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    x: &[f32],
    xs: &Shape,
    gamma: &[f32],
    beta: &[f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    momentum: f32,
    eps: f32,
) -> NormOut {
    let m = crate::shape::batch_norm_count(xs);
    assert!(m > 1, "reference batch_norm_train: m = {m} < 2");
    let (out, mean, var) = norm_out(x, xs, NormSets::Batch, gamma, beta, eps);
    let mo = momentum as f64;
    for c in 0..xs.c() {
        running_mean[c] = ((1.0 - mo) * running_mean[c] as f64 + mo * mean[c]) as f32;
        running_var[c] =
            ((1.0 - mo) * running_var[c] as f64 + mo * var[c] * m as f64 / (m - 1) as f64) as f32;
    }
    out
}

/// Batch norm, eval mode, unrounded: `y = (x - rm)/sqrt(rv + eps)*gamma + beta`.
pub fn batch_norm_eval_f64(
    x: &[f32],
    xs: &Shape,
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
) -> Vec<f64> {
    let mut y = vec![0f64; x.len()];
    for_each(xs, NormSets::Batch, |i, _, c, _| {
        let is = 1.0 / (running_var[c] as f64 + eps as f64).sqrt();
        y[i] = (x[i] as f64 - running_mean[c] as f64) * is * gamma[c] as f64 + beta[c] as f64;
    });
    y
}

/// Batch norm, eval mode (running statistics, no update).
pub fn batch_norm_eval(
    x: &[f32],
    xs: &Shape,
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
) -> Vec<f32> {
    to_f32(&batch_norm_eval_f64(
        x,
        xs,
        gamma,
        beta,
        running_mean,
        running_var,
        eps,
    ))
}

/// Backward through the batch statistics of `sets`, given the saved per-set mean and invstd:
/// with `h = g*gamma`, `dx = invstd/m*(m*h - sum(h) - xhat*sum(h*xhat))`,
/// `dgamma_c = sum g*xhat`, `dbeta_c = sum g` (over n and space).
pub fn norm_backward(
    x: &[f32],
    xs: &Shape,
    sets: NormSets,
    g: &[f32],
    gamma: &[f32],
    mean: &[f32],
    invstd: &[f32],
) -> NormGrads {
    let ns = sets.count(xs);
    let m = sets.m(xs) as f64;
    let xhat = |i: usize, k: usize| (x[i] as f64 - mean[k] as f64) * invstd[k] as f64;
    let (mut sh, mut shx) = (vec![0f64; ns], vec![0f64; ns]);
    let (mut dgamma, mut dbeta) = (vec![0f64; xs.c()], vec![0f64; xs.c()]);
    for_each(xs, sets, |i, _, c, k| {
        let gv = g[i] as f64;
        let h = gv * gamma[c] as f64;
        sh[k] += h;
        shx[k] += h * xhat(i, k);
        dgamma[c] += gv * xhat(i, k);
        dbeta[c] += gv;
    });
    let mut dx = vec![0f64; x.len()];
    for_each(xs, sets, |i, _, c, k| {
        let h = g[i] as f64 * gamma[c] as f64;
        dx[i] = invstd[k] as f64 / m * (m * h - sh[k] - xhat(i, k) * shx[k]);
    });
    NormGrads {
        dx: to_f32(&dx),
        dgamma: to_f32(&dgamma),
        dbeta: to_f32(&dbeta),
    }
}

/// Batch norm training backward (`save_mean`, `save_invstd` from the forward).
pub fn batch_norm_train_backward(
    g: &[f32],
    x: &[f32],
    xs: &Shape,
    gamma: &[f32],
    save_mean: &[f32],
    save_invstd: &[f32],
) -> NormGrads {
    norm_backward(x, xs, NormSets::Batch, g, gamma, save_mean, save_invstd)
}

/// Batch norm eval backward: the statistics are constants, `dx = g*gamma*invstd`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_eval_backward(
    g: &[f32],
    x: &[f32],
    xs: &Shape,
    gamma: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
) -> NormGrads {
    let (mut dgamma, mut dbeta) = (vec![0f64; xs.c()], vec![0f64; xs.c()]);
    let mut dx = vec![0f64; x.len()];
    for_each(xs, NormSets::Batch, |i, _, c, _| {
        let is = 1.0 / (running_var[c] as f64 + eps as f64).sqrt();
        let gv = g[i] as f64;
        dx[i] = gv * gamma[c] as f64 * is;
        dgamma[c] += gv * (x[i] as f64 - running_mean[c] as f64) * is;
        dbeta[c] += gv;
    });
    NormGrads {
        dx: to_f32(&dx),
        dgamma: to_f32(&dgamma),
        dbeta: to_f32(&dbeta),
    }
}

/// Group norm: statistics per (n, group); saved stats are `[N, G]`. `groups` must divide C.
pub fn group_norm(
    x: &[f32],
    xs: &Shape,
    gamma: &[f32],
    beta: &[f32],
    groups: usize,
    eps: f32,
) -> NormOut {
    assert!(
        groups > 0 && xs.c().is_multiple_of(groups),
        "reference group_norm: {groups} groups for {} channels",
        xs.c()
    );
    norm_out(x, xs, NormSets::Groups(groups), gamma, beta, eps).0
}

/// Group norm backward.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(
    g: &[f32],
    x: &[f32],
    xs: &Shape,
    gamma: &[f32],
    save_mean: &[f32],
    save_invstd: &[f32],
    groups: usize,
) -> NormGrads {
    norm_backward(
        x,
        xs,
        NormSets::Groups(groups),
        g,
        gamma,
        save_mean,
        save_invstd,
    )
}

/// Instance norm: statistics per (n, c) over space; saved stats are `[N, C]`.
pub fn instance_norm(x: &[f32], xs: &Shape, gamma: &[f32], beta: &[f32], eps: f32) -> NormOut {
    norm_out(x, xs, NormSets::Groups(xs.c()), gamma, beta, eps).0
}

/// Instance norm backward.
pub fn instance_norm_backward(
    g: &[f32],
    x: &[f32],
    xs: &Shape,
    gamma: &[f32],
    save_mean: &[f32],
    save_invstd: &[f32],
) -> NormGrads {
    norm_backward(
        x,
        xs,
        NormSets::Groups(xs.c()),
        g,
        gamma,
        save_mean,
        save_invstd,
    )
}
