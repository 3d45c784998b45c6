//! big_vision's preprocessing: the `op(args)|op(args)` language, a registry of ops, and the
//! image kernels they use (decoding, resizing, cropping, RandAugment).
//!
//! ```
//! use bv_train::data::{Array, Example, Value};
//! use bv_train::pp::{Pipeline, Rng, OPS};
//! let pp = Pipeline::build("resize(2)|value_range(-1, 1)", OPS)?;
//! let mut ex = Example::new();
//! ex.insert("image".into(), Value::U8(Array::new(vec![1, 1, 3], vec![0, 255, 51])));
//! pp.apply(&mut ex, &mut Rng::new(0, 0))?;
//! assert_eq!(ex["image"].shape(), [2, 2, 3]);
//! # Ok::<(), bv_train::pp::PpError>(())
//! ```

pub mod decode;
pub mod error;
pub mod ops;
pub mod ops_general;
pub mod ops_image;
pub mod ops_text;
pub mod parse;
pub mod randaug;
pub mod registry;
pub mod resize;
pub mod rng;
pub mod sentencepiece;

pub use error::PpError;
pub use ops::OPS;
pub use registry::{describe, list, signature, OpDef, Pipeline, PpOp, ValueOp};
pub use rng::Rng;
