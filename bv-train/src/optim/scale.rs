//! The stateless and counter-only stages: `scale` (lr, lr_mults, -1),
//! `add_decayed_weights`, `scale_by_schedule`, `set_to_zero`, `identity`
//! (`big_vision.sgd`), `clip_by_global_norm` (big_vision's chain), and Optax's
//! `scale_by_learning_rate` and `scale_by_trust_ratio` (the optimizers of [`super::alias`]).

use bv_core::trace::Aval;
use bv_core::tree::Params;
use bv_core::{numpy as np, DType, Tensor};

use super::schedule::Schedule;
use super::transform::{global_norm, increment, take, zero_count, State, Transform};

/// `u = f32(factor) · u` (`optax.scale`).
pub struct Scale(pub f64);

impl Transform for Scale {
    fn init_leaves(&self, _: &Params) -> State {
        State::new()
    }
    fn update_leaves(&self, updates: Params, state: State, _: &Params) -> (Params, State) {
        let u = updates.into_iter().map(|(k, u)| (k, &u * self.0)).collect();
        (u, state)
    }
}

/// `u = u + f32(rate) · θ` (`optax.add_decayed_weights`; a zero rate leaves `u` as it is);
/// mask it to pick the parameters.
pub struct AddDecayedWeights(pub f64);

impl Transform for AddDecayedWeights {
    fn init_leaves(&self, _: &Params) -> State {
        State::new()
    }
    fn update_leaves(&self, updates: Params, state: State, params: &Params) -> (Params, State) {
        if self.0 == 0.0 {
            return (updates, state);
        }
        let u = updates
            .into_iter()
            .map(|(k, u)| {
                let decayed = match params.get(&k) {
                    Some(p) => u + p * self.0,
                    None => u,
                };
                (k, decayed)
            })
            .collect();
        (u, state)
    }
}

/// `u = sched(count) · u` with its own int32 `count` of previous updates
/// (`optax.scale_by_schedule`); the multiplier is computed in float32 inside the step.
pub struct ScaleBySchedule(pub Schedule);

impl Transform for ScaleBySchedule {
    fn init_leaves(&self, _: &Params) -> State {
        State::from([("count".to_string(), zero_count())])
    }
    fn update_leaves(&self, updates: Params, mut state: State, _: &Params) -> (Params, State) {
        let (count, next) = next_count(&mut state);
        let mult = self.0.at(np::astype(&count, DType::F32));
        let u = updates
            .into_iter()
            .map(|(k, u)| (k, np::astype(&mult, u.dtype()) * u))
            .collect();
        (u, State::from([("count".to_string(), next)]))
    }
}

/// `u = 0` (`optax.set_to_zero`), for frozen parameters.
pub struct SetToZero;

impl Transform for SetToZero {
    fn init_leaves(&self, _: &Params) -> State {
        State::new()
    }
    fn update_leaves(&self, updates: Params, state: State, _: &Params) -> (Params, State) {
        let u = updates
            .into_iter()
            .map(|(k, u)| (k, np::zeros(u.shape(), u.dtype())))
            .collect();
        (u, state)
    }
}

/// Updates unchanged (`optax.identity`, `big_vision.sgd`).
pub struct Identity;

impl Transform for Identity {
    fn init_leaves(&self, _: &Params) -> State {
        State::new()
    }
    fn update_leaves(&self, updates: Params, state: State, _: &Params) -> (Params, State) {
        (updates, state)
    }
}

/// `g = g` if the global norm `n < max_norm`, else `(g / n) · max_norm`
/// (`optax.clip_by_global_norm`; mask it to pick the leaves that count).
pub struct ClipByGlobalNorm(pub f64);

impl Transform for ClipByGlobalNorm {
    fn init_leaves(&self, _: &Params) -> State {
        State::new()
    }
    fn update_leaves(&self, updates: Params, state: State, _: &Params) -> (Params, State) {
        if updates.is_empty() {
            return (updates, state);
        }
        let norm = global_norm(&updates);
        let keep = np::less(&norm, self.0);
        let u = updates
            .into_iter()
            .map(|(k, g)| {
                let clipped = (&g / &np::astype(&norm, g.dtype())) * self.0;
                (k, np::where_(&keep, &g, clipped))
            })
            .collect();
        (u, state)
    }
}

/// A learning rate: a constant or a schedule of the update count (Optax's
/// `ScalarOrSchedule`); a schedule's values are the learning rate itself.
#[derive(Clone, Debug, PartialEq)]
pub enum LearningRate {
    /// The same rate for every update.
    Constant(f64),
    /// `schedule.at(count)` for the update after `count` others.
    Schedule(Schedule),
}

impl From<f64> for LearningRate {
    fn from(lr: f64) -> Self {
        LearningRate::Constant(lr)
    }
}

impl From<Schedule> for LearningRate {
    fn from(s: Schedule) -> Self {
        LearningRate::Schedule(s)
    }
}

/// `u = -lr · u` (`optax.scale_by_learning_rate`): a constant in the update's dtype, or a
/// schedule with its own int32 `count`, evaluated in float32.
pub struct ScaleByLearningRate(pub LearningRate);

impl Transform for ScaleByLearningRate {
    fn init_leaves(&self, _: &Params) -> State {
        match self.0 {
            LearningRate::Constant(_) => State::new(),
            LearningRate::Schedule(_) => State::from([("count".to_string(), zero_count())]),
        }
    }
    fn update_leaves(&self, updates: Params, mut state: State, _: &Params) -> (Params, State) {
        match &self.0 {
            LearningRate::Constant(lr) => {
                let u = updates.into_iter().map(|(k, u)| (k, &u * -lr)).collect();
                (u, state)
            }
            LearningRate::Schedule(s) => {
                let (count, next) = next_count(&mut state);
                let mult = -s.at(np::astype(&count, DType::F32));
                let u = updates
                    .into_iter()
                    .map(|(k, u)| (k, np::astype(&mult, u.dtype()) * u))
                    .collect();
                (u, State::from([("count".to_string(), next)]))
            }
        }
    }
}

/// `u = u · ‖θ‖ / ‖u‖` per leaf, or `u` when either norm is 0 (`optax.scale_by_trust_ratio`
/// with its defaults: no minimum norm, coefficient 1, no eps), as LAMB uses it.
pub struct ScaleByTrustRatio;

impl Transform for ScaleByTrustRatio {
    fn init_leaves(&self, _: &Params) -> State {
        State::new()
    }
    fn update_leaves(&self, updates: Params, state: State, params: &Params) -> (Params, State) {
        let norm = |x: &Tensor| np::sqrt(&np::sum(&(x * x), np::Axes::All, false));
        let u = updates
            .into_iter()
            .map(|(k, u)| {
                let Some(p) = params.get(&k) else {
                    return (k, u);
                };
                let (pn, un) = (norm(p), norm(&u));
                let zero = np::logical_or(np::equal(&pn, 0.0), np::equal(&un, 0.0));
                let ratio = np::where_(&zero, np::full(&[], 1.0, p.dtype()), &pn / &un);
                (k, &u * &ratio)
            })
            .collect();
        (u, state)
    }
}

/// The int32 `count` entry of `state` (updates so far) and its increment.
pub(crate) fn next_count(state: &mut State) -> (Tensor, Tensor) {
    let c = take(state, "count", Aval::new([], DType::I32));
    let n = increment(&c);
    (c, n)
}
