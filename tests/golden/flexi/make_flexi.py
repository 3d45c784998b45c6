"""Writes the FlexiViT golden fixtures with big_vision's own code.

  PYTHONPATH=/path/to/big_vision /work/venv-tf/bin/python tests/golden/flexi/make_flexi.py [OUT]

OUT defaults to this directory. Needs JAX 0.10.2, Flax 0.12.8, Optax 0.2.8, TensorFlow 2.21
(big_vision's `resample_patchemb` resizes with `tf.image.resize`) and big_vision at commit
0127fb6b on PYTHONPATH. XLA:CPU, one device. Files: see README.md beside this script.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import functools  # pylint: disable=g-import-not-at-top

import big_vision.evaluators.proj.distill.distance as dd
import big_vision.models.proj.flexi.vit as flexi_vit
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

# The model: 24x24 images, native patch 6 (a 4x4 grid), posemb learned on a 3x3 grid.
# seqhw 2, 3, 4, 6 use patch 12 (kernel upsampled), 8 (upsampled, posemb at its own
# size), 6 (native kernel, posemb upsampled) and 4 (kernel downsampled, posemb
# upsampled); seqhw 2 downsamples the posemb (antialiased).
MODEL = dict(num_classes=10, width=32, depth=2, num_heads=2, mlp_dim=64,
             patch_size=(6, 6), posemb_size=(3, 3), pool_type="tok",
             head_zeroinit=False)
HW, BATCH, SEQHWS = (24, 24), 4, (2, 3, 4, 6)
# The seqhw of each training step (big_vision samples them on the host; fixed here).
STEP_SEQHW = (2, 6, 3)
ADAM = {"optax_name": "scale_by_adam", "optax": {"b1": 0.9, "b2": 0.999, "eps": 1e-8},
        "lr": 0.001, "wd": 0.0001, "grad_clip_norm": 1.0,
        "schedule": {"decay_type": "cosine", "warmup_steps": 1}}
TOTAL_STEPS = 10

# PI-resize cases: (old kernel hw, new hw), kernels (h, w, 3, 4).
RESAMPLE = [((8, 8), (4, 4)), ((8, 8), (16, 16)), ((6, 6), (5, 9)), ((4, 4), (7, 7)),
            ((4, 4), (14, 14)), ((7, 7), (4, 4)), ((7, 7), (14, 14)), ((14, 14), (4, 4)),
            ((7, 7), (2, 2)), ((3, 5), (6, 10))]
# jax.image.resize(..., "linear") cases of a (1, 7, 7, 5) posemb grid.
POSEMB = [(2, 2), (4, 4), (5, 9), (14, 14), (7, 3)]

# The teacher of the FlexiViT distillation case: a plain ViT on 12x12 `prof` images.
TEACHER = dict(num_classes=10, width=16, depth=1, num_heads=2, mlp_dim=32,
               patch_size=(3, 3), pool_type="gap", head_zeroinit=False)


def inputs(seed):
  r = np.random.default_rng(seed)
  image = r.uniform(-1, 1, (BATCH, *HW, 3)).astype(np.float32)
  prof = r.uniform(-1, 1, (BATCH, 12, 12, 3)).astype(np.float32)
  labels = r.integers(0, 10, (BATCH,)).astype(np.int32)
  return {"image": image, "prof": prof, "labels": labels,
          "labels_onehot": np.eye(10, dtype=np.float32)[labels]}


def resample_cases():
  r = np.random.default_rng(5)
  out = {}
  for i, (old, new) in enumerate(RESAMPLE):
    k = r.normal(size=(*old, 3, 4)).astype(np.float32)
    out[f"{i}/old"] = k
    out[f"{i}/new"] = np.asarray(flexi_vit.resample_patchemb(old=jnp.asarray(k), new_hw=new))
  pe = r.normal(size=(1, 7, 7, 5)).astype(np.float32)
  out["posemb/old"] = pe
  for h, w in POSEMB:
    out[f"posemb/{h}x{w}"] = np.asarray(jax.image.resize(jnp.asarray(pe), (1, h, w, 5), "linear"))
  return out


def forward_entries(out):
  keep = ("stem", "with_posemb", "encoded", "head_input", "pre_logits", "logits")
  return {f"out/{k}": np.asarray(out[k]) for k in keep}


def model_files(model, params, data):
  files = {}
  for s in SEQHWS:
    @jax.jit
    def fwd(p, s=s):
      return model.apply({"params": p}, data["image"], seqhw=s)

    def loss(p, s=s):
      logits, _ = model.apply({"params": p}, data["image"], seqhw=s, train=True)
      return u.softmax_xent(logits=logits, labels=data["labels_onehot"])

    _, out = fwd(params)
    files[f"forward_seqhw{s}"] = forward_entries(out)
    l, g = jax.jit(jax.value_and_grad(loss))(params)
    files[f"grads_seqhw{s}"] = {**tf_.flat(g), "loss": np.asarray(l)}
  return files


def config_of(extra):
  c = ml_collections.ConfigDict({**ADAM, **extra})
  return c


def train_steps(model, params, data, rng_loop):
  """flexi/train.py's `update_fn` (pmap over one device), STEP_SEQHW, mixup p=0.5."""
  config = config_of({"loss": "softmax_xent", "mixup": {"p": 0.5},
                      "flexi": {"seqhw": {"v": SEQHWS, "p": (1, 1, 1, 1)}}})
  sched_kw = dict(total_steps=TOTAL_STEPS, batch_size=BATCH, data_size=None)
  tx, sched_fns = bv_optax.make(config, params, sched_kw=sched_kw)
  env = dict(config=config, model=model, u=u, jnp=jnp, tx=tx, optax=optax,
             bv_optax=bv_optax, functools=functools,
             flexi_argnames=sorted(config.flexi))
  update_fn = tf_.closures("big_vision.trainers.proj.flexi.train", ["update_fn"],
                           env)["update_fn"]
  rep = flax.jax_utils.replicate
  p, o = rep(params), rep(jax.jit(tx.init)(params))
  x, y = rep(data["image"]), rep(data["labels_onehot"])
  steps, files = [], {}
  for t, s in enumerate(STEP_SEQHW):
    rng = rep(jax.random.fold_in(rng_loop, t))
    p, o, _, l, m = update_fn(p, o, rng, x, y, s)
    m = {k: float(v[0]) for k, v in m.items()}
    steps.append({"step": t + 1, "seqhw": s, "training_loss": float(l[0]),
                  "schedule_mult": float(sched_fns[0](t)), **m})
    if t + 1 in (1, 3):
      files[f"train_params_step{t + 1}"] = tf_.flat(tf_.unreplicate(p))
  return steps, files


