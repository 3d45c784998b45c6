"""Train-step time of big_vision's own ViT (`big_vision.models.vit`) at the default job's
size (width 64, depth 4, MLP 128, 4 heads, 4x4 patches on 28x28x1, gap, learned posemb,
batch 128) with a given `dtype_mm`, for docs/benchmarks.md. One jitted, donating step:
softmax cross-entropy, clip 1.0, Adam, lr 0.003, wd 1e-4. Random inputs (the input
pipeline is not timed). Prints one JSON object: dtype_mm, median_ms over `--steps` steps
after 20 warm-up steps.

  PYTHONPATH=/path/to/big_vision python benches/jax/dtype_mm_step.py --dtype_mm bfloat16
"""
import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/golden"))
from bv_stub_tf import import_big_vision_utils  # pylint: disable=g-import-not-at-top

import_big_vision_utils()
from big_vision.models import vit  # pylint: disable=g-import-not-at-top


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--dtype_mm", default="float32")
  ap.add_argument("--steps", type=int, default=100)
  args = ap.parse_args()
  model = vit.Model(num_classes=10, patch_size=(4, 4), width=64, depth=4, mlp_dim=128,
                    num_heads=4, pool_type="gap", posemb="learn", dtype_mm=args.dtype_mm)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(-1, 1, (128, 28, 28, 1)), jnp.float32)
  y = jax.nn.one_hot(rng.integers(0, 10, 128), 10)
  params = model.init(jax.random.PRNGKey(0), x)["params"]
  tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(3e-3, weight_decay=1e-4))
  opt = tx.init(params)

  def update(state, x, y):
    params, opt = state

    def loss_fn(p):
      logits, _ = model.apply({"params": p}, x, train=True)
      return jnp.mean(-jnp.sum(jax.nn.log_softmax(logits) * y, axis=-1))

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt, params)
    return (optax.apply_updates(params, updates), opt), loss

  step = jax.jit(update, donate_argnums=(0,))
  state = (params, opt)
  times = []
  for i in range(20 + args.steps):
    t = time.perf_counter()
    state, loss = step(state, x, y)
    loss.block_until_ready()
    if i >= 20:
      times.append(time.perf_counter() - t)
  print(json.dumps({"dtype_mm": args.dtype_mm, "median_ms": 1e3 * float(np.median(times)),
                    "final_loss": float(loss)}))


if __name__ == "__main__":
  main()
