"""Writes print.json: numpy's `str` of arrays (as `print` shows a JAX array), for
bv-core/tests/eager.rs, which prints the same values as concrete tensors and compares.

Run: python make.py (numpy 2.x, default print options).
"""

import json

import numpy as np

CASES = {
    "f32_int_valued": np.array([[1, 3], [5, 7]], np.float32),
    "f32_mixed": np.array([1.5, 2.25, -3.0], np.float32),
    "f32_fraction": np.array([0.1, 1 / 3, 2 / 3], np.float32),
    "f32_sci": np.array([1e-5, 1.0, 12345.678], np.float32),
    "f32_nonfinite": np.array([np.nan, np.inf, -np.inf, 1.5], np.float32),
    "f32_summarized": np.arange(2000, dtype=np.float32).reshape(40, 50) / np.float32(7),
    "f32_wrapped": np.linspace(-1, 1, 30, dtype=np.float32),
    "f32_rank3": np.arange(12, dtype=np.float32).reshape(2, 2, 3) - 5,
    "f64_thirds": np.array([1 / 3, -2 / 3, 10.0], np.float64),
    "i32": np.array([1, -20, 300], np.int32),
    "bool": np.array([True, False, True]),
    "u8_2d": np.arange(6, dtype=np.uint8).reshape(2, 3),
    "f32_scalar_int": np.array(2.0, np.float32),
    "f32_scalar_small": np.array(1e-5, np.float32),
    "f32_scalar_frac": np.array(0.1, np.float32),
    "i32_scalar": np.array(-7, np.int32),
    "f32_empty": np.zeros((0, 3), np.float32),
    "f32_zeros": np.zeros(3, np.float32),
}


def encode(v):
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v


out = {
    name: {
        "dtype": str(a.dtype),
        "shape": list(a.shape),
        "values": [encode(v) for v in a.ravel().tolist()],
        "str": str(a),
    }
    for name, a in CASES.items()
}
with open("print.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
