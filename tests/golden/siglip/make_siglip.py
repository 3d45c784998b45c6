"""Writes the SigLIP golden set: `siglip_s/` (big_vision two_towers + SigLIP loss) and
`tokenizer/expected.json` (big_vision's `tokenize` op semantics on `tokenizer/spm.model`).

  PYTHONPATH=/path/to/big_vision /path/to/venv-jax/bin/python \\
      tests/golden/siglip/make_siglip.py [OUT [siglip_s] [tokenizer]]

OUT defaults to this directory. Needs JAX 0.10.2, Flax 0.12.8, Optax 0.2.8, big_vision at
commit 0127fb6b, and the `sentencepiece` pip package (0.2.x) for the tokenizer. It reads
`tokenizer/spm.model` from this directory (that file is an input, see README.md).
"""

import importlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

import train_case as tc
import big_vision.optax as bv_optax  # pylint: disable=g-import-not-at-top

MODEL_KWARGS = {
    "image_model": "vit", "text_model": "proj.image_text.text_transformer",
    "image": {"variant": "mu/8", "pool_type": "map", "posemb": "learn",
              "head_zeroinit": False},
    "text": {"width": 32, "depth": 1, "num_heads": 2, "mlp_dim": 64, "vocab_size": 64,
             "pool_type": "last"},
    "out_dim": 16, "temperature_init": 10.0, "bias_init": -10.0,
}
OPTIMIZER = {"optax_name": "scale_by_adam", "lr": 0.001, "wd": 0.0001,
             "grad_clip_norm": 1.0, "schedule": {"decay_type": "cosine", "warmup_steps": 1}}
B, HW, L, SEED, DATA_SEED, TOTAL_STEPS, SAVED = 4, (32, 32), 8, 3, 11, 10, (1, 2, 5)
EOS = 1


def make_inputs():
  """default_rng(11): image uniform [-1, 1); then row i holds 2i+1 ids from
  integers(2, vocab) and EOS (1) in the rest."""
  r = np.random.default_rng(DATA_SEED)
  image = r.uniform(-1, 1, (B, *HW, 3)).astype(np.float32)
  text = np.full((B, L), EOS, np.int32)
  for i in range(B):
    n = 2 * i + 1
    text[i, :n] = r.integers(2, MODEL_KWARGS["text"]["vocab_size"], n)
  return {"image": image, "text": text}


def siglip_loss(zimg, ztxt, extras):
  """trainers/proj/image_text/siglip.py's loss_fn."""
  logits = jnp.dot(zimg, ztxt.T)
  logits = logits * extras["t"] + extras["b"]
  eye = jnp.eye(zimg.shape[0])
  m1_diag1 = -jnp.ones_like(logits) + 2 * eye
  loglik = jax.nn.log_sigmoid(m1_diag1 * logits)
  nll = -jnp.sum(loglik, axis=-1)
  return jnp.mean(nll)


