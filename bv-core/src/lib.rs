//! bv-core: a JAX-style array library. Rust code is traced into StableHLO, compiled by XLA
//! and run through PJRT plugins for CPU, GPU and TPU.

pub mod dtype;
pub mod pjrt;

pub use dtype::{DType, Element};
