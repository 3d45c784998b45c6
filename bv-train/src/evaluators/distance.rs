//! big_vision's distillation distances (`evaluators/proj/distill/distance.py`'s `dist`),
//! shared by the distillation trainers (`distance`, `distance_kw`) and the
//! `proj.distill.distance` evaluator (`distances: [{kind, ...}]`, [`DistanceEval`]).

use std::sync::Arc;

use bv_core::numpy as np;
use bv_core::sharding::Mesh;
use bv_core::{jit, DType, Jit, Tensor};
use serde_json::{Map, Value};

use super::{Context, DeviceParams, Evaluator, Outputs};
use crate::config::Eval;
use crate::data::EvalConfig;
use crate::error::TrainError;
use crate::trainers::{Predict, PredictFn};
use bv_core::tree::Params;

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
pub const KINDS: [&str; 6] = [
    "euclidean",
    "l2",
    "hard",
    "kl",
    "logsoftmax_euclidean",
    "agree",
];

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
            _ => return Err(TrainError::unknown(what, "distance", kind, &KINDS)),
        };
        if let Some(k) = kw
            .keys()
            .find(|k| !allowed.contains(&k.as_str()) && *k != "feat_axis")
        {
            return Err(TrainError::setting(
                what,
                format!("distance {kind:?} takes {allowed:?}, not {k:?}"),
            ));
        }
        if kw.get("feat_axis").is_some_and(|v| v.as_i64() != Some(-1)) {
            return Err(TrainError::setting(
                format!("{what}.feat_axis"),
                "only -1 (the last axis) is supported",
            ));
        }
        let num = |key: &str, default: f64| -> Result<f64, TrainError> {
            match kw.get(key) {
                None => Ok(default),
                Some(v) => v.as_f64().ok_or_else(|| {
                    TrainError::setting(
                        format!("{what}.{key}"),
                        format!("expected a number, got {v}"),
                    )
                }),
            }
        };
        Ok(match kind {
            "euclidean" => Distance::Euclidean {
                epsilon: num("epsilon", 1e-12)?,
            },
            "l2" => Distance::L2,
            "hard" => Distance::Hard {
                ls: num("ls", 0.0)?,
            },
            "kl" => {
                let t = num("t", 1.0)?;
                if t <= 0.0 {
                    return Err(TrainError::setting(
                        format!("{what}.t"),
                        format!("the temperature must be positive, got {t}"),
                    ));
                }
                Distance::Kl { t }
            }
            "logsoftmax_euclidean" => Distance::LogsoftmaxEuclidean {
                epsilon: num("epsilon", 1e-12)?,
            },
            _ => {
                let k = num("k", 1.0)?;
                if k < 1.0 || k.fract() != 0.0 {
                    return Err(TrainError::setting(
                        format!("{what}.k"),
                        format!("expected a positive integer, got {k}"),
                    ));
                }
                Distance::Agree { k: k as usize }
            }
        })
    }

    /// A map `{kind, ...kwargs}` as the evaluator's `distances` entries are written.
    pub fn from_entry(what: &str, entry: &Value) -> Result<Distance, TrainError> {
        let map = entry.as_object().ok_or_else(|| {
            TrainError::setting(
                what,
                format!("expected a map like {{kind: \"kl\"}}, got {entry}"),
            )
        })?;
        let kind = map.get("kind").and_then(Value::as_str).ok_or_else(|| {
            TrainError::setting(
                format!("{what}.kind"),
                format!("missing; use one of {KINDS:?}"),
            )
        })?;
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
    let rest = map
        .iter()
        .filter(|(k, _)| *k != "kind")
        .map(|(k, v)| (k.as_str(), v));
    kind.into_iter()
        .chain(rest)
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// The `proj.distill.distance` evaluator: for a (student, teacher) predict function
/// (`pred: "student_prof_fwd"`), every distance of `distances` between their outputs
/// (`what`, default the logits; flattened per example) over the eval split, reported as
/// `<kind=...>/avg`, `/min` and `/max` (big_vision also yields every value as `/all`,
/// which a scalar metrics file cannot hold). The teacher reads the batch feature named
/// after it when the eval pipeline keeps one (its own resolution), else `image`.
pub struct DistanceEval {
    /// `evals.<name>`.
    key: String,
    data: EvalConfig,
    mesh: Mesh,
    names: Vec<String>,
    student: Predict,
    teacher: Predict,
    teacher_key: String,
    fixed: Arc<DeviceParams>,
    outputs: Arc<Outputs>,
    pred_key: String,
    per_example: DistFn,
}

/// The jitted per-example distances: `(student params, teacher params, student image,
/// teacher image) -> [distance per example]`.
type DistFn = Jit<(), (Params, Params, Tensor, Tensor), Vec<Tensor>>;

/// Builds `evals.<name>` of type `proj.distill.distance`.
pub fn build(name: &str, cfg: &Eval, ctx: &Context) -> Result<Box<dyn Evaluator>, TrainError> {
    let (student, teacher) = match ctx.predict_fn(name, cfg)? {
        PredictFn::Pair(s, t) => (s, t),
        PredictFn::Single(_) => {
            return Err(TrainError::setting(
                format!("evals.{name}.pred"),
                format!(
                    "proj.distill.distance compares a (student, teacher) pair such as \
                     \"student_<teacher>_fwd\"; {:?} is one model",
                    cfg.pred.as_deref().unwrap_or_default()
                ),
            ))
        }
    };
    let entries = cfg
        .distances
        .clone()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            TrainError::setting(
                format!("evals.{name}.distances"),
                "give at least one, e.g. [{kind: \"kl\"}]",
            )
        })?;
    let dists = entries
        .iter()
        .enumerate()
        .map(|(i, e)| Distance::from_entry(&format!("evals.{name}.distances[{i}]"), e))
        .collect::<Result<Vec<_>, _>>()?;
    let (what_s, what_t) = cfg
        .what
        .clone()
        .unwrap_or_else(|| ("logits".into(), "logits".into()));
    let outputs = Outputs::new(vec![what_s.clone(), what_t.clone()]);
    let data = ctx.pipeline(name, cfg, cfg.data.as_ref(), cfg.pp_fn.as_deref())?;
    let (ms, mt, out) = (
        student.model.clone(),
        teacher.model.clone(),
        outputs.clone(),
    );
    let per_example = jit(move |(ps, pt, xs, xt): (Params, Params, Tensor, Tensor)| {
        let (ls, os) = super::apply(ms.as_ref(), ps, &xs);
        let (lt, ot) = super::apply(mt.as_ref(), pt, &xt);
        let flat = |t: &Tensor| np::reshape(t, &[t.shape()[0] as isize, -1]);
        let rs = flat(&out.pick(&ls, &os)[&what_s]);
        let rt = flat(&out.pick(&lt, &ot)[&what_t]);
        dists
            .iter()
            .map(|d| np::astype(&d.per_example(&rs, &rt), DType::F32))
            .collect::<Vec<_>>()
    })
    .named(&format!("eval_{name}"))
    .sharded(ctx.mesh.clone(), super::replicated);
    let teacher_key = teacher
        .fixed_prefix
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    Ok(Box::new(DistanceEval {
        key: format!("evals.{name}"),
        data,
        mesh: ctx.mesh.clone(),
        names: entries.iter().map(entry_name).collect(),
        student,
        teacher,
        teacher_key,
        fixed: ctx.fixed.clone(),
        outputs,
        pred_key: format!("evals.{name}.what"),
        per_example,
    }))
}

