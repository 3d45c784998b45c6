//! big_vision's learning-rate schedules (`utils.create_learning_rate_schedule`) as plain
//! data with one evaluation, [`Schedule::at`], generic over [`Scalar`]: `f64` on the host
//! (logging `global_schedule`), a traced [`Tensor`] inside the update step.
//!
//! ```
//! use bv_train::optim::schedule::{Schedule, ScheduleSpec};
//! let spec: ScheduleSpec = ron::from_str(
//!     "#![enable(implicit_some)] (decay_type: \"cosine\", warmup_steps: 2)",
//! ).unwrap();
//! let s = Schedule::new(&spec, 8, None, None).unwrap();
//! assert_eq!(s.at(0.0), 0.0);
//! assert_eq!(s.at(1.0), 0.5);
//! ```

use std::ops::{Add, Div, Mul, Sub};

use bv_core::{numpy, Tensor};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::{Lengths, ScheduleConfig, StepsError};

/// A scalar a schedule can be evaluated on: `f64` now; a traced scalar later.
pub trait Scalar:
    Clone + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self>
{
    /// A constant of the same kind as `self`.
    fn constant(&self, v: f64) -> Self;
    /// The smaller of the two.
    fn minimum(&self, other: &Self) -> Self;
    /// The larger of the two.
    fn maximum(&self, other: &Self) -> Self;
    /// Cosine.
    fn cos(&self) -> Self;
    /// Square root.
    fn sqrt(&self) -> Self;
    /// `self` to the power `p`.
    fn powf(&self, p: f64) -> Self;
    /// `then` where `self < other`, else `otherwise` (`jnp.where`).
    fn select_lt(&self, other: &Self, then: Self, otherwise: Self) -> Self;
}

impl Scalar for f64 {
    fn constant(&self, v: f64) -> f64 {
        v
    }
    fn minimum(&self, other: &f64) -> f64 {
        f64::min(*self, *other)
    }
    fn maximum(&self, other: &f64) -> f64 {
        f64::max(*self, *other)
    }
    fn cos(&self) -> f64 {
        f64::cos(*self)
    }
    fn sqrt(&self) -> f64 {
        f64::sqrt(*self)
    }
    fn powf(&self, p: f64) -> f64 {
        f64::powf(*self, p)
    }
    fn select_lt(&self, other: &f64, then: f64, otherwise: f64) -> f64 {
        if self < other {
            then
        } else {
            otherwise
        }
    }
}

/// Inside a traced step: `step` is a float scalar tensor (the optimizer's count converted),
/// constants take its dtype, as big_vision's float32 schedule functions do.
impl Scalar for Tensor {
    fn constant(&self, v: f64) -> Tensor {
        numpy::full(self.shape(), v, self.dtype())
    }
    fn minimum(&self, other: &Tensor) -> Tensor {
        numpy::minimum(self, other)
    }
    fn maximum(&self, other: &Tensor) -> Tensor {
        numpy::maximum(self, other)
    }
    fn cos(&self) -> Tensor {
        numpy::cos(self)
    }
    fn sqrt(&self) -> Tensor {
        numpy::sqrt(self)
    }
    fn powf(&self, p: f64) -> Tensor {
        numpy::power(self, self.constant(p))
    }
    fn select_lt(&self, other: &Tensor, then: Tensor, otherwise: Tensor) -> Tensor {
        numpy::where_(&numpy::less(self, other), then, otherwise)
    }
}

