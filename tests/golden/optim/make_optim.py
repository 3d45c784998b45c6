"""Writes the optimizer golden set with `big_vision.optax.make` (JAX/Optax under jit).

  PYTHONPATH=/path/to/big_vision /path/to/venv-jax/bin/python tests/golden/optim/make_optim.py [OUT]

OUT defaults to this directory. Needs JAX 0.10.2, Optax 0.2.8, ml_collections and
big_vision at commit 0127fb6b. `numpy_optim.py` beside this file is the NumPy float32
re-implementation of README.md's semantics whose deviation each case's meta.json records.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from bv_stub_tf import import_big_vision_utils
import numpy_optim

u = import_big_vision_utils()
import big_vision.optax as bv_optax  # pylint: disable=g-import-not-at-top

SHAPES = {"a/bias": (5,), "a/kernel": (6, 5), "b/scale": (5,), "c/kernel": (3, 3, 2, 4),
          "d/kernel": (40, 36), "frozen/bias": (3,), "frozen/kernel": (4, 3)}
GRAD_SCALES = [0.5, 1, 2, 0.3, 0.8, 1.5]
SAVED_STATE_STEPS = (1, 6)

CASES = {
    "adam_bf16_cosine": (
        {"optax_name": "scale_by_adam",
         "optax": {"b1": 0.9, "b2": 0.999, "eps": 1e-08, "mu_dtype": "bfloat16"},
         "lr": 0.01, "wd": 0.001, "grad_clip_norm": 1.0,
         "schedule": {"warmup_steps": 2, "decay_type": "cosine"}}, 8),
    "momentum_hp_linear": (
        {"optax_name": "big_vision.momentum_hp", "lr": 0.1, "wd": 0.0001,
         "lr_mults": [["a/.*", 0.5], ["b/.*", 2.0]],
         "schedule": {"decay_type": "linear", "linear_end": 0.01, "warmup_steps": 1,
                      "cooldown_steps": 2}}, 6),
    "adafactor_rsqrt_frozen": (
        {"optax_name": "big_vision.scale_by_adafactor", "lr": 0.01, "wd": 0.001,
         "grad_clip_norm": 2.0, "wd_mults": [[".*/kernel$", 1.0], ["b/scale", 0.5]],
         "schedule": [["frozen/.*", None],
                      [".*", {"decay_type": "rsqrt", "timescale": 3, "shift": 1,
                              "warmup_steps": 2}]]}, 6),
    "sgd_stair_groups": (
        {"optax_name": "big_vision.sgd", "lr": 0.1, "lr_mults": [["d/.*", 0.1]],
         "schedule": [["b/.*", {"decay_type": "cosine", "warmup_steps": 1}],
                      ["frozen/.*", None],
                      [".*", {"decay_type": "stair", "steps": [2, 4],
                              "mults": [0.5, 0.1]}]]}, 6),
    "lion_bf16_cosine": (
        {"optax_name": "scale_by_lion",
         "optax": {"b1": 0.9, "b2": 0.99, "mu_dtype": "bfloat16"},
         "lr": 0.001, "wd": 0.01, "grad_clip_norm": 1.0,
         "schedule": {"warmup_steps": 2, "decay_type": "cosine"}}, 8),
    "lion_f32_frozen": (
        {"optax_name": "scale_by_lion", "optax": {"b1": 0.95, "b2": 0.98},
         "lr": 0.002, "wd": 0.001, "lr_mults": [["a/.*", 0.5]],
         "schedule": [["frozen/.*", None],
                      [".*", {"decay_type": "linear", "warmup_steps": 1}]]}, 6),
    "trace_nesterov": (
        {"optax_name": "trace", "optax": {"decay": 0.8, "nesterov": True},
         "lr": 0.05, "wd": 0.0001, "grad_clip_norm": 2.0,
         "schedule": {"decay_type": "cosine", "warmup_steps": 1}}, 6),
    "trace_bf16": (
        {"optax_name": "trace", "optax": {"decay": 0.9, "accumulator_dtype": "bfloat16"},
         "lr": 0.1, "schedule": {"decay_type": "stair", "steps": [3], "mults": [0.5]}}, 6),
}

# Optax's optimizers as functions (and big_vision's adafactor in the same shape), each with
# its keyword arguments. `learning_rate` is a number, or a big_vision schedule dict
# (`create_learning_rate_schedule(total_steps, base=peak, **dict)`, key `peak`); `mask` a
# regex the decayed leaves' names fullmatch. Stored like the cases above, with the optax
# state's leaves by path (chain index / field / name).
OPTAX_CASES = {
    "optax_adamw_mask": (
        "adamw", {"learning_rate": 0.01, "b1": 0.9, "b2": 0.99, "weight_decay": 0.01,
                  "mask": ".*/kernel"}, 6),
    "optax_adam_nesterov_cosine": (
        "adam", {"learning_rate": {"peak": 0.01, "decay_type": "cosine", "warmup_steps": 2},
                 "nesterov": True}, 8),
    "optax_sgd": ("sgd", {"learning_rate": 0.1}, 6),
    "optax_sgd_nesterov": (
        "sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}, 6),
    "optax_lion": ("lion", {"learning_rate": 0.001, "b1": 0.95, "weight_decay": 0.01}, 6),
    "optax_lamb": ("lamb", {"learning_rate": 0.01, "weight_decay": 0.01, "mask": ".*/kernel"}, 6),
    "bv_adafactor": (
        "adafactor", {"learning_rate": 0.01, "weight_decay": 0.001, "clipping_threshold": 1.0},
        6),
}


def optax_optimizer(fn, kw, total):
  """The Optax chain of an OPTAX_CASES entry."""
  kw = dict(kw)
  lr = kw.pop("learning_rate")
  if isinstance(lr, dict):
    lr = dict(lr)
    lr = u.create_learning_rate_schedule(total_steps=total, base=lr.pop("peak"), **lr)
  if "mask" in kw:
    regex = u.check_and_compile_patterns([kw.pop("mask")])[0]
    kw["mask"] = lambda params: jax.tree_util.tree_map_with_path(
        lambda path, _: bool(regex.fullmatch(_path_str(path))), params)
  if fn == "adafactor":
    wd = kw.pop("weight_decay")
    return optax.chain(bv_optax.scale_by_adafactor(**kw), optax.add_decayed_weights(wd),
                       optax.scale_by_learning_rate(lr))
  return getattr(optax, fn)(lr, **kw)


def run_and_save(tx, params, grads, outdir, name):
  """Applies `tx` to `grads` step by step under jit; saves and returns params, updates and
  state."""
  opt = jax.jit(tx.init)(params)

  @jax.jit
  def step(params, opt, g):
    updates, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, updates), updates, opt

  saved = {"params": {}, "updates": {}, "opt_state": {}}
  for t, g in enumerate(grads, 1):
    params, updates, opt = step(params, opt, nest(g))
    saved["params"].update({f"step{t}/{k}": v for k, v in flat(params).items()})
    saved["updates"].update({f"step{t}/{k}": v for k, v in flat(updates).items()})
    if t in SAVED_STATE_STEPS:
      saved["opt_state"].update(state_arrays(opt, f"step{t}"))
  os.makedirs(os.path.join(outdir, name), exist_ok=True)
  for f, arrays in saved.items():
    np.savez(os.path.join(outdir, name, f"{f}.npz"), **arrays)
  return saved


def one_optax_case(name, fn, kw, total, params0, grads, outdir):
  run_and_save(optax_optimizer(fn, kw, total), nest(params0), grads, outdir, name)
  write_json(os.path.join(outdir, name, "meta.json"),
             {"optimizer": fn, "kwargs": kw, "total_steps": total})


def make_data():
  """default_rng(0): params normal(0, 1) per name (sorted), then per step t the gradient
  s_t * normal(0, 1) per name (sorted)."""
  r = np.random.default_rng(0)
  params = {k: r.normal(0, 1, SHAPES[k]).astype(np.float32) for k in sorted(SHAPES)}
  grads = [{k: (s * r.normal(0, 1, SHAPES[k])).astype(np.float32) for k in sorted(SHAPES)}
           for s in GRAD_SCALES]
  return params, grads


def nest(flat):
  out = {}
  for k, v in flat.items():
    a, b = k.split("/")
    out.setdefault(a, {})[b] = jnp.asarray(v)
  return out


def flat(tree):
  return {k: np.asarray(v) for k, v in u.tree_flatten_with_names(tree)[0]}


def _path_str(path):
  parts = []
  for p in path:
    if isinstance(p, jax.tree_util.SequenceKey):
      parts.append(str(p.idx))
    elif isinstance(p, jax.tree_util.GetAttrKey):
      parts.append(p.name)
    elif isinstance(p, jax.tree_util.DictKey):
      parts.append(str(p.key))
    else:
      raise ValueError(p)
  return "/".join(parts)


def state_arrays(opt, prefix):
  """Optax state leaves by path; bfloat16 stored as (exact) float32 with `@bf16`;
  masked-out leaves (optax.MaskedNode) are absent."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(opt)[0]:
    v = np.asarray(leaf)
    name = f"{prefix}/{_path_str(path)}"
    if v.dtype == jnp.bfloat16:
      out[name + "@bf16"] = v.astype(np.float32)
    else:
      out[name] = v
  return out


