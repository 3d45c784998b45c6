//! The methods JAX users call on arrays (`x.sum(axis)`, `x.reshape(..)`, `x.T`, ...) as
//! inherent methods on [`Tensor`]; each is its numpy function, which holds the logic.
//!
//! ```
//! use bv_core::{numpy as np, DType, Tensor};
//! let x = Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6.], &[2, 3]);
//! let w = np::ones(&[3, 2], DType::F32);
//! assert_eq!(x.matmul(&w).to_vec::<f32>()?, [6., 6., 15., 15.]);
//! assert_eq!(x.t().shape(), [3, 2]);
//! assert_eq!(x.max(1).to_vec::<f32>()?, [3., 6.]);
//! assert_eq!(x.slice(1, 1, 3).reshape(&[-1]).to_vec::<f32>()?, [2., 3., 5., 6.]);
//! # Ok::<(), bv_core::EagerError>(())
//! ```

use crate::dtype::DType;
use crate::numpy::{self as np, bad_axis, norm_axis, Axes};
use crate::prim;
use crate::trace::Tensor;

impl Tensor {
    /// Matrix product, as [`np::matmul`].
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        np::matmul(self, other)
    }

    /// `jnp.dot`, as [`np::dot`].
    #[track_caller]
    pub fn dot(&self, other: &Tensor) -> Tensor {
        np::dot(self, other)
    }

    /// Sum over `axes` (`Axes::All`, an axis, or a list), as [`np::sum`].
    #[track_caller]
    pub fn sum(&self, axes: impl Into<Axes>) -> Tensor {
        np::sum(self, axes, false)
    }

    /// Mean over `axes`, as [`np::mean`].
    #[track_caller]
    pub fn mean(&self, axes: impl Into<Axes>) -> Tensor {
        np::mean(self, axes, false)
    }

    /// Maximum over `axes`, as [`np::max`].
    #[track_caller]
    pub fn max(&self, axes: impl Into<Axes>) -> Tensor {
        np::max(self, axes, false)
    }

    /// Minimum over `axes`, as [`np::min`].
    #[track_caller]
    pub fn min(&self, axes: impl Into<Axes>) -> Tensor {
        np::min(self, axes, false)
    }

    /// Index of the largest value along `axis`, as [`np::argmax`].
    #[track_caller]
    pub fn argmax(&self, axis: isize) -> Tensor {
        np::argmax(self, axis)
    }

    /// Index of the smallest value along `axis`, as [`np::argmin`].
    #[track_caller]
    pub fn argmin(&self, axis: isize) -> Tensor {
        np::argmin(self, axis)
    }

    /// Reshapes (one entry may be -1), as [`np::reshape`].
    #[track_caller]
    pub fn reshape(&self, shape: &[isize]) -> Tensor {
        np::reshape(self, shape)
    }

    /// Permutes dimensions (reverses them when `perm` is empty), as [`np::transpose`].
    #[track_caller]
    pub fn transpose(&self, perm: &[isize]) -> Tensor {
        np::transpose(self, perm)
    }

    /// `x.T`: the dimensions reversed.
    #[track_caller]
    pub fn t(&self) -> Tensor {
        np::transpose(self, &[])
    }

    /// Converts the element type, as [`np::astype`].
    #[track_caller]
    pub fn astype(&self, dtype: DType) -> Tensor {
        np::astype(self, dtype)
    }

    /// `e^x`, as [`np::exp`].
    #[track_caller]
    pub fn exp(&self) -> Tensor {
        np::exp(self)
    }

    /// Natural log, as [`np::log`].
    #[track_caller]
    pub fn log(&self) -> Tensor {
        np::log(self)
    }

    /// Square root, as [`np::sqrt`].
    #[track_caller]
    pub fn sqrt(&self) -> Tensor {
        np::sqrt(self)
    }

    /// `|x|`, as [`np::abs`].
    #[track_caller]
    pub fn abs(&self) -> Tensor {
        np::abs(self)
    }

    /// Hyperbolic tangent, as [`np::tanh`].
    #[track_caller]
    pub fn tanh(&self) -> Tensor {
        np::tanh(self)
    }

    /// Broadcasts to `shape`, as [`np::broadcast_to`].
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        np::broadcast_to(self, shape)
    }

    /// Inserts a size-1 dimension at `axis`, as [`np::expand_dims`].
    #[track_caller]
    pub fn expand_dims(&self, axis: isize) -> Tensor {
        np::expand_dims(self, axis)
    }

    /// Removes size-1 dimensions (all, or the given ones), as [`np::squeeze`].
    #[track_caller]
    pub fn squeeze(&self, axes: impl Into<Axes>) -> Tensor {
        np::squeeze(self, axes)
    }

    /// `x[start:stop]` along `axis` (negative counts from the end), as `lax.slice_in_dim`.
    #[track_caller]
    pub fn slice(&self, axis: isize, start: usize, stop: usize) -> Tensor {
        match norm_axis(axis, self.rank()) {
            Some(a) => prim::slice_in_dim(self, a, start, stop, 1),
            None => bad_axis("slice", self, axis),
        }
    }

    /// Elements at integer `indices` along `axis`, as [`np::take`].
    #[track_caller]
    pub fn take(&self, indices: &Tensor, axis: isize) -> Tensor {
        np::take(self, indices, axis)
    }
}