/// One schedule dict of a config, with big_vision's keys and defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// `linear` / `polynomial`, `cosine`, `rsqrt` or `stair` (big_vision's default).
    pub decay_type: Option<String>,
    /// Base multiplier (default 1).
    pub mult: Option<f64>,
    /// Warmup length; at most one of the four.
    pub warmup_steps: Option<f64>,
    pub warmup_epochs: Option<f64>,
    pub warmup_examples: Option<f64>,
    pub warmup_percent: Option<f64>,
    /// Cooldown length at the end; at most one of the four.
    pub cooldown_steps: Option<f64>,
    pub cooldown_epochs: Option<f64>,
    pub cooldown_examples: Option<f64>,
    pub cooldown_percent: Option<f64>,
    /// linear/polynomial: the final value (absolute, not scaled by `mult`; default 0).
    pub end: Option<f64>,
    /// Same as `end` (read when `end` is absent).
    pub linear_end: Option<f64>,
    /// polynomial: the exponent (default 1).
    pub power: Option<f64>,
    /// rsqrt: the timescale (default 10000).
    pub timescale: Option<f64>,
    /// rsqrt: the shift (default 0).
    pub shift: Option<f64>,
    /// stair: the steps at which the multiplier changes.
    pub steps: Option<Vec<f64>>,
    /// stair: the multipliers from each of `steps` on.
    pub mults: Option<Vec<f64>>,
    /// Multiply by batch_size / 256.
    pub scale_with_batchsize: Option<bool>,
}

/// The shape of the decay between warmup and cooldown.
#[derive(Clone, Debug, PartialEq)]
pub enum Decay {
    /// `end + (base - end) (1 - progress)^power`.
    Polynomial { end: f64, power: f64 },
    /// `base · ½ (1 + cos(π progress))`.
    Cosine,
    /// `base / √(1 + (t + shift - warmup) / timescale)` after warmup, constant before.
    Rsqrt { timescale: f64, shift: f64 },
    /// `base · [1, *mults][#{s in steps: s < t + 1}]`.
    Stair { steps: Vec<f64>, mults: Vec<f64> },
}

/// A resolved schedule: every length is a step count.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub total_steps: u64,
    pub base: f64,
    pub decay: Decay,
    pub warmup_steps: u64,
    pub cooldown_steps: u64,
}

/// A schedule dict that cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// `decay_type` is none of big_vision's.
    #[error("schedule: unknown decay_type {0:?}; use linear, polynomial, cosine, rsqrt or stair")]
    DecayType(String),
    /// A warmup or cooldown length is ambiguous or cannot be converted to steps.
    #[error("schedule: {0}")]
    Steps(#[from] StepsError),
    /// big_vision's assertion `warmup_steps < total_steps`.
    #[error("schedule: warmup of {warmup} steps is not shorter than the run of {total} steps; shorten warmup_* or lengthen total_*")]
    WarmupTooLong { warmup: u64, total: u64 },
    /// stair: `steps` and `mults` differ in length.
    #[error("schedule: stair has {steps} steps but {mults} mults; give one mult per step")]
    Stair { steps: usize, mults: usize },
    /// A group's regex does not compile.
    #[error("schedule: bad regex {pattern:?}: {msg}")]
    Regex { pattern: String, msg: String },
    /// A group's schedule dict is wrong.
    #[error("schedule group {pattern:?}: {inner}")]
    Group {
        pattern: String,
        inner: Box<ScheduleError>,
    },
    /// A parameter matches none of the groups; big_vision requires every one covered.
    #[error("schedule: parameter {0:?} matches no schedule pattern; add a catch-all (\".*\", ...) group")]
    Unmatched(String),
    /// scale_with_batchsize without a batch size.
    #[error("schedule: scale_with_batchsize needs the batch size")]
    NoBatchSize,
}

