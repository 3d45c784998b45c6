//! `big_vision.optax.make`: the optimizer chain of a config, in big_vision's order:
//! clip (non-frozen) → core (non-frozen) → ×lr → lr_mults → +wd·θ → ×schedule per group →
//! frozen = 0 → ×(−1).
//!
//! ```
//! use bv_train::optim::{make, OptimSpec, ScheduleGroups, Transform};
//! let spec: OptimSpec = serde_json::from_str(
//!     r#"{"optax_name": "scale_by_adam", "optax": {"mu_dtype": "bfloat16"}, "lr": 1e-3, "wd": 1e-4}"#,
//! ).unwrap();
//! let groups = ScheduleGroups::new(None, 100, None, None).unwrap();
//! let tx = make(&spec, &groups, ["head/kernel", "head/bias"]).unwrap();
//! let stages: Vec<&str> = tx.stage_names().collect();
//! assert_eq!(stages, ["adam", "lr", "wd_0", "schedule_0", "negate"]);
//! ```

use std::collections::BTreeSet;

use bv_core::DType;
use regex::Regex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::adafactor::ScaleByAdafactor;
use super::adam::ScaleByAdam;
use super::lion::ScaleByLion;
use super::momentum::MomentumHp;
use super::scale::{
    AddDecayedWeights, ClipByGlobalNorm, Identity, Scale, ScaleBySchedule, SetToZero,
};
use super::schedule::{ScheduleError, ScheduleGroups};
use super::transform::{chain, masked, Chain, Mask, Transform};
use crate::config::{Config, Dict, Plan};

/// Optimizer cores `optax_name` can name. As in big_vision, AdamW is `scale_by_adam` with
/// `wd` (decoupled weight decay, added after the learning rate), SGD with momentum is
/// `trace` (or `big_vision.momentum_hp`), plain SGD is `big_vision.sgd`.
pub const OPTIMIZERS: &[&str] = &[
    "scale_by_adam",
    "scale_by_lion",
    "trace",
    "big_vision.momentum_hp",
    "big_vision.scale_by_adafactor",
    "big_vision.sgd",
    "identity",
];

/// The optimizer keys of a config (big_vision's names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSpec {
    pub optax_name: String,
    #[serde(default)]
    pub optax: Dict,
    pub lr: f64,
    pub wd: Option<f64>,
    pub wd_mults: Option<Vec<(String, f64)>>,
    pub lr_mults: Option<Vec<(String, f64)>>,
    pub grad_clip_norm: Option<f64>,
}

impl From<&Config> for OptimSpec {
    fn from(c: &Config) -> OptimSpec {
        OptimSpec {
            optax_name: c.optax_name.clone(),
            optax: c.optax.clone(),
            lr: c.lr,
            wd: c.wd,
            wd_mults: c.wd_mults.clone(),
            lr_mults: c.lr_mults.clone(),
            grad_clip_norm: c.grad_clip_norm,
        }
    }
}

/// An optimizer config that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// `optax_name` is none of bv's cores.
    #[error("optax_name = {name:?} is not one of {}", OPTIMIZERS.join(", "))]
    UnknownOptimizer { name: String },
    /// `config.optax` has a key the core does not take, or a value of the wrong type.
    #[error("optax (for {optimizer}): {msg}")]
    Args { optimizer: String, msg: String },
    /// A regex of `lr_mults` / `wd_mults` does not compile.
    #[error("{key}: bad regex {pattern:?}: {msg}")]
    Regex {
        key: &'static str,
        pattern: String,
        msg: String,
    },
    /// An lr multiplier that is not positive (big_vision asserts `mult > 0`).
    #[error("lr_mults: multiplier {mult} for {pattern:?} is not positive; freeze parameters with a None schedule instead")]
    LrMult { pattern: String, mult: f64 },
    /// A `config.gsam` setting (`key` is `gsam` or `gsam.<setting>`).
    #[error("{key}: {msg}")]
    Gsam { key: String, msg: String },
    /// A parameter in no schedule group.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// Builds big_vision's chain for `spec`, schedule `groups` and the parameter `names`.
