//! Cumulative sum, product, max and min along an axis, written as a `reduce_window` whose
//! window covers everything before each element (XLA turns this into an efficient scan). The
//! derivatives of product, max and min are JAX's: those of its parallel prefix scan
//! (`lax.associative_scan`), whose pairwise max/min split ties 0.5/0.5 at every level and
//! whose pairwise products need no division (zeros are fine).

use crate::autodiff::{custom_jvp, jvp};
use crate::prim::{self as p, reduce_window, ReduceKind, Window};
use crate::trace::{fail, Tensor};

#[track_caller]
fn cumulative(x: &Tensor, kind: ReduceKind, axis: usize, reverse: bool) -> Tensor {
    let r = x.rank();
    if axis >= r {
        let reason = format!("axis {axis} is out of range for rank {r}");
        return fail("cumulative", reason, &[x.aval()], Some(x), x.aval().clone());
    }
    let n = x.shape()[axis];
    let mut dims = vec![1; r];
    let mut padding = vec![(0, 0); r];
    dims[axis] = n.max(1);
    let before = n.saturating_sub(1) as i64;
    padding[axis] = if reverse { (0, before) } else { (before, 0) };
    reduce_window(
        x,
        kind,
        &Window::new(&dims, &vec![1; r]).with_padding(&padding),
    )
}

/// Running sum along `axis` (from the end when `reverse`).
#[track_caller]
pub fn cumsum(x: &Tensor, axis: usize, reverse: bool) -> Tensor {
    cumulative(x, ReduceKind::Sum, axis, reverse)
}

/// Running product along `axis` (from the end when `reverse`).
#[track_caller]
pub fn cumprod(x: &Tensor, axis: usize, reverse: bool) -> Tensor {
    scanned(x, ReduceKind::Prod, axis, reverse)
}

/// Running maximum along `axis` (from the end when `reverse`).
#[track_caller]
pub fn cummax(x: &Tensor, axis: usize, reverse: bool) -> Tensor {
    scanned(x, ReduceKind::Max, axis, reverse)
}

/// Running minimum along `axis` (from the end when `reverse`).
#[track_caller]
pub fn cummin(x: &Tensor, axis: usize, reverse: bool) -> Tensor {
    scanned(x, ReduceKind::Min, axis, reverse)
}

/// A running product, max or min: the window's value, the prefix scan's derivative.
#[track_caller]
fn scanned(x: &Tensor, kind: ReduceKind, axis: usize, reverse: bool) -> Tensor {
    if axis >= x.rank() {
        return cumulative(x, kind, axis, reverse);
    }
    let f = custom_jvp(
        move |x: Tensor| cumulative(&x, kind, axis, reverse),
        move |x: &Tensor, _: &Tensor, t: &Tensor| {
            let scan = |x: Tensor| {
                let x = if reverse { p::reverse(&x, &[axis]) } else { x };
                let y = associative_scan(&x, kind, axis);
                if reverse {
                    p::reverse(&y, &[axis])
                } else {
                    y
                }
            };
            jvp(scan, x, t).1
        },
    );
    f(x.clone())
}

/// `lax.associative_scan` of product, max or min along `axis`: pairs combined, the half-length scan
/// recursed, the even positions filled in from it, the two interleaved.
fn associative_scan(x: &Tensor, kind: ReduceKind, axis: usize) -> Tensor {
    let n = x.shape()[axis];
    if n < 2 {
        return x.clone();
    }
    let combine = |a: &Tensor, b: &Tensor| match kind {
        ReduceKind::Min => p::min(a, b),
        ReduceKind::Prod => p::mul(a, b),
        _ => p::max(a, b),
    };
    let at = |t: &Tensor, start: usize, limit: usize, stride: usize| {
        p::slice_in_dim(t, axis, start, limit, stride)
    };
    let pairs = combine(&at(x, 0, n - 1, 2), &at(x, 1, n, 2));
    let odd = associative_scan(&pairs, kind, axis);
    let odd_n = odd.shape()[axis];
    let even = if n.is_multiple_of(2) {
        combine(&at(&odd, 0, odd_n - 1, 1), &at(x, 2, n, 2))
    } else {
        combine(&odd, &at(x, 2, n, 2))
    };
    let even = p::concatenate(&[&at(x, 0, 1, 1), &even], axis);
    interleave(&even, &odd, axis)
}

/// `a0 b0 a1 b1 ...` along `axis` (`a` as long as `b` or one longer), by padding each with
/// zeros between its elements and adding, as JAX's `_interleave`.
fn interleave(a: &Tensor, b: &Tensor, axis: usize) -> Tensor {
    let same = a.shape()[axis] == b.shape()[axis];
    let mut pa = vec![(0, 0, 0); a.rank()];
    let mut pb = pa.clone();
    pa[axis] = (0, i64::from(same), 1);
    pb[axis] = (1, i64::from(!same), 1);
    let zero = p::full(&[], 0, a.dtype());
    p::add(&p::pad(a, &zero, &pa), &p::pad(b, &zero, &pb))
}
