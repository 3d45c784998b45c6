"""The Fashion-MNIST jobs of configs/proj/{distill,flexivit,gsam} in JAX with big_vision's own
code, for docs/benchmarks.md: big_vision's models (`vit`, `proj.flexi.vit`), optimizer chain
(`big_vision.optax.make`) and trainer steps (the `update_fn` of `train.py`,
`trainers/proj/distill/distill.py`, `trainers/proj/flexi/train.py` and
`trainers/proj/gsam/train.py`, taken from their source and run as written by
tests/golden/trainer_fn.py). The input is numpy in memory from the IDX files of Debian's
dataset-fashion-mnist (no tf.data), so this times the model, loss and optimizer.

  PYTHONPATH=/path/to/big_vision python benches/jax/proj_fashion_mnist.py MODE [TEACHER.npz [MIXUP_P]]

MODE: student (the half-width ViT on labels), distill (the same student from TEACHER, the
default job's parameters as bv-train export writes them), flexi (patch sizes 4, 7, 14), gsam
(the default job's ViT with GSAM, 4 epochs). Environment: SEED (default 0) seeds the
initialization, the shuffle and the step keys, as the configs' `seed`; EPOCHS replaces the
mode's number of epochs, as `--set total_epochs=N`. Needs JAX, Flax, Optax, TensorFlow
(big_vision's FlexiViT and distance modules import it) and big_vision on PYTHONPATH. Prints
one JSON object: seed, wall_s (process start to final eval), test accuracy (per patch size
for flexi), final loss.
"""
import functools
import gzip
import json
import os
import sys
import time

T0 = time.time()

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/golden"))

import big_vision.evaluators.proj.distill.distance as dd  # noqa: E402
import big_vision.models.proj.flexi.vit as flexi_vit  # noqa: E402
import big_vision.models.vit as vit  # noqa: E402
import big_vision.optax as bv_optax  # noqa: E402
import big_vision.trainers.proj.flexi.common as flexi  # noqa: E402
import big_vision.utils as u  # noqa: E402
import flax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import trainer_fn  # noqa: E402

IDX = "/usr/share/datasets/fashion-mnist"
BATCH = 128
DEFAULT = dict(num_classes=10, patch_size=(4, 4), width=64, depth=4, mlp_dim=128, num_heads=4,
               pool_type="gap", posemb="learn")
STUDENT = {**DEFAULT, "width": 32, "mlp_dim": 64}
OPT = dict(optax_name="scale_by_adam", optax={}, lr=0.003, wd=1e-4, grad_clip_norm=1.0,
           schedule=dict(decay_type="cosine", warmup_steps=100), loss="softmax_xent")
SEQHW, SEQHW_P = (7, 4, 2), (0.6, 0.3, 0.1)
SEED = int(os.environ.get("SEED", "0"))


def idx(name, offset):
  with gzip.open(f"{IDX}/{name}", "rb") as f:
    return np.frombuffer(f.read(), np.uint8, offset=offset)


def data():
  xtr = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
  ytr = idx("train-labels-idx1-ubyte.gz", 8)
  xte = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
  yte = idx("t10k-labels-idx1-ubyte.gz", 8)
  return xtr, ytr, xte, yte


