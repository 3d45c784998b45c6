"""JAX's side of `bv-bench tracing`: the same ViT-B/16-sized encoder traced and lowered to
StableHLO text, and jit dispatch on a cache hit. Prints one JSON object."""
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

WIDTH, MLP, HEADS, DEPTH, TOKENS, BATCH = 768, 3072, 12, 12, 197, 8
LOWERS, CALLS = 5, 5000


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def make_encoder():
    def layer_norm(x, s, b):
        mu = jnp.mean(x, -1, keepdims=True)
        var = jnp.var(x, -1, keepdims=True)
        return (x - mu) * jax.lax.rsqrt(var + 1e-6) * s + b

    def dense(x, k, b):
        return jnp.matmul(x, k) + b

    def heads(t):
        return jnp.reshape(t, (BATCH, TOKENS, HEADS, WIDTH // HEADS))

    def encoder(x, p):
        for i in range(DEPTH):
            w = p[16 * i:16 * (i + 1)]
            y = layer_norm(x, w[0], w[1])
            q, k, v = (heads(dense(y, w[j], w[j + 1])) for j in (2, 4, 6))
            logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * (1.0 / np.sqrt(WIDTH // HEADS))
            att = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, -1), v)
            x = x + dense(jnp.reshape(att, (BATCH, TOKENS, WIDTH)), w[8], w[9])
            y = layer_norm(x, w[10], w[11])
            x = x + dense(jax.nn.gelu(dense(y, w[12], w[13]), approximate=True), w[14], w[15])
        return x
    return encoder


def main():
    shapes = [(WIDTH,), (WIDTH,), (WIDTH, WIDTH), (WIDTH,), (WIDTH, WIDTH), (WIDTH,),
              (WIDTH, WIDTH), (WIDTH,), (WIDTH, WIDTH), (WIDTH,), (WIDTH,), (WIDTH,),
              (WIDTH, MLP), (MLP,), (MLP, WIDTH), (WIDTH,)]
    specs = [jax.ShapeDtypeStruct(s, jnp.float32) for _ in range(DEPTH) for s in shapes]
    x = jax.ShapeDtypeStruct((BATCH, TOKENS, WIDTH), jnp.float32)
    times, lines = [], 0
    for _ in range(LOWERS):
        f = jax.jit(make_encoder())  # a fresh function: no tracing cache hit
        t = time.perf_counter()
        text = f.lower(x, specs).as_text()
        times.append((time.perf_counter() - t) * 1e3)
        lines = text.count("\n")

    add_one = jax.jit(lambda v: v + 1.0)
    v = jnp.zeros(8, jnp.float32)
    add_one(v).block_until_ready()
    t = time.perf_counter()
    for _ in range(CALLS):
        y = add_one(v)
    y.block_until_ready()
    dispatch_us = (time.perf_counter() - t) / CALLS * 1e6
    print(json.dumps({"lower_ms": median(times), "dispatch_us": dispatch_us, "lines": lines}))


if __name__ == "__main__":
    main()
