"""Writes the two-tower option fixtures of bv's tests/golden/siglip_options with big_vision's
own code (commit 0127fb6b) on JAX/Flax: for each case, the two-tower params from
`model.init(split(PRNGKey(seed))[1], image, text)`, the inputs, and `zimg`, `ztxt` and every
`out/*` of `model.apply(params, image, text)` under `jax.jit`.

Needs no TensorFlow (a stub stands in for the gfile import big_vision's utils makes).
Run: PYTHONPATH=/path/to/big_vision_src python make.py   (writes into this folder)
"""
import json
import os
import sys
import types

import flax.training.checkpoints  # noqa: F401  (before the stub: flax probes for tensorflow)

# big_vision's utils imports tensorflow.io.gfile at module level; nothing here uses it.
for _m in ("tensorflow", "tensorflow.io", "tensorflow.io.gfile"):
  sys.modules.setdefault(_m, types.ModuleType(_m))
sys.modules["tensorflow"].io = sys.modules["tensorflow.io"]
sys.modules["tensorflow.io"].gfile = sys.modules["tensorflow.io.gfile"]

import jax
import jax.numpy as jnp
import numpy as np
from big_vision.models.proj.image_text import two_towers

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = {
    # Text pool `first`, image pool `tok`, no image head, bias absent.
    "first_tok_nohead": dict(
        image=dict(variant="mu/8", pool_type="tok", head_zeroinit=False),
        text=dict(width=16, depth=2, num_heads=2, mlp_dim=32, vocab_size=40,
                  pool_type="first"),
        out_dim=(None, 32), temperature_init=3.0),
    # Text pool `gap` over scanned encoder blocks, image pool `gap`.
    "gap_scan": dict(
        image=dict(variant="mu/8", pool_type="gap", head_zeroinit=False),
        text=dict(width=16, depth=2, num_heads=2, mlp_dim=32, vocab_size=40,
                  pool_type="gap", scan=True),
        out_dim=12, temperature_init=10.0, bias_init=-2.5),
    # Text pool `max`, no text head.
    "max_notxthead": dict(
        image=dict(variant="mu/8", pool_type="map", head_zeroinit=False),
        text=dict(width=32, depth=1, num_heads=4, mlp_dim=48, vocab_size=40,
                  pool_type="max"),
        out_dim=(32, None), bias_init=0.5),
    # Text pool `map`.
    "map": dict(
        image=dict(variant="mu/8", pool_type="gap", head_zeroinit=False),
        text=dict(width=16, depth=1, num_heads=2, mlp_dim=32, vocab_size=40,
                  pool_type="map"),
        out_dim=8, temperature_init=1.0, bias_init=-1.0),
}


def flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    name = f"{prefix}/{k}" if prefix else k
    if isinstance(v, dict):
      out.update(flat(v, name))
    else:
      out[name] = np.asarray(v)
  return out


def main():
  for seed, (name, kw) in enumerate(sorted(CASES.items())):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    model = two_towers.Model(**kw)
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, size=(3, 32, 32, 3)).astype(np.float32)
    text = rng.integers(2, 40, size=(3, 6)).astype(np.int32)
    text[0, 3:] = 1
    _, rng_init = jax.random.split(jax.random.PRNGKey(seed))
    params = jax.jit(model.init)(rng_init, image, text)["params"]
    zimg, ztxt, out = jax.jit(model.apply)({"params": params}, image, text)
    np.savez(os.path.join(d, "params_init.npz"), **flat(params))
    np.savez(os.path.join(d, "inputs.npz"), image=image, text=text)
    fwd = {"zimg": np.asarray(zimg), "ztxt": np.asarray(ztxt)}
    fwd.update({f"out/{k}": np.asarray(v) for k, v in flat(out).items()})
    np.savez(os.path.join(d, "expected_forward.npz"), **fwd)
    with open(os.path.join(d, "meta.json"), "w") as f:
      json.dump({"model_kwargs": kw, "seed": seed}, f, indent=1)


if __name__ == "__main__":
  main()
