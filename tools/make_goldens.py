#!/usr/bin/env python3
"""Write the golden case set of wunet's kernels (and the tiny U-Net golden).

    python3 tools/make_goldens.py --out tests/golden

Every value is computed by JAX on the CPU in float64 from float32 inputs and
stored as float32 (int64 for labels and indices), in the format of
`../shared/golden/SCHEMA.md`. The ops follow PyTorch semantics (see
tools/golden_ops.py). Each case draws its data from its own generator seeded
by (SEED, crc32(case id)), so the output is byte-for-byte reproducible and
adding a case does not change the others. Requirements: tools/requirements.txt.
"""

import argparse
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_disable_most_optimizations", True)  # compile time dominates; f64 results unaffected

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_checks  # noqa: E402
import golden_unet  # noqa: E402
import golden_lib  # noqa: E402
from golden_lib import CaseSet  # noqa: E402

SEED = 1234


def generator_info():
    import jaxlib
    return {
        "tool": "tools/make_goldens.py",
        "framework": f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, numpy {np.__version__}",
        "device": "cpu",
        "compute_dtype": "float64 (jax_enable_x64) from float32 inputs",
        "xla_flags": "jax_disable_most_optimizations=True (faster compiles)",
        "stored_dtype": "float32 / int64",
    }


# ----------------------------------------------------------------- data


def normal(rng, shape, scale=1.0, loc=0.0):
    return (loc + scale * rng.standard_normal(shape)).astype(np.float32)


