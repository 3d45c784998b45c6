//! `broadcast_in_dim`: place an operand's dimensions into a larger shape.

use crate::batching::{self as b};
use crate::emit::{list, EmitCx};
use crate::prim::BatchResult;
use crate::prim::VjpResult;
use crate::prim::{arity, Primitive};
use crate::trace::error::ensure;
use crate::trace::{bind1, Aval, OpError, Tensor};

/// Operand dimension `i` becomes result dimension `dims[i]`; sizes must match or be 1
/// (`stablehlo.broadcast_in_dim`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BroadcastInDim {
    /// Result shape.
    pub shape: Vec<usize>,
    /// For each operand dimension, its result dimension (increasing).
    pub dims: Vec<usize>,
}

/// Operand dimension `i` becomes result dimension `dims[i]`; sizes must match or be 1
/// (`stablehlo.broadcast_in_dim`).
/// `shape`: result shape; `dims`: for each operand dimension, its result dimension (increasing).
#[track_caller]
pub fn broadcast_in_dim(x: &Tensor, shape: &[usize], dims: &[usize]) -> Tensor {
    bind1(
        BroadcastInDim {
            shape: shape.to_vec(),
            dims: dims.to_vec(),
        },
        &[x],
    )
}

impl Primitive for BroadcastInDim {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let mut shape = vec![n];
        shape.extend(&self.shape);
        let prim = BroadcastInDim {
            shape,
            dims: b::lead(&self.dims),
        };
        b::leading(prim, ins, dims)
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (x, Some(g)) = (&ins[0], &cts[0]) else {
            return Ok(vec![None]);
        };
        let mut axes: Vec<usize> = (0..self.shape.len())
            .filter(|d| !self.dims.contains(d))
            .collect();
        for (i, &d) in self.dims.iter().enumerate() {
            if x.shape()[i] == 1 && self.shape[d] != 1 {
                axes.push(d);
            }
        }
        axes.sort_unstable();
        let s = crate::prim::reduce(g, crate::prim::ReduceKind::Sum, &axes);
        Ok(vec![Some(crate::prim::reshape(&s, x.shape()))])
    }

    fn name(&self) -> &'static str {
        "broadcast_in_dim"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        let x = ins[0];
        ensure!(
            self.dims.len() == x.rank(),
            "dims {:?} must name one result dimension per operand dimension",
            self.dims
        );
        for (i, &d) in self.dims.iter().enumerate() {
            ensure!(
                d < self.shape.len(),
                "dimension {d} is out of range for result shape {:?}",
                self.shape
            );
            ensure!(
                i == 0 || d > self.dims[i - 1],
                "dims {:?} must be strictly increasing",
                self.dims
            );
            ensure!(
                x.shape[i] == 1 || x.shape[i] == self.shape[d],
                "operand dimension {i} (size {}) cannot broadcast to size {} of {:?}",
                x.shape[i],
                self.shape[d],
                self.shape
            );
        }
        Ok(vec![x.with_shape(self.shape.clone())])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.broadcast_in_dim {}, dims = {} : {}",
            cx.name(0),
            list(&self.dims),
            cx.fn_type()
        )
    }
}
