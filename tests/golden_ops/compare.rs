//! The golden comparison rule and, in one place, what mixed precision adds to it.
//!
//! A float tensor passes iff every element has
//! `|got - exp| <= (atol + a16) + (rtol + r16) * |exp|`, where `atol`, `rtol`
//! are the manifest's (JAX float64 from float32 inputs against an f32 engine)
//! and `(a16, r16)` is [`Slack`]: zero in the f32 run, and in the mixed run the
//! f16 term of [`f16_slack`] below, derived per op family.
//!
//! # The f16 term (mixed run)
//!
//! In the mixed run the activations and activation gradients (`x`, `dy`,
//! `logits`, ...) are rounded to f16 on upload, activation outputs are stored
//! in f16, everything else (weights, statistics, losses, weight maps, parameter
//! gradients) is f32, and every kernel computes and sums in f32. The expected
//! values are JAX's from the unrounded inputs, so the engine's result differs
//! from them by (a) the effect of the input rounding, propagated through the
//! op, and (b) one rounding of a stored f16 output, on top of the f32
//! differences the manifest's tolerance already covers. With `u = 2^-11` (the
//! unit roundoff of f16, round to nearest) and `M(t) = max|t|` over the case's
//! input file `t` (`M(dy)`: its upstream gradient):
//!
//! - **One rounding** of a value `v` ([`Slack::round`]): `|dv| <= u|v|` for
//!   normal f16 values, `<= 2^-25` below 2^-14 (subnormals): `r16 += u`,
//!   `a16 += 2^-24`. A stored F16 output adds one; so does an output that moves,
//!   selects or takes the maximum of rounded inputs (copies, concat, crop, pad,
//!   max pool, nearest upsampling, relu), since rounding is monotone and the op
//!   is exact on the rounded values.
//! - **A sum of products** ([`sum_err`]): an element that sums `m` independent
//!   rounding errors, each at most `e` (a product of `K` terms with `n` rounded
//!   factors each: `m = n*K`, `e = u * max|term|`), is off by at most `m*e`
//!   (worst case) and, as the errors are independent roundings (uniform in
//!   `±e`, standard deviation `e/sqrt(3)`), by at most `3*sqrt(m)*e`: at
//!   least 5 standard deviations even when every term has the maximum
//!   magnitude (with Gaussian data typically 20 or more). The bound is
//!   `e * min(m, 3*sqrt(m))`. `K` is the manifest's `k_reduce`.
//! - **A linear combination with coefficient mass `s`** (`sum |c_k| <= s`,
//!   short: pooling, linear upsampling): `u * s * M` exactly (worst case).
//!
//! Per family (`f16_slack`; each arm states its derivation): conv and
//! transposed conv: `y`, `grad x`: sums of `K` products with 2 rounded factors
//! (x or dy, and the weight: the matrix-unit kernels round weights to f16 too)
//! plus the stored rounding; `grad weight` likewise (x and dy rounded), `grad
//! bias` a sum of `K` rounded dy. Pooling, copies, padding, upsampling: one
//! rounding (exact ops), or a short linear combination. Norms and losses:
//! first-order propagation through their closed forms, with the statistics
//! (means over `m` elements) as sums. Optimizer steps have no F16 path and run
//! in f32 in the mixed run (no term).

use super::harness::{Case, Data, Host, Outcome, TensorSpec};
use std::fmt;

/// f16's unit roundoff (round to nearest): a rounded normal value is within `u|v|`.
pub const U: f64 = 1.0 / 2048.0;
/// Room for f16 subnormals (spacing 2^-24, rounding error <= 2^-25).
pub const SUB: f64 = 1.0 / 16_777_216.0;

/// What the mixed run adds to the manifest's tolerance of one tensor.
#[derive(Clone, Copy, Debug, Default)]
pub struct Slack {
    pub atol: f64,
    pub rtol: f64,
}

impl Slack {
    /// No addition (the f32 run).
    pub const NONE: Slack = Slack {
        atol: 0.0,
        rtol: 0.0,
    };
    /// `k` roundings of the value to f16 (stored output, rounded input carried
    /// through an exact op).
    fn round(self, k: f64) -> Self {
        Slack {
            atol: self.atol + k * SUB,
            rtol: self.rtol + k * U,
        }
    }
    /// An absolute error bound.
    fn abs(self, a: f64) -> Self {
        Slack {
            atol: self.atol + a,
            rtol: self.rtol,
        }
    }
    /// A relative error bound.
    fn rel(self, r: f64) -> Self {
        Slack {
            atol: self.atol,
            rtol: self.rtol + r,
        }
    }
}

