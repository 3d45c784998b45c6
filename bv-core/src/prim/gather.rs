//! `gather`: slices of an operand at run-time start indices (indexing, take, embeddings).

use crate::batching::{self as b};
use crate::emit::{i64_array, list, EmitCx};
use crate::prim::BatchResult;
use crate::prim::{arity, check_axes, Class, Primitive};
use crate::prim::{scatter, ScatterDims, ScatterKind, VjpResult};
use crate::trace::error::ensure;
use crate::trace::zeros_like;
use crate::trace::{bind1, Aval, OpError, Tensor};

/// StableHLO's gather dimension numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GatherDims {
    /// Result dimensions that hold the slice's (non-collapsed) dimensions.
    pub offset_dims: Vec<usize>,
    /// Operand dimensions of slice size 1 that are dropped from the result.
    pub collapsed_slice_dims: Vec<usize>,
    /// Operand dimensions batched with `start_indices_batching_dims` (size-1 slices).
    pub operand_batching_dims: Vec<usize>,
    /// Index dimensions matched one-to-one with `operand_batching_dims`.
    pub start_indices_batching_dims: Vec<usize>,
    /// Which operand dimension each entry of an index vector starts.
    pub start_index_map: Vec<usize>,
    /// The index dimension holding index vectors (may equal the index rank: implicit 1).
    pub index_vector_dim: usize,
}

/// Gathers `slice_sizes`-shaped slices of the operand (`stablehlo.gather`); start indices
/// are clamped so every slice stays inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gather {
    /// Dimension numbers.
    pub dims: GatherDims,
    /// Slice size per operand dimension.
    pub slice_sizes: Vec<usize>,
    /// The indices are sorted (a hint).
    pub indices_are_sorted: bool,
}

/// Gathers `slice_sizes`-shaped slices of the operand (`stablehlo.gather`); start indices
/// are clamped so every slice stays inside.
/// `dims`: dimension numbers; `slice_sizes`: slice size per operand dimension.
#[track_caller]
pub fn gather(x: &Tensor, indices: &Tensor, dims: GatherDims, slice_sizes: &[usize]) -> Tensor {
    bind1(
        Gather {
            dims,
            slice_sizes: slice_sizes.to_vec(),
            indices_are_sorted: false,
        },
        &[x, indices],
    )
}

/// The batch shape of indices: their shape without the index vector dimension.
pub(crate) fn batch_shape(idx: &Aval, index_vector_dim: usize) -> Vec<usize> {
    idx.shape
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != index_vector_dim)
        .map(|(_, &d)| d)
        .collect()
}

/// The index vector length (1 when the vector dimension is implicit).
pub(crate) fn vector_len(idx: &Aval, index_vector_dim: usize) -> usize {
    idx.shape.get(index_vector_dim).copied().unwrap_or(1)
}

