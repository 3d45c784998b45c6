"""Writes the distillation golden fixtures with big_vision's own code.

  PYTHONPATH=/path/to/big_vision /work/venv-tf/bin/python tests/golden/distill/make_distill.py [OUT]

OUT defaults to this directory. Needs JAX 0.10.2, Flax 0.12.8, Optax 0.2.8, TensorFlow 2.21
(big_vision's distance evaluator imports it) and big_vision at commit 0127fb6b on
PYTHONPATH. XLA:CPU, one device. Files: see README.md beside this script.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import functools  # pylint: disable=g-import-not-at-top

import big_vision.evaluators.proj.distill.distance as dd
import big_vision.models.vit as vit
import big_vision.optax as bv_optax
import big_vision.utils as u
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
import optax

import trainer_fn as tf_

# dd.dist cases: (name, kwargs).
DISTANCES = [
    ("euclidean", {"kind": "euclidean"}),
    ("l2", {"kind": "l2"}),
    ("hard", {"kind": "hard"}),
    ("hard_ls", {"kind": "hard", "ls": 0.1}),
    ("kl", {"kind": "kl"}),
    ("kl_t2", {"kind": "kl", "t": 2.0}),
    ("logsoftmax_euclidean", {"kind": "logsoftmax_euclidean"}),
    ("agree_k1", {"kind": "agree", "k": 1}),
    ("agree_k3", {"kind": "agree", "k": 3}),
]

BATCH = 4
STUDENT = dict(num_classes=10, width=16, depth=1, num_heads=2, mlp_dim=32,
               patch_size=(4, 4), pool_type="gap", head_zeroinit=False)
TEACHERS = {
    # `prof` reads the batch's `prof` images (24x24), as the deit3 config's teacher does.
    "prof": dict(num_classes=10, width=32, depth=1, num_heads=2, mlp_dim=64,
                 patch_size=(6, 6), pool_type="tok", head_zeroinit=False),
    # `t2` reads `image` (no `t2` key in the batch).
    "t2": dict(num_classes=10, width=24, depth=2, num_heads=2, mlp_dim=48,
               patch_size=(4, 4), pool_type="gap", head_zeroinit=False),
}
OPT = {"optax_name": "scale_by_adam", "optax": {"b1": 0.9, "b2": 0.999, "eps": 1e-8},
       "lr": 0.001, "wd": 0.0001, "grad_clip_norm": 1.0,
       "schedule": {"decay_type": "cosine", "warmup_steps": 1}}
TOTAL_STEPS = 10


def distances():
  r = np.random.default_rng(3)
  s = (r.normal(size=(6, 10)) * 2).astype(np.float32)
  t = (r.normal(size=(6, 10)) * 2).astype(np.float32)
  t[0] = s[0]  # Identical logits: every distance at its minimum.
  out = {"student": s, "teacher": t}
  for name, kw in DISTANCES:
    out[name] = np.asarray(jax.jit(functools.partial(dd.dist, **kw))(s, t))
  return out


def inputs():
  r = np.random.default_rng(13)
  image = r.uniform(-1, 1, (BATCH, 16, 16, 3)).astype(np.float32)
  prof = r.uniform(-1, 1, (BATCH, 24, 24, 3)).astype(np.float32)
  labels = r.integers(0, 10, (BATCH,)).astype(np.int32)
  return {"image": image, "prof": prof, "labels": labels,
          "labels_onehot": np.eye(10, dtype=np.float32)[labels]}


def steps(data):
  """distill.py's `update_fn` and `loss_fn` (jit), kl with t=2, mixup p=1."""
  config = ml_collections.ConfigDict({
      **OPT, "teachers": list(TEACHERS), "distance": "kl",
      "distance_kw": {"t": 2.0}, "mixup": {"p": 1.0}})
  models = {"student": vit.Model(**STUDENT),
            **{n: vit.Model(**kw) for n, kw in TEACHERS.items()}}
  hw = {"student": 16, "prof": 24, "t2": 16}
  rng = jax.random.PRNGKey(0)
  rng, *rng_inits = jax.random.split(rng, len(models) + 1)
  params = {n: jax.jit(lambda r, m=m, n=n: m.init(r, jnp.zeros((BATCH, hw[n], hw[n], 3)))
                       ["params"])(k) for (n, m), k in zip(models.items(), rng_inits)}
  _, rng_loop = jax.random.split(rng)
  tx, sched_fns = bv_optax.make(config, params["student"], sched_kw=dict(
      total_steps=TOTAL_STEPS, batch_size=BATCH, data_size=None))
  mesh = jax.sharding.Mesh(jax.devices()[:1], ("data",))
  mod = "big_vision.trainers.proj.distill.distill"
  env = dict(config=config, models=models, u=u, jnp=jnp, tx=tx, optax=optax,
             bv_optax=bv_optax, functools=functools, dd=dd,
             repl_sharding=NamedSharding(mesh, P()))
  env["getfirst"] = tf_.module_function(mod, "getfirst", env)
  fns = tf_.closures(mod, ["loss_fn", "update_fn"], env)
  files = {"params_init": tf_.flat(params["student"])}
  files.update({f"teacher_{n}": tf_.flat(params[n]) for n in TEACHERS})
  batch = {"image": data["image"], "prof": data["prof"], "labels": data["labels_onehot"]}

  # The loss and its gradient at init, without mixup, dropout keys from split(PRNGKey(1)).
  rngs = {n: {"dropout": k} for n, k in zip(models, jax.random.split(jax.random.PRNGKey(1), 3))}
  (l, m), g = jax.jit(jax.value_and_grad(fns["loss_fn"], has_aux=True))(
      params["student"], dict(params), batch, rngs)
  files["grads_init"] = {**tf_.flat(g), "loss": np.asarray(l)}
  init_measurements = {k: float(v) for k, v in m.items()}

  opt = jax.jit(tx.init)(params["student"])
  state = jax.tree.map(jnp.array, params)
  out = []
  for t in range(3):
    rng_t = jax.random.fold_in(rng_loop, t)
    state, opt, _, l, m = fns["update_fn"](state, opt, rng_t, dict(batch))
    out.append({"step": t + 1, "training_loss": float(l),
                "schedule_mult": float(sched_fns[0](t)),
                **{k: float(v) for k, v in m.items()}})
    if t + 1 in (1, 3):
      files[f"params_step{t + 1}"] = tf_.flat(state["student"])
  return files, out, init_measurements, tf_.key_data(rng_loop)


