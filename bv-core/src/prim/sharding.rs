//! `sharding_constraint`: pins a value's layout over the mesh inside a traced function
//! (JAX's `with_sharding_constraint`; Shardy's `sdy.sharding_constraint`).

use crate::emit::EmitCx;
use crate::prim::BatchResult;
use crate::prim::{Primitive, VjpResult};
use crate::sharding::NamedSharding;
use crate::trace::{bind1, Aval, OpError, Tensor};

/// The name under which `jit` declares its mesh in the module.
pub const MESH_NAME: &str = "mesh";

#[derive(Debug)]
struct ShardingConstraint(NamedSharding);

impl Primitive for ShardingConstraint {
    /// The batch dimension goes in front, replicated.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let mut spec = vec![Vec::new()];
        spec.extend(self.0.spec.0.iter().cloned());
        let sh = NamedSharding {
            mesh: self.0.mesh.clone(),
            spec: crate::sharding::PartitionSpec(spec),
        };
        crate::batching::leading(ShardingConstraint(sh), ins, dims)
    }

    fn name(&self) -> &'static str {
        "sharding_constraint"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        let shape: Vec<i64> = ins[0].shape.iter().map(|&d| d as i64).collect();
        self.0
            .shard_shape(&shape)
            .map_err(|e| OpError(e.to_string()))?;
        Ok(vec![ins[0].clone()])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let attr = self.0.to_sdy(MESH_NAME, cx.ins[0].aval.shape.len());
        let attr = attr
            .strip_prefix("#sdy.sharding")
            .unwrap_or(&attr)
            .to_string();
        format!(
            "sdy.sharding_constraint {} {attr} : {}",
            cx.name(0),
            cx.out_ty()
        )
    }

    fn vjp(&self, _: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        Ok(vec![cts[0]
            .as_ref()
            .map(|ct| sharding_constraint(ct, &self.0))])
    }
}

/// `x`, laid out over the mesh as `sharding` says; the cotangent under `grad` gets the same
/// layout. The function must be jitted with [`crate::Jit::sharded`] over the same mesh.
#[track_caller]
pub fn sharding_constraint(x: &Tensor, sharding: &NamedSharding) -> Tensor {
    bind1(ShardingConstraint(sharding.clone()), &[x])
}