impl Primitive for Gather {
    /// Batched indices keep their batch dimension in front as a result batch dimension
    /// (JAX's rule); a batched operand pairs its batch dimension with the indices' through
    /// `operand_batching_dims` (indices broadcast when not batched).
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let d = &self.dims;
        let idx = b::batch_at(&ins[1], dims[1], n, 0);
        let mut g = GatherDims {
            offset_dims: b::shift(&d.offset_dims),
            start_indices_batching_dims: b::shift(&d.start_indices_batching_dims),
            index_vector_dim: d.index_vector_dim + 1,
            ..d.clone()
        };
        let mut prim = Gather {
            dims: g.clone(),
            ..self.clone()
        };
        let x = match dims[0] {
            None => ins[0].clone(),
            Some(a) => {
                g.collapsed_slice_dims = b::shift(&d.collapsed_slice_dims);
                g.operand_batching_dims = b::lead(&d.operand_batching_dims);
                g.start_indices_batching_dims = b::lead(&d.start_indices_batching_dims);
                g.start_index_map = b::shift(&d.start_index_map);
                prim.dims = g;
                prim.slice_sizes.insert(0, 1);
                b::moveaxis(&ins[0], a, 0)
            }
        };
        Ok((vec![bind1(prim, &[&x, &idx])], vec![Some(0)]))
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (x, idx) = (&ins[0], &ins[1]);
        let Some(g) = &cts[0] else {
            return Ok(vec![None, None]);
        };
        let d = &self.dims;
        let dims = ScatterDims {
            update_window_dims: d.offset_dims.clone(),
            inserted_window_dims: d.collapsed_slice_dims.clone(),
            input_batching_dims: d.operand_batching_dims.clone(),
            scatter_indices_batching_dims: d.start_indices_batching_dims.clone(),
            scatter_dims_to_operand_dims: d.start_index_map.clone(),
            index_vector_dim: d.index_vector_dim,
        };
        let r = scatter(&zeros_like(x), idx, g, dims, ScatterKind::Add);
        Ok(vec![Some(r), None])
    }

    fn name(&self) -> &'static str {
        "gather"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 2)?;
        let (x, idx) = (ins[0], ins[1]);
        let d = &self.dims;
        ensure!(
            Class::Int.accepts(idx.dtype),
            "indices must be integers, got {}",
            idx.dtype
        );
        ensure!(
            d.index_vector_dim <= idx.rank(),
            "index_vector_dim {} is out of range",
            d.index_vector_dim
        );
        ensure!(
            self.slice_sizes.len() == x.rank(),
            "slice_sizes {:?} need {} entries",
            self.slice_sizes,
            x.rank()
        );
        for (i, (&s, &n)) in self.slice_sizes.iter().zip(&x.shape).enumerate() {
            ensure!(
                s <= n,
                "slice size {s} of dimension {i} exceeds the operand's {n}"
            );
        }
        check_axes(
            &d.collapsed_slice_dims,
            x.rank(),
            "collapsed_slice_dims entry",
        )?;
        check_axes(
            &d.operand_batching_dims,
            x.rank(),
            "operand_batching_dims entry",
        )?;
        check_axes(&d.start_index_map, x.rank(), "start_index_map entry")?;
        for &c in d
            .collapsed_slice_dims
            .iter()
            .chain(&d.operand_batching_dims)
        {
            ensure!(
                self.slice_sizes[c] <= 1,
                "collapsed and batching dimensions need slice size 1 (dimension {c})"
            );
        }
        ensure!(
            d.start_index_map.len() == vector_len(idx, d.index_vector_dim),
            "start_index_map {:?} must have one entry per index vector element ({})",
            d.start_index_map,
            vector_len(idx, d.index_vector_dim)
        );
        ensure!(
            d.operand_batching_dims.len() == d.start_indices_batching_dims.len(),
            "operand and index batching dimensions must pair up"
        );
        let batch = batch_shape(idx, d.index_vector_dim);
        let offsets: Vec<usize> = (0..x.rank())
            .filter(|i| !d.collapsed_slice_dims.contains(i) && !d.operand_batching_dims.contains(i))
            .map(|i| self.slice_sizes[i])
            .collect();
        ensure!(
            d.offset_dims.len() == offsets.len(),
            "offset_dims {:?} need {} entries",
            d.offset_dims,
            offsets.len()
        );
        let rank = batch.len() + offsets.len();
        check_axes(&d.offset_dims, rank, "offset_dims entry")?;
        let (mut bi, mut oi) = (batch.iter(), offsets.iter());
        let shape: Vec<usize> = (0..rank)
            .map(|i| {
                if d.offset_dims.contains(&i) {
                    oi.next()
                } else {
                    bi.next()
                }
                .copied()
                .unwrap_or(0)
            })
            .collect();
        Ok(vec![x.with_shape(shape)])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let d = &self.dims;
        let mut dn = format!(
            "offset_dims = {}, collapsed_slice_dims = {}",
            list(&d.offset_dims),
            list(&d.collapsed_slice_dims)
        );
        if !d.operand_batching_dims.is_empty() {
            dn += &format!(
                ", operand_batching_dims = {}, start_indices_batching_dims = {}",
                list(&d.operand_batching_dims),
                list(&d.start_indices_batching_dims)
            );
        }
        dn += &format!(
            ", start_index_map = {}, index_vector_dim = {}",
            list(&d.start_index_map),
            d.index_vector_dim
        );
        format!(
            "\"stablehlo.gather\"({}) <{{dimension_numbers = #stablehlo.gather<{dn}>, indices_are_sorted = {}, slice_sizes = {}}}> : {}",
            cx.names(),
            self.indices_are_sorted,
            i64_array(&self.slice_sizes),
            cx.fn_type()
        )
    }
}

/// `x` indexed along dimension `dim` by `idx` of `x`'s shape (indices in range):
/// `out[.., i, ..] = x[.., idx[.., i, ..], ..]`, the gather behind `take_along_axis`.
#[track_caller]
pub(crate) fn take_along(x: &Tensor, idx: &Tensor, dim: usize) -> Tensor {
    let others: Vec<usize> = (0..x.rank()).filter(|&d| d != dim).collect();
    let dims = GatherDims {
        offset_dims: vec![],
        collapsed_slice_dims: vec![dim],
        operand_batching_dims: others.clone(),
        start_indices_batching_dims: others,
        start_index_map: vec![dim],
        index_vector_dim: x.rank(),
    };
    gather(x, idx, dims, &vec![1; x.rank()])
}
