"""The default job in JAX/Flax/Optax, for docs/benchmarks.md: the same ViT (width 64, depth 4,
MLP 128, 4 heads, 4x4 patches, gap, learned posemb, zero-init head), batch 128, 7 epochs,
big_vision's optimizer chain for scale_by_adam (clip 1.0, lr 0.003, wd 1e-4 on kernels, cosine
schedule with 100 warmup steps), on the IDX files of Debian's dataset-fashion-mnist. The input
is numpy in memory (no tf.data), so this times the model and optimizer, not the pipeline.
Prints one JSON object: wall_s (process start to final eval), test_accuracy."""
import gzip
import json
import time

T0 = time.time()

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

IDX = "/usr/share/datasets/fashion-mnist"
BATCH, EPOCHS, WIDTH, DEPTH, MLP, HEADS, PATCH = 128, 7, 64, 4, 128, 4, 4


def idx(name, offset):
    with gzip.open(f"{IDX}/{name}", "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        y = nn.LayerNorm()(x)
        y = nn.MultiHeadDotProductAttention(num_heads=HEADS, kernel_init=nn.initializers.xavier_uniform())(y, y)
        x = x + y
        y = nn.LayerNorm()(x)
        y = nn.Dense(MLP, kernel_init=nn.initializers.xavier_uniform())(y)
        y = nn.Dense(WIDTH, kernel_init=nn.initializers.xavier_uniform())(nn.gelu(y))
        return x + y


class ViT(nn.Module):
    @nn.compact
    def __call__(self, image):
        x = nn.Conv(WIDTH, (PATCH, PATCH), strides=(PATCH, PATCH), padding="VALID")(image)
        n, h, w, c = x.shape
        x = jnp.reshape(x, [n, h * w, c])
        x = x + self.param("pos_embedding", nn.initializers.normal(1 / np.sqrt(c)), (1, h * w, c))
        for _ in range(DEPTH):
            x = Block()(x)
        x = jnp.mean(nn.LayerNorm()(x), axis=1)
        return nn.Dense(10, kernel_init=nn.initializers.zeros)(x)


def main():
    xtr = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
    ytr = idx("train-labels-idx1-ubyte.gz", 8)
    xte = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
    yte = idx("t10k-labels-idx1-ubyte.gz", 8)
    steps = len(xtr) * EPOCHS // BATCH
    model = ViT()
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((BATCH, 28, 28, 1)))["params"]
    wd_mask = jax.tree_util.tree_map_with_path(lambda p, _: p[-1].key == "kernel", params)
    tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.scale_by_adam(),
        optax.scale(3e-3),
        optax.masked(optax.add_decayed_weights(1e-4), wd_mask),
        optax.scale_by_schedule(optax.warmup_cosine_decay_schedule(0.0, 1.0, 100, steps)),
        optax.scale(-1.0),
    )
    opt = tx.init(params)

    def update(state, x, y):
        params, opt = state

        def loss_fn(p):
            logits = model.apply({"params": p}, x)
            return jnp.mean(-jnp.sum(jax.nn.log_softmax(logits) * y, axis=-1))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), loss

    step = jax.jit(update, donate_argnums=(0,))
    predict = jax.jit(lambda p, x: jnp.argmax(model.apply({"params": p}, x), -1))
    rng = np.random.default_rng(0)
    state = (params, opt)
    order = np.concatenate([rng.permutation(len(xtr)) for _ in range(EPOCHS + 1)])
    for s in range(steps):
        i = order[s * BATCH:(s + 1) * BATCH]
        x = xtr[i].astype(np.float32) / 127.5 - 1.0
        y = np.eye(10, dtype=np.float32)[ytr[i]]
        state, loss = step(state, x, y)
    correct = 0
    for b in range(0, len(xte), 500):
        correct += int(np.sum(np.asarray(predict(state[0], xte[b:b + 500].astype(np.float32) / 127.5 - 1.0)) == yte[b:b + 500]))
    print(json.dumps({"wall_s": time.time() - T0, "test_accuracy": correct / len(xte), "steps": steps, "final_loss": float(loss)}))


if __name__ == "__main__":
    main()
