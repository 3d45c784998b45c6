//! Arrays built from shapes and ranges: `arange_step`, `linspace`, `eye`, `tri`, `tril`,
//! `triu`, `meshgrid`, `full_like`, `zeros_like`, `ones_like`, written with `iota`, compare
//! and select.

use crate::dtype::DType;
use crate::numpy::{astype, broadcast_to};
use crate::prim::{self, CompareDir, Scalar};
use crate::trace::{fail, Aval, Tensor};

/// `start, start + step, ...` below `stop` (above it for a negative step) in `dtype`, as
/// `jnp.arange(start, stop, step)`: `ceil((stop - start) / step)` elements, each computed
/// as `start + i * step`. [`crate::numpy::arange`] is the one-argument form.
#[track_caller]
pub fn arange_step(start: f64, stop: f64, step: f64, dtype: DType) -> Tensor {
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !stop.is_finite() {
        let reason =
            format!("start {start}, stop {stop} and step {step} must be finite, step non-zero");
        return fail("arange_step", reason, &[], None, Aval::new([0], dtype));
    }
    let n = ((stop - start) / step).ceil().max(0.0) as usize;
    let i = prim::iota(dtype, &[n], 0);
    let step_t = prim::full(&[n], step, dtype);
    let start_t = prim::full(&[n], start, dtype);
    prim::add(&prim::mul(&i, &step_t), &start_t)
}

/// `num` evenly spaced values from `start` to `stop` (included when `endpoint`) in a float
/// `dtype`, as `jnp.linspace`: `start + i * step`, the last exactly `stop` when included.
#[track_caller]
pub fn linspace(start: f64, stop: f64, num: usize, endpoint: bool, dtype: DType) -> Tensor {
    if !dtype.is_float() {
        let reason = format!("needs a float dtype, got {dtype}");
        return fail("linspace", reason, &[], None, Aval::new([num], dtype));
    }
    let div = if endpoint { num.saturating_sub(1) } else { num };
    let step = if div > 0 {
        (stop - start) / div as f64
    } else {
        0.0
    };
    let i = prim::iota(dtype, &[num], 0);
    let y = prim::add(
        &prim::mul(&i, &prim::full(&[num], step, dtype)),
        &prim::full(&[num], start, dtype),
    );
    if !endpoint || num < 2 {
        return y;
    }
    let last = prim::compare(
        &prim::iota(DType::I32, &[num], 0),
        &prim::full(&[num], (num - 1) as i64, DType::I32),
        CompareDir::Eq,
    );
    prim::select(&last, &prim::full(&[num], stop, dtype), &y)
}

/// True on and below the `k`-th diagonal of an `n x m` matrix (`k > 0` above the main one).
#[track_caller]
fn lower_mask(n: usize, m: usize, k: i64) -> Tensor {
    let row = prim::iota(DType::I64, &[n, m], 0);
    let col = prim::iota(DType::I64, &[n, m], 1);
    let diff = prim::sub(&col, &row);
    prim::compare(&diff, &prim::full(&[n, m], k, DType::I64), CompareDir::Le)
}

/// The `n x m` matrix with ones on the `k`-th diagonal (`jnp.eye(n, m, k)`).
#[track_caller]
pub fn eye(n: usize, m: usize, k: i64, dtype: DType) -> Tensor {
    let row = prim::iota(DType::I64, &[n, m], 0);
    let col = prim::iota(DType::I64, &[n, m], 1);
    let on = prim::compare(
        &prim::sub(&col, &row),
        &prim::full(&[n, m], k, DType::I64),
        CompareDir::Eq,
    );
    astype(&on, dtype)
}

/// The `n x m` matrix with ones on and below the `k`-th diagonal (`jnp.tri`).
#[track_caller]
pub fn tri(n: usize, m: usize, k: i64, dtype: DType) -> Tensor {
    astype(&lower_mask(n, m, k), dtype)
}

/// Zeros where `keep` is false over the last two dimensions of `x`.
#[track_caller]
fn masked(op: &'static str, x: &Tensor, k: i64, lower: bool) -> Tensor {
    let r = x.rank();
    if r < 2 {
        let reason = format!("needs at least 2 dimensions, got shape {:?}", x.shape());
        return fail(op, reason, &[x.aval()], Some(x), x.aval().clone());
    }
    let (n, m) = (x.shape()[r - 2], x.shape()[r - 1]);
    let keep = if lower {
        lower_mask(n, m, k)
    } else {
        prim::not(&lower_mask(n, m, k - 1))
    };
    let keep = broadcast_to(&keep, x.shape());
    prim::select(&keep, x, &prim::full(x.shape(), 0, x.dtype()))
}

/// `x` with the elements above the `k`-th diagonal of its last two dimensions zeroed.
#[track_caller]
pub fn tril(x: &Tensor, k: i64) -> Tensor {
    masked("tril", x, k, true)
}

/// `x` with the elements below the `k`-th diagonal of its last two dimensions zeroed.
#[track_caller]
pub fn triu(x: &Tensor, k: i64) -> Tensor {
    masked("triu", x, k, false)
}

/// How [`meshgrid`] orders the first two output dimensions, as numpy's `indexing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indexing {
    /// Cartesian (numpy's default): the first two dimensions are `(len(y), len(x))`.
    Xy,
    /// Matrix: dimension `i` follows input `i`.
    Ij,
}

/// Coordinate arrays from 1-D coordinate vectors (`jnp.meshgrid`); every output has the
/// shape of all inputs' lengths (first two exchanged for [`Indexing::Xy`]).
#[track_caller]
pub fn meshgrid(xs: &[&Tensor], indexing: Indexing) -> Vec<Tensor> {
    if let Some(bad) = xs.iter().find(|x| x.rank() != 1) {
        let reason = format!("needs 1-D inputs, got shape {:?}", bad.shape());
        let p = fail(
            "meshgrid",
            reason,
            &[bad.aval()],
            Some(bad),
            bad.aval().clone(),
        );
        return vec![p; xs.len()];
    }
    let mut shape: Vec<usize> = xs.iter().map(|x| x.shape()[0]).collect();
    let swap = indexing == Indexing::Xy && xs.len() >= 2;
    if swap {
        shape.swap(0, 1);
    }
    xs.iter()
        .enumerate()
        .map(|(i, x)| {
            let dim = match i {
                0 if swap => 1,
                1 if swap => 0,
                _ => i,
            };
            prim::broadcast_in_dim(x, &shape, &[dim])
        })
        .collect()
}

/// A tensor of `x`'s shape and type filled with `v`.
#[track_caller]
pub fn full_like(x: &Tensor, v: impl Into<Scalar>) -> Tensor {
    prim::full(x.shape(), v, x.dtype())
}

/// Zeros of `x`'s shape and type.
#[track_caller]
pub fn zeros_like(x: &Tensor) -> Tensor {
    full_like(x, 0)
}

/// Ones of `x`'s shape and type.
#[track_caller]
pub fn ones_like(x: &Tensor) -> Tensor {
    full_like(x, 1)
}
