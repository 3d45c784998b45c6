//! Elementwise unary primitives, one table row each: name, accepted element types,
//! StableHLO op.

use crate::batching::{self as b};
use crate::dtype::DType;
use crate::emit::EmitCx;
use crate::prim::BatchResult;
use crate::prim::{self as p, VjpResult};
use crate::prim::{arity, same_shape_dtype, Class, Primitive};
use crate::trace::fill;
use crate::trace::{bind1, Aval, OpError, Tensor};

/// An elementwise unary op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unary(pub UnaryOp);

macro_rules! unary_table {
    ($($(#[$doc:meta])* $op:ident, $fn:ident, $name:literal, $class:ident, $mlir:literal;)*) => {
        /// Which unary op.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum UnaryOp { $($op),* }

        impl UnaryOp {
            /// Every unary op, in table order.
            pub const ALL: &'static [UnaryOp] = &[$(UnaryOp::$op),*];
            /// The op's name.
            pub fn name(self) -> &'static str { match self { $(UnaryOp::$op => $name),* } }
            /// The element types it accepts.
            pub fn class(self) -> Class { match self { $(UnaryOp::$op => Class::$class),* } }
            /// The StableHLO (or CHLO) op name.
            pub fn mlir(self) -> &'static str { match self { $(UnaryOp::$op => $mlir),* } }
        }

        $(
            $(#[$doc])*
            #[track_caller]
            pub fn $fn(x: &Tensor) -> Tensor { bind1(Unary(UnaryOp::$op), &[x]) }
        )*
    };
}

unary_table! {
    /// `-x` ([`stablehlo.negate`](https://openxla.org/stablehlo/spec#negate)).
    Neg, neg, "neg", Signed, "stablehlo.negate";
    /// `|x|` (`stablehlo.abs`).
    Abs, abs, "abs", Signed, "stablehlo.abs";
    /// -1, 0 or 1 by the sign of `x` (NaN stays NaN) (`stablehlo.sign`).
    Sign, sign, "sign", Signed, "stablehlo.sign";
    /// Round toward -inf (`stablehlo.floor`).
    Floor, floor, "floor", Float, "stablehlo.floor";
    /// Round toward +inf (`stablehlo.ceil`).
    Ceil, ceil, "ceil", Float, "stablehlo.ceil";
    /// Round half to even, as `jnp.round` (`stablehlo.round_nearest_even`).
    Round, round, "round", Float, "stablehlo.round_nearest_even";
    /// `e^x` (`stablehlo.exponential`).
    Exp, exp, "exp", Float, "stablehlo.exponential";
    /// `e^x - 1`, accurate near 0 (`stablehlo.exponential_minus_one`).
    Expm1, expm1, "expm1", Float, "stablehlo.exponential_minus_one";
    /// Natural log (`stablehlo.log`).
    Log, log, "log", Float, "stablehlo.log";
    /// `ln(1 + x)`, accurate near 0 (`stablehlo.log_plus_one`).
    Log1p, log1p, "log1p", Float, "stablehlo.log_plus_one";
    /// `x * x` (`stablehlo.multiply` of `x` with itself), one primitive so that its
    /// derivative is the single term `2x`, as `lax.square`.
    Square, square, "square", Num, "stablehlo.multiply";
    /// Square root (`stablehlo.sqrt`).
    Sqrt, sqrt, "sqrt", Float, "stablehlo.sqrt";
    /// `1 / sqrt(x)` (`stablehlo.rsqrt`).
    Rsqrt, rsqrt, "rsqrt", Float, "stablehlo.rsqrt";
    /// Hyperbolic tangent (`stablehlo.tanh`).
    Tanh, tanh, "tanh", Float, "stablehlo.tanh";
    /// `1 / (1 + e^-x)` (`stablehlo.logistic`).
    Logistic, logistic, "logistic", Float, "stablehlo.logistic";
    /// Sine (`stablehlo.sine`).
    Sin, sin, "sin", Float, "stablehlo.sine";
    /// Cosine (`stablehlo.cosine`).
    Cos, cos, "cos", Float, "stablehlo.cosine";
    /// The error function (`chlo.erf`; XLA expands it when legalizing CHLO).
    Erf, erf, "erf", Float, "chlo.erf";
    /// True where `x` is neither infinite nor NaN (`stablehlo.is_finite`); returns bool.
    IsFinite, is_finite, "is_finite", Float, "stablehlo.is_finite";
    /// Bitwise not; logical not for bool (`stablehlo.not`).
    Not, not, "not", IntOrBool, "stablehlo.not";
    /// Number of set bits (`stablehlo.popcnt`).
    Popcnt, popcnt, "popcnt", Int, "stablehlo.popcnt";
}

impl Unary {
    /// Applies the op (for table-driven callers; the named functions are the usual way).
    #[track_caller]
    pub fn apply(self, x: &Tensor) -> Tensor {
        bind1(self, &[x])
    }
}

impl Primitive for Unary {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        b::elementwise(*self, ins, dims)
    }

    fn vjp(&self, ins: &[Tensor], outs: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (x, y) = (&ins[0], &outs[0]);
        let Some(g) = &cts[0] else {
            return Ok(vec![None]);
        };
        let c = |v: f64| fill(x.aval(), v);
        use UnaryOp::*;
        let d = match self.0 {
            Neg => neg(g),
            // +1 at 0, as JAX (`select(x >= 0, g, -g)`), not sign(0) = 0.
            Abs => p::select(&p::compare(x, &c(0.0), p::CompareDir::Ge), g, &neg(g)),
            Exp => p::mul(g, y),
            Expm1 => p::mul(g, &p::add(y, &c(1.0))),
            Log => p::div(g, x),
            Log1p => p::div(g, &p::add(x, &c(1.0))),
            Square => p::mul(g, &p::mul(x, &c(2.0))),
            Sqrt => p::div(g, &p::mul(y, &c(2.0))),
            Rsqrt => p::mul(g, &p::mul(&c(-0.5), &p::div(y, x))),
            Tanh => p::mul(g, &p::sub(&c(1.0), &p::mul(y, y))),
            Logistic => p::mul(g, &p::mul(y, &p::sub(&c(1.0), y))),
            Sin => p::mul(g, &cos(x)),
            Cos => neg(&p::mul(g, &sin(x))),
            Erf => {
                let e = exp(&neg(&p::mul(x, x)));
                p::mul(g, &p::mul(&c(std::f64::consts::FRAC_2_SQRT_PI), &e))
            }
            Sign | Floor | Ceil | Round | IsFinite | Not | Popcnt => return Ok(vec![None]),
        };
        Ok(vec![Some(d)])
    }

    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        let a = same_shape_dtype(ins, self.0.class())?;
        if self.0 == UnaryOp::IsFinite {
            return Ok(vec![a.with_dtype(DType::Bool)]);
        }
        Ok(vec![a])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        match self.0 {
            UnaryOp::IsFinite => format!("stablehlo.is_finite {} : {}", cx.name(0), cx.fn_type()),
            UnaryOp::Erf => format!("\"chlo.erf\"({}) : {}", cx.name(0), cx.fn_type()),
            UnaryOp::Square => format!(
                "stablehlo.multiply {}, {} : {}",
                cx.name(0),
                cx.name(0),
                cx.out_ty()
            ),
            op => format!("{} {} : {}", op.mlir(), cx.name(0), cx.out_ty()),
        }
    }
}