/// The error of a sum of `m` independent rounding errors of at most `e` each:
/// the worst case `m*e`, or `3*sqrt(m)*e` (>= 5 standard deviations, see the
/// module docs), whichever is smaller.
pub fn sum_err(m: f64, e: f64) -> f64 {
    e * m.min(3.0 * m.sqrt())
}

/// The family of an op for the report: its name without `2d`/`3d`.
pub fn family(op: &str) -> &str {
    op.strip_suffix("2d")
        .or_else(|| op.strip_suffix("3d"))
        .unwrap_or(op)
}

/// The f16 term of expected tensor `name` (an output, or with `grad` the
/// gradient of input `name`) of a case run in mixed precision. An op or tensor
/// without a rule is an error (a new op needs its rule here before its mixed
/// run can pass).
pub fn f16_slack(case: &Case, name: &str, grad: bool, spec: &TensorSpec) -> Result<Slack, Outcome> {
    let op = case.spec.op.as_str();
    let s = Slack::NONE;
    let k = spec.k_reduce.unwrap_or(1.0).max(1.0);
    let m = |t: &str| case.max_abs(t, false);
    let mdy = || case.max_abs("y", true);
    let slack = match (family(op), grad, name) {
        // y = sum_K w*x (+ b): K products, x rounded and w rounded by the matrix-unit
        // kernels (2 roundings each); stored.
        ("conv" | "conv_transpose", false, "y") => s
            .round(1.0)
            .abs(sum_err(2.0 * k, U * m("x")? * m("weight")?)),
        // dx = sum_K w*dy: as y.
        ("conv" | "conv_transpose", true, "x") => s
            .round(1.0)
            .abs(sum_err(2.0 * k, U * mdy()? * m("weight")?)),
        // dw = sum_K x*dy (F32): both factors rounded.
        ("conv" | "conv_transpose", true, "weight") => {
            s.abs(sum_err(2.0 * k, U * m("x")? * mdy()?))
        }
        // db = sum_K dy (F32).
        ("conv" | "conv_transpose", true, "bias") => s.abs(sum_err(k, U * mdy()?)),

        // The maximum of rounded values is the rounded maximum (rounding is monotone):
        // one rounding, and storing it is exact.
        ("max_pool", false, "y") => s.round(1.0),
        // dx: the sum of dy over the windows whose maximum x is: at most
        // W = prod(ceil(k/s)) rounded dy; stored.
        ("max_pool", true, "x") => {
            let w = windows_per_input(case)?;
            s.round(1.0).abs(sum_err(w, U * mdy()?))
        }
        // Scatter of rounded x / gather of rounded dy: one rounding.
        ("max_unpool", false, "y") | ("max_unpool", true, "x") => s.round(1.0),
        // y: a mean of rounded x, coefficients 1/count summing to <= 1: u*M(x); stored.
        ("avg_pool", false, "y") => s.round(1.0).abs(U * m("x")?),
        // dx = sum over W windows of dy/count: coefficient mass <= W/min count; stored.
        ("avg_pool", true, "x") => s.round(1.0).abs(U * avg_pool_grad_mass(case)? * mdy()?),

        // Copies of rounded values (dy or 0): one rounding.
        ("relu", _, "y" | "x") => s.round(1.0),
        // x or slope*x (dy or slope*dy): the input's rounding and the stored one.
        ("leaky_relu", _, "y" | "x") => s.round(2.0),
        // y = sigmoid(x): |dy| <= |x*sigmoid'(x)|*u <= 0.2240*u (the maximum of
        // |x| s(x)(1-s(x)), at x = 2.3994); stored.
        ("sigmoid", false, "y") => s.round(1.0).abs(0.2240 * U),
        // dx = dy*y*(1-y) from the stored F16 y: |d(y(1-y))| <= |dy_stored| <=
        // (0.2240 + 1)*u, times M(dy); dy's rounding and the stored one relative.
        ("sigmoid", true, "x") => s.round(2.0).abs(1.2240 * U * mdy()?),

        // Copies (zero padding adds exact zeros): one rounding.
        ("concat" | "center_crop", _, _) => s.round(1.0),
        ("pad", false, "y") => s.round(1.0),
        // Zero pad dx: a copy. Reflect pad dx: a sum of up to K = 2^dims rounded dy; stored.
        ("pad", true, "x") if k > 1.0 => s.round(1.0).abs(sum_err(k, U * mdy()?)),
        ("pad", true, "x") => s.round(1.0),

        // Nearest y: a copy. Nearest dx: the sum of K = prod(f) rounded dy; stored.
        ("upsample_nearest", false, "y") => s.round(1.0),
        ("upsample_nearest", true, "x") => s.round(1.0).abs(sum_err(k, U * mdy()?)),
        // Linear y: a convex combination of rounded x: u*M(x); stored.
        ("upsample_bilinear" | "upsample_trilinear", false, "y") => s.round(1.0).abs(U * m("x")?),
        // Linear dx: sum_j c_j dy_j with c >= 0 and, for align_corners = false and an
        // integer factor, sum_j c_j = prod(f) for every input (edges included); stored.
        ("upsample_bilinear" | "upsample_trilinear", true, "x") => {
            let f: f64 = case
                .attr_usizes("scale_factor")?
                .iter()
                .map(|&v| v as f64)
                .product();
            s.round(1.0).abs(U * f * mdy()?)
        }

        ("batch_norm" | "instance_norm" | "group_norm", _, _) => norm_slack(case, name, grad, k)?,
        ("softmax_cross_entropy", _, _) => cross_entropy_slack(case, name, grad)?,
        ("dice_loss", _, _) => dice_slack(case, name, grad)?,
        _ => {
            return Err(Outcome::Error(format!(
            "no f16 tolerance rule for {} '{name}' of op {op} (add one in golden_ops/compare.rs)",
            if grad { "gradient" } else { "output" }
        )))
        }
    };
    Ok(slack)
}