///
/// State entries are `<stage>/<field>/<param>`; stages are `clip`, the core (`adam`,
/// `lion`, `momentum`, `adafactor`, `sgd`), `lr`, `lr_mults_<i>`, `wd_<i>`, `schedule_<j>` (one
/// per non-frozen group, each with its own `count`), `frozen`, `negate`; absent when unused.
pub fn make<S: AsRef<str>>(
    spec: &OptimSpec,
    groups: &ScheduleGroups,
    names: impl IntoIterator<Item = S>,
) -> Result<Chain, OptimError> {
    let names: Vec<String> = names.into_iter().map(|s| s.as_ref().to_string()).collect();
    let all_groups: Vec<_> = groups.groups().collect();
    let group_of: Vec<usize> = names
        .iter()
        .map(|n| groups.group_of(n))
        .collect::<Result<_, _>>()?;
    let frozen: BTreeSet<String> = names
        .iter()
        .zip(&group_of)
        .filter(|(_, g)| all_groups[**g].1.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    let trainable: BTreeSet<String> = names
        .iter()
        .filter(|n| !frozen.contains(*n))
        .cloned()
        .collect();
    let mut stages: Vec<(String, Box<dyn Transform>)> = Vec::new();
    if let Some(c) = spec.grad_clip_norm.filter(|c| *c != 0.0) {
        let clip = masked(
            Box::new(ClipByGlobalNorm(c)),
            Mask::names(trainable.clone()),
        );
        stages.push(("clip".into(), Box::new(clip)));
    }
    let (core_name, core) = core(&spec.optax_name, &spec.optax)?;
    stages.push((
        core_name.into(),
        Box::new(masked(core, Mask::names(trainable))),
    ));
    stages.push(("lr".into(), Box::new(Scale(spec.lr))));
    let lr_mults = spec.lr_mults.as_deref().unwrap_or_default();
    if let Some((pattern, mult)) = lr_mults.iter().find(|(_, m)| *m <= 0.0) {
        return Err(OptimError::LrMult {
            pattern: pattern.clone(),
            mult: *mult,
        });
    }
    for (i, (mask, mult)) in first_match_masks("lr_mults", lr_mults, &names)?
        .into_iter()
        .enumerate()
    {
        let stage = masked(Box::new(Scale(mult)), Mask::names(mask));
        stages.push((format!("lr_mults_{i}"), Box::new(stage)));
    }
    if let Some(wd) = spec.wd.filter(|wd| *wd != 0.0) {
        let default = [(".*/kernel$".to_string(), 1.0)];
        let wd_mults = spec.wd_mults.as_deref().unwrap_or(&default);
        for (i, (mask, mult)) in first_match_masks("wd_mults", wd_mults, &names)?
            .into_iter()
            .enumerate()
        {
            let stage = masked(Box::new(AddDecayedWeights(wd * mult)), Mask::names(mask));
            stages.push((format!("wd_{i}"), Box::new(stage)));
        }
    }
    let scheduled = all_groups
        .iter()
        .enumerate()
        .filter_map(|(g, (_, s))| Some((g, (*s)?)));
    for (j, (g, schedule)) in scheduled.enumerate() {
        let mask = names
            .iter()
            .zip(&group_of)
            .filter(|(_, gi)| **gi == g)
            .map(|(n, _)| n.clone())
            .collect();
        let stage = masked(
            Box::new(ScaleBySchedule(schedule.clone())),
            Mask::names(mask),
        );
        stages.push((format!("schedule_{j}"), Box::new(stage)));
    }
    if !frozen.is_empty() {
        stages.push((
            "frozen".into(),
            Box::new(masked(Box::new(SetToZero), Mask::names(frozen))),
        ));
    }
    stages.push(("negate".into(), Box::new(Scale(-1.0))));
    Ok(chain(stages))
}

/// [`make`] for a training config and its resolved [`Plan`] (schedules with the run's
/// length, batch size and data size).
pub fn make_for_config<S: AsRef<str>>(
    config: &Config,
    plan: &Plan,
    names: impl IntoIterator<Item = S>,
) -> Result<Chain, OptimError> {
    make(&OptimSpec::from(config), &plan.schedules, names)
}

/// One mask per pattern: the names whose first matching pattern (a full match) it is.
fn first_match_masks(
    key: &'static str,
    patterns: &[(String, f64)],
    names: &[String],
) -> Result<Vec<(BTreeSet<String>, f64)>, OptimError> {
    let regexes = patterns
        .iter()
        .map(|(p, _)| {
            Regex::new(&format!("^(?:{p})$")).map_err(|e| OptimError::Regex {
                key,
                pattern: p.clone(),
                msg: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut masks: Vec<(BTreeSet<String>, f64)> = patterns
        .iter()
        .map(|(_, m)| (BTreeSet::new(), *m))
        .collect();
    for n in names {
        if let Some(i) = regexes.iter().position(|r| r.is_match(n)) {
            masks[i].0.insert(n.clone());
        }
    }
    Ok(masks)
}

/// A dtype name as a config gives it (`bfloat16`, `jnp.bfloat16`, `float32`, ...).
fn dtype(name: &str) -> Result<DType, String> {
    let short = name.trim_start_matches("jnp.").trim_start_matches("np.");
    DType::ALL
        .into_iter()
        .find(|d| d.name() == short || d.mlir_name() == short)
        .ok_or_else(|| format!("unknown dtype {name:?}; use bfloat16 or float32"))
}

fn args<T: DeserializeOwned>(optimizer: &str, optax: &Dict) -> Result<T, OptimError> {
    let value = serde_json::Value::Object(optax.clone().into_iter().collect());
    serde_json::from_value(value).map_err(|e| OptimError::Args {
        optimizer: optimizer.to_string(),
        msg: e.to_string(),
    })
}

fn dtype_arg(optimizer: &str, name: &str) -> Result<DType, OptimError> {
    dtype(name).map_err(|msg| OptimError::Args {
        optimizer: optimizer.to_string(),
        msg,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdamArgs {
    b1: Option<f64>,
    b2: Option<f64>,
    eps: Option<f64>,
    eps_root: Option<f64>,
    mu_dtype: Option<String>,
    nesterov: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LionArgs {
    b1: Option<f64>,
    b2: Option<f64>,
    mu_dtype: Option<String>,
}

/// `optax.trace`'s arguments (`decay` has no default there).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceArgs {
    decay: f64,
    nesterov: Option<bool>,
    accumulator_dtype: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MomentumArgs {
    momentum: Option<f64>,
    dtype: Option<String>,
    nesterov: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdafactorArgs {
    min_dim_size_to_factor: Option<usize>,
    decay_rate: Option<f64>,
    decay_offset: Option<i64>,
    beta2_cap: Option<f64>,
    clipping_threshold: Option<f64>,
    momentum: Option<f64>,
    dtype_momentum: Option<String>,
    eps: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// The core named `optax_name` with its keyword arguments, and its stage name.
fn core(name: &str, optax: &Dict) -> Result<(&'static str, Box<dyn Transform>), OptimError> {
    Ok(match name {
        "scale_by_adam" => {
            let a: AdamArgs = args(name, optax)?;
            let d = ScaleByAdam::default();
            let core = ScaleByAdam {
                b1: a.b1.unwrap_or(d.b1),
                b2: a.b2.unwrap_or(d.b2),
                eps: a.eps.unwrap_or(d.eps),
                eps_root: a.eps_root.unwrap_or(d.eps_root),
                mu_dtype: a.mu_dtype.map(|s| dtype_arg(name, &s)).transpose()?,
                nesterov: a.nesterov.unwrap_or(d.nesterov),
            };
            ("adam", Box::new(core))
        }
        "scale_by_lion" => {
            let a: LionArgs = args(name, optax)?;
            let d = ScaleByLion::default();
            let core = ScaleByLion {
                b1: a.b1.unwrap_or(d.b1),
                b2: a.b2.unwrap_or(d.b2),
                mu_dtype: a.mu_dtype.map(|s| dtype_arg(name, &s)).transpose()?,
            };
            ("lion", Box::new(core))
        }
        "trace" => {
            let a: TraceArgs = args(name, optax)?;
            let core = MomentumHp {
                momentum: a.decay,
                dtype: a
                    .accumulator_dtype
                    .map(|s| dtype_arg(name, &s))
                    .transpose()?,
                nesterov: a.nesterov.unwrap_or(false),
            };
            ("momentum", Box::new(core))
        }
        "big_vision.momentum_hp" => {
            let a: MomentumArgs = args(name, optax)?;
            let d = MomentumHp::default();
            let core = MomentumHp {
                momentum: a.momentum.unwrap_or(d.momentum),
                dtype: match a.dtype {
                    Some(s) => Some(dtype_arg(name, &s)?),
                    None => d.dtype,
                },
                nesterov: a.nesterov.unwrap_or(d.nesterov),
            };
            ("momentum", Box::new(core))
        }
        "big_vision.scale_by_adafactor" => {
            let a: AdafactorArgs = args(name, optax)?;
            let d = ScaleByAdafactor::default();
            let core = ScaleByAdafactor {
                min_dim_size_to_factor: a
                    .min_dim_size_to_factor
                    .unwrap_or(d.min_dim_size_to_factor),
                decay_rate: a.decay_rate.unwrap_or(d.decay_rate),
                decay_offset: a.decay_offset.unwrap_or(d.decay_offset),
                beta2_cap: a.beta2_cap.unwrap_or(d.beta2_cap),
                clipping_threshold: a.clipping_threshold.filter(|c| *c != 0.0),
                // big_vision: `if momentum` — absent means 0.9, 0 or null means none.
                momentum: if optax.contains_key("momentum") {
                    a.momentum.filter(|m| *m != 0.0)
                } else {
                    d.momentum
                },
                dtype_momentum: a
                    .dtype_momentum
                    .map(|s| dtype_arg(name, &s))
                    .transpose()?
                    .unwrap_or(d.dtype_momentum),
                eps: a.eps.unwrap_or(d.eps),
            };
            ("adafactor", Box::new(core))
        }
        "big_vision.sgd" | "identity" => {
            let _: NoArgs = args(name, optax)?;
            ("sgd", Box::new(Identity))
        }
        other => {
            return Err(OptimError::UnknownOptimizer {
                name: other.to_string(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> OptimSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn bad_configs_are_explained() {
        let groups = ScheduleGroups::new(None, 10, None, None).unwrap();
        let names = ["a/kernel"];
        let e = make(
            &spec(r#"{"optax_name": "adam", "lr": 0.1}"#),
            &groups,
            names,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("not one of scale_by_adam,"), "{e}");
        let e = make(
            &spec(r#"{"optax_name": "scale_by_adam", "optax": {"beta1": 0.9}, "lr": 0.1}"#),
            &groups,
            names,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("unknown field `beta1`"), "{e}");
        let e = make(
            &spec(r#"{"optax_name": "scale_by_adam", "optax": {"mu_dtype": "half"}, "lr": 0.1}"#),
            &groups,
            names,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("unknown dtype \"half\""), "{e}");
        let e = make(
            &spec(r#"{"optax_name": "trace", "optax": {"nesterov": true}, "lr": 0.1}"#),
            &groups,
            names,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("missing field `decay`"), "{e}");
        let e = make(
            &spec(r#"{"optax_name": "scale_by_lion", "optax": {"mode": "smooth"}, "lr": 0.1}"#),
            &groups,
            names,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("unknown field `mode`"), "{e}");
        let e = make(
            &spec(r#"{"optax_name": "big_vision.sgd", "lr": 0.1, "lr_mults": [["a/.*", 0.0]]}"#),
            &groups,
            names,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("not positive"), "{e}");
        let e = make(
            &spec(
                r#"{"optax_name": "big_vision.sgd", "lr": 0.1, "wd": 1, "wd_mults": [["(", 1.0]]}"#,
            ),
            &groups,
            names,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("wd_mults: bad regex"), "{e}");
    }

    #[test]
    fn first_matching_pattern_wins() {
        let names = ["a/kernel".to_string(), "b/kernel".to_string()];
        let pats = [("a/.*".to_string(), 2.0), (".*".to_string(), 3.0)];
        let masks = first_match_masks("lr_mults", &pats, &names).unwrap();
        assert_eq!(masks[0].0, BTreeSet::from(["a/kernel".to_string()]));
        assert_eq!(masks[1].0, BTreeSet::from(["b/kernel".to_string()]));
    }
}
