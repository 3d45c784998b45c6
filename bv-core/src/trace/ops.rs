//! The few ops the transformations apply themselves: autodiff seeds and sums cotangents and
//! makes zero tangents; vmap moves and broadcasts batch dimensions. The core declares them
//! and the primitives (`prim`) implement them, so no transformation names a concrete
//! primitive (JAX's `ad_util.zeros_like`/`add_jaxvals` and batching's `moveaxis`/`broadcast`).

use super::{Aval, Tensor};

/// The ops of the core, implemented for [`Tensor`] by `prim`.
pub(crate) trait CoreOps {
    /// A tensor of aval `a` (shape and dtype) filled with `v`.
    fn full_like_aval(a: &Aval, v: f64) -> Tensor;
    /// `self + other` for operands of one shape and dtype.
    fn add_any(&self, other: &Tensor) -> Tensor;
    /// `self` with its dimensions permuted (`lax.transpose`).
    fn permute_dims(&self, perm: &[usize]) -> Tensor;
    /// `self` broadcast to `shape`, its dimension `i` becoming `dims[i]`.
    fn broadcast_dims(&self, shape: &[usize], dims: &[usize]) -> Tensor;
}

/// A tensor of `a`'s shape and type filled with `v`.
#[track_caller]
pub(crate) fn fill(a: &Aval, v: f64) -> Tensor {
    Tensor::full_like_aval(a, v)
}

/// Zeros shaped like `t`.
#[track_caller]
pub(crate) fn zeros_like(t: &Tensor) -> Tensor {
    fill(t.aval(), 0.0)
}