def distill_steps(student, params, data, rng_loop):
  """flexi/distill.py's `update_fn` and `loss_fn`: teacher `prof` (a ViT on the batch's
  `prof` images), kl with t=2, mixup p=1 over image, labels and prof."""
  teacher = vit.Model(**TEACHER)
  tparams = jax.jit(lambda r: teacher.init(r, jnp.zeros((BATCH, 12, 12, 3)))["params"])(
      jax.random.PRNGKey(7))
  config = config_of({"teachers": ["prof"], "distance": "kl", "distance_kw": {"t": 2.0},
                      "mixup": {"p": 1.0},
                      "flexi": {"seqhw": {"v": SEQHWS, "p": (1, 1, 1, 1)}}})
  models = {"student": student, "prof": teacher}
  sched_kw = dict(total_steps=TOTAL_STEPS, batch_size=BATCH, data_size=None)
  tx, _ = bv_optax.make(config, params, sched_kw=sched_kw)
  mod = "big_vision.trainers.proj.flexi.distill"
  env = dict(config=config, models=models, u=u, jnp=jnp, tx=tx, optax=optax,
             bv_optax=bv_optax, functools=functools, dd=dd,
             flexi_argnames=sorted(config.flexi))
  env["getfirst"] = tf_.module_function(mod, "getfirst", env)
  fns = tf_.closures(mod, ["loss_fn", "update_fn"], env)
  rep = flax.jax_utils.replicate
  state = rep({"student": params, "prof": tparams})
  o = rep(jax.jit(tx.init)(params))
  batch = rep({"image": data["image"], "prof": data["prof"],
               "labels": data["labels_onehot"]})
  steps, files = [], {"distill_teacher": tf_.flat(tparams)}
  for t, s in enumerate(STEP_SEQHW):
    rng = rep(jax.random.fold_in(rng_loop, t))
    state, o, _, l, m = fns["update_fn"](state, o, rng, batch, s)
    m = {k: float(v[0]) for k, v in m.items()}
    steps.append({"step": t + 1, "seqhw": s, "training_loss": float(l[0]), **m})
    if t + 1 in (1, 3):
      files[f"distill_params_step{t + 1}"] = tf_.flat(tf_.unreplicate(state["student"]))
  return steps, files


