//! `scatter`: write or add update slices into an operand at run-time indices.

use crate::batching::{self as b};
use crate::dtype::DType;
use crate::emit::{list, region, scalar_ty, EmitCx};
use crate::prim::gather::{batch_shape, vector_len};
use crate::prim::BatchResult;
use crate::prim::{self as p, gather, CompareDir, GatherDims, VjpResult};
use crate::prim::{arity, check_axes, Class, Primitive};
use crate::trace::error::ensure;
use crate::trace::zeros_like;
use crate::trace::{bind1, Aval, OpError, Tensor};

/// StableHLO's scatter dimension numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScatterDims {
    /// Update dimensions that are window (slice) dimensions.
    pub update_window_dims: Vec<usize>,
    /// Operand dimensions with window size 1 that updates do not carry.
    pub inserted_window_dims: Vec<usize>,
    /// Operand dimensions batched with `scatter_indices_batching_dims`.
    pub input_batching_dims: Vec<usize>,
    /// Index dimensions matched one-to-one with `input_batching_dims`.
    pub scatter_indices_batching_dims: Vec<usize>,
    /// Which operand dimension each entry of an index vector addresses.
    pub scatter_dims_to_operand_dims: Vec<usize>,
    /// The index dimension holding index vectors.
    pub index_vector_dim: usize,
}

/// How an update combines with the value already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScatterKind {
    /// Overwrite (with duplicate indices, which write wins is unspecified; the derivative
    /// follows the one that did).
    Replace,
    /// Accumulate.
    Add,
}

/// Combines update slices into the operand at the indexed positions; out-of-range windows
/// are skipped (`stablehlo.scatter`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scatter {
    /// Dimension numbers.
    pub dims: ScatterDims,
    /// Combination rule.
    pub kind: ScatterKind,
}

/// Combines update slices into the operand at the indexed positions; out-of-range windows
/// are skipped (`stablehlo.scatter`).
/// `dims`: dimension numbers; `kind`: combination rule.
#[track_caller]
pub fn scatter(
    x: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    dims: ScatterDims,
    kind: ScatterKind,
) -> Tensor {
    bind1(Scatter { dims, kind }, &[x, indices, updates])
}

