"""Self-checks of the golden generator: each op implementation in golden_ops.py is
compared with a second, independent formulation (numpy scatter loops, JAX
library primitives, closed-form gradients). A mismatch aborts the run."""

import jax
import jax.numpy as jnp
import numpy as np

import golden_ops


def _close(name, got, want, tol=1e-10):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"self-check {name}: shape {got.shape} vs {want.shape}"
    err = np.max(np.abs(got - want)) if got.size else 0.0
    scale = max(1.0, np.max(np.abs(want)) if want.size else 0.0)
    assert err <= tol * scale, f"self-check {name}: max abs diff {err:.3g}"


def _f64(inputs):
    return {n: jnp.asarray(v, jnp.float64) if np.issubdtype(v.dtype, np.floating) else v for n, v in inputs.items()}


def conv_transpose_scatter(inputs, attrs):
    """Direct-form transposed conv == the scatter definition y[i*s - p + k*d] += x[i] w[k]."""
    a = dict(attrs)
    if attrs["bias"]:
        a["_bias"] = inputs["bias"]
    want = golden_ops.conv_transpose_scatter_np(inputs["x"], inputs["weight"], a)
    got = jax.jit(lambda i: golden_ops.conv_transpose(i, attrs)["y"])(_f64(inputs))
    _close("conv_transpose scatter", got, want)
    # and == the input-gradient of conv (the ConvTranspose weight read as a conv weight O=C_in)
    x = jnp.asarray(inputs["x"], jnp.float64)
    w = jnp.asarray(inputs["weight"], jnp.float64)
    out_sp = want.shape[2:]
    z = jnp.zeros((x.shape[0], want.shape[1]) + tuple(out_sp), jnp.float64)
    cattrs = {"stride": attrs["stride"], "padding": attrs["padding"], "dilation": attrs["dilation"],
              "groups": attrs["groups"], "bias": False}
    def dgrad(z, w, x):
        _, vjp = jax.vjp(lambda t: golden_ops.conv({"x": t, "weight": w}, cattrs)["y"], z)
        return vjp(x)[0]

    ref = jax.jit(dgrad)(z, w, x)
    if attrs["bias"]:
        ref = ref + jnp.asarray(inputs["bias"], jnp.float64).reshape((1, -1) + (1,) * len(out_sp))
    _close("conv_transpose as conv input-gradient", got, ref)


def _reduce_window_max(x, a):
    nd = x.ndim - 2
    pads = [(0, 0), (0, 0)] + [(p, p) for p in a["padding"]]
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1) + tuple(a["kernel"]),
                                 (1, 1) + tuple(a["stride"]), pads) if nd else x


def max_pool(x, attrs):
    """Patch/argmax formulation == lax.reduce_window(max) (forward and gradient)."""
    xj = jnp.asarray(x, jnp.float64)

    def both(xj, g):
        mine = golden_ops.max_pool({"x": xj}, attrs)
        ref = _reduce_window_max(xj, attrs)
        _, v1 = jax.vjp(lambda t: golden_ops.max_pool({"x": t}, attrs, aux=False)["y"], xj)
        _, v2 = jax.vjp(lambda t: _reduce_window_max(t, attrs), xj)
        return mine, ref, v1(g)[0], v2(g)[0]

    shape = jax.eval_shape(lambda t: _reduce_window_max(t, attrs), xj).shape
    g = jnp.asarray(np.random.default_rng(0).standard_normal(shape))
    mine, ref, g1, g2 = jax.jit(both)(xj, g)
    mine = {k: np.asarray(v) for k, v in mine.items()}
    assert np.isfinite(mine["y"]).all(), "max_pool picked a padded element"
    _close("max_pool vs reduce_window", mine["y"], ref, 0.0)
    _close("max_pool grad vs select_and_scatter", g1, g2)
    # indices point at the values
    idx = mine["indices"]
    assert idx.dtype == np.int64 and (idx >= 0).all() and (idx < np.prod(x.shape[2:])).all()
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    picked = np.take_along_axis(flat, idx.reshape(n, c, -1), axis=2).reshape(idx.shape)
    _close("max_pool indices", picked, mine["y"], 0.0)


