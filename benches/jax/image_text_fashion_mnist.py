"""The Fashion-MNIST image-text jobs with big_vision's own code under JAX, for
docs/benchmarks.md: `--job siglip` is configs/proj/image_text/siglip_fashion_mnist.ron,
`--job lit` is lit_fashion_mnist.ron (pass the image tower with --init, the .npz that
`bv-train export` wrote from the default job, so both sides lock the same tower).

From big_vision (commit 0127fb6b, on PYTHONPATH): the model
(`models/proj/image_text/two_towers.py`, `text_transformer.py`, `vit.py`), the optimizer
chain (`optax.make`, frozen groups included), the prompt templates and canonicalization
(`evaluators/proj/image_text/prompt_engineering.py`). The sigmoid loss and the update step
are `trainers/proj/image_text/siglip.py`'s `update_fn`, restated here (it is a closure in
that trainer's main). The zero-shot evaluation is discriminative_classifier's computation
(class-mean text embeddings, arg-max over classes) in numpy, at the same cadence as the bv
config (before training, every `log_steps`, at the end). The input is numpy in memory (no
tf.data): Debian's Fashion-MNIST IDX files, captions made as the bv pp string makes them (a
random clip_best template per example, tokenized with the same SentencePiece model by the
`sentencepiece` package, sticky EOS, pad 1, 20 tokens).

Prints one JSON object: wall_s (process start to final eval), test_accuracy, steps.
Run: PYTHONPATH=/work/big_vision_src python image_text_fashion_mnist.py --job siglip
"""
import argparse
import gzip
import json
import os
import sys
import time
import types

T0 = time.time()

import flax.training.checkpoints  # noqa: E402,F401  (before the stubs: flax probes for TF)

# big_vision imports tensorflow(_datasets) at module level for gfile and tfds; unused here.
for _m in ("tensorflow", "tensorflow.io", "tensorflow.io.gfile", "tensorflow_datasets"):
  sys.modules.setdefault(_m, types.ModuleType(_m))
sys.modules["tensorflow"].io = sys.modules["tensorflow.io"]
sys.modules["tensorflow.io"].gfile = sys.modules["tensorflow.io.gfile"]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import sentencepiece  # noqa: E402
import big_vision.optax as bv_optax  # noqa: E402
from big_vision.evaluators.proj.image_text import prompt_engineering as pe  # noqa: E402
from big_vision.models.proj.image_text import two_towers  # noqa: E402

IDX = "/usr/share/datasets/fashion-mnist"
HERE = os.path.dirname(os.path.abspath(__file__))
SPM = os.path.join(HERE, "../../configs/proj/image_text/fashion_mnist_spm.model")
NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
         "bag", "ankle boot"]
BATCH, MAX_LEN, EVAL_BATCH = 128, 20, 500


def idx(name, offset):
  with gzip.open(f"{IDX}/{name}", "rb") as f:
    return np.frombuffer(f.read(), np.uint8, offset=offset)


def config_for(job):
  c = ml_collections.ConfigDict()
  image = dict(patch_size=(4, 4), width=64, depth=4, mlp_dim=128, num_heads=4,
               pool_type="gap", posemb="learn")
  text = dict(width=64, depth=2, mlp_dim=128, num_heads=4, vocab_size=99, pool_type="last")
  c.model = dict(image_model="vit", text_model="proj.image_text.text_transformer",
                 image=image, text=text, temperature_init=10.0, bias_init=-10.0)
  c.optax_name = "scale_by_adam"
  c.grad_clip_norm = 1.0
  c.wd = 0.0001
  if job == "siglip":
    c.model.image["head_zeroinit"] = False
    c.model.out_dim = 64
    c.lr, c.epochs, c.log_steps = 0.003, 6, 1000
    c.schedule = dict(decay_type="cosine", warmup_steps=100)
  else:
    c.model.out_dim = (None, 64)
    c.lr, c.epochs, c.log_steps = 0.001, 3, 500
    c.schedule = [("img/.*", None), (".*", dict(decay_type="cosine", warmup_steps=100))]
  return c


