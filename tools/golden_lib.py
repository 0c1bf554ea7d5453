"""Case-set writer shared by make_goldens.py: runs an op in float64 and float32,
takes the VJP, computes the per-tensor tolerances and writes `.npy` files plus
the manifest in the format of ../shared/golden/SCHEMA.md."""

import json
import math
import os
import shutil
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from golden_ops import OPS

TOL_RULE = (
    "|got-exp| <= atol + rtol*|exp| elementwise, per-tensor rtol/atol: "
    "f = max(1, sqrt(k_reduce/1024)), rtol = 1e-4*f, atol = 1e-4*f*max(1, rms(exp)); "
    "values rounded up to 3 significant digits"
)

LAYOUT = {
    "activation_2d": "NCHW",
    "activation_3d": "NCDHW",
    "conv_weight": "OIHW / OIDHW",
    "conv_transpose_weight": "IOHW / IODHW",
    "labels": "N[D]HW int64",
}


def ceil_sig3(v):
    """Round a positive number up to 3 significant digits (never tighter than the rule)."""
    v = float(v)
    if v == 0.0 or not math.isfinite(v):
        return v
    e = math.floor(math.log10(abs(v))) - 2
    q = round(v / 10.0 ** e, 6)
    return float(f"{math.ceil(q) * 10.0 ** e:.3g}")


def sig3(v):
    return float(f"{float(v):.3g}")


def rms(a):
    a = np.asarray(a, np.float64)
    return float(np.sqrt(np.mean(a * a))) if a.size else 0.0


def tolerance(exp64, k_reduce):
    f = max(1.0, math.sqrt(k_reduce / 1024.0))
    return ceil_sig3(1e-4 * f), ceil_sig3(1e-4 * f * max(1.0, rms(exp64)))


def case_rng(seed, case_id):
    """A generator per case, so adding or removing a case leaves the others unchanged."""
    return np.random.default_rng([seed, zlib.crc32(case_id.encode())])


def _is_float(a):
    return np.issubdtype(np.asarray(a).dtype, np.floating)


def _convert(inputs, dtype):
    return {n: (jnp.asarray(v, dtype=dtype) if _is_float(v) else np.asarray(v)) for n, v in inputs.items()}


def evaluate(op, inputs, attrs, diff, primary, grad_out, dtype):
    """Forward outputs and the VJP of `primary` w.r.t. `diff`, computed in `dtype`.

    The whole case is one jitted function (integer inputs are baked in as constants),
    so XLA compiles once per case instead of once per primitive."""
    floats = {n: jnp.asarray(v, dtype=dtype) for n, v in inputs.items() if _is_float(v)}
    ints = {n: np.asarray(v) for n, v in inputs.items() if not _is_float(v)}
    fn = OPS[op]

    order = []

    def full(fl, g):
        d = dict(ints)
        d.update(fl)
        outs = fn(d, attrs)
        order[:] = list(outs)  # trace time: the op's output order (jit sorts dict keys)
        grads = {}
        if diff:
            def prim(*vals):
                dd = dict(d)
                dd.update(zip(diff, vals))
                return fn(dd, attrs, aux=False)[primary]

            _, vjp = jax.vjp(prim, *[fl[n] for n in diff])
            grads = dict(zip(diff, vjp(g)))
        return outs, grads

    g = jnp.asarray(0.0 if grad_out is None else grad_out, dtype=dtype)
    outs, grads = jax.jit(full)(floats, g)
    outs = {n: np.asarray(outs[n]) for n in order}
    grads = {n: np.asarray(grads[n]) for n in diff}
    for n, v in list(outs.items()) + list(grads.items()):
        if _is_float(v) and v.dtype != np.dtype(dtype):
            raise AssertionError(f"{op}: tensor {n} came out {v.dtype} in a {np.dtype(dtype)} run")
    return outs, grads


def output_shapes(op, inputs, attrs):
    """Output names (in order) and shapes, by tracing only."""
    floats = {n: jax.ShapeDtypeStruct(v.shape, np.float64) for n, v in inputs.items() if _is_float(v)}
    ints = {n: np.asarray(v) for n, v in inputs.items() if not _is_float(v)}
    order = []

    def f(fl):
        outs = OPS[op]({**ints, **fl}, attrs)
        order[:] = list(outs)
        return outs

    res = jax.eval_shape(f, floats)
    return {n: res[n].shape for n in order}