impl Primitive for Scatter {
    /// Operand, indices and updates all get the batch dimension in front, paired through
    /// `input_batching_dims` / `scatter_indices_batching_dims` (JAX's rule for batched
    /// operands).
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let d = &self.dims;
        let sd = ScatterDims {
            update_window_dims: b::shift(&d.update_window_dims),
            inserted_window_dims: b::shift(&d.inserted_window_dims),
            input_batching_dims: b::lead(&d.input_batching_dims),
            scatter_indices_batching_dims: b::lead(&d.scatter_indices_batching_dims),
            scatter_dims_to_operand_dims: b::shift(&d.scatter_dims_to_operand_dims),
            index_vector_dim: d.index_vector_dim + 1,
        };
        b::leading(
            Scatter {
                dims: sd,
                kind: self.kind,
            },
            ins,
            dims,
        )
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (x, idx, upd) = (&ins[0], &ins[1], &ins[2]);
        let Some(g) = &cts[0] else {
            return Ok(vec![None; 3]);
        };
        let d = &self.dims;
        let mut window = d.update_window_dims.iter();
        let slice_sizes: Vec<usize> = (0..x.rank())
            .map(|i| {
                if d.inserted_window_dims.contains(&i) || d.input_batching_dims.contains(&i) {
                    1
                } else {
                    window.next().map_or(1, |&u| upd.shape()[u])
                }
            })
            .collect();
        let gd = GatherDims {
            offset_dims: d.update_window_dims.clone(),
            collapsed_slice_dims: d.inserted_window_dims.clone(),
            operand_batching_dims: d.input_batching_dims.clone(),
            start_indices_batching_dims: d.scatter_indices_batching_dims.clone(),
            start_index_map: d.scatter_dims_to_operand_dims.clone(),
            index_vector_dim: d.index_vector_dim,
        };
        let d_upd = gather(g, idx, gd.clone(), &slice_sizes);
        let (d_x, d_upd) = match self.kind {
            ScatterKind::Add => (g.clone(), d_upd),
            // Overwritten positions get no cotangent, and of updates written to one place
            // only the one that stayed does: JAX's rule scatters an id per update and
            // gathers the ids back to see which.
            ScatterKind::Replace => {
                let mut ids_shape = upd.shape().to_vec();
                for &w in &d.update_window_dims {
                    ids_shape[w] = 1;
                }
                let n = ids_shape.iter().product::<usize>();
                let ids = p::add(
                    &p::reshape(&p::iota(DType::U32, &[n], 0), &ids_shape),
                    &p::full(&ids_shape, 1, DType::U32),
                );
                let none = p::full(x.shape(), 0, DType::U32);
                let written = scatter(&none, idx, &ids, d.clone(), ScatterKind::Replace);
                let back = gather(&written, idx, gd, &vec![1; x.rank()]);
                let all: Vec<usize> = (0..upd.rank()).collect();
                let stayed = p::broadcast_in_dim(
                    &p::compare(&ids, &back, CompareDir::Eq),
                    upd.shape(),
                    &all,
                );
                (
                    scatter(g, idx, &zeros_like(upd), d.clone(), ScatterKind::Replace),
                    p::select(&stayed, &d_upd, &zeros_like(&d_upd)),
                )
            }
        };
        Ok(vec![Some(d_x), None, Some(d_upd)])
    }

    fn name(&self) -> &'static str {
        match self.kind {
            ScatterKind::Replace => "scatter",
            ScatterKind::Add => "scatter_add",
        }
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 3)?;
        let (x, idx, upd) = (ins[0], ins[1], ins[2]);
        let d = &self.dims;
        ensure!(
            Class::Int.accepts(idx.dtype),
            "indices must be integers, got {}",
            idx.dtype
        );
        ensure!(
            upd.dtype == x.dtype,
            "updates must have the operand's element type"
        );
        ensure!(
            d.index_vector_dim <= idx.rank(),
            "index_vector_dim {} is out of range",
            d.index_vector_dim
        );
        check_axes(
            &d.inserted_window_dims,
            x.rank(),
            "inserted_window_dims entry",
        )?;
        check_axes(
            &d.input_batching_dims,
            x.rank(),
            "input_batching_dims entry",
        )?;
        check_axes(
            &d.scatter_dims_to_operand_dims,
            x.rank(),
            "scatter_dims_to_operand_dims entry",
        )?;
        check_axes(
            &d.update_window_dims,
            upd.rank(),
            "update_window_dims entry",
        )?;
        ensure!(
            d.scatter_dims_to_operand_dims.len() == vector_len(idx, d.index_vector_dim),
            "scatter_dims_to_operand_dims {:?} must have one entry per index vector element",
            d.scatter_dims_to_operand_dims
        );
        let batch = batch_shape(idx, d.index_vector_dim);
        let upd_scatter: Vec<usize> = (0..upd.rank())
            .filter(|i| !d.update_window_dims.contains(i))
            .map(|i| upd.shape[i])
            .collect();
        ensure!(
            upd_scatter == batch,
            "update scatter dimensions {:?} must equal the index batch shape {:?}",
            upd_scatter,
            batch
        );
        let window_operand: Vec<usize> = (0..x.rank())
            .filter(|i| !d.inserted_window_dims.contains(i) && !d.input_batching_dims.contains(i))
            .collect();
        ensure!(
            window_operand.len() == d.update_window_dims.len(),
            "update_window_dims {:?} need {} entries",
            d.update_window_dims,
            window_operand.len()
        );
        for (&ud, &od) in d.update_window_dims.iter().zip(&window_operand) {
            ensure!(
                upd.shape[ud] <= x.shape[od],
                "update window size {} exceeds operand dimension {od} ({})",
                upd.shape[ud],
                x.shape[od]
            );
        }
        Ok(vec![x.clone()])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let d = &self.dims;
        let mut dn = format!(
            "update_window_dims = {}, inserted_window_dims = {}",
            list(&d.update_window_dims),
            list(&d.inserted_window_dims)
        );
        if !d.input_batching_dims.is_empty() {
            dn += &format!(
                ", input_batching_dims = {}, scatter_indices_batching_dims = {}",
                list(&d.input_batching_dims),
                list(&d.scatter_indices_batching_dims)
            );
        }
        dn += &format!(
            ", scatter_dims_to_operand_dims = {}, index_vector_dim = {}",
            list(&d.scatter_dims_to_operand_dims),
            d.index_vector_dim
        );
        let t = scalar_ty(cx.ins[0].aval);
        let (a, b, c) = (
            format!("%{}_old", cx.scope),
            format!("%{}_new", cx.scope),
            format!("%{}_sum", cx.scope),
        );
        let reg = match self.kind {
            ScatterKind::Replace => {
                region(&[(a, t.clone()), (b.clone(), t.clone())], &[], &[(b, t)])
            }
            ScatterKind::Add => {
                let body = [format!("{c} = stablehlo.add {a}, {b} : {t}")];
                region(&[(a, t.clone()), (b, t.clone())], &body, &[(c, t)])
            }
        };
        format!(
            "\"stablehlo.scatter\"({}) <{{indices_are_sorted = false, scatter_dimension_numbers = #stablehlo.scatter<{dn}>, unique_indices = false}}> {reg} : {}",
            cx.names(),
            cx.fn_type()
        )
    }
}