def batches(xtr, ytr, epochs):
  rng = np.random.default_rng(SEED)
  order = np.concatenate([rng.permutation(len(xtr)) for _ in range(epochs + 1)])
  for s in range(len(xtr) * epochs // BATCH):
    i = order[s * BATCH:(s + 1) * BATCH]
    yield s, xtr[i].astype(np.float32) / 127.5 - 1.0, np.eye(10, dtype=np.float32)[ytr[i]]


def accuracy(predict, xte, yte):
  correct = 0
  for b in range(0, len(xte), 500):
    x = xte[b:b + 500].astype(np.float32) / 127.5 - 1.0
    correct += int(np.sum(np.asarray(predict(x)) == yte[b:b + 500]))
  return correct / len(xte)


def setup(model_kw, epochs, extra, model_mod=vit):
  model = model_mod.Model(**model_kw)
  config = ml_collections.ConfigDict({**OPT, **extra})
  steps = 60000 * epochs // BATCH
  rng = jax.random.PRNGKey(SEED)
  rng, rng_init = jax.random.split(rng)
  params = jax.jit(lambda r: model.init(r, jnp.zeros((BATCH, 28, 28, 1)))["params"])(rng_init)
  tx, _ = bv_optax.make(config, params, sched_kw=dict(
      total_steps=steps, batch_size=BATCH, data_size=60000))
  _, rng_loop = jax.random.split(rng)
  env = dict(config=config, model=model, u=u, jnp=jnp, tx=tx, optax=optax, bv_optax=bv_optax,
             functools=functools, flax=flax)
  return model, config, params, tx, rng_loop, env


def run_train_py(model_kw, epochs):
  """big_vision/train.py's update_fn."""
  model, config, params, tx, rng_loop, env = setup(model_kw, epochs, {})
  repl = NamedSharding(jax.sharding.Mesh(jax.devices()[:1], ("data",)), P())
  env.update(train_state_sharding=repl, repl_sharding=repl)
  update_fn = trainer_fn.closures("big_vision.train", ["update_fn"], env)["update_fn"]
  xtr, ytr, xte, yte = data()
  state = {"params": params, "opt": jax.jit(tx.init)(params)}
  for _, x, y in batches(xtr, ytr, epochs):
    state, m = update_fn(state, rng_loop, {"image": x, "labels": y})
  predict = jax.jit(lambda x: jnp.argmax(model.apply({"params": state["params"]}, x)[0], -1))
  return {"test_accuracy": accuracy(predict, xte, yte), "final_loss": float(m["training_loss"])}


def run_distill(teacher_npz, mixup_p, epochs=7):
  """trainers/proj/distill/distill.py's update_fn: teacher `prof` = the default job's ViT."""
  extra = {"teachers": ["prof"], "distance": "kl", "distance_kw": {"t": 1.0}}
  if mixup_p:
    extra["mixup"] = {"p": mixup_p}
  student, config, params, tx, rng_loop, env = setup(STUDENT, epochs, extra)
  teacher = vit.Model(**DEFAULT)
  tinit = jax.jit(lambda r: teacher.init(r, jnp.zeros((BATCH, 28, 28, 1)))["params"])(
      jax.random.PRNGKey(1))
  tparams = vit.load(tinit, teacher_npz, ml_collections.ConfigDict(DEFAULT))
  mesh = jax.sharding.Mesh(jax.devices()[:1], ("data",))
  env.update(models={"student": student, "prof": teacher}, dd=dd,
             repl_sharding=NamedSharding(mesh, P()))
  mod = "big_vision.trainers.proj.distill.distill"
  env["getfirst"] = trainer_fn.module_function(mod, "getfirst", env)
  fns = trainer_fn.closures(mod, ["loss_fn", "update_fn"], env)
  xtr, ytr, xte, yte = data()
  state, opt = {"student": params, "prof": tparams}, jax.jit(tx.init)(params)
  for s, x, y in batches(xtr, ytr, epochs):
    state, opt, _, loss, _ = fns["update_fn"](state, opt, jax.random.fold_in(rng_loop, s),
                                              {"image": x, "labels": y})
  predict = jax.jit(lambda x: jnp.argmax(student.apply({"params": state["student"]}, x)[0], -1))
  tpredict = jax.jit(lambda x: jnp.argmax(teacher.apply({"params": state["prof"]}, x)[0], -1))
  return {"test_accuracy": accuracy(predict, xte, yte),
          "teacher_accuracy": accuracy(tpredict, xte, yte), "final_loss": float(loss)}


def run_flexi(epochs=9):
  """trainers/proj/flexi/train.py's update_fn, seqhw drawn as big_vision draws it."""
  kw = {**DEFAULT, "posemb_size": (7, 7)}
  extra = {"flexi": {"seqhw": {"v": SEQHW, "p": SEQHW_P}}}
  model, config, params, tx, rng_loop, env = setup(kw, epochs, extra, flexi_vit)
  env["flexi_argnames"] = ["seqhw"]
  update_fn = trainer_fn.closures("big_vision.trainers.proj.flexi.train", ["update_fn"],
                                  env)["update_fn"]
  xtr, ytr, xte, yte = data()
  rep = flax.jax_utils.replicate
  p, o = rep(params), rep(jax.jit(tx.init)(params))
  for s, x, y in batches(xtr, ytr, epochs):
    seqhw = flexi.choice(SEQHW, SEQHW_P, flexi.mkrng(-1, -1, s + 1))
    p, o, _, loss, _ = update_fn(p, o, rep(jax.random.fold_in(rng_loop, s)), x[None], y[None],
                                 int(seqhw))
  final = jax.tree.map(lambda a: a[0], p)
  out = {"final_loss": float(loss[0])}
  for seqhw in SEQHW:
    predict = jax.jit(lambda x, s=seqhw: jnp.argmax(
        model.apply({"params": final}, x, seqhw=s)[0], -1))
    out[f"test_accuracy_patch{28 // seqhw}"] = accuracy(predict, xte, yte)
  return out


def run_gsam(epochs=4):
  """trainers/proj/gsam/train.py's update_fn on the default job's ViT."""
  extra = {"gsam": dict(rho_max=0.05, rho_min=0.005, alpha=0.1, lr_max=0.003, lr_min=0.0)}
  model, config, params, tx, rng_loop, env = setup(DEFAULT, epochs, extra)
  steps = 60000 * epochs // BATCH
  _, sched_fns = bv_optax.make(config, params, sched_kw=dict(
      total_steps=steps, batch_size=BATCH, data_size=60000))
  gsam = "big_vision.trainers.proj.gsam.gsam"
  genv = {"jnp": jnp}
  genv["dual_vector"] = trainer_fn.module_function(gsam, "dual_vector", genv)
  env.update(partial=functools.partial, sched_fns=sched_fns,
             gsam_gradient=trainer_fn.module_function(gsam, "gsam_gradient", genv))
  update_fn = trainer_fn.closures("big_vision.trainers.proj.gsam.train", ["update_fn"],
                                  env)["update_fn"]
  xtr, ytr, xte, yte = data()
  rep = flax.jax_utils.replicate
  p, o = rep(params), rep(jax.jit(tx.init)(params))
  for s, x, y in batches(xtr, ytr, epochs):
    p, o, _, loss, _ = update_fn(p, o, rep(jax.random.fold_in(rng_loop, s)), x[None], y[None],
                                 rep(s + 1))
  final = jax.tree.map(lambda a: a[0], p)
  predict = jax.jit(lambda x: jnp.argmax(model.apply({"params": final}, x)[0], -1))
  return {"test_accuracy": accuracy(predict, xte, yte), "final_loss": float(loss[0])}


def main():
  mode = sys.argv[1]
  epochs = {"epochs": int(os.environ["EPOCHS"])} if "EPOCHS" in os.environ else {}
  if mode == "student":
    out = run_train_py(STUDENT, epochs.get("epochs", 7))
  elif mode == "distill":
    out = run_distill(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.0, **epochs)
  elif mode == "flexi":
    out = run_flexi(**epochs)
  elif mode == "gsam":
    out = run_gsam(**epochs)
  else:
    raise SystemExit(f"unknown mode {mode!r}: student, distill, flexi or gsam")
  print(json.dumps({"mode": mode, "seed": SEED, "wall_s": time.time() - T0, **out}))


if __name__ == "__main__":
  main()
