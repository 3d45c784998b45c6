//! Elementwise binary primitives, one table row each: name, accepted element types,
//! StableHLO op. Operands must have equal shapes and element types.

use crate::batching::{self as b};
use crate::emit::EmitCx;
use crate::prim::BatchResult;
use crate::prim::{self as p, CompareDir, VjpResult};
use crate::prim::{arity, same_shape_dtype, Class, Primitive};
use crate::trace::fill;
use crate::trace::{bind1, Aval, OpError, Tensor};

/// An elementwise binary op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binary(pub BinaryOp);

macro_rules! binary_table {
    ($($(#[$doc:meta])* $op:ident, $fn:ident, $name:literal, $class:ident, $mlir:literal;)*) => {
        /// Which binary op.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum BinaryOp { $($op),* }

        impl BinaryOp {
            /// Every binary op, in table order.
            pub const ALL: &'static [BinaryOp] = &[$(BinaryOp::$op),*];
            /// The op's name.
            pub fn name(self) -> &'static str { match self { $(BinaryOp::$op => $name),* } }
            /// The element types it accepts.
            pub fn class(self) -> Class { match self { $(BinaryOp::$op => Class::$class),* } }
            /// The StableHLO op name.
            pub fn mlir(self) -> &'static str { match self { $(BinaryOp::$op => $mlir),* } }
        }

        $(
            $(#[$doc])*
            #[track_caller]
            pub fn $fn(x: &Tensor, y: &Tensor) -> Tensor { bind1(Binary(BinaryOp::$op), &[x, y]) }
        )*
    };
}

binary_table! {
    /// `x + y` (`stablehlo.add`).
    Add, add, "add", Num, "stablehlo.add";
    /// `x - y` (`stablehlo.subtract`).
    Sub, sub, "sub", Num, "stablehlo.subtract";
    /// `x * y` (`stablehlo.multiply`).
    Mul, mul, "mul", Num, "stablehlo.multiply";
    /// `x / y`; integer division truncates toward zero (`stablehlo.divide`).
    Div, div, "div", Num, "stablehlo.divide";
    /// Remainder with the sign of `x`, like C's `fmod`/`%` (`stablehlo.remainder`).
    Rem, rem, "rem", Num, "stablehlo.remainder";
    /// `x ^ y` (`stablehlo.power`).
    Pow, pow, "pow", Num, "stablehlo.power";
    /// Elementwise maximum; NaN if either is NaN (`stablehlo.maximum`).
    Max, max, "max", Any, "stablehlo.maximum";
    /// Elementwise minimum; NaN if either is NaN (`stablehlo.minimum`).
    Min, min, "min", Any, "stablehlo.minimum";
    /// Two-argument arctangent of `x / y` (`stablehlo.atan2`).
    Atan2, atan2, "atan2", Float, "stablehlo.atan2";
    /// Bitwise/logical and (`stablehlo.and`).
    And, and, "and", IntOrBool, "stablehlo.and";
    /// Bitwise/logical or (`stablehlo.or`).
    Or, or, "or", IntOrBool, "stablehlo.or";
    /// Bitwise/logical xor (`stablehlo.xor`).
    Xor, xor, "xor", IntOrBool, "stablehlo.xor";
    /// `x << y`; 0 when `y` is at least the bit width (`stablehlo.shift_left`).
    ShiftLeft, shift_left, "shift_left", Int, "stablehlo.shift_left";
    /// `x >> y` filling with zeros (`stablehlo.shift_right_logical`).
    ShiftRightLogical, shift_right_logical, "shift_right_logical", Int, "stablehlo.shift_right_logical";
    /// `x >> y` filling with the sign bit (`stablehlo.shift_right_arithmetic`).
    ShiftRightArithmetic, shift_right_arithmetic, "shift_right_arithmetic", Int, "stablehlo.shift_right_arithmetic";
}

impl Binary {
    /// Applies the op (for table-driven callers; the named functions are the usual way).
    #[track_caller]
    pub fn apply(self, x: &Tensor, y: &Tensor) -> Tensor {
        bind1(self, &[x, y])
    }
}

impl Primitive for Binary {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        b::elementwise(*self, ins, dims)
    }

    fn vjp(&self, ins: &[Tensor], outs: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (x, y, z) = (&ins[0], &ins[1], &outs[0]);
        let Some(g) = &cts[0] else {
            return Ok(vec![None, None]);
        };
        let c = |v: f64| fill(x.aval(), v);
        use BinaryOp::*;
        let (dx, dy) = match self.0 {
            Add => (g.clone(), g.clone()),
            Sub => (g.clone(), p::neg(g)),
            Mul => (mul(g, y), mul(x, g)),
            Div => (div(g, y), p::neg(&mul(g, &div(z, y)))),
            Rem => {
                let q = div(x, y);
                let trunc = mul(&p::sign(&q), &p::floor(&p::abs(&q)));
                (g.clone(), p::neg(&mul(g, &trunc)))
            }
            Pow => {
                let dx = mul(g, &mul(y, &pow(x, &sub(y, &c(1.0)))));
                let zero = p::compare(x, &c(0.0), CompareDir::Eq);
                let logx = p::select(&zero, &c(0.0), &p::log(x));
                (dx, mul(g, &mul(z, &logx)))
            }
            Max | Min => {
                // JAX's `_balanced_eq`: an operand equal to the result takes the cotangent,
                // halved when both are (a tie); neither does when the result is NaN.
                let balanced = |a: &Tensor, b: &Tensor| {
                    let a_is = p::compare(a, z, CompareDir::Eq);
                    let b_is = p::compare(b, z, CompareDir::Eq);
                    div(
                        &p::select(&a_is, &c(1.0), &c(0.0)),
                        &p::select(&b_is, &c(2.0), &c(1.0)),
                    )
                };
                (mul(g, &balanced(x, y)), mul(g, &balanced(y, x)))
            }
            Atan2 => {
                let d = add(&mul(x, x), &mul(y, y));
                (mul(g, &div(y, &d)), p::neg(&mul(g, &div(x, &d))))
            }
            And | Or | Xor | ShiftLeft | ShiftRightLogical | ShiftRightArithmetic => {
                return Ok(vec![None, None])
            }
        };
        Ok(vec![Some(dx), Some(dy)])
    }

    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 2)?;
        Ok(vec![same_shape_dtype(ins, self.0.class())?])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "{} {}, {} : {}",
            self.0.mlir(),
            cx.name(0),
            cx.name(1),
            cx.out_ty()
        )
    }
}
