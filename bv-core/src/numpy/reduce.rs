//! Reductions with numpy's `axis`/`keepdims`: sum, prod, max, min, all, any, mean, var, std.

use crate::dtype::DType;
use crate::numpy::{astype, bad_axis, inexact, norm_axis};
use crate::prim::{self, ReduceKind};
use crate::trace::Tensor;

/// Which axes to reduce: all of them, or a list (negative counts from the end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Axes {
    /// Every axis (numpy's `axis=None`).
    All,
    /// These axes.
    These(Vec<isize>),
}

impl From<isize> for Axes {
    fn from(a: isize) -> Axes {
        Axes::These(vec![a])
    }
}

impl From<&[isize]> for Axes {
    fn from(a: &[isize]) -> Axes {
        Axes::These(a.to_vec())
    }
}

impl<const N: usize> From<[isize; N]> for Axes {
    fn from(a: [isize; N]) -> Axes {
        Axes::These(a.to_vec())
    }
}

impl From<Vec<isize>> for Axes {
    fn from(a: Vec<isize>) -> Axes {
        Axes::These(a)
    }
}

/// Resolves axes against `x`'s rank: sorted, non-negative; `Err` holds a poisoned result.
#[track_caller]
pub(crate) fn resolve(op: &'static str, x: &Tensor, axes: &Axes) -> Result<Vec<usize>, Tensor> {
    match axes {
        Axes::All => Ok((0..x.rank()).collect()),
        Axes::These(v) => {
            let mut out = Vec::with_capacity(v.len());
            for &a in v {
                match norm_axis(a, x.rank()) {
                    Some(n) if !out.contains(&n) => out.push(n),
                    _ => return Err(bad_axis(op, x, a)),
                }
            }
            out.sort_unstable();
            Ok(out)
        }
    }
}

/// Re-inserts reduced axes as size 1 when `keepdims`.
#[track_caller]
fn keep(r: Tensor, in_shape: &[usize], axes: &[usize], keepdims: bool) -> Tensor {
    if !keepdims {
        return r;
    }
    let shape: Vec<usize> = in_shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    prim::reshape(&r, &shape)
}

/// The accumulation type of sum and prod: small integers widen to 32 bits, bool to i32.
fn accumulation(d: DType) -> DType {
    match d {
        DType::Bool | DType::I8 | DType::I16 => DType::I32,
        DType::U8 | DType::U16 => DType::U32,
        other => other,
    }
}

#[track_caller]
fn reduce_with(
    op: &'static str,
    x: &Tensor,
    kind: ReduceKind,
    axes: impl Into<Axes>,
    keepdims: bool,
) -> Tensor {
    match resolve(op, x, &axes.into()) {
        Ok(ax) => keep(prim::reduce(x, kind, &ax), x.shape(), &ax, keepdims),
        Err(p) => p,
    }
}

/// The sum of `x` over `axes` (dropped), float16 and bfloat16 accumulated in float32 and
/// rounded back once, as JAX's reductions do (`upcast_f16_for_computation`).
#[track_caller]
pub(crate) fn wide_sum(x: &Tensor, axes: &[usize]) -> Tensor {
    match x.dtype() {
        DType::F16 | DType::BF16 => {
            let s = prim::reduce(&prim::convert(x, DType::F32), ReduceKind::Sum, axes);
            prim::convert(&s, x.dtype())
        }
        _ => prim::reduce(x, ReduceKind::Sum, axes),
    }
}

/// Sum over `axes` (bool and small integers accumulate in 32 bits, float16 and bfloat16 in
/// float32, as `jnp.sum`).
#[track_caller]
pub fn sum(x: &Tensor, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
    let x = astype(x, accumulation(x.dtype()));
    match resolve("sum", &x, &axes.into()) {
        Ok(ax) => keep(wide_sum(&x, &ax), x.shape(), &ax, keepdims),
        Err(p) => p,
    }
}

/// Product over `axes`.
#[track_caller]
pub fn prod(x: &Tensor, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
    let x = astype(x, accumulation(x.dtype()));
    reduce_with("prod", &x, ReduceKind::Prod, axes, keepdims)
}

/// Maximum over `axes` (NaN propagates).
#[track_caller]
pub fn max(x: &Tensor, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
    reduce_with("max", x, ReduceKind::Max, axes, keepdims)
}