class CaseSet:
    """Collects cases and writes them under `root` (ids double as folder names)."""

    def __init__(self, root, seed, generator):
        self.root = root
        self.seed = seed
        self.generator = generator
        self.cases = []
        self.bytes = 0
        os.makedirs(root, exist_ok=True)

    def rng(self, case_id):
        return case_rng(self.seed, case_id)

    def _save(self, case_id, fname, arr):
        folder = os.path.join(self.root, case_id)
        os.makedirs(folder, exist_ok=True)
        arr = np.array(arr, order="C", copy=True)  # (ascontiguousarray would turn a 0-d loss into shape [1])
        assert arr.dtype in (np.float32, np.int64), (case_id, fname, arr.dtype)
        path = os.path.join(folder, fname + ".npy")
        np.save(path, arr, allow_pickle=False)
        self.bytes += os.path.getsize(path)
        return {"file": f"{case_id}/{fname}.npy", "shape": list(arr.shape), "dtype": str(arr.dtype)}

    def _expected(self, case_id, fname, exp64, exp32, k_reduce):
        if not _is_float(exp64):
            entry = self._save(case_id, fname, np.asarray(exp64, np.int64))
            entry["exact"] = True
            return entry
        entry = self._save(case_id, fname, np.asarray(exp64, np.float32))
        rtol, atol = tolerance(exp64, k_reduce)
        err = float(np.max(np.abs(np.asarray(exp32, np.float64) - exp64))) if exp64.size else 0.0
        entry.update({"rtol": rtol, "atol": atol, "k_reduce": int(k_reduce), "jax_fp32_max_abs_err": sig3(err)})
        return entry

    def add(self, case_id, op, attrs, inputs, diff, *, note="", optional=None,
            k_out=None, k_grad=None, loss=False, no_grad=False):
        """Compute and write one case.

        optional: None for a case the engine must run (the golden runner fails
        when it skips it), or the reason why the engine may skip it (manifest:
        "optional": true, "optional_reason": the reason)

        inputs: name -> float32 or int64 numpy array (dict order = manifest order)
        diff: names of the differentiable inputs
        k_out / k_grad: name -> k_reduce (default 1)
        loss: grad_output is exactly 1.0 (shape []); no_grad: no grad_output at all
        """
        assert case_id not in {c["id"] for c in self.cases}, case_id
        shutil.rmtree(os.path.join(self.root, case_id), ignore_errors=True)
        rng = self.rng(case_id + "/grad_output")
        for n, v in inputs.items():
            assert v.dtype in (np.float32, np.int64), (case_id, n, v.dtype)
        k_out, k_grad = k_out or {}, k_grad or {}
        # forward once to learn the primary output's shape
        shapes = output_shapes(op, inputs, attrs)
        primary = next(iter(shapes))
        if no_grad:
            g = None
            diff = []
        elif loss:
            g = np.array(1.0, np.float32)
        else:
            g = rng.standard_normal(shapes[primary]).astype(np.float32)
        o64, g64 = evaluate(op, inputs, attrs, diff, primary, g, np.float64)
        o32, g32 = evaluate(op, inputs, attrs, diff, primary, g, np.float32)
        assert optional is None or (isinstance(optional, str) and optional), (case_id, optional)
        case = {"id": case_id, "op": op, "optional": optional is not None}
        if optional is not None:
            case["optional_reason"] = optional
        case.update({"note": note, "attrs": attrs})
        case["inputs"] = {n: self._save(case_id, n, v) for n, v in inputs.items()}
        case["grad_output"] = {} if g is None else {primary: self._save(case_id, "grad_" + primary, g)}
        case["outputs"] = {
            n: self._expected(case_id, n, o64[n], o32[n], k_out.get(n, 1)) for n in o64
        }
        case["grads"] = {
            n: self._expected(case_id, "grad_in_" + n, g64[n], g32[n], k_grad.get(n, 1)) for n in diff
        }
        for n, v in list(o64.items()) + list(g64.items()):
            assert np.all(np.isfinite(v)), (case_id, n)
        self.cases.append(case)
        return o64, g64, g

    def write_manifest(self, name="cases.json", extra=None, tolerance_rule=TOL_RULE):
        man = {
            "format": "dl-kernel-oracle",
            "version": 1,
            "seed": self.seed,
            "generator": self.generator,
            "layout": LAYOUT,
            "tolerance_rule": tolerance_rule,
        }
        if extra:
            man.update(extra)
        man["num_cases"] = len(self.cases)
        man["cases"] = self.cases
        path = os.path.join(self.root, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(man, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)

    def remove_stale(self, keep=()):
        """Delete case folders under root that this run did not write (keeps `keep`)."""
        ids = {c["id"] for c in self.cases} | set(keep)
        for entry in sorted(os.listdir(self.root)):
            p = os.path.join(self.root, entry)
            if os.path.isdir(p) and entry not in ids:
                files = os.listdir(p)
                if files and all(f.endswith(".npy") for f in files):
                    shutil.rmtree(p)


def validate(root, name="cases.json"):
    """Re-read a written set and check it against the schema's rules; raises on a problem."""
    with open(os.path.join(root, name)) as f:
        man = json.load(f)
    assert man["format"] == "dl-kernel-oracle" and man["version"] == 1
    assert man["num_cases"] == len(man["cases"])
    ids = [c["id"] for c in man["cases"]]
    assert len(set(ids)) == len(ids), "duplicate case ids"
    for c in man["cases"]:
        cid = c["id"]

        def check(entry, stem):
            assert entry["file"] == f"{cid}/{stem}.npy", (cid, entry["file"], stem)
            a = np.load(os.path.join(root, entry["file"]), allow_pickle=False)
            assert list(a.shape) == entry["shape"] and str(a.dtype) == entry["dtype"], (cid, stem)
            if "rtol" in entry:
                assert entry["dtype"] == "float32" and entry["rtol"] > 0 and entry["atol"] > 0, (cid, stem)
            elif entry["dtype"] == "int64" and stem not in c["inputs"]:
                assert entry.get("exact") is True, (cid, stem)
            return a

        unet = c["op"] == "unet_tiny"
        for n, e in c["inputs"].items():
            check(e, f"param_{n}" if unet and n not in ("x", "labels") else n)
        outs = list(c["outputs"])
        assert len(c["grad_output"]) <= 1
        for n, e in c["grad_output"].items():
            assert n == outs[0], (cid, "grad_output must be for the primary output")
            g = check(e, f"grad_{n}")
            assert e["shape"] == c["outputs"][n]["shape"], cid
            if n == "loss":
                assert g.shape == () and g == 1.0, cid
        for n, e in c["outputs"].items():
            check(e, n)
        for n, e in c["grads"].items():
            check(e, f"grad_{n}" if unet else f"grad_in_{n}")
            assert e["shape"] == c["inputs"][n]["shape"], (cid, n)
    return man
