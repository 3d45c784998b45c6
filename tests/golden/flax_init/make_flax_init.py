"""Writes the Flax init golden set (`<dir>/params.npz`, `<dir>/param_keys.json`, `meta.json`).

  PYTHONPATH=/path/to/big_vision /path/to/venv-jax/bin/python \\
      tests/golden/flax_init/make_flax_init.py [OUT]

OUT defaults to this directory. Needs JAX 0.10.2, Flax 0.12.8 and big_vision at commit
0127fb6b (its ViT). Each parameter's initializer is re-run on the key the documented
scheme derives (README.md) and compared bit for bit; a NumPy float32 implementation of the
initializer formulas (../prng/numpy_threefry.py, libm log1p) is compared in ulp.
"""

import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.path.insert(0, GOLDEN)
sys.path.insert(0, os.path.join(GOLDEN, "prng"))

import flax  # pylint: disable=g-import-not-at-top
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bv_stub_tf import import_big_vision_utils
import numpy_threefry as npt

u = import_big_vision_utils()
from big_vision.models import vit  # pylint: disable=g-import-not-at-top

WRAP_NOTE = ("initializer called on the 2-D shape (prod(input axes), prod(feature axes)) "
             "[bias: (prod(features),)], then reshaped")
TRUNC_STD = 0.87962566103423978


class MLP(nn.Module):
  features: tuple

  @nn.compact
  def __call__(self, x):
    for i, f in enumerate(self.features):
      x = nn.Dense(f)(x)
      if i + 1 < len(self.features):
        x = nn.relu(x)
    return x


def _train_rng_init(seed):
  return jax.random.split(jax.random.PRNGKey(seed))[1]


SETS = {
    "vit": dict(
        module="big_vision.models.vit.Model",
        kwargs={"num_classes": 10, "variant": "mu/8", "depth": 2, "posemb": "learn",
                "pool_type": "gap"},
        make=lambda kw: vit.Model(**kw), input_shape=[2, 32, 32, 3],
        root_key_expr="rng = PRNGKey(0); rng, rng_init = split(rng)  (big_vision train.py,"
                      " config.seed)",
        root_key=lambda: _train_rng_init(0)),
    "dense_root": dict(
        module="flax.linen.Dense (as the root module)", kwargs={"features": 4},
        make=lambda kw: nn.Dense(**kw), input_shape=[1, 6],
        root_key_expr="PRNGKey(0)", root_key=lambda: jax.random.PRNGKey(0)),
    "mlp": dict(
        module="MLP: root module whose __call__ applies nn.Dense(f) for f in features "
               "(auto-named Dense_0, Dense_1, ...), relu between",
        kwargs={"features": [8, 3]}, make=lambda kw: MLP(tuple(kw["features"])),
        input_shape=[2, 5], root_key_expr="PRNGKey(42)",
        root_key=lambda: jax.random.PRNGKey(42)),
    "conv": dict(
        module="flax.linen.Conv (as the root module)",
        kwargs={"features": 6, "kernel_size": [3, 3]},
        make=lambda kw: nn.Conv(kw["features"], tuple(kw["kernel_size"])),
        input_shape=[1, 8, 8, 4], root_key_expr="PRNGKey(1)",
        root_key=lambda: jax.random.PRNGKey(1)),
}


def _static_bytes(items):
  return b"".join(x.encode() if isinstance(x, str)
                  else x.to_bytes((x.bit_length() + 7) // 8, "big") for x in items)


def _closure(fn):
  return dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ())))


def describe(init_fn, shape):
  """(JSON description, the shape the inner initializer is called with) of a Flax/JAX
  initializer; DenseGeneral's wrappers call it on a flattened shape."""
  flat = tuple(shape)
  wrap = init_fn.__name__ if init_fn.__name__ in ("kernel_init_wrap",
                                                  "bias_init_wrap") else None
  if wrap:
    mod = _closure(init_fn)["self"]
    n_features = len(mod.features) if isinstance(mod.features, (tuple, list)) else 1
    n_axis = len(mod.axis) if isinstance(mod.axis, (tuple, list)) else 1
    if wrap == "kernel_init_wrap":
      init_fn = mod.kernel_init
      flat = (int(np.prod(shape[:n_axis])), int(np.prod(shape[-n_features:])))
    else:
      init_fn = mod.bias_init
      flat = (int(np.prod(shape[-n_features:])),)
  c = _closure(init_fn)
  if init_fn.__name__ in ("zeros", "ones"):
    desc = {"init": init_fn.__name__}
  elif "distribution" in c:
    desc = {"init": "variance_scaling", "scale": float(c["scale"]), "mode": c["mode"],
            "distribution": c["distribution"], "in_axis": c["in_axis"],
            "out_axis": c["out_axis"]}
  elif "stddev" in c:
    desc = {"init": "normal", "stddev": float(c["stddev"])}
  else:
    raise ValueError(f"unknown initializer {init_fn}")
  if wrap:
    desc["flax_DenseGeneral_wrap"] = WRAP_NOTE
  return desc, flat


