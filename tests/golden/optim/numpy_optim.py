"""NumPy float32 re-implementation of `big_vision.optax.make` as README.md documents it.

`deviation` runs it from `params_init` on the same gradients (its own trajectory) and
compares with the stored JAX parameters after every update: the max |difference| and the
fraction of (update, tensor) pairs that are bit-exact, as written to each meta.json.
"""

import re

import ml_dtypes
import numpy as np

F32 = np.float32


def bf16(x):
  return np.asarray(x, F32).astype(ml_dtypes.bfloat16).astype(F32)


def fma(a, b, c):
  """float32 fused multiply-add (the product is exact in float64)."""
  return (np.float64(a) * np.float64(b) + np.float64(c)).astype(F32)


def first_match(patterns, name):
  for i, p in enumerate(patterns):
    if re.fullmatch(p, name):
      return i
  return None


class Adam:
  def __init__(self, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None,
               nesterov=False):
    self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
    self.bf16, self.nesterov = mu_dtype == "bfloat16", nesterov
    self.mu, self.nu = {}, {}

  def update(self, k, g, t):
    b1 = bf16(self.b1) if self.bf16 else F32(self.b1)
    mu = fma(self.mu.get(k, np.zeros_like(g)), b1, F32(1 - self.b1) * g)
    nu = F32(1 - self.b2) * g * g + F32(self.b2) * self.nu.get(k, np.zeros_like(g))
    bc1 = F32(1) - F32(self.b1) ** F32(t + 1)
    bc2 = F32(1) - F32(self.b2) ** F32(t + 1)
    if self.nesterov:
      mu_hat = (F32(self.b1) * (mu / (F32(1) - F32(self.b1) ** F32(t + 2)))
                + F32(1 - self.b1) * (g / bc1))
    else:
      mu_hat = mu / bc1
    upd = mu_hat / (np.sqrt(nu / bc2 + F32(self.eps_root)) + F32(self.eps))
    self.mu[k] = bf16(mu) if self.bf16 else mu
    self.nu[k] = nu
    return upd


class MomentumHP:
  def __init__(self, momentum=0.9, nesterov=False):
    self.m, self.nesterov, self.tr = momentum, nesterov, {}

  def update(self, k, g, t):
    del t
    tr = fma(self.tr.get(k, np.zeros_like(g)), bf16(self.m), g)
    self.tr[k] = bf16(tr)
    return g + F32(self.m) * tr if self.nesterov else tr


class Adafactor:
  def __init__(self, min_dim_size_to_factor=32, decay_rate=0.8, decay_offset=0,
               beta2_cap=0.999, clipping_threshold=None, momentum=0.9, eps=1e-30):
    self.min_dim, self.decay_rate, self.offset = min_dim_size_to_factor, decay_rate, \
        decay_offset
    self.cap, self.clip, self.momentum, self.eps = beta2_cap, clipping_threshold, \
        momentum, eps
    self.v, self.ema = {}, {}

  def update(self, k, g, t):
    rho = min(F32(self.cap), F32(1) - F32(t + 1 - self.offset) ** F32(-self.decay_rate))
    rho = F32(rho)
    g2 = g * g + F32(self.eps)
    shape = g.shape
    factored = len(shape) >= 2 and sorted(shape)[-2] >= self.min_dim
    if factored:
      order = np.argsort(shape, kind="stable")
      d0, d1 = int(order[-1]), int(order[-2])
      v_row, v_col = self.v.get(k, (np.zeros(np.delete(shape, d0), F32),
                                    np.zeros(np.delete(shape, d1), F32)))
      v_row = rho * v_row + (F32(1) - rho) * g2.mean(axis=d0, dtype=F32)
      v_col = rho * v_col + (F32(1) - rho) * g2.mean(axis=d1, dtype=F32)
      self.v[k] = (v_row, v_col)
      rd = d1 if d1 < d0 else d1 - 1
      row_factor = (v_row / v_row.mean(axis=rd, keepdims=True, dtype=F32)) ** F32(-0.5)
      col_factor = v_col ** F32(-0.5)
      upd = g * np.expand_dims(row_factor, d0) * np.expand_dims(col_factor, d1)
    else:
      v = rho * self.v.get(k, np.zeros_like(g)) + (F32(1) - rho) * g2
      self.v[k] = v
      upd = g * v ** F32(-0.5)
    if self.clip:
      upd = upd / max(F32(1), np.sqrt(np.mean(upd * upd, dtype=F32)) / F32(self.clip))
    if self.momentum:
      ema = fma(self.ema.get(k, np.zeros_like(g)), bf16(self.momentum),
                F32(1 - self.momentum) * upd)
      self.ema[k] = bf16(ema)
      upd = ema
    return upd.astype(F32)