def write_model(outdir):
  mod = importlib.import_module("big_vision.models.proj.image_text.two_towers")
  model = mod.Model(**MODEL_KWARGS)
  data = make_inputs()
  image, text = jnp.asarray(data["image"]), jnp.asarray(data["text"])

  rng = jax.random.PRNGKey(SEED)
  rng, rng_init = jax.random.split(rng)
  params = jax.jit(lambda r: model.init(r, jnp.zeros_like(image),
                                        jnp.zeros_like(text))["params"])(rng_init)
  rng, rng_loop = jax.random.split(rng)
  config = ml_collections.ConfigDict(OPTIMIZER)
  tx, sched_fns = bv_optax.make(config, params, sched_kw=dict(
      total_steps=TOTAL_STEPS, batch_size=B, data_size=None))
  opt = jax.jit(tx.init)(params)

  def loss_fn(params, rng_model):
    zimg, ztxt, extras = model.apply({"params": params}, image, text, train=True,
                                     rngs={"dropout": rng_model})
    return siglip_loss(zimg, ztxt, extras)

  @jax.jit
  def forward(params):
    zimg, ztxt, out = model.apply({"params": params}, image, text)
    return zimg, ztxt, out, siglip_loss(zimg, ztxt, out)

  @jax.jit
  def update_fn(train_state, rng):
    """The SigLIP trainer's update_fn (jax.tree.leaves for the removed jax.tree_leaves)."""
    step_count = bv_optax.get_count(train_state["opt"], jittable=True)
    rng = jax.random.fold_in(rng, step_count)
    rng, rng_model = jax.random.split(rng, 2)
    params, opt = train_state["params"], train_state["opt"]
    loss, grads = jax.value_and_grad(loss_fn)(params, rng_model)
    updates, opt = tx.update(grads, opt, params)
    params = optax.apply_updates(params, updates)
    measurements = {"training_loss": loss}
    gs = jax.tree.leaves(bv_optax.replace_frozen(config.schedule, grads, 0.))
    measurements["l2_grads"] = jnp.sqrt(sum([jnp.sum(g * g) for g in gs]))
    ps = jax.tree.leaves(params)
    measurements["l2_params"] = jnp.sqrt(sum([jnp.sum(p * p) for p in ps]))
    us = jax.tree.leaves(updates)
    measurements["l2_updates"] = jnp.sqrt(sum([jnp.sum(u * u) for u in us]))
    return {"params": params, "opt": opt}, measurements

  zimg, ztxt, out, loss = forward(params)
  rng_model0 = jax.random.split(jax.random.fold_in(rng_loop, 0), 2)[1]
  grads = jax.jit(jax.grad(loss_fn))(params, rng_model0)
  files = {"params_init": tc.flat(params), "inputs": data,
           "expected_forward": {"zimg": np.asarray(zimg), "ztxt": np.asarray(ztxt),
                                **dict(sorted((k, np.asarray(v)) for k, v in
                                              tc.out_entries(out).items())),
                                "loss": np.asarray(loss)},
           "grads_init": tc.flat(grads)}
  state, steps = {"params": params, "opt": opt}, []
  for t in range(max(SAVED)):
    state, m = update_fn(state, rng_loop)
    rec = {k: float(v) for k, v in m.items()}
    rec = {"step": t + 1, **rec,
           "schedule_mults": [float(f(jnp.asarray(t))) for f in sched_fns]}
    steps.append(rec)
    if t + 1 in SAVED:
      files[f"params_step{t + 1}"] = tc.flat(state["params"])
  os.makedirs(outdir, exist_ok=True)
  for name, arrays in files.items():
    np.savez(os.path.join(outdir, f"{name}.npz"), **arrays)
  p = files["params_init"]
  meta = {
      "fixture": "shared/siglip_s",
      "model_kwargs (big_vision.models.proj.image_text.two_towers.Model)": MODEL_KWARGS,
      "image_hw": list(HW), "batch": B, "text_len": L,
      "inputs": "image NHWC float32 uniform [-1,1); text int32 token ids, EOS=1 pads the "
                "tail",
      "init": f"params = model.init(split(PRNGKey({SEED}))[1], zeros image, zeros text)",
      "loss": "siglip sigmoid loss: logits = zimg @ ztxt.T * t + b; nll = -sum_j "
              "log_sigmoid((2*eye-1) * logits), mean over rows",
      "optimizer (big_vision.optax.make)": OPTIMIZER, "total_steps": TOTAL_STEPS,
      "loss_init": float(loss), "n_params": int(sum(v.size for v in p.values())),
      "param_shapes": {k: list(v.shape) for k, v in p.items()},
      "steps": steps, "saved_steps": list(SAVED),
      "versions": {"jax": jax.__version__, "flax": tc.flax.__version__,
                   "optax": optax.__version__},
  }
  tc.write_json(os.path.join(outdir, "meta.json"), meta, newline=False)


# --- tokenizer ---------------------------------------------------------------------------

