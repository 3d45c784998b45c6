//! big_vision's models.

pub mod vit;