class Trace:
  def __init__(self, decay, nesterov=False, accumulator_dtype=None):
    self.m, self.nesterov, self.tr = decay, nesterov, {}
    self.bf16 = accumulator_dtype == "bfloat16"

  def update(self, k, g, t):
    del t
    m = bf16(self.m) if self.bf16 else F32(self.m)
    tr = fma(self.tr.get(k, np.zeros_like(g)), m, g)
    self.tr[k] = bf16(tr) if self.bf16 else tr
    return g + F32(self.m) * tr if self.nesterov else tr


class Lion:
  def __init__(self, b1=0.9, b2=0.99, mu_dtype=None):
    self.b1, self.b2, self.bf16, self.mu = b1, b2, mu_dtype == "bfloat16", {}

  def update(self, k, g, t):
    del t
    mu = self.mu.get(k, np.zeros_like(g))
    b1, b2 = (bf16(self.b1), bf16(self.b2)) if self.bf16 else (F32(self.b1), F32(self.b2))
    upd = np.sign(fma(mu, b1, F32(1 - self.b1) * g))
    mu = fma(mu, b2, F32(1 - self.b2) * g)
    self.mu[k] = bf16(mu) if self.bf16 else mu
    return upd


class Identity:
  def update(self, k, g, t):
    del k, t
    return g


OPTIMIZERS = {"scale_by_adam": Adam, "big_vision.momentum_hp": MomentumHP,
              "big_vision.scale_by_adafactor": Adafactor, "big_vision.sgd": Identity,
              "trace": Trace, "scale_by_lion": Lion}


def run(cfg, groups, schedules, params0, grads):
  """Parameters after each update, {f"step{t}/{name}": array}."""
  opt = OPTIMIZERS[cfg["optax_name"]](**cfg.get("optax", {}))
  p = {k: v.copy() for k, v in params0.items()}
  live = [k for k in p if not groups[k]["frozen"]]
  lr_mults = cfg.get("lr_mults", [])
  wd_mults = cfg.get("wd_mults", [[".*/kernel$", 1.0]]) if cfg.get("wd") else []
  out = {}
  for t, g in enumerate(grads):
    g = {k: v.copy() for k, v in g.items()}
    if cfg.get("grad_clip_norm"):
      c = F32(cfg["grad_clip_norm"])
      n = np.sqrt(sum(np.sum(g[k] * g[k], dtype=F32) for k in live), dtype=F32)
      if n >= c:
        for k in live:
          g[k] = (g[k] / n) * c
    new = {}
    for k in p:
      if groups[k]["frozen"]:
        new[k] = p[k]
        continue
      upd = opt.update(k, g[k], t)
      upd = F32(cfg["lr"]) * upd
      i = first_match([m[0] for m in lr_mults], k)
      if i is not None:
        upd = F32(lr_mults[i][1]) * upd
      i = first_match([m[0] for m in wd_mults], k)
      if i is not None:
        upd = upd + F32(cfg["wd"] * wd_mults[i][1]) * p[k]
      mult = schedules[groups[k]["schedule_index"]]["mult_per_update"][t]
      upd = F32(mult) * upd
      new[k] = p[k] + (-upd)
    p = new
    out.update({f"step{t + 1}/{k}": v for k, v in p.items()})
  return out


def deviation(cfg, groups, schedules, params0, grads, stored):
  ref = run(cfg, groups, schedules, params0, grads)
  diffs = [float(np.max(np.abs(ref[k] - stored[k]))) for k in stored]
  return max(diffs), sum(d == 0 for d in diffs) / len(diffs)
