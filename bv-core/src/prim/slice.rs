//! `slice` (static), `dynamic_slice` and `dynamic_update_slice` (start indices are tensors).

use crate::batching::{self as b};
use crate::emit::{list, EmitCx};
use crate::prim::VjpResult;
use crate::prim::{arity, Class, Primitive};
use crate::prim::{gather, scatter, BatchResult, GatherDims, ScatterDims, ScatterKind};
use crate::trace::error::ensure;
use crate::trace::{bind1, Aval, OpError, Tensor};
use crate::trace::{fill, zeros_like};

/// Elements `start[i] .. limit[i]` with step `strides[i]` of each dimension
/// (`stablehlo.slice`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// Inclusive start per dimension.
    pub start: Vec<usize>,
    /// Exclusive limit per dimension.
    pub limit: Vec<usize>,
    /// Step per dimension (at least 1).
    pub strides: Vec<usize>,
}

/// Elements `start[i] .. limit[i]` of each dimension (`lax.slice`; `start` inclusive,
/// `limit` exclusive). [`slice_strided`] takes steps too.
#[track_caller]
pub fn slice(x: &Tensor, start: &[usize], limit: &[usize]) -> Tensor {
    slice_strided(x, start, limit, &vec![1; start.len()])
}

/// Elements `start[i] .. limit[i]` with step `strides[i]` (at least 1) of each dimension
/// (`lax.slice` with `strides`, `stablehlo.slice`).
#[track_caller]
pub fn slice_strided(x: &Tensor, start: &[usize], limit: &[usize], strides: &[usize]) -> Tensor {
    bind1(
        Slice {
            start: start.to_vec(),
            limit: limit.to_vec(),
            strides: strides.to_vec(),
        },
        &[x],
    )
}

/// Elements `start .. limit` with step `stride` of dimension `axis`, all of the others
/// (`lax.slice_in_dim`).
#[track_caller]
pub fn slice_in_dim(x: &Tensor, axis: usize, start: usize, limit: usize, stride: usize) -> Tensor {
    let mut lo = vec![0; x.rank()];
    let mut hi = x.shape().to_vec();
    let mut strides = vec![1; x.rank()];
    if axis < x.rank() {
        (lo[axis], hi[axis], strides[axis]) = (start, limit, stride);
    }
    slice_strided(x, &lo, &hi, &strides)
}

impl Primitive for Slice {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let with = |v: &[usize], first: usize| {
            let mut w = vec![first];
            w.extend(v);
            w
        };
        let prim = Slice {
            start: with(&self.start, 0),
            limit: with(&self.limit, n),
            strides: with(&self.strides, 1),
        };
        b::leading(prim, ins, dims)
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (x, Some(g)) = (&ins[0], &cts[0]) else {
            return Ok(vec![None]);
        };
        if g.size() == 0 {
            return Ok(vec![Some(zeros_like(x))]);
        }
        let cfg: Vec<(i64, i64, i64)> = (0..x.rank())
            .map(|i| {
                let (m, s, st) = (
                    g.shape()[i] as i64,
                    self.strides[i] as i64,
                    self.start[i] as i64,
                );
                (st, x.shape()[i] as i64 - (st + (m - 1) * s + 1), s - 1)
            })
            .collect();
        let zero = fill(&Aval::new([], x.dtype()), 0.0);
        Ok(vec![Some(crate::prim::pad(g, &zero, &cfg))])
    }

    fn name(&self) -> &'static str {
        "slice"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        let x = ins[0];
        let r = x.rank();
        ensure!(
            self.start.len() == r && self.limit.len() == r && self.strides.len() == r,
            "start {:?}, limit {:?} and strides {:?} need {} entries each",
            self.start,
            self.limit,
            self.strides,
            r
        );
        let mut shape = Vec::with_capacity(r);
        for i in 0..r {
            let (s, l, st) = (self.start[i], self.limit[i], self.strides[i]);
            ensure!(st >= 1, "strides must be at least 1");
            ensure!(
                s <= l && l <= x.shape[i],
                "slice {s}..{l} of dimension {i} (size {}) is out of range",
                x.shape[i]
            );
            shape.push((l - s).div_ceil(st));
        }
        Ok(vec![x.with_shape(shape)])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let ranges: Vec<String> = (0..self.start.len())
            .map(|i| match self.strides[i] {
                1 => format!("{}:{}", self.start[i], self.limit[i]),
                s => format!("{}:{}:{}", self.start[i], self.limit[i], s),
            })
            .collect();
        format!(
            "stablehlo.slice {} [{}] : {}",
            cx.name(0),
            ranges.join(", "),
            cx.fn_type()
        )
    }
}

