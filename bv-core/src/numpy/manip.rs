//! Shape manipulation as `jnp` spells it: `concatenate`, `stack`, `expand_dims`, `squeeze`,
//! `split`, `array_split`, `tile`, `repeat`, `flip`, `roll`, `swapaxes`, `moveaxis`, `diff`
//! and `pad` with numpy's modes, all written with the structural primitives (slice, concatenate,
//! broadcast, reshape, reverse, pad, gather).

use crate::dtype::DType;
use crate::numpy::reduce::{resolve, Axes};
use crate::numpy::{bad_axis, norm_axis, promote_all, take, transpose};
use crate::prim;
use crate::trace::{fail, Aval, Tensor};

/// Records a shape error under `op` for `xs` and returns a poisoned tensor like `xs[0]`.
#[track_caller]
fn shape_error(op: &'static str, reason: String, xs: &[&Tensor]) -> Tensor {
    let avals: Vec<&Aval> = xs.iter().map(|x| x.aval()).collect();
    fail(op, reason, &avals, Some(xs[0]), xs[0].aval().clone())
}

/// Records that `op` got an empty list of arrays.
#[track_caller]
fn no_arrays(op: &'static str) -> Tensor {
    let reason = "needs at least one array".to_string();
    fail(op, reason, &[], None, Aval::new([], DType::F32))
}

/// Joins tensors along an existing `axis`; element types are promoted, other dimensions must
/// agree.
#[track_caller]
pub fn concatenate(xs: &[&Tensor], axis: isize) -> Tensor {
    let Some(first) = xs.first() else {
        return no_arrays("concatenate");
    };
    let Some(a) = norm_axis(axis, first.rank()) else {
        return bad_axis("concatenate", first, axis);
    };
    let agree = xs.iter().all(|x| {
        x.rank() == first.rank()
            && (0..x.rank()).all(|d| d == a || x.shape()[d] == first.shape()[d])
    });
    if !agree {
        let shapes: Vec<String> = xs.iter().map(|x| format!("{:?}", x.shape())).collect();
        let reason = format!("shapes {} differ outside axis {axis}", shapes.join(" and "));
        return shape_error("concatenate", reason, xs);
    }
    let ys = promote_all(xs);
    let refs: Vec<&Tensor> = ys.iter().collect();
    prim::concatenate(&refs, a)
}

/// Inserts a size-1 dimension at `axis` (which counts positions of the result).
#[track_caller]
pub fn expand_dims(x: &Tensor, axis: isize) -> Tensor {
    let Some(a) = norm_axis(axis, x.rank() + 1) else {
        return bad_axis("expand_dims", x, axis);
    };
    let mut shape = x.shape().to_vec();
    shape.insert(a, 1);
    prim::reshape(x, &shape)
}

/// Joins equally shaped tensors along a new `axis` (promoting element types).
#[track_caller]
pub fn stack(xs: &[&Tensor], axis: isize) -> Tensor {
    let Some(first) = xs.first() else {
        return no_arrays("stack");
    };
    if xs.iter().any(|x| x.shape() != first.shape()) {
        let shapes: Vec<String> = xs.iter().map(|x| format!("{:?}", x.shape())).collect();
        let reason = format!("shapes {} must be equal", shapes.join(" and "));
        return shape_error("stack", reason, xs);
    }
    if norm_axis(axis, first.rank() + 1).is_none() {
        return bad_axis("stack", first, axis);
    }
    let ys: Vec<Tensor> = xs.iter().map(|x| expand_dims(x, axis)).collect();
    let refs: Vec<&Tensor> = ys.iter().collect();
    concatenate(&refs, axis)
}

/// Removes size-1 dimensions: all of them, or the given axes (which must have size 1).
#[track_caller]
pub fn squeeze(x: &Tensor, axes: impl Into<Axes>) -> Tensor {
    let axes = axes.into();
    let dims: Vec<usize> = match &axes {
        Axes::All => (0..x.rank()).filter(|&d| x.shape()[d] == 1).collect(),
        Axes::These(_) => match resolve("squeeze", x, &axes) {
            Ok(d) => d,
            Err(p) => return p,
        },
    };
    if let Some(&d) = dims.iter().find(|&&d| x.shape()[d] != 1) {
        let reason = format!("axis {d} of shape {:?} is not of size 1", x.shape());
        return shape_error("squeeze", reason, &[x]);
    }
    prim::squeeze_dims(x, &dims)
}

/// Pieces of `x` between the cut points `bounds` (sorted, within the axis) along axis `a`.
#[track_caller]
fn pieces(x: &Tensor, a: usize, bounds: &[usize]) -> Vec<Tensor> {
    let n = x.shape()[a];
    let mut cuts = vec![0];
    cuts.extend(bounds.iter().map(|&b| b.min(n)));
    cuts.push(n);
    cuts.windows(2)
        .map(|w| prim::slice_in_dim(x, a, w[0], w[1].max(w[0]), 1))
        .collect()
}

