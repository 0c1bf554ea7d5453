"""Op definitions for the golden cases, in JAX, with PyTorch semantics.

Every function takes a dict of input arrays (floating inputs all of one dtype,
float64 for the reference or float32 for the noise estimate; integer inputs as
int64 numpy arrays) and the case attrs, and returns a dict of outputs with the
primary output first. Constants are cast to the input dtype so that a float32
run stays float32. See ../shared/golden/SCHEMA.md, "Conventions", for the
semantics implemented here; tests/golden/README.md for the extra ops.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

# ----------------------------------------------------------------- helpers


def _spatial_dims(x):
    return x.ndim - 2


def _out_len(n, k, s, p, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _window_offsets(kernel):
    """Kernel offsets in row-major scan order (the PyTorch max-pool scan order)."""
    return list(itertools.product(*[range(k) for k in kernel]))


def _patches(xp, kernel, stride, out):
    """Stack of strided slices of the padded array `xp`: shape (..., out..., prod(kernel))."""
    nd = len(kernel)
    cols = []
    for off in _window_offsets(kernel):
        sl = [slice(None), slice(None)]
        for a in range(nd):
            sl.append(slice(off[a], off[a] + stride[a] * (out[a] - 1) + 1, stride[a]))
        cols.append(xp[tuple(sl)])
    stack = np.stack if isinstance(xp, np.ndarray) else jnp.stack
    return stack(cols, axis=-1)


def _pad_spatial(x, padding, value):
    pw = [(0, 0), (0, 0)] + [(p, p) for p in padding]
    return jnp.pad(x, pw, mode="constant", constant_values=value)


# ----------------------------------------------------------------- conv


def conv(inp, a, aux=True):
    x, w = inp["x"], inp["weight"]
    nd = _spatial_dims(x)
    sp = "DHW"[3 - nd:]
    y = jax.lax.conv_general_dilated(
        x, w,
        window_strides=a["stride"],
        padding=[(p, p) for p in a["padding"]],
        rhs_dilation=a["dilation"],
        dimension_numbers=("NC" + sp, "OI" + sp, "NC" + sp),
        feature_group_count=a["groups"],
        precision=jax.lax.Precision.HIGHEST,
    )
    if a["bias"]:
        y = y + inp["bias"].reshape((1, -1) + (1,) * nd)
    return {"y": y}


def conv_transpose_weight_as_conv(w, groups):
    """ConvTranspose weight (Cin, Cout/g, k..) -> conv weight (Cout, Cin/g, k..), flipped."""
    cin, cog = w.shape[0], w.shape[1]
    k = w.shape[2:]
    wg = w.reshape((groups, cin // groups, cog) + k)
    wg = jnp.swapaxes(wg, 1, 2)  # g, Cout/g, Cin/g, k..
    wc = wg.reshape((groups * cog, cin // groups) + k)
    return jnp.flip(wc, axis=tuple(range(2, 2 + len(k))))


def conv_transpose(inp, a, aux=True):
    """Direct form: dilate x by s, pad d(k-1)-p low and d(k-1)-p+op high, flipped kernel."""
    x, w = inp["x"], inp["weight"]
    nd = _spatial_dims(x)
    sp = "DHW"[3 - nd:]
    k = w.shape[2:]
    pads = []
    for i in range(nd):
        lo = a["dilation"][i] * (k[i] - 1) - a["padding"][i]
        pads.append((lo, lo + a["output_padding"][i]))
    y = jax.lax.conv_general_dilated(
        x, conv_transpose_weight_as_conv(w, a["groups"]),
        window_strides=(1,) * nd,
        padding=pads,
        lhs_dilation=a["stride"],
        rhs_dilation=a["dilation"],
        dimension_numbers=("NC" + sp, "OI" + sp, "NC" + sp),
        feature_group_count=a["groups"],
        precision=jax.lax.Precision.HIGHEST,
    )
    if a["bias"]:
        y = y + inp["bias"].reshape((1, -1) + (1,) * nd)
    return {"y": y}


def conv_transpose_scatter_np(x, w, a):
    """Independent numpy float64 scatter form, used only as a self-check."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    g = a["groups"]
    n, cin = x.shape[:2]
    cog = w.shape[1]
    k = w.shape[2:]
    nd = len(k)
    s, p, d, op = a["stride"], a["padding"], a["dilation"], a["output_padding"]
    ins = x.shape[2:]
    outs = [(ins[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(nd)]
    y = np.zeros((n, cog * g) + tuple(outs))
    cig = cin // g
    for ci in range(cin):
        grp = ci // cig
        for co_l in range(cog):
            co = grp * cog + co_l
            for ipos in itertools.product(*[range(v) for v in ins]):
                for kpos in itertools.product(*[range(v) for v in k]):
                    o = [ipos[i] * s[i] - p[i] + kpos[i] * d[i] for i in range(nd)]
                    if all(0 <= o[i] < outs[i] for i in range(nd)):
                        y[(slice(None), co) + tuple(o)] += x[(slice(None), ci) + ipos] * w[(ci, co_l) + kpos]
    if a["bias"]:
        y += np.asarray(a["_bias"], np.float64).reshape((1, -1) + (1,) * nd)
    return y


# ----------------------------------------------------------------- pooling


def max_pool(inp, a, aux=True):
    x = inp["x"]
    nd = _spatial_dims(x)
    k, s, p = a["kernel"], a["stride"], a["padding"]
    ins = x.shape[2:]
    out = [_out_len(ins[i], k[i], s[i], p[i]) for i in range(nd)]
    xp = _pad_spatial(x, p, -jnp.inf)
    pt = _patches(xp, k, s, out)
    # first maximum in row-major window scan order (jnp.argmax returns the first)
    am = jnp.argmax(pt, axis=-1)
    y = jnp.take_along_axis(pt, am[..., None], axis=-1)[..., 0]
    if not aux:
        return {"y": y}
    # flat index of the chosen element in the unpadded input plane (row-major offsets)
    offs = jnp.asarray(np.array(_window_offsets(k), np.int64))  # (K, nd)
    grids = np.meshgrid(*[np.arange(o, dtype=np.int64) for o in out], indexing="ij")
    flat = jnp.zeros(am.shape, jnp.int64)
    for i in range(nd):
        coord = grids[i][None, None] * s[i] - p[i] + offs[am, i]
        flat = flat * ins[i] + coord
    return {"y": y, "indices": flat}


def max_unpool(inp, a, aux=True):
    x, idx = inp["x"], inp["indices"]
    n, c = x.shape[:2]
    out = a["output_size"]
    plane = int(np.prod(out))
    xf = x.reshape(n, c, -1)
    idf = np.asarray(idx).reshape(n, c, -1)
    assert all(len(set(r.tolist())) == len(r) for r in idf.reshape(n * c, -1)), "duplicate unpool index"
    ni = np.arange(n)[:, None, None]
    ci = np.arange(c)[None, :, None]
    y = jnp.zeros((n, c, plane), x.dtype).at[ni, ci, idf].add(xf)
    return {"y": y.reshape((n, c) + tuple(out))}


def avg_pool(inp, a, aux=True):
    x = inp["x"]
    nd = _spatial_dims(x)
    k, s, p = a["kernel"], a["stride"], a["padding"]
    ins = x.shape[2:]
    out = [_out_len(ins[i], k[i], s[i], p[i]) for i in range(nd)]
    total = _patches(_pad_spatial(x, p, 0.0), k, s, out).sum(axis=-1)
    if a["count_include_pad"]:
        div = float(np.prod(k))
    else:
        ones = np.ones((1, 1) + tuple(ins))
        onesp = np.pad(ones, [(0, 0), (0, 0)] + [(q, q) for q in p])
        div = _patches(onesp, k, s, out).sum(axis=-1).astype(x.dtype)
    return {"y": total / div}


# ----------------------------------------------------------------- normalisation


def batch_norm(inp, a, aux=True):
    x, gamma, beta = inp["x"], inp["gamma"], inp["beta"]
    rm, rv = inp["running_mean"], inp["running_var"]
    nd = _spatial_dims(x)
    bshape = (1, -1) + (1,) * nd
    axes = (0,) + tuple(range(2, 2 + nd))
    eps, mom = a["eps"], a["momentum"]
    if a["training"]:
        m = a["reduce_count"]
        assert m == x.size // x.shape[1]
        mean = jnp.mean(x, axis=axes)
        var = jnp.mean((x - mean.reshape(bshape)) ** 2, axis=axes)
        invstd = 1.0 / jnp.sqrt(var + eps)
        y = (x - mean.reshape(bshape)) * invstd.reshape(bshape) * gamma.reshape(bshape) + beta.reshape(bshape)
        return {
            "y": y,
            "batch_mean": mean,
            "batch_var": var,
            "save_invstd": invstd,
            "running_mean_new": (1 - mom) * rm + mom * mean,
            "running_var_new": (1 - mom) * rv + mom * var * (m / (m - 1)),
        }
    invstd = 1.0 / jnp.sqrt(rv + eps)
    y = (x - rm.reshape(bshape)) * invstd.reshape(bshape) * gamma.reshape(bshape) + beta.reshape(bshape)
    return {"y": y}


def instance_norm(inp, a, aux=True):
    x, gamma, beta = inp["x"], inp["gamma"], inp["beta"]
    nd = _spatial_dims(x)
    bshape = (1, -1) + (1,) * nd
    axes = tuple(range(2, 2 + nd))
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean((x - mean) ** 2, axis=axes, keepdims=True)
    y = (x - mean) / jnp.sqrt(var + a["eps"])
    return {"y": y * gamma.reshape(bshape) + beta.reshape(bshape)}


def group_norm(inp, a, aux=True):
    x, gamma, beta = inp["x"], inp["gamma"], inp["beta"]
    nd = _spatial_dims(x)
    n, c = x.shape[:2]
    g = a["num_groups"]
    bshape = (1, -1) + (1,) * nd
    xg = x.reshape(n, g, -1)
    mean = jnp.mean(xg, axis=2, keepdims=True)
    var = jnp.mean((xg - mean) ** 2, axis=2, keepdims=True)
    y = ((xg - mean) / jnp.sqrt(var + a["eps"])).reshape(x.shape)
    return {"y": y * gamma.reshape(bshape) + beta.reshape(bshape)}


# ----------------------------------------------------------------- elementwise, layout


def relu(inp, a, aux=True):
    x = inp["x"]
    return {"y": jnp.where(x > 0, x, jnp.zeros_like(x))}


def leaky_relu(inp, a, aux=True):
    x = inp["x"]
    return {"y": jnp.where(x > 0, x, a["negative_slope"] * x)}


def sigmoid(inp, a, aux=True):
    return {"y": jax.nn.sigmoid(inp["x"])}


def concat(inp, a, aux=True):
    xs = [inp[f"x{i}"] for i in range(a["num_inputs"])]
    return {"y": jnp.concatenate(xs, axis=a["axis"])}


def center_crop(inp, a, aux=True):
    x = inp["x"]
    sl = [slice(None), slice(None)] + [slice(o, o + s) for o, s in zip(a["offset"], a["size"])]
    return {"y": x[tuple(sl)]}


def _reflect_index(n, lo, hi):
    """Source index of every padded position, PyTorch 'reflect' (edge not repeated)."""
    idx = np.arange(-lo, n + hi)
    idx = np.abs(idx)
    idx = np.where(idx > n - 1, 2 * (n - 1) - idx, idx)
    assert (idx >= 0).all() and (idx < n).all()
    return idx


def pad(inp, a, aux=True):
    x = inp["x"]
    pads = a["pad"]  # per spatial dim [before, after]
    if a["mode"] == "zero":
        return {"y": jnp.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads], mode="constant")}
    y = x
    for i, (lo, hi) in enumerate(pads):
        y = jnp.take(y, _reflect_index(x.shape[2 + i], lo, hi), axis=2 + i)
    return {"y": y}