def schedule_formula(total, decay_type="stair", warmup_steps=0, cooldown_steps=0, **kw):
  """README's schedule formulas in float64."""
  def f(step):
    progress = min(max((step - warmup_steps) / (total - warmup_steps), 0.0), 1.0)
    if decay_type in ("linear", "polynomial"):
      end = kw.get("end", kw.get("linear_end", 0))
      lr = end + (1.0 - end) * (1 - progress) ** kw.get("power", 1)
    elif decay_type == "cosine":
      lr = 0.5 * (1 + np.cos(np.pi * progress))
    elif decay_type == "rsqrt":
      t, shift = kw.get("timescale", 10000), kw.get("shift", 0)
      lr = (1 / np.sqrt(1 + (step + shift - warmup_steps) / t) if step >= warmup_steps
            else 1 / np.sqrt(1 + shift / t))
    else:
      lr = [1.0, *kw.get("mults", [])][sum(s <= step for s in kw.get("steps", []))]
    if warmup_steps:
      lr *= min(1.0, step / warmup_steps)
    if cooldown_steps:
      lr *= min(1.0, (total - step) / cooldown_steps)
    return lr
  return f


def one_case(name, cfg, total, params0, grads, outdir):
  config = ml_collections.ConfigDict(cfg)
  sched_kw = {"total_steps": total, "batch_size": None, "data_size": None}
  params = nest(params0)
  tx, sched_fns = bv_optax.make(config, params, sched_kw=sched_kw)
  saved = run_and_save(tx, params, grads, outdir, name)

  schedule = config.get("schedule")
  if not isinstance(schedule, (list, tuple)):
    schedule = [(".*", schedule)]
  pattern_list = [p for p, _ in schedule]
  live = [(p, s) for p, s in schedule if s is not None]
  groups = {}
  for k in sorted(SHAPES):
    p = next(p for p in pattern_list if u.check_and_compile_patterns(p)[0].fullmatch(k))
    s = dict(schedule)[p]
    groups[k] = {"pattern": p, "frozen": s is None}
    if s is not None:
      groups[k]["schedule_index"] = [q for q, _ in live].index(p)
  n = len(grads)
  schedules = []
  for i, ((_, s), fn) in enumerate(zip(live, sched_fns)):
    mults = [float(m) for m in fn(jnp.arange(n))]
    s = dict(s)
    formula = schedule_formula(total, **s)
    schedules.append({
        "schedule_index": i, "config": s, "mult_per_update": mults,
        "formula_f64_max_abs_dev": max(abs(m - formula(t)) for t, m in enumerate(mults)),
    })
  dev, exact = numpy_optim.deviation(cfg, groups, schedules, params0, grads,
                                     saved["params"])
  meta = {"config": cfg, "sched_kw": sched_kw, "param_groups": groups,
          "schedules": schedules, "numpy_reference_max_abs_dev": dev,
          "numpy_reference_exact_fraction": exact}
  write_json(os.path.join(outdir, name, "meta.json"), meta)


