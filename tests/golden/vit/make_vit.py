"""Writes the ViT golden fixtures (`ti8_d2/`, `mu8_map/`) with big_vision's code.

  PYTHONPATH=/path/to/big_vision /path/to/venv-jax/bin/python tests/golden/vit/make_vit.py \\
      [OUT [CASE ...]]

OUT defaults to this directory, CASE to both. Needs JAX 0.10.2, Flax 0.12.8, Optax 0.2.8
and big_vision at commit 0127fb6b on PYTHONPATH (XLA:CPU). It also writes
`ti8_d2/params_step1.npz` (3.7 MB), which the repository leaves out (README.md).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np

import train_case as tc
from big_vision.models import vit  # pylint: disable=g-import-not-at-top

u = tc.u
WD_MASK = ".*/kernel$"
CHAIN = ["masked(clip_by_global_norm(grad_clip_norm))",
         "masked(scale_by_adam(b1,b2,eps,eps_root))", "scale(lr)",
         "add_decayed_weights(wd, mask=.*/kernel$)", "masked(scale_by_schedule(sched))",
         "scale(-1)"]
FORMULA = ("p_{t+1} = p_t - sched(t) * (lr * mhat/(sqrt(vhat)+eps) + wd*[is_kernel]*p_t); "
           "t = 0-based step")
FIXED = {"dtype_mm": "float32", "dropout": 0.0, "scan": False, "layernorm_epsilon": 1e-06,
         "gelu": "tanh approximation", "mlp_dim_default": "4*width",
         "attention_scale": "1/sqrt(head_dim)"}


def adam(lr, wd):
  return {"optax_name": "scale_by_adam",
          "optax": {"b1": 0.9, "b2": 0.999, "eps": 1e-08, "eps_root": 0.0},
          "lr": lr, "wd": wd, "grad_clip_norm": 1.0, "schedule": {"decay_type": "stair"}}


CASES = [
    dict(fixture="ti8_d2", model="vit",
         model_kwargs={"num_classes": 10, "variant": "Ti/8", "depth": 2, "posemb": "learn",
                       "pool_type": "gap", "rep_size": False, "head_zeroinit": False},
         image_hw=[32, 32], batch=8, loss="softmax_xent", optimizer=adam(1e-4, 1e-3),
         total_steps=5, seed=0, data_seed=1234, saved_steps=(1, 5), init_rng="seed",
         model_kwargs_f64={"dtype_mm": "float64"}),
    dict(fixture="mu8_map", model="vit",
         model_kwargs={"num_classes": 10, "variant": "mu/8", "posemb": "learn",
                       "pool_type": "map", "rep_size": False, "head_zeroinit": False},
         image_hw=[32, 32], batch=3, loss="softmax_xent", optimizer=adam(1e-3, 1e-2),
         total_steps=5, seed=2, data_seed=99, saved_steps=(1, 2, 5), init_rng="seed",
         model_kwargs_f64={"dtype_mm": "float64"}),
]


def is_key_bias(name):
  return name.endswith("/key/bias")


def _stats(f32, f64, skip_key_bias):
  """README's f64_check record for a dict of tensors."""
  rec = {"max_abs": -1.0}
  rel, means, p999s, kb = (-1.0, None), [], [], 0.0
  for k, a in f32.items():
    d = np.abs(a.astype(np.float64) - np.asarray(f64[k], np.float64))
    if skip_key_bias and is_key_bias(k):
      kb = max(kb, float(d.max()))
      continue
    if d.max() > rec["max_abs"]:
      rec = {"max_abs": float(d.max()), "max_abs_at": k}
    den = max(np.abs(a).max(), np.abs(np.asarray(f64[k])).max())
    r = float(d.max() / den) if den > 0 else 0.0
    if r > rel[0]:
      rel = (r, k)
    means.append(float(d.mean()))
    p999s.append(float(np.quantile(d, 0.999)))
  rec["max_rel_to_maxabs"], rec["max_rel_at"] = rel
  rec["max_mean_abs"], rec["max_p999_abs"] = max(means), max(p999s)
  rec["key_bias_max_abs"] = kb
  return rec


def f64_check(case, res, res64):
  a, b = np.asarray(res["forward_init"][0]), np.asarray(res64["forward_init"][0], np.float64)
  d = np.abs(a - b)
  check = {"what": "|golden f32 - same computation in float64| (x64, dtype_mm=float64)",
           "logits": {"max_abs": float(d.max()), "max_abs_ref": float(np.abs(b).max()),
                      "max_rel_to_maxabs": float(d.max() / np.abs(b).max()),
                      "mean_abs": float(d.mean()), "p999_abs": float(np.quantile(d, 0.999))},
           "loss_init": {"f32": float(res["loss_init"]), "f64": float(res64["loss_init"]),
                         "abs_diff": abs(float(res["loss_init"]) - float(res64["loss_init"]))},
           "grads_init": _stats(tc.flat(res["grads_init"]), tc.flat(res64["grads_init"]),
                                True),
           "step_losses_abs_diff": [abs(x["training_loss"] - y["training_loss"])
                                    for x, y in zip(res["steps"], res64["steps"])]}
  for t in tc.saved_steps(case):
    check[f"params_step{t}"] = _stats(tc.flat(res[f"params_step{t}"]),
                                      tc.flat(res64[f"params_step{t}"]), True)
  return check


