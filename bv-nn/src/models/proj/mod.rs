//! big_vision's project models (`big_vision/models/proj/`).

pub mod flexi;
pub mod image_text;
