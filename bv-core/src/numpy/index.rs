//! Selection, indexing and sorting: `where`, `take`, `take_along_axis`, `one_hot`, `argmax`,
//! `argmin`, `top_k`, `sort`, `argsort`, `searchsorted`.

use crate::dtype::DType;
use crate::numpy::{astype, bad_axis, broadcast_to, norm_axis, prepare, Operand};
use crate::prim::{self, ArgKind, CompareDir, GatherDims};
use crate::trace::{fail, Tensor};

/// `cond ? x : y` elementwise, with `x` and `y` promoted and all three broadcast.
#[track_caller]
pub fn where_(cond: &Tensor, x: impl Into<Operand>, y: impl Into<Operand>) -> Tensor {
    let (x, y) = (x.into(), y.into());
    let c = astype(cond, DType::Bool);
    match prepare("where", &[x, y, Operand::from(&c)]) {
        Ok(v) => {
            let c = broadcast_to(&c, v[0].shape());
            prim::select(&c, &v[0], &v[1])
        }
        Err(p) => p,
    }
}

/// Indices below zero count from the end (`-1` is the last), as numpy.
#[track_caller]
fn wrap_negative(idx: &Tensor, n: usize) -> Tensor {
    if idx.dtype().is_unsigned_int() {
        return idx.clone();
    }
    let zero = prim::full(idx.shape(), 0, idx.dtype());
    let size = prim::full(idx.shape(), n as i64, idx.dtype());
    prim::select(
        &prim::compare(idx, &zero, CompareDir::Lt),
        &prim::add(idx, &size),
        idx,
    )
}

/// Elements of `x` at integer `indices` along `axis`: the result shape is
/// `x.shape[..axis] + indices.shape + x.shape[axis+1..]`. Out-of-range indices are clamped
/// (numpy's `mode="clip"`); negative ones count from the end.
#[track_caller]
pub fn take(x: &Tensor, indices: &Tensor, axis: isize) -> Tensor {
    let Some(a) = norm_axis(axis, x.rank()) else {
        return bad_axis("take", x, axis);
    };
    if !(indices.dtype().is_signed_int() || indices.dtype().is_unsigned_int()) {
        let reason = format!("indices must be integers, got {}", indices.dtype());
        return fail(
            "take",
            reason,
            &[x.aval(), indices.aval()],
            Some(x),
            x.aval().clone(),
        );
    }
    let idx = wrap_negative(indices, x.shape()[a]);
    let r = idx.rank();
    let mut slice = x.shape().to_vec();
    slice[a] = 1;
    let offset_dims: Vec<usize> = (0..a).chain(a + r..x.rank() - 1 + r).collect();
    let dims = GatherDims {
        offset_dims,
        collapsed_slice_dims: vec![a],
        start_index_map: vec![a],
        index_vector_dim: r,
        ..GatherDims::default()
    };
    prim::gather(x, &idx, dims, &slice)
}

/// `x[..., indices[...], ...]` along `axis` elementwise: `indices` has `x`'s rank, and its
/// other dimensions broadcast against `x`'s (as `jnp.take_along_axis`).
#[track_caller]
pub fn take_along_axis(x: &Tensor, indices: &Tensor, axis: isize) -> Tensor {
    let Some(a) = norm_axis(axis, x.rank()) else {
        return bad_axis("take_along_axis", x, axis);
    };
    if indices.rank() != x.rank() {
        let reason = format!("indices must have the operand's rank {}", x.rank());
        return fail(
            "take_along_axis",
            reason,
            &[x.aval(), indices.aval()],
            Some(x),
            x.aval().clone(),
        );
    }
    let mut ishape = x.shape().to_vec();
    ishape[a] = indices.shape()[a];
    let mut xshape = indices.shape().to_vec();
    for d in 0..x.rank() {
        if d != a {
            xshape[d] = x.shape()[d].max(indices.shape()[d]);
            ishape[d] = xshape[d];
        }
    }
    xshape[a] = x.shape()[a];
    let idx = wrap_negative(&broadcast_to(indices, &ishape), x.shape()[a]);
    let xb = broadcast_to(x, &xshape);
    prim::take_along(&xb, &idx, a)
}

/// One-hot encoding: a new trailing dimension of size `n`, 1 at each index, 0 elsewhere
/// (all zeros for out-of-range indices).
#[track_caller]
pub fn one_hot(indices: &Tensor, n: usize, dtype: DType) -> Tensor {
    let mut shape = indices.shape().to_vec();
    shape.push(n);
    let dims: Vec<usize> = (0..indices.rank()).collect();
    let idx = prim::broadcast_in_dim(indices, &shape, &dims);
    let classes = prim::iota(indices.dtype(), &shape, indices.rank());
    astype(&prim::compare(&idx, &classes, CompareDir::Eq), dtype)
}

