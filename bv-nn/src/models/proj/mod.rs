//! Models of big_vision's projects (`big_vision/models/proj/`).

pub mod flexi;
