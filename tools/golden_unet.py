"""Tiny U-Net golden: one training-mode forward + backward of a 2-level U-Net,
2D (1x1x32x32) and 3D (1x1x16x16x16), written to `<out>/cases.json` with the
TENSOR/EXPECTED conventions of SCHEMA.md (see tests/golden/README.md)."""

import math
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np

import golden_ops as G
from golden_lib import LAYOUT, CaseSet, case_rng, ceil_sig3, rms, sig3, validate

BLOCKS = [("enc0", 1, 4), ("enc1", 4, 8), ("bottom", 8, 16), ("dec1", 16, 8), ("dec0", 8, 4)]
EPS = 1e-5
RTOL = 1e-3
ATOL_REL = 1e-3
# Every ReLU input must be at least MIN_MARGIN times the fp32 error of its tensor away
# from 0, and every live max-pool window's top two values that far apart, so that no
# ReLU mask or argmax is decided by rounding (which would move gradients by O(1) in
# an fp32 engine); the generator redraws the data (next sub-seed) until this holds.
MIN_MARGIN = 10.0

TOLERANCE_RULE = (
    f"|got-exp| <= atol + rtol*|exp| elementwise; rtol = {RTOL:g}; "
    f"atol = {ATOL_REL:g} * max(rms(exp), rms(ref)), where ref is the tensor itself, except for a "
    "gradient of a bias or BN parameter, whose ref is the weight gradient of the same layer "
    "(B.convK.bias and B.bnK.* -> B.convK.weight, upK.bias -> upK.weight, head.bias -> head.weight); "
    "for loss and logits ref is the tensor itself with a floor of 1. Values rounded up to 3 significant "
    "digits. Why: the loss passes through 13 convs / transposed convs and 10 training-mode batch norms "
    "in fp32, so errors compound to ~1e-5 relative (jax_fp32_max_abs_err shows the fp32 noise, typically "
    "100x under atol); conv biases in front of a training-mode BN have an analytically zero gradient "
    "(BN removes any per-channel constant), so their expected values are f64 rounding noise and an "
    "engine's fp32 values there can only be judged against the scale of the same layer's weight gradient."
)


def param_specs(nd):
    """(name, shape, kind) in manifest order."""
    k = (3,) * nd
    out = []
    for b, cin, cout in BLOCKS:
        out += [
            (f"{b}.conv1.weight", (cout, cin) + k, "conv"), (f"{b}.conv1.bias", (cout,), "bias"),
            (f"{b}.bn1.weight", (cout,), "gamma"), (f"{b}.bn1.bias", (cout,), "beta"),
            (f"{b}.conv2.weight", (cout, cout) + k, "conv"), (f"{b}.conv2.bias", (cout,), "bias"),
            (f"{b}.bn2.weight", (cout,), "gamma"), (f"{b}.bn2.bias", (cout,), "beta"),
        ]
    out += [
        ("up1.weight", (16, 8) + (2,) * nd, "convT"), ("up1.bias", (8,), "bias"),
        ("up0.weight", (8, 4) + (2,) * nd, "convT"), ("up0.bias", (4,), "bias"),
        ("head.weight", (2, 4) + (1,) * nd, "conv"), ("head.bias", (2,), "bias"),
    ]
    return out


def init_params(rng, nd):
    params = {}
    for name, shape, kind in param_specs(nd):
        if kind == "conv":
            fan_in = shape[1] * int(np.prod(shape[2:]))
            v = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
        elif kind == "convT":
            # a k2 s2 transposed conv sums C_in terms into each output: fan_in = C_in
            v = rng.standard_normal(shape) * math.sqrt(2.0 / shape[0])
        elif kind == "gamma":
            v = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            v = 0.1 * rng.standard_normal(shape)
        params[name] = v.astype(np.float32)
    return params