/// Max pool: how many windows can cover one input element, `prod(ceil(k/s))`.
fn windows_per_input(case: &Case) -> Result<f64, Outcome> {
    let k = case.attr_usizes("kernel")?;
    let st = case.attr_usizes("stride")?;
    Ok(k.iter()
        .zip(&st)
        .map(|(&k, &s)| k.div_ceil(s.max(1)) as f64)
        .product())
}

/// Avg pool backward: a bound on `sum_j 1/count_j` over the windows covering one
/// input: `prod(ceil(k/s))` windows over the smallest count, `prod(k)` with
/// `count_include_pad`, else `prod(k - p)` (a corner window; floor mode keeps
/// every window within the padded extent).
fn avg_pool_grad_mass(case: &Case) -> Result<f64, Outcome> {
    let k = case.attr_usizes("kernel")?;
    let p = case.attr_usizes("padding")?;
    let include = case.attr_bool("count_include_pad")?;
    let min_count: f64 = k
        .iter()
        .zip(&p)
        .map(|(&k, &p)| (if include { k } else { k - p.min(k - 1) }) as f64)
        .product();
    Ok(windows_per_input(case)? / min_count)
}

fn floats(h: Host, what: &str) -> Result<Vec<f32>, Outcome> {
    match h.data {
        Data::F32(v) => Ok(v),
        Data::I64(_) => Err(Outcome::Error(format!("'{what}' is not float32"))),
    }
}

// ------------------------------------------------------------------ norms

/// One normalisation group (the elements sharing a mean and variance), its
/// quantities in units of its `sigma = sqrt(var + eps)`.
#[derive(Default, Clone, Copy)]
struct Group {
    m: f64,
    sum: f64,
    sumsq: f64,
    mean: f64,
    sigma: f64,
    /// `X`: max |x| / sigma
    x: f64,
    /// `H`: max |x_hat|
    h: f64,
    /// `G`: max |g|, g = gamma * dy
    g: f64,
    /// sum of g, then `|mean(g)|`
    gbar: f64,
    /// sum of g * x_hat, then `P = |mean(g x_hat)|`
    p: f64,
}

/// The first-order error terms of a group: `(r, a, b, e)` (see [`norm_slack`]).
fn group_errs(gr: &Group, eval: bool) -> (f64, f64, f64, f64) {
    let r = if eval {
        0.0
    } else {
        (3.0 / gr.m.sqrt()).min(1.0)
    };
    let a = U * r * gr.x;
    let b = U * r * gr.h * gr.x;
    (r, a, b, U * gr.x + a + gr.h * b)
}