impl Schedule {
    /// Resolves a schedule dict for a run of `total_steps`, as
    /// `create_learning_rate_schedule(total_steps, batch_size, data_size, **spec)` does.
    pub fn new(
        spec: &ScheduleSpec,
        total_steps: u64,
        batch_size: Option<u64>,
        data_size: Option<u64>,
    ) -> Result<Schedule, ScheduleError> {
        let length = |prefix, steps, epochs, examples, percent| {
            Lengths {
                prefix,
                steps,
                epochs,
                examples,
                percent,
            }
            .resolve(batch_size, data_size, Some(total_steps))
        };
        let warmup = length(
            "warmup",
            spec.warmup_steps,
            spec.warmup_epochs,
            spec.warmup_examples,
            spec.warmup_percent,
        )?
        .unwrap_or(0);
        let cooldown = length(
            "cooldown",
            spec.cooldown_steps,
            spec.cooldown_epochs,
            spec.cooldown_examples,
            spec.cooldown_percent,
        )?
        .unwrap_or(0);
        if total_steps > 1 && warmup >= total_steps {
            return Err(ScheduleError::WarmupTooLong {
                warmup,
                total: total_steps,
            });
        }
        let mut base = spec.mult.unwrap_or(1.0);
        if spec.scale_with_batchsize == Some(true) {
            base *= batch_size.ok_or(ScheduleError::NoBatchSize)? as f64 / 256.0;
        }
        let decay = match spec.decay_type.as_deref().unwrap_or("stair") {
            "linear" | "polynomial" => Decay::Polynomial {
                end: spec.end.or(spec.linear_end).unwrap_or(0.0),
                power: spec.power.unwrap_or(1.0),
            },
            "cosine" => Decay::Cosine,
            "rsqrt" => Decay::Rsqrt {
                timescale: spec.timescale.unwrap_or(10_000.0),
                shift: spec.shift.unwrap_or(0.0),
            },
            "stair" => {
                let steps = spec.steps.clone().unwrap_or_default();
                let mults = spec.mults.clone().unwrap_or_default();
                if steps.len() != mults.len() {
                    return Err(ScheduleError::Stair {
                        steps: steps.len(),
                        mults: mults.len(),
                    });
                }
                Decay::Stair { steps, mults }
            }
            other => return Err(ScheduleError::DecayType(other.to_string())),
        };
        Ok(Schedule {
            total_steps,
            base,
            decay,
            warmup_steps: warmup,
            cooldown_steps: cooldown,
        })
    }

    /// The multiplier for update number `step` (0-based: the first update uses `at(0)`).
    pub fn at<S: Scalar>(&self, step: S) -> S {
        let c = |v: f64| step.constant(v);
        let warmup = self.warmup_steps as f64;
        let total = self.total_steps as f64;
        let progress = ((step.clone() - c(warmup)) / c(total - warmup))
            .maximum(&c(0.0))
            .minimum(&c(1.0));
        let base = c(self.base);
        let mut lr = match &self.decay {
            Decay::Polynomial { end, power } => {
                c(*end) + (base - c(*end)) * (c(1.0) - progress).powf(*power)
            }
            Decay::Cosine => base * c(0.5) * (c(1.0) + (c(std::f64::consts::PI) * progress).cos()),
            Decay::Rsqrt { timescale, shift } => c(warmup).select_lt(
                &step,
                base.clone()
                    / (c(1.0) + (step.clone() + c(*shift) - c(warmup)) / c(*timescale)).sqrt(),
                base / c(1.0 + shift / timescale).sqrt(),
            ),
            Decay::Stair { steps, mults } => {
                let mut m = c(1.0);
                for (s, mult) in steps.iter().zip(mults) {
                    m = c(*s).select_lt(&(step.clone() + c(1.0)), c(*mult), m);
                }
                base * m
            }
        };
        if self.warmup_steps > 0 {
            lr = lr * (step.clone() / c(warmup)).minimum(&c(1.0));
        }
        if self.cooldown_steps > 0 {
            lr = lr * ((c(total) - step.clone()) / c(self.cooldown_steps as f64)).minimum(&c(1.0));
        }
        lr
    }
}

/// Parameter groups, each with its own schedule or frozen (`None`); a parameter belongs to
/// the first group whose regex matches its whole `/`-joined name.
#[derive(Clone, Debug)]
pub struct ScheduleGroups {
    groups: Vec<(String, Regex, Option<Schedule>)>,
}

