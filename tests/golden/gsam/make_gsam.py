"""Writes the GSAM / SAM golden fixtures with big_vision's own code.

  PYTHONPATH=/path/to/big_vision /work/venv-tf/bin/python tests/golden/gsam/make_gsam.py [OUT]

OUT defaults to this directory. Needs JAX 0.10.2, Flax 0.12.8, Optax 0.2.8 and big_vision at
commit 0127fb6b on PYTHONPATH (TensorFlow only as the other sets' scripts: not used here).
XLA:CPU, one device. Files: see README.md beside this script.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from functools import partial  # pylint: disable=g-import-not-at-top

import big_vision.models.vit as vit
import big_vision.optax as bv_optax
import big_vision.utils as u
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

import trainer_fn as tf_

BATCH = 4
MODEL = dict(num_classes=10, width=16, depth=1, num_heads=2, mlp_dim=32,
             patch_size=(4, 4), pool_type="gap", head_zeroinit=False)
LR = 0.003
OPT = {"optax_name": "scale_by_adam", "optax": {"mu_dtype": "float32"}, "lr": LR,
       "wd": 0.001, "grad_clip_norm": 1.0, "loss": "sigmoid_xent",
       "schedule": {"warmup_steps": 2, "decay_type": "linear", "linear_end": 0.01}}
TOTAL_STEPS = 10
# gsam.py's functions call `jax.tree_map`, removed from JAX since: run them with
# trainer_fn's `jax` (the same functions, text unchanged).
_GSAM = "big_vision.trainers.proj.gsam.gsam"
_ENV = {"jnp": jnp}
_ENV["dual_vector"] = tf_.module_function(_GSAM, "dual_vector", _ENV)
gsam_gradient = tf_.module_function(_GSAM, "gsam_gradient", _ENV)

CASES = {
    # vit_i1k_gsam_no_aug.py's gsam block.
    "gsam": dict(rho_max=0.6, rho_min=0.1, alpha=0.6, lr_max=LR, lr_min=0.01 * LR),
    # SAM (alpha 0, one rho) with the other two switches flipped.
    "sam": dict(rho_max=0.05, rho_min=0.05, alpha=0.0, lr_max=LR, lr_min=0.01 * LR,
                adaptive_perturbation=True, minimize_fp=False),
}


def inputs():
  r = np.random.default_rng(17)
  image = r.uniform(-1, 1, (BATCH, 16, 16, 3)).astype(np.float32)
  labels = r.integers(0, 10, (BATCH,)).astype(np.int32)
  return {"image": image, "labels": labels,
          "labels_onehot": np.eye(10, dtype=np.float32)[labels]}


def run(name, gsam, data, out_dir):
  config = ml_collections.ConfigDict({**OPT, "gsam": gsam})
  model = vit.Model(**MODEL)
  rng = jax.random.PRNGKey(0)
  rng, rng_init = jax.random.split(rng)
  params = jax.jit(lambda r: model.init(r, jnp.zeros((BATCH, 16, 16, 3)))["params"])(rng_init)
  _, rng_loop = jax.random.split(rng)
  tx, sched_fns = bv_optax.make(config, params, sched_kw=dict(
      total_steps=TOTAL_STEPS, batch_size=BATCH, data_size=None))
  env = dict(config=config, model=model, u=u, jnp=jnp, tx=tx, optax=optax,
             bv_optax=bv_optax, partial=partial, flax=flax, sched_fns=sched_fns,
             gsam_gradient=gsam_gradient)
  update_fn = tf_.closures("big_vision.trainers.proj.gsam.train", ["update_fn"],
                           env)["update_fn"]

  # gsam_gradient at init with the step-1 learning rate, outside the trainer.
  def loss_fn(p, images, labels):
    logits, _ = model.apply({"params": flax.core.freeze(p)}, images, train=True)
    return u.sigmoid_xent(logits=logits, labels=labels)
  lr1 = sched_fns[0](1) * LR
  l0, g0 = jax.jit(lambda p: gsam_gradient(
      loss_fn=loss_fn, params=p, inputs=data["image"], targets=data["labels_onehot"],
      lr=lr1, **gsam))(params)
  files = {"params_init": tf_.flat(params), "grads_init": {**tf_.flat(g0), "loss": np.asarray(l0)}}

  rep = flax.jax_utils.replicate
  p, o = rep(params), rep(jax.jit(tx.init)(params))
  x, y = rep(data["image"]), rep(data["labels_onehot"])
  steps = []
  for t in range(3):
    rng_t = rep(jax.random.fold_in(rng_loop, t))
    p, o, _, l, m = update_fn(p, o, rng_t, x, y, rep(t + 1))
    steps.append({"step": t + 1, "training_loss": float(l[0]),
                  "schedule_mult": float(sched_fns[0](t)),
                  "gsam_lr": float(sched_fns[0](t + 1) * LR),
                  **{k: float(v[0]) for k, v in m.items()}})
    if t + 1 in (1, 3):
      files[f"params_step{t + 1}"] = tf_.flat(tf_.unreplicate(p))
  d = os.path.join(out_dir, name)
  os.makedirs(d, exist_ok=True)
  for fname, arrays in files.items():
    np.savez(os.path.join(d, f"{fname}.npz"), **arrays)
  meta = {"model": {"module": "big_vision.models.vit.Model", **MODEL,
                    "patch_size": list(MODEL["patch_size"])},
          "image_hw": [16, 16], "batch": BATCH, "optimizer": {**OPT, "total_steps": TOTAL_STEPS},
          "gsam": gsam, "grads_init_lr": float(lr1),
          "rng": {"rng_loop_value": tf_.key_data(rng_loop),
                  "step_rng": "fold_in(rng_loop, t), t = 0-based step, passed as update_fn's rng"},
          "step_arg": "update_fn's `step` is the 1-based loop step (t + 1), as gsam/train.py passes it",
          "steps": steps, "versions": tf_.versions()}
  tf_.write_json(os.path.join(d, "meta.json"), meta)


def main():
  out_dir = sys.argv[1] if len(sys.argv) > 1 else HERE
  data = inputs()
  os.makedirs(out_dir, exist_ok=True)
  np.savez(os.path.join(out_dir, "inputs.npz"), **data)
  for name, gsam in CASES.items():
    run(name, gsam, data, out_dir)
  print("wrote", out_dir)


if __name__ == "__main__":
  main()
