//! big_vision's distillation distances (`evaluators/proj/distill/distance.py`'s `dist`),
//! shared by the distillation trainers (`distance`, `distance_kw`) and the
//! `proj.distill.distance` evaluator (`distances: [{kind, ...}]`).

use bv_core::numpy as np;
use bv_core::{DType, Tensor};
use serde_json::{Map, Value};

use crate::train::TrainError;

/// One distance between student and teacher outputs, per example (the feature axis is the
/// last).
#[derive(Clone, Debug, PartialEq)]
pub enum Distance {
    /// `sqrt(Σ (s − t)² + epsilon)`.
    Euclidean {
        /// Added under the root.
        epsilon: f64,
    },
    /// `Σ (s − t)²`.
    L2,
    /// Softmax cross-entropy (as a KL) against the teacher's arg-max, label-smoothed by
    /// `ls` over the other classes.
    Hard {
        /// Label smoothing.
        ls: f64,
    },
    /// `t² · KL(softmax(teacher / t) ‖ softmax(student / t))`.
    Kl {
        /// Temperature.
        t: f64,
    },
    /// `sqrt(Σ (log_softmax(s) − log_softmax(t))² + epsilon)`.
    LogsoftmaxEuclidean {
        /// Added under the root.
        epsilon: f64,
    },
    /// 1 where the teacher's arg-max is among the student's top `k`, else 0.
    Agree {
        /// How many of the student's top classes count.
        k: usize,
    },
}

/// The `kind`s big_vision's `dist` takes.
pub const KINDS: [&str; 6] = ["euclidean", "l2", "hard", "kl", "logsoftmax_euclidean", "agree"];

impl Distance {
    /// big_vision's `dist(kind=..., **kw)` from `kind` and its keyword arguments
    /// (`epsilon`, `t`, `ls`, `k`; others are errors, as Python's would be). `what` names
    /// the config key in errors.
    pub fn new(what: &str, kind: &str, kw: &Map<String, Value>) -> Result<Distance, TrainError> {
        let allowed: &[&str] = match kind {
            "euclidean" | "logsoftmax_euclidean" => &["epsilon"],
            "l2" => &[],
            "hard" => &["ls"],
            "kl" => &["t"],
            "agree" => &["k"],
            _ => {
                return Err(format!("{what}: unknown distance {kind:?}; use one of {KINDS:?}").into())
            }
        };
        if let Some(k) = kw.keys().find(|k| !allowed.contains(&k.as_str()) && *k != "feat_axis") {
            return Err(format!("{what}: distance {kind:?} takes {allowed:?}, not {k:?}").into());
        }
        if kw.get("feat_axis").is_some_and(|v| v.as_i64() != Some(-1)) {
            return Err(format!("{what}.feat_axis: only -1 (the last axis) is supported").into());
        }
        let num = |key: &str, default: f64| -> Result<f64, TrainError> {
            match kw.get(key) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| format!("{what}.{key}: expected a number, got {v}").into()),
            }
        };
        Ok(match kind {
            "euclidean" => Distance::Euclidean {
                epsilon: num("epsilon", 1e-12)?,
            },
            "l2" => Distance::L2,
            "hard" => Distance::Hard { ls: num("ls", 0.0)? },
            "kl" => {
                let t = num("t", 1.0)?;
                if t <= 0.0 {
                    return Err(format!("{what}.t: the temperature must be positive, got {t}").into());
                }
                Distance::Kl { t }
            }
            "logsoftmax_euclidean" => Distance::LogsoftmaxEuclidean {
                epsilon: num("epsilon", 1e-12)?,
            },
            _ => {
                let k = num("k", 1.0)?;
                if k < 1.0 || k.fract() != 0.0 {
                    return Err(format!("{what}.k: expected a positive integer, got {k}").into());
                }
                Distance::Agree { k: k as usize }
            }
        })
    }

    /// A map `{kind, ...kwargs}` as the evaluator's `distances` entries are written.
    pub fn from_entry(what: &str, entry: &Value) -> Result<Distance, TrainError> {
        let map = entry
            .as_object()
            .ok_or_else(|| format!("{what}: expected a map like {{kind: \"kl\"}}, got {entry}"))?;
        let kind = map
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{what}.kind: missing; use one of {KINDS:?}"))?;
        let mut kw = map.clone();
        kw.remove("kind");
        Distance::new(what, kind, &kw)
    }

    /// The distance per example of `student` and `teacher` (`[batch, features]` each):
    /// float32 `[batch]`, int32 for `agree`.
    pub fn per_example(&self, student: &Tensor, teacher: &Tensor) -> Tensor {
        let sum = |x: &Tensor| np::sum(x, -1, false);
        match *self {
            Distance::Euclidean { epsilon } => {
                let d = student - teacher;
                np::sqrt(&(sum(&(&d * &d)) + epsilon))
            }
            Distance::L2 => {
                let d = student - teacher;
                sum(&(&d * &d))
            }
            Distance::Hard { ls } => {
                let classes = teacher.shape()[teacher.rank() - 1];
                let mut pl = np::one_hot(&np::argmax(teacher, -1), classes, DType::F32);
                if ls != 0.0 {
                    pl = (1.0 - ls) * &pl + (ls / (classes as f64 - 1.0)) * (1.0 - &pl);
                }
                kl_xent(student, &pl)
            }
            Distance::Kl { t } => {
                let p = np::softmax(&(teacher / t), -1);
                (t * t) * kl_xent(&(student / t), &p)
            }
            Distance::LogsoftmaxEuclidean { epsilon } => {
                let d = np::log_softmax(student, -1) - np::log_softmax(teacher, -1);
                np::sqrt(&(sum(&(&d * &d)) + epsilon))
            }
            Distance::Agree { k } => {
                let (_, top_s) = np::top_k(student, k);
                let (_, top_t) = np::top_k(teacher, 1);
                let hit = np::equal(&top_s, &top_t);
                np::sum(&np::astype(&hit, DType::I32), -1, false)
            }
        }
    }
}

/// big_vision's `softmax_xent(logits, labels, reduction=False, kl=True)`:
/// `−Σ y·log_softmax(z) + Σ y·log(max(y, 1e-8))`.
fn kl_xent(logits: &Tensor, labels: &Tensor) -> Tensor {
    let nll = -np::sum(&(labels * np::log_softmax(logits, -1)), -1, false);
    nll + np::sum(&(labels * np::log(&np::maximum(labels, 1e-8))), -1, false)
}

/// The metric name big_vision gives a `distances` entry: its keys and values joined as
/// `kind=agree_k=5`, `kind` first (as big_vision's configs write it), then the others in
/// name order (a config map keeps no order of its own).
pub fn entry_name(entry: &Value) -> String {
    let map = entry.as_object().cloned().unwrap_or_default();
    let kind = map.get("kind").map(|v| ("kind", v));
    let rest = map.iter().filter(|(k, _)| *k != "kind").map(|(k, v)| (k.as_str(), v));
    kind.into_iter()
        .chain(rest)
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join("_")
}
