//! big_vision's distillation trainers: `trainers/proj/distill/distill.py` ("Knowledge
//! distillation: A good teacher is patient and consistent", function matching) and its
//! FlexiViT fork `trainers/proj/flexi/distill.py`. A student (`student_name`, `student`,
//! `student_init`) learns to match the logits of fixed teachers (`teachers.<name>`) under
//! `distance` (`distance_kw`), on the same mixed-up images for teacher and student. A model
//! reads the batch feature named after it when there is one (a teacher's own resolution),
//! else `image`. Teachers are loaded once, before anything is written, and are neither
//! trained nor checkpointed; their logits are computed inside the step without gradients.
//!
//! Measurements as big_vision: `distill_loss` (= `training_loss`), `distill_loss_<t>`,
//! `entropy_<model>`, `task_loss_<model>` (softmax cross-entropy against `labels`), `l2_*`.
//! Each step's key is `fold_in(rng_loop, step)` (bv's loop; big_vision threads a key
//! through its old pmap loop); it is then split as distill.py splits it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bv_core::autodiff::{stop_gradient, value_and_grad_aux};
use bv_core::io::HostArray;
use bv_core::numpy as np;
use bv_core::random::{self, Key};
use bv_core::{jit, DType, Spec, Tensor};
use bv_nn::models::ensemble::Ensemble;
use bv_nn::models::proj::flexi::vit::FlexiVit;
use bv_nn::models::{self, ImageModel};
use bv_nn::Stream;

use super::flexi::Sampler;
use super::{
    apply_gradients, dont_load_in, mixup, Measurements, Predict, PredictFn, StepInputs, TrainState,
    Trainer,
};
use crate::config::{Config, Teacher};
use crate::data::Batch;
use crate::error::TrainError;
use crate::evaluators::distance::Distance;
use crate::losses;
use crate::optim::Transform;
use crate::train::{batch_spec, init_params};
use bv_core::tree::Params;

/// One teacher: its name, model and config entry.
struct TeacherModel {
    name: String,
    model: Arc<dyn ImageModel>,
    spec: Teacher,
    image: Spec,
}

/// The student's FlexiViT and its sampled grid sizes (`proj.flexi.distill`).
struct Flexi {
    vit: FlexiVit,
    sampler: Sampler,
}

/// The distillation trainer.
pub struct Distill {
    student: Arc<dyn ImageModel>,
    student_image: Spec,
    flexi: Option<Flexi>,
    teachers: Vec<TeacherModel>,
    keys: Vec<String>,
    distance: Distance,
    mixup: Option<(f64, usize)>,
    head_bias: Option<f64>,
}

/// `Model(num_classes=config.num_classes, **kw)` of module `name`.
fn build_model(
    what: &str,
    name: &str,
    kw: &crate::config::Dict,
    config: &Config,
) -> Result<Arc<dyn ImageModel>, TrainError> {
    let mut v = serde_json::Value::Object(kw.clone().into_iter().collect());
    if let Some(n) = config.num_classes {
        v["num_classes"] = n.into();
    }
    models::build(name, &v).map_err(|e| TrainError::at(what, e))
}

/// The student of a distillation config (`student_name` with `student`).
pub fn student(config: &Config) -> Result<Arc<dyn ImageModel>, TrainError> {
    let name = config.student_name.as_deref().ok_or_else(|| {
        TrainError::setting(
            "student_name",
            "a distillation config names the student's model module",
        )
    })?;
    build_model(
        "student",
        name,
        &config.student.clone().unwrap_or_default(),
        config,
    )
}

/// The batch feature model `name` reads: its own key when the batch has one, else `image`
/// (big_vision's `getfirst(data, name, "image")`).
fn image_key<'a>(batch: &Batch, name: &'a str) -> &'a str {
    if batch.data.contains_key(name) {
        name
    } else {
        "image"
    }
}

