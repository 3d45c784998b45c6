//! `dot_general`: contraction with batch dimensions (matmul, einsum, attention).

use crate::batching::{self as b};
use crate::dtype::DType;
use crate::emit::{list, EmitCx};
use crate::prim::BatchResult;
use crate::prim::VjpResult;
use crate::prim::{arity, check_axes, Class, Primitive};
use crate::trace::error::ensure;
use crate::trace::{bind1, Aval, OpError, Tensor};

/// Dimension numbers of a contraction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DotDims {
    /// Contracted dimensions of the left operand.
    pub lhs_contracting: Vec<usize>,
    /// Contracted dimensions of the right operand (paired in order).
    pub rhs_contracting: Vec<usize>,
    /// Batch dimensions of the left operand.
    pub lhs_batch: Vec<usize>,
    /// Batch dimensions of the right operand (paired in order).
    pub rhs_batch: Vec<usize>,
}

/// Arithmetic precision requested from the backend (`jax.lax.Precision`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// The backend's fastest mode (e.g. bf16 passes on TPU).
    #[default]
    Default,
    /// More accurate (e.g. 3 bf16 passes).
    High,
    /// Full f32 accuracy.
    Highest,
}

impl Precision {
    /// StableHLO's spelling.
    pub fn mlir(self) -> &'static str {
        match self {
            Precision::Default => "DEFAULT",
            Precision::High => "HIGH",
            Precision::Highest => "HIGHEST",
        }
    }
}

/// Result dimensions: batch, then the left operand's free dimensions, then the right's
/// (`stablehlo.dot_general`). Operands share an element type; the result has
/// `preferred` (e.g. f32 accumulation of bf16) or that type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DotGeneral {
    /// Dimension numbers.
    pub dims: DotDims,
    /// Precision for both operands.
    pub precision: Precision,
    /// Result element type, if not the operands'.
    pub preferred: Option<DType>,
}

/// Result dimensions: batch, then the left operand's free dimensions, then the right's
/// (`stablehlo.dot_general`). Operands share an element type; the result has
/// `preferred` (e.g. f32 accumulation of bf16) or that type.
/// `dims`: dimension numbers; `precision`: precision for both operands; `preferred`: result element type, if not the operands'.
#[track_caller]
pub fn dot_general(
    x: &Tensor,
    y: &Tensor,
    dims: DotDims,
    precision: Precision,
    preferred: Option<DType>,
) -> Tensor {
    bind1(
        DotGeneral {
            dims,
            precision,
            preferred,
        },
        &[x, y],
    )
}

