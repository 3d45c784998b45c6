//! Activations, softmax family and pooling, as `jax.nn` and `flax.linen` define them.

use crate::autodiff::{custom_jvp, stop_gradient};
use crate::numpy::reduce::{resolve, wide_sum, Axes};
use crate::numpy::{
    bad_axis, exp, expm1, greater, greater_equal, inexact, less, log, logaddexp, logical_and,
    maximum, mean, minimum, norm_axis, split, where_,
};
use crate::prim::{self, ReduceKind, Window};
use crate::trace::{fail, Tensor};

/// `max(x, 0)`, whose derivative is 1 where `x > 0` and 0 elsewhere, at 0 too (`jax.nn.relu`
/// is a `custom_jvp` for this; `maximum`'s rule would split the tie at 0 into 0.5).
#[track_caller]
pub fn relu(x: &Tensor) -> Tensor {
    let f = custom_jvp(
        |x: Tensor| maximum(&x, 0),
        |x: &Tensor, _: &Tensor, t: &Tensor| where_(&greater(x, 0), t, 0.0),
    );
    f(x.clone())
}

/// `log(sigmoid(x)) = -logaddexp(-x, 0)`, stable for large `|x|` (`jax.nn.log_sigmoid`). Its
/// derivative `sigmoid(-x)` comes from `logaddexp`'s rule, so it is 0.5 at 0 exactly.
#[track_caller]
pub fn log_sigmoid(x: &Tensor) -> Tensor {
    let x = inexact(x);
    -logaddexp(-&x, 0.0)
}

/// `1 / (1 + e^-x)`.
#[track_caller]
pub fn sigmoid(x: &Tensor) -> Tensor {
    prim::logistic(&inexact(x))
}

/// `x * sigmoid(x)` (swish).
#[track_caller]
pub fn silu(x: &Tensor) -> Tensor {
    let x = inexact(x);
    &x * prim::logistic(&x)
}

/// GELU: with `approximate`, `0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))` (jax.nn.gelu's
/// default); otherwise the exact `0.5x(1 + erf(x / sqrt 2))`.
#[track_caller]
pub fn gelu(x: &Tensor, approximate: bool) -> Tensor {
    let x = inexact(x);
    if approximate {
        let inner = (&x + &x * &x * &x * 0.044715) * (2.0 / std::f64::consts::PI).sqrt();
        &x * 0.5 * (prim::tanh(&inner) + 1.0)
    } else {
        &x * 0.5 * (prim::erf(&(&x * std::f64::consts::FRAC_1_SQRT_2)) + 1.0)
    }
}

/// `log(1 + e^x) = logaddexp(x, 0)` (`jax.nn.softplus`).
#[track_caller]
pub fn softplus(x: &Tensor) -> Tensor {
    logaddexp(inexact(x), 0.0)
}

/// `x` where `x >= 0`, `slope * x` elsewhere (`jax.nn.leaky_relu`, whose default slope is
/// 0.01).
#[track_caller]
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    let x = inexact(x);
    where_(&greater_equal(&x, 0.0), &x, &x * slope)
}

/// `x` where `x > 0`, `alpha (e^x - 1)` elsewhere (`jax.nn.elu`); the exponential only sees
/// the non-positive side, so large inputs give no inf (nor NaN derivatives).
#[track_caller]
pub fn elu(x: &Tensor, alpha: f64) -> Tensor {
    let x = inexact(x);
    let pos = greater(&x, 0.0);
    let safe = where_(&pos, 0.0, &x);
    where_(&pos, &x, expm1(&safe) * alpha)
}

/// `min(max(x, 0), 6)`, whose derivative is 1 strictly inside `(0, 6)` and 0 elsewhere, at
/// the kinks too (`jax.nn.relu6`, a `custom_jvp`).
#[track_caller]
pub fn relu6(x: &Tensor) -> Tensor {
    let f = custom_jvp(
        |x: Tensor| minimum(maximum(&x, 0), 6),
        |x: &Tensor, _: &Tensor, t: &Tensor| {
            where_(&logical_and(greater(x, 0), less(x, 6)), t, 0.0)
        },
    );
    f(x.clone())
}

