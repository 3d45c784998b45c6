"""Compares a regenerated fixture tree with the committed one.

  python tests/golden/compare.py NEW_DIR COMMITTED_DIR

Every `.npz` array bit for bit (else its max |diff|), every `.json` value exactly (else the
largest numeric difference and the first differing path), other files byte for byte. Lists
files present on one side only. Exit status 1 if anything differs.
"""

import json
import os
import sys

import numpy as np


def _json_diffs(a, b, path, out):
  if isinstance(a, dict) and isinstance(b, dict):
    for k in sorted(set(a) | set(b)):
      if k not in a or k not in b:
        out.append((f"{path}/{k}", "only on one side", None))
      else:
        _json_diffs(a[k], b[k], f"{path}/{k}", out)
  elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
    for i, (x, y) in enumerate(zip(a, b)):
      _json_diffs(x, y, f"{path}[{i}]", out)
  elif a != b or type(a) is not type(b):
    num = (isinstance(a, (int, float)) and isinstance(b, (int, float))
           and not isinstance(a, bool))
    out.append((path, f"{a!r} vs {b!r}", abs(a - b) if num else None))


def compare_file(new, old):
  """None if equal, else a one-line description."""
  if new.endswith(".npz"):
    a, b = np.load(new), np.load(old)
    if list(a.files) != list(b.files):
      return f"keys differ: {sorted(set(a.files) ^ set(b.files))} (or order)"
    worst = []
    for k in a.files:
      x, y = a[k], b[k]
      if x.dtype != y.dtype or x.shape != y.shape:
        worst.append((float("inf"), f"{k}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"))
      elif not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
        d = np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))
        worst.append((d, f"{k}: max abs diff {d:.3g}, {np.sum(x != y)} of {x.size} differ"))
    if worst:
      worst.sort(reverse=True)
      return f"{len(worst)} arrays differ; worst {worst[0][1]}"
    return None
  if new.endswith(".json"):
    with open(new) as f:
      a = json.load(f)
    with open(old) as f:
      b = json.load(f)
    diffs = []
    _json_diffs(a, b, "", diffs)
    if diffs:
      nums = [d for d in diffs if d[2] is not None]
      big = max(nums, key=lambda d: d[2]) if nums else None
      return (f"{len(diffs)} values differ, first {diffs[0][0]}: {diffs[0][1]}"
              + (f"; largest numeric {big[2]:.3g} at {big[0]}" if big else ""))
    with open(new, "rb") as f, open(old, "rb") as g:
      return None if f.read() == g.read() else "same values, different text"
  with open(new, "rb") as f, open(old, "rb") as g:
    return None if f.read() == g.read() else "bytes differ"


def files_under(root):
  return {os.path.relpath(os.path.join(d, f), root)
          for d, _, fs in os.walk(root) for f in fs
          if not f.endswith((".py", ".md", ".pyc"))}


def main():
  new, old = sys.argv[1], sys.argv[2]
  a, b = files_under(new), files_under(old)
  bad = 0
  for rel in sorted(a | b):
    if rel not in a or rel not in b:
      print(f"{rel}: only in {'new' if rel in a else 'committed'}")
      bad += rel in b
      continue
    msg = compare_file(os.path.join(new, rel), os.path.join(old, rel))
    print(f"{rel}: {'identical' if msg is None else msg}")
    bad += msg is not None
  sys.exit(1 if bad else 0)


if __name__ == "__main__":
  main()
