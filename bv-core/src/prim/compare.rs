//! `compare`: elementwise comparison to bool, with StableHLO's compare type chosen from the
//! element type (FLOAT, SIGNED, UNSIGNED; booleans compare as UNSIGNED).

use crate::batching::{self as b};
use crate::dtype::DType;
use crate::emit::EmitCx;
use crate::prim::BatchResult;
use crate::prim::{arity, compare_type, same_shape_dtype, Class, Primitive};
use crate::trace::{bind1, Aval, OpError, Tensor};

/// A comparison direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareDir {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CompareDir {
    /// StableHLO's spelling (`EQ`, `LT`, ...).
    pub fn mlir(self) -> &'static str {
        match self {
            CompareDir::Eq => "EQ",
            CompareDir::Ne => "NE",
            CompareDir::Lt => "LT",
            CompareDir::Le => "LE",
            CompareDir::Gt => "GT",
            CompareDir::Ge => "GE",
        }
    }

    fn name(self) -> &'static str {
        match self {
            CompareDir::Eq => "eq",
            CompareDir::Ne => "ne",
            CompareDir::Lt => "lt",
            CompareDir::Le => "le",
            CompareDir::Gt => "gt",
            CompareDir::Ge => "ge",
        }
    }
}

/// Elementwise comparison (`stablehlo.compare`); operands of equal shape and type; bool result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compare(pub CompareDir);

/// `x <dir> y` elementwise (`stablehlo.compare`); operands of equal shape and type; bool result.
#[track_caller]
pub fn compare(x: &Tensor, y: &Tensor, dir: CompareDir) -> Tensor {
    bind1(Compare(dir), &[x, y])
}

impl Primitive for Compare {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        b::elementwise(*self, ins, dims)
    }

    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 2)?;
        Ok(vec![
            same_shape_dtype(ins, Class::Any)?.with_dtype(DType::Bool)
        ])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.compare {}, {}, {}, {} : {}",
            self.0.mlir(),
            cx.name(0),
            cx.name(1),
            compare_type(cx.ins[0].aval.dtype),
            cx.fn_type()
        )
    }
}