def blob_labels(rng, spatial):
    """{0,1} map: a sum of 6 random Gaussian blobs thresholded at its 60th percentile."""
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in spatial], indexing="ij")
    field = np.zeros(spatial)
    for _ in range(6):
        c = [rng.uniform(0, s) for s in spatial]
        r = rng.uniform(0.12, 0.3) * min(spatial)
        amp = rng.uniform(0.5, 1.5)
        d2 = sum((g - ci) ** 2 for g, ci in zip(grids, c))
        field += amp * np.exp(-d2 / (2 * r * r))
    lab = (field > np.quantile(field, 0.6)).astype(np.int64)
    return lab[None]


def forward(p, x, labels, nd, record=None):
    """Loss and logits; `record` (a list) collects ReLU inputs and pool inputs for the margin check."""
    one = (1,) * nd
    cattrs = {"stride": list(one), "padding": [1] * nd, "dilation": list(one), "groups": 1, "bias": True}

    def bn_relu(z, pre):
        c = z.shape[1]
        m = z.size // c
        bn = G.batch_norm({"x": z, "gamma": p[pre + ".weight"], "beta": p[pre + ".bias"],
                           "running_mean": jnp.zeros((c,), z.dtype), "running_var": jnp.ones((c,), z.dtype)},
                          {"training": True, "momentum": 0.1, "eps": EPS, "reduce_count": m})["y"]
        if record is not None:
            record.append(("relu", pre, bn))
        return G.relu({"x": bn}, {})["y"]

    def block(h, b):
        for i in (1, 2):
            h = G.conv({"x": h, "weight": p[f"{b}.conv{i}.weight"], "bias": p[f"{b}.conv{i}.bias"]}, cattrs)["y"]
            h = bn_relu(h, f"{b}.bn{i}")
        return h

    def pool(h, name):
        if record is not None:
            record.append(("pool", name, h))
        return G.max_pool({"x": h}, {"kernel": [2] * nd, "stride": [2] * nd, "padding": [0] * nd}, aux=False)["y"]

    def up(h, name):
        a = {"stride": [2] * nd, "padding": [0] * nd, "output_padding": [0] * nd, "dilation": list(one),
             "groups": 1, "bias": True}
        return G.conv_transpose({"x": h, "weight": p[name + ".weight"], "bias": p[name + ".bias"]}, a)["y"]

    e0 = block(x, "enc0")
    e1 = block(pool(e0, "pool0"), "enc1")
    bt = block(pool(e1, "pool1"), "bottom")
    d1 = block(jnp.concatenate([e1, up(bt, "up1")], axis=1), "dec1")
    d0 = block(jnp.concatenate([e0, up(d1, "up0")], axis=1), "dec0")
    hattrs = dict(cattrs, padding=[0] * nd)
    logits = G.conv({"x": d0, "weight": p["head.weight"], "bias": p["head.bias"]}, hattrs)["y"]
    loss = G.softmax_cross_entropy({"logits": logits, "labels": labels},
                                   {"has_weight_map": False, "reduction": "mean"})["loss"]
    return loss, logits


_PROBES = {}


def _probe(nd):
    """Jitted forward returning every ReLU input and pool input (compiled once per nd and dtype)."""
    if nd not in _PROBES:
        kinds = []

        def probe(p, x, labels):
            rec = []
            forward(p, x, labels, nd, rec)
            kinds[:] = [k for k, _, _ in rec]
            return [t for _, _, t in rec]

        _PROBES[nd] = (jax.jit(probe), kinds)
    return _PROBES[nd]


