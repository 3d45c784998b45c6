"""One image model trained a few steps by big_vision's own code: the fixture writer shared
by `bit/make_bit.py` and `mixer/make_mixer.py`.

Run with JAX 0.10.2 / Flax 0.12.8 / Optax 0.2.8 and big_vision (commit 0127fb6b) on
PYTHONPATH. A case is a dict: `fixture`, `model` (module name under big_vision.models),
`model_kwargs`, `image_hw`, `batch`, `loss`, `optimizer` (big_vision config keys),
`total_steps`, `seed`, `data_seed`, optionally `grads_steps` (the saved steps whose
gradients are written too; default the last). `write_case` writes every file a test reads
(see each set's README.md for the formats).
"""

import hashlib
import importlib
import json
import os

from bv_stub_tf import import_big_vision_utils
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

u = import_big_vision_utils()
import big_vision.optax as bv_optax  # pylint: disable=g-import-not-at-top

SAVED_STEPS = (1, 3)


def flat(tree):
  """{big_vision checkpoint name: np.ndarray} in jax's leaf order."""
  return {k: np.asarray(v) for k, v in u.tree_flatten_with_names(tree)[0]}


def read_json(path):
  with open(path) as f:
    return json.load(f)


def write_json(path, obj):
  with open(path, "w") as f:
    json.dump(obj, f, indent=1)
    f.write("\n")


def key_data(key):
  """A raw `PRNGKey` (uint32[2]) as a JSON list."""
  return [int(x) for x in np.asarray(key)]


def make_inputs(data_seed, batch, hw, num_classes):
  """`default_rng(data_seed)`: image uniform [-1, 1), then labels."""
  r = np.random.default_rng(data_seed)
  image = r.uniform(-1, 1, (batch, *hw, 3)).astype(np.float32)
  labels = r.integers(0, num_classes, (batch,)).astype(np.int32)
  onehot = np.eye(num_classes, dtype=np.float32)[labels]
  return {"image": image, "labels": labels, "labels_onehot": onehot}


def out_entries(out, prefix="out"):
  """The model's `out` dict flattened as `out/<name>` (nested names joined by `/`), in
  insertion order."""
  res = {}
  for k, v in out.items():
    if isinstance(v, dict):
      res.update(out_entries(v, f"{prefix}/{k}"))
    else:
      res[f"{prefix}/{k}"] = v
  return res


# --- Flax's per-parameter key derivation (the flax_init set's README) -------------------