/// Norms (batch norm training and eval, instance norm, group norm), first order.
///
/// Per group (m elements, `x_hat = (x - mean)/sigma`, `g = gamma*dy`) with
/// `X = max|x|/sigma`, `H = max|x_hat|`, `G = max|g|`, `gbar = |mean(g)|`,
/// `P = |mean(g x_hat)|` (float64, from the case's inputs) and
/// `r = min(1, 3/sqrt(m))` (a mean of m independent roundings: [`sum_err`]/m):
/// - `a = u r X`: the error of the mean, in sigma (`mean(x delta)`);
/// - `b = u r H X`: the relative error of sigma (`dvar = 2 mean((x-mean) x delta)`);
/// - `e = u X + a + H b`: the error of x_hat (own rounding, mean, sigma).
///
/// - `y = gamma x_hat + beta`: `max|gamma| e`; stored.
/// - `dx = (g - mean(g) - x_hat Q)/sigma`, `Q = mean(g x_hat)`: `[u G (1 + r)`
///   (g's rounding, as is and in mean(g)) `+ e P` (x_hat's error times Q)
///   `+ H dQ` with `dQ = u r G (H + X) + a gbar + b P` (dy's and x's own
///   roundings in the mean, then the common mean and sigma errors) `+ b (G + gbar
///   + H P)]/sigma` (sigma's error on the whole); stored.
/// - `dgamma_c = sum dy x_hat` (F32): the 2K own roundings, each at most
///   `u M(dy) max(H, X)`: `sum_err`; plus the common errors, per group touching
///   the channel `a |sum dy| + b |sum dy x_hat|` (the mean and sigma errors are
///   one number per group).
/// - `dbeta = sum dy`: `sum_err(K, u M(dy))`.
/// - Statistics (F32): batch_mean `sigma a`, batch_var `2 sigma^2 b`, save_invstd
///   `b/sigma`, the running statistics the momentum times those (`m/(m-1)` for
///   the unbiased variance).
/// - Eval mode normalises with the running statistics (F32, exact): `r = 0`,
///   `dx = gamma dy/sigma`: `u G/sigma`.
fn norm_slack(case: &Case, name: &str, grad: bool, k: f64) -> Result<Slack, Outcome> {
    let op = case.spec.op.as_str();
    let s = Slack::NONE;
    let x = floats(case.input("x")?, "x")?;
    let dy = floats(case.grad_output("y")?, "grad_y")?;
    let shape = &case.spec.inputs["x"].shape;
    let (n, c) = (shape[0], shape[1]);
    let sp: usize = shape[2..].iter().product();
    let gamma = if case.has_input("gamma") {
        floats(case.input("gamma")?, "gamma")?
    } else {
        vec![1.0; c]
    };
    if gamma.len() != c || x.len() != n * c * sp || dy.len() != x.len() {
        return Err(Outcome::Error(format!(
            "norm inputs: x {shape:?}, {} gamma, {} grad_y values",
            gamma.len(),
            dy.len()
        )));
    }
    let eps = case.attr_f64("eps")?;
    let batch = family(op) == "batch_norm";
    let eval = batch && !case.attr_bool("training")?;
    // The group of element (n, c): batch norm per channel, instance norm per
    // (n, c), group norm per (n, channel group).
    let per_sample = match family(op) {
        "group_norm" => case.attr_usize("num_groups")?.max(1),
        _ => c,
    };
    let cpg = (c / per_sample).max(1);
    let gid = |ni: usize, ci: usize| {
        if batch {
            ci
        } else {
            ni * per_sample + ci / cpg
        }
    };
    let mut gs = vec![Group::default(); if batch { c } else { n * per_sample }];
    let elems = |ni: usize, ci: usize| (ni * c + ci) * sp..(ni * c + ci + 1) * sp;
    for ni in 0..n {
        for ci in 0..c {
            let gr = &mut gs[gid(ni, ci)];
            for i in elems(ni, ci) {
                let v = x[i] as f64;
                gr.m += 1.0;
                gr.sum += v;
                gr.sumsq += v * v;
            }
        }
    }
    let running = if eval {
        let rm = floats(case.input("running_mean")?, "running_mean")?;
        let rv = floats(case.input("running_var")?, "running_var")?;
        Some((rm, rv))
    } else {
        None
    };
    for (i, gr) in gs.iter_mut().enumerate() {
        let (mean, var) = match &running {
            Some((rm, rv)) => (rm[i] as f64, rv[i] as f64),
            None => {
                let mean = gr.sum / gr.m;
                (mean, (gr.sumsq / gr.m - mean * mean).max(0.0))
            }
        };
        gr.mean = mean;
        gr.sigma = (var + eps).sqrt();
    }
    // The maxima and means per group; per (group, channel) the sums of dy and
    // dy x_hat (for dgamma's common errors).
    let mut sums = std::collections::BTreeMap::<(usize, usize), (f64, f64)>::new();
    for ni in 0..n {
        for (ci, &gm) in gamma.iter().enumerate() {
            let gi = gid(ni, ci);
            let gr = &mut gs[gi];
            let sum = sums.entry((gi, ci)).or_default();
            for i in elems(ni, ci) {
                let xh = (x[i] as f64 - gr.mean) / gr.sigma;
                let d = dy[i] as f64;
                let g = gm as f64 * d;
                gr.x = gr.x.max((x[i] as f64).abs() / gr.sigma);
                gr.h = gr.h.max(xh.abs());
                gr.g = gr.g.max(g.abs());
                gr.gbar += g;
                gr.p += g * xh;
                sum.0 += d;
                sum.1 += d * xh;
            }
        }
    }
    for gr in &mut gs {
        gr.gbar = (gr.gbar / gr.m).abs();
        gr.p = (gr.p / gr.m).abs();
    }
    let over = |f: &dyn Fn(&Group) -> f64| gs.iter().map(f).fold(0.0f64, f64::max);
    let errs = |gr: &Group| group_errs(gr, eval);
    let gmax = gamma.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    let mdy = dy.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    let momentum = || case.attr_f64("momentum");
    let slack = match (grad, name) {
        (false, "y") => s.round(1.0).abs(gmax * over(&|gr| errs(gr).3)),
        (true, "x") if eval => s.round(1.0).abs(over(&|gr| U * gr.g / gr.sigma)),
        (true, "x") => s.round(1.0).abs(over(&|gr| {
            let (r, a, b, e) = errs(gr);
            let dq = U * r * gr.g * (gr.h + gr.x) + a * gr.gbar + b * gr.p;
            (U * gr.g * (1.0 + r) + e * gr.p + gr.h * dq + b * (gr.g + gr.gbar + gr.h * gr.p))
                / gr.sigma
        })),
        (true, "beta") => s.abs(sum_err(k, U * mdy)),
        (true, "gamma") => {
            let own = sum_err(2.0 * k, U * mdy * over(&|gr| gr.h.max(gr.x)));
            let mut common = vec![0.0f64; c];
            for (&(gi, ci), &(sd, sdx)) in &sums {
                let (_, a, b, _) = errs(&gs[gi]);
                common[ci] += a * sd.abs() + b * sdx.abs();
            }
            s.abs(own + common.iter().fold(0.0f64, |m, &v| m.max(v)))
        }
        (false, "batch_mean") => s.abs(over(&|gr| gr.sigma * errs(gr).1)),
        (false, "batch_var") => s.abs(over(&|gr| 2.0 * gr.sigma * gr.sigma * errs(gr).2)),
        (false, "save_invstd") => s.abs(over(&|gr| errs(gr).2 / gr.sigma)),
        (false, "running_mean_new") => s.abs(momentum()? * over(&|gr| gr.sigma * errs(gr).1)),
        (false, "running_var_new") => s.abs(
            momentum()?
                * over(&|gr| 2.0 * gr.sigma * gr.sigma * errs(gr).2 * gr.m / (gr.m - 1.0).max(1.0)),
        ),
        _ => {
            return Err(Outcome::Error(format!(
                "no f16 tolerance rule for '{name}' of op {op}"
            )))
        }
    };
    Ok(slack)
}

