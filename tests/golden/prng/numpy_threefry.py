"""NumPy re-implementation of JAX's threefry2x32 PRNG as README.md documents it.

`make_prng.py` checks it against the JAX values and records the result in index.json
(`numpy_emulation`): keys, split, fold_in, bits, uniform, bernoulli, randint and
permutation bit for bit; normal and truncated_normal as ulp histograms (a libm `log1p`
instead of XLA's, float32 FMA emulated in float64).
"""

import collections
import math

import numpy as np

M32 = 0xFFFFFFFF
ROT = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k0, k1, x0, x1):
  k0, k1 = np.uint64(k0), np.uint64(k1)
  ks = (k0, k1, k0 ^ k1 ^ np.uint64(0x1BD11BDA))
  x0 = (np.asarray(x0, np.uint64) + ks[0]) & M32
  x1 = (np.asarray(x1, np.uint64) + ks[1]) & M32
  for i in range(5):
    for r in ROT[i % 2]:
      x0 = (x0 + x1) & M32
      x1 = ((x1 << np.uint64(r)) | (x1 >> np.uint64(32 - r))) & M32
      x1 ^= x0
    x0 = (x0 + ks[(i + 1) % 3]) & M32
    x1 = (x1 + ks[(i + 2) % 3] + np.uint64(i + 1)) & M32
  return x0.astype(np.uint32), x1.astype(np.uint32)


def prng_key(seed):
  return np.array([0, seed % 2**32], np.uint32)


def fold_in(key, d):
  y0, y1 = threefry2x32(key[0], key[1], 0, d)
  return np.array([y0, y1], np.uint32)


def split(key, n=2):
  return np.stack([fold_in(key, i) for i in range(n)])


def bits(key, shape):
  i = np.arange(int(np.prod(shape)), dtype=np.uint64)
  y0, y1 = threefry2x32(key[0], key[1], i >> np.uint64(32), i & M32)
  return (y0 ^ y1).reshape(shape)


def fma32(a, b, c):
  """float32 fused multiply-add (the product is exact in float64)."""
  return (np.float64(a) * np.float64(b) + np.float64(c)).astype(np.float32) \
      if np.ndim(a) else np.float32(np.float64(a) * np.float64(b) + np.float64(c))


def uniform(key, shape, minval=0.0, maxval=1.0):
  f = ((bits(key, shape) >> 9) | np.uint32(0x3F800000)).view(np.float32) - np.float32(1)
  lo, hi = np.float32(minval), np.float32(maxval)
  return np.maximum(lo, fma32(f, hi - lo, lo))


ERFINV_SMALL = [2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941]
ERFINV_LARGE = [-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682]


def erfinv32(u):
  u = np.asarray(u, np.float32)
  w = -np.log1p(-u * u).astype(np.float32)
  small = w < np.float32(5)
  ws = np.where(small, w - np.float32(2.5), np.sqrt(w) - np.float32(3)).astype(np.float32)
  ps, pl = np.float32(ERFINV_SMALL[0]), np.float32(ERFINV_LARGE[0])
  for cs, cl in zip(ERFINV_SMALL[1:], ERFINV_LARGE[1:]):
    ps = fma32(ps, ws, np.float32(cs))
    pl = fma32(pl, ws, np.float32(cl))
  out = np.where(small, ps, pl).astype(np.float32) * u
  return np.where(np.abs(u) == 1, np.copysign(np.inf, u), out).astype(np.float32)


SQRT2 = np.float32(math.sqrt(2))


def normal(key, shape):
  lo = np.nextafter(np.float32(-1), np.float32(0))
  return SQRT2 * erfinv32(uniform(key, shape, lo, 1.0))


def truncated_normal(key, lower, upper, shape, erf_lower, erf_upper):
  u = uniform(key, shape, erf_lower, erf_upper)
  return np.clip(SQRT2 * erfinv32(u), np.nextafter(np.float32(lower), np.float32(np.inf)),
                 np.nextafter(np.float32(upper), np.float32(-np.inf)))


def randint(key, shape, minval, maxval):
  k1, k2 = split(key)
  hi, lo = bits(k1, shape).astype(np.uint64), bits(k2, shape).astype(np.uint64)
  span = np.uint64((maxval - minval) & M32) if maxval > minval else np.uint64(1)
  mult = ((2**16 % int(span)) ** 2) % int(span)
  off = (((hi % span) * np.uint64(mult) & M32) + lo % span) & M32
  return (minval + (off % span).astype(np.int64)).astype(np.int32)


def permutation_indices(key, n):
  rounds = max(1, math.ceil(3 * math.log(max(1, n)) / math.log(2**32 - 1)))
  x = np.arange(n)
  for _ in range(rounds):
    key, sub = split(key)
    x = x[np.argsort(bits(sub, (n,)), kind="stable")]
  return x


def ulps(a, b):
  """|a - b| in float32 ulps (elementwise)."""
  def ordered(x):
    i = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)
  return np.abs(ordered(a) - ordered(b))


def _hist(a, b):
  c = collections.Counter(int(x) for x in ulps(a, b))
  return {str(k): c[k] for k in sorted(c)}


def emulation_report(arrays, index_entries, erf_bounds):
  """Compares the emulation with the stored JAX values (`arrays`, by entry name);
  `erf_bounds` = XLA's float32 erf(lower/sqrt2), erf(upper/sqrt2) of truncated_normal."""
  by = {e["name"]: e for e in index_entries}

  def key_of(name):
    return np.array(by[name]["key"], np.uint32)

  exact = {}
  for name, e in by.items():
    if name.startswith("key/") and not name.endswith("_x64"):
      exact[name] = prng_key(e["args"]["seed"])
    elif name.startswith("split/"):
      exact[name] = split(key_of(name), e["args"]["num"])
    elif name.startswith("fold_in/"):
      exact[name] = fold_in(key_of(name), e["args"]["data"])
    elif name.startswith("bits/"):
      exact[name] = bits(key_of(name), tuple(e["args"]["shape"]))
    elif name.startswith("uniform/") or name == "normal/f32_uniform_input":
      a = e["args"]
      exact[name] = uniform(key_of(name), tuple(a["shape"]), a["minval"], a["maxval"])
    elif name == "bernoulli":
      a = e["args"]
      exact[name] = (uniform(key_of(name), tuple(a["shape"])) < np.float32(a["p"])
                     ).astype(np.uint8)
    elif name == "randint":
      a = e["args"]
      exact[name] = randint(key_of(name), tuple(a["shape"]), a["minval"], a["maxval"])
    elif name == "permutation/arange10":
      exact[name] = permutation_indices(key_of(name), 10)
    elif name == "permutation/rows":
      rows = np.arange(10, dtype=np.float32).reshape(5, 2)
      exact[name] = rows[permutation_indices(key_of(name), 5)]
  bad = sorted(n for n, v in exact.items() if not np.array_equal(v, arrays[n]))
  tn = by["truncated_normal/m2_2"]["args"]
  return {
      "PRNGKey/split/fold_in/bits/uniform/bernoulli/randint/permutation":
          "bit-exact" if not bad else f"differs: {bad}",
      "normal_ulp_hist": _hist(normal(key_of("normal/f32"), (1000,)), arrays["normal/f32"]),
      "truncated_normal_ulp_hist": _hist(
          truncated_normal(key_of("truncated_normal/m2_2"), tn["lower"], tn["upper"],
                           (1000,), *erf_bounds),
          arrays["truncated_normal/m2_2"]),
  }
