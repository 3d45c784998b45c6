//! `reduce` over dimensions with a monoid (sum, prod, max, min, and, or), and the variadic
//! `argreduce` (value and index together) behind argmax and argmin.

use crate::autodiff::backprop;
use crate::dtype::DType;
use crate::emit::{i64_array, list, region, scalar_ty, EmitCx};
use crate::prim::constant::Scalar;
use crate::prim::BatchResult;
use crate::prim::{self as p, broadcast_in_dim, CompareDir, VjpResult};
use crate::prim::{arity, check_axes, compare_type, scalar_weak, Class, Primitive};
use crate::trace::error::ensure;
use crate::trace::{bind, bind1, Aval, OpError, Tensor};
use crate::trace::{fresh, zeros_like};
use std::rc::Rc;

/// The monoid a reduction applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// `+`, identity 0.
    Sum,
    /// `*`, identity 1.
    Prod,
    /// `max`, identity -inf (or the type's minimum).
    Max,
    /// `min`, identity +inf (or the type's maximum).
    Min,
    /// Bitwise/logical and, identity all ones.
    And,
    /// Bitwise/logical or, identity 0.
    Or,
}

impl ReduceKind {
    /// The StableHLO op combining two elements.
    pub fn mlir(self) -> &'static str {
        match self {
            ReduceKind::Sum => "stablehlo.add",
            ReduceKind::Prod => "stablehlo.multiply",
            ReduceKind::Max => "stablehlo.maximum",
            ReduceKind::Min => "stablehlo.minimum",
            ReduceKind::And => "stablehlo.and",
            ReduceKind::Or => "stablehlo.or",
        }
    }

    fn class(self) -> Class {
        match self {
            ReduceKind::Sum | ReduceKind::Prod => Class::Num,
            ReduceKind::Max | ReduceKind::Min => Class::Any,
            ReduceKind::And | ReduceKind::Or => Class::IntOrBool,
        }
    }

    /// The identity element in `dtype`.
    pub fn identity(self, dtype: DType) -> Scalar {
        let (lo, hi) = bounds(dtype);
        match self {
            ReduceKind::Sum | ReduceKind::Or => Scalar::Int(0),
            ReduceKind::Prod => Scalar::Int(1),
            ReduceKind::Max => lo,
            ReduceKind::Min => hi,
            ReduceKind::And => hi,
        }
    }

    /// The reducer region for element type `t`, naming values with `scope`.
    pub fn region(self, scope: &str, t: &str) -> String {
        let (a, b, c) = (
            format!("%{scope}_a"),
            format!("%{scope}_b"),
            format!("%{scope}_c"),
        );
        let body = [format!("{c} = {} {a}, {b} : {t}", self.mlir())];
        region(&[(a, t.into()), (b, t.into())], &body, &[(c, t.into())])
    }
}

/// The lowest and highest value of a type (infinities for floats; `false`/`true` for bool,
/// all-ones for unsigned).
pub fn bounds(dtype: DType) -> (Scalar, Scalar) {
    match dtype {
        DType::Bool => (Scalar::Bool(false), Scalar::Bool(true)),
        DType::I8 => (Scalar::Int(i8::MIN as i64), Scalar::Int(i8::MAX as i64)),
        DType::I16 => (Scalar::Int(i16::MIN as i64), Scalar::Int(i16::MAX as i64)),
        DType::I32 => (Scalar::Int(i32::MIN as i64), Scalar::Int(i32::MAX as i64)),
        DType::I64 => (Scalar::Int(i64::MIN), Scalar::Int(i64::MAX)),
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => {
            (Scalar::UInt(0), Scalar::UInt(u64::MAX))
        }
        _ => (
            Scalar::Float(f64::NEG_INFINITY),
            Scalar::Float(f64::INFINITY),
        ),
    }
}

