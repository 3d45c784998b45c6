"""NumPy float64 references for bv-core's tests/numpy_reference.rs.

    /work/venv-jax/bin/python make.py > numpy_ref.json

Every case names a bv_core::numpy function call mirrored by a row of the same name in
numpy_reference.rs. Inputs are seeded random float64 arrays (int32 for indices); outputs are
what NumPy (1.x/2.x, float64) computes. erf comes from math.erf, gelu/softmax/logsumexp from
their textbook formulas in float64, top_k from a stable argsort. Non-finite numbers are the
strings "nan", "inf", "-inf". Each value: {"dtype": "f64"|"int"|"bool", "shape": [...],
"data": [flattened]}.
"""
import json
import math

import numpy as np

rng = np.random.default_rng(15)


def f(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape)


def i(*shape, lo=0, hi=4):
    return rng.integers(lo, hi, size=shape).astype(np.int32)


def enc(a):
    a = np.asarray(a)
    if a.dtype == np.bool_:
        kind = "bool"
    elif np.issubdtype(a.dtype, np.integer):
        kind = "int"
    else:
        kind = "f64"
    data = []
    for v in a.astype(np.float64).ravel():
        data.append("nan" if math.isnan(v) else ("inf" if v == math.inf else ("-inf" if v == -math.inf else float(v))))
    return {"dtype": kind, "shape": list(a.shape), "data": data}


cases = {}


def case(name, ins, fn):
    out = fn(*ins)
    if not isinstance(out, (list, tuple)):
        out = [out]
    cases[name] = {"inputs": [enc(x) for x in ins], "outputs": [enc(o) for o in out]}


erf = np.vectorize(math.erf)
a23, b23, c3 = f(2, 3), f(2, 3), f(3)
pos = f(2, 3, lo=0.1, hi=3.0)
m34 = f(3, 4)
x234 = f(2, 3, 4)
truthy = rng.integers(-1, 2, size=(2, 3)).astype(np.float64)
truthy2 = rng.integers(-1, 2, size=(3,)).astype(np.float64)

# Elementwise (existing functions).
case("add", [a23, c3], np.add)
case("subtract", [a23, c3], np.subtract)
case("multiply", [a23, b23], np.multiply)
case("divide", [a23, pos], np.divide)
case("floor_divide", [a23 * 3, pos], np.floor_divide)
case("remainder", [a23 * 3, pos], np.remainder)
case("power", [pos, a23], np.power)
case("power_int", [a23], lambda x: x**3)
case("maximum", [a23, c3], np.maximum)
case("minimum", [a23, c3], np.minimum)
case("exp", [a23], np.exp)
case("expm1", [a23], np.expm1)
case("log", [pos], np.log)
case("log1p", [pos], np.log1p)
case("sqrt", [pos], np.sqrt)
case("rsqrt", [pos], lambda x: 1 / np.sqrt(x))
case("tanh", [a23], np.tanh)
case("sin", [a23], np.sin)
case("cos", [a23], np.cos)
case("erf", [a23], erf)
case("round", [a23 * 3], np.round)
case("floor", [a23], np.floor)
case("ceil", [a23], np.ceil)
case("abs", [a23], np.abs)
case("sign", [a23], np.sign)
case("square", [a23], np.square)
case("negative", [a23], np.negative)
case("clip", [a23], lambda x: np.clip(x, -0.5, 1.0))
case("where", [a23, b23], lambda x, y: np.where(x > 0, x, y))
case("logaddexp", [a23, b23], np.logaddexp)
case("arctan2", [a23, b23], np.arctan2)
case("equal", [truthy, truthy2], np.equal)
case("less", [a23, c3], np.less)
case("greater_equal", [a23, c3], np.greater_equal)
case("isfinite", [np.array([1.0, np.inf, -np.inf, np.nan, 0.0])], np.isfinite)
ia, ib = i(2, 3, lo=-8, hi=8), i(2, 3, lo=0, hi=4)
case("bitwise", [ia, ib], lambda x, y: (x & y, x | y, x ^ y, np.invert(x), x << y, x >> y))
case("integer_pow", [a23], lambda x: (x**5, x**-2, x**0))
case("astype", [a23 * 3], lambda x: (x.astype(np.int32), x.astype(bool)))
case("zeros_ones", [], lambda: (np.zeros((2, 3)), np.ones((3,))))

