//! big_vision's preprocessing: the `op(args)|op(args)` language, a registry of ops, and the
//! image kernels they use (decoding, resizing, cropping, RandAugment).

pub mod decode;