/// `x` cut into `sections` equal pieces along `axis` (`jnp.split` with an integer); the
/// axis must divide evenly.
#[track_caller]
pub fn split(x: &Tensor, sections: usize, axis: isize) -> Vec<Tensor> {
    let Some(a) = norm_axis(axis, x.rank()) else {
        return vec![bad_axis("split", x, axis); sections.max(1)];
    };
    let n = x.shape()[a];
    if sections == 0 || !n.is_multiple_of(sections) {
        let reason = format!(
            "axis {axis} of shape {:?} does not split into {sections} equal sections",
            x.shape()
        );
        return vec![shape_error("split", reason, &[x]); sections.max(1)];
    }
    let bounds: Vec<usize> = (1..sections).map(|i| i * n / sections).collect();
    pieces(x, a, &bounds)
}

/// `x` cut before each of the increasing `indices` along `axis` (`jnp.split` with a list):
/// `indices.len() + 1` pieces, empty where indices pass the end.
#[track_caller]
pub fn split_at(x: &Tensor, indices: &[usize], axis: isize) -> Vec<Tensor> {
    let Some(a) = norm_axis(axis, x.rank()) else {
        return vec![bad_axis("split_at", x, axis); indices.len() + 1];
    };
    pieces(x, a, indices)
}

/// `x` cut into `sections` pieces along `axis`, the first `len % sections` one longer
/// (`jnp.array_split`).
#[track_caller]
pub fn array_split(x: &Tensor, sections: usize, axis: isize) -> Vec<Tensor> {
    let Some(a) = norm_axis(axis, x.rank()) else {
        return vec![bad_axis("array_split", x, axis); sections.max(1)];
    };
    if sections == 0 {
        let reason = "needs at least one section".to_string();
        return vec![shape_error("array_split", reason, &[x])];
    }
    let n = x.shape()[a];
    let (q, r) = (n / sections, n % sections);
    let bounds: Vec<usize> = (1..sections).map(|i| i * q + i.min(r)).collect();
    pieces(x, a, &bounds)
}

/// `x` repeated `reps[i]` times along each dimension (`jnp.tile`); when `reps` is longer
/// than the rank, `x` gains leading size-1 dimensions first.
#[track_caller]
pub fn tile(x: &Tensor, reps: &[usize]) -> Tensor {
    let r = x.rank().max(reps.len());
    let mut shape = vec![1; r - x.rank()];
    shape.extend_from_slice(x.shape());
    let mut reps_full = vec![1; r - reps.len()];
    reps_full.extend_from_slice(reps);
    let x = prim::reshape(x, &shape);
    let wide: Vec<usize> = (0..r).flat_map(|d| [reps_full[d], shape[d]]).collect();
    let dims: Vec<usize> = (0..r).map(|d| 2 * d + 1).collect();
    let out: Vec<usize> = (0..r).map(|d| reps_full[d] * shape[d]).collect();
    prim::reshape(&prim::broadcast_in_dim(&x, &wide, &dims), &out)
}

/// Each element repeated `repeats` times along `axis`, or along the flattened array when
/// `axis` is `None` (`jnp.repeat` with an integer count).
#[track_caller]
pub fn repeat(x: &Tensor, repeats: usize, axis: Option<isize>) -> Tensor {
    let (x, a) = match axis {
        None => (prim::reshape(x, &[x.size()]), 0),
        Some(axis) => match norm_axis(axis, x.rank()) {
            Some(a) => (x.clone(), a),
            None => return bad_axis("repeat", x, axis),
        },
    };
    let mut wide = x.shape().to_vec();
    wide.insert(a + 1, repeats);
    let dims: Vec<usize> = (0..x.rank())
        .map(|d| if d <= a { d } else { d + 1 })
        .collect();
    let mut out = x.shape().to_vec();
    out[a] *= repeats;
    prim::reshape(&prim::broadcast_in_dim(&x, &wide, &dims), &out)
}

/// The elements in reverse order along `axes` (all of them for [`Axes::All`]).
#[track_caller]
pub fn flip(x: &Tensor, axes: impl Into<Axes>) -> Tensor {
    match resolve("flip", x, &axes.into()) {
        Ok(dims) => prim::reverse(x, &dims),
        Err(p) => p,
    }
}

/// Elements shifted by `shift` along `axis`, those past the end wrapping to the start; the
/// flattened array when `axis` is `None` (`jnp.roll`).
#[track_caller]
pub fn roll(x: &Tensor, shift: isize, axis: Option<isize>) -> Tensor {
    let (flat, a) = match axis {
        None => (prim::reshape(x, &[x.size()]), 0),
        Some(axis) => match norm_axis(axis, x.rank()) {
            Some(a) => (x.clone(), a),
            None => return bad_axis("roll", x, axis),
        },
    };
    let n = flat.shape()[a];
    let rolled = if n == 0 {
        flat
    } else {
        let s = shift.rem_euclid(n as isize) as usize;
        let head = prim::slice_in_dim(&flat, a, n - s, n, 1);
        let tail = prim::slice_in_dim(&flat, a, 0, n - s, 1);
        prim::concatenate(&[&head, &tail], a)
    };
    prim::reshape(&rolled, x.shape())
}

