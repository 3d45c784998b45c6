//! `convert` (value-preserving element type change) and `bitcast_convert` (reinterpret bits).

use crate::batching::{self as b};
use crate::dtype::DType;
use crate::emit::EmitCx;
use crate::prim::BatchResult;
use crate::prim::VjpResult;
use crate::prim::{arity, Primitive};
use crate::trace::error::ensure;
use crate::trace::{bind1, Aval, OpError, Tensor};

/// Converts each element to `to` (`stablehlo.convert`): floats to integers truncate toward
/// zero, to bool is `x != 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Convert {
    /// Target element type.
    pub to: DType,
    /// Keep the result weakly typed (used by promotion of weak scalars).
    pub weak: bool,
}

/// Converts each element to `to` (`stablehlo.convert`): floats to integers truncate toward
/// zero, to bool is `x != 0`.
/// `to`: target element type.
/// The result is strongly typed.
#[track_caller]
pub fn convert(x: &Tensor, to: DType) -> Tensor {
    bind1(Convert { to, weak: false }, &[x])
}

impl Convert {
    /// Applies this conversion to `x`.
    #[track_caller]
    pub fn bind(self, x: &Tensor) -> Tensor {
        bind1(self, &[x])
    }
}

impl Primitive for Convert {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        b::elementwise(*self, ins, dims)
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let x = &ins[0];
        let back = Convert {
            to: x.dtype(),
            weak: x.is_weak(),
        };
        Ok(vec![cts[0]
            .as_ref()
            .filter(|_| x.dtype().is_float())
            .map(|g| back.bind(g))])
    }

    fn name(&self) -> &'static str {
        "convert"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        Ok(vec![Aval {
            shape: ins[0].shape.clone(),
            dtype: self.to,
            weak: self.weak,
        }])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!("stablehlo.convert {} : {}", cx.name(0), cx.fn_type())
    }
}

/// Reinterprets the bits of each element as `to` (`stablehlo.bitcast_convert`). A narrower
/// target adds a minor dimension of `width ratio`; a wider one consumes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitcastConvert {
    /// Target element type.
    pub to: DType,
}

/// Reinterprets the bits of each element as `to` (`stablehlo.bitcast_convert`). A narrower
/// target adds a minor dimension of `width ratio`; a wider one consumes it.
/// `to`: target element type.
#[track_caller]
pub fn bitcast_convert(x: &Tensor, to: DType) -> Tensor {
    bind1(BitcastConvert { to }, &[x])
}

impl Primitive for BitcastConvert {
    /// The batch dimension goes in front, away from the minor dimension a width change
    /// adds or removes.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        b::leading(*self, ins, dims)
    }

    fn vjp(&self, _: &[Tensor], _: &[Tensor], _: &[Option<Tensor>]) -> VjpResult {
        Ok(vec![None])
    }

    fn name(&self) -> &'static str {
        "bitcast_convert"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        let x = ins[0];
        ensure!(
            x.dtype != DType::Bool && self.to != DType::Bool,
            "bool cannot be bitcast"
        );
        let (wi, wo) = (x.dtype.size_in_bytes(), self.to.size_in_bytes());
        let mut shape = x.shape.clone();
        if wi > wo {
            shape.push(wi / wo);
        } else if wi < wo {
            ensure!(
                shape.last() == Some(&(wo / wi)),
                "the minor dimension must be {} to bitcast {} to {}",
                wo / wi,
                x.dtype,
                self.to
            );
            shape.pop();
        }
        Ok(vec![Aval::new(shape, self.to)])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.bitcast_convert {} : {}",
            cx.name(0),
            cx.fn_type()
        )
    }
}