// ------------------------------------------------------------------ losses

/// Softmax cross-entropy. The logits are rounded (`|dz| <= u M`, `M = M(logits)`),
/// so per pixel `|dz_c - dz_j| <= 2 u M =: eps` and the softmax moves by
/// `|dp_c| = |p_c sum_j p_j (dz_c - dz_j)| <= eps p_c (1 - p_c)`:
/// - `grad logits = s_i (p - onehot)` (`s_i` = the pixel's weight over the
///   normaliser, exact): `|d grad_c| <= eps |grad_c|` (for the label class
///   `|grad| = s (1-p)`, else `s p`): rtol `eps`, stored.
/// - `nll_map = lse(z) - z_label`: `|d| = |sum_j p_j (dz_j - dz_label)| <= eps`.
/// - `loss = sum_i w_i nll_i / den`: independent per-pixel errors `<= eps M(w)`:
///   `sum_err(pixels, eps M(w)) / den` (den: the pixel count for `mean`, the sum
///   of the weight map for `weighted_mean`).
fn cross_entropy_slack(case: &Case, name: &str, grad: bool) -> Result<Slack, Outcome> {
    let s = Slack::NONE;
    let eps = 2.0 * U * case.max_abs("logits", false)?;
    Ok(match (grad, name) {
        (true, "logits") => s.round(1.0).rel(eps),
        (false, "nll_map") => s.abs(eps),
        (false, "loss") => {
            let pixels = case.spec.inputs["labels"].shape.iter().product::<usize>() as f64;
            let (mw, den) = if case.attr_bool("has_weight_map")? {
                let w = floats(case.input("weight_map")?, "weight_map")?;
                let mw = w.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
                let sum: f64 = w.iter().map(|&v| v as f64).sum();
                let weighted = case.attr_str("reduction")? == "weighted_mean";
                (mw, if weighted { sum } else { pixels })
            } else {
                (1.0, pixels)
            };
            s.abs(sum_err(pixels, eps * mw) / den.max(f64::MIN_POSITIVE))
        }
        _ => {
            return Err(Outcome::Error(format!(
                "no f16 tolerance rule for '{name}' of softmax_cross_entropy"
            )))
        }
    })
}

