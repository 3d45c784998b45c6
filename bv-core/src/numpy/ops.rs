//! Elementwise numpy functions with promotion and broadcasting, and the operator overloads
//! on [`Tensor`] (`+ - * / %`, bitwise `& | ^ ! << >>`, unary `-`), which accept tensors
//! and Rust scalars on either side.

use std::ops;

use crate::autodiff::custom_jvp;
use crate::dtype::DType;
use crate::numpy::{astype, inexact, prepare, Operand};
use crate::prim::{self, CompareDir, Scalar};
use crate::trace::zeros_like;
use crate::trace::Tensor;

macro_rules! binary_fns {
    ($($(#[$doc:meta])* $name:ident => $prim:path;)*) => {$(
        $(#[$doc])*
        #[track_caller]
        pub fn $name(x: impl Into<Operand>, y: impl Into<Operand>) -> Tensor {
            match prepare(stringify!($name), &[x.into(), y.into()]) {
                Ok(v) => $prim(&v[0], &v[1]),
                Err(poisoned) => poisoned,
            }
        }
    )*};
}

binary_fns! {
    /// `x + y` with promotion and broadcasting.
    add => prim::add;
    /// `x - y`.
    subtract => prim::sub;
    /// `x * y`.
    multiply => prim::mul;
    /// Elementwise maximum (NaN propagates).
    maximum => prim::max;
    /// Elementwise minimum (NaN propagates).
    minimum => prim::min;
    /// Bitwise/logical and.
    bitwise_and => prim::and;
    /// Bitwise/logical or.
    bitwise_or => prim::or;
    /// Bitwise/logical xor.
    bitwise_xor => prim::xor;
    /// `x << y`.
    left_shift => prim::shift_left;
}

/// `x >> y`: arithmetic for signed integers, logical for unsigned (as numpy).
#[track_caller]
pub fn right_shift(x: impl Into<Operand>, y: impl Into<Operand>) -> Tensor {
    match prepare("right_shift", &[x.into(), y.into()]) {
        Ok(v) if v[0].dtype().is_unsigned_int() => prim::shift_right_logical(&v[0], &v[1]),
        Ok(v) => prim::shift_right_arithmetic(&v[0], &v[1]),
        Err(p) => p,
    }
}

/// `x / y` as numpy's true division: integers divide as floats.
#[track_caller]
pub fn divide(x: impl Into<Operand>, y: impl Into<Operand>) -> Tensor {
    match prepare("divide", &[x.into(), y.into()]) {
        Ok(v) => prim::div(&inexact(&v[0]), &inexact(&v[1])),
        Err(p) => p,
    }
}

/// `floor(x / y)`; for integers, division rounding toward -inf.
#[track_caller]
pub fn floor_divide(x: impl Into<Operand>, y: impl Into<Operand>) -> Tensor {
    match prepare("floor_divide", &[x.into(), y.into()]) {
        Ok(v) if v[0].dtype().is_float() => prim::floor(&prim::div(&v[0], &v[1])),
        Ok(v) if v[0].dtype().is_signed_int() => {
            // Truncated quotient, minus one where the remainder is non-zero and the signs differ.
            let q = prim::div(&v[0], &v[1]);
            let r = prim::rem(&v[0], &v[1]);
            let zero = prim::full(v[0].shape(), 0, v[0].dtype());
            let fix = prim::and(
                &prim::compare(&r, &zero, CompareDir::Ne),
                &prim::compare(
                    &prim::compare(&r, &zero, CompareDir::Lt),
                    &prim::compare(&v[1], &zero, CompareDir::Lt),
                    CompareDir::Ne,
                ),
            );
            let one = prim::full(v[0].shape(), 1, v[0].dtype());
            prim::select(&fix, &prim::sub(&q, &one), &q)
        }
        Ok(v) => prim::div(&v[0], &v[1]),
        Err(p) => p,
    }
}

/// `x mod y` with the sign of `y`, as numpy's `remainder` and Python's `%`.
#[track_caller]
pub fn remainder(x: impl Into<Operand>, y: impl Into<Operand>) -> Tensor {
    match prepare("remainder", &[x.into(), y.into()]) {
        Ok(v) if v[0].dtype().is_unsigned_int() => prim::rem(&v[0], &v[1]),
        Ok(v) => {
            let r = prim::rem(&v[0], &v[1]);
            let zero = prim::full(v[0].shape(), 0, v[0].dtype());
            let fix = prim::and(
                &prim::compare(&r, &zero, CompareDir::Ne),
                &prim::compare(
                    &prim::compare(&r, &zero, CompareDir::Lt),
                    &prim::compare(&v[1], &zero, CompareDir::Lt),
                    CompareDir::Ne,
                ),
            );
            prim::select(&fix, &prim::add(&r, &v[1]), &r)
        }
        Err(p) => p,
    }
}

/// `x ^ y` after promotion (integer powers stay integers). A float tensor to a Rust integer
/// power is [`integer_pow`], as `jnp.power` does for a concrete integer exponent.
#[track_caller]
pub fn power(x: impl Into<Operand>, y: impl Into<Operand>) -> Tensor {
    let (x, y) = (x.into(), y.into());
    let n = match y {
        Operand::Scalar(Scalar::Int(n)) => Some(n),
        Operand::Scalar(Scalar::UInt(n)) => i64::try_from(n).ok(),
        _ => None,
    };
    match (&x, n) {
        (Operand::Tensor(b), Some(n)) if b.dtype().is_float() => integer_pow(b, n),
        _ => match prepare("power", &[x, y]) {
            Ok(v) => prim::pow(&v[0], &v[1]),
            Err(p) => p,
        },
    }
}

/// `x ^ n` for a fixed integer `n` by repeated squaring (`lax.integer_pow`): exact products
/// for small `n`, `1 / x^-n` for negative `n`. Its derivative `n x^(n-1)` is 0 for `n = 0`,
/// also at `x = 0` (where `pow`'s rule gives `0 · inf`).
#[track_caller]
pub fn integer_pow(x: &Tensor, n: i64) -> Tensor {
    let f = custom_jvp(
        move |x: Tensor| power_by_squaring(&x, n),
        move |x: &Tensor, _: &Tensor, t: &Tensor| match n {
            0 => zeros_like(t),
            1 => t.clone(),
            2 => prim::mul(t, &prim::mul(&prim::full(x.shape(), 2, x.dtype()), x)),
            _ => {
                let c = prim::full(x.shape(), Scalar::Int(n), x.dtype());
                prim::mul(t, &prim::mul(&c, &integer_pow(x, n - 1)))
            }
        },
    );
    f(x.clone())
}

/// `x ^ n` as `lax.integer_pow` lowers it: square-and-multiply, then a reciprocal.
#[track_caller]
fn power_by_squaring(x: &Tensor, n: i64) -> Tensor {
    if n == 0 {
        return prim::full(x.shape(), 1, x.dtype());
    }
    let (mut base, mut e) = (x.clone(), n.unsigned_abs());
    let mut acc: Option<Tensor> = None;
    while e > 0 {
        if e & 1 == 1 {
            acc = Some(match acc {
                None => base.clone(),
                Some(a) => prim::mul(&a, &base),
            });
        }
        e >>= 1;
        if e > 0 {
            base = prim::mul(&base, &base);
        }
    }
    let acc = acc.unwrap_or(base);
    if n < 0 {
        prim::div(&prim::full(x.shape(), 1, x.dtype()), &acc)
    } else {
        acc
    }
}

/// `log(exp(x) + exp(y))` without overflow (`jnp.logaddexp`, a `custom_jvp` in JAX): the
/// tangent is `tx exp(x - out) + ty exp(y - out)` with `+inf` read as 0 there (so `-inf`
/// everywhere gives NaN, as JAX).
#[track_caller]
pub fn logaddexp(x: impl Into<Operand>, y: impl Into<Operand>) -> Tensor {
    let f = custom_jvp(
        |(a, b): (Tensor, Tensor)| {
            let delta = prim::sub(&a, &b);
            let nan = prim::compare(&delta, &delta, CompareDir::Ne);
            let tail = prim::log1p(&prim::exp(&prim::neg(&prim::abs(&delta))));
            let out = prim::add(&prim::max(&a, &b), &tail);
            prim::select(&nan, &prim::add(&a, &b), &out)
        },
        |(a, b): &(Tensor, Tensor), out: &Tensor, (ta, tb): &(Tensor, Tensor)| {
            let finite = |v: &Tensor| {
                let inf = prim::full(v.shape(), f64::INFINITY, v.dtype());
                prim::select(&prim::compare(v, &inf, CompareDir::Eq), &zeros_like(v), v)
            };
            let out = finite(out);
            let weight = |v: &Tensor| prim::exp(&prim::sub(&finite(v), &out));
            prim::add(&prim::mul(ta, &weight(a)), &prim::mul(tb, &weight(b)))
        },
    );
    match prepare("logaddexp", &[x.into(), y.into()]) {
        Ok(v) => f((inexact(&v[0]), inexact(&v[1]))),
        Err(p) => p,
    }
}

/// `atan2(x, y)` (integer operands are promoted to float).
#[track_caller]
pub fn arctan2(x: impl Into<Operand>, y: impl Into<Operand>) -> Tensor {
    match prepare("arctan2", &[x.into(), y.into()]) {
        Ok(v) => prim::atan2(&inexact(&v[0]), &inexact(&v[1])),
        Err(p) => p,
    }
}

macro_rules! compare_fns {
    ($($(#[$doc:meta])* $name:ident => $dir:ident;)*) => {$(
        $(#[$doc])*
        #[track_caller]
        pub fn $name(x: impl Into<Operand>, y: impl Into<Operand>) -> Tensor {
            match prepare(stringify!($name), &[x.into(), y.into()]) {
                Ok(v) => prim::compare(&v[0], &v[1], CompareDir::$dir),
                Err(p) => p,
            }
        }
    )*};
}

compare_fns! {
    /// `x == y` elementwise (bool).
    equal => Eq;
    /// `x != y` elementwise.
    not_equal => Ne;
    /// `x < y` elementwise.
    less => Lt;
    /// `x <= y` elementwise.
    less_equal => Le;
    /// `x > y` elementwise.
    greater => Gt;
    /// `x >= y` elementwise.
    greater_equal => Ge;
}

macro_rules! float_fns {
    ($($(#[$doc:meta])* $name:ident => $prim:path;)*) => {$(
        $(#[$doc])*
        #[track_caller]
        pub fn $name(x: &Tensor) -> Tensor { $prim(&inexact(x)) }
    )*};
}

float_fns! {
    /// `e^x` (integers are promoted to float).
    exp => prim::exp;
    /// `e^x - 1`.
    expm1 => prim::expm1;
    /// Natural log.
    log => prim::log;
    /// `ln(1 + x)`.
    log1p => prim::log1p;
    /// Square root.
    sqrt => prim::sqrt;
    /// `1 / sqrt(x)`.
    rsqrt => prim::rsqrt;
    /// Hyperbolic tangent.
    tanh => prim::tanh;
    /// Sine.
    sin => prim::sin;
    /// Cosine.
    cos => prim::cos;
    /// The error function.
    erf => prim::erf;
    /// Round half to even.
    round => prim::round;
    /// Floor.
    floor => prim::floor;
    /// Ceiling.
    ceil => prim::ceil;
}

/// True where `x` is finite (always true for integers).
#[track_caller]
pub fn isfinite(x: &Tensor) -> Tensor {
    if x.dtype().is_float() {
        prim::is_finite(x)
    } else {
        prim::full(x.shape(), true, DType::Bool)
    }
}

/// `|x|` (unsigned and bool unchanged).
#[track_caller]
pub fn abs(x: &Tensor) -> Tensor {
    if x.dtype().is_unsigned_int() || x.dtype() == DType::Bool {
        x.clone()
    } else {
        prim::abs(x)
    }
}

/// -1, 0 or 1 by sign.
#[track_caller]
pub fn sign(x: &Tensor) -> Tensor {
    prim::sign(x)
}

/// `-x`.
#[track_caller]
pub fn negative(x: &Tensor) -> Tensor {
    prim::neg(x)
}

/// `x * x`.
#[track_caller]
pub fn square(x: &Tensor) -> Tensor {
    prim::square(x)
}

/// Logical not for bool, bitwise not for integers.
#[track_caller]
pub fn invert(x: &Tensor) -> Tensor {
    prim::not(x)
}

/// `min(max(x, lo), hi)` with promotion and broadcasting.
#[track_caller]
pub fn clip(x: impl Into<Operand>, lo: impl Into<Operand>, hi: impl Into<Operand>) -> Tensor {
    match prepare("clip", &[x.into(), lo.into(), hi.into()]) {
        Ok(v) => prim::min(&prim::max(&v[0], &v[1]), &v[2]),
        Err(p) => p,
    }
}

macro_rules! binop {
    ($tr:ident, $method:ident, $f:path) => {
        impl<R: Into<Operand>> ops::$tr<R> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: R) -> Tensor {
                $f(self, rhs)
            }
        }
        impl<R: Into<Operand>> ops::$tr<R> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: R) -> Tensor {
                $f(self, rhs)
            }
        }
        binop!(@scalars $tr, $method, $f, bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);
    };
    (@scalars $tr:ident, $method:ident, $f:path, $($s:ty),*) => {$(
        impl ops::$tr<Tensor> for $s {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                $f(self, rhs)
            }
        }
        impl ops::$tr<&Tensor> for $s {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                $f(self, rhs)
            }
        }
    )*};
}