def main():
  out_dir = sys.argv[1] if len(sys.argv) > 1 else HERE
  os.makedirs(out_dir, exist_ok=True)
  data = inputs()
  files = {"distances": distances(), "inputs": data}
  f, step_list, init_m, rng_loop = steps(data)
  files.update(f)
  for name, arrays in files.items():
    np.savez(os.path.join(out_dir, f"{name}.npz"), **arrays)
  listify = lambda kw: {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}
  meta = {
      "distances": {n: kw for n, kw in DISTANCES},
      "student": {"module": "big_vision.models.vit.Model", **listify(STUDENT)},
      "teachers": {n: {"module": "big_vision.models.vit.Model", **listify(kw)}
                   for n, kw in TEACHERS.items()},
      "image_hw": {"student": 16, "prof": 24, "t2": 16},
      "batch": BATCH,
      "optimizer": {**OPT, "total_steps": TOTAL_STEPS},
      "distance": "kl", "distance_kw": {"t": 2.0}, "mixup": {"p": 1.0},
      "rng": {"inits": "rng, *rng_inits = split(PRNGKey(0), 4) (student, prof, t2)",
              "rng_loop": "_, rng_loop = split(rng)", "rng_loop_value": rng_loop,
              "step_rng": "fold_in(rng_loop, t), t = 0-based step, passed as update_fn's rng",
              "grads_init_dropout": "split(PRNGKey(1), 3) (student, prof, t2)"},
      "loss_init_measurements": init_m,
      "steps": step_list,
      "versions": tf_.versions(),
  }
  tf_.write_json(os.path.join(out_dir, "meta.json"), meta)
  print("wrote", out_dir)


if __name__ == "__main__":
  main()