def numpy_init(desc, key, shape, erf_bounds):
  """The documented initializer formulas in NumPy float32 (../prng/numpy_threefry.py)."""
  init = desc["init"]
  if init == "zeros":
    return np.zeros(shape, np.float32)
  if init == "ones":
    return np.ones(shape, np.float32)
  key = np.asarray(key, np.uint32)
  if init == "normal":
    lo = np.nextafter(np.float32(-1), np.float32(0))
    e = npt.erfinv32(npt.uniform(key, shape, lo, 1.0))
    return e * np.float32(npt.SQRT2 * np.float32(desc["stddev"]))
  receptive = np.prod(shape) / (shape[desc["in_axis"]] * shape[desc["out_axis"]])
  fan_in = shape[desc["in_axis"]] * receptive
  fan_out = shape[desc["out_axis"]] * receptive
  den = {"fan_in": fan_in, "fan_out": fan_out,
         "fan_avg": (fan_in + fan_out) / 2}[desc["mode"]]
  var = np.float32(desc["scale"] / den)
  if desc["distribution"] == "truncated_normal":
    return npt.truncated_normal(key, -2.0, 2.0, shape, *erf_bounds) * (
        np.sqrt(var) / np.float32(TRUNC_STD))
  if desc["distribution"] == "uniform":
    return npt.uniform(key, shape, -1.0, 1.0) * np.sqrt(np.float32(3) * var)
  return npt.normal(key, shape) * np.sqrt(var)


def capture_params(model, root_key, x):
  """(scope path, name, counter, init_fn, shape) of each parameter, in creation order."""
  calls, counters = [], {}
  orig = flax.core.scope.Scope.param

  def param(self, name, init_fn, *args, **kw):
    if not self.has_variable("params", name):
      path = tuple(self.path)
      counters[path] = counters.get(path, 0) + 1
      calls.append((path, name, counters[path], init_fn, args))
    return orig(self, name, init_fn, *args, **kw)

  flax.core.scope.Scope.param = param
  try:
    jax.eval_shape(lambda r: model.init(r, x), root_key)
  finally:
    flax.core.scope.Scope.param = orig
  return calls


def one_set(name, spec, outdir, erf_bounds):
  model = spec["make"](spec["kwargs"])
  root_key = spec["root_key"]()
  x = jnp.zeros(spec["input_shape"], jnp.float32)
  params = jax.jit(lambda r: model.init(r, x)["params"])(root_key)
  flat = {k: np.asarray(v) for k, v in u.tree_flatten_with_names(params)[0]}
  records, exact = [], 0
  for path, pname, counter, init_fn, args in capture_params(model, root_key, x):
    full = "/".join(path + (pname,))
    data = _static_bytes(path + (counter,))
    h = int.from_bytes(hashlib.sha1(data).digest()[:4], "big")
    key = jax.random.fold_in(root_key, h)
    got = np.asarray(jax.jit(lambda k, f=init_fn, a=args: f(k, *a))(key))
    want = flat[full]
    desc, inner_shape = describe(init_fn, want.shape)
    ref = numpy_init(desc, np.asarray(key), inner_shape, erf_bounds).reshape(want.shape)
    ulps = npt.ulps(ref, want)
    ok = bool(np.array_equal(got, want))
    exact += ok
    records.append({
        "name": full, "scope_path": list(path), "param_name": pname, "counter": counter,
        "sha1_input_hex": data.hex(), "hash_uint32": h,
        "key": [int(v) for v in np.asarray(key)], "shape": list(want.shape),
        "dtype": str(want.dtype), "initializer": desc, "reproduced_bitwise": ok,
        "numpy_reimpl_max_ulp": int(ulps.max()),
        "numpy_reimpl_exact_frac": round(float(np.mean(ulps == 0)), 6),
    })
  summary = {
      "module": spec["module"], "kwargs": spec["kwargs"],
      "init_input_shape": spec["input_shape"], "init_input": "zeros float32",
      "root_key_expr": spec["root_key_expr"],
      "root_key": [int(v) for v in np.asarray(root_key)],
      "n_params": int(sum(v.size for v in flat.values())),
      "params_reproduced_from_documented_scheme": f"{exact}/{len(records)} bit-exact",
  }
  if name == "vit":
    summary["decoded_variant"] = decoded_vit_variant(spec["kwargs"])
  os.makedirs(os.path.join(outdir, name), exist_ok=True)
  np.savez(os.path.join(outdir, name, "params.npz"), **flat)
  write_json(os.path.join(outdir, name, "param_keys.json"), {**summary, "params": records})
  return summary


def decoded_vit_variant(kwargs):
  v = vit.decode_variant(kwargs["variant"])
  return {"width": v["width"], "depth": v["depth"], "mlp_dim": v["mlp_dim"],
          "num_heads": v["num_heads"], "patch_size": list(v["patch_size"])}


def write_json(path, obj):
  with open(path, "w") as f:
    json.dump(obj, f, indent=1)
    f.write("\n")


def main():
  out = sys.argv[1] if len(sys.argv) > 1 else HERE
  erf = jax.jit(jax.scipy.special.erf)
  erf_bounds = [np.float32(erf(jnp.float32(v) / jnp.sqrt(jnp.float32(2))))
                for v in (-2, 2)]
  sets = {name: one_set(name, spec, out, erf_bounds) for name, spec in SETS.items()}
  write_json(os.path.join(out, "meta.json"), {
      "flax_version": flax.__version__, "jax_version": jax.__version__,
      "flax_fix_rng_separator": bool(flax.config.flax_fix_rng_separator),
      "jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
      "sets": sets,
  })
  print("wrote", out)


if __name__ == "__main__":
  main()