/// `x` clipped to `[-1, 1]` (`jax.nn.hard_tanh`).
#[track_caller]
pub fn hard_tanh(x: &Tensor) -> Tensor {
    let x = inexact(x);
    where_(&greater(&x, 1.0), 1.0, where_(&less(&x, -1.0), -1.0, &x))
}

/// `x` where `x > 0`, `alpha (e^(x / alpha) - 1)` elsewhere (`jax.nn.celu`).
#[track_caller]
pub fn celu(x: &Tensor, alpha: f64) -> Tensor {
    let x = inexact(x);
    let pos = greater(&x, 0.0);
    let safe = where_(&pos, 0.0, &x);
    where_(&pos, &x, expm1(&(safe / alpha)) * alpha)
}

/// `scale * elu(x, alpha)` with the self-normalizing constants (`jax.nn.selu`).
#[track_caller]
pub fn selu(x: &Tensor) -> Tensor {
    const ALPHA: f64 = 1.6732632423543772848170429916717;
    const SCALE: f64 = 1.0507009873554804934193349852946;
    elu(x, ALPHA) * SCALE
}

/// The gated linear unit: `a * sigmoid(b)` for the two halves `a, b` of `x` along `axis`
/// (`jax.nn.glu`), which must have even length.
#[track_caller]
pub fn glu(x: &Tensor, axis: isize) -> Tensor {
    let x = inexact(x);
    let halves = split(&x, 2, axis);
    &halves[0] * prim::logistic(&halves[1])
}

/// `(x - mean) / sqrt(var + eps)` over `axes`, with `var = mean(x^2) - mean(x)^2` as
/// `jax.nn.standardize` computes it.
#[track_caller]
pub fn standardize(x: &Tensor, axes: impl Into<Axes>, eps: f64) -> Tensor {
    let x = inexact(x);
    let axes = axes.into();
    let m = mean(&x, axes.clone(), true);
    let var = mean(&(&x * &x), axes, true) - &m * &m;
    (&x - &m) * prim::rsqrt(&(var + eps))
}

/// The max over `axes` kept as size-1 dims, with non-finite maxima replaced by 0 (so
/// all -inf rows give -inf results rather than NaN), as `jax.nn` does. It only shifts the
/// exponents, so it carries no derivative (`lax.stop_gradient` in JAX): ties among maxima
/// add nothing.
#[track_caller]
fn stable_max(x: &Tensor, axes: &[usize]) -> Tensor {
    let m = prim::reduce(x, ReduceKind::Max, axes);
    let shape: Vec<usize> = x
        .shape()
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let m = prim::reshape(&m, &shape);
    stop_gradient(&where_(&prim::is_finite(&m), &m, 0.0))
}

/// `log(sum(exp(x)))` over `axes`, computed stably.
#[track_caller]
pub fn logsumexp(x: &Tensor, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
    let x = inexact(x);
    match resolve("logsumexp", &x, &axes.into()) {
        Ok(ax) => {
            let m = stable_max(&x, &ax);
            let s = wide_sum(&exp(&(&x - &m)), &ax);
            let kept: Vec<usize> = x
                .shape()
                .iter()
                .enumerate()
                .map(|(i, &d)| if ax.contains(&i) { 1 } else { d })
                .collect();
            let r = log(&prim::reshape(&s, &kept)) + &m;
            if keepdims {
                r
            } else {
                prim::squeeze_dims(&r, &ax)
            }
        }
        Err(p) => p,
    }
}