# ----------------------------------------------------------------- losses


def _onehot(labels, c, dtype):
    oh = jax.nn.one_hot(jnp.asarray(labels), c, dtype=dtype)  # N,(D),H,W,C
    return jnp.moveaxis(oh, -1, 1)


def softmax_cross_entropy(inp, a, aux=True):
    logits, labels = inp["logits"], inp["labels"]
    c = logits.shape[1]
    mx = jax.lax.stop_gradient(jnp.max(logits, axis=1, keepdims=True))
    lse = jnp.log(jnp.sum(jnp.exp(logits - mx), axis=1)) + mx[:, 0]
    picked = jnp.sum(logits * _onehot(labels, c, logits.dtype), axis=1)
    nll = lse - picked
    if a["has_weight_map"]:
        wm = inp["weight_map"]
        if a["reduction"] == "weighted_mean":
            loss = jnp.sum(wm * nll) / jnp.sum(wm)
        else:
            loss = jnp.sum(wm * nll) / nll.size
    else:
        loss = jnp.mean(nll)
    return {"loss": loss, "nll_map": nll}


def dice_loss(inp, a, aux=True):
    logits, labels = inp["logits"], inp["labels"]
    c = logits.shape[1]
    p = jax.nn.softmax(logits, axis=1)
    t = _onehot(labels, c, logits.dtype)
    nd = logits.ndim - 2
    if a["reduce_over"] == "batch":
        axes = (0,) + tuple(range(2, 2 + nd))
    else:
        axes = tuple(range(2, 2 + nd))
    inter = jnp.sum(p * t, axis=axes)
    den = jnp.sum(p, axis=axes) + jnp.sum(t, axis=axes)
    sm = a["smooth"]
    dice = (2 * inter + sm) / (den + sm)
    # MONAI's include_background=False, nnU-Net's do_bg=False: every class's
    # dice is returned, the loss averages classes 1..C-1 only.
    counted = dice if a["include_background"] else dice[..., 1:]
    return {"loss": 1 - jnp.mean(counted), "dice": dice}


