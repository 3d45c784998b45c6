//! The friendly surface, like `jax.numpy`: numpy broadcasting, JAX's type promotion with
//! weakly typed Rust scalars, operator overloads, reductions with axes, and the nn helpers
//! big_vision uses. Everything here calls the strict [`crate::prim`] ops and defines no
//! primitive of its own.
//!
//! ```
//! use bv_core::{jit, numpy as np, DType, Spec, Tensor};
//! let f = jit(|(x, w): (Tensor, Tensor)| np::softmax(&(np::matmul(&x, &w) * 0.5 + 1), -1));
//! let text = f.lower(&(Spec::new([8, 4], DType::BF16), Spec::new([4, 3], DType::BF16)))?.text;
//! assert!(text.contains("stablehlo.dot_general"));
//! # Ok::<(), bv_core::JitError>(())
//! ```

mod creation;
mod index;
mod linalg;
mod manip;
mod methods;
mod nn;
mod ops;
pub mod promote;
mod reduce;

pub use creation::{
    arange_step, eye, full_like, linspace, meshgrid, ones_like, tri, tril, triu, zeros_like,
    Indexing,
};
pub use index::{
    argmax, argmin, argsort, one_hot, searchsorted, sort, take, take_along_axis, top_k, where_,
    Side,
};
pub use linalg::{diag, dot, einsum, inner, matmul, norm, outer, trace, vdot};
pub use manip::{
    array_split, concatenate, diff, expand_dims, flip, moveaxis, pad, repeat, roll, split,
    split_at, squeeze, stack, swapaxes, tile, PadMode,
};
pub use nn::{
    avg_pool, celu, elu, gelu, glu, hard_tanh, leaky_relu, log_sigmoid, log_softmax, logsumexp,
    max_pool, relu, relu6, selu, sigmoid, silu, softmax, softplus, standardize, Padding,
};
pub use ops::*;
pub use reduce::{
    all, allclose, any, count_nonzero, cummax, cummin, cumprod, cumsum, max, mean, min, prod, std,
    sum, var, Axes,
};

use crate::dtype::DType;
use crate::prim::{self, Scalar};
use crate::trace::{fail, Aval, Tensor};

/// An operand of a numpy-level function: a tensor, or a Rust scalar that is weakly typed
/// (it takes the other operand's type, as a Python scalar does in JAX).
#[derive(Clone, Debug)]
pub enum Operand {
    /// A traced tensor.
    Tensor(Tensor),
    /// A Rust scalar.
    Scalar(Scalar),
}

impl From<&Tensor> for Operand {
    fn from(t: &Tensor) -> Operand {
        Operand::Tensor(t.clone())
    }
}

impl From<Tensor> for Operand {
    fn from(t: Tensor) -> Operand {
        Operand::Tensor(t)
    }
}

macro_rules! scalar_operand {
    ($($t:ty),*) => { $(impl From<$t> for Operand {
        fn from(x: $t) -> Operand { Operand::Scalar(Scalar::from(x)) }
    })* };
}
scalar_operand!(bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

impl Operand {
    /// `(dtype, weak)` for promotion: scalars are weak i32/f32 (bool is strong).
    fn kind(&self) -> (DType, bool) {
        match self {
            Operand::Tensor(t) => (t.dtype(), t.is_weak()),
            Operand::Scalar(Scalar::Bool(_)) => (DType::Bool, false),
            Operand::Scalar(Scalar::Float(_)) => (DType::F32, true),
            Operand::Scalar(_) => (DType::I32, true),
        }
    }

    fn shape(&self) -> &[usize] {
        match self {
            Operand::Tensor(t) => t.shape(),
            Operand::Scalar(_) => &[],
        }
    }

    fn aval(&self) -> Aval {
        match self {
            Operand::Tensor(t) => t.aval().clone(),
            Operand::Scalar(_) => {
                let (d, w) = self.kind();
                Aval {
                    shape: vec![],
                    dtype: d,
                    weak: w,
                }
            }
        }
    }

    /// The operand as a tensor of `dtype` (weak as given), converting if needed.
    #[track_caller]
    fn to_dtype(&self, dtype: DType, weak: bool) -> Tensor {
        match self {
            Operand::Tensor(t) if t.dtype() == dtype => t.clone(),
            Operand::Tensor(t) => prim::convert::Convert { to: dtype, weak }.bind(t),
            Operand::Scalar(s) => prim::scalar_weak(*s, dtype),
        }
    }
}

/// The numpy broadcast of two shapes, or `None`.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Broadcasts `x` to `shape` (numpy rules: leading dimensions added, size-1 stretched).
#[track_caller]
pub fn broadcast_to(x: &Tensor, shape: &[usize]) -> Tensor {
    if x.shape() == shape {
        return x.clone();
    }
    let off = shape.len().saturating_sub(x.rank());
    let dims: Vec<usize> = (off..off + x.rank()).collect();
    prim::broadcast_in_dim(x, shape, &dims)
}

/// Promotes operands to one element type and broadcasts them to one shape; on failure
/// records the error under `op` and returns a poisoned tensor.
#[track_caller]
pub(crate) fn prepare(op: &'static str, xs: &[Operand]) -> Result<Vec<Tensor>, Tensor> {
    let mut kind = xs[0].kind();
    for x in &xs[1..] {
        kind = promote::promote(kind, x.kind());
    }
    let mut shape: Vec<usize> = xs[0].shape().to_vec();
    for x in &xs[1..] {
        match broadcast_shapes(&shape, x.shape()) {
            Some(s) => shape = s,
            None => {
                let avals: Vec<Aval> = xs.iter().map(Operand::aval).collect();
                let refs: Vec<&Aval> = avals.iter().collect();
                let shapes: Vec<String> = xs.iter().map(|x| format!("{:?}", x.shape())).collect();
                let like = xs.iter().find_map(|x| match x {
                    Operand::Tensor(t) => Some(t),
                    Operand::Scalar(_) => None,
                });
                let reason = format!("cannot broadcast shapes {}", shapes.join(" and "));
                return Err(fail(
                    op,
                    reason,
                    &refs,
                    like,
                    Aval {
                        shape: xs[0].shape().to_vec(),
                        dtype: kind.0,
                        weak: kind.1,
                    },
                ));
            }
        }
    }
    Ok(xs
        .iter()
        .map(|x| broadcast_to(&x.to_dtype(kind.0, kind.1), &shape))
        .collect())
}

/// The operands converted to their promoted element type (JAX's rules, weak types
/// included), without broadcasting.
#[track_caller]
pub(crate) fn promote_all(xs: &[&Tensor]) -> Vec<Tensor> {
    let kind = xs[1..]
        .iter()
        .fold((xs[0].dtype(), xs[0].is_weak()), |k, x| {
            promote::promote(k, (x.dtype(), x.is_weak()))
        });
    xs.iter()
        .map(|x| {
            if x.dtype() == kind.0 {
                (*x).clone()
            } else {
                prim::convert::Convert {
                    to: kind.0,
                    weak: kind.1,
                }
                .bind(x)
            }
        })
        .collect()
}

/// Normalizes a possibly negative axis; `None` when out of range.
pub(crate) fn norm_axis(axis: isize, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as isize } else { axis };
    (a >= 0 && (a as usize) < rank).then_some(a as usize)
}