/// Reduces `axes` of the operand with a monoid, starting from a scalar `init`
/// (`stablehlo.reduce`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reduce {
    /// The monoid.
    pub kind: ReduceKind,
    /// Reduced dimensions.
    pub axes: Vec<usize>,
}

/// Reduces `axes` of `x` with `kind`, starting from the monoid's identity.
#[track_caller]
pub fn reduce(x: &Tensor, kind: ReduceKind, axes: &[usize]) -> Tensor {
    let init = scalar_weak(kind.identity(x.dtype()), x.dtype());
    bind1(
        Reduce {
            kind,
            axes: axes.to_vec(),
        },
        &[x, &init],
    )
}

impl Primitive for Reduce {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        if dims[1].is_some() {
            return super::control::by_loop(Rc::new(self.clone()), ins, dims);
        }
        let x = crate::batching::batch_at(&ins[0], dims[0], crate::batching::size(ins, dims), 0);
        let prim = Reduce {
            kind: self.kind,
            axes: crate::batching::shift(&self.axes),
        };
        Ok((vec![bind1(prim, &[&x, &ins[1]])], vec![Some(0)]))
    }

    fn vjp(&self, ins: &[Tensor], outs: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (x, y) = (&ins[0], &outs[0]);
        let Some(g) = &cts[0] else {
            return Ok(vec![None, None]);
        };
        let kept: Vec<usize> = (0..x.rank()).filter(|i| !self.axes.contains(i)).collect();
        let back = |t: &Tensor| broadcast_in_dim(t, x.shape(), &kept);
        let gb = back(g);
        let d = match self.kind {
            ReduceKind::Sum => gb,
            ReduceKind::Prod => prod_vjp(x, &self.axes, g),
            ReduceKind::Max | ReduceKind::Min => {
                // JAX's rule transposed: the cotangent over the count of elements equal to
                // the result, given to each of them.
                let hit = p::convert(&p::compare(x, &back(y), CompareDir::Eq), x.dtype());
                let count = reduce(&hit, ReduceKind::Sum, &self.axes);
                p::mul(&back(&p::div(g, &count)), &hit)
            }
            ReduceKind::And | ReduceKind::Or => return Ok(vec![None, None]),
        };
        Ok(vec![Some(d), None])
    }

    fn name(&self) -> &'static str {
        match self.kind {
            ReduceKind::Sum => "reduce_sum",
            ReduceKind::Prod => "reduce_prod",
            ReduceKind::Max => "reduce_max",
            ReduceKind::Min => "reduce_min",
            ReduceKind::And => "reduce_and",
            ReduceKind::Or => "reduce_or",
        }
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 2)?;
        let (x, init) = (ins[0], ins[1]);
        ensure!(
            init.rank() == 0 && init.dtype == x.dtype,
            "init must be a scalar of the operand's type"
        );
        ensure!(
            self.kind.class().accepts(x.dtype),
            "element type must be {}, got {}",
            self.kind.class().describe(),
            x.dtype
        );
        check_axes(&self.axes, x.rank(), "axis")?;
        let shape: Vec<usize> = (0..x.rank())
            .filter(|i| !self.axes.contains(i))
            .map(|i| x.shape[i])
            .collect();
        Ok(vec![x.with_shape(shape)])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.reduce({} init: {}) applies {} across dimensions = {} : {}",
            cx.name(0),
            cx.name(1),
            self.kind.mlir(),
            list(&self.axes),
            cx.fn_type()
        )
    }
}

/// JAX's product rule: the reverse pass through a pairwise product tree over `axes`, so each
/// element's derivative is the product of the others, exact where elements are 0 (the
/// quotient `prod / x` would be `0 / 0` there).
fn prod_vjp(x: &Tensor, axes: &[usize], g: &Tensor) -> Tensor {
    let start = crate::trace::node_count(Some(x));
    let seed = fresh(std::slice::from_ref(x)).swap_remove(0);
    let tree = prod_tree(&seed, axes);
    backprop(start, &[seed], &[tree], &[Some(g.clone())])
        .swap_remove(0)
        .unwrap_or_else(|| zeros_like(x))
}