# ----------------------------------------------------------------- upsampling


def _linear_src(n_in, n_out):
    """PyTorch area_pixel_compute_source_index, align_corners=False."""
    scale = n_in / n_out
    dst = np.arange(n_out)
    src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    return i0, i1, lam


def upsample(inp, a, aux=True):
    x = inp["x"]
    nd = _spatial_dims(x)
    y = x
    for i in range(nd):
        ax = 2 + i
        n_in = x.shape[ax]
        n_out = n_in * a["scale_factor"][i]
        if a["mode"] == "nearest":
            y = jnp.take(y, np.arange(n_out) * n_in // n_out, axis=ax)
        else:
            i0, i1, lam = _linear_src(n_in, n_out)
            shp = [1] * y.ndim
            shp[ax] = n_out
            lam = jnp.asarray(lam.reshape(shp), dtype=x.dtype)
            y = (1 - lam) * jnp.take(y, i0, axis=ax) + lam * jnp.take(y, i1, axis=ax)
    return {"y": y}


# ----------------------------------------------------------------- optimizers


def sgd_step(inp, a, aux=True):
    """torch.optim.SGD (foreach=False semantics), `steps` steps with grad[t] at step t."""
    p, buf = inp["param"], inp["momentum_buffer"]
    lr, mom, damp, wd = a["lr"], a["momentum"], a["dampening"], a["weight_decay"]
    initialized = a["buffer_initialized"]
    for t in range(a["steps"]):
        d = inp["grad"][t]
        if a["maximize"]:
            d = -d
        if wd != 0:
            d = d + wd * p
        if mom != 0:
            if not initialized:
                buf = d  # PyTorch: buf = clone(d_p) on the first step
                initialized = True
            else:
                buf = mom * buf + (1 - damp) * d
            d = d + mom * buf if a["nesterov"] else buf
        p = p - lr * d
    return {"param_new": p, "momentum_buffer_new": buf}


def _adam(inp, a, decoupled):
    p, m, v = inp["param"], inp["exp_avg"], inp["exp_avg_sq"]
    lr, (b1, b2), eps, wd = a["lr"], a["betas"], a["eps"], a["weight_decay"]
    step = a["step0"]
    for t in range(a["steps"]):
        g = inp["grad"][t]
        step += 1
        if decoupled:
            p = p * (1 - lr * wd)
        elif wd != 0:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        bc1 = 1 - b1 ** step
        bc2 = 1 - b2 ** step
        denom = jnp.sqrt(v) / math.sqrt(bc2) + eps
        p = p - (lr / bc1) * m / denom
    return {"param_new": p, "exp_avg_new": m, "exp_avg_sq_new": v}


def adam_step(inp, a, aux=True):
    return _adam(inp, a, decoupled=False)


def adamw_step(inp, a, aux=True):
    return _adam(inp, a, decoupled=True)


OPS = {
    "conv2d": conv, "conv3d": conv,
    "conv_transpose2d": conv_transpose, "conv_transpose3d": conv_transpose,
    "max_pool2d": max_pool, "max_pool3d": max_pool,
    "max_unpool2d": max_unpool, "max_unpool3d": max_unpool,
    "avg_pool2d": avg_pool, "avg_pool3d": avg_pool,
    "batch_norm2d": batch_norm, "batch_norm3d": batch_norm,
    "instance_norm2d": instance_norm, "instance_norm3d": instance_norm,
    "group_norm": group_norm,
    "relu": relu, "leaky_relu": leaky_relu, "sigmoid": sigmoid,
    "concat": concat, "center_crop": center_crop,
    "pad2d": pad, "pad3d": pad,
    "softmax_cross_entropy": softmax_cross_entropy, "dice_loss": dice_loss,
    "upsample_nearest2d": upsample, "upsample_nearest3d": upsample,
    "upsample_bilinear2d": upsample, "upsample_trilinear3d": upsample,
    "sgd_step": sgd_step, "adam_step": adam_step, "adamw_step": adamw_step,
}