def _fold_in_static(key, items):
  m = hashlib.sha1()
  for x in items:
    m.update(x.encode() if isinstance(x, str)
             else x.to_bytes((x.bit_length() + 7) // 8, "big"))
  return jax.random.fold_in(key, int.from_bytes(m.digest()[:4], "big"))


def init_derivation_reproduced(model, rng_init, x, params):
  """Re-runs every parameter's initializer on its derived key; counts bitwise matches.

  Captures (scope path, counter, init_fn, args) of each `param` call by intercepting
  `Scope.param`, then calls `init_fn(fold_in_static(rng_init, path + (counter,)), *args)`.
  """
  calls = []
  counters = {}
  orig = flax.core.scope.Scope.param

  def param(self, name, init_fn, *args, **kw):
    if not self.has_variable("params", name):
      path = tuple(self.path)
      counters[path] = counters.get(path, 0) + 1
      calls.append((path, name, counters[path], init_fn, args))
    return orig(self, name, init_fn, *args, **kw)

  flax.core.scope.Scope.param = param
  try:
    jax.eval_shape(lambda r: model.init(r, x), rng_init)
  finally:
    flax.core.scope.Scope.param = orig
  want = flat(params)
  ok = 0
  for path, name, counter, init_fn, args in calls:
    key = _fold_in_static(rng_init, path + (counter,))
    got = np.asarray(jax.jit(lambda k: init_fn(k, *args))(key))
    ok += bool(np.array_equal(got, want["/".join(path + (name,))]))
  return f"{ok}/{len(calls)}"


# --- The training run ------------------------------------------------------------------


def _loss_fn(model, loss):
  def fn(params, image, labels, rng_model):
    logits, _ = model.apply({"params": params}, image, train=True,
                            rngs={"dropout": rng_model})
    return getattr(u, loss)(logits=logits, labels=labels)
  return fn


def grads_steps(case):
  return tuple(case.get("grads_steps", (max(SAVED_STEPS),)))


def run(case, params_f32=None):
  """Init, forward, gradients and `max(SAVED_STEPS)` train.py steps of one case.

  Given `params_f32` (under `jax.enable_x64`): the same computation in float64 from those
  float32 initial parameters and the float32 inputs.
  """
  x64 = params_f32 is not None
  mod = importlib.import_module(f"big_vision.models.{case['model']}")
  model = mod.Model(**case["model_kwargs"])
  b, (h, w) = case["batch"], case["image_hw"]
  classes = case["model_kwargs"]["num_classes"]
  data = make_inputs(case["data_seed"], b, (h, w), classes)
  fdt = jnp.float64 if x64 else jnp.float32
  image = jnp.asarray(data["image"], fdt)
  labels = jnp.asarray(data["labels_onehot"], fdt)

  rng = jax.random.PRNGKey(case["seed"])
  rng, rng_init = jax.random.split(rng)
  x0 = jnp.zeros((b, h, w, 3), jnp.float32)
  res = {"data": data}
  if x64:
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params_f32)
  else:
    params = jax.jit(lambda r: model.init(r, x0)["params"])(rng_init)
    res["init_reproduced"] = init_derivation_reproduced(model, rng_init, x0, params)
  rng, rng_loop = jax.random.split(rng)
  res["rng_loop"] = rng_loop

  config = ml_collections.ConfigDict(case["optimizer"])
  sched_kw = dict(total_steps=case["total_steps"], batch_size=b, data_size=None)
  tx, sched_fns = bv_optax.make(config, params, sched_kw=sched_kw)
  opt = jax.jit(tx.init)(params)
  loss_fn = _loss_fn(model, case["loss"])

  out_order = []

  @jax.jit
  def forward(params):
    logits, out = model.apply({"params": params}, image, train=False)
    out_order[:] = list(out_entries(out))
    return logits, out

  @jax.jit
  def loss_and_grads(params, rng_model):
    return jax.value_and_grad(loss_fn)(params, image, labels, rng_model)

  def rng_model_at(t):
    return jax.random.split(jax.random.fold_in(rng_loop, t), 2)[1]

  @jax.jit
  def update_fn(train_state, rng):
    step_count = bv_optax.get_count(train_state["opt"], jittable=True)
    rng = jax.random.fold_in(rng, step_count)
    rng, rng_model = jax.random.split(rng, 2)
    params, opt = train_state["params"], train_state["opt"]
    loss, grads = jax.value_and_grad(loss_fn)(params, image, labels, rng_model)
    updates, opt = tx.update(grads, opt, params)
    params = optax.apply_updates(params, updates)
    measurements = {"training_loss": loss}
    gs = jax.tree.leaves(bv_optax.replace_frozen(config.schedule, grads, 0.))
    measurements["l2_grads"] = jnp.sqrt(sum([jnp.sum(g * g) for g in gs]))
    ps = jax.tree.leaves(params)
    measurements["l2_params"] = jnp.sqrt(sum([jnp.sum(p * p) for p in ps]))
    us = jax.tree.leaves(updates)
    measurements["l2_updates"] = jnp.sqrt(sum([jnp.sum(u * u) for u in us]))
    return {"params": params, "opt": opt}, measurements

  res["params_init"] = params
  res["forward_init"] = forward(params)
  res["loss_init"], res["grads_init"] = loss_and_grads(params, rng_model_at(0))
  state = {"params": params, "opt": opt}
  res["steps"] = []
  last = max(SAVED_STEPS)
  for t in range(last):
    state, m = update_fn(state, rng_loop)
    m = {k: float(v) for k, v in m.items()}
    m["schedule_mult"] = float(sched_fns[0](t))
    res["steps"].append(m)
    if t + 1 in SAVED_STEPS:
      res[f"params_step{t + 1}"] = state["params"]
    if t + 1 in grads_steps(case):
      res[f"loss_step{t + 1}"], res[f"grads_step{t + 1}"] = loss_and_grads(
          state["params"], rng_model_at(t + 1))
  res[f"forward_step{last}"] = forward(state["params"])
  res["out_order"] = out_order
  res["rng_model_per_step"] = {str(t): key_data(rng_model_at(t)) for t in range(last + 1)}
  return res


# --- Writing the fixture ---------------------------------------------------------------


def forward_file(res, which, keys=None):
  """`logits` and `out/*`, sorted; an `out` entry equal to an earlier one (in the model's
  insertion order: ResNet `pre_logits_2d` = last stage, Mixer `input_tokens` = stem) is
  left out. `keys` restricts the `out` entries."""
  logits, out = res[f"forward_{which}"]
  out = out_entries(out)
  kept = {}
  for k in res["out_order"]:
    v = np.asarray(out[k])
    if keys is not None and k not in keys:
      continue
    if any(w.size == v.size and np.array_equal(w.ravel(), v.ravel()) for w in kept.values()):
      continue
    kept[k] = v
  kept["logits"] = np.asarray(logits)
  return dict(sorted(kept.items()))


def step3_keys(res):
  return {k for k in res["out_order"] if k in ("out/pre_logits", "out/logits_2d")}


def _cmp(f32, f64):
  """max |f32 - f64| over the tensors, where, and the largest per-tensor
  max |diff| / max(max |f32|, max |f64|)."""
  best = {"max_abs": -1.0}
  rel = (-1.0, None)
  for k, a in f32.items():
    d = float(np.max(np.abs(a.astype(np.float64) - np.asarray(f64[k], np.float64))))
    if d > best["max_abs"]:
      best = {"max_abs": d, "max_abs_at": k}
    m = float(max(np.max(np.abs(a)), np.max(np.abs(np.asarray(f64[k])))))
    r = d / m if m > 0 else (0.0 if d == 0 else float("inf"))
    if r > rel[0]:
      rel = (r, k)
  best["max_rel_to_maxabs"], best["max_rel_at"] = rel
  return best


def f64_check(case, files, res64, res, grads_init_keys):
  last = max(SAVED_STEPS)
  check = {"what": "|golden f32 - same computation in float64|"}
  check["expected_forward"] = _cmp(files["expected_forward"], forward_file(res64, "init"))
  body = [np.max(np.abs(np.asarray(v))) for k, v in flat(res64["grads_init"]).items()
          if k not in grads_init_keys]
  check["grads_init_body_max_abs_f64"] = float(max(body, default=0.0))
  check["grads_init"] = _cmp(files["grads_init"], flat(res64["grads_init"]))
  check[f"expected_forward_step{last}"] = _cmp(
      files[f"expected_forward_step{last}"], forward_file(res64, f"step{last}"))
  for t in grads_steps(case):
    check[f"grads_step{t}"] = _cmp(files[f"grads_step{t}"], flat(res64[f"grads_step{t}"]))
  check["loss_init_abs_diff"] = abs(float(res["loss_init"]) - float(res64["loss_init"]))
  check[f"loss_step{last}_abs_diff"] = abs(
      float(res[f"loss_step{last}"]) - float(res64[f"loss_step{last}"]))
  check["step_losses_abs_diff"] = [
      abs(a["training_loss"] - b["training_loss"])
      for a, b in zip(res["steps"], res64["steps"])]
  for t in SAVED_STEPS:
    check[f"params_step{t}"] = _cmp(files[f"params_step{t}"],
                                    flat(res64[f"params_step{t}"]))
  return check


def versions():
  return {"jax": jax.__version__, "flax": flax.__version__,
          "optax": optax.__version__, "numpy": np.__version__}


def write_case(case, outdir):
  """Runs `case` in float32 and float64 and writes its files into `outdir`."""
  res = run(case)
  with jax.enable_x64(True):
    res64 = run(case, res["params_init"])
  last = max(SAVED_STEPS)
  files = {"params_init": flat(res["params_init"]), "inputs": res["data"],
           "expected_forward": forward_file(res, "init")}
  grads_init = flat(res["grads_init"])
  body_zero = all(not np.any(v) for k, v in grads_init.items()
                  if not k.startswith("head/"))
  if body_zero:
    grads_init = {k: v for k, v in grads_init.items() if k.startswith("head/")}
  files["grads_init"] = grads_init
  for t in SAVED_STEPS:
    files[f"params_step{t}"] = flat(res[f"params_step{t}"])
  files[f"expected_forward_step{last}"] = forward_file(
      res, f"step{last}", step3_keys(res))
  for t in grads_steps(case):
    files[f"grads_step{t}"] = flat(res[f"grads_step{t}"])

  os.makedirs(outdir, exist_ok=True)
  for name, arrays in files.items():
    np.savez(os.path.join(outdir, f"{name}.npz"), **arrays)

  clip = case["optimizer"].get("grad_clip_norm")
  steps = []
  for t, m in enumerate(res["steps"]):
    steps.append({
        "step": t + 1, "schedule_mult": m["schedule_mult"],
        "training_loss": m["training_loss"], "l2_grads": m["l2_grads"],
        "clip_factor": min(1.0, clip / m["l2_grads"]) if clip else 1.0,
        "l2_params": m["l2_params"], "l2_updates": m["l2_updates"]})
  params = files["params_init"]
  meta = {
      "fixture": case["fixture"],
      "module": f"big_vision.models.{case['model']}.Model",
      "model_kwargs": case["model_kwargs"],
      "image_hw": list(case["image_hw"]),
      "batch": case["batch"],
      "input_layout": "NHWC float32, uniform in [-1,1)",
      "loss": case["loss"],
      "loss_init": float(res["loss_init"]),
      f"loss_step{last}": float(res[f"loss_step{last}"]),
      "grads_init_contents": (
          "head/* only: every other gradient is exactly 0.0 at init "
          "(zero-initialised head kernel)" if body_zero else "all parameters"),
      "optimizer": {
          "builder": "big_vision.optax.make(config, params, sched_kw)",
          "config": case["optimizer"],
          "sched_kw": {"total_steps": case["total_steps"], "batch_size": case["batch"],
                       "data_size": None},
      },
      "rng": {
          "seed": case["seed"],
          "rng_init": "rng = PRNGKey(seed); rng, rng_init = split(rng)",
          "rng_loop": "rng, rng_loop = split(rng)",
          "rng_loop_value": key_data(res["rng_loop"]),
          "rng_model_per_step": res["rng_model_per_step"],
          "rng_model_expr": ("split(fold_in(rng_loop, step), 2)[1], "
                             "step = 0-based optimizer step count"),
      },
      "data": (f"numpy default_rng({case['data_seed']}): image = uniform(-1,1,(B,H,W,3)) "
               "f32, then labels = integers(0,C,(B,)); labels_onehot = eye(C)[labels]"),
      "n_params": int(sum(v.size for v in params.values())),
      "param_shapes": {k: list(v.shape) for k, v in params.items()},
      "init_rng_derivation_reproduced": res["init_reproduced"],
      "steps": steps,
      "saved_steps": list(SAVED_STEPS),
      "versions": versions(),
  }
  if "grads_steps" in case:
    meta["saved_grads_steps"] = list(grads_steps(case))
  write_json(os.path.join(outdir, "meta.json"), meta)
  write_json(os.path.join(outdir, "f64_check.json"),
             f64_check(case, files, res64, res, set(grads_init)))
  return res
