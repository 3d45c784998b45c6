//! Small builders used by derivative rules.

use crate::prim::{self, Scalar};
use crate::trace::{Aval, Tensor};

/// A tensor of `a`'s shape and type filled with `v`.
#[track_caller]
pub(crate) fn fill(a: &Aval, v: f64) -> Tensor {
    prim::full(&a.shape, Scalar::Float(v), a.dtype)
}

/// Zeros shaped like `t`.
#[track_caller]
pub(crate) fn zeros_like(t: &Tensor) -> Tensor {
    fill(t.aval(), 0.0)
}

/// Sums `x` down to `shape`, which is either `x`'s shape or a scalar (the transpose of the
/// scalar-or-full broadcasting that `clamp` does).
#[track_caller]
pub(crate) fn sum_to(x: &Tensor, shape: &[usize]) -> Tensor {
    if x.shape() == shape {
        return x.clone();
    }
    let axes: Vec<usize> = (0..x.rank()).collect();
    prim::reduce(x, prim::ReduceKind::Sum, &axes)
}