def write_json(path, obj):
  with open(path, "w") as f:
    json.dump(obj, f, indent=1)
    f.write("\n")


def main():
  out = sys.argv[1] if len(sys.argv) > 1 else HERE
  os.makedirs(out, exist_ok=True)
  params0, grads = make_data()
  np.savez(os.path.join(out, "params_init.npz"), **params0)
  np.savez(os.path.join(out, "grads.npz"), **{
      f"step{t}/{k}": v for t, g in enumerate(grads, 1) for k, v in g.items()})
  write_json(os.path.join(out, "meta.json"), {
      "param_shapes": {k: list(v) for k, v in sorted(SHAPES.items())},
      "n_steps": len(grads),
      "data": "numpy default_rng(0): params_init = normal(0,1) per name in sorted order; "
              "then for step t=1..6 grads = s_t*normal(0,1) per name (sorted), "
              "s = [0.5,1,2,0.3,0.8,1.5]",
      "versions": {"jax": jax.__version__, "optax": optax.__version__},
  })
  for name, (cfg, total) in CASES.items():
    one_case(name, cfg, total, params0, grads, out)
  for name, (fn, kw, total) in OPTAX_CASES.items():
    one_optax_case(name, fn, kw, total, params0, grads, out)
  print("wrote", out)


if __name__ == "__main__":
  main()
