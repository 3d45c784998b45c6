"""JAX's derivatives at kinks, ties and singular points, for bv-core's tests/autodiff_kinks.rs.

    /path/to/venv/bin/python kinks_jax.py > kinks_jax.json

Run with JAX 0.10.2 (jaxlib 0.10.2, XLA:CPU, float32, x64 off). For every case below (each
mirrored by a row of the same name in autodiff_kinks.rs) it records, at the given inputs:
  value  f(*inputs), flattened;
  grads  the cotangents of the float inputs for the output cotangent `weights` (what
         jax.grad of sum(f(*inputs) * weights) gives); null for integer and bool inputs;
  jvp    the output tangent for the float inputs' `tangents` (integer and bool inputs get
         float0 zeros).
weights are 1, 2, 3, ... over the flattened output and tangents 1, 1.25, 1.5, ... over each
flattened float input, so routing (sort, top_k, ties) shows in the numbers. Non-finite numbers
are written as the strings "nan", "inf", "-inf".
"""
import json
import math
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

NAN, INF = float("nan"), float("inf")


def f32(v, shape=None):
    a = np.array(v, dtype=np.float32)
    return a.reshape(shape) if shape is not None else a


def take_at(x, idx, axis):
    """x at one index per row along axis (the index array lacks that axis)."""
    return jnp.take_along_axis(x, jnp.expand_dims(idx, axis), axis=axis)


