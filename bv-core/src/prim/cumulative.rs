//! Cumulative sum, max and min along an axis, written as a `reduce_window` whose window
//! covers everything before each element (XLA turns this into an efficient scan).

use crate::prim::{reduce_window, ReduceKind, Window};
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

/// Running maximum along `axis` (from the end when `reverse`).
#[track_caller]
pub fn cummax(x: &Tensor, axis: usize, reverse: bool) -> Tensor {
    cumulative(x, ReduceKind::Max, axis, reverse)
}

/// Running minimum along `axis` (from the end when `reverse`).
#[track_caller]
pub fn cummin(x: &Tensor, axis: usize, reverse: bool) -> Tensor {
    cumulative(x, ReduceKind::Min, axis, reverse)
}
