//! big_vision's optimizer chain (`big_vision/optax.py`) and its learning-rate schedules.

pub mod adafactor;
pub mod adam;
pub mod gsam;
pub mod lion;
pub mod make;
pub mod momentum;
pub mod scale;
pub mod schedule;
pub mod transform;

pub use make::{make, make_for_config, OptimError, OptimSpec, OPTIMIZERS};
pub use schedule::{Schedule, ScheduleGroups};
pub use transform::{
    apply_updates, chain, global_norm, masked, Chain, Masked, Params, State, Transform,
};