impl Distill {
    /// The student, teachers, distance and mixup of `config`; input shapes from `probe`.
    pub fn new(config: &Config, probe: &Batch, devices: usize) -> Result<Distill, TrainError> {
        let flexi_trainer = config.trainer.as_deref() == Some("proj.flexi.distill");
        let teachers_cfg = config
            .teachers
            .as_ref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                TrainError::setting(
                    "teachers",
                    "a distillation config needs at least one teacher",
                )
            })?;
        let student_model = student(config)?;
        let student_image = batch_spec(probe, image_key(probe, "student"))?;
        let flexi = match (flexi_trainer, &config.student_name) {
            (true, Some(n)) if n == "proj.flexi.vit" => {
                let kw = serde_json::Value::Object(
                    config
                        .student
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                );
                let vit = FlexiVit::from_config(&kw).map_err(|e| TrainError::at("student", e))?;
                let sampler = Sampler::new(
                    config,
                    (student_image.shape[1], student_image.shape[2]),
                    &vit,
                )?;
                Some(Flexi { vit, sampler })
            }
            (true, _) => {
                return Err(TrainError::setting(
                    "student_name",
                    "the proj.flexi.distill trainer distills into \"proj.flexi.vit\"",
                ))
            }
            _ => None,
        };
        let mut teachers = Vec::new();
        for (name, spec) in teachers_cfg {
            if name == "student" || name.contains('/') {
                return Err(TrainError::setting(
                    format!("teachers.{name}"),
                    "a teacher needs another name",
                ));
            }
            let what = format!("teachers.{name}");
            teachers.push(TeacherModel {
                name: name.clone(),
                model: build_model(&what, &spec.name, &spec.model, config)?,
                spec: spec.clone(),
                image: batch_spec(probe, image_key(probe, name))?,
            });
        }
        let keys: Vec<String> = std::iter::once("student")
            .chain(teachers.iter().map(|t| t.name.as_str()))
            .filter(|k| probe.data.contains_key(*k))
            .map(String::from)
            .collect();
        let kw = config.distance_kw.clone().unwrap_or_default();
        let distance = Distance::new(
            "distance",
            config.distance.as_deref().unwrap_or("kl"),
            &kw.into_iter().collect(),
        )?;
        Ok(Distill {
            student: student_model,
            student_image,
            teachers,
            keys,
            distance,
            // distill.py is one jit over the global batch (roll over all of it); the FlexiViT
            // fork is a pmap (roll within each device's shard).
            mixup: config
                .mixup
                .as_ref()
                .filter(|m| m.p > 0.0)
                .map(|m| (m.p, if flexi.is_some() { devices } else { 1 })),
            head_bias: if flexi.is_some() {
                None
            } else {
                config.init_head_bias
            },
            flexi,
        })
    }

    /// The student of variant `v` (its grid size for `proj.flexi.distill`).
    fn student_at(&self, v: usize) -> Arc<dyn ImageModel> {
        match &self.flexi {
            Some(f) => Arc::new(f.vit.at_seqhw(f.sampler.values[v])),
            None => self.student.clone(),
        }
    }

    /// The distillation loss of the student parameters `p` and its measurements, on batch
    /// `data` (after mixup) with teacher logits `teacher_logits` and model keys `keys`
    /// (student first): distill.py's `loss_fn`.
    pub fn loss(
        &self,
        variant: usize,
        p: Params,
        data: &BTreeMap<String, Tensor>,
        teacher_logits: &[Tensor],
        student_key: &Tensor,
    ) -> (Tensor, Measurements) {
        let student = self.student_at(variant);
        let x = &data[image_key_of(data, "student")];
        let rngs = [(Stream::DROPOUT, student_key.clone())];
        let (logits, _) = student.apply(&p, x, true, &rngs);
        let mean = |t: &Tensor| np::mean(t, np::Axes::All, false);
        let mut m = Measurements::new();
        let names = std::iter::once("student").chain(self.teachers.iter().map(|t| t.name.as_str()));
        for (name, lg) in names.zip(std::iter::once(&logits).chain(teacher_logits)) {
            let entropy = -np::sum(&(np::log_softmax(lg, -1) * np::softmax(lg, -1)), -1, false);
            m.insert(format!("entropy_{name}"), mean(&entropy));
            if let Some(y) = data.get("labels") {
                m.insert(
                    format!("task_loss_{name}"),
                    mean(&losses::softmax_xent(lg, y)),
                );
            }
        }
        let mut total: Option<Tensor> = None;
        for (t, lt) in self.teachers.iter().zip(teacher_logits) {
            let l = mean(&self.distance.per_example(&logits, lt));
            m.insert(format!("distill_loss_{}", t.name), l.clone());
            total = Some(total.map_or(l.clone(), |s| s + l));
        }
        let total = total.expect("at least one teacher");
        m.insert("distill_loss".into(), total.clone());
        (total, m)
    }
}