/// Minimum over `axes` (NaN propagates).
#[track_caller]
pub fn min(x: &Tensor, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
    reduce_with("min", x, ReduceKind::Min, axes, keepdims)
}

/// True where every element over `axes` is non-zero.
#[track_caller]
pub fn all(x: &Tensor, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
    reduce_with(
        "all",
        &astype(x, DType::Bool),
        ReduceKind::And,
        axes,
        keepdims,
    )
}

/// True where some element over `axes` is non-zero.
#[track_caller]
pub fn any(x: &Tensor, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
    reduce_with(
        "any",
        &astype(x, DType::Bool),
        ReduceKind::Or,
        axes,
        keepdims,
    )
}

/// Mean over `axes` (integers average as f32; half precision sums in f32, see [`sum`]).
#[track_caller]
pub fn mean(x: &Tensor, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
    let x = inexact(x);
    match resolve("mean", &x, &axes.into()) {
        Ok(ax) => {
            let n: usize = ax.iter().map(|&a| x.shape()[a]).product();
            let s = keep(wide_sum(&x, &ax), x.shape(), &ax, keepdims);
            s / n as f64
        }
        Err(p) => p,
    }
}

/// Variance over `axes` with `ddof` delta degrees of freedom (0 = population variance).
#[track_caller]
pub fn var(x: &Tensor, axes: impl Into<Axes>, ddof: usize, keepdims: bool) -> Tensor {
    let x = inexact(x);
    match resolve("var", &x, &axes.into()) {
        Ok(ax) => {
            let n: usize = ax.iter().map(|&a| x.shape()[a]).product();
            let m = keep(wide_sum(&x, &ax), x.shape(), &ax, true) / n as f64;
            let d = &x - m;
            let ss = keep(wide_sum(&(&d * &d), &ax), x.shape(), &ax, keepdims);
            ss / n.saturating_sub(ddof) as f64
        }
        Err(p) => p,
    }
}

/// Standard deviation over `axes` (`sqrt(var)`).
#[track_caller]
pub fn std(x: &Tensor, axes: impl Into<Axes>, ddof: usize, keepdims: bool) -> Tensor {
    prim::sqrt(&var(x, axes, ddof, keepdims))
}

/// A running scan of `x` along `axis` by `f` (a `prim` cumulative function).
#[track_caller]
fn running(
    op: &'static str,
    x: &Tensor,
    axis: isize,
    f: fn(&Tensor, usize, bool) -> Tensor,
) -> Tensor {
    match norm_axis(axis, x.rank()) {
        Some(a) => f(x, a, false),
        None => bad_axis(op, x, axis),
    }
}

/// Running sum along `axis` (bool and small integers accumulate in 32 bits, as `jnp.cumsum`).
#[track_caller]
pub fn cumsum(x: &Tensor, axis: isize) -> Tensor {
    let x = astype(x, accumulation(x.dtype()));
    running("cumsum", &x, axis, prim::cumsum)
}

/// Running product along `axis` (small integers accumulate in 32 bits, as `jnp.cumprod`);
/// the derivative is that of JAX's prefix scan, exact with zeros in `x`.
#[track_caller]
pub fn cumprod(x: &Tensor, axis: isize) -> Tensor {
    let x = astype(x, accumulation(x.dtype()));
    running("cumprod", &x, axis, prim::cumprod)
}

/// Running maximum along `axis` (`lax.cummax`); ties share the derivative as JAX's scan.
#[track_caller]
pub fn cummax(x: &Tensor, axis: isize) -> Tensor {
    running("cummax", x, axis, prim::cummax)
}

/// Running minimum along `axis` (`lax.cummin`).
#[track_caller]
pub fn cummin(x: &Tensor, axis: isize) -> Tensor {
    running("cummin", x, axis, prim::cummin)
}

/// True when every pair of elements [`isclose`](crate::numpy::isclose) (`jnp.allclose`).
#[track_caller]
pub fn allclose(x: &Tensor, y: &Tensor, rtol: f64, atol: f64) -> Tensor {
    all(&crate::numpy::isclose(x, y, rtol, atol), Axes::All, false)
}

/// The number (i32) of non-zero elements over `axes` (`jnp.count_nonzero`).
#[track_caller]
pub fn count_nonzero(x: &Tensor, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
    sum(&astype(x, DType::Bool), axes, keepdims)
}
