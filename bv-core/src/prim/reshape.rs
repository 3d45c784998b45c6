//! `reshape`: same elements in row-major order, another shape.

use crate::batching::{self as b};
use crate::emit::EmitCx;
use crate::prim::BatchResult;
use crate::prim::VjpResult;
use crate::prim::{arity, Primitive};
use crate::trace::error::ensure;
use crate::trace::{bind1, Aval, OpError, Tensor};

/// See [`reshape`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reshape {
    /// Result shape.
    pub shape: Vec<usize>,
}

/// The same elements, row-major, in `shape` (`stablehlo.reshape`); sizes must agree.
#[track_caller]
pub fn reshape(x: &Tensor, shape: &[usize]) -> Tensor {
    bind1(
        Reshape {
            shape: shape.to_vec(),
        },
        &[x],
    )
}

/// Removes the given size-1 dimensions.
#[track_caller]
pub fn squeeze_dims(x: &Tensor, dims: &[usize]) -> Tensor {
    let shape: Vec<usize> = x
        .shape()
        .iter()
        .enumerate()
        .filter(|(i, _)| !dims.contains(i))
        .map(|(_, &d)| d)
        .collect();
    reshape(x, &shape)
}

impl Primitive for Reshape {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let mut shape = vec![b::size(ins, dims)];
        shape.extend(&self.shape);
        b::leading(Reshape { shape }, ins, dims)
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        Ok(vec![cts[0].as_ref().map(|g| reshape(g, ins[0].shape()))])
    }

    fn name(&self) -> &'static str {
        "reshape"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        let n: usize = self.shape.iter().product();
        ensure!(
            n == ins[0].size(),
            "cannot reshape {} elements into {:?}",
            ins[0].size(),
            self.shape
        );
        Ok(vec![ins[0].with_shape(self.shape.clone())])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!("stablehlo.reshape {} : {}", cx.name(0), cx.fn_type())
    }
}
