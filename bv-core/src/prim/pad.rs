//! `pad` (edge and interior padding, negative edges crop) and `concatenate`.

use crate::batching::{self as b};
use crate::dtype::DType;
use crate::emit::{list, EmitCx};
use crate::prim::BatchResult;
use crate::prim::{arity, Primitive};
use crate::prim::{reduce, slice, slice_strided, ReduceKind, VjpResult};
use crate::trace::error::ensure;
use crate::trace::fill;
use crate::trace::{bind, bind1, Aval, OpError, Tensor};

/// Pads with a scalar value: `lo[i]` before, `hi[i]` after (negative removes elements) and
/// `interior[i]` between elements of dimension `i` (`stablehlo.pad`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pad {
    /// Low edge padding per dimension.
    pub lo: Vec<i64>,
    /// High edge padding per dimension.
    pub hi: Vec<i64>,
    /// Interior padding per dimension (non-negative).
    pub interior: Vec<i64>,
}

/// Pads with a scalar value: `lo[i]` before, `hi[i]` after (negative removes elements) and
/// `interior[i]` between elements of dimension `i` (`stablehlo.pad`).
/// `config[i] = (lo, hi, interior)`, as `lax.pad`.
#[track_caller]
pub fn pad(x: &Tensor, value: &Tensor, config: &[(i64, i64, i64)]) -> Tensor {
    let p = Pad {
        lo: config.iter().map(|c| c.0).collect(),
        hi: config.iter().map(|c| c.1).collect(),
        interior: config.iter().map(|c| c.2).collect(),
    };
    bind1(p, &[x, value])
}

impl Primitive for Pad {
    /// JAX's rule: the operand gets the batch dimension in front; a batched padding value is
    /// put in by a select on a mask of the padded positions.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let with = |v: &[i64]| {
            let mut w = vec![0];
            w.extend(v);
            w
        };
        let prim = Pad {
            lo: with(&self.lo),
            hi: with(&self.hi),
            interior: with(&self.interior),
        };
        let n = b::size(ins, dims);
        let x = b::batch_at(&ins[0], dims[0], n, 0);
        let Some(d) = dims[1] else {
            return Ok((vec![bind1(prim, &[&x, &ins[1]])], vec![Some(0)]));
        };
        let zero = crate::prim::full(&[], 0, x.dtype());
        let padded = bind1(prim.clone(), &[&x, &zero]);
        let inside = crate::prim::full(x.shape(), false, DType::Bool);
        let mask = bind1(prim, &[&inside, &crate::prim::scalar(true)]);
        let value =
            crate::prim::broadcast_in_dim(&b::moveaxis(&ins[1], d, 0), padded.shape(), &[0]);
        let out = crate::prim::select(&mask, &value, &padded);
        Ok((vec![out], vec![Some(0)]))
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (x, Some(g)) = (&ins[0], &cts[0]) else {
            return Ok(vec![None, None]);
        };
        let r = x.rank();
        let unpad: Vec<(i64, i64, i64)> = (0..r).map(|i| (-self.lo[i], -self.hi[i], 0)).collect();
        let zero = fill(&Aval::new([], x.dtype()), 0.0);
        let t = pad(g, &zero, &unpad);
        let strides: Vec<usize> = self.interior.iter().map(|&i| i as usize + 1).collect();
        let t = slice_strided(&t, &vec![0; r], t.shape(), &strides);
        let all: Vec<usize> = (0..r).collect();
        let total = reduce(g, ReduceKind::Sum, &all);
        let kept = reduce(&t, ReduceKind::Sum, &all);
        Ok(vec![Some(t), Some(crate::prim::sub(&total, &kept))])
    }

    fn name(&self) -> &'static str {
        "pad"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 2)?;
        let (x, v) = (ins[0], ins[1]);
        ensure!(
            v.rank() == 0 && v.dtype == x.dtype,
            "padding value must be a scalar of the operand's type"
        );
        ensure!(
            self.lo.len() == x.rank(),
            "padding config needs {} entries, got {}",
            x.rank(),
            self.lo.len()
        );
        let mut shape = Vec::with_capacity(x.rank());
        for (i, &d) in x.shape.iter().enumerate() {
            ensure!(
                self.interior[i] >= 0,
                "interior padding must be non-negative"
            );
            let base = if d == 0 {
                0
            } else {
                d as i64 + (d as i64 - 1) * self.interior[i]
            };
            let n = base + self.lo[i] + self.hi[i];
            ensure!(
                n >= 0,
                "padding of dimension {i} leaves a negative size {n}"
            );
            shape.push(n as usize);
        }
        Ok(vec![x.with_shape(shape)])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.pad {}, {}, low = {}, high = {}, interior = {} : {}",
            cx.name(0),
            cx.name(1),
            list(&self.lo),
            list(&self.hi),
            list(&self.interior),
            cx.fn_type()
        )
    }
}

/// Joins operands along `dim`; other dimensions and element types must agree
/// (`stablehlo.concatenate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Concatenate {
    /// The joining dimension.
    pub dim: usize,
}

/// Joins operands along `dim`; other dimensions and element types must agree
/// (`stablehlo.concatenate`).
/// `dim`: the joining dimension.
#[track_caller]
pub fn concatenate(xs: &[&Tensor], dim: usize) -> Tensor {
    bind(Concatenate { dim }, xs).swap_remove(0)
}

impl Primitive for Concatenate {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        b::leading(Concatenate { dim: self.dim + 1 }, ins, dims)
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let Some(g) = &cts[0] else {
            return Ok(vec![None; ins.len()]);
        };
        let mut at = 0;
        let mut out = Vec::with_capacity(ins.len());
        for x in ins {
            let mut start = vec![0; x.rank()];
            let mut limit = g.shape().to_vec();
            start[self.dim] = at;
            at += x.shape()[self.dim];
            limit[self.dim] = at;
            out.push(Some(slice(g, &start, &limit)));
        }
        Ok(out)
    }

    fn name(&self) -> &'static str {
        "concatenate"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        ensure!(!ins.is_empty(), "needs at least one operand");
        let first = ins[0];
        ensure!(
            self.dim < first.rank(),
            "dimension {} is out of range for rank {}",
            self.dim,
            first.rank()
        );
        let mut total = 0;
        for a in ins {
            ensure!(
                a.dtype == first.dtype,
                "operand element types must be equal"
            );
            ensure!(a.rank() == first.rank(), "operand ranks must be equal");
            for i in 0..a.rank() {
                ensure!(
                    i == self.dim || a.shape[i] == first.shape[i],
                    "operands differ in dimension {i}, which is not the joined one"
                );
            }
            total += a.shape[self.dim];
        }
        let mut shape = first.shape.clone();
        shape[self.dim] = total;
        Ok(vec![Aval {
            shape,
            dtype: first.dtype,
            weak: ins.iter().all(|a| a.weak),
        }])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.concatenate {}, dim = {} : {}",
            cx.names(),
            self.dim,
            cx.fn_type()
        )
    }
}