/// Soft Dice on softmax(logits). Every `p` moves by a relative `eps = 2 u M(logits)`
/// at most (see [`cross_entropy_slack`]), so the nonnegative sums `I = sum p t` and
/// `S = sum p + sum t` move by `eps` relative, and `dice = (2I + s)/(S + s)` by
/// `2 eps` relative: dice rtol `2 eps`; `loss = 1 - mean(dice)`: `2 eps`.
/// `grad_c = p_c (a_c - sum_j p_j a_j)` with `a = dL/dp = -(2t - dice)/(T (S + s))`
/// (T dice terms averaged): with `A = max 1/(T (S + s))` (S from a float64 softmax
/// of the case's logits), `|a| <= 2A` and `|da| <= 4 eps A`, so
/// `|d grad_c| <= eps |grad_c| + p_c (4 + 2 + 4) eps A`: rtol `eps`, atol
/// `10 eps A`, stored.
fn dice_slack(case: &Case, name: &str, grad: bool) -> Result<Slack, Outcome> {
    let s = Slack::NONE;
    let eps = 2.0 * U * case.max_abs("logits", false)?;
    Ok(match (grad, name) {
        (false, "dice") => s.rel(2.0 * eps),
        (false, "loss") => s.abs(2.0 * eps),
        (true, "logits") => {
            let a = dice_max_a(case)?;
            s.round(1.0).rel(eps).abs(10.0 * eps * a)
        }
        _ => {
            return Err(Outcome::Error(format!(
                "no f16 tolerance rule for '{name}' of dice_loss"
            )))
        }
    })
}

