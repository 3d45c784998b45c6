//! big_vision's models on bv-core, with big_vision's parameter names, so that big_vision's
//! npz checkpoints load unchanged.
//!
//! A module is a struct of hyperparameters with one `apply` written against a [`Scope`];
//! [`init`] runs it to create parameters (Flax's names and per-parameter keys) and [`apply`]
//! runs it on given parameters.
//!
//! ```
//! use bv_core::{jit, random::Key, DType, Tensor};
//! use bv_nn::layers::Dense;
//! let f = jit(|(key, x): (Tensor, Tensor)| bv_nn::init(&Dense::new(4), &key, x).1);
//! let lowered = f.lower(&(Key::spec(), bv_core::Spec::new([1, 6], DType::F32)))?;
//! assert_eq!(lowered.out_avals.len(), 2); // kernel, bias
//! # Ok::<(), bv_core::JitError>(())
//! ```

pub mod init;
pub mod layers;
pub mod models;
pub mod npz;
pub mod scope;
pub mod zoo;

/// The parameter tree, shared with the optimizers and trainers.
pub use bv_core::tree::Params;
pub use init::Init;
pub use scope::{apply, init, Module, Scope, Stream};