impl Primitive for DotGeneral {
    /// JAX's rule: a batch dimension on both operands becomes a new leading contraction
    /// batch dimension; on one operand it stays a free dimension of that operand.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let d = &self.dims;
        let (x, y) = (&ins[0], &ins[1]);
        let nb = d.lhs_batch.len();
        let (args, dd, out) = match (dims[0], dims[1]) {
            (Some(a), Some(c)) => (
                [b::moveaxis(x, a, 0), b::moveaxis(y, c, 0)],
                DotDims {
                    lhs_contracting: b::shift(&d.lhs_contracting),
                    rhs_contracting: b::shift(&d.rhs_contracting),
                    lhs_batch: b::lead(&d.lhs_batch),
                    rhs_batch: b::lead(&d.rhs_batch),
                },
                0,
            ),
            (Some(a), None) => (
                [b::moveaxis(x, a, 0), y.clone()],
                DotDims {
                    lhs_contracting: b::shift(&d.lhs_contracting),
                    lhs_batch: b::shift(&d.lhs_batch),
                    ..d.clone()
                },
                nb,
            ),
            (None, Some(c)) => {
                let lhs_free = x.rank() - nb - d.lhs_contracting.len();
                (
                    [x.clone(), b::moveaxis(y, c, 0)],
                    DotDims {
                        rhs_contracting: b::shift(&d.rhs_contracting),
                        rhs_batch: b::shift(&d.rhs_batch),
                        ..d.clone()
                    },
                    nb + lhs_free,
                )
            }
            (None, None) => return Err(OpError("no operand is batched".into())),
        };
        let prim = DotGeneral {
            dims: dd,
            ..self.clone()
        };
        Ok((vec![bind1(prim, &[&args[0], &args[1]])], vec![Some(out)]))
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (x, y) = (&ins[0], &ins[1]);
        let Some(g) = &cts[0] else {
            return Ok(vec![None, None]);
        };
        let g = if g.dtype() == x.dtype() {
            g.clone()
        } else {
            crate::prim::convert(g, x.dtype())
        };
        let d = &self.dims;
        let dx = transpose_lhs(
            &g,
            x,
            y,
            &d.lhs_contracting,
            &d.rhs_contracting,
            &d.lhs_batch,
            &d.rhs_batch,
            false,
            self.precision,
        );
        let dy = transpose_lhs(
            &g,
            y,
            x,
            &d.rhs_contracting,
            &d.lhs_contracting,
            &d.rhs_batch,
            &d.lhs_batch,
            true,
            self.precision,
        );
        Ok(vec![Some(dx), Some(dy)])
    }

    fn name(&self) -> &'static str {
        "dot_general"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 2)?;
        let (l, r) = (ins[0], ins[1]);
        let d = &self.dims;
        ensure!(
            l.dtype == r.dtype,
            "operand element types must be equal (convert them first)"
        );
        ensure!(
            Class::Num.accepts(l.dtype),
            "element type must be numeric, got {}",
            l.dtype
        );
        ensure!(
            d.lhs_batch.len() == d.rhs_batch.len(),
            "batch dimensions must pair up"
        );
        ensure!(
            d.lhs_contracting.len() == d.rhs_contracting.len(),
            "contracting dimensions must pair up"
        );
        let lhs_used: Vec<usize> = d
            .lhs_batch
            .iter()
            .chain(&d.lhs_contracting)
            .copied()
            .collect();
        let rhs_used: Vec<usize> = d
            .rhs_batch
            .iter()
            .chain(&d.rhs_contracting)
            .copied()
            .collect();
        check_axes(&lhs_used, l.rank(), "lhs dimension")?;
        check_axes(&rhs_used, r.rank(), "rhs dimension")?;
        for (&a, &b) in d.lhs_batch.iter().zip(&d.rhs_batch) {
            ensure!(
                l.shape[a] == r.shape[b],
                "batch dimension sizes differ: lhs {a} is {}, rhs {b} is {}",
                l.shape[a],
                r.shape[b]
            );
        }
        for (&a, &b) in d.lhs_contracting.iter().zip(&d.rhs_contracting) {
            ensure!(
                l.shape[a] == r.shape[b],
                "contracting dimension sizes differ: lhs {a} is {}, rhs {b} is {}",
                l.shape[a],
                r.shape[b]
            );
        }
        let mut shape: Vec<usize> = d.lhs_batch.iter().map(|&a| l.shape[a]).collect();
        shape.extend(
            (0..l.rank())
                .filter(|i| !lhs_used.contains(i))
                .map(|i| l.shape[i]),
        );
        shape.extend(
            (0..r.rank())
                .filter(|i| !rhs_used.contains(i))
                .map(|i| r.shape[i]),
        );
        let dtype = self.preferred.unwrap_or(l.dtype);
        Ok(vec![Aval {
            shape,
            dtype,
            weak: l.weak && r.weak && self.preferred.is_none(),
        }])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let d = &self.dims;
        let batch = if d.lhs_batch.is_empty() {
            String::new()
        } else {
            format!(
                "batching_dims = {} x {}, ",
                list(&d.lhs_batch),
                list(&d.rhs_batch)
            )
        };
        let p = self.precision.mlir();
        format!(
            "stablehlo.dot_general {}, {}, {batch}contracting_dims = {} x {}, precision = [{p}, {p}] : {}",
            cx.name(0),
            cx.name(1),
            list(&d.lhs_contracting),
            list(&d.rhs_contracting),
            cx.fn_type()
        )
    }
}

fn remaining(n: usize, a: &[usize], b: &[usize]) -> Vec<usize> {
    (0..n)
        .filter(|i| !a.contains(i) && !b.contains(i))
        .collect()
}

/// JAX's `_dot_general_transpose_lhs`: the cotangent of `x` in `dot_general(x, y)` (or of
/// the rhs, with the operands and dimension lists swapped and `swap_ans`).
#[allow(clippy::too_many_arguments)]
fn transpose_lhs(
    g: &Tensor,
    x: &Tensor,
    y: &Tensor,
    x_contract: &[usize],
    y_contract: &[usize],
    x_batch: &[usize],
    y_batch: &[usize],
    swap_ans: bool,
    precision: Precision,
) -> Tensor {
    let x_kept = remaining(x.rank(), x_contract, x_batch);
    let y_kept = remaining(y.rank(), y_contract, y_batch);
    let nb = x_batch.len();
    let ans_batch: Vec<usize> = (0..nb).collect();
    let ans_y: Vec<usize> = if swap_ans {
        (nb..nb + y_kept.len()).collect()
    } else {
        let s = nb + x_kept.len();
        (s..s + y_kept.len()).collect()
    };
    let dims = DotDims {
        lhs_contracting: ans_y,
        rhs_contracting: y_kept,
        lhs_batch: ans_batch,
        rhs_batch: y_batch.to_vec(),
    };
    let mut order: Vec<usize> = (0..y_contract.len()).collect();
    order.sort_by_key(|&i| y_contract[i]);
    let x_contract_sorted: Vec<usize> = order.iter().map(|&i| x_contract[i]).collect();
    let pre: Vec<usize> = x_batch
        .iter()
        .chain(&x_kept)
        .chain(&x_contract_sorted)
        .copied()
        .collect();
    let mut out_axes = vec![0; pre.len()];
    let mut idx: Vec<usize> = (0..pre.len()).collect();
    idx.sort_by_key(|&i| pre[i]);
    for (k, &i) in idx.iter().enumerate() {
        out_axes[k] = i;
    }
    let r = dot_general(g, y, dims, precision, None);
    crate::prim::transpose(&r, &out_axes)
}