impl Evaluator for DistanceEval {
    fn run(&mut self, params: &DeviceParams, _step: u64) -> Result<Vec<(String, f64)>, TrainError> {
        let ps = self.student.params(params, &self.fixed);
        let pt = self.teacher.params(params, &self.fixed);
        let mut all: Vec<Vec<f64>> = vec![Vec::new(); self.names.len()];
        for batch in super::batches(&self.data)? {
            let batch = batch?;
            let xs = super::to_device(&batch, "image", &self.mesh)?;
            let xt = match batch.data.contains_key(&self.teacher_key) {
                true => super::to_device(&batch, &self.teacher_key, &self.mesh)?,
                false => xs.clone(),
            };
            let mask = super::to_device(&batch, "_mask", &self.mesh)?.to_vec::<u8>()?;
            let ds = self.per_example.call(&(ps.clone(), pt.clone(), xs, xt))?;
            self.outputs.check(&self.pred_key)?;
            for (acc, d) in all.iter_mut().zip(ds) {
                let d = d.to_vec::<f32>()?;
                acc.extend(
                    d.iter()
                        .zip(&mask)
                        .filter(|(_, m)| **m != 0)
                        .map(|(v, _)| f64::from(*v)),
                );
            }
        }
        let mut out = Vec::new();
        for (name, ds) in self.names.iter().zip(all) {
            if ds.is_empty() {
                return Err(TrainError::EmptySplit {
                    key: self.key.clone(),
                    split: self.data.split.clone(),
                });
            }
            let n = ds.len() as f64;
            out.push((format!("{name}/avg"), ds.iter().sum::<f64>() / n));
            out.push((
                format!("{name}/min"),
                ds.iter().copied().fold(f64::INFINITY, f64::min),
            ));
            out.push((
                format!("{name}/max"),
                ds.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ));
        }
        Ok(out)
    }
}
