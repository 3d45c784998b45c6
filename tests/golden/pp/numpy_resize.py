"""NumPy emulation of TensorFlow's resize kernels as README.md documents them, used by
make_pp.py to fill index.json `resize_numpy_emulation` (float32 in TF's order) and
`resize_area_naive_f64_boxfilter` (a plain float64 box filter, for contrast)."""

import numpy as np

F32 = np.float32


def _to_uint8(v):
  return np.clip(v, 0, 255).astype(np.uint8)  # truncation, like tf.cast


def bilinear(img, oh, ow):
  """ResizeBilinear(half_pixel_centers=True), float32."""
  x = img.astype(F32)
  h, w = img.shape[:2]

  def axis(n_in, n_out):
    scale = F32(n_in) / F32(n_out)
    src = (np.arange(n_out, dtype=F32) + F32(0.5)) * scale - F32(0.5)
    lo = np.maximum(np.floor(src), 0).astype(np.int64)
    hi = np.minimum(np.ceil(src), n_in - 1).astype(np.int64)
    return lo, hi, (src - np.floor(src)).astype(F32)

  y0, y1, yl = axis(h, oh)
  x0, x1, xl = axis(w, ow)
  tl, tr = x[y0][:, x0], x[y0][:, x1]
  bl, br = x[y1][:, x0], x[y1][:, x1]
  xl = xl[None, :, None]
  top = tl + (tr - tl) * xl
  bot = bl + (br - bl) * xl
  return _to_uint8(top + (bot - top) * yl[:, None, None])


def nearest(img, oh, ow):
  """ResizeNearestNeighbor(half_pixel_centers=True)."""
  h, w = img.shape[:2]

  def idx(n_in, n_out):
    scale = F32(n_in) / F32(n_out)
    src = np.floor((np.arange(n_out, dtype=F32) + F32(0.5)) * scale).astype(np.int64)
    return np.minimum(src, n_in - 1)

  return img[idx(h, oh)][:, idx(w, ow)]


def _area_axis(n_in, n_out):
  """Per output index: (input indices, float32 weights) of TF's ResizeArea."""
  scale = F32(n_in) / F32(n_out)
  out = []
  for o in range(n_out):
    a, b = F32(o) * scale, F32(o + 1) * scale
    idx, wts = [], []
    for i in range(int(np.floor(a)), int(np.ceil(b))):
      lo, hi = F32(i), F32(i + 1)
      if lo < a:
        wt = scale if hi > b else hi - a
      else:
        wt = b - lo if hi > b else F32(1)
      idx.append(min(i, n_in - 1))
      wts.append(F32(wt))
    out.append((idx, wts))
  return out, scale


def area(img, oh, ow):
  """ResizeArea in float32, summing in TF's order."""
  x = img.astype(F32)
  h, w = img.shape[:2]
  ys, sy = _area_axis(h, oh)
  xs, sx = _area_axis(w, ow)
  inv = F32(1) / F32(sy * sx)
  res = np.empty((oh, ow, img.shape[2]), F32)
  for oy, (yi, yw) in enumerate(ys):
    for ox, (xi, xw) in enumerate(xs):
      total = np.zeros(img.shape[2], F32)
      for i, wy in zip(yi, yw):
        row = x[i]
        s = row[xi[0]] * xw[0]
        for j in xi[1:-1]:
          s = s + row[j]
        if len(xi) > 1:
          s = s + row[xi[-1]] * xw[-1]
        total = total + s * wy
      res[oy, ox] = total * inv
  return _to_uint8(res)


def area_naive_f64(img, oh, ow):
  """Box filter in float64: overlap weights, weighted mean, truncating cast."""
  h, w = img.shape[:2]

  def weights(n_in, n_out):
    s = n_in / n_out
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
      for i in range(n_in):
        m[o, i] = max(0.0, min(i + 1, (o + 1) * s) - max(i, o * s))
    return m / s

  wy, wx = weights(h, oh), weights(w, ow)
  rows = np.einsum("oi,ijc->ojc", wy, img.astype(np.float64))
  return _to_uint8(np.einsum("pj,ojc->opc", wx, rows))


def factor_size(h, w, target, use_max):
  """resize_small / resize_long output size (float32 factor, round half even)."""
  factor = F32(target) / F32(max(h, w) if use_max else min(h, w))
  return int(np.round(F32(h) * factor)), int(np.round(F32(w) * factor))