/// The product over `axes` as `lax`'s `_reduce_jvp` computes it: those axes moved to the
/// front and flattened, then halves multiplied pairwise (the odd one out padded with 1).
fn prod_tree(x: &Tensor, axes: &[usize]) -> Tensor {
    let rest: Vec<usize> = (0..x.rank()).filter(|i| !axes.contains(i)).collect();
    let perm: Vec<usize> = axes.iter().chain(&rest).copied().collect();
    let rest_shape: Vec<usize> = rest.iter().map(|&i| x.shape()[i]).collect();
    let n: usize = axes.iter().map(|&a| x.shape()[a]).product();
    if n == 0 {
        return p::full(&rest_shape, 1, x.dtype());
    }
    let mut shape = vec![n];
    shape.extend(&rest_shape);
    let mut t = p::reshape(&p::transpose(x, &perm), &shape);
    let one = p::full(&[], 1, x.dtype());
    while t.shape()[0] > 1 {
        let m = t.shape()[0];
        let m1 = m.div_ceil(2);
        let a = p::slice_in_dim(&t, 0, 0, m1, 1);
        let mut b = p::slice_in_dim(&t, 0, m1, m, 1);
        if m - m1 != m1 {
            let mut cfg = vec![(0, 0, 0); t.rank()];
            cfg[0] = (0, 1, 0);
            b = p::pad(&b, &one, &cfg);
        }
        t = p::mul(&a, &b);
    }
    p::reshape(&t, &rest_shape)
}

/// Whether an arg-reduction looks for the largest or the smallest value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgKind {
    /// argmax
    Max,
    /// argmin
    Min,
}

/// Reduces one axis of `(values, indices)` pairs to the extreme value and its index: NaN
/// counts as the extreme, and ties go to the lowest index, as `jnp.argmax` does
/// (a variadic `stablehlo.reduce`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgReduce {
    /// Largest or smallest.
    pub kind: ArgKind,
    /// The reduced axis.
    pub axis: usize,
}

/// Returns `(extreme values, their indices)` along `axis`; indices have type `index_dtype`.
#[track_caller]
pub fn argreduce(x: &Tensor, kind: ArgKind, axis: usize, index_dtype: DType) -> (Tensor, Tensor) {
    let idx = crate::prim::iota(index_dtype, x.shape(), axis.min(x.rank().saturating_sub(1)));
    let (lo, hi) = bounds(x.dtype());
    let init_v = scalar_weak(if kind == ArgKind::Max { lo } else { hi }, x.dtype());
    let init_i = scalar_weak(Scalar::Int(0), index_dtype);
    let mut outs = bind(ArgReduce { kind, axis }, &[x, &idx, &init_v, &init_i]);
    let i = outs.pop();
    let v = outs.pop();
    match (v, i) {
        (Some(v), Some(i)) => (v, i),
        _ => unreachable!("argreduce binds two results"),
    }
}