/// Scalar start indices (batched at `dims`) as one index vector per batch element: an
/// `[n, rank]` tensor.
fn start_vectors(starts: &[Tensor], dims: &[Option<usize>], n: usize) -> Tensor {
    let cols: Vec<Tensor> = starts
        .iter()
        .zip(dims)
        .map(|(s, &d)| crate::prim::reshape(&b::batch_at(s, d, n, 0), &[n, 1]))
        .collect();
    let refs: Vec<&Tensor> = cols.iter().collect();
    crate::prim::concatenate(&refs, 1)
}

/// A zero start index of the type of `like` (`i32` when there is none).
fn start_zero(like: Option<&Tensor>) -> Tensor {
    crate::prim::full(&[], 0, like.map_or(crate::DType::I32, |t| t.dtype()))
}

/// A `sizes`-shaped window starting at run-time indices (one scalar integer per
/// dimension), clamped so the window stays inside (`stablehlo.dynamic_slice`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicSlice {
    /// Window size per dimension.
    pub sizes: Vec<usize>,
}

/// A `sizes`-shaped window starting at run-time indices (one scalar integer per
/// dimension), clamped so the window stays inside (`stablehlo.dynamic_slice`).
/// `sizes`: window size per dimension.
#[track_caller]
pub fn dynamic_slice(x: &Tensor, starts: &[&Tensor], sizes: &[usize]) -> Tensor {
    let mut ins = vec![x];
    ins.extend_from_slice(starts);
    bind1(
        DynamicSlice {
            sizes: sizes.to_vec(),
        },
        &ins,
    )
}

fn check_starts(x: &Aval, starts: &[&Aval]) -> Result<(), OpError> {
    ensure!(
        starts.len() == x.rank(),
        "needs {} start indices, got {}",
        x.rank(),
        starts.len()
    );
    for s in starts {
        ensure!(
            s.rank() == 0 && Class::Int.accepts(s.dtype),
            "start indices must be integer scalars"
        );
        ensure!(
            s.dtype == starts[0].dtype,
            "start indices must share one integer type"
        );
    }
    Ok(())
}

impl Primitive for DynamicSlice {
    /// With unbatched start indices, the window spans the whole batch dimension; batched
    /// start indices make it a `gather` of one window per batch element (JAX's rule).
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let x = b::batch_at(&ins[0], dims[0], n, 0);
        if dims[1..].iter().all(Option::is_none) {
            let mut sizes = vec![n];
            sizes.extend(&self.sizes);
            let mut args = vec![x, start_zero(ins.get(1))];
            args.extend(ins[1..].iter().cloned());
            let refs: Vec<&Tensor> = args.iter().collect();
            return Ok((vec![bind1(DynamicSlice { sizes }, &refs)], vec![Some(0)]));
        }
        let rank = self.sizes.len();
        let idx = start_vectors(&ins[1..], &dims[1..], n);
        let mut slice_sizes = vec![1];
        slice_sizes.extend(&self.sizes);
        let g = GatherDims {
            offset_dims: (1..=rank).collect(),
            operand_batching_dims: vec![0],
            start_indices_batching_dims: vec![0],
            start_index_map: (1..=rank).collect(),
            index_vector_dim: 1,
            ..GatherDims::default()
        };
        Ok((vec![gather(&x, &idx, g, &slice_sizes)], vec![Some(0)]))
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let mut out = vec![None; ins.len()];
        if let Some(g) = &cts[0] {
            let starts: Vec<&Tensor> = ins[1..].iter().collect();
            out[0] = Some(dynamic_update_slice(&zeros_like(&ins[0]), g, &starts));
        }
        Ok(out)
    }

    fn name(&self) -> &'static str {
        "dynamic_slice"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        ensure!(!ins.is_empty(), "needs an operand");
        let x = ins[0];
        check_starts(x, &ins[1..])?;
        ensure!(
            self.sizes.len() == x.rank(),
            "sizes {:?} need {} entries",
            self.sizes,
            x.rank()
        );
        for (i, (&s, &d)) in self.sizes.iter().zip(&x.shape).enumerate() {
            ensure!(
                s <= d,
                "size {s} of dimension {i} exceeds the operand's {d}"
            );
        }
        Ok(vec![x.with_shape(self.sizes.clone())])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.dynamic_slice {}, sizes = {} : {}",
            cx.names(),
            list(&self.sizes),
            cx.fn_type()
        )
    }
}