# name -> (function, inputs). Inputs are numpy arrays; their dtype decides float/int/bool.
CASES = {
    # relu is a custom_jvp: derivative select(x > 0, g, 0), so 0 at 0 (and at -0, NaN).
    "relu": (jax.nn.relu, [f32([-1, -0.0, 0, 1e-30, 2, NAN, -INF, INF])]),
    # lax.max/min split a tie 0.5/0.5 (_balanced_eq against the output: NaN gives 0 to both).
    # NaN is only a first operand here: the XLA:CPU plugin bv loads uses its fast min/max,
    # which returns the first operand when either is NaN (JAX's XLA returns NaN); turning
    # that off (xla_cpu_enable_fast_min_max=false) made the gamma sampler's program compile
    # for over 15 minutes, so bv keeps it and these cases stay where both agree.
    "maximum": (jnp.maximum, [f32([1, 2, 0, -0.0, NAN, -INF, 3]),
                              f32([1, 1, -0.0, 0, 1, -INF, 5])]),
    "minimum": (jnp.minimum, [f32([1, 2, 0, -0.0, NAN, -INF, 3]),
                              f32([1, 1, -0.0, 0, 1, -INF, 5])]),
    "maximum_scalar": (lambda x: jnp.maximum(x, 0.0), [f32([-1, 0, -0.0, 2])]),
    # reduce_max/min: the cotangent is split equally among the elements equal to the result
    # (-0 == 0 counts as a tie).
    "reduce_max_axis": (lambda x: jnp.max(x, axis=1),
                        [f32([1, 3, 3, 2, 2, 2, -0.0, 0, -1, -INF, -INF, -INF], (4, 3))]),
    "reduce_min_axis0": (lambda x: jnp.min(x, axis=0),
                         [f32([1, 3, 0, 1, 2, 0, 1, 5, 0, 4, 2, -1], (4, 3))]),
    "reduce_max_all": (jnp.max, [f32([1, 5, 5, 5, 0, 2], (2, 3))]),
    # abs: select(x >= 0, g, -g): +1 at 0 and -0, -1 at NaN.
    "abs": (jnp.abs, [f32([-1, -0.0, 0, 2, NAN, -INF])]),
    "sign": (jnp.sign, [f32([-1, -0.0, 0, 2, NAN])]),
    # jnp.clip = minimum(hi, maximum(lo, x)): ties at the bounds split 0.5/0.5.
    "clip": (jnp.clip, [f32([-1, 0, 0.5, 1, 2]), f32(0), f32(1)]),
    # lax.clamp: the operand's tangent passes only strictly inside (lo, hi).
    # (Bounds of the operand's shape: JAX's clamp VJP rejects scalar bounds.)
    "clamp": (lax.clamp, [f32([0] * 5), f32([-1, 0, 0.5, 1, 2]), f32([1] * 5)]),
    "clamp_inverted": (lax.clamp, [f32([1] * 3), f32([-1, 0.5, 2]), f32([0] * 3)]),
    # where/select route the cotangent by the predicate; 0 * inf in the other branch is NaN.
    "where_branches": (lambda x: jnp.where(x > 0, x, 2 * x), [f32([0, 1, -1, -0.0])]),
    "where_sqrt": (lambda x: jnp.where(x > 0, jnp.sqrt(x), 0.0), [f32([0, 4, -1])]),
    "where_bool_input": (lambda b, x, y: jnp.where(b, x, y),
                         [np.array([True, False, True]), f32([1, 2, 3]), f32([4, 5, 6])]),
    # sort: stable, -0 == 0, NaN last; tangents follow the permutation.
    "sort": (jnp.sort, [f32([3, 1, 3, 0, -0.0, 1, NAN, 2])]),
    "sort_axis0": (lambda x: jnp.sort(x, axis=0), [f32([2, 0, 1, -0.0, 2, 1, 0, 1], (4, 2))]),
    "argsort_values": (lambda x: jnp.take_along_axis(x, jnp.argsort(x), axis=0),
                       [f32([3, 1, 3, 0, -0.0, 1, NAN, 2])]),
    "argsort_indices": (lambda x: jnp.argsort(x).astype(jnp.float32),
                        [f32([3, 1, 3, 0, -0.0, 1, NAN, 2])]),
    # top_k: lower index first among equal values; its tangent gathers at the indices.
    "top_k_values": (lambda x: lax.top_k(x, 4)[0], [f32([1, 3, 3, 2, 3, 0, -0.0, 1])]),
    "top_k_indices": (lambda x: lax.top_k(x, 4)[1].astype(jnp.float32),
                      [f32([1, 3, 3, 2, 3, 0, -0.0, 1])]),
    "top_k_zeros": (lambda x: lax.top_k(x, 3)[0], [f32([-0.0, 0, -1, -0.0])]),
    # argmax/argmin: integer results, zero tangents; the first of equal extremes.
    "argmax_indices": (lambda x: jnp.argmax(x, axis=-1).astype(jnp.float32),
                       [f32([1, 3, 3, NAN, 1, NAN, 2, 2, 2], (3, 3))]),
    "argmax_take": (lambda x: take_at(x, jnp.argmax(x, axis=-1), -1),
                    [f32([1, 3, 3, 0, 1, 0, 2, 2, 2], (3, 3))]),
    "argmin_take": (lambda x: take_at(x, jnp.argmin(x, axis=0), 0),
                    [f32([1, 3, 0, 1, 2, 0, 4, 2, 5], (3, 3))]),
    # Singular points: JAX's rules give inf/nan there.
    "sqrt": (jnp.sqrt, [f32([0, -0.0, 4, -1])]),
    "rsqrt": (lax.rsqrt, [f32([0, -0.0, 4])]),
    "log": (jnp.log, [f32([0, -0.0, 1, -1])]),
    "log1p": (jnp.log1p, [f32([-1, 0, 1])]),
    "div": (jnp.divide, [f32([1, 0, -1, 0]), f32([0, 0, 0, 2])]),
    "atan2": (jnp.arctan2, [f32([0, 0, 1]), f32([0, 1, 0])]),
    "pow": (jnp.power, [f32([0, 0, 0, 0, 2, -1]), f32([2, 0.5, 0, 1, 3, 0.5])]),
    # jnp.power with a Python int exponent is lax.integer_pow (derivative 0 for exponent 0).
    "power_int2": (lambda x: jnp.power(x, 2), [f32([0, -0.0, 3])]),
    "power_int0": (lambda x: jnp.power(x, 0), [f32([0, 2, NAN])]),
    "power_int_neg1": (lambda x: jnp.power(x, -1), [f32([0, 2])]),
    "power_int3": (lambda x: jnp.power(x, 3), [f32([0, -2, 1.5])]),
    "remainder": (jnp.remainder, [f32([-3, 3, 4, -4]), f32([2, 2, 2, 2])]),
    "prod_with_zero": (lambda x: jnp.prod(x, axis=1), [f32([0, 2, 3, 0, 0, 5, 1, 2, 3], (3, 3))]),
    "norm_zero": (jnp.linalg.norm, [f32([0, 0, 0])]),
    "norm": (jnp.linalg.norm, [f32([3, 4, 0])]),
    "norm_rows": (lambda x: jnp.linalg.norm(x, axis=1), [f32([0, 0, 3, 4], (2, 2))]),
    "std_constant": (jnp.std, [f32([2, 2, 2])]),
    "var_constant": (jnp.var, [f32([2, 2, 2])]),
    # Integer and bool values carry no derivative.
    "stop_gradient": (lambda x: x * lax.stop_gradient(x), [f32([-1, 0, 2])]),
    "through_int": (lambda x: x.astype(jnp.int32).astype(jnp.float32) * x, [f32([1.5, -2.7, 0])]),
    "rounding": (lambda x: jnp.floor(x) + jnp.round(x) + jnp.ceil(x), [f32([0.5, -1.5, 2])]),
    "int_input": (lambda x, n: x * n, [f32([1, 2, 3]), np.array([2, -1, 0], np.int32)]),
    "bool_mask": (lambda x: x * (x > 0), [f32([-1, 0, 2])]),
    # Scatter with a repeated index: one update wins (the same in value and derivative);
    # the others get no cotangent, nor do the overwritten operand rows.
    "scatter_set_repeated": (lambda x, u: x.at[jnp.array([1, 1, 3])].set(u),
                             [f32(range(10), (5, 2)), f32(range(10, 16), (3, 2))]),
    # Windows and scans with ties.
    "max_pool_ties": (lambda x: nn.max_pool(x, (2, 2), strides=(1, 1), padding="VALID"),
                      [f32([1, 1, 0, 2, 1, 1, 2, 2, 0, 3, 3, 3, 0, 3, 3, 1], (1, 4, 4, 1))]),
    "max_pool_same": (lambda x: nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME"),
                      [f32([0] * 8 + [1] * 8, (1, 4, 4, 1))]),
    "cummax_ties": (lambda x: lax.cummax(x, axis=0), [f32([1, 1, 0, 2, 2, 2])]),
    "cummin_ties": (lambda x: lax.cummin(x, axis=0, reverse=True), [f32([1, 1, 0, 0, 2, 2])]),
    # Softmax family with tied maxima (the max is a stop_gradient constant in JAX).
    "logsumexp": (lambda x: jax.nn.logsumexp(x, axis=-1),
                  [f32([1, 1, 0, -INF, -INF, -INF, 2, 2, 2], (3, 3))]),
    "softmax": (lambda x: jax.nn.softmax(x, axis=-1), [f32([1, 1, 0, 2, 2, 2], (2, 3))]),
    "log_softmax": (lambda x: jax.nn.log_softmax(x, axis=-1), [f32([1, 1, 0, 2, 2, 2], (2, 3))]),
    # log_sigmoid = -softplus(-x) = -logaddexp(-x, 0), logaddexp a custom_jvp.
    "log_sigmoid": (jax.nn.log_sigmoid, [f32([0, -0.0, 1, -1, 50, -50, INF, -INF])]),
    "logaddexp": (jnp.logaddexp, [f32([0, 1, -INF, INF, 2, NAN]), f32([0, 1, -INF, INF, -INF, 0])]),
}


