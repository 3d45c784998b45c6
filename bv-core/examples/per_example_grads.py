"""Per-example gradients of a logistic-regression loss with jax.vmap(jax.grad(...)).

Writes per_example_grads.json beside this file: the data, the parameters and JAX's
numbers, which `cargo run -p bv-core --example per_example_grads` (and its test) must
reproduce to float32 rounding.

    /work/venv-jax/bin/python bv-core/examples/per_example_grads.py
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_platforms", "cpu")

N, D = 6, 4
# Deterministic data: no RNG, so the Rust side can rebuild it from the JSON alone.
x = np.array([[np.sin(0.7 * i + 1.3 * j) for j in range(D)] for i in range(N)], np.float32)
y = np.array([1.0 if (i * 5) % 3 else 0.0 for i in range(N)], np.float32)
params = {
    "w": np.array([0.5, -0.25, 1.0, 0.125], np.float32),
    "b": np.array(0.1, np.float32),
}


def loss(p, xi, yi):
    """Binary cross-entropy of one example: softplus(z) - y z with z = x.w + b."""
    z = jnp.dot(xi, p["w"]) + p["b"]
    return jax.nn.softplus(z) - yi * z


per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))(params, x, y)
losses = jax.jit(jax.vmap(loss, in_axes=(None, 0, 0)))(params, x, y)
mean_grad = jax.jit(
    jax.grad(lambda p: jnp.mean(jax.vmap(loss, in_axes=(None, 0, 0))(p, x, y)))
)(params)

out = {
    "x": x.tolist(),
    "y": y.tolist(),
    "w": params["w"].tolist(),
    "b": float(params["b"]),
    "loss": np.asarray(losses).tolist(),
    "per_example_w": np.asarray(per_example["w"]).tolist(),
    "per_example_b": np.asarray(per_example["b"]).tolist(),
    "mean_grad_w": np.asarray(mean_grad["w"]).tolist(),
    "mean_grad_b": float(mean_grad["b"]),
    "jax_version": jax.__version__,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "per_example_grads.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print(f"wrote {path}")
