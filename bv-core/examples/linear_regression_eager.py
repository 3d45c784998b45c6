"""A linear regression fitted by gradient descent in JAX's eager mode (no jax.jit): each
step calls jax.value_and_grad on concrete arrays, op by op.

Writes linear_regression_eager.json beside this file: the data and JAX's loss curve and
fit, which `cargo run -p bv-core --example linear_regression_eager` (and its test) must
reproduce to float32 rounding.

    /work/venv-jax/bin/python bv-core/examples/linear_regression_eager.py
"""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_platforms", "cpu")

N, D, STEPS, LR = 32, 3, 100, 0.2
# Deterministic data: no RNG, so the Rust side can rebuild it from the JSON alone.
x = np.array(
    [[math.sin(0.37 * i * (j + 1) + j) for j in range(D)] for i in range(N)], np.float32
)
true_w = np.array([1.5, -2.0, 0.5], np.float32)
noise = np.array([0.05 * math.cos(1.7 * i) for i in range(N)], np.float32)
y = (x @ true_w + np.float32(0.3) + noise).astype(np.float32)


def loss(params, x, y):
    """Mean squared error of x w + b."""
    pred = x @ params["w"] + params["b"]
    return jnp.mean((pred - y) ** 2)


params = {"w": jnp.zeros(D, jnp.float32), "b": jnp.zeros((), jnp.float32)}
xs, ys = jnp.asarray(x), jnp.asarray(y)
losses = []
for _ in range(STEPS):
    l, g = jax.value_and_grad(loss)(params, xs, ys)
    losses.append(float(l))
    params = {k: params[k] - LR * g[k] for k in params}

out = {
    "x": x.tolist(),
    "y": y.tolist(),
    "steps": STEPS,
    "lr": LR,
    "loss": losses,
    "w": np.asarray(params["w"]).tolist(),
    "b": float(params["b"]),
    "final_loss": float(loss(params, xs, ys)),
    "jax_version": jax.__version__,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "linear_regression_eager.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print(f"wrote {path}")
