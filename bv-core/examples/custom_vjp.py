"""Functions with custom VJPs, from JAX's custom_vjp tutorial: a numerically stable
log1pexp (whose plain derivative is nan at large x) and clip_gradient (the identity
whose cotangent is clipped), differentiated with jax.grad and jax.vmap(jax.grad(...)).

Writes custom_vjp.json beside this file: the inputs and JAX's values and gradients,
which `cargo run -p bv-core --example custom_vjp` (and its test) must reproduce to
float32 rounding.

    /work/venv-jax/bin/python bv-core/examples/custom_vjp.py
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_platforms", "cpu")


@jax.custom_vjp
def log1pexp(x):
    return jnp.log1p(jnp.exp(x))


def log1pexp_fwd(x):
    return log1pexp(x), x


def log1pexp_bwd(x, g):
    return (g * (1 - 1 / (1 + jnp.exp(x))),)


log1pexp.defvjp(log1pexp_fwd, log1pexp_bwd)

LO, HI = -0.75, 0.75


@jax.custom_vjp
def clip_gradient(x):
    return x


def clip_fwd(x):
    return x, None


def clip_bwd(_, g):
    return (jnp.clip(g, LO, HI),)


clip_gradient.defvjp(clip_fwd, clip_bwd)


def clip_sin(x):
    return jnp.sin(clip_gradient(x))


xs = np.array([-10.0, -1.0, 0.0, 1.0, 10.0, 50.0, 100.0], np.float32)
finite = xs[:-1]  # log1pexp(100) overflows float32 in the forward pass, as in JAX.
t = np.linspace(0.0, 10.0, 21, dtype=np.float32)

out = {
    "x": xs.tolist(),
    "log1pexp": np.asarray(log1pexp(finite)).tolist(),
    "grad_log1pexp": np.asarray(jax.vmap(jax.grad(log1pexp))(xs)).tolist(),
    "t": t.tolist(),
    "clip_sin": np.asarray(clip_sin(t)).tolist(),
    "grad_clip_sin": np.asarray(jax.vmap(jax.grad(clip_sin))(t)).tolist(),
    "lo": LO,
    "hi": HI,
    "jax_version": jax.__version__,
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "custom_vjp.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print(f"wrote {path}")
