"""Golden fixtures for `dtype_mm`: big_vision's own ViT (`big_vision.models.vit`) with
`dtype_mm="bfloat16"` (one case `"float16"`) on fixed inputs and its own initial params.

Run (from the repository root):
  PYTHONPATH=/path/to/big_vision /path/to/venv/bin/python \
      tests/golden/dtype_mm/make_dtype_mm.py tests/golden/dtype_mm

Writes, per case `<name>/`: `inputs.npz` (`image`, `ct`: the logits' cotangent),
`params.npz` (flattened `a/b/c` names, the dtypes Flax created: float32, and bfloat16 for
`pos_embedding`/`cls`, which big_vision creates with the activations' dtype), `forward.npz`
(`logits` and every `out/*` entry, in the dtype big_vision returns them), `grads.npz`
(d(sum(logits * ct))/d params under `jax.jit`) and `meta.json` (`model_kwargs`, with
`dtype_mm`, and `dtypes`: each saved array's dtype as big_vision had it).
bfloat16 and float16 arrays are stored as float32 (exact: both are subsets of float32).
"""
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from bv_stub_tf import import_big_vision_utils  # pylint: disable=g-import-not-at-top

import_big_vision_utils()
from big_vision.models import vit  # pylint: disable=g-import-not-at-top

CASES = {
    # gap pooling, learned posemb, tanh pre_logits.
    "vit_gap": dict(num_classes=5, patch_size=(4, 4), width=32, depth=2, mlp_dim=64,
                    num_heads=2, rep_size=True, head_zeroinit=False),
    # cls token, sincos posemb.
    "vit_tok": dict(num_classes=5, patch_size=(4, 4), width=32, depth=2, mlp_dim=64,
                    num_heads=4, pool_type="tok", posemb="sincos2d", head_zeroinit=False),
    # MAP head, scanned blocks.
    "vit_map_scan": dict(num_classes=3, patch_size=(8, 8), width=32, depth=2, mlp_dim=48,
                         num_heads=2, pool_type="map", scan=True, head_zeroinit=False),
    # float16 instead of bfloat16.
    "vit_f16": dict(num_classes=5, patch_size=(4, 4), width=32, depth=2, mlp_dim=64,
                    num_heads=2, head_zeroinit=False, dtype_mm="float16"),
}


def flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    name = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(flat(v, name + "/"))
    else:
      out[name] = v
  return out


def save(path, arrays, dtypes):
  host = {}
  for k, v in arrays.items():
    v = np.asarray(v)
    dtypes[os.path.basename(path).removesuffix(".npz") + ":" + k] = str(v.dtype)
    host[k] = v.astype(np.float32) if v.dtype in (jnp.bfloat16, jnp.float16) else v
  np.savez(path, **host)


def main(root):
  for name, kw in CASES.items():
    kw = {"dtype_mm": "bfloat16", **kw}
    model = vit.Model(**kw)
    image = jax.random.uniform(jax.random.PRNGKey(1), (2, 16, 16, 3), jnp.float32, -1, 1)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), image)["params"]
    # Non-zero, non-trivial biases and norms so every parameter matters.
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    leaves = [l + (0.05 * jax.random.normal(k, l.shape)).astype(l.dtype)
              for l, k in zip(leaves, keys)]
    params = jax.tree.unflatten(treedef, leaves)
    fwd = jax.jit(lambda p, x: model.apply({"params": p}, x))
    logits, out = fwd(params, image)
    ct = jax.random.normal(jax.random.PRNGKey(3), logits.shape, jnp.float32)
    loss = lambda p: jnp.sum(model.apply({"params": p}, image)[0].astype(jnp.float32) * ct)
    grads = jax.jit(jax.grad(loss))(params)
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    dtypes = {}
    save(os.path.join(d, "inputs.npz"), {"image": image, "ct": ct}, dtypes)
    save(os.path.join(d, "params.npz"), flat(params), dtypes)
    save(os.path.join(d, "forward.npz"), {"logits": logits, **flat(out, "out/")}, dtypes)
    save(os.path.join(d, "grads.npz"), flat(grads), dtypes)
    with open(os.path.join(d, "meta.json"), "w") as f:
      json.dump({"model_kwargs": kw, "dtypes": dict(sorted(dtypes.items()))}, f, indent=1)
    print(name, "done")


if __name__ == "__main__":
  main(sys.argv[1])
