"""An Elman RNN over sequences with jax.lax.scan, batched with jax.vmap: per-sequence
losses, final hidden states, per-sequence gradients (vmap of grad of a scan) and the
gradient of the mean loss (grad of vmap).

Writes rnn_scan.json beside this file; `cargo run -p bv-core --example rnn_scan` (and its
test) must reproduce the numbers to float32 rounding.

    /work/venv-jax/bin/python bv-core/examples/rnn_scan.py
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_platforms", "cpu")

B, T, D, H = 3, 5, 2, 4


def table(shape, a, c):
    """Deterministic values sin(a k + c) over the flat index k, shaped."""
    n = int(np.prod(shape))
    return np.array([np.sin(a * k + c) for k in range(n)], np.float32).reshape(shape)


xs = table((B, T, D), 0.9, 0.2)
targets = table((B, T), 0.45, -0.3)
params = {
    "wh": 0.5 * table((H, H), 1.7, 0.1),
    "wx": table((H, D), 0.8, 0.5),
    "b": 0.1 * table((H,), 2.3, 0.0),
    "v": table((H,), 1.1, 0.4),
}


def run(p, x):
    """The hidden states for one sequence: h_t = tanh(Wh h_{t-1} + Wx x_t + b), h_0 = 0."""

    def step(h, xt):
        h = jnp.tanh(jnp.dot(p["wh"], h) + jnp.dot(p["wx"], xt) + p["b"])
        return h, h

    return jax.lax.scan(step, jnp.zeros(H, jnp.float32), x)


def loss(p, x, y):
    """Mean squared error of the readout v.h_t against the targets of one sequence."""
    _, hs = run(p, x)
    return jnp.mean((jnp.dot(hs, p["v"]) - y) ** 2)


axes = (None, 0, 0)
losses = jax.jit(jax.vmap(loss, in_axes=axes))(params, xs, targets)
final = jax.jit(jax.vmap(lambda p, x: run(p, x)[0], in_axes=(None, 0)))(params, xs)
per_seq = jax.jit(jax.vmap(jax.grad(loss), in_axes=axes))(params, xs, targets)
mean_grad = jax.jit(jax.grad(lambda p: jnp.mean(jax.vmap(loss, in_axes=axes)(p, xs, targets))))(
    params
)

out = {
    "xs": xs.tolist(),
    "targets": targets.tolist(),
    "params": {k: v.tolist() for k, v in params.items()},
    "loss": np.asarray(losses).tolist(),
    "final_hidden": np.asarray(final).tolist(),
    "per_sequence_grad": {k: np.asarray(v).tolist() for k, v in per_seq.items()},
    "mean_grad": {k: np.asarray(v).tolist() for k, v in mean_grad.items()},
    "jax_version": jax.__version__,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rnn_scan.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print(f"wrote {path}")