def margins(params, x, labels, nd):
    """Smallest decision margin, in units of the fp32 error of the same tensor: min |ReLU input|
    and min top-1/top-2 gap of a live max-pool window, each divided by max |fp32 - fp64| of
    that tensor as JAX computes it. Returns (relu, pool)."""
    fn, kinds = _probe(nd)
    t = {}
    for dt in (jnp.float64, jnp.float32):
        p = {n: jnp.asarray(v, dt) for n, v in params.items()}
        t[dt] = [np.asarray(v, np.float64) for v in fn(p, jnp.asarray(x, dt), jnp.asarray(labels))]
    relu_m, pool_m = np.inf, np.inf
    for kind, a, b in zip(kinds, t[jnp.float64], t[jnp.float32]):
        err = max(float(np.max(np.abs(a - b))), 1e-300)
        if kind == "relu":
            relu_m = min(relu_m, float(np.min(np.abs(a))) / err)
        else:
            pt = G._patches(a, [2] * nd, [2] * nd, [s // 2 for s in a.shape[2:]])
            srt = np.sort(pt, axis=-1)
            # windows whose maximum is 0 (all ReLU zeros) tie harmlessly: the gradient
            # reaches a ReLU that passes none of it, whichever zero is picked
            live = srt[..., -1] > 0
            gap = float(np.min((srt[..., -1] - srt[..., -2])[live])) if live.any() else np.inf
            pool_m = min(pool_m, gap / err)
    return relu_m, pool_m


def run(params, x, labels, nd, dtype):
    p = {n: jnp.asarray(v, dtype) for n, v in params.items()}
    xj = jnp.asarray(x, dtype)
    names = list(p)

    def f(xv, *pv):
        return forward(dict(zip(names, pv)), xv, labels, nd)

    def both(xv, pv):
        (loss, logits), vjp = jax.vjp(f, xv, *pv)
        return loss, logits, vjp((jnp.asarray(1.0, dtype), jnp.zeros_like(logits)))

    loss, logits, gs = jax.jit(both)(xj, [p[n] for n in names])
    grads = {"x": np.asarray(gs[0])}
    grads.update({n: np.asarray(g) for n, g in zip(names, gs[1:])})
    return np.asarray(loss), np.asarray(logits), grads


def fd_check(params, x, labels, nd, grads):
    """Self-check: for every parameter (and x), a float64 central difference of the loss
    along a random direction must equal <gradient, direction>."""
    names = list(params)

    def loss_of(xv, pv):
        return forward(dict(zip(names, pv)), xv, labels, nd)[0]

    f = jax.jit(loss_of)
    x64 = jnp.asarray(x, jnp.float64)
    p64 = [jnp.asarray(params[n], jnp.float64) for n in names]
    rng = np.random.default_rng(0)
    h = 1e-7
    for name in ["x"] + names:
        base = x64 if name == "x" else p64[names.index(name)]
        v = rng.standard_normal(base.shape)
        v *= max(rms(base), 1e-3) / rms(v)

        def at(sign):
            moved = base + sign * h * v
            if name == "x":
                return float(f(moved, p64))
            pv = list(p64)
            pv[names.index(name)] = moved
            return float(f(x64, pv))

        fd = (at(1) - at(-1)) / (2 * h)
        an = float(np.sum(np.asarray(grads[name], np.float64) * v))
        scale = float(np.sqrt(np.sum(np.asarray(grads[name], np.float64) ** 2) * np.sum(v * v)))
        # rounding noise of the difference: ~1e-16 * |loss| / h = ~1e-9
        assert abs(fd - an) <= 1e-5 * scale + 1e-8, f"unet fd check {name}: fd {fd} vs vjp {an}"


def ref_name(name):
    if name in ("x", "loss", "logits"):
        return name
    parts = name.split(".")
    if parts[-1] == "bias" or parts[-2].startswith("bn"):
        layer = parts[-2].replace("bn", "conv") if parts[-2].startswith("bn") else parts[-2]
        return ".".join(parts[:-2] + [layer, "weight"])
    return name


def make_case(cs, case_id, nd, seed):
    spatial = (32, 32) if nd == 2 else (16, 16, 16)
    for sub in range(1000):
        rng = case_rng(seed, f"{case_id}/{sub}")
        x = rng.standard_normal((1, 1) + spatial).astype(np.float32)
        labels = blob_labels(rng, spatial)
        params = init_params(rng, nd)
        relu_m, pool_m = margins(params, x, labels, nd)
        if min(relu_m, pool_m) > MIN_MARGIN:
            break
    else:
        raise RuntimeError(f"{case_id}: no sub-seed with margins above {MIN_MARGIN}")
    loss64, logits64, g64 = run(params, x, labels, nd, jnp.float64)
    loss32, logits32, g32 = run(params, x, labels, nd, jnp.float32)
    fd_check(params, x, labels, nd, g64)
    assert logits32.dtype == np.float32 and all(v.dtype == np.float32 for v in g32.values())

    def expected(fname, name, e64, e32, floor1=False):
        entry = cs._save(case_id, fname, np.asarray(e64, np.float32))
        ref = g64[ref_name(name)] if name in g64 else e64
        scale = max(rms(e64), rms(ref), 1.0 if floor1 else 0.0)
        entry.update({"rtol": RTOL, "atol": ceil_sig3(ATOL_REL * scale),
                      "jax_fp32_max_abs_err": sig3(np.max(np.abs(np.asarray(e32, np.float64) - e64)))})
        return entry

    shutil.rmtree(os.path.join(cs.root, case_id), ignore_errors=True)
    inputs = {"x": cs._save(case_id, "x", x), "labels": cs._save(case_id, "labels", labels)}
    for n, v in params.items():
        inputs[n] = cs._save(case_id, "param_" + n, v)
    attrs = {
        "dims": nd,
        "blocks": [{"name": b, "in": ci, "out": co} for b, ci, co in BLOCKS],
        "block": "conv3x3 pad 1 + bias -> batch_norm (training, batch stats, eps 1e-5) -> relu, twice",
        "pool": "max pool kernel 2 stride 2",
        "up": "conv_transpose kernel 2 stride 2 with bias (IOHW weight)",
        "skip": "concat([encoder output, upsampled], axis=1), skip first",
        "head": "conv 1x1 (4 -> 2) with bias",
        "loss": "softmax_cross_entropy over axis 1, mean over all pixels",
        "bn_eps": EPS,
        "param_order": list(params),
        "sub_seed": sub,
        "min_relu_margin_in_fp32_errors": sig3(relu_m),
        "min_pool_gap_in_fp32_errors": sig3(pool_m),
    }
    case = {
        "id": case_id, "op": "unet_tiny", "optional": False,
        "note": f"one forward+backward of the tiny U-Net ({nd}D); parameter p is file param_<p>.npy, "
                "its gradient grad_<p>.npy, the input gradient grad_x.npy",
        "attrs": attrs,
        "inputs": inputs,
        "grad_output": {"loss": cs._save(case_id, "grad_loss", np.array(1.0, np.float32))},
        "outputs": {"loss": expected("loss", "loss", loss64, loss32, True),
                    "logits": expected("logits", "logits", logits64, logits32, True)},
        "grads": {n: expected("grad_" + n, n, g64[n], g32[n]) for n in ["x"] + list(params)},
    }
    cs.cases.append(case)
    worst = max((e["jax_fp32_max_abs_err"] / e["atol"], n) for part in ("outputs", "grads")
                for n, e in case[part].items())
    print(f"{case_id}: loss {float(loss64):.6f}, sub-seed {sub}, margins relu {relu_m:.2g} pool {pool_m:.2g}, "
          f"largest jax fp32 error / atol {worst[0]:.3g} ({worst[1]})")


def write(root, seed, generator):
    cs = CaseSet(root, seed, generator)
    make_case(cs, "unet_tiny_2d", 2, seed)
    make_case(cs, "unet_tiny_3d", 3, seed)
    extra = {"layout": dict(LAYOUT, files="param_<name>.npy, grad_<name>.npy (gradients), grad_x.npy")}
    cs.remove_stale()
    cs.write_manifest(extra=extra, tolerance_rule=TOLERANCE_RULE)
    validate(root)
    print(f"{root}/cases.json: {len(cs.cases)} cases, {cs.bytes / 1e6:.3f} MB of .npy")