/// `exp(x) / sum(exp(x))` along `axis`.
#[track_caller]
pub fn softmax(x: &Tensor, axis: isize) -> Tensor {
    let x = inexact(x);
    let Some(a) = norm_axis(axis, x.rank()) else {
        return bad_axis("softmax", &x, axis);
    };
    let e = exp(&(&x - stable_max(&x, &[a])));
    let mut kept = x.shape().to_vec();
    kept[a] = 1;
    let s = prim::reshape(&wide_sum(&e, &[a]), &kept);
    e / s
}

/// `x - logsumexp(x)` along `axis`.
#[track_caller]
pub fn log_softmax(x: &Tensor, axis: isize) -> Tensor {
    let x = inexact(x);
    let Some(a) = norm_axis(axis, x.rank()) else {
        return bad_axis("log_softmax", &x, axis);
    };
    let shifted = &x - stable_max(&x, &[a]);
    let mut kept = x.shape().to_vec();
    kept[a] = 1;
    let s = prim::reshape(&wide_sum(&exp(&shifted), &[a]), &kept);
    shifted - log(&s)
}

/// Pooling padding, as in Flax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: windows stay inside.
    Valid,
    /// Pad so the output has `ceil(in / stride)` positions.
    Same,
    /// `(low, high)` per spatial dimension.
    Explicit(Vec<(i64, i64)>),
}

/// The window over all dimensions of `x` (`[N, spatial..., C]`), or why not.
fn window(
    x: &Tensor,
    dims: &[usize],
    strides: &[usize],
    padding: &Padding,
) -> Result<Window, String> {
    let n = dims.len();
    if x.rank() != n + 2 {
        return Err(format!(
            "a {n}-d window needs an input of rank {} ([batch, spatial..., features])",
            n + 2
        ));
    }
    let strides = if strides.is_empty() {
        vec![1; n]
    } else {
        strides.to_vec()
    };
    if strides.len() != n {
        return Err(format!("strides need {n} entries"));
    }
    let pads: Vec<(i64, i64)> = match padding {
        Padding::Valid => vec![(0, 0); n],
        Padding::Explicit(p) if p.len() == n => p.clone(),
        Padding::Explicit(_) => return Err(format!("padding needs {n} entries")),
        Padding::Same => (0..n)
            .map(|i| {
                let size = x.shape()[i + 1];
                let out = size.div_ceil(strides[i].max(1));
                let total =
                    ((out.saturating_sub(1)) * strides[i] + dims[i]).saturating_sub(size) as i64;
                (total / 2, total - total / 2)
            })
            .collect(),
    };
    let full = |inner: &[usize]| {
        let mut v = vec![1];
        v.extend_from_slice(inner);
        v.push(1);
        v
    };
    let mut p = vec![(0, 0)];
    p.extend(pads);
    p.push((0, 0));
    Ok(Window::new(&full(dims), &full(&strides)).with_padding(&p))
}

/// Max pooling over the spatial dimensions of `[N, spatial..., C]` (padding counts as -inf).
#[track_caller]
pub fn max_pool(x: &Tensor, dims: &[usize], strides: &[usize], padding: Padding) -> Tensor {
    match window(x, dims, strides, &padding) {
        Ok(w) => prim::reduce_window(x, ReduceKind::Max, &w),
        Err(reason) => fail("max_pool", reason, &[x.aval()], Some(x), x.aval().clone()),
    }
}

/// Average pooling over the spatial dimensions of `[N, spatial..., C]`; padded positions
/// count as zeros in the average (Flax's `count_include_pad=True`).
#[track_caller]
pub fn avg_pool(x: &Tensor, dims: &[usize], strides: &[usize], padding: Padding) -> Tensor {
    let x = inexact(x);
    match window(&x, dims, strides, &padding) {
        Ok(w) => {
            prim::reduce_window(&x, ReduceKind::Sum, &w) / dims.iter().product::<usize>() as f64
        }
        Err(reason) => fail("avg_pool", reason, &[x.aval()], Some(&x), x.aval().clone()),
    }
}
