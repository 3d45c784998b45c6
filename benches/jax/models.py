"""JAX/Flax side of `bv-bench models`: a ViT with big_vision's architecture (written here
with Flax, as big_vision's models/vit.py builds it: patch Conv, sincos2d posemb, pre-LN
blocks, gap pooling, tanh pre-logits, head) and big_vision's optimizer chain for
scale_by_adam (clip 1.0, adam with bf16 mu, lr, decoupled wd on kernels, schedule, -1),
jitted with donation as big_vision's train.py does.

Usage: python models.py VARIANT [DTYPE_MM]   (VARIANT is Ti/16, S/16 or B/16; DTYPE_MM is
big_vision's dtype_mm: float32, the default, or bfloat16 for the patch embedding, attention
and MLP matrix multiplications, with float32 parameters). Prints one JSON object:
first_step_s (from BV_T0, the parent's clock before starting this process), forward_ms,
step_ms. BV_JAX_CACHE_DIR turns on JAX's persistent compilation cache in that directory;
BV_BENCH_REPS sets the timed repetitions."""
import json
import os
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

WIDTHS = {"Ti": (192, 12, 768, 3), "S": (384, 12, 1536, 6), "B": (768, 12, 3072, 12)}
BATCH, RES, CLASSES = 8, 224, 1000
REPS = int(os.environ.get("BV_BENCH_REPS", 3))


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def posemb_sincos_2d(h, w, width, temperature=10_000.):
    y, x = np.mgrid[:h, :w]
    omega = np.arange(width // 4) / (width // 4 - 1)
    omega = 1. / (temperature**omega)
    y = np.einsum("m,d->md", y.flatten(), omega)
    x = np.einsum("m,d->md", x.flatten(), omega)
    pe = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
    return jnp.asarray(pe, jnp.float32)[None]


class Block(nn.Module):
    mlp_dim: int
    heads: int
    dtype_mm: jnp.dtype

    @nn.compact
    def __call__(self, x):
        y = nn.LayerNorm()(x)
        y = nn.MultiHeadDotProductAttention(num_heads=self.heads, kernel_init=nn.initializers.xavier_uniform(), dtype=self.dtype_mm)(y, y)
        x = x + y
        y = nn.LayerNorm()(x)
        y = nn.Dense(self.mlp_dim, kernel_init=nn.initializers.xavier_uniform(), dtype=self.dtype_mm)(y)
        y = nn.gelu(y)
        y = nn.Dense(x.shape[-1], kernel_init=nn.initializers.xavier_uniform(), dtype=self.dtype_mm)(y)
        return x + y


class ViT(nn.Module):
    """big_vision's vit.py, dtype_mm as it applies it: the image and the patch embedding,
    attention and MLP in dtype_mm; norms, pre-logits and head as the inputs promote."""
    width: int
    depth: int
    mlp_dim: int
    heads: int
    patch: int
    dtype_mm: jnp.dtype

    @nn.compact
    def __call__(self, image):
        image = jnp.asarray(image, self.dtype_mm)
        x = nn.Conv(self.width, (self.patch, self.patch), strides=(self.patch, self.patch), padding="VALID", name="embedding", dtype=self.dtype_mm)(image)
        n, h, w, c = x.shape
        x = jnp.reshape(x, [n, h * w, c]) + posemb_sincos_2d(h, w, c)
        for i in range(self.depth):
            x = Block(self.mlp_dim, self.heads, self.dtype_mm, name=f"encoderblock_{i}")(x)
        x = nn.LayerNorm(name="encoder_norm")(x)
        x = jnp.mean(x, axis=1)
        x = nn.tanh(nn.Dense(self.width, name="pre_logits")(x))
        return nn.Dense(CLASSES, kernel_init=nn.initializers.zeros, name="head")(x)


def main():
    t0 = float(os.environ["BV_T0"])
    if os.environ.get("BV_JAX_CACHE_DIR"):
        # JAX's persistent compilation cache, with its default thresholds.
        jax.config.update("jax_compilation_cache_dir", os.environ["BV_JAX_CACHE_DIR"])
    size, patch = sys.argv[1].split("/")
    width, depth, mlp, heads = WIDTHS[size]
    dtype_mm = jnp.dtype(sys.argv[2] if len(sys.argv) > 2 else "float32")
    model = ViT(width, depth, mlp, heads, int(patch), dtype_mm)
    images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (BATCH, RES, RES, 3)), jnp.float32)
    labels = jax.nn.one_hot(jnp.arange(BATCH) % CLASSES, CLASSES)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), images)["params"]
    wd_mask = jax.tree_util.tree_map_with_path(lambda p, _: p[-1].key == "kernel", params)
    tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.scale_by_adam(mu_dtype=jnp.bfloat16),
        optax.scale(1e-3),
        optax.masked(optax.add_decayed_weights(1e-4), wd_mask),
        optax.scale_by_schedule(optax.warmup_cosine_decay_schedule(0.0, 1.0, 100, 1000)),
        optax.scale(-1.0),
    )
    opt = jax.jit(tx.init)(params)

    def update(state, images, labels):
        params, opt = state

        def loss_fn(p):
            logits = model.apply({"params": p}, images)
            return jnp.mean(-jnp.sum(jax.nn.log_softmax(logits) * labels, axis=-1))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), loss

    step = jax.jit(update, donate_argnums=(0,))
    state = (params, opt)
    state, loss = step(state, images, labels)
    loss.block_until_ready()
    first_step_s = time.time() - t0
    steps = []
    for _ in range(REPS):
        t = time.perf_counter()
        state, loss = step(state, images, labels)
        loss.block_until_ready()
        steps.append((time.perf_counter() - t) * 1e3)
    fwd = jax.jit(lambda p, x: model.apply({"params": p}, x))
    fwd(state[0], images).block_until_ready()
    fwds = []
    for _ in range(REPS):
        t = time.perf_counter()
        fwd(state[0], images).block_until_ready()
        fwds.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"first_step_s": first_step_s, "forward_ms": median(fwds), "step_ms": median(steps)}))


if __name__ == "__main__":
    main()