binop!(Add, add, add);
binop!(Sub, sub, subtract);
binop!(Mul, mul, multiply);
binop!(Div, div, divide);
binop!(Rem, rem, remainder);
binop!(BitAnd, bitand, bitwise_and);
binop!(BitOr, bitor, bitwise_or);
binop!(BitXor, bitxor, bitwise_xor);
binop!(Shl, shl, left_shift);
binop!(Shr, shr, right_shift);

impl ops::Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        prim::neg(&self)
    }
}

impl ops::Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        prim::neg(self)
    }
}

impl ops::Not for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn not(self) -> Tensor {
        prim::not(&self)
    }
}

impl ops::Not for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn not(self) -> Tensor {
        prim::not(self)
    }
}

macro_rules! logical_fns {
    ($($(#[$doc:meta])* $name:ident => $prim:path;)*) => {$(
        $(#[$doc])*
        #[track_caller]
        pub fn $name(x: impl Into<Operand>, y: impl Into<Operand>) -> Tensor {
            let truth = |o: Operand| match o {
                Operand::Tensor(t) => Operand::Tensor(astype(&t, DType::Bool)),
                Operand::Scalar(s) => Operand::Scalar(Scalar::Bool(s.to_f64() != 0.0)),
            };
            match prepare(stringify!($name), &[truth(x.into()), truth(y.into())]) {
                Ok(v) => $prim(&v[0], &v[1]),
                Err(p) => p,
            }
        }
    )*};
}

logical_fns! {
    /// Truth of `x and y` elementwise (non-zero is true), broadcasting; bool result.
    logical_and => prim::and;
    /// Truth of `x or y` elementwise.
    logical_or => prim::or;
    /// Truth of `x xor y` elementwise.
    logical_xor => prim::xor;
}

/// Truth of `not x` elementwise (zero is true); bool result.
#[track_caller]
pub fn logical_not(x: &Tensor) -> Tensor {
    prim::not(&astype(x, DType::Bool))
}

/// `1 / x` (integers are promoted to float).
#[track_caller]
pub fn reciprocal(x: &Tensor) -> Tensor {
    let x = inexact(x);
    prim::div(&prim::full(x.shape(), 1, x.dtype()), &x)
}

/// Base-2 logarithm, `log(x) / log(2)` as `jnp.log2`.
#[track_caller]
pub fn log2(x: &Tensor) -> Tensor {
    log(x) / std::f64::consts::LN_2
}

/// Base-10 logarithm, `log(x) / log(10)` as `jnp.log10`.
#[track_caller]
pub fn log10(x: &Tensor) -> Tensor {
    log(x) / std::f64::consts::LN_10
}

/// True where `x` is NaN (never for integers).
#[track_caller]
pub fn isnan(x: &Tensor) -> Tensor {
    if x.dtype().is_float() {
        prim::compare(x, x, CompareDir::Ne)
    } else {
        prim::full(x.shape(), false, DType::Bool)
    }
}

/// True where `x` is +inf or -inf (never for integers).
#[track_caller]
pub fn isinf(x: &Tensor) -> Tensor {
    if x.dtype().is_float() {
        let inf = prim::full(x.shape(), f64::INFINITY, x.dtype());
        prim::compare(&prim::abs(x), &inf, CompareDir::Eq)
    } else {
        prim::full(x.shape(), false, DType::Bool)
    }
}

/// Tangent, `sin(x) / cos(x)`.
#[track_caller]
pub fn tan(x: &Tensor) -> Tensor {
    let x = inexact(x);
    prim::div(&prim::sin(&x), &prim::cos(&x))
}

/// Arctangent, `atan2(x, 1)`.
#[track_caller]
pub fn arctan(x: &Tensor) -> Tensor {
    let x = inexact(x);
    prim::atan2(&x, &prim::full(x.shape(), 1, x.dtype()))
}

/// Hyperbolic sine, `(e^x - e^-x) / 2`.
#[track_caller]
pub fn sinh(x: &Tensor) -> Tensor {
    let x = inexact(x);
    (prim::exp(&x) - prim::exp(&prim::neg(&x))) * 0.5
}

/// Hyperbolic cosine, `(e^x + e^-x) / 2`.
#[track_caller]
pub fn cosh(x: &Tensor) -> Tensor {
    let x = inexact(x);
    (prim::exp(&x) + prim::exp(&prim::neg(&x))) * 0.5
}

/// `2^x`, `exp(x ln 2)`.
#[track_caller]
pub fn exp2(x: &Tensor) -> Tensor {
    exp(&(inexact(x) * std::f64::consts::LN_2))
}

/// Arcsine, `atan2(x, sqrt(1 - x^2))` (NaN outside `[-1, 1]`).
#[track_caller]
pub fn arcsin(x: &Tensor) -> Tensor {
    let x = inexact(x);
    let c = prim::sqrt(&(1.0 - prim::square(&x)));
    prim::atan2(&x, &c)
}

/// Arccosine, `atan2(sqrt(1 - x^2), x)` (NaN outside `[-1, 1]`).
#[track_caller]
pub fn arccos(x: &Tensor) -> Tensor {
    let x = inexact(x);
    let s = prim::sqrt(&(1.0 - prim::square(&x)));
    prim::atan2(&s, &x)
}

/// True where `|x - y| <= atol + rtol |y|` for finite values, or `x == y`, elementwise, as
/// `jnp.isclose` (NaNs are never close; infinities only to the same infinity).
#[track_caller]
pub fn isclose(x: impl Into<Operand>, y: impl Into<Operand>, rtol: f64, atol: f64) -> Tensor {
    match prepare("isclose", &[x.into(), y.into()]) {
        Ok(v) => {
            let (a, b) = (inexact(&v[0]), inexact(&v[1]));
            let near = prim::compare(
                &prim::abs(&prim::sub(&a, &b)),
                &(prim::abs(&b) * rtol + atol),
                CompareDir::Le,
            );
            let finite = prim::and(&prim::is_finite(&a), &prim::is_finite(&b));
            prim::or(
                &prim::and(&near, &finite),
                &prim::compare(&a, &b, CompareDir::Eq),
            )
        }
        Err(p) => p,
    }
}