def write_case(case, outdir):
  res = tc.run(case)
  with jax.enable_x64(True):
    res64 = tc.run(case, res["params_init"])
  os.makedirs(outdir, exist_ok=True)
  logits, out = res["forward_init"]
  forward = {"logits": np.asarray(logits)}
  for k, v in tc.out_entries(out).items():
    # `encoder/pre_ln` is vit.py's alias of the last block's output; `pre_logits_2d` is
    # `encoded` reshaped unless there is a pre_logits layer (rep_size).
    if k == "out/encoder/pre_ln" or (
        k == "out/pre_logits_2d" and not case["model_kwargs"].get("rep_size")):
      continue
    forward[k] = np.asarray(v)
  grads = tc.flat(res["grads_init"])
  params = tc.flat(res["params_init"])
  files = {"params_init": params, "inputs": res["data"],
           "expected_forward": dict(sorted(forward.items())), "grads_init": grads}
  for t in tc.saved_steps(case):
    files[f"params_step{t}"] = tc.flat(res[f"params_step{t}"])
  for name, arrays in files.items():
    np.savez(os.path.join(outdir, f"{name}.npz"), **arrays)

  labels = jnp.asarray(res["data"]["labels_onehot"])
  losses = {n: float(getattr(u, n)(logits=logits, labels=labels))
            for n in ("softmax_xent", "sigmoid_xent")}
  opt = case["optimizer"]
  v = vit.decode_variant(case["model_kwargs"]["variant"])
  steps = []
  for t, m in enumerate(res["steps"]):
    steps.append({
        "step": t + 1, "schedule_mult": m["schedule_mult"],
        "effective_lr": opt["lr"] * m["schedule_mult"],
        "effective_wd": opt["wd"] * m["schedule_mult"],
        "training_loss": m["training_loss"], "l2_grads": m["l2_grads"],
        "clip_factor": min(1.0, opt["grad_clip_norm"] / m["l2_grads"]),
        "l2_params": m["l2_params"], "l2_updates": m["l2_updates"]})
  meta = {
      "fixture": case["fixture"], "model_kwargs": case["model_kwargs"],
      "decoded_variant": {**v, "patch_size": list(v["patch_size"])},
      "model_fixed_semantics": FIXED, "image_hw": case["image_hw"],
      "batch": case["batch"], "input_layout": "NHWC float32 in [-1,1]",
      "loss": case["loss"], "loss_init": float(res["loss_init"]),
      "loss_init_softmax_xent": losses["softmax_xent"],
      "loss_init_sigmoid_xent": losses["sigmoid_xent"],
      "optimizer": {
          "builder": "big_vision.optax.make(config, params, sched_kw)", "config": opt,
          "sched_kw": {"total_steps": case["total_steps"], "batch_size": case["batch"],
                       "data_size": None},
          "wd_mask_regex": WD_MASK, "chain": CHAIN, "update_formula": FORMULA},
      "init": {"rng": f"jax.random.PRNGKey({case['seed']}) (threefry)",
               "data_rng": f"numpy default_rng({case['data_seed']})"},
      "n_params": int(sum(p.size for p in params.values())),
      "param_shapes": {k: list(p.shape) for k, p in params.items()},
      "grad_norms_init": {k: float(np.linalg.norm(g)) for k, g in grads.items()},
      "grad_global_norm_init": float(np.sqrt(sum(
          np.sum(g.astype(np.float64) ** 2) for g in grads.values()))),
      "steps": steps, "saved_steps": list(tc.saved_steps(case)),
      "versions": tc.versions(),
  }
  tc.write_json(os.path.join(outdir, "meta.json"), meta, newline=False)
  tc.write_json(os.path.join(outdir, "f64_check.json"), f64_check(case, res, res64),
                newline=False)


def main():
  out = sys.argv[1] if len(sys.argv) > 1 else HERE
  names = sys.argv[2:] or [c["fixture"] for c in CASES]
  for case in [c for c in CASES if c["fixture"] in names]:
    write_case(case, os.path.join(out, case["fixture"]))
    print("wrote", os.path.join(out, case["fixture"]))


if __name__ == "__main__":
  main()
