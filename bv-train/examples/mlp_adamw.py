"""An MLP fitted with optax.adamw under jax.jit + jax.value_and_grad.

Writes mlp_adamw.json beside this file: the data, the initial parameters (both from
formulas, no RNG) and JAX's loss at every step, which `cargo run -p bv-train --example
mlp_adamw` (and its test) must reproduce to float32 rounding.

    /work/venv-jax/bin/python bv-train/examples/mlp_adamw.py
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_platforms", "cpu")

N, D, H, STEPS = 32, 2, 16, 60
LR, WD = 0.02, 1e-3

# Deterministic data and parameters from formulas (float64, then float32): the Rust side
# computes the same formulas and checks them against the stored values.
i = np.arange(N)[:, None]
x = np.concatenate([np.sin(0.37 * i), np.cos(0.91 * i + 0.5)], axis=1)
y = np.sin(2.0 * x[:, :1]) + 0.5 * x[:, 1:] ** 2


def table(rows, cols, a, b, c, scale):
  r, k = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
  return scale * np.sin(a * r + b * k + c)


params = {
    "hidden": {"kernel": table(D, H, 1.7, 0.3, 0.1, 0.8), "bias": table(1, H, 0.0, 0.5, 0.2, 0.1)[0]},
    "out": {"kernel": table(H, 1, 0.9, 0.0, 0.3, 0.4), "bias": np.zeros(1)},
}
x, y = x.astype(np.float32), y.astype(np.float32)
params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)


def loss(p, x, y):
  """Mean squared error of tanh(x W1 + b1) W2 + b2."""
  h = jnp.tanh(x @ p["hidden"]["kernel"] + p["hidden"]["bias"])
  return jnp.mean((h @ p["out"]["kernel"] + p["out"]["bias"] - y) ** 2)


# Weight decay on the kernels only, matched on the leaf names as bv's Mask::regex does.
mask = {"hidden": {"kernel": True, "bias": False}, "out": {"kernel": True, "bias": False}}
tx = optax.adamw(LR, weight_decay=WD, mask=mask)


@jax.jit
def step(p, s, x, y):
  l, g = jax.value_and_grad(loss)(p, x, y)
  u, s = tx.update(g, s, p)
  return optax.apply_updates(p, u), s, l


out = {"x": x.tolist(), "y": y.tolist(),
       "params": jax.tree.map(lambda a: np.asarray(a).tolist(), params)}
state = jax.jit(tx.init)(params)
losses = []
for _ in range(STEPS):
  params, state, l = step(params, state, x, y)
  losses.append(float(l))
out.update(loss=losses, final_loss=float(loss(params, x, y)), jax_version=jax.__version__,
           optax_version=optax.__version__)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlp_adamw.json")
with open(path, "w") as f:
  json.dump(out, f, indent=1)
print(f"wrote {path}: loss {losses[0]:.6f} -> {losses[-1]:.6f}")
