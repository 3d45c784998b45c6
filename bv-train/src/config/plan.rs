//! The `Plan`: a config resolved against the dataset size, every length a step count and
//! every name checked, before anything touches the workdir.

use super::error::closest;
use super::steps::{itstime, Lengths, StepsError};
use super::Config;
use crate::optim::schedule::{ScheduleError, ScheduleGroups};

/// Losses train.py accepts.
const LOSSES: &[&str] = &["softmax_xent", "sigmoid_xent"];
/// Optimizer cores of big_vision's chain.
const OPTIMIZERS: &[&str] = &[
    "scale_by_adam",
    "big_vision.momentum_hp",
    "big_vision.scale_by_adafactor",
    "big_vision.sgd",
    "identity",
];

/// A config that parses but does not describe a run.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No run length: set one of total_steps, total_epochs, total_examples.
    #[error("the run has no length; set one of total_steps, total_epochs, total_examples")]
    NoLength,
    /// The length resolves to zero steps; `bv-train eval` evaluates without training.
    #[error("the run has 0 steps (total_steps, total_epochs or total_examples resolves to 0); give a positive length, or evaluate a checkpoint without training with `bv-train eval`")]
    NoSteps,
    /// A length cannot be turned into steps.
    #[error(transparent)]
    Steps(#[from] StepsError),
    /// The schedule cannot be resolved.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A name (loss, optimizer, model, evaluator type) bv does not know.
    #[error("{key} = {value:?} is not one of {}{}", valid.join(", "), suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default())]
    UnknownName {
        key: String,
        value: String,
        valid: Vec<&'static str>,
        suggestion: Option<String>,
    },
    /// The global batch cannot be split evenly over the devices.
    #[error("batch size {batch_size} is not divisible by {devices} devices; use a multiple of {devices}")]
    BatchSize { batch_size: u64, devices: u64 },
    /// Some other value is out of range.
    #[error("{key}: {msg}")]
    Invalid { key: String, msg: String },
}

/// One evaluator's cadence.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalPlan {
    /// Its name in `config.evals`.
    pub name: String,
    /// Run every so many steps (and at the end); `None` = only before and after training.
    pub log_steps: Option<u64>,
    /// Skip the run before training.
    pub skip_first: bool,
    /// Metric name prefix (`<name>/` by default).
    pub prefix: String,
}

impl EvalPlan {
    /// Whether the evaluator runs after `step` (train.py: `itstime(first=False, last=True)`).
    pub fn due(&self, step: u64, total_steps: u64) -> bool {
        itstime(step, self.log_steps, total_steps, false, true)
    }
}

/// A config resolved into step counts (spec §1.7, §5.2).
#[derive(Clone, Debug)]
pub struct Plan {
    /// Steps of the whole run.
    pub total_steps: u64,
    /// Global batch size.
    pub batch_size: u64,
    /// Examples in the training split (all hosts).
    pub data_size: u64,
    /// Log training metrics every so many steps.
    pub log_training_steps: Option<u64>,
    /// Write a checkpoint every so many steps.
    pub ckpt_steps: Option<u64>,
    /// Keep a checkpoint every so many steps (default: the last when ckpt_steps is set).
    pub keep_ckpt_steps: Option<u64>,
    /// Learning-rate schedules by parameter group.
    pub schedules: ScheduleGroups,
    /// Evaluators in name order.
    pub evals: Vec<EvalPlan>,
}

