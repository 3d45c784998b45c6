//! Optimizers over any parameter tree: big_vision's chain (`big_vision/optax.py`, built from
//! a config by [`make`]), Optax's common optimizers as functions with option structs
//! ([`adamw`], [`adam`], [`sgd`], [`lion`], [`lamb`], big_vision's [`adafactor`]), and
//! big_vision's learning-rate schedules.

pub mod adafactor;
pub mod adam;
pub mod alias;
pub mod gsam;
pub mod lion;
pub mod make;
pub mod momentum;
pub mod scale;
pub mod schedule;
pub mod transform;

pub use alias::{
    adafactor, adam, adamw, lamb, lion, sgd, AdafactorOptions, AdamOptions, AdamWOptions,
    LambOptions, LearningRate, LionOptions, SgdOptions,
};
pub use make::{make, make_for_config, OptimError, OptimSpec, OPTIMIZERS};
pub use schedule::{Schedule, ScheduleGroups};
pub use transform::{
    apply_updates, chain, global_norm, masked, Chain, Mask, Masked, Optimizer, State, Transform,
};