def distinct(rng, shape, negative=False):
    """Distinct values on a 1/64 grid (no max-pool ties); all < 0 if `negative`."""
    n = int(np.prod(shape))
    m = max(4 * n, 512)
    ints = rng.permutation(m)[:n]
    v = -(ints + 1) / 64.0 if negative else (ints - m // 2) / 64.0
    return v.reshape(shape).astype(np.float32)


def labels(rng, shape, c, allowed=None):
    allowed = np.arange(c) if allowed is None else np.asarray(allowed)
    return allowed[rng.integers(0, len(allowed), size=shape)].astype(np.int64)


def with_zeros(rng, shape, frac=0.2):
    x = normal(rng, shape)
    x[rng.random(shape) < frac] = 0.0
    return x


def prod(v):
    return int(np.prod(v))


class Ids:
    """Case ids `<op>_<NN>_<desc>`, numbered per op."""

    def __init__(self):
        self.n = {}

    def __call__(self, op, desc):
        self.n[op] = self.n.get(op, 0) + 1
        return f"{op}_{self.n[op]:02d}_{desc}"


def out_len(n, k, s, p, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def lst(v, nd):
    return list(v) if isinstance(v, (list, tuple)) else [v] * nd


# ----------------------------------------------------------------- conv

# Why the grouped-convolution cases are optional (the only ones the engine skips).
GROUPS = "a U-Net has no grouped convolutions, and the engine implements groups = 1 only"


def conv_case(cs, ids, desc, x_shape, o, k, s=1, p=0, d=1, groups=1, bias=True, optional=None, note=""):
    nd = len(x_shape) - 2
    k, s, p, d = lst(k, nd), lst(s, nd), lst(p, nd), lst(d, nd)
    op = f"conv{nd}d"
    cid = ids(op, desc)
    rng = cs.rng(cid)
    cin = x_shape[1]
    inputs = {"x": normal(rng, x_shape)}
    inputs["weight"] = normal(rng, (o, cin // groups) + tuple(k), 1.0 / np.sqrt(cin // groups * prod(k)))
    if bias:
        inputs["bias"] = normal(rng, (o,), 0.5)
    out = [out_len(x_shape[2 + i], k[i], s[i], p[i], d[i]) for i in range(nd)]
    attrs = {"stride": s, "padding": p, "dilation": d, "groups": groups, "bias": bias}
    kw = x_shape[0] * prod(out)
    cs.add(cid, op, attrs, inputs, list(inputs), note=note, optional=optional,
           k_out={"y": cin // groups * prod(k)},
           k_grad={"x": o // groups * prod(k), "weight": kw, "bias": kw})


def conv_transpose_case(cs, ids, desc, x_shape, cout, k, s=1, p=0, op_=0, d=1, groups=1, bias=True,
                        optional=None, note=""):
    nd = len(x_shape) - 2
    k, s, p, op_, d = lst(k, nd), lst(s, nd), lst(p, nd), lst(op_, nd), lst(d, nd)
    op = f"conv_transpose{nd}d"
    cid = ids(op, desc)
    rng = cs.rng(cid)
    cin = x_shape[1]
    inputs = {"x": normal(rng, x_shape)}
    # fan-in of one output of a transposed conv: C_in/g * prod(k/s)
    fan = max(1.0, cin // groups * prod(k) / prod(s))
    inputs["weight"] = normal(rng, (cin, cout // groups) + tuple(k), 1.0 / np.sqrt(fan))
    if bias:
        inputs["bias"] = normal(rng, (cout,), 0.5)
    out = [(x_shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op_[i] + 1 for i in range(nd)]
    attrs = {"stride": s, "padding": p, "output_padding": op_, "dilation": d, "groups": groups, "bias": bias}
    golden_checks.conv_transpose_scatter(inputs, attrs)
    cs.add(cid, op, attrs, inputs, list(inputs), note=note, optional=optional,
           k_out={"y": cin // groups * prod(k)},
           k_grad={"x": cout // groups * prod(k), "weight": x_shape[0] * prod(x_shape[2:]),
                   "bias": x_shape[0] * prod(out)})


def conv_cases(cs, ids):
    c = conv_case
    c(cs, ids, "k3_s1_p1_bias_7x13", (2, 3, 7, 13), 5, 3, p=1, note="'same' 3x3 on an odd 7x13 plane")
    c(cs, ids, "k3x2_s2x3_p1x2_nobias", (1, 5, 11, 9), 17, (3, 2), s=(2, 3), p=(1, 2), bias=False,
      note="rectangular kernel, stride (2,3), padding (1,2), 17 output channels")
    c(cs, ids, "k3_d2_p2_c1", (2, 1, 13, 10), 3, 3, p=2, d=2, note="dilation 2, one input channel")
    c(cs, ids, "k1_c17", (2, 17, 5, 6), 5, 1, note="1x1 conv, 17 input channels")
    c(cs, ids, "k3_p1_1x1_spatial", (2, 3, 1, 1), 5, 3, p=1, note="1x1 plane: only the centre tap is inside")
    c(cs, ids, "k1_1x1_spatial_nobias", (2, 5, 1, 1), 3, 1, bias=False, note="1x1 plane, 1x1 kernel")
    c(cs, ids, "k3_valid_c1_12x9", (2, 1, 12, 9), 4, 3, note="valid (unpadded) 3x3 as in the original U-Net")
    c(cs, ids, "k2_s2_nobias_8x7", (2, 3, 8, 7), 4, 2, s=2, bias=False, note="strided downsampling conv, floor on W")
    c(cs, ids, "k3_s2_p1_groups2", (2, 4, 7, 9), 6, 3, s=2, p=1, groups=2, optional=GROUPS, note="groups = 2")
    c(cs, ids, "k3_s1_p1_bias_5x7x6", (2, 3, 5, 7, 6), 4, 3, p=1, note="'same' 3x3x3, D != H != W")
    c(cs, ids, "k2x3x1_s2x1x3_p1x0x0_d1x2x1_nobias", (1, 2, 6, 5, 9), 5, (2, 3, 1), s=(2, 1, 3), p=(1, 0, 0),
      d=(1, 2, 1), bias=False, note="per-axis kernel, stride, padding and dilation")
    c(cs, ids, "k3_d2_p2", (1, 3, 7, 6, 5), 2, 3, p=2, d=2, note="dilation 2 in 3D")
    c(cs, ids, "k1_c17", (1, 17, 3, 4, 5), 3, 1, note="1x1x1 conv, 17 input channels")
    c(cs, ids, "k3_p1_1x1x1_spatial", (2, 5, 1, 1, 1), 3, 3, p=1, note="1x1x1 volume")
    c(cs, ids, "k3_p1_groups2", (1, 4, 4, 5, 3), 4, 3, p=1, groups=2, optional=GROUPS, note="groups = 2")


def conv_transpose_cases(cs, ids):
    c = conv_transpose_case
    c(cs, ids, "k2_s2_upconv_bias", (2, 4, 5, 7), 3, 2, s=2, note="the U-Net 2x2 stride-2 up-convolution")
    c(cs, ids, "k3_s2_p1_op1_nobias", (1, 3, 5, 6), 5, 3, s=2, p=1, op_=1, bias=False,
      note="output_padding 1 adds the last row/col")
    c(cs, ids, "k4x3_s3_p1x0_c17", (2, 2, 4, 3), 17, (4, 3), s=3, p=(1, 0), note="stride 3, 17 output channels")
    c(cs, ids, "k3_s1_p1_bias", (2, 5, 6, 7), 4, 3, p=1, note="stride 1: a conv with the flipped kernel")
    c(cs, ids, "k3_s2_p1_op1_d2", (1, 3, 4, 5), 2, 3, s=2, p=1, op_=1, d=2, note="dilation 2")
    c(cs, ids, "k2_s2_1x1_spatial", (2, 3, 1, 1), 5, 2, s=2, note="1x1 input plane -> 2x2")
    c(cs, ids, "k3_s2_p1_op1_groups2", (1, 4, 4, 5), 6, 3, s=2, p=1, op_=1, groups=2, optional=GROUPS,
      note="groups = 2")
    c(cs, ids, "k2_s2_upconv_bias", (1, 4, 3, 4, 5), 2, 2, s=2, note="the 3D U-Net 2x2x2 stride-2 up-convolution")
    c(cs, ids, "k3_s2x1x3_p1x0x1_op1x0x2_nobias", (2, 3, 3, 4, 3), 5, 3, s=(2, 1, 3), p=(1, 0, 1),
      op_=(1, 0, 2), bias=False, note="per-axis stride, padding and output_padding")
    c(cs, ids, "k2_s2_groups2", (1, 4, 2, 3, 3), 4, 2, s=2, groups=2, optional=GROUPS, note="groups = 2")


# ----------------------------------------------------------------- pooling


def pool_attrs(nd, k, s, p):
    return lst(k, nd), lst(s, nd), lst(p, nd)


def max_pool_case(cs, ids, desc, x_shape, k, s, p=0, negative=False, note=""):
    nd = len(x_shape) - 2
    k, s, p = pool_attrs(nd, k, s, p)
    cid = ids(f"max_pool{nd}d", desc)
    x = distinct(cs.rng(cid), x_shape, negative)
    attrs = {"kernel": k, "stride": s, "padding": p, "dilation": [1] * nd, "ceil_mode": False}
    golden_checks.max_pool(x, attrs)
    cs.add(cid, f"max_pool{nd}d", attrs, {"x": x}, ["x"], note=note)


def max_unpool_case(cs, ids, desc, orig_shape, default, note=""):
    from golden_ops import max_pool
    nd = len(orig_shape) - 2
    cid = ids(f"max_unpool{nd}d", desc)
    rng = cs.rng(cid)
    k, s, p = pool_attrs(nd, 2, 2, 0)
    xo = distinct(rng, orig_shape)
    pooled = jax.jit(lambda t: max_pool({"x": t}, {"kernel": k, "stride": s, "padding": p}))(xo)
    idx = np.asarray(pooled["indices"], np.int64)
    x = normal(rng, idx.shape)
    dflt = [(idx.shape[2 + i] - 1) * s[i] - 2 * p[i] + k[i] for i in range(nd)]
    out_size = list(orig_shape[2:])
    assert (dflt == out_size) == default
    attrs = {"kernel": k, "stride": s, "padding": p, "output_size": out_size, "default_output_size": default}
    cs.add(cid, f"max_unpool{nd}d", attrs, {"x": x, "indices": idx}, ["x"], note=note)


def avg_pool_case(cs, ids, desc, x_shape, k, s, p=0, include_pad=True, note=""):
    nd = len(x_shape) - 2
    k, s, p = pool_attrs(nd, k, s, p)
    cid = ids(f"avg_pool{nd}d", desc)
    x = normal(cs.rng(cid), x_shape)
    attrs = {"kernel": k, "stride": s, "padding": p, "ceil_mode": False, "count_include_pad": include_pad,
             "divisor_override": None}
    golden_checks.avg_pool(x, attrs)
    cover = prod([-(-k[i] // s[i]) for i in range(nd)])
    cs.add(cid, f"avg_pool{nd}d", attrs, {"x": x}, ["x"], note=note, k_out={"y": prod(k)}, k_grad={"x": cover})


def pool_cases(cs, ids):
    m = max_pool_case
    m(cs, ids, "k2_s2_7x13_floor", (2, 3, 7, 13), 2, 2, note="floor mode drops the last row/col")
    m(cs, ids, "k3_s2_overlap", (1, 5, 9, 11), 3, 2, note="overlapping windows: inputs get gradient from several")
    m(cs, ids, "k3_s2_p1_allneg", (2, 3, 8, 7), 3, 2, 1, negative=True,
      note="all inputs < 0: padding must be -inf, not 0")
    m(cs, ids, "k3_s1_p1_allneg", (1, 2, 5, 6), 3, 1, 1, negative=True, note="'same' 3x3 max, all inputs < 0")
    m(cs, ids, "k3x2_s2x1", (2, 2, 7, 5), (3, 2), (2, 1), note="rectangular window and stride")
    m(cs, ids, "k2_s2_5x7x6_floor", (2, 3, 5, 7, 6), 2, 2, note="floor mode on odd D and H")
    m(cs, ids, "k3_s2_p1_allneg", (1, 2, 5, 6, 7), 3, 2, 1, negative=True, note="all inputs < 0, padding 1")
    m(cs, ids, "k3_s2_overlap", (1, 2, 7, 5, 6), 3, 2, note="overlapping 3x3x3 windows")
    u = max_unpool_case
    u(cs, ids, "k2_s2_7x13_output_size", (2, 3, 7, 13), False,
      note="indices from a k2 s2 pool of a 7x13 plane; output_size 7x13 is required")
    u(cs, ids, "k2_s2_8x10_default", (1, 4, 8, 10), True, note="even size: the default output size")
    u(cs, ids, "k2_s2_5x7x6_output_size", (2, 3, 5, 7, 6), False, note="odd D and H need output_size")
    u(cs, ids, "k2_s2_4x6x4_default", (1, 2, 4, 6, 4), True, note="even sizes: the default output size")
    a = avg_pool_case
    a(cs, ids, "k2_s2_7x13", (2, 3, 7, 13), 2, 2, note="floor mode")
    a(cs, ids, "k3_s2_p1_include_pad", (2, 3, 8, 7), 3, 2, 1, True, note="padded zeros count (divisor 9)")
    a(cs, ids, "k3_s2_p1_exclude_pad", (2, 3, 8, 7), 3, 2, 1, False, note="divisor = real elements in the window")
    a(cs, ids, "k3_s1_p1_exclude_pad", (1, 2, 5, 6), 3, 1, 1, False, note="'same' 3x3 mean")
    a(cs, ids, "k2_s2_5x7x6", (2, 3, 5, 7, 6), 2, 2, note="floor mode on odd D and H")
    a(cs, ids, "k3_s2_p1_include_pad", (1, 2, 5, 6, 7), 3, 2, 1, True, note="divisor 27")
    a(cs, ids, "k3_s2_p1_exclude_pad", (1, 2, 5, 6, 7), 3, 2, 1, False, note="divisor = real elements")


# ----------------------------------------------------------------- normalisation


def batch_norm_case(cs, ids, desc, x_shape, training, note=""):
    nd = len(x_shape) - 2
    op = f"batch_norm{nd}d"
    cid = ids(op, desc)
    rng = cs.rng(cid)
    c = x_shape[1]
    m = x_shape[0] * prod(x_shape[2:])
    shift = normal(rng, (1, c) + (1,) * nd, 1.0)
    x = (normal(rng, x_shape, 1.5) + shift).astype(np.float32)
    inputs = {
        "x": x,
        "gamma": normal(rng, (c,), 0.2, 1.0),
        "beta": normal(rng, (c,), 0.2),
        "running_mean": normal(rng, (c,), 0.5),
        "running_var": rng.uniform(0.5, 2.0, (c,)).astype(np.float32),
    }
    attrs = {"training": training, "momentum": 0.1, "eps": 1e-5, "reduce_count": m}
    ks = {n: m for n in ("y", "batch_mean", "batch_var", "save_invstd", "running_mean_new", "running_var_new",
                         "x", "gamma", "beta")}
    o64, g64, g = cs.add(cid, op, attrs, inputs, ["x", "gamma", "beta"], note=note, k_out=ks, k_grad=ks)
    golden_checks.batch_norm_grads(inputs, attrs, o64, g64, g)


def norm_cases(cs, ids):
    b = batch_norm_case
    b(cs, ids, "train_2x3x7x13", (2, 3, 7, 13), True, note="training: batch statistics, running stats updated")
    b(cs, ids, "eval_2x5x6x7", (2, 5, 6, 7), False, note="eval: running statistics")
    b(cs, ids, "train_m4_batch1", (1, 3, 2, 2), True, note="m = 4: unbiased running_var differs by 4/3")
    b(cs, ids, "train_m3_batch1", (1, 2, 1, 3), True, note="m = 3: unbiased running_var differs by 3/2")
    b(cs, ids, "train_c17_4x17x3x5", (4, 17, 3, 5), True, note="17 channels, batch 4")
    b(cs, ids, "train_2x3x3x4x5", (2, 3, 3, 4, 5), True, note="training, 3D")
    b(cs, ids, "eval_1x2x3x4x5", (1, 2, 3, 4, 5), False, note="eval, 3D")
    b(cs, ids, "train_m4_batch1", (1, 3, 2, 1, 2), True, note="m = 4 in 3D")
    for nd, shape in ((2, (2, 3, 5, 7)), (3, (2, 2, 3, 4, 5))):
        op = f"instance_norm{nd}d"
        cid = ids(op, "affine")
        rng = cs.rng(cid)
        c = shape[1]
        sp = prod(shape[2:])
        inputs = {"x": normal(rng, shape, 1.5, 0.5), "gamma": normal(rng, (c,), 0.2, 1.0),
                  "beta": normal(rng, (c,), 0.2)}
        ks = {"y": sp, "x": sp, "gamma": shape[0] * sp, "beta": shape[0] * sp}
        cs.add(cid, op, {"eps": 1e-5, "affine": True, "track_running_stats": False}, inputs,
               ["x", "gamma", "beta"], k_out=ks, k_grad=ks, note="statistics per (n, c) over space, biased var")
    for desc, shape, g in (("2d_c6_g3", (2, 6, 5, 7), 3), ("3d_c4_g2", (1, 4, 3, 4, 5), 2),
                           ("2d_c3_g1", (2, 3, 4, 5), 1), ("2d_c4_g4", (2, 4, 3, 5), 4)):
        cid = ids("group_norm", desc)
        rng = cs.rng(cid)
        c = shape[1]
        r = c // g * prod(shape[2:])
        inputs = {"x": normal(rng, shape, 1.5, 0.5), "gamma": normal(rng, (c,), 0.2, 1.0),
                  "beta": normal(rng, (c,), 0.2)}
        ks = {"y": r, "x": r, "gamma": shape[0] * prod(shape[2:]), "beta": shape[0] * prod(shape[2:])}
        cs.add(cid, "group_norm", {"num_groups": g, "eps": 1e-5, "affine": True}, inputs, ["x", "gamma", "beta"],
               k_out=ks, k_grad=ks, note=f"{g} groups of {c // g} channels; statistics per (n, group)")


# ----------------------------------------------------------------- elementwise, layout


def elementwise_cases(cs, ids):
    for op, attrs, shapes in (
        ("relu", {}, (("2d_exact_zeros", (2, 3, 7, 13)), ("3d_exact_zeros", (1, 2, 3, 4, 5)))),
        ("leaky_relu", {"negative_slope": 0.01},
         (("2d_exact_zeros", (2, 3, 7, 13)), ("3d_exact_zeros", (1, 2, 3, 4, 5)))),
        ("leaky_relu", {"negative_slope": 0.2}, (("2d_slope_0p2", (2, 5, 4, 6)),)),
    ):
        for desc, shape in shapes:
            cid = ids(op, desc)
            note = "about 20% exact zeros: gradient there is 0 (relu) / slope*g (leaky_relu)"
            cs.add(cid, op, attrs, {"x": with_zeros(cs.rng(cid), shape)}, ["x"], note=note)
    for desc, shape in (("2d_wide_range", (2, 3, 5, 7)), ("3d", (1, 2, 3, 4, 5))):
        cid = ids("sigmoid", desc)
        rng = cs.rng(cid)
        x = normal(rng, shape, 3.0)
        x.reshape(-1)[:6] = [20.0, -20.0, 40.0, -40.0, 0.0, -90.0]
        cs.add(cid, "sigmoid", {}, {"x": x}, ["x"], note="1/(1+exp(-x)); includes +-20, +-40, -90 and 0")
    for desc, shapes in (("2in_2d", [(2, 3, 5, 7), (2, 4, 5, 7)]),
                         ("3in_3d", [(1, 2, 3, 4, 5), (1, 1, 3, 4, 5), (1, 3, 3, 4, 5)]),
                         ("2in_2d_c1_c17", [(1, 1, 3, 2), (1, 17, 3, 2)])):
        cid = ids("concat", desc)
        rng = cs.rng(cid)
        inputs = {f"x{i}": normal(rng, s) for i, s in enumerate(shapes)}
        cs.add(cid, "concat", {"axis": 1, "num_inputs": len(shapes)}, inputs, list(inputs),
               note="channel concat, skip connection first")
    for desc, shape, size in (("2d_9x12_to_6x7", (2, 3, 9, 12), [6, 7]),
                              ("3d_7x8x9_to_4x5x6", (1, 2, 7, 8, 9), [4, 5, 6]),
                              ("2d_10x8_to_6x4", (1, 3, 10, 8), [6, 4])):
        cid = ids("center_crop", desc)
        off = [(shape[2 + i] - size[i]) // 2 for i in range(len(size))]
        attrs = {"size": size, "offset": off, "offset_rule": "floor((in - size) / 2)"}
        cs.add(cid, "center_crop", attrs, {"x": normal(cs.rng(cid), shape)}, ["x"],
               note="odd differences: offset rounds down (torchvision would round up)")
    for nd, desc, shape, pads, mode in (
        (2, "zero", (2, 3, 5, 6), [[1, 2], [3, 0]], "zero"),
        (2, "reflect", (1, 2, 5, 6), [[2, 1], [3, 4]], "reflect"),
        (2, "reflect_overlap_tile", (2, 1, 7, 9), [[3, 3], [3, 3]], "reflect"),
        (3, "zero", (1, 2, 3, 4, 5), [[1, 0], [2, 1], [0, 2]], "zero"),
        (3, "reflect", (1, 2, 3, 4, 5), [[1, 2], [2, 1], [3, 2]], "reflect"),
    ):
        op = f"pad{nd}d"
        cid = ids(op, desc)
        torch_pad = [v for pr in reversed(pads) for v in pr]
        attrs = {"pad": pads, "mode": mode, "value": 0.0, "torch_pad": torch_pad}
        x = normal(cs.rng(cid), shape)
        golden_checks.pad(x, attrs)
        cover = 2 ** nd if mode == "reflect" else 1
        cs.add(cid, op, attrs, {"x": x}, ["x"], k_grad={"x": cover},
               note="pad [before, after] per spatial dim; reflect excludes the edge (numpy 'reflect')")


def upsample_cases(cs, ids):
    for op, mode, shape, desc in (
        ("upsample_nearest2d", "nearest", (2, 3, 4, 5), "4x5"),
        ("upsample_nearest2d", "nearest", (1, 2, 1, 3), "1x3"),
        ("upsample_nearest3d", "nearest", (1, 2, 3, 4, 5), "3x4x5"),
        ("upsample_bilinear2d", "bilinear", (2, 3, 4, 5), "4x5"),
        ("upsample_bilinear2d", "bilinear", (1, 2, 1, 3), "1x3"),
        ("upsample_trilinear3d", "trilinear", (1, 2, 3, 4, 5), "3x4x5"),
        ("upsample_trilinear3d", "trilinear", (1, 1, 2, 1, 3), "2x1x3"),
    ):
        nd = len(shape) - 2
        cid = ids(op, desc)
        attrs = {"scale_factor": [2] * nd, "mode": mode}
        if mode != "nearest":
            attrs["align_corners"] = False
        x = normal(cs.rng(cid), shape)
        if mode != "nearest":
            golden_checks.upsample_linear(x, attrs)
        linear = mode != "nearest"
        cs.add(cid, op, attrs, {"x": x}, ["x"], k_out={"y": 2 ** nd if linear else 1},
               k_grad={"x": 4 ** nd if linear else 2 ** nd}, note="scale 2, PyTorch source-index rule")


# ----------------------------------------------------------------- losses


def loss_cases(cs, ids):
    for desc, shape, red, wmap, scale, note in (
        ("2d_c2_8x8_mean", (2, 2, 8, 8), "mean", False, 1.0, "mean over all pixels"),
        ("2d_c3_7x9_wmap", (2, 3, 7, 9), "weighted_mean", True, 1.0, "sum(w*nll)/sum(w)"),
        ("3d_c4_mean", (1, 4, 3, 5, 6), "mean", False, 1.0, "3D, 4 classes"),
        ("2d_c5_extreme", (2, 5, 6, 7), "mean", False, 40.0,
         "logits ~ N(0, 40^2): needs the max-subtracted log-sum-exp"),
        ("2d_c2_wmap_mean", (2, 2, 6, 5), "mean", True, 1.0, "sum(w*nll)/num_pixels"),
        ("3d_c2_wmap", (1, 2, 4, 5, 6), "weighted_mean", True, 1.0, "3D weight map"),
    ):
        cid = ids("softmax_cross_entropy", desc)
        rng = cs.rng(cid)
        n, c = shape[:2]
        inputs = {"logits": normal(rng, shape, scale), "labels": labels(rng, (n,) + shape[2:], c)}
        if wmap:
            inputs["weight_map"] = (1.0 + 4.0 * rng.random((n,) + shape[2:]) ** 3).astype(np.float32)
        attrs = {"axis": 1, "reduction": red, "has_weight_map": wmap}
        pix = n * prod(shape[2:])
        cs.add(cid, "softmax_cross_entropy", attrs, inputs, ["logits"], loss=True, note=note,
               k_out={"loss": pix * c, "nll_map": c}, k_grad={"logits": 1})
    for desc, shape, over, allowed, bg, note in (
        ("2d_c3_batch", (2, 3, 7, 9), "batch", None, True, "sums over batch and space per class"),
        ("2d_c2_sample", (2, 2, 8, 8), "sample", None, True, "sums over space per (n, c)"),
        ("2d_c4_absent_class", (2, 4, 6, 7), "batch", [0, 1, 3], True, "class 2 never occurs in the labels"),
        ("3d_c2_batch", (1, 2, 4, 5, 6), "batch", None, True, "3D"),
        ("3d_c3_sample_absent_class", (2, 3, 3, 4, 5), "sample", [0, 2], True, "class 1 absent, per sample"),
        ("2d_c3_batch_no_background", (2, 3, 7, 9), "batch", None, False,
         "loss over classes 1..2 only; dice of all 3 returned"),
        ("2d_c2_sample_no_background", (3, 2, 5, 6), "sample", None, False,
         "two classes: the loss is the foreground dice of each sample"),
        ("3d_c4_sample_no_background_absent", (2, 4, 3, 4, 5), "sample", [0, 1, 3], False,
         "3D, class 2 absent, background left out"),
    ):
        cid = ids("dice_loss", desc)
        rng = cs.rng(cid)
        n, c = shape[:2]
        inputs = {"logits": normal(rng, shape), "labels": labels(rng, (n,) + shape[2:], c, allowed)}
        attrs = {"axis": 1, "smooth": 1e-5, "reduce_over": over, "include_background": bg,
                 "input": "logits (softmax over axis 1 inside)"}
        red = (n if over == "batch" else 1) * prod(shape[2:])
        cs.add(cid, "dice_loss", attrs, inputs, ["logits"], loss=True, note=note,
               k_out={"loss": red * c, "dice": red}, k_grad={"logits": red})


# ----------------------------------------------------------------- optimizers


def optimizer_cases(cs, ids):
    shape, steps = (4, 3, 3, 3), 3
    for desc, lr, mom, nest, wd, init in (
        ("momentum_0p99_fresh", 0.01, 0.99, False, 0.0, False),
        ("momentum_0p9_wd_resumed", 0.1, 0.9, False, 0.05, True),
        ("nesterov_wd_resumed", 0.05, 0.9, True, 1e-3, True),
        ("plain", 0.1, 0.0, False, 0.0, False),
    ):
        cid = ids("sgd_step", desc)
        rng = cs.rng(cid)
        buf = normal(rng, shape, 0.5) if init else np.zeros(shape, np.float32)
        inputs = {"param": normal(rng, shape), "grad": normal(rng, (steps,) + shape), "momentum_buffer": buf}
        attrs = {"lr": lr, "momentum": mom, "dampening": 0.0, "weight_decay": wd, "nesterov": nest,
                 "maximize": False, "buffer_initialized": init, "steps": steps}
        cs.add(cid, "sgd_step", attrs, inputs, [], no_grad=True,
               note=f"{steps} torch.optim.SGD steps, grad[t] at step t")
    for op, desc, lr, wd, eps, step0, gscale in (
        ("adam_step", "fresh", 0.05, 0.0, 1e-8, 0, 1.0),
        ("adam_step", "resumed_l2", 0.05, 0.01, 1e-8, 10, 1.0),
        ("adam_step", "eps_large_small_grads", 0.05, 0.0, 0.1, 3, 0.05),
        ("adamw_step", "fresh", 0.05, 0.1, 1e-8, 0, 1.0),
        ("adamw_step", "resumed", 0.05, 0.1, 1e-8, 5, 1.0),
    ):
        cid = ids(op, desc)
        rng = cs.rng(cid)
        if step0 == 0:
            m, v = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        else:
            m = normal(rng, shape, 0.1 * gscale)
            v = (rng.uniform(0.05, 0.5, shape) * gscale ** 2).astype(np.float32)
        inputs = {"param": normal(rng, shape), "grad": normal(rng, (steps,) + shape, gscale),
                  "exp_avg": m, "exp_avg_sq": v}
        attrs = {"lr": lr, "betas": [0.9, 0.999], "eps": eps, "weight_decay": wd, "amsgrad": False,
                 "maximize": False, "step0": step0, "steps": steps}
        kind = "AdamW (decoupled weight decay)" if op == "adamw_step" else "Adam (L2 weight decay)"
        cs.add(cid, op, attrs, inputs, [], no_grad=True,
               note=f"{steps} torch.optim {kind} steps after {step0} earlier ones, grad[t] at step t")


# ----------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/golden", help="output folder (default tests/golden)")
    ap.add_argument("--no-unet", action="store_true", help="skip the tiny U-Net golden")
    args = ap.parse_args()

    cs = CaseSet(args.out, SEED, generator_info())
    ids = Ids()
    conv_cases(cs, ids)
    conv_transpose_cases(cs, ids)
    pool_cases(cs, ids)
    norm_cases(cs, ids)
    elementwise_cases(cs, ids)
    upsample_cases(cs, ids)
    loss_cases(cs, ids)
    optimizer_cases(cs, ids)
    cs.remove_stale(keep=("unet_tiny",))
    cs.write_manifest()
    golden_lib.validate(args.out)
    print(f"{args.out}/cases.json: {len(cs.cases)} cases, {cs.bytes / 1e6:.3f} MB of .npy")
    worst = max(((e["jax_fp32_max_abs_err"] / (e["atol"] + e["rtol"] * 0.0), c["id"], n)
                 for c in cs.cases for part in ("outputs", "grads") for n, e in c[part].items()
                 if "atol" in e), default=None)
    if worst:
        print(f"largest jax fp32 error / atol: {worst[0]:.3g} ({worst[1]} {worst[2]})")

    if not args.no_unet:
        golden_unet.write(os.path.join(args.out, "unet_tiny"), SEED, generator_info())


if __name__ == "__main__":
    main()