#[track_caller]
fn arg(op: &'static str, x: &Tensor, axis: isize, kind: ArgKind) -> Tensor {
    match norm_axis(axis, x.rank()) {
        Some(a) if x.dtype() == DType::Bool => {
            prim::argreduce(&astype(x, DType::I32), kind, a, DType::I32).1
        }
        Some(a) => prim::argreduce(x, kind, a, DType::I32).1,
        None => bad_axis(op, x, axis),
    }
}

/// Index (i32) of the largest value along `axis`; the first on ties, NaN counts as largest.
#[track_caller]
pub fn argmax(x: &Tensor, axis: isize) -> Tensor {
    arg("argmax", x, axis, ArgKind::Max)
}

/// Index (i32) of the smallest value along `axis`; the first on ties, NaN counts as smallest.
#[track_caller]
pub fn argmin(x: &Tensor, axis: isize) -> Tensor {
    arg("argmin", x, axis, ArgKind::Min)
}

/// The `k` largest values along the last axis, in descending order, and their indices
/// (i32); equal values keep index order.
#[track_caller]
pub fn top_k(x: &Tensor, k: usize) -> (Tensor, Tensor) {
    let r = x.rank();
    if r == 0 || k > x.shape()[r - 1] {
        let reason = format!("k={k} needs a last dimension of at least k");
        let p = fail("top_k", reason, &[x.aval()], Some(x), x.aval().clone());
        return (p.clone(), p);
    }
    let idx = prim::iota(DType::I32, x.shape(), r - 1);
    let sorted = prim::sort(&[x, &idx], r - 1, 1, true);
    let mut limit = x.shape().to_vec();
    limit[r - 1] = k;
    let start = vec![0; r];
    (
        prim::slice(&sorted[0], &start, &limit),
        prim::slice(&sorted[1], &start, &limit),
    )
}

/// The values sorted along `axis`, ascending and stably, with `-0 == 0` and NaNs last, as
/// `jnp.sort`; the derivative follows the same permutation.
#[track_caller]
pub fn sort(x: &Tensor, axis: isize) -> Tensor {
    match norm_axis(axis, x.rank()) {
        Some(a) => prim::sort(&[x], a, 1, false).swap_remove(0),
        None => bad_axis("sort", x, axis),
    }
}

/// The indices (i32) that sort `x` along `axis` as [`sort`] does (equal values keep index
/// order), as `jnp.argsort`.
#[track_caller]
pub fn argsort(x: &Tensor, axis: isize) -> Tensor {
    match norm_axis(axis, x.rank()) {
        Some(a) => {
            let idx = prim::iota(DType::I32, x.shape(), a);
            prim::sort(&[x, &idx], a, 1, false).swap_remove(1)
        }
        None => bad_axis("argsort", x, axis),
    }
}

/// Which insertion point [`searchsorted`] returns among equal values, as numpy's `side`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The first position (`a[i-1] < v <= a[i]`).
    Left,
    /// The last position (`a[i-1] <= v < a[i]`).
    Right,
}

/// Where each element of `v` would be inserted into the sorted 1-D `a` to keep it sorted
/// (`jnp.searchsorted`), as i32 of `v`'s shape: the count of elements of `a` below `v`
/// (at most `v` for [`Side::Right`]), found by comparing against all of `a`.
#[track_caller]
pub fn searchsorted(a: &Tensor, v: &Tensor, side: Side) -> Tensor {
    if a.rank() != 1 {
        let reason = format!("needs a 1-D sorted array, got shape {:?}", a.shape());
        return fail(
            "searchsorted",
            reason,
            &[a.aval(), v.aval()],
            Some(a),
            v.aval().clone(),
        );
    }
    let r = v.rank();
    let mut shape = v.shape().to_vec();
    shape.push(a.shape()[0]);
    let both = crate::numpy::promote_all(&[a, v]);
    let ab = prim::broadcast_in_dim(&both[0], &shape, &[r]);
    let vb = prim::broadcast_in_dim(&both[1], &shape, &(0..r).collect::<Vec<_>>());
    let dir = match side {
        Side::Left => CompareDir::Lt,
        Side::Right => CompareDir::Le,
    };
    let below = astype(&prim::compare(&ab, &vb, dir), DType::I32);
    prim::reduce(&below, prim::ReduceKind::Sum, &[r])
}