def weights(shape):
    n = int(np.prod(shape))
    return np.arange(1, n + 1, dtype=np.float32).reshape(shape)


def tangent(x):
    if x.dtype.kind == "f":
        n = x.size
        return (1 + 0.25 * np.arange(n, dtype=np.float32)).reshape(x.shape)
    return np.zeros(x.shape, dtype=jax.dtypes.float0)


def enc(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def flat(a):
    return [enc(v) for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def run(f, xs):
    out, pullback = jax.vjp(f, *xs)
    w = weights(out.shape)
    cts = pullback(jnp.asarray(w, out.dtype))
    ts = [tangent(x) for x in xs]
    _, tout = jax.jvp(f, tuple(xs), tuple(ts))
    return {
        "inputs": [{"dtype": str(x.dtype), "shape": list(x.shape), "values": flat(x)} for x in xs],
        "tangents": [flat(t) if x.dtype.kind == "f" else None for x, t in zip(xs, ts)],
        "weights": flat(w),
        "value": flat(out),
        "grads": [flat(c) if x.dtype.kind == "f" else None for x, c in zip(xs, cts)],
        "jvp": flat(tout),
    }


def main():
    assert jax.__version__ == "0.10.2", jax.__version__
    jax.config.update("jax_platforms", "cpu")
    out = {"jax": jax.__version__, "cases": {k: run(f, xs) for k, (f, xs) in CASES.items()}}
    json.dump(out, sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