/// Exchanges two axes.
#[track_caller]
pub fn swapaxes(x: &Tensor, a: isize, b: isize) -> Tensor {
    let (Some(i), Some(j)) = (norm_axis(a, x.rank()), norm_axis(b, x.rank())) else {
        let bad = if norm_axis(a, x.rank()).is_none() {
            a
        } else {
            b
        };
        return bad_axis("swapaxes", x, bad);
    };
    let mut perm: Vec<isize> = (0..x.rank() as isize).collect();
    perm.swap(i, j);
    transpose(x, &perm)
}

/// Moves axis `from` to position `to`, keeping the order of the others.
#[track_caller]
pub fn moveaxis(x: &Tensor, from: isize, to: isize) -> Tensor {
    let (Some(i), Some(j)) = (norm_axis(from, x.rank()), norm_axis(to, x.rank())) else {
        let bad = if norm_axis(from, x.rank()).is_none() {
            from
        } else {
            to
        };
        return bad_axis("moveaxis", x, bad);
    };
    let mut perm: Vec<isize> = (0..x.rank() as isize)
        .filter(|&d| d != i as isize)
        .collect();
    perm.insert(j, i as isize);
    transpose(x, &perm)
}

/// How [`pad`] fills the new positions, as numpy's `mode`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// A constant (numpy's `constant_values`), in `x`'s type.
    Constant(f64),
    /// The edge value repeated.
    Edge,
    /// Mirrored about the edge element, which is not repeated (`[1 2 3]` → `3 2 | 1 2 3 | 2 1`).
    Reflect,
    /// Mirrored including the edge element (`[1 2 3]` → `2 1 | 1 2 3 | 3 2`).
    Symmetric,
    /// Periodic: the other end's values.
    Wrap,
}

impl PadMode {
    /// The source index along an axis of length `n` for padded position `p` (0 = first
    /// element of the original).
    fn source(self, p: i64, n: i64) -> i64 {
        match self {
            PadMode::Constant(_) | PadMode::Edge => p.clamp(0, n - 1),
            PadMode::Wrap => p.rem_euclid(n),
            PadMode::Reflect if n == 1 => 0,
            PadMode::Reflect => {
                let m = p.rem_euclid(2 * (n - 1));
                if m < n {
                    m
                } else {
                    2 * (n - 1) - m
                }
            }
            PadMode::Symmetric => {
                let m = p.rem_euclid(2 * n);
                if m < n {
                    m
                } else {
                    2 * n - 1 - m
                }
            }
        }
    }
}

/// `x` with `widths[d] = (before, after)` new positions on each side of dimension `d`,
/// filled as `mode` says (`jnp.pad`). One pair for a rank-1 input or any rank broadcasts to
/// every dimension.
#[track_caller]
pub fn pad(x: &Tensor, widths: &[(usize, usize)], mode: PadMode) -> Tensor {
    let widths: Vec<(usize, usize)> = match widths.len() {
        1 => vec![widths[0]; x.rank()],
        r if r == x.rank() => widths.to_vec(),
        r => {
            let reason = format!("{r} (before, after) pairs for shape {:?}", x.shape());
            return shape_error("pad", reason, &[x]);
        }
    };
    if let PadMode::Constant(v) = mode {
        let value = prim::full(&[], v, x.dtype());
        let config: Vec<(i64, i64, i64)> = widths
            .iter()
            .map(|&(b, a)| (b as i64, a as i64, 0))
            .collect();
        return prim::pad(x, &value, &config);
    }
    let mut out = x.clone();
    for (d, &(before, after)) in widths.iter().enumerate() {
        if before == 0 && after == 0 {
            continue;
        }
        let n = x.shape()[d] as i64;
        if n == 0 {
            let reason = format!(
                "cannot pad the empty axis {d} of {:?} with {mode:?}",
                x.shape()
            );
            return shape_error("pad", reason, &[x]);
        }
        let idx: Vec<i32> = (-(before as i64)..n + after as i64)
            .map(|p| mode.source(p, n) as i32)
            .collect();
        let idx = prim::constant(&idx, &[idx.len()]);
        out = take(&out, &idx, d as isize);
    }
    out
}

/// Differences of neighbours along `axis`, `x[1:] - x[:-1]` (`jnp.diff` with `n = 1`).
#[track_caller]
pub fn diff(x: &Tensor, axis: isize) -> Tensor {
    let Some(a) = norm_axis(axis, x.rank()) else {
        return bad_axis("diff", x, axis);
    };
    let n = x.shape()[a];
    if n == 0 {
        return x.clone();
    }
    let hi = prim::slice_in_dim(x, a, 1, n, 1);
    let lo = prim::slice_in_dim(x, a, 0, n - 1, 1);
    if x.dtype() == DType::Bool {
        prim::xor(&hi, &lo)
    } else {
        prim::sub(&hi, &lo)
    }
}
