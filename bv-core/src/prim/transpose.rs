//! `transpose` (permute dimensions) and `reverse` (flip along dimensions).

use crate::batching::{self as b};
use crate::emit::{list, EmitCx};
use crate::prim::BatchResult;
use crate::prim::VjpResult;
use crate::prim::{arity, check_axes, Primitive};
use crate::trace::error::ensure;
use crate::trace::{bind1, Aval, OpError, Tensor};

/// Result dimension `i` is operand dimension `perm[i]` (`stablehlo.transpose`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transpose {
    /// A permutation of `0..rank`.
    pub perm: Vec<usize>,
}

/// Result dimension `i` is operand dimension `perm[i]` (`stablehlo.transpose`).
/// `perm`: a permutation of `0..rank`.
#[track_caller]
pub fn transpose(x: &Tensor, perm: &[usize]) -> Tensor {
    bind1(
        Transpose {
            perm: perm.to_vec(),
        },
        &[x],
    )
}

impl Primitive for Transpose {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let perm = b::lead(&self.perm);
        b::leading(Transpose { perm }, ins, dims)
    }

    fn vjp(&self, _: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let mut inv = vec![0; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            inv[p] = i;
        }
        Ok(vec![cts[0].as_ref().map(|g| transpose(g, &inv))])
    }

    fn name(&self) -> &'static str {
        "transpose"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        let x = ins[0];
        ensure!(
            self.perm.len() == x.rank(),
            "permutation {:?} must have {} entries",
            self.perm,
            x.rank()
        );
        check_axes(&self.perm, x.rank(), "permutation entry")?;
        Ok(vec![x.with_shape(
            self.perm.iter().map(|&p| x.shape[p]).collect::<Vec<_>>(),
        )])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.transpose {}, dims = {} : {}",
            cx.name(0),
            list(&self.perm),
            cx.fn_type()
        )
    }
}

/// Reverses the order of elements along `dims` (`stablehlo.reverse`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reverse {
    /// Dimensions to flip.
    pub dims: Vec<usize>,
}

/// Reverses the order of elements along `dims` (`stablehlo.reverse`).
/// `dims`: dimensions to flip.
#[track_caller]
pub fn reverse(x: &Tensor, dims: &[usize]) -> Tensor {
    bind1(
        Reverse {
            dims: dims.to_vec(),
        },
        &[x],
    )
}

impl Primitive for Reverse {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let rev = b::shift(&self.dims);
        b::leading(Reverse { dims: rev }, ins, dims)
    }

    fn vjp(&self, _: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        Ok(vec![cts[0].as_ref().map(|g| reverse(g, &self.dims))])
    }

    fn name(&self) -> &'static str {
        "reverse"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        check_axes(&self.dims, ins[0].rank(), "dimension")?;
        Ok(vec![ins[0].clone()])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.reverse {}, dims = {} : {}",
            cx.name(0),
            list(&self.dims),
            cx.out_ty()
        )
    }
}