# New elementwise.
case("isnan_isinf", [np.array([1.0, np.inf, -np.inf, np.nan, 0.0])], lambda x: (np.isnan(x), np.isinf(x)))
case("tan", [a23 * 0.7], np.tan)
case("arctan", [a23 * 3], np.arctan)
case("sinh", [a23], np.sinh)
case("arcsin_arccos", [a23 * 0.5], lambda x: (np.arcsin(x), np.arccos(x)))
near = a23 + np.array([[0.0, 1e-7, 1e-3], [np.nan, 2e-6, -5e-6]])
case("isclose", [a23, near, np.array([1.0, np.inf, -np.inf, np.nan]), np.array([1.0, np.inf, np.inf, np.nan])], lambda x, y, u, w: (np.isclose(x, y, rtol=1e-5, atol=1e-6), np.isclose(u, w), np.allclose(x, x + 1e-9), np.allclose(x, y)))
case("count_nonzero", [truthy], lambda x: (np.count_nonzero(x, axis=1), np.count_nonzero(x)))
case("cosh", [a23], np.cosh)
case("exp2", [a23], np.exp2)
case("logical_and", [truthy, truthy2], np.logical_and)
case("logical_or", [truthy, truthy2], np.logical_or)
case("logical_xor", [truthy, truthy2], np.logical_xor)
case("logical_not", [truthy], np.logical_not)
case("reciprocal", [pos], np.reciprocal)
case("log2", [pos], np.log2)
case("log10", [pos], np.log10)

# Reductions.
case("sum", [x234], lambda x: np.sum(x, axis=(0, 2)))
case("sum_all", [x234], np.sum)
case("mean", [x234], lambda x: np.mean(x, axis=-1, keepdims=True))
case("max", [x234], lambda x: np.max(x, axis=1))
case("min", [x234], lambda x: np.min(x, axis=0))
case("prod", [x234], lambda x: np.prod(x, axis=2))
case("var", [x234], lambda x: np.var(x, axis=1, ddof=1))
case("std", [x234], lambda x: np.std(x, axis=(0, 1)))
case("all", [truthy], lambda x: np.all(x, axis=1))
case("any", [truthy], lambda x: np.any(x, axis=0))
case("cumsum", [m34], lambda x: np.cumsum(x, axis=1))
case("cumprod", [f(3, 5)], lambda x: (np.cumprod(x, axis=1), np.cumprod(x * (np.arange(5) != 2), axis=-1), np.cumprod(x, axis=0)))
case("cummax", [m34], lambda x: np.maximum.accumulate(x, axis=0))
case("cummin", [m34], lambda x: np.minimum.accumulate(x, axis=-1))

# Indexing and sorting.
case("argmax", [m34], lambda x: np.argmax(x, axis=1))
case("argmin", [m34], lambda x: np.argmin(x, axis=0))
case("sort", [m34], lambda x: np.sort(x, axis=1))
case("searchsorted", [np.array([-1.0, 0.0, 0.0, 0.5, 2.0]), np.array([[-2.0, 0.0, 0.25], [0.5, 2.0, 3.0]])], lambda a, v: (np.searchsorted(a, v), np.searchsorted(a, v, side="right")))
case("argsort", [m34], lambda x: np.argsort(x, axis=0, kind="stable"))
case("take", [m34, np.array([[2, 0], [-1, 1]], np.int32)], lambda x, idx: np.take(x, idx, axis=1))
case("take_along_axis", [m34, i(3, 2)], lambda x, idx: np.take_along_axis(x, idx, axis=1))
case("one_hot", [i(2, 3, hi=5)], lambda idx: (idx[..., None] == np.arange(4)).astype(np.float64))
case("top_k", [m34], lambda x: (-np.sort(-x, axis=-1, kind="stable")[:, :2], np.argsort(-x, axis=-1, kind="stable")[:, :2]))

# nn.
def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)

case("softmax", [m34], softmax)
case("log_softmax", [m34], lambda x: np.log(softmax(x)))
case("logsumexp", [m34], lambda x: np.log(np.sum(np.exp(x), axis=0)))
case("sigmoid", [a23], lambda x: 1 / (1 + np.exp(-x)))
case("log_sigmoid", [a23], lambda x: -np.logaddexp(0, -x))
case("relu", [a23], lambda x: np.maximum(x, 0))
case("silu", [a23], lambda x: x / (1 + np.exp(-x)))
case("gelu_tanh", [a23], lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))))
case("gelu_erf", [a23], lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))))

case("softplus", [a23 * 10], lambda x: np.logaddexp(x, 0))
case("leaky_relu", [a23], lambda x: np.where(x >= 0, x, 0.1 * x))
case("elu", [a23 * 100], lambda x: np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0))))
case("relu6", [a23 * 5], lambda x: np.minimum(np.maximum(x, 0), 6))
case("hard_tanh", [a23], lambda x: np.clip(x, -1, 1))
case("celu", [a23 * 100], lambda x: np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0) / 0.5)))
SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
case("selu", [a23], lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(np.minimum(x, 0))))
case("glu", [m34], lambda x: x[:, :2] / (1 + np.exp(-x[:, 2:])))
case("standardize", [m34], lambda x: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5))

img = f(2, 4, 4, 3)
case("max_pool", [img], lambda x: x.reshape(2, 2, 2, 2, 2, 3).max(axis=(2, 4)))
def avg_same_3x3(x):
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(p[:, a:a + 4, b:b + 4] for a in range(3) for b in range(3)) / 9
case("avg_pool", [img], avg_same_3x3)

