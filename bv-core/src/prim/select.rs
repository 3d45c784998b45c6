//! `select` and `clamp`: elementwise choice and bounding.

use crate::batching::{self as b};
use crate::dtype::DType;
use crate::emit::EmitCx;
use crate::prim::BatchResult;
use crate::prim::{and, broadcast_in_dim, compare, CompareDir, VjpResult};
use crate::prim::{arity, Primitive};
use crate::trace::error::ensure;
use crate::trace::{bind1, zeros_like, Aval, OpError, Tensor};

/// An operand that may be a scalar, for a result of `shape` batched in front: an unbatched
/// scalar as it is, a batched scalar broadcast along the result, anything else batched in
/// front.
fn scalar_or_front(x: &Tensor, d: Option<usize>, n: usize, shape: &[usize]) -> Tensor {
    match d {
        None if x.rank() == 0 => x.clone(),
        Some(_) if x.rank() == 1 => broadcast_in_dim(x, shape, &[0]),
        _ => b::batch_at(x, d, n, 0),
    }
}

/// `pred ? on_true : on_false` elementwise (`stablehlo.select`). `pred` is bool, of the
/// branches' shape or a scalar; the branches have equal shape and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Select;

/// `pred ? on_true : on_false` elementwise (`stablehlo.select`). `pred` is bool, of the
/// branches' shape or a scalar; the branches have equal shape and type.
#[track_caller]
pub fn select(pred: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Tensor {
    bind1(Select, &[pred, on_true, on_false])
}

impl Primitive for Select {
    /// The branches get the batch dimension in front; a scalar predicate stays a scalar, or
    /// is broadcast along the branches when batched (JAX's `_select_batch_rule`).
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let t = b::batch_at(&ins[1], dims[1], n, 0);
        let f = b::batch_at(&ins[2], dims[2], n, 0);
        let pred = scalar_or_front(&ins[0], dims[0], n, t.shape());
        Ok((vec![select(&pred, &t, &f)], vec![Some(0)]))
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let Some(g) = &cts[0] else {
            return Ok(vec![None; 3]);
        };
        let z = zeros_like(g);
        Ok(vec![
            None,
            Some(select(&ins[0], g, &z)),
            Some(select(&ins[0], &z, g)),
        ])
    }

    fn name(&self) -> &'static str {
        "select"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 3)?;
        let (p, t, f) = (ins[0], ins[1], ins[2]);
        ensure!(
            p.dtype == DType::Bool,
            "predicate must be bool, got {}",
            p.dtype
        );
        ensure!(
            t.shape == f.shape && t.dtype == f.dtype,
            "branches must have equal shapes and types"
        );
        ensure!(
            p.shape.is_empty() || p.shape == t.shape,
            "predicate must be a scalar or of the branches' shape"
        );
        Ok(vec![Aval {
            shape: t.shape.clone(),
            dtype: t.dtype,
            weak: t.weak && f.weak,
        }])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.select {}, {}, {} : {}, {}",
            cx.name(0),
            cx.name(1),
            cx.name(2),
            cx.ty(0),
            cx.out_ty()
        )
    }
}

/// `min(max(x, lo), hi)` elementwise (`stablehlo.clamp`); `lo` and `hi` are scalars or of
/// `x`'s shape, all of one element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clamp;

/// `min(max(x, lo), hi)` elementwise (`stablehlo.clamp`); `lo` and `hi` are scalars or of
/// `x`'s shape, all of one element type.
#[track_caller]
pub fn clamp(lo: &Tensor, x: &Tensor, hi: &Tensor) -> Tensor {
    bind1(Clamp, &[lo, x, hi])
}

impl Primitive for Clamp {
    /// Like `select`: scalar bounds stay scalars unless batched.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let x = b::batch_at(&ins[1], dims[1], n, 0);
        let lo = scalar_or_front(&ins[0], dims[0], n, x.shape());
        let hi = scalar_or_front(&ins[2], dims[2], n, x.shape());
        Ok((vec![clamp(&lo, &x, &hi)], vec![Some(0)]))
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (lo, x, hi) = (&ins[0], &ins[1], &ins[2]);
        let Some(g) = &cts[0] else {
            return Ok(vec![None; 3]);
        };
        let full = |b: &Tensor| {
            let dims: Vec<usize> = (0..b.rank()).collect();
            broadcast_in_dim(b, x.shape(), &dims)
        };
        // JAX's rule: the operand's cotangent passes only strictly inside (lo, hi), lo's
        // only where lo > x and lo < hi, hi's only where hi < x; none at the bounds.
        let (lo_b, hi_b) = (full(lo), full(hi));
        let z = zeros_like(g);
        let lo_lt_hi = compare(&lo_b, &hi_b, CompareDir::Lt);
        let lo_wins = and(&compare(&lo_b, x, CompareDir::Gt), &lo_lt_hi);
        let inside = and(
            &compare(x, &lo_b, CompareDir::Gt),
            &compare(x, &hi_b, CompareDir::Lt),
        );
        let d_lo = select(&lo_wins, g, &z);
        let d_hi = select(&compare(&hi_b, x, CompareDir::Lt), g, &z);
        let d_x = select(&inside, g, &z);
        Ok(vec![
            Some(sum_to(&d_lo, lo.shape())),
            Some(d_x),
            Some(sum_to(&d_hi, hi.shape())),
        ])
    }

    fn name(&self) -> &'static str {
        "clamp"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 3)?;
        let x = ins[1];
        ensure!(
            x.dtype != DType::Bool,
            "element type must be numeric, got bool"
        );
        for b in [ins[0], ins[2]] {
            ensure!(
                b.dtype == x.dtype,
                "bounds must have the operand's element type"
            );
            ensure!(
                b.shape.is_empty() || b.shape == x.shape,
                "bounds must be scalars or of the operand's shape"
            );
        }
        Ok(vec![x.clone()])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.clamp {}, {}, {} : {}",
            cx.name(0),
            cx.name(1),
            cx.name(2),
            cx.fn_type()
        )
    }
}

/// Sums `x` down to `shape`, which is either `x`'s shape or a scalar (the transpose of the
/// scalar-or-full broadcasting that `clamp` does).
#[track_caller]
fn sum_to(x: &Tensor, shape: &[usize]) -> Tensor {
    if x.shape() == shape {
        return x.clone();
    }
    let axes: Vec<usize> = (0..x.rank()).collect();
    super::reduce(x, super::ReduceKind::Sum, &axes)
}