/// The key of `data` model `name` reads (inside the step).
fn image_key_of<'a>(data: &BTreeMap<String, Tensor>, name: &'a str) -> &'a str {
    if data.contains_key(name) {
        name
    } else {
        "image"
    }
}

impl Trainer for Distill {
    fn model(&self) -> Arc<dyn ImageModel> {
        self.student.clone()
    }

    fn init(&self, key: &Tensor) -> Params {
        init_params(
            self.student.as_ref(),
            key,
            &self.student_image,
            self.head_bias,
        )
    }

    fn update(
        &self,
        tx: &dyn Transform,
        frozen: &[String],
        (params, opt): TrainState,
        inputs: StepInputs<'_>,
    ) -> (TrainState, Measurements) {
        let mut rng = random::fold_in(inputs.rng_loop, inputs.step);
        let mut data: BTreeMap<String, Tensor> = inputs
            .features
            .iter()
            .map(|(k, v)| (k.to_string(), np::astype(v, DType::F32)))
            .collect();
        data.insert("image".into(), np::astype(inputs.image, DType::F32));
        data.insert("labels".into(), inputs.labels.clone());
        if let Some((p, devices)) = self.mixup {
            let things: Vec<&Tensor> = data.values().collect();
            let (next, mixed) = mixup(&rng, p, devices, &things);
            rng = next;
            data = data.keys().cloned().zip(mixed).collect();
        }
        let keys = random::split(&rng, self.teachers.len() + 2);
        let model_key = |i: usize| {
            let k = random::key_at(&keys, i + 1);
            // The FlexiViT fork draws per device (pmap): device 0's key for the whole batch.
            if self.flexi.is_some() {
                random::fold_in(&k, 0u32)
            } else {
                k
            }
        };
        let teacher_logits: Vec<Tensor> = self
            .teachers
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let prefix = format!("{}/", t.name);
                let p: Params = inputs
                    .fixed
                    .iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone()))
                    })
                    .collect();
                let rngs = [(Stream::DROPOUT, model_key(i + 1))];
                let x = &data[image_key_of(&data, &t.name)];
                stop_gradient(&t.model.apply(&p, x, false, &rngs).0)
            })
            .collect();
        let student_key = model_key(0);
        let vg = value_and_grad_aux(|p: Params| {
            self.loss(inputs.variant, p, &data, &teacher_logits, &student_key)
        });
        let ((loss, mut m), grads) = vg(&params);
        let (state, m2) = apply_gradients(tx, frozen, (params, opt), grads);
        m.extend(m2);
        m.insert("training_loss".into(), loss);
        (state, m)
    }

    fn load(
        &self,
        fresh: &bv_nn::Params<HostArray>,
        config: &Config,
    ) -> Result<bv_nn::Params<HostArray>, TrainError> {
        let init = config
            .student_init
            .as_ref()
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                TrainError::setting(
                    "student_init",
                    "expected the path of an .npz or a checkpoint name",
                )
            })?;
        let name = config.student_name.clone().unwrap_or_default();
        let path =
            super::resolve_init(&name, init).map_err(|e| TrainError::at("student_init", e))?;
        let dont_load = dont_load_in("student_load", config.student_load.as_ref())?;
        bv_nn::npz::load(self.student.as_ref(), fresh, &path, &dont_load)
            .map_err(|e| TrainError::at("student_init", e))
    }

    fn batch_keys(&self) -> Vec<String> {
        self.keys.clone()
    }

    /// Every teacher's `<name>_init` merged into its fresh parameters (big_vision's
    /// `get_model_mod(name).load(params, init, config[name], **load)`), named
    /// `<name>/<param>`.
    fn fixed(&self, config: &Config) -> Result<bv_nn::Params<HostArray>, TrainError> {
        let mut out = bv_nn::Params::new();
        let key = Key::from_seed(config.seed as i64).to_array()?;
        for t in &self.teachers {
            let what = format!("teachers.{}.init", t.name);
            let init = t.spec.init.as_str().ok_or_else(|| {
                TrainError::setting(&what, "expected the path of an .npz or a checkpoint name")
            })?;
            let (model, image) = (t.model.clone(), t.image.clone());
            let fresh = jit(move |k: Tensor| model.init(&k, &image)).call(&key)?;
            let fresh = bv_nn::npz::to_host(&fresh)?;
            let path =
                super::resolve_init(&t.spec.name, init).map_err(|e| TrainError::at(&what, e))?;
            let dont_load = dont_load_in(&format!("teachers.{}.load", t.name), Some(&t.spec.load))?;
            let loaded =
                bv_nn::npz::load(t.model.as_ref(), &fresh, &path, &dont_load).map_err(|e| {
                    TrainError::at(format!("{what}: teacher {:?} ({})", t.name, t.spec.name), e)
                })?;
            for (k, v) in loaded.iter() {
                out.insert(format!("{}/{k}", t.name), v.clone());
            }
        }
        Ok(out)
    }

    fn variants(&self) -> usize {
        self.flexi.as_ref().map_or(1, |f| f.sampler.values.len())
    }

    fn variant_at(&self, step: u64) -> usize {
        self.flexi.as_ref().map_or(0, |f| f.sampler.at(step))
    }

    /// distill.py: `student_fwd`, `<t>_fwd`, `student_<t>_fwd`, with `teacher_ensemble` among
    /// the teachers (the mean of their probabilities); the FlexiViT fork:
    /// `student_seqhw=<s>`, `<t>`, `student_seqhw=<s>_<t>`.
    fn predict_fns(&self) -> Vec<(String, PredictFn)> {
        let students: Vec<(String, Predict)> = match &self.flexi {
            Some(f) => f
                .sampler
                .values
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    (
                        format!("student_seqhw={s}"),
                        Predict::trained(self.student_at(i)),
                    )
                })
                .collect(),
            None => vec![("student_fwd".into(), Predict::trained(self.student.clone()))],
        };
        let suffix = if self.flexi.is_some() { "" } else { "_fwd" };
        let mut teachers: Vec<(String, Predict)> = self
            .teachers
            .iter()
            .map(|t| {
                let p = Predict {
                    model: t.model.clone(),
                    fixed_prefix: Some(format!("{}/", t.name)),
                };
                (t.name.clone(), p)
            })
            .collect();
        if self.flexi.is_none() {
            let members = self
                .teachers
                .iter()
                .map(|t| (t.name.clone(), t.model.clone()))
                .collect();
            let ensemble = Predict {
                model: Arc::new(Ensemble::new(members)),
                fixed_prefix: Some(String::new()),
            };
            teachers.push(("teacher_ensemble".into(), ensemble));
        }
        let mut out: Vec<(String, PredictFn)> = students
            .iter()
            .map(|(n, p)| (n.clone(), PredictFn::Single(p.clone())))
            .collect();
        for (t, p) in &teachers {
            out.push((format!("{t}{suffix}"), PredictFn::Single(p.clone())));
        }
        for (s, sp) in &students {
            for (t, tp) in &teachers {
                let name = match &self.flexi {
                    Some(_) => format!("{s}_{t}"),
                    None => format!("student_{t}_fwd"),
                };
                out.push((name, PredictFn::Pair(sp.clone(), tp.clone())));
            }
        }
        out
    }
}
