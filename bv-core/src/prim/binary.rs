//! Elementwise binary primitives, one table row each: name, accepted element types,
//! StableHLO op. Operands must have equal shapes and element types.

use crate::emit::EmitCx;
use crate::prim::{arity, same_shape_dtype, Class, Primitive};
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
