"""Writes the JAX PRNG golden set (`prng.npz`, `index.json`) with JAX and big_vision.

  PYTHONPATH=/path/to/big_vision /path/to/venv-jax/bin/python tests/golden/prng/make_prng.py [OUT]

OUT defaults to this directory. Needs JAX 0.10.2 (threefry2x32, partitionable, x64 off) and
big_vision at commit 0127fb6b (its `utils.get_mixup` for the train.py chain). The
`numpy_emulation` record in index.json comes from `numpy_threefry.py` beside this file: a
NumPy re-implementation of the documented semantics, checked against the JAX values.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np

from bv_stub_tf import import_big_vision_utils
import numpy_threefry as npt

u = import_big_vision_utils()

ROOT = 42
SAMPLER_BASE = 1000
# 6 rows of 5 classes: linspace(-2, 2, 30) rounded to 3 decimals, columns reordered.
CATEGORICAL_LOGITS = np.round(np.linspace(-2, 2, 30), 3).astype(np.float32).reshape(
    6, 5)[:, [2, 0, 4, 1, 3]]


def raw(key):
  return [int(x) for x in np.asarray(key)]


class Writer:
  """Collects entries (metadata) and arrays (stored values) in order."""

  def __init__(self):
    self.entries, self.arrays = [], {}

  def add(self, name, value, function, args, key=None, key_from=None, note=None,
          dtype=None):
    value = np.asarray(value)
    e = {"name": name, "function": function, "args": args, "shape": list(value.shape),
         "dtype": dtype or str(value.dtype)}
    if key is not None:
      e["key"], e["key_from"] = raw(key), key_from
    if note:
      e["note"] = note
    self.entries.append(e)
    self.arrays[name] = value.astype(np.uint8) if value.dtype == bool else value


def keys(w):
  for seed in (0, 42, 2147483647, -1):
    w.add(f"key/seed_{seed}", jax.random.PRNGKey(seed), "jax.random.PRNGKey",
          {"seed": seed})
  big = 1099511627899
  w.add(f"key/seed_{big}", jax.random.PRNGKey(big), "jax.random.PRNGKey", {"seed": big},
        note="64-bit seed with jax_enable_x64=False (JAX default, big_vision): only the "
             "low 32 bits are kept, key = [0, seed & 0xFFFFFFFF]")
  with jax.enable_x64(True):
    k64 = np.asarray(jax.random.PRNGKey(big))
  w.add(f"key/seed_{big}_x64", k64, "jax.random.PRNGKey", {"seed": big},
        note="same seed with jax_enable_x64=True: key = [seed >> 32, seed & 0xFFFFFFFF]")


def split_fold_bits(w, k):
  kf = f"PRNGKey({ROOT})"
  w.add("split/n2", jax.random.split(k, 2), "jax.random.split", {"num": 2}, k, kf)
  w.add("split/n3", jax.random.split(k, 3), "jax.random.split", {"num": 3}, k, kf)
  k0 = jax.random.split(k)[0]
  w.add("split/n2_of_first", jax.random.split(k0, 2), "jax.random.split", {"num": 2},
        k0, f"split({kf})[0]")
  for d in (0, 1, 7, 1000, 2147483647):
    w.add(f"fold_in/{d}", jax.random.fold_in(k, d), "jax.random.fold_in", {"data": d},
          k, kf)
  w.add("fold_in/4294967295", jax.random.fold_in(k, np.uint32(4294967295)),
        "jax.random.fold_in", {"data": 4294967295}, k, kf, note="data passed as np.uint32")
  for name, shape in (("scalar", ()), ("7", (7,)), ("3x5", (3, 5)), ("1024", (1024,))):
    w.add(f"bits/{name}", jax.random.bits(k, shape), "jax.random.bits",
          {"shape": list(shape), "dtype": "uint32"}, k, kf)


def samplers(w, k):
  """Each sampler entry i uses its own key fold_in(K, 1000 + i)."""
  counter = [SAMPLER_BASE]

  def next_key():
    i = counter[0]
    counter[0] += 1
    return jax.random.fold_in(k, i), f"fold_in(PRNGKey({ROOT}), {i})"

  jit = jax.jit
  kk, kf = next_key()
  w.add("uniform/minmax", jit(lambda k: jax.random.uniform(
      k, (4, 6), jnp.float32, -2.0, 3.0))(kk), "jax.random.uniform",
        {"shape": [4, 6], "dtype": "float32", "minval": -2.0, "maxval": 3.0}, kk, kf)
  kk, kf = next_key()
  w.add("uniform/default_1000", jit(lambda k: jax.random.uniform(k, (1000,)))(kk),
        "jax.random.uniform",
        {"shape": [1000], "dtype": "float32", "minval": 0.0, "maxval": 1.0}, kk, kf)
  kk, kf = next_key()
  w.add("normal/f32", jit(lambda k: jax.random.normal(k, (1000,)))(kk),
        "jax.random.normal", {"shape": [1000], "dtype": "float32"}, kk, kf)
  lo = float(np.nextafter(np.float32(-1), np.float32(0)))
  w.add("normal/f32_uniform_input", jit(lambda k: jax.random.uniform(
      k, (1000,), jnp.float32, lo, 1.0))(kk), "jax.random.uniform",
        {"shape": [1000], "dtype": "float32", "minval": lo, "maxval": 1.0}, kk, kf,
        note="the u that normal/f32 transforms: sqrt(2)*erfinv(u)")
  kk, kf = next_key()
  w.add("truncated_normal/m2_2", jit(lambda k: jax.random.truncated_normal(
      k, -2.0, 2.0, (1000,)))(kk), "jax.random.truncated_normal",
        {"lower": -2.0, "upper": 2.0, "shape": [1000], "dtype": "float32"}, kk, kf)
  kk, kf = next_key()
  w.add("init/lecun_normal_16x8", jit(lambda k: jax.nn.initializers.lecun_normal()(
      k, (16, 8), jnp.float32))(kk), "jax.nn.initializers.lecun_normal()",
        {"shape": [16, 8], "dtype": "float32"}, kk, kf,
        note="= truncated_normal(k,-2,2)*f32(sqrt(f32(1/16))/0.87962566103423978)")
  kk, kf = next_key()
  w.add("bernoulli", jit(lambda k: jax.random.bernoulli(k, 0.3, (64,)))(kk),
        "jax.random.bernoulli", {"p": 0.3, "shape": [64]}, kk, kf,
        dtype="uint8 (0/1; JAX dtype bool)")
  kk, kf = next_key()
  w.add("randint", jit(lambda k: jax.random.randint(k, (50,), -3, 10, jnp.int32))(kk),
        "jax.random.randint",
        {"shape": [50], "minval": -3, "maxval": 10, "dtype": "int32"}, kk, kf)
  kk, kf = next_key()
  w.add("permutation/arange10", jit(lambda k: jax.random.permutation(k, 10))(kk),
        "jax.random.permutation", {"x": 10}, kk, kf)
  kk, kf = next_key()
  rows = jnp.arange(10, dtype=jnp.float32).reshape(5, 2)
  w.add("permutation/rows", jit(lambda k: jax.random.permutation(k, rows, axis=0))(kk),
        "jax.random.permutation",
        {"x": "arange(10, float32).reshape(5, 2)", "axis": 0}, kk, kf)
  logits = CATEGORICAL_LOGITS
  w.arrays["categorical/logits"] = logits  # stored, not an entry of index.json
  kk, kf = next_key()
  w.add("categorical/sample", jit(lambda k: jax.random.categorical(k, logits))(kk),
        "jax.random.categorical", {"logits": "categorical/logits", "axis": -1}, kk, kf)
  w.add("categorical/gumbel", jit(lambda k: jax.random.gumbel(k, (6, 5)))(kk),
        "jax.random.gumbel", {"shape": [6, 5], "dtype": "float32"}, kk, kf,
        note="the noise categorical/sample adds: argmax(logits + gumbel, -1)")
  kk, kf = next_key()
  w.add("categorical/sample_shape", jit(lambda k: jax.random.categorical(
      k, logits, shape=(3, 6)))(kk), "jax.random.categorical",
        {"logits": "categorical/logits", "axis": -1, "shape": [3, 6]}, kk, kf)
  for name, shape in (("scalar", ()), ("8", (8,))):
    kk, kf = next_key()
    w.add(f"beta/{name}", jit(lambda k, s=shape: jax.random.beta(k, 0.2, 0.2, s))(kk),
          "jax.random.beta",
          {"a": 0.2, "b": 0.2, "shape": list(shape), "dtype": "float32"}, kk, kf,
          note="computed under jax.jit (eager differs by <= 1 ulp)")
    ka, kb = jax.random.split(kk)
    for side, ks in (("a", ka), ("b", kb)):
      w.add(f"beta/{name}_loggamma_{side}", jit(
          lambda k, s=shape: jax.random.loggamma(k, 0.2, s))(ks), "jax.random.loggamma",
            {"a": 0.2, "shape": list(shape), "dtype": "float32"}, ks,
            f"split({kf})[{'0' if side == 'a' else '1'}]")
  return logits


def train_chain(w):
  """big_vision train.py's rng chain for seeds 0 and 42, steps 0..2, with and without
  mixup (`utils.get_mixup`, p = 0.2)."""
  for seed in (0, 42):
    p = f"train/seed{seed}"
    rng = jax.random.PRNGKey(seed)
    rng, rng_init = jax.random.split(rng)
    w.add(f"{p}/rng_init", rng_init, "train.py",
          {"expr": "rng=PRNGKey(seed); rng, rng_init = split(rng)"})
    rng, rng_loop = jax.random.split(rng)
    w.add(f"{p}/rng_loop", rng_loop, "train.py",
          {"expr": "rng, rng_loop = split(rng)  (rng from the line above)"})
    for t in range(3):
      s = f"{p}/step{t}"
      r = jax.random.fold_in(rng_loop, t)
      w.add(f"{s}/rng", r, "train.py update_fn",
            {"expr": "rng = fold_in(rng_loop, step)", "step": t})
      w.add(f"{s}/rng_model", jax.random.split(r, 2)[1], "train.py update_fn",
            {"expr": "_, rng_model = split(rng)  (no mixup)"})
      _, rng_mixup = jax.random.split(r)
      w.add(f"{s}/rng_mixup", rng_mixup, "utils.get_mixup",
            {"expr": "rng, rng_mixup = split(rng)"})
      beta = jax.jit(lambda k: jax.random.beta(k, 0.2, 0.2))(rng_mixup)
      w.add(f"{s}/mixup_beta", beta, "utils.get_mixup",
            {"expr": "a = beta(rng_mixup, 0.2, 0.2)  (shape (), float32)"})
      r_after, (a,) = jax.jit(lambda r: _mixup_a(r))(r)
      w.add(f"{s}/mixup_a", a, "utils.get_mixup", {"expr": "a = max(a, 1 - a)"})
      w.add(f"{s}/rng_model_after_mixup", jax.random.split(r_after, 2)[1],
            "train.py update_fn",
            {"expr": "_, rng_model = split(rng)  (rng returned by mixup)"})


def _mixup_a(rng):
  """`utils.get_mixup(rng, 0.2)` on the batch [1, 0]: returns the rng it hands back and
  its mixing weight `a` (mixed[0] = a * 1 + (1 - a) * 0 = a exactly)."""
  rng, (mixed,), _ = u.get_mixup(rng, 0.2)(jnp.array([1.0, 0.0]))
  return rng, (mixed[0],)


def main():
  out = sys.argv[1] if len(sys.argv) > 1 else HERE
  os.makedirs(out, exist_ok=True)
  w = Writer()
  keys(w)
  k = jax.random.PRNGKey(ROOT)
  split_fold_bits(w, k)
  samplers(w, k)
  train_chain(w)
  erf = jax.jit(jax.scipy.special.erf)
  sqrt2 = jnp.sqrt(jnp.float32(2))
  erf_bounds = [np.float32(erf(jnp.float32(x) / sqrt2)) for x in (-2, 2)]
  index = {
      "jax_version": jax.__version__,
      "jax_default_prng_impl": jax.config.jax_default_prng_impl,
      "jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
      "jax_enable_x64": bool(jax.config.jax_enable_x64),
      "erf_f32": {"erf(-2/sqrt2)": float(erf_bounds[0]),
                  "erf(2/sqrt2)": float(erf_bounds[1])},
      "numpy_emulation": npt.emulation_report(w.arrays, w.entries, erf_bounds),
      "entries": w.entries,
  }
  np.savez(os.path.join(out, "prng.npz"), **w.arrays)
  with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(index, f, indent=1)
    f.write("\n")
  print("wrote", out)


if __name__ == "__main__":
  main()