def main():
  out_dir = sys.argv[1] if len(sys.argv) > 1 else HERE
  os.makedirs(out_dir, exist_ok=True)
  data = inputs(11)
  model = flexi_vit.Model(**MODEL)
  rng = jax.random.PRNGKey(0)
  rng, rng_init = jax.random.split(rng)
  params = jax.jit(lambda r: model.init(r, jnp.zeros((BATCH, *HW, 3)))["params"])(rng_init)
  _, rng_loop = jax.random.split(rng)

  files = {"resample": resample_cases(), "inputs": data, "params_init": tf_.flat(params)}
  files.update(model_files(model, params, data))
  train, f = train_steps(model, params, data, rng_loop)
  files.update(f)
  distill, f = distill_steps(model, params, data, rng_loop)
  files.update(f)
  for name, arrays in files.items():
    np.savez(os.path.join(out_dir, f"{name}.npz"), **arrays)
  meta = {
      "model": {"module": "big_vision.models.proj.flexi.vit.Model", **MODEL,
                "patch_size": list(MODEL["patch_size"]),
                "posemb_size": list(MODEL["posemb_size"])},
      "image_hw": list(HW), "batch": BATCH, "seqhws": list(SEQHWS),
      "resample_cases": [[list(o), list(n)] for o, n in RESAMPLE],
      "posemb_cases": [list(c) for c in POSEMB],
      "optimizer": {**ADAM, "total_steps": TOTAL_STEPS},
      "rng": {"rng_init": "rng, rng_init = split(PRNGKey(0))",
              "rng_loop": "_, rng_loop = split(rng)",
              "rng_loop_value": tf_.key_data(rng_loop),
              "step_rng": "fold_in(rng_loop, t), t = 0-based step, passed as update_fn's rng"},
      "train": {"trainer": "big_vision.trainers.proj.flexi.train update_fn (pmap, 1 device)",
                "loss": "softmax_xent", "mixup": {"p": 0.5}, "steps": train},
      "distill": {"trainer": "big_vision.trainers.proj.flexi.distill update_fn (pmap, 1 device)",
                  "teacher": {"name": "prof", "module": "big_vision.models.vit.Model",
                              **TEACHER, "patch_size": list(TEACHER["patch_size"]),
                              "init": "init(PRNGKey(7), zeros(4, 12, 12, 3))",
                              "image_key": "prof"},
                  "distance": "kl", "distance_kw": {"t": 2.0}, "mixup": {"p": 1.0},
                  "steps": distill},
      "versions": tf_.versions(),
  }
  tf_.write_json(os.path.join(out_dir, "meta.json"), meta)
  print("wrote", out_dir)


if __name__ == "__main__":
  main()
