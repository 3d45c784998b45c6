//! What a program using bv-core usually needs, in one import:
//!
//! ```
//! use bv_core::prelude::*;
//!
//! let f = |x: Tensor| (&x * &x).sum(Axes::All);
//! let x = np::arange(3, DType::F32);
//! assert_eq!(grad(f)(&x).to_vec::<f32>()?, [0.0, 2.0, 4.0]);
//! # Ok::<(), bv_core::EagerError>(())
//! ```
//!
//! Transformations (`jit`, `grad`, `value_and_grad`, `vjp`, `jvp`, `vmap`, control flow),
//! arrays and tensors, `numpy` as `np`, `random`, and the tree items (`Tree`, `Params`,
//! `impl_tree!`). Sharding, I/O, PJRT and distributed setup stay in their modules.

pub use crate::array::Array;
pub use crate::autodiff::{
    checkpoint, custom_jvp, custom_vjp, grad, jvp, stop_gradient, value_and_grad,
    value_and_grad_aux, vjp, RematPolicy,
};
pub use crate::batching::{vmap, Axis};
pub use crate::control::{cond, fori_loop, scan, scan_with, switch, while_loop, ScanOptions};
pub use crate::dtype::DType;
pub use crate::impl_tree;
pub use crate::jit::{jit, jit_static};
pub use crate::numpy::{self as np, Axes};
pub use crate::random::{self, Key};
pub use crate::trace::{Aval, Spec, Tensor};
pub use crate::tree::{self, Params, Tree};