/// Writes `update` into `x` at run-time start indices, clamped so it fits
/// (`stablehlo.dynamic_update_slice`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicUpdateSlice;

/// Writes `update` into `x` at run-time start indices, clamped so it fits
/// (`stablehlo.dynamic_update_slice`).
#[track_caller]
pub fn dynamic_update_slice(x: &Tensor, update: &Tensor, starts: &[&Tensor]) -> Tensor {
    let mut ins = vec![x, update];
    ins.extend_from_slice(starts);
    bind1(DynamicUpdateSlice, &ins)
}

impl Primitive for DynamicUpdateSlice {
    /// With unbatched start indices, operand and update get the batch dimension in front and
    /// a start of 0 there; batched start indices, clamped as `dynamic_update_slice` clamps
    /// them, make it a `scatter` of one window per batch element (JAX's rule).
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let front = b::all_front(&ins[..2], &dims[..2]);
        if dims[2..].iter().all(Option::is_none) {
            let mut args = front;
            args.push(start_zero(ins.get(2)));
            args.extend(ins[2..].iter().cloned());
            let refs: Vec<&Tensor> = args.iter().collect();
            return Ok((vec![bind1(DynamicUpdateSlice, &refs)], vec![Some(0)]));
        }
        let (x, u) = (&front[0], &front[1]);
        let rank = x.rank() - 1;
        let clamped: Vec<Tensor> = ins[2..]
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let hi = (x.shape()[i + 1] - u.shape()[i + 1]) as i64;
                let lo = crate::prim::full(&[], 0, s.dtype());
                let hi = crate::prim::full(&[], hi, s.dtype());
                crate::prim::clamp(&lo, s, &hi)
            })
            .collect();
        let idx = start_vectors(&clamped, &dims[2..], n);
        let sd = ScatterDims {
            update_window_dims: (1..=rank).collect(),
            input_batching_dims: vec![0],
            scatter_indices_batching_dims: vec![0],
            scatter_dims_to_operand_dims: (1..=rank).collect(),
            index_vector_dim: 1,
            ..ScatterDims::default()
        };
        let out = scatter(x, &idx, u, sd, ScatterKind::Replace);
        Ok((vec![out], vec![Some(0)]))
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let mut out = vec![None; ins.len()];
        if let Some(g) = &cts[0] {
            let u = &ins[1];
            let starts: Vec<&Tensor> = ins[2..].iter().collect();
            out[0] = Some(dynamic_update_slice(g, &zeros_like(u), &starts));
            out[1] = Some(dynamic_slice(g, &starts, u.shape()));
        }
        Ok(out)
    }

    fn name(&self) -> &'static str {
        "dynamic_update_slice"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        ensure!(ins.len() >= 2, "needs an operand and an update");
        let (x, u) = (ins[0], ins[1]);
        ensure!(
            u.dtype == x.dtype && u.rank() == x.rank(),
            "update must have the operand's rank and element type"
        );
        for (i, (&s, &d)) in u.shape.iter().zip(&x.shape).enumerate() {
            ensure!(
                s <= d,
                "update size {s} of dimension {i} exceeds the operand's {d}"
            );
        }
        check_starts(x, &ins[2..])?;
        Ok(vec![x.clone()])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.dynamic_update_slice {} : {}",
            cx.names(),
            cx.fn_type()
        )
    }
}
