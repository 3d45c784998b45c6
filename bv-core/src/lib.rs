//! bv-core: a JAX-style array library. Rust code is traced into StableHLO, compiled by XLA
//! and run through PJRT plugins for CPU, GPU and TPU. Outside `jit`, ops run at once on
//! concrete tensors ([`eager`]).

pub mod array;
pub mod autodiff;
pub mod batching;
pub mod compile_cache;
pub mod control;
pub mod distributed;
pub mod dtype;
pub mod eager;
pub mod emit;
pub mod io;
pub mod jit;
pub mod malloc;
pub mod numpy;
pub mod pjrt;
pub mod prim;
pub mod random;
pub mod sharding;
pub mod trace;
pub mod tree;

pub use array::{Array, ArrayError};
pub use dtype::{DType, Element};
pub use eager::EagerError;
pub use jit::{
    default_client, jit, jit_static, set_default_client, Jit, JitError, JitStats, Lowered,
};
pub use trace::{Aval, Spec, Tensor, TraceError};
