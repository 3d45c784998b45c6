"""Writes the pp golden set (`outputs/*.npz`, `onehot.npz`, `index.json`) with big_vision's
pp ops on TensorFlow, from the photos already in `inputs/`.

  PYTHONPATH=/path/to/big_vision /path/to/venv-tf/bin/python tests/golden/pp/make_pp.py [OUT]

OUT defaults to this directory. Needs TensorFlow 2.21 (CPU), big_vision at commit 0127fb6b
(its `pp/ops_general.py` imports JAX, so also jax 0.10.2 / flax 0.12.8 / einops /
ml_collections) and Pillow (the second decoder in `decoder_comparison`). The inputs
themselves were encoded once from scikit-image / scikit-learn sample photos (README.md);
this script only reads them.
"""

import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # pylint: disable=g-import-not-at-top
from PIL import Image
import tensorflow as tf

from big_vision.pp import builder
from big_vision.pp import ops_general  # pylint: disable=unused-import
from big_vision.pp import ops_image  # pylint: disable=unused-import
import numpy_resize as nr

PHOTO_SPECS = {
    "decode": "decode",
    "resize_bilinear": "decode|resize(96)",
    "resize_nearest": "decode|resize(96, method='nearest')",
    "resize_small": "decode|resize_small(160)",
    "resize_long": "decode|resize_long(128)",
    "central_crop": "decode|central_crop(100)",
    "value_range": "decode|central_crop(64)|value_range(-1, 1)",
    "vgg_value_range": "decode|central_crop(64)|vgg_value_range",
    "eval_uint8": "decode|resize_small(256)|central_crop(224)",
}
EVAL = {"eval": "decode|resize_small(256)|central_crop(224)|value_range(-1, 1)"}
UP_SPECS = {
    "decode": "decode",
    "resize_bilinear_up": "decode|resize(160)",
    "resize_nearest_up": "decode|resize(160, method='nearest')",
    "resize_small_up": "decode|resize_small(200)",
}
CROP = [100, 200, 96, 128]
# (file, source photo, how it was encoded, pp outputs)
INPUTS = [
    ("chelsea_q90.jpg", "chelsea.png", {"fmt": "JPEG", "quality": 90, "subsampling": 2},
     {**PHOTO_SPECS, **EVAL}),
    ("chelsea.png", "chelsea.png", {"fmt": "orig"}, PHOTO_SPECS),
    ("rocket.jpg", "rocket.jpg", {"fmt": "orig"}, PHOTO_SPECS),
    ("coffee_crop_q75_444.jpg", "coffee.png",
     {"fmt": "JPEG", "quality": 75, "subsampling": 0, "crop": CROP}, UP_SPECS),
    ("coffee_crop_progressive.jpg", "coffee.png",
     {"fmt": "JPEG", "quality": 85, "subsampling": 2, "progressive": True, "crop": CROP},
     {"decode": "decode"}),
    ("coffee_crop_gray.jpg", "coffee.png",
     {"fmt": "JPEG", "quality": 90, "mode": "L", "crop": CROP}, {"decode": "decode"}),
    ("coffee_crop_gray.png", "coffee.png", {"fmt": "PNG", "mode": "L", "crop": CROP},
     {"decode": "decode"}),
    ("coffee_crop_rgba.png", "coffee.png", {"fmt": "PNG", "mode": "RGBA", "crop": CROP},
     {"decode": "decode"}),
]
ONEHOT = [
    ("onehot(10)", 3),
    ("onehot(6)", [1, 4, 4]),
    ("onehot(6, multi=False)", [1, 4, 4]),
    ("onehot(5, on=0.9, off=0.025)", 2),
    ("onehot(4, key='labels', key_result='labels_1hot')", [0, 2]),
]
# The NumPy emulation of each resize output: (kernel, size rule).
RESIZE_EMULATION = {
    "resize_bilinear": (nr.bilinear, lambda h, w: (96, 96)),
    "resize_nearest": (nr.nearest, lambda h, w: (96, 96)),
    "resize_small": (nr.area, lambda h, w: nr.factor_size(h, w, 160, False)),
    "resize_long": (nr.area, lambda h, w: nr.factor_size(h, w, 128, True)),
    "resize_bilinear_up": (nr.bilinear, lambda h, w: (160, 160)),
    "resize_nearest_up": (nr.nearest, lambda h, w: (160, 160)),
    "resize_small_up": (nr.area, lambda h, w: nr.factor_size(h, w, 200, False)),
}
AREA_OUTPUTS = ("resize_small", "resize_long", "resize_small_up")


