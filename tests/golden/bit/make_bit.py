"""Writes the BiT golden fixtures (`bit/`, `bit_paper/`, `bit_units2/`) with big_vision's code.

  PYTHONPATH=/path/to/big_vision /path/to/venv-jax/bin/python tests/golden/bit/make_bit.py \
      [OUT [CASE ...]]

OUT defaults to this directory, CASE to all three. Needs JAX 0.10.2, Flax 0.12.8, Optax 0.2.8 and big_vision
at commit 0127fb6b on PYTHONPATH (the versions the fixtures were made with; XLA:CPU).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import flax.linen as nn  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np

import train_case as tc

MOMENTUM_HP = {"optax_name": "big_vision.momentum_hp", "optax": {"momentum": 0.9},
               "lr": 0.03, "wd": 0.0001, "grad_clip_norm": 1.0,
               "schedule": {"decay_type": "cosine"}}
ADAM = {"optax_name": "scale_by_adam", "optax": {"b1": 0.9, "b2": 0.999, "eps": 1e-08},
        "lr": 0.001, "wd": 0.0001, "grad_clip_norm": 1.0,
        "schedule": {"decay_type": "cosine"}}
COMMON = {"image_hw": [32, 32], "batch": 4, "total_steps": 10}

CASES = [
    dict(fixture="bit", model="bit",
         model_kwargs={"num_classes": 10, "width": 0.5, "depth": [1, 1]},
         loss="softmax_xent", optimizer=MOMENTUM_HP, seed=0, data_seed=22, **COMMON),
    dict(fixture="bit_paper", model="bit_paper",
         model_kwargs={"num_classes": 10, "width": 0.5, "depth": [1, 1],
                       "head_zeroinit": False},
         loss="sigmoid_xent", optimizer=ADAM, seed=1, data_seed=33, **COMMON),
    # Two units per stage: unit2 is an identity-residual unit whose gn3 scale and bias
    # start at 0 and stay 0 through step 1 (zero head => zero body gradients), so at
    # params_step1 its final relu sees exact zeros, where JAX's relu'(0) = 0 matters:
    # `grads_step1` (the gradient step 2 uses) checks that directly.
    dict(fixture="bit_units2", model="bit",
         model_kwargs={"num_classes": 10, "width": 0.5, "depth": [2, 2]},
         loss="softmax_xent", optimizer=MOMENTUM_HP, seed=0, data_seed=22,
         grads_steps=(1, 3), **COMMON),
]


def relu_grad_at_zero_effect(case, res):
  """How far each saved file moves if relu'(0) were 1 instead of JAX's 0 (same run with
  `nn.relu` replaced by `where(x >= 0, x, 0)`)."""
  orig = nn.relu
  nn.relu = lambda x: jnp.where(x >= 0, x, 0)
  try:
    alt = tc.run(case)
  finally:
    nn.relu = orig
  effect = {"what": "max |stored - the same run with relu'(0) = 1| per file, and where"}
  for name in ("params_step1", "grads_step1", "params_step3", "grads_step3"):
    a, b = tc.flat(res[name]), tc.flat(alt[name])
    diff = {k: float(np.max(np.abs(a[k] - b[k]))) for k in a}
    at = max(diff, key=diff.get)
    effect[name] = {"max_abs_diff": diff[at], "at": at,
                    "max_abs_there": float(np.max(np.abs(a[at])))}
  return effect


def main():
  out = sys.argv[1] if len(sys.argv) > 1 else HERE
  names = sys.argv[2:] or [c["fixture"] for c in CASES]
  for case in [c for c in CASES if c["fixture"] in names]:
    outdir = os.path.join(out, case["fixture"])
    res = tc.write_case(case, outdir)
    if case["fixture"] == "bit_units2":
      meta = tc.read_json(os.path.join(outdir, "meta.json"))
      meta["relu_grad_at_zero"] = relu_grad_at_zero_effect(case, res)
      tc.write_json(os.path.join(outdir, "meta.json"), meta)
    print("wrote", outdir)


if __name__ == "__main__":
  main()
