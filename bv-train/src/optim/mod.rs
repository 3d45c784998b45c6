//! big_vision's optimizer chain (`big_vision/optax.py`) and its learning-rate schedules.

pub mod schedule;
