//! Primitives: the strict ops the tracer records. Each file holds one primitive or family,
//! with the function users call, its shape/dtype rule and its StableHLO emission. These ops
//! do not promote or broadcast (that is [`crate::numpy`]'s job): operands must already agree.
//!
//! Each primitive's reverse-mode rule (`Primitive::vjp`) sits in its file beside `infer`
//! and `emit`; rules are written with primitives that have rules themselves, so derivatives
//! of derivatives work. Forward mode transposes the reverse rule unless a primitive gives
//! its own (`Primitive::jvp`; `while_loop` does). The batching rule (`Primitive::batch`,
//! used by [`crate::batching::vmap`]) sits there too.

pub(crate) mod binary;
pub(crate) mod broadcast;
pub(crate) mod collective;
pub(crate) mod compare;
pub(crate) mod constant;
pub(crate) mod control;
pub(crate) mod conv;
pub(crate) mod convert;
pub(crate) mod cumulative;
pub(crate) mod dot;
pub(crate) mod gather;
pub(crate) mod pad;
pub(crate) mod reduce;
pub(crate) mod reduce_window;
pub(crate) mod reshape;
pub(crate) mod scatter;
pub(crate) mod select;
pub(crate) mod shard_map;
pub(crate) mod sharding;
pub(crate) mod slice;
pub(crate) mod sort;
pub(crate) mod transpose;
pub(crate) mod unary;
pub(crate) mod window_grad;

use crate::dtype::DType;
use crate::trace::error::{bail, ensure};
use crate::trace::{Aval, CoreOps, OpError, Tensor};

pub use binary::*;
pub use broadcast::broadcast_in_dim;
pub use collective::{all_gather, axis_index, pmean, ppermute, psum, psum_scatter};
pub use compare::{compare, CompareDir};
pub use constant::{constant, full, iota, scalar, scalar_weak, Scalar};
pub use conv::{conv_general_dilated, ConvDims, Convolution};
pub use convert::{bitcast_convert, convert};
pub use cumulative::{cummax, cummin, cumprod, cumsum};
pub use dot::{dot_general, DotDims, Precision};
pub(crate) use gather::take_along;
pub use gather::{gather, GatherDims};
pub use pad::{concatenate, pad};
pub use reduce::{argreduce, reduce, ArgKind, ReduceKind};
pub use reduce_window::{reduce_window, Window};
pub use reshape::{reshape, squeeze_dims};
pub use scatter::{scatter, ScatterDims, ScatterKind};
pub use select::{clamp, select};
pub use shard_map::shard_map;
pub use sharding::sharding_constraint;
pub use slice::{dynamic_slice, dynamic_update_slice, slice, slice_in_dim, slice_strided};
pub use sort::sort;
pub use transpose::{reverse, transpose};
pub use unary::*;
pub use window_grad::{select_and_gather_add, select_and_scatter_add};

pub(crate) use crate::trace::{BatchResult, Primitive, VjpResult};

impl CoreOps for Tensor {
    #[track_caller]
    fn full_like_aval(a: &Aval, v: f64) -> Tensor {
        full(&a.shape, Scalar::Float(v), a.dtype)
    }
    #[track_caller]
    fn add_any(&self, other: &Tensor) -> Tensor {
        add(self, other)
    }
    #[track_caller]
    fn permute_dims(&self, perm: &[usize]) -> Tensor {
        transpose(self, perm)
    }
    #[track_caller]
    fn broadcast_dims(&self, shape: &[usize], dims: &[usize]) -> Tensor {
        broadcast_in_dim(self, shape, dims)
    }
}

/// Which element types an op accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Floating point only.
    Float,
    /// Integers or floats.
    Num,
    /// Signed integers or floats.
    Signed,
    /// Integers only.
    Int,
    /// Integers or booleans.
    IntOrBool,
    /// Any element type.
    Any,
}

impl Class {
    /// True when `d` is accepted.
    pub fn accepts(self, d: DType) -> bool {
        let int = d.is_signed_int() || d.is_unsigned_int();
        match self {
            Class::Float => d.is_float(),
            Class::Num => int || d.is_float(),
            Class::Signed => d.is_signed_int() || d.is_float(),
            Class::Int => int,
            Class::IntOrBool => int || d == DType::Bool,
            Class::Any => true,
        }
    }

    /// Words for errors: "a floating-point type".
    pub fn describe(self) -> &'static str {
        match self {
            Class::Float => "a floating-point type",
            Class::Num => "a numeric (integer or floating-point) type",
            Class::Signed => "a signed integer or floating-point type",
            Class::Int => "an integer type",
            Class::IntOrBool => "an integer or boolean type",
            Class::Any => "any type",
        }
    }
}

/// Checks that all operands have the same shape and element type and that the element type
/// is in `class`; returns the common aval (weak only if every operand is weak).
pub(crate) fn same_shape_dtype(ins: &[&Aval], class: Class) -> Result<Aval, OpError> {
    let first = ins[0];
    for a in &ins[1..] {
        ensure!(
            a.shape == first.shape,
            "operand shapes must be equal (broadcast them first)"
        );
        ensure!(
            a.dtype == first.dtype,
            "operand element types must be equal (convert them first)"
        );
    }
    ensure!(
        class.accepts(first.dtype),
        "element type must be {}, got {}",
        class.describe(),
        first.dtype
    );
    Ok(Aval {
        shape: first.shape.clone(),
        dtype: first.dtype,
        weak: ins.iter().all(|a| a.weak),
    })
}

/// Checks that `n` operands were given.
pub(crate) fn arity(ins: &[&Aval], n: usize) -> Result<(), OpError> {
    if ins.len() != n {
        bail!("expected {n} operands, got {}", ins.len());
    }
    Ok(())
}

/// Checks that `axes` are distinct and below `rank`.
pub(crate) fn check_axes(axes: &[usize], rank: usize, what: &str) -> Result<(), OpError> {
    for (i, &a) in axes.iter().enumerate() {
        ensure!(a < rank, "{what} {a} is out of range for rank {rank}");
        ensure!(!axes[..i].contains(&a), "{what} {a} is repeated");
    }
    Ok(())
}

/// The compare type StableHLO wants for an element type.
pub(crate) fn compare_type(d: DType) -> &'static str {
    if d.is_float() {
        "FLOAT"
    } else if d.is_signed_int() {
        "SIGNED"
    } else {
        "UNSIGNED"
    }
}