impl ScheduleGroups {
    /// Resolves `config.schedule` (absent = constant 1 for every parameter).
    pub fn new(
        config: Option<&ScheduleConfig>,
        total_steps: u64,
        batch_size: Option<u64>,
        data_size: Option<u64>,
    ) -> Result<ScheduleGroups, ScheduleError> {
        let list = match config {
            None => vec![(".*".to_string(), Some(ScheduleSpec::default()))],
            Some(ScheduleConfig::One(spec)) => vec![(".*".to_string(), Some((**spec).clone()))],
            Some(ScheduleConfig::Groups(list)) => list.clone(),
        };
        let groups = list
            .into_iter()
            .map(|(pattern, spec)| {
                let regex =
                    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| ScheduleError::Regex {
                        pattern: pattern.clone(),
                        msg: e.to_string(),
                    })?;
                let schedule = spec
                    .map(|s| Schedule::new(&s, total_steps, batch_size, data_size))
                    .transpose()
                    .map_err(|e| ScheduleError::Group {
                        pattern: pattern.clone(),
                        inner: Box::new(e),
                    })?;
                Ok((pattern, regex, schedule))
            })
            .collect::<Result<_, ScheduleError>>()?;
        Ok(ScheduleGroups { groups })
    }

    /// `(regex, schedule or None)` for every group, in config order.
    pub fn groups(&self) -> impl Iterator<Item = (&str, Option<&Schedule>)> {
        self.groups.iter().map(|(p, _, s)| (p.as_str(), s.as_ref()))
    }

    /// The index of the group of parameter `name`; an error if no pattern matches it.
    pub fn group_of(&self, name: &str) -> Result<usize, ScheduleError> {
        self.groups
            .iter()
            .position(|(_, r, _)| r.is_match(name))
            .ok_or_else(|| ScheduleError::Unmatched(name.to_string()))
    }

    /// The values train.py logs at `step`: `global_schedule`, `global_schedule1`, ... for
    /// each non-frozen group, evaluated at `step - 1` (the multiplier of that update).
    pub fn logged(&self, step: u64) -> Vec<(String, f64)> {
        self.groups
            .iter()
            .filter_map(|(_, _, s)| s.as_ref())
            .enumerate()
            .map(|(i, s)| {
                let name = if i == 0 {
                    "global_schedule".to_string()
                } else {
                    format!("global_schedule{i}")
                };
                (name, s.at(step.saturating_sub(1) as f64))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> ScheduleSpec {
        crate::config::ron_options().from_str(text).unwrap()
    }

    /// Values derived by hand from the formulas of spec §5.2.
    #[test]
    fn hand_derived_values() {
        let s = Schedule::new(
            &spec("(decay_type: \"linear\", linear_end: 0.1)"),
            10,
            None,
            None,
        )
        .unwrap();
        assert!((s.at(5.0) - 0.55).abs() < 1e-15);
        assert_eq!(s.at(20.0), 0.1);
        let s = Schedule::new(
            &spec("(decay_type: \"polynomial\", power: 2)"),
            10,
            None,
            None,
        )
        .unwrap();
        assert!((s.at(5.0) - 0.25).abs() < 1e-15);
        let s = Schedule::new(&spec("(decay_type: \"rsqrt\")"), 100_000, None, None).unwrap();
        assert!((s.at(30_000.0) - 0.5).abs() < 1e-15);
        let s = Schedule::new(
            &spec("(mult: 2, scale_with_batchsize: true)"),
            10,
            Some(512),
            None,
        )
        .unwrap();
        assert_eq!(s.at(3.0), 4.0);
        let s = Schedule::new(
            &spec("(decay_type: \"cosine\", warmup_epochs: 1)"),
            100,
            Some(10),
            Some(250),
        )
        .unwrap();
        assert_eq!(s.warmup_steps, 25);
        assert_eq!(s.at(5.0), 0.2);
    }

    #[test]
    fn bad_specs_are_explained() {
        let e = Schedule::new(&spec("(warmup_steps: 10)"), 10, None, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "schedule: warmup of 10 steps is not shorter than the run of 10 steps; \
             shorten warmup_* or lengthen total_*"
        );
        let e = Schedule::new(&spec("(decay_type: \"cosin\")"), 10, None, None).unwrap_err();
        assert!(
            e.to_string().contains("unknown decay_type \"cosin\""),
            "{e}"
        );
        let e = Schedule::new(&spec("(steps: [1, 2], mults: [0.1])"), 10, None, None).unwrap_err();
        assert!(e.to_string().contains("2 steps but 1 mults"), "{e}");
        let e = Schedule::new(
            &spec("(warmup_steps: 1, warmup_percent: 0.1)"),
            10,
            None,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("warmup_steps"), "{e}");
        assert!(e.to_string().contains("warmup_percent"), "{e}");
    }
}
