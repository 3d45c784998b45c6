//! Primitives: the strict ops the tracer records. Each file holds one primitive or family,
//! with the function users call, its shape/dtype rule and its StableHLO emission. These ops
//! do not promote or broadcast (that is [`crate::numpy`]'s job): operands must already agree.
//!
//! Each primitive's reverse-mode rule ([`Primitive::vjp`]) sits in its file beside `infer`
//! and `emit`; rules are written with primitives that have rules themselves, so derivatives
//! of derivatives work. Forward mode transposes the reverse rule unless a primitive gives
//! its own ([`Primitive::jvp`]; `while_loop` does). The batching rule ([`Primitive::batch`],
//! used by [`crate::batching::vmap`]) sits there too.

pub mod binary;
pub mod broadcast;
pub mod collective;
pub mod compare;
pub mod constant;
pub mod conv;
pub mod convert;
pub mod cumulative;
pub mod dot;
pub mod gather;
pub mod pad;
pub mod reduce;
pub mod reduce_window;
pub mod reshape;
pub mod scatter;
pub mod select;
pub mod shard_map;
pub mod sharding;
pub mod slice;
pub mod sort;
pub mod transpose;
pub mod unary;
pub mod window_grad;

use std::fmt;

use crate::dtype::DType;
use crate::emit::EmitCx;
use crate::trace::error::{bail, ensure};
use crate::trace::{Aval, Func, OpError, Tensor};

pub use binary::*;
pub use broadcast::broadcast_in_dim;
pub use collective::{all_gather, axis_index, pmean, ppermute, psum, psum_scatter};
pub use compare::{compare, CompareDir};
pub use constant::{constant, full, iota, scalar, scalar_weak, Scalar};
pub use conv::{conv_general_dilated, ConvDims, Convolution};
pub use convert::{bitcast_convert, convert};
pub use cumulative::{cummax, cummin, cumprod, cumsum};
pub use dot::{dot_general, DotDims, Precision};
pub use gather::{gather, GatherDims};
pub use pad::{concatenate, pad};
pub use reduce::{argreduce, reduce, ArgKind, ReduceKind};
pub use reduce_window::{reduce_window, Window};
pub use reshape::{reshape, squeeze_dims};
pub use scatter::{scatter, ScatterDims, ScatterKind};
pub use select::{clamp, select};
pub use shard_map::shard_map;
pub use sharding::sharding_constraint;
pub use slice::{dynamic_slice, dynamic_update_slice, slice, slice_in_dim};
pub use sort::sort;
pub use transpose::{reverse, transpose};
pub use unary::*;

/// A primitive operation with its static parameters (the struct's fields).
pub trait Primitive: fmt::Debug + 'static {
    /// The name used in errors, e.g. `"add"`.
    fn name(&self) -> &'static str;

    /// Shape and dtype rule: the result avals for these operand avals, or why not.
    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError>;

    /// The StableHLO text after `%n = ` (may span lines; regions use `cx.scope` for names).
    fn emit(&self, cx: &EmitCx) -> String;

    /// How many results the primitive has (used to shape poisoned results).
    fn num_outputs(&self) -> usize {
        1
    }

    /// Reverse-mode rule: the cotangents of the operands, given the operands, the results
    /// and the results' cotangents (`None` is a zero). Returns `None` for an operand with a
    /// zero (or no) cotangent. Only called when some floating-point result has a cotangent.
    fn vjp(&self, ins: &[Tensor], outs: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let _ = (ins, outs, cts);
        Err(OpError(format!(
            "`{}` has no reverse-mode derivative rule",
            self.name()
        )))
    }

    /// Forward-mode rule: the results' tangents given the operands' (`None` is a zero), or
    /// `None` to derive it by transposing [`Primitive::vjp`].
    fn jvp(
        &self,
        ins: &[Tensor],
        outs: &[Tensor],
        tangents: &[Option<Tensor>],
    ) -> Option<VjpResult> {
        let _ = (ins, outs, tangents);
        None
    }

    /// Batching rule (`vmap`): the results and where each carries the batch dimension,
    /// given operands of which operand `i` carries it at `dims[i]` (`None`: not batched).
    /// Only called when some operand is batched; all batched operands share its size.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let _ = (ins, dims);
        Err(OpError(format!("`{}` has no batching rule", self.name())))
    }

    /// For call-like primitives (remat, custom rules, identity): the function this node
    /// applies, emitted inline in its place (and run op by op in eager mode).
    fn inline(&self) -> Option<&Func> {
        None
    }

    /// For constants: the value's little-endian bytes (one element for a splat, else all),
    /// which eager mode copies to the device instead of compiling a program.
    fn literal(&self) -> Option<&[u8]> {
        None
    }
}

/// The result of a derivative rule: one optional tensor per operand (or result, for
/// [`Primitive::jvp`]), or why the rule does not apply.
pub type VjpResult = Result<Vec<Option<Tensor>>, OpError>;

/// The result of a batching rule: the results and the batch dimension of each (`None`:
/// the same for every batch element), or why the rule does not apply.
pub type BatchResult = Result<(Vec<Tensor>, Vec<Option<usize>>), OpError>;

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