# Linear algebra.
case("matmul", [x234, f(4, 2)], np.matmul)
case("einsum", [x234, f(2, 4, 5)], lambda x, y: np.einsum("bij,bjk->bik", x, y))
case("norm", [m34], lambda x: np.linalg.norm(x, axis=1))
case("dot", [c3, x234, f(4, 5), f(3, 2), f(4), f(2, 3), np.array(1.5)], lambda v, x, y, w, u, z, k: (np.dot(x, y), np.dot(v, w), np.dot(z, v), np.dot(x, u), np.dot(v, v), np.dot(k, z)))
case("inner", [x234, f(5, 4)], np.inner)
case("trace", [m34], lambda x: (np.trace(x), np.trace(x, 2), np.trace(x, -1)))
case("outer", [c3, f(2, 2)], np.outer)
case("vdot", [a23, f(6)], np.vdot)
case("diag_vec", [c3], lambda v: (np.diag(v, 1), np.diag(v, -2)))
case("diag_mat", [m34], lambda x: (np.diag(x), np.diag(x, 1), np.diag(x, -1), np.diag(x, 3)))

# Shapes and creation (existing).
case("reshape", [x234], lambda x: np.reshape(x, (4, -1)))
case("ravel", [m34], np.ravel)
case("transpose", [x234], lambda x: np.transpose(x, (2, 0, 1)))
case("broadcast_to", [c3], lambda x: np.broadcast_to(x, (2, 3)))
case("arange", [], lambda: np.arange(5))
case("full", [], lambda: np.full((2, 2), 2.5))

# Shapes (new).
case("concatenate", [a23, f(2, 2)], lambda x, y: np.concatenate([x, y], axis=1))
case("stack", [a23, b23], lambda x, y: (np.stack([x, y], 0), np.stack([x, y], -1)))
case("expand_dims", [a23], lambda x: (np.expand_dims(x, 1), np.expand_dims(x, -1)))
case("squeeze", [f(1, 3, 1)], lambda x: (np.squeeze(x), np.squeeze(x, -1)))
case("pad_constant", [m34], lambda x: np.pad(x, ((1, 2), (0, 3)), constant_values=1.5))
case("pad_edge", [m34], lambda x: np.pad(x, ((2, 1), (5, 0)), mode="edge"))
case("pad_reflect", [m34], lambda x: np.pad(x, ((2, 1), (5, 4)), mode="reflect"))
case("pad_symmetric", [m34], lambda x: np.pad(x, ((4, 1), (2, 6)), mode="symmetric"))
case("pad_wrap", [m34], lambda x: np.pad(x, ((3, 3), (1, 9)), mode="wrap"))
case("split", [f(6, 4)], lambda x: np.split(x, 3, axis=0) + np.split(x, 2, axis=1))
case("split_at", [f(6, 4)], lambda x: np.split(x, [1, 4], axis=0))
case("array_split", [f(7, 2)], lambda x: np.array_split(x, 3, axis=0))
case("tile", [a23], lambda x: (np.tile(x, (2, 1, 3)), np.tile(x, (2,))))
case("repeat", [a23], lambda x: (np.repeat(x, 2, axis=1), np.repeat(x, 3)))
case("flip", [a23], lambda x: (np.flip(x, 0), np.flip(x)))
case("roll", [a23], lambda x: (np.roll(x, 2, axis=1), np.roll(x, -4)))
case("diff", [x234], lambda x: (np.diff(x, axis=1), np.diff(x, axis=-1)))
case("swapaxes", [x234], lambda x: np.swapaxes(x, 0, 2))
case("moveaxis", [x234], lambda x: (np.moveaxis(x, 0, -1), np.moveaxis(x, 2, 0)))
case("tril", [x234], lambda x: (np.tril(x), np.tril(x, -1)))
case("triu", [x234], lambda x: (np.triu(x), np.triu(x, 2)))
case("full_like", [a23], lambda x: (np.full_like(x, 3.0), np.zeros_like(x), np.ones_like(x)))

# Creation (new).
case("arange_step", [], lambda: (np.arange(1.5, 7.0, 0.75), np.arange(5.0, -3.0, -2.0), np.arange(2, 11, 3)))
case("linspace", [], lambda: (np.linspace(-1.0, 2.0, 7), np.linspace(0.0, 1.0, 5, endpoint=False)))
case("eye", [], lambda: (np.eye(3, 4, 1), np.eye(4, 3, -1), np.tri(3, 5, 0)))
case("meshgrid", [c3, f(2), f(4)], lambda x, y, z: np.meshgrid(x, y, z) + np.meshgrid(x, y, indexing="ij"))

json.dump(cases, __import__("sys").stdout, indent=None, separators=(",", ":"))
