//! Meshes and shardings with JAX's semantics: a [`Mesh`] names axes over one canonical
//! device order, a [`PartitionSpec`] says which mesh axes split each array dimension, and a
//! [`NamedSharding`] pairs them. Shardings are written into StableHLO as Shardy (`sdy`)
//! attributes, or GSPMD (`mhlo.sharding`) strings for plugins without Shardy.
//! [`rules`] holds big_vision's `sharding_strategy` tactics (`replicate`, `fsdp`,
//! `shard_dim`).

mod mesh;
pub mod rules;
mod spec;

pub use mesh::Mesh;
pub use spec::{NamedSharding, PartitionSpec};

/// Errors in mesh and sharding definitions, naming the axis, array or rule at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardingError {
    /// The mesh's axis sizes do not fit the devices.
    #[error("mesh {axes}: {reason}")]
    Mesh { axes: String, reason: String },
    /// A spec names an axis the mesh does not have, or uses an axis twice.
    #[error("partition spec {spec}: {reason}")]
    Spec { spec: String, reason: String },
    /// A dimension is not divisible by the mesh axes that split it.
    #[error("cannot shard {shape:?} with {spec}: dimension {dim} of size {size} is not divisible by {parts}")]
    Indivisible {
        shape: Vec<i64>,
        spec: String,
        dim: usize,
        size: i64,
        parts: usize,
    },
    /// A `sharding_strategy` rule is malformed or cannot apply.
    #[error("sharding rule {rule:?}: {reason}")]
    Rule { rule: String, reason: String },
}