fn known(key: &str, value: &str, valid: &[&'static str]) -> Result<(), PlanError> {
    if valid.contains(&value) {
        return Ok(());
    }
    Err(PlanError::UnknownName {
        key: key.to_string(),
        value: value.to_string(),
        valid: valid.to_vec(),
        suggestion: closest(value, valid.iter().copied()),
    })
}

impl Plan {
    /// Resolves `config` for a training split of `data_size` examples.
    pub fn new(config: &Config, data_size: u64) -> Result<Plan, PlanError> {
        config.validate()?;
        let bs = config.input.batch_size;
        known(
            "loss",
            config.loss.as_deref().unwrap_or("sigmoid_xent"),
            LOSSES,
        )?;
        known("optax_name", &config.optax_name, OPTIMIZERS)?;
        match &config.student_name {
            Some(student) if crate::trainers::is_distill(config) => {
                known("student_name", student, &bv_nn::models::MODEL_NAMES)?
            }
            _ => known(
                "model_name",
                &config.model_name,
                &bv_nn::models::MODEL_NAMES,
            )?,
        }
        if let Some(t) = &config.trainer {
            known("trainer", t, &crate::trainers::NAMES)?;
        }
        let total = Lengths {
            prefix: "total",
            steps: config.total_steps,
            epochs: config.total_epochs,
            examples: config.total_examples,
            percent: None,
        }
        .resolve(Some(bs), Some(data_size), None)?
        .ok_or(PlanError::NoLength)?;
        if total == 0 {
            return Err(PlanError::NoSteps);
        }
        let length = |prefix, steps, epochs, examples, percent| {
            Lengths {
                prefix,
                steps,
                epochs,
                examples,
                percent,
            }
            .resolve(Some(bs), Some(data_size), Some(total))
        };
        let c = config;
        let log_training_steps = length(
            "log_training",
            c.log_training_steps,
            c.log_training_epochs,
            c.log_training_examples,
            c.log_training_percent,
        )?;
        let ckpt_steps = length(
            "ckpt",
            c.ckpt_steps,
            c.ckpt_epochs,
            c.ckpt_examples,
            c.ckpt_percent,
        )?;
        let keep_ckpt_steps = length(
            "keep_ckpt",
            c.keep_ckpt_steps,
            c.keep_ckpt_epochs,
            c.keep_ckpt_examples,
            c.keep_ckpt_percent,
        )?
        .or(ckpt_steps.map(|_| total));
        let schedules = ScheduleGroups::new(c.schedule.as_ref(), total, Some(bs), Some(data_size))?;
        let mut evals = Vec::new();
        for (name, e) in &c.evals {
            known(
                &format!("evals.{name}.type"),
                &e.kind,
                &crate::evaluators::type_names(),
            )?;
            crate::evaluators::check_keys(name, e)
                .map_err(|(key, msg)| PlanError::Invalid { key, msg })?;
            let log_steps = length(
                "log",
                e.log_steps,
                e.log_epochs,
                e.log_examples,
                e.log_percent,
            )
            .map_err(|err| PlanError::Invalid {
                key: format!("evals.{name}"),
                msg: err.to_string(),
            })?;
            evals.push(EvalPlan {
                name: name.clone(),
                log_steps,
                skip_first: e.skip_first.unwrap_or(false),
                prefix: e.prefix.clone().unwrap_or_else(|| format!("{name}/")),
            });
        }
        Ok(Plan {
            total_steps: total,
            batch_size: bs,
            data_size,
            log_training_steps,
            ckpt_steps,
            keep_ckpt_steps,
            schedules,
            evals,
        })
    }

    /// Whether training metrics are logged at `step`.
    pub fn log_due(&self, step: u64) -> bool {
        itstime(step, self.log_training_steps, self.total_steps, true, true)
    }

    /// Whether a checkpoint is written after `step`: `None` if not, `Some(keep)` if so,
    /// where a kept one is named without the `-tmp` suffix and never rotated away.
    pub fn checkpoint_due(&self, step: u64) -> Option<bool> {
        let keep = itstime(step, self.keep_ckpt_steps, self.total_steps, false, true);
        (keep || itstime(step, self.ckpt_steps, self.total_steps, true, true)).then_some(keep)
    }

    /// Epochs the run covers (`total_steps · batch_size / data_size`), for logging.
    pub fn epochs(&self) -> f64 {
        self.total_steps as f64 * self.batch_size as f64 / self.data_size as f64
    }
}

/// Checks that the global batch splits evenly over `devices` (train.py's assertion).
pub fn check_batch_divisible(batch_size: u64, devices: u64) -> Result<(), PlanError> {
    if devices == 0 || !batch_size.is_multiple_of(devices) {
        return Err(PlanError::BatchSize {
            batch_size,
            devices,
        });
    }
    Ok(())
}