/// `max 1/(T (S + smooth))` over the Dice terms the loss averages (per class, or
/// per sample and class; class 0 left out unless `include_background`, and `T`
/// counts only the averaged terms), `S = sum p + sum onehot` from a float64
/// softmax of the logits.
fn dice_max_a(case: &Case) -> Result<f64, Outcome> {
    let z = floats(case.input("logits")?, "logits")?;
    let Data::I64(t) = case.input("labels")?.data else {
        return Err(Outcome::Error("labels are not int64".into()));
    };
    let shape = &case.spec.inputs["logits"].shape;
    let (n, c) = (shape[0], shape[1]);
    let sp: usize = shape[2..].iter().product();
    let batch = case.attr_str("reduce_over")? == "batch";
    let smooth = case.attr_f64("smooth")?;
    let background = case.attr_bool("include_background")?;
    let terms = if batch { c } else { n * c };
    let counted = |term: usize| background || !term.is_multiple_of(c);
    let averaged = (0..terms).filter(|&t| counted(t)).count();
    let mut den = vec![0.0f64; terms];
    for ni in 0..n {
        for i in 0..sp {
            let zi = |ci: usize| z[(ni * c + ci) * sp + i] as f64;
            let zmax = (0..c).map(zi).fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = (0..c).map(|ci| (zi(ci) - zmax).exp()).sum();
            for ci in 0..c {
                let p = (zi(ci) - zmax).exp() / total;
                let onehot = f64::from(t[ni * sp + i] == ci as i64);
                den[if batch { ci } else { ni * c + ci }] += p + onehot;
            }
        }
    }
    Ok(den
        .iter()
        .enumerate()
        .filter(|&(term, _)| counted(term))
        .map(|(_, &d)| 1.0 / (averaged as f64 * (d + smooth)))
        .fold(0.0f64, f64::max))
}

// ------------------------------------------------------------------ comparison

/// The worst element of a comparison.
pub struct Mismatch {
    pub ratio: f64,
    pub index: usize,
    pub got: String,
    pub expected: String,
    pub bad: usize,
    pub total: usize,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worst ratio {:.4} at index {} (got {}, expected {})",
            self.ratio, self.index, self.got, self.expected
        )
    }
}

pub enum CompareFail {
    /// Shape, dtype or manifest problem (printed as is).
    Shape(String),
    /// Values out of tolerance.
    Values(Mismatch),
}

/// Compare `got` with the expected tensor: `Ok(worst ratio)` or the reason it fails.
/// Floats: `|got-exp| <= (atol + slack.atol) + (rtol + slack.rtol)*|exp|`, NaN/Inf
/// fail. `exact` ints must be equal.
pub fn compare(
    spec: &TensorSpec,
    exp: &Host,
    got: &Host,
    slack: Slack,
) -> Result<f64, CompareFail> {
    if got.shape != exp.shape {
        return Err(CompareFail::Shape(format!(
            "shape {:?} but expected {:?}",
            got.shape, exp.shape
        )));
    }
    match (&exp.data, &got.data) {
        (Data::F32(e), Data::F32(g)) => {
            let (Some(rtol), Some(atol)) = (spec.rtol, spec.atol) else {
                return Err(CompareFail::Shape("manifest entry has no rtol/atol".into()));
            };
            let (atol, rtol) = (atol + slack.atol, rtol + slack.rtol);
            let mut worst = (0.0f64, 0usize);
            let mut bad = 0;
            for (i, (&gv, &ev)) in g.iter().zip(e).enumerate() {
                let (gv, ev) = (gv as f64, ev as f64);
                let diff = (gv - ev).abs();
                let lim = atol + rtol * ev.abs();
                let r = if !gv.is_finite() || !ev.is_finite() {
                    f64::INFINITY
                } else if lim > 0.0 {
                    diff / lim
                } else if diff == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                };
                if r > 1.0 {
                    bad += 1;
                }
                if r > worst.0 {
                    worst = (r, i);
                }
            }
            if bad == 0 {
                return Ok(worst.0);
            }
            let i = worst.1;
            Err(CompareFail::Values(Mismatch {
                ratio: worst.0,
                index: i,
                got: format!("{}", g[i]),
                expected: format!("{}", e[i]),
                bad,
                total: e.len(),
            }))
        }
        (Data::I64(_), Data::I64(_)) if !spec.exact => Err(CompareFail::Shape(
            "int64 tensor without \"exact\": true in the manifest".into(),
        )),
        (Data::I64(e), Data::I64(g)) => {
            let bad = g.iter().zip(e).filter(|(a, b)| a != b).count();
            match g.iter().zip(e).position(|(a, b)| a != b) {
                None => Ok(0.0),
                Some(i) => Err(CompareFail::Values(Mismatch {
                    ratio: f64::INFINITY,
                    index: i,
                    got: g[i].to_string(),
                    expected: e[i].to_string(),
                    bad,
                    total: e.len(),
                })),
            }
        }
        (Data::F32(_), _) => Err(CompareFail::Shape(
            "got an integer tensor, expected float32".into(),
        )),
        (Data::I64(_), _) => Err(CompareFail::Shape(
            "got a float tensor, expected int64".into(),
        )),
    }
}