def run_pp(spec, example):
  """big_vision's pp function applied to `example` inside a tf.data map."""
  ds = tf.data.Dataset.from_tensors(example).map(builder.get_preprocess_fn(spec))
  return {k: v.numpy() for k, v in next(iter(ds)).items()}


def diff_stats(a, b, full=True):
  d = np.abs(a.astype(np.int64) - b.astype(np.int64)).ravel()
  n = int(np.count_nonzero(d))
  if not full:
    return {"n_differ": n, "values": int(d.size)}
  return {"values": int(d.size), "n_differ": n, "frac_differ": round(n / d.size, 6),
          "mean_abs": round(float(d.mean()), 4), "max_abs": int(d.max()),
          "hist_abs_1_2_3_4+": [int(np.sum(d == 1)), int(np.sum(d == 2)),
                                int(np.sum(d == 3)), int(np.sum(d >= 4))]}


def decoder_comparison(name, data, decoded):
  pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
  if not name.endswith(".jpg"):
    return {"pp_decode_vs_PIL": diff_stats(decoded, pil, full=False)}

  def tf_jpeg(**kw):
    return tf.io.decode_jpeg(data, channels=3, **kw).numpy()

  accurate = tf_jpeg(dct_method="INTEGER_ACCURATE")
  return {"pp_decode_vs_PIL": diff_stats(decoded, pil),
          "pp_decode_vs_tf_INTEGER_ACCURATE": diff_stats(decoded, accurate),
          "pp_decode_vs_tf_INTEGER_FAST": diff_stats(decoded,
                                                     tf_jpeg(dct_method="INTEGER_FAST")),
          "pp_decode_vs_tf_decode_jpeg_default": diff_stats(decoded, tf_jpeg()),
          "PIL_vs_tf_INTEGER_ACCURATE": diff_stats(pil, accurate)}


def main():
  out = sys.argv[1] if len(sys.argv) > 1 else HERE
  os.makedirs(os.path.join(out, "outputs"), exist_ok=True)
  records, comparison = [], {}
  emulation = {k: [] for k in RESIZE_EMULATION}
  naive = {k: [] for k in AREA_OUTPUTS}
  for name, source, encoding, specs in INPUTS:
    with open(os.path.join(HERE, "inputs", name), "rb") as f:
      data = f.read()
    arrays = {k: run_pp(spec, {"image": tf.constant(data)})["image"]
              for k, spec in specs.items()}
    npz = f"outputs/{name.replace('.', '_')}.npz"
    np.savez(os.path.join(out, npz), **arrays)
    records.append({
        "input": f"inputs/{name}", "bytes": len(data), "source": source,
        "encoding": encoding, "outputs": specs, "npz": npz,
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                   for k, v in arrays.items()}})
    decoded = arrays["decode"]
    comparison[name] = decoder_comparison(name, data, decoded)
    h, w = decoded.shape[:2]
    for k in arrays:
      if k in RESIZE_EMULATION:
        kernel, size = RESIZE_EMULATION[k]
        got = kernel(decoded, *size(h, w))
        emulation[k].append({"input": name, **_short(got, arrays[k])})
      if k in AREA_OUTPUTS:
        got = nr.area_naive_f64(decoded, *RESIZE_EMULATION[k][1](h, w))
        naive[k].append({"input": name, **_short(got, arrays[k])})

  onehot_arrays, onehot_records = {}, []
  for j, (spec, labels) in enumerate(ONEHOT):
    res = run_pp(spec, {"labels": tf.constant(labels, tf.int64)})
    outs = {}
    for k, v in res.items():
      onehot_arrays[f"case{j}/{k}"] = v
      outs[f"case{j}/{k}"] = {"shape": list(v.shape), "dtype": str(v.dtype)}
    onehot_records.append({"case": j, "pp": spec, "labels": labels,
                           "labels_dtype": "int64", "outputs": outs})
  np.savez(os.path.join(out, "onehot.npz"), **onehot_arrays)

  index = {"tensorflow": tf.__version__, "inputs": records, "onehot": onehot_records,
           "decoder_comparison": comparison,
           "resize_numpy_emulation": {k: v for k, v in emulation.items() if v},
           "resize_area_naive_f64_boxfilter": {k: v for k, v in naive.items() if v}}
  with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(index, f, indent=1)
    f.write("\n")
  print("wrote", out)


def _short(got, want):
  d = np.abs(got.astype(np.int64) - want.astype(np.int64))
  return {"values": int(d.size), "n_differ": int(np.count_nonzero(d)),
          "max_abs": int(d.max())}


if __name__ == "__main__":
  main()