# The first 60 non-empty lines (stripped) of the Mozilla Public License 2.0, then edge cases.
TEXTS = [
    'Mozilla Public License Version 2.0',
    '==================================',
    '1. Definitions',
    '--------------',
    '1.1. "Contributor"',
    'means each individual or legal entity that creates, contributes to',
    'the creation of, or owns Covered Software.',
    '1.2. "Contributor Version"',
    'means the combination of the Contributions of others (if any) used',
    "by a Contributor and that particular Contributor's Contribution.",
    '1.3. "Contribution"',
    'means Covered Software of a particular Contributor.',
    '1.4. "Covered Software"',
    'means Source Code Form to which the initial Contributor has attached',
    'the notice in Exhibit A, the Executable Form of such Source Code',
    'Form, and Modifications of such Source Code Form, in each case',
    'including portions thereof.',
    '1.5. "Incompatible With Secondary Licenses"',
    'means',
    '(a) that the initial Contributor has attached the notice described',
    'in Exhibit B to the Covered Software; or',
    '(b) that the Covered Software was made available under the terms of',
    'version 1.1 or earlier of the License, but not also under the',
    'terms of a Secondary License.',
    '1.6. "Executable Form"',
    'means any form of the work other than Source Code Form.',
    '1.7. "Larger Work"',
    'means a work that combines Covered Software with other material, in',
    'a separate file or files, that is not Covered Software.',
    '1.8. "License"',
    'means this document.',
    '1.9. "Licensable"',
    'means having the right to grant, to the maximum extent possible,',
    'whether at the time of the initial grant or subsequently, any and',
    'all of the rights conveyed by this License.',
    '1.10. "Modifications"',
    'means any of the following:',
    '(a) any file in Source Code Form that results from an addition to,',
    'deletion from, or modification of the contents of Covered',
    'Software; or',
    '(b) any new file in Source Code Form that contains any Covered',
    'Software.',
    '1.11. "Patent Claims" of a Contributor',
    'means any patent claim(s), including without limitation, method,',
    'process, and apparatus claims, in any patent Licensable by such',
    'Contributor that would be infringed, but for the grant of the',
    'License, by the making, using, selling, offering for sale, having',
    'made, import, or transfer of either its Contributions or its',
    'Contributor Version.',
    '1.12. "Secondary License"',
    'means either the GNU General Public License, Version 2.0, the GNU',
    'Lesser General Public License, Version 2.1, the GNU Affero General',
    'Public License, Version 3.0, or any later versions of those',
    'licenses.',
    '1.13. "Source Code Form"',
    'means the form of the work preferred for making modifications.',
    '1.14. "You" (or "Your")',
    'means an individual or a legal entity exercising rights under this',
    'License. For legal entities, "You" includes any entity that',
    'controls, is controlled by, or is under common control with You. For',
    '',
    '  ',
    'Ünïcödé ß café naïve',
    '日本語のテキスト',
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    'tabs\tand\nnewlines',
    'emoji 🙂 here',
    'UPPER lower MiXeD 12345',
]

TOKENIZER_CASES = [
    {"max_len": 16, "eos": "sticky", "lower": True, "pad_value": 1},
    {"max_len": 16, "eos": "yes", "lower": True, "pad_value": 0},
    {"max_len": 16, "eos": "none", "lower": True, "pad_value": 0},
    {"max_len": 8, "eos": "sticky", "lower": True, "pad_value": 1},
    {"max_len": 8, "eos": "yes", "lower": False, "pad_value": 0},
    {"max_len": 32, "eos": "sticky", "lower": True, "pad_value": "<pad>"},
]


def tokenize(sp, text, max_len, eos, lower, pad_value):
  """big_vision pp/ops_text.py `tokenize` for one string."""
  if lower:
    text = text.lower()
  ids = sp.encode(text)
  if eos != "none":
    ids = ids + [sp.eos_id()]
  pad = sp.piece_to_id(pad_value) if isinstance(pad_value, str) else pad_value
  if eos == "sticky" and len(ids) >= max_len:
    return ids[:max_len - 1] + ids[-1:]
  ids = ids[:max_len]
  return ids + [pad] * (max_len - len(ids))


def write_tokenizer(outdir, texts):
  import sentencepiece  # pylint: disable=g-import-not-at-top
  sp = sentencepiece.SentencePieceProcessor(
      model_file=os.path.join(HERE, "tokenizer", "spm.model"))
  enc = [sp.encode(t) for t in texts]
  expected = {
      "model": "spm.model (SentencePiece unigram; pad 0, eos 1, unk 2, no bos)",
      "vocab_size": sp.get_piece_size(), "texts": texts, "encode_raw": enc,
      "decode_raw": [sp.decode(e) for e in enc],
      "cases": [{**c, "tokens": [tokenize(sp, t, **c) for t in texts]}
                for c in TOKENIZER_CASES],
  }
  os.makedirs(outdir, exist_ok=True)
  with open(os.path.join(outdir, "expected.json"), "w", encoding="utf-8") as f:
    json.dump(expected, f, indent=0, ensure_ascii=False)


def main():
  out = sys.argv[1] if len(sys.argv) > 1 else HERE
  parts = sys.argv[2:] or ["siglip_s", "tokenizer"]
  if "siglip_s" in parts:
    write_model(os.path.join(out, "siglip_s"))
  if "tokenizer" in parts:
    write_tokenizer(os.path.join(out, "tokenizer"), TEXTS)
  print("wrote", out)


if __name__ == "__main__":
  main()
