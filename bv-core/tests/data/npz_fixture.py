"""NumPy side of bv-core's .npz tests (`cargo test -p bv-core --test npz`).

  python3 npz_fixture.py make OUT.npz stored|deflated
      every dtype bv has, C and Fortran order, big-endian, a scalar and an empty array;
      values by construction (see `expected` in tests/npz.rs); bfloat16 via ml_dtypes.
  python3 npz_fixture.py digest FILE.npz...
      JSON {file: {name: [dtype, shape, sha256 of the C-ordered little-endian bytes]}}.
  python3 npz_fixture.py summary FILE.npz...
      JSON {file: {name: [dtype, shape, float64 sum, first, last]}} (tests/data/golden_npz_ref.json).
"""
import hashlib
import json
import sys

import numpy as np

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "bfloat16", "float32", "float64"]


def values(dtype):
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    if dtype == "bool":
        return a % 3 == 0
    if dtype.startswith("int"):
        a = a - 12
    elif dtype.startswith("float") or dtype == "bfloat16":
        a = (a - 12) * 0.25
    if dtype == "bfloat16":
        import ml_dtypes
        return a.astype(ml_dtypes.bfloat16)
    return a.astype(dtype)


def make(out, how):
    arrays = {}
    for d in DTYPES:
        try:
            v = values(d)
        except ImportError:
            continue
        arrays[d + "_C"] = np.ascontiguousarray(v)
        arrays[d + "_F"] = np.asfortranarray(v)
    arrays["be_int32"] = values("int32").astype(">i4")
    arrays["scalar_float64"] = np.float64(3.5)
    arrays["empty_int32"] = np.zeros((0, 5), np.int32)
    (np.savez_compressed if how == "deflated" else np.savez)(out, **arrays)


def le_bytes(v):
    v = np.ascontiguousarray(v)
    if v.dtype.byteorder == ">":
        v = v.astype(v.dtype.newbyteorder("<"))
    return v.tobytes()


def main():
    cmd, *args = sys.argv[1:]
    if cmd == "make":
        make(*args)
        return
    out = {}
    for f in args:
        d = np.load(f)
        entry = {}
        for k in d.files:
            v = d[k]
            dt = "bfloat16" if v.dtype.str in ("|V2", "<V2") else str(v.dtype.newbyteorder("="))
            if cmd == "digest":
                entry[k] = [dt, list(v.shape), hashlib.sha256(le_bytes(v)).hexdigest()]
            else:
                flat = v.reshape(-1).astype(np.float64)
                entry[k] = [dt, list(v.shape), float(flat.sum()),
                            float(flat[0]) if flat.size else None,
                            float(flat[-1]) if flat.size else None]
        out[f] = entry
    json.dump(out, sys.stdout, indent=0, sort_keys=True)


main()