impl Primitive for ArgReduce {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        if dims[2..].iter().any(Option::is_some) {
            return super::control::by_loop(Rc::new(self.clone()), ins, dims);
        }
        let mut args = crate::batching::all_front(&ins[..2], &dims[..2]);
        args.extend(ins[2..].iter().cloned());
        let refs: Vec<&Tensor> = args.iter().collect();
        let prim = ArgReduce {
            kind: self.kind,
            axis: self.axis + 1,
        };
        Ok((bind(prim, &refs), vec![Some(0); 2]))
    }

    fn vjp(&self, ins: &[Tensor], outs: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (x, idx) = (&ins[0], &ins[1]);
        let Some(g) = &cts[0] else {
            return Ok(vec![None; 4]);
        };
        let kept: Vec<usize> = (0..x.rank()).filter(|&i| i != self.axis).collect();
        let at = p::compare(
            idx,
            &broadcast_in_dim(&outs[1], x.shape(), &kept),
            CompareDir::Eq,
        );
        let gb = broadcast_in_dim(g, x.shape(), &kept);
        Ok(vec![
            Some(p::select(&at, &gb, &zeros_like(&gb))),
            None,
            None,
            None,
        ])
    }

    fn name(&self) -> &'static str {
        match self.kind {
            ArgKind::Max => "argmax",
            ArgKind::Min => "argmin",
        }
    }

    fn num_outputs(&self) -> usize {
        2
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 4)?;
        let (x, idx) = (ins[0], ins[1]);
        ensure!(x.dtype != DType::Bool, "element type must be numeric");
        ensure!(
            Class::Int.accepts(idx.dtype) && idx.shape == x.shape,
            "indices must be integers of the operand's shape"
        );
        ensure!(
            self.axis < x.rank(),
            "axis {} is out of range for rank {}",
            self.axis,
            x.rank()
        );
        let shape: Vec<usize> = (0..x.rank())
            .filter(|&i| i != self.axis)
            .map(|i| x.shape[i])
            .collect();
        Ok(vec![x.with_shape(shape.clone()), idx.with_shape(shape)])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let s = cx.scope;
        let (vt, it) = (scalar_ty(cx.ins[0].aval), scalar_ty(cx.ins[1].aval));
        let ct = compare_type(cx.ins[0].aval.dtype);
        let dir = if self.kind == ArgKind::Max {
            "GT"
        } else {
            "LT"
        };
        let v = |n: &str| format!("%{s}_{n}");
        let cmp = |out: &str, d: &str, a: &str, b: &str, t: &str, ty: &str| {
            format!(
                "{} = stablehlo.compare {d}, {}, {}, {t} : ({ty}, {ty}) -> tensor<i1>",
                v(out),
                v(a),
                v(b)
            )
        };
        let bin = |out: &str, op: &str, a: &str, b: &str| {
            format!(
                "{} = stablehlo.{op} {}, {} : tensor<i1>",
                v(out),
                v(a),
                v(b)
            )
        };
        let body = vec![
            cmp("better", dir, "av", "bv", ct, &vt),
            cmp("anan", "NE", "av", "av", ct, &vt),
            cmp("bnan", "NE", "bv", "bv", ct, &vt),
            cmp("eq", "EQ", "av", "bv", ct, &vt),
            cmp(
                "lower",
                "LT",
                "ai",
                "bi",
                compare_type(cx.ins[1].aval.dtype),
                &it,
            ),
            format!("{} = stablehlo.not {} : tensor<i1>", v("bnum"), v("bnan")),
            bin("nanwin", "and", "anan", "bnum"),
            bin("pickv", "or", "better", "nanwin"),
            bin("bothnan", "and", "anan", "bnan"),
            bin("same", "or", "eq", "bothnan"),
            bin("tie", "and", "same", "lower"),
            bin("picki", "or", "pickv", "tie"),
            format!(
                "{} = stablehlo.select {}, {}, {} : tensor<i1>, {vt}",
                v("v"),
                v("pickv"),
                v("av"),
                v("bv")
            ),
            format!(
                "{} = stablehlo.select {}, {}, {} : tensor<i1>, {it}",
                v("i"),
                v("picki"),
                v("ai"),
                v("bi")
            ),
        ];
        let args = [
            (v("av"), vt.clone()),
            (v("ai"), it.clone()),
            (v("bv"), vt.clone()),
            (v("bi"), it.clone()),
        ];
        let reg = region(&args, &body, &[(v("v"), vt), (v("i"), it)]);
        format!(
            "\"stablehlo.reduce\"({}) <{{dimensions = {}}}> {reg} : {}",
            cx.names(),
            i64_array(&[self.axis]),
            cx.fn_type()
        )
    }
}