/// Records an out-of-range axis under `op` and returns a poisoned tensor like `x`.
#[track_caller]
pub(crate) fn bad_axis(op: &'static str, x: &Tensor, axis: isize) -> Tensor {
    let reason = format!("axis {axis} is out of range for rank {}", x.rank());
    fail(op, reason, &[x.aval()], Some(x), x.aval().clone())
}

/// The float type a value of `dtype` computes in for float-only functions (`exp` of an int
/// is f32), as `jnp` promotes to inexact.
pub(crate) fn inexact(x: &Tensor) -> Tensor {
    if x.dtype().is_float() {
        x.clone()
    } else {
        prim::convert::Convert {
            to: DType::F32,
            weak: x.is_weak(),
        }
        .bind(x)
    }
}

/// Converts to `dtype` like `x.astype(dtype)`: to bool is `x != 0`.
#[track_caller]
pub fn astype(x: &Tensor, dtype: DType) -> Tensor {
    if x.dtype() == dtype && !x.is_weak() {
        return x.clone();
    }
    if dtype == DType::Bool && x.dtype() != DType::Bool {
        let zero = prim::full(x.shape(), 0, x.dtype());
        return prim::compare(x, &zero, prim::CompareDir::Ne);
    }
    prim::convert(x, dtype)
}

/// A tensor of `shape` filled with `v` of `dtype`.
#[track_caller]
pub fn full(shape: &[usize], v: impl Into<Scalar>, dtype: DType) -> Tensor {
    prim::full(shape, v, dtype)
}

/// Zeros of `shape` and `dtype`.
#[track_caller]
pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
    prim::full(shape, 0, dtype)
}

/// Ones of `shape` and `dtype`.
#[track_caller]
pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
    prim::full(shape, 1, dtype)
}

/// `0, 1, ..., n-1` of `dtype`.
#[track_caller]
pub fn arange(n: usize, dtype: DType) -> Tensor {
    prim::iota(dtype, &[n], 0)
}

/// Reshapes to `shape`; one entry may be -1 and is inferred.
#[track_caller]
pub fn reshape(x: &Tensor, shape: &[isize]) -> Tensor {
    let known: usize = shape
        .iter()
        .filter(|&&d| d >= 0)
        .map(|&d| d as usize)
        .product();
    let holes = shape.iter().filter(|&&d| d < 0).count();
    if holes > 1 || (holes == 1 && (known == 0 || !x.size().is_multiple_of(known))) {
        let reason = format!("cannot reshape {} elements into {shape:?}", x.size());
        return fail("reshape", reason, &[x.aval()], Some(x), x.aval().clone());
    }
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| {
            if d < 0 {
                x.size() / known.max(1)
            } else {
                d as usize
            }
        })
        .collect();
    prim::reshape(x, &dims)
}

/// The elements as one dimension, row-major.
#[track_caller]
pub fn ravel(x: &Tensor) -> Tensor {
    prim::reshape(x, &[x.size()])
}

/// Permutes dimensions (`perm` may use negative axes); reverses them when empty.
#[track_caller]
pub fn transpose(x: &Tensor, perm: &[isize]) -> Tensor {
    let p: Vec<usize> = if perm.is_empty() {
        (0..x.rank()).rev().collect()
    } else {
        perm.iter()
            .map(|&a| norm_axis(a, x.rank()).unwrap_or(usize::MAX))
            .collect()
    };
    prim::transpose(x, &p)
}