def avg_pool(x, attrs):
    """count_include_pad: == lax.reduce_window(add)/prod(k); otherwise check one window by hand."""
    xj = jnp.asarray(x, jnp.float64)
    y = np.asarray(jax.jit(lambda t: golden_ops.avg_pool({"x": t}, attrs)["y"])(xj))
    k, s, p = attrs["kernel"], attrs["stride"], attrs["padding"]
    if attrs["count_include_pad"]:
        pads = [(0, 0), (0, 0)] + [(q, q) for q in p]
        ref = jax.jit(lambda t: jax.lax.reduce_window(t, 0.0, jax.lax.add, (1, 1) + tuple(k), (1, 1) + tuple(s),
                                                      pads))(xj)
        _close("avg_pool vs reduce_window", y, ref / np.prod(k))
    else:
        # corner window: only the in-range elements, divided by their count
        sl = tuple([0, 0] + [slice(0, k[i] - p[i]) for i in range(len(k))])
        _close("avg_pool corner", y[(0, 0) + (0,) * len(k)], np.mean(x[sl].astype(np.float64)))


def batch_norm_grads(inputs, attrs, outs, grads, g):
    """JAX autodiff == the closed-form batch-norm gradients of SCHEMA.md."""
    x = inputs["x"].astype(np.float64)
    gy = np.asarray(g, np.float64)
    gamma = inputs["gamma"].astype(np.float64)
    nd = x.ndim - 2
    bs = (1, -1) + (1,) * nd
    axes = (0,) + tuple(range(2, 2 + nd))
    if attrs["training"]:
        m = attrs["reduce_count"]
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        invstd = 1 / np.sqrt(var + attrs["eps"])
        xh = (x - mean.reshape(bs)) * invstd.reshape(bs)
        sg = gy.sum(axis=axes)
        sgx = (gy * xh).sum(axis=axes)
        dx = (gamma * invstd / m).reshape(bs) * (m * gy - sg.reshape(bs) - xh * sgx.reshape(bs))
        _close("batch_norm running_var_new", outs["running_var_new"],
               0.9 * inputs["running_var"].astype(np.float64) + 0.1 * var * m / (m - 1))
    else:
        invstd = 1 / np.sqrt(inputs["running_var"].astype(np.float64) + attrs["eps"])
        xh = (x - inputs["running_mean"].astype(np.float64).reshape(bs)) * invstd.reshape(bs)
        sgx = (gy * xh).sum(axis=axes)
        sg = gy.sum(axis=axes)
        dx = gy * (gamma * invstd).reshape(bs)
    _close("batch_norm dx", grads["x"], dx, 1e-9)
    _close("batch_norm dgamma", grads["gamma"], sgx, 1e-9)
    _close("batch_norm dbeta", grads["beta"], sg, 1e-9)


def pad(x, attrs):
    """Index-map reflect / constant pad == jnp.pad."""
    mode = "constant" if attrs["mode"] == "zero" else "reflect"
    xj = jnp.asarray(x, jnp.float64)
    ref = jnp.pad(xj, [(0, 0), (0, 0)] + [tuple(p) for p in attrs["pad"]], mode=mode)
    _close("pad vs jnp.pad", jax.jit(lambda t: golden_ops.pad({"x": t}, attrs)["y"])(xj), ref, 0.0)


def upsample_linear(x, attrs):
    """Separable PyTorch source-index interpolation == jax.image.resize(linear, antialias=False)."""
    xj = jnp.asarray(x, jnp.float64)
    y = jax.jit(lambda t: golden_ops.upsample({"x": t}, attrs)["y"])(xj)
    ref = jax.jit(lambda t: jax.image.resize(t, y.shape, method="linear", antialias=False))(xj)
    _close("upsample vs jax.image.resize", y, ref, 1e-12)
