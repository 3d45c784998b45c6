"""Writes the MLP-Mixer golden fixture (`mixer/`) with big_vision's code.

  PYTHONPATH=/path/to/big_vision /path/to/venv-jax/bin/python tests/golden/mixer/make_mixer.py [OUT]

OUT defaults to this directory. Needs JAX 0.10.2, Flax 0.12.8, Optax 0.2.8 and big_vision
at commit 0127fb6b on PYTHONPATH (the versions the fixture was made with; XLA:CPU).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import train_case as tc  # pylint: disable=g-import-not-at-top

CASE = dict(
    fixture="mixer", model="mlp_mixer",
    model_kwargs={"num_classes": 10, "patch_size": [8, 8], "num_blocks": 2,
                  "hidden_dim": 32, "tokens_mlp_dim": 16, "channels_mlp_dim": 64},
    image_hw=[32, 32], batch=4, loss="sigmoid_xent",
    optimizer={"optax_name": "scale_by_adam",
               "optax": {"b1": 0.9, "b2": 0.999, "eps": 1e-08},
               "lr": 0.001, "wd": 0.0001, "grad_clip_norm": 1.0,
               "schedule": {"decay_type": "cosine"}},
    total_steps=10, seed=0, data_seed=11)


def main():
  out = sys.argv[1] if len(sys.argv) > 1 else HERE
  outdir = os.path.join(out, CASE["fixture"])
  tc.write_case(CASE, outdir)
  print("wrote", outdir)


if __name__ == "__main__":
  main()
