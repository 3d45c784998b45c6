//! big_vision's models on bv-core: ViT, MLP-Mixer and BiT with big_vision's parameter names,
//! so that big_vision's npz checkpoints load unchanged.
//!
//! The models arrive with the modules issue; this crate is the place they live.
