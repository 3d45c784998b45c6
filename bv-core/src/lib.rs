//! bv-core: a JAX-style array library. Rust code is traced into StableHLO, compiled by XLA
//! and run through PJRT plugins for CPU, GPU and TPU. Outside `jit`, ops run at once on
//! concrete tensors ([`eager`]).
//!
//! ```
//! use bv_core::prelude::*;
//!
//! let loss = |w: Tensor| (&w * &w).sum(Axes::All);
//! let step = jit(move |w: Tensor| &w - grad(loss)(&w) * 0.1);
//! let w = Array::from_slice(&[1f32, -2.0], &[2])?;
//! assert_eq!(step.call(&w)?.to_vec::<f32>()?, [0.8, -1.6]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Where things are ([`prelude`] imports the usual ones):
//!
//! - values: [`Tensor`] (traced or concrete, with numpy-style methods), [`Array`] (device
//!   data), [`Spec`]/[`Aval`] (shape and dtype only), [`DType`];
//! - transformations: [`jit()`], [`autodiff`] (`grad`, `value_and_grad`, `vjp`, `jvp`,
//!   `custom_vjp`, `checkpoint`), [`batching`] (`vmap`), [`control`] (`scan`, `cond`,
//!   `while_loop`);
//! - ops: [`numpy`] (`jax.numpy`), [`prim`] (`jax.lax`), [`random`] (`jax.random`);
//! - structure: [`tree`] (pytrees, [`Params`], [`impl_tree!`]);
//! - devices: [`client`] (the default PJRT client), [`pjrt`], [`sharding`], [`distributed`],
//!   [`compile_cache`], [`io`] (`.npy`/`.npz`);
//! - internals a user rarely reads: [`trace`] (the tracer and its errors), [`eager`].
//!
//! The modules are layered without import cycles (core `trace`, then `emit`/`eager`, the
//! transformations, `prim`, `numpy`, `control`); `docs/architecture.md` lists what each may
//! use and `tests/module_layers.rs` checks it.

pub mod array;
pub mod autodiff;
pub mod batching;
pub mod client;
pub mod compile_cache;
pub mod control;
pub mod distributed;
pub mod dtype;
pub mod eager;
mod emit;
pub mod io;
pub mod jit;
pub mod malloc;
pub mod numpy;
pub mod pjrt;
pub mod prelude;
pub mod prim;
pub mod random;
pub mod sharding;
pub mod trace;
pub mod tree;

pub use array::{Array, ArrayError};
pub use autodiff::{grad, jvp, value_and_grad, value_and_grad_aux, vjp};
pub use batching::vmap;
pub use client::{default_client, set_default_client};
pub use compile_cache::JitStats;
pub use dtype::{DType, Element};
pub use eager::EagerError;
pub use jit::{jit, jit_static, Jit, JitError, Lowered};
pub use random::Key;
pub use trace::{Aval, Spec, Tensor, TraceError};
pub use tree::{Params, Tree};