def tokenize(sp, text):
  ids = sp.encode(text.lower()) + [1]
  if len(ids) >= MAX_LEN:
    return ids[:MAX_LEN - 1] + ids[-1:]
  return ids + [1] * (MAX_LEN - len(ids))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--job", choices=["siglip", "lit"], required=True)
  ap.add_argument("--init", help="the image tower's .npz (lit)")
  ap.add_argument("--steps", type=int, help="stop after this many steps (a smoke test)")
  args = ap.parse_args()
  config = config_for(args.job)
  sp = sentencepiece.SentencePieceProcessor(model_file=SPM)
  names = [pe.canonicalize_text(n, keep_punctuation_exact_string=",").split(",")[0]
           for n in NAMES]
  templates = pe.get_prompt_templates("clip_best")
  captions = np.array([[tokenize(sp, t.replace("{}", n)) for t in templates] for n in names],
                      np.int32)  # [class, template, MAX_LEN]

  xtr = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
  ytr = idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
  xte = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
  yte = idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
  to_float = lambda x: x.astype(np.float32) / 255.0 * 2.0 - 1.0
  steps = args.steps or int(len(xtr) * config.epochs / BATCH)

  model = two_towers.Model(**config.model)
  rng = jax.random.PRNGKey(0)
  rng, rng_init = jax.random.split(rng)
  params = jax.jit(model.init)(rng_init, jnp.zeros((1, 28, 28, 1)),
                               jnp.zeros((1, MAX_LEN), jnp.int32))["params"]
  params = jax.tree.map(np.asarray, flax.core.unfreeze(params))
  if args.init:
    loaded = np.load(args.init)
    for k in loaded.files:
      if k.startswith("head/"):
        continue
      node = params["img"]
      *path, leaf = k.split("/")
      for p in path:
        node = node[p]
      assert node[leaf].shape == loaded[k].shape, k
      node[leaf] = loaded[k]
  tx, _ = bv_optax.make(config, params, sched_kw=dict(
      total_steps=steps, batch_size=BATCH, data_size=len(xtr)))
  opt = jax.jit(tx.init)(params)
  rng, rng_loop = jax.random.split(rng)

  @jax.jit
  def embed_images(params, images):
    zimg, _, _ = model.apply({"params": params}, images, None)
    return zimg

  @jax.jit
  def embed_texts(params, texts):
    _, ztxt, _ = model.apply({"params": params}, None, texts)
    return ztxt

  def zeroshot(params):
    ztxt = np.asarray(embed_texts(params, captions.reshape(-1, MAX_LEN)))
    means = ztxt.reshape(len(names), len(templates), -1).mean(axis=1)
    means /= 1e-8 + np.linalg.norm(means, axis=1, keepdims=True)
    correct = 0
    for i in range(0, len(xte), EVAL_BATCH):
      zimg = np.asarray(embed_images(params, to_float(xte[i:i + EVAL_BATCH])))
      correct += int(((zimg @ means.T).argmax(axis=1) == yte[i:i + EVAL_BATCH]).sum())
    return correct / len(xte)

  @jax.jit
  def update_fn(params, opt, rng, images, labels):
    step_count = bv_optax.get_count(opt, jittable=True)
    rng = jax.random.fold_in(rng, step_count)
    rng, rng_model = jax.random.split(rng, 2)

    def loss_fn(params):
      zimg, ztxt, extras = model.apply({"params": params}, images, labels, train=True,
                                       rngs={"dropout": rng_model})
      logits = jnp.dot(zimg, ztxt.T) * extras["t"] + extras["b"]
      m1_diag1 = -jnp.ones_like(logits) + 2 * jnp.eye(zimg.shape[0])
      nll = -jnp.sum(jax.nn.log_sigmoid(m1_diag1 * logits), axis=-1)
      return jnp.mean(nll)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, loss

  data_rng = np.random.default_rng(0)
  accuracy = zeroshot(params)
  order = np.zeros(0, np.int64)
  for step in range(1, steps + 1):
    if len(order) < BATCH:
      order = np.concatenate([order, data_rng.permutation(len(xtr))])
    batch, order = order[:BATCH], order[BATCH:]
    texts = captions[ytr[batch], data_rng.integers(0, len(templates), BATCH)]
    params, opt, loss = update_fn(params, opt, rng_loop, to_float(xtr[batch]), texts)
    if step % config.log_steps == 0 or step == steps:
      accuracy = zeroshot(params)
      print(f"step {step}: loss {float(loss):.4f} zero-shot {accuracy:.4f}", file=sys.stderr)
  print(json.dumps({"job": args.job, "wall_s": round(time.time() - T0, 1),
                    "test_accuracy": accuracy, "steps": steps}))


if __name__ == "__main__":
  main()
