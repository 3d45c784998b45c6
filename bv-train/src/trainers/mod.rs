//! Trainers: what a big_vision trainer module adds to the loop that `train.rs` shares
//! (input pipeline, checkpoints, sharding, evaluator cadence, metrics): its model, how
//! parameters are born and loaded from `model_init`, and the update step. `config.trainer`
//! picks one by big_vision's module name: `train` (`big_vision.train`, the default),
//! `proj.image_text.siglip`, `proj.distill.distill`, `proj.flexi.train`,
//! `proj.flexi.distill` or `proj.gsam.train` (`big_vision.trainers.<name>`).
//!
//! A new trainer is a file here implementing [`Trainer`] and one line in [`build`];
//! [`apply_gradients`] is the optimizer half every update step shares. Beyond the model and
//! its step, a trainer may read more batch features ([`Trainer::batch_keys`]), hold
//! parameters that are neither trained nor checkpointed (teachers, [`Trainer::fixed`]),
//! compile one step per value of a static argument ([`Trainer::variants`], FlexiViT's
//! patch size), and offer evaluators named predict functions ([`Trainer::predict_fns`]).

pub mod classification;
pub mod distill;
pub mod flexi;
pub mod gsam;
pub mod siglip;

use std::collections::BTreeMap;
use std::sync::Arc;

use bv_core::io::HostArray;
use bv_core::Tensor;
use bv_nn::models::proj::image_text::two_towers::TwoTowers;
use bv_nn::models::ImageModel;
use bv_nn::Stream;

use crate::config::{Config, Plan};
use crate::data::Batch;
use crate::error::TrainError;
use crate::optim::{apply_updates, global_norm, Optimizer, State, Transform};
use bv_core::tree::Params;

/// The training state inside the step: parameters and optimizer state by name.
pub type TrainState = (Params, State);

/// Step measurements by big_vision's metric names (`training_loss`, `l2_grads`, ...).
pub type Measurements = BTreeMap<String, Tensor>;

/// The traced inputs of one update step.
pub struct StepInputs<'a> {
    /// The loop key, folded with the step for this step's randomness.
    pub rng_loop: &'a Tensor,
    /// The step number before this update (`uint32` scalar).
    pub step: &'a Tensor,
    /// The batch's `image`.
    pub image: &'a Tensor,
    /// The batch's `labels` (class targets, or token ids for image-text).
    pub labels: &'a Tensor,
    /// The batch features of [`Trainer::batch_keys`] (a teacher's own images).
    pub features: &'a Params,
    /// The parameters of [`Trainer::fixed`] (teachers), on devices, not differentiated.
    pub fixed: &'a Params,
    /// Which of [`Trainer::variants`] this step runs (a static argument: one compiled
    /// step per value).
    pub variant: usize,
}

/// A trainer's part of a run. Methods that trace run inside the loop's `jit`.
pub trait Trainer: Send + Sync {
    /// The model evaluators call through [`ImageModel::apply`].
    fn model(&self) -> Arc<dyn ImageModel>;

    /// The two-tower model image-text evaluators call, if the trainer has one.
    fn towers(&self) -> Option<Arc<TwoTowers>> {
        None
    }

    /// The parameters created from the `params` init key (traced).
    fn init(&self, key: &Tensor) -> Params;

    /// One update step (big_vision's `update_fn`; traced): the new state and the
    /// measurements, `training_loss` among them.
    fn update(
        &self,
        tx: &dyn Transform,
        frozen: &[String],
        state: TrainState,
        inputs: StepInputs<'_>,
    ) -> (TrainState, Measurements);

    /// `model_mod.load(init_params, config.model_init, config.model, **config.model_load)`:
    /// the fresh parameters with the checkpoint's values merged in.
    fn load(
        &self,
        fresh: &bv_nn::Params<HostArray>,
        config: &Config,
    ) -> Result<bv_nn::Params<HostArray>, TrainError>;

    /// Batch features the step reads besides `image` and `labels` ([`StepInputs::features`]).
    fn batch_keys(&self) -> Vec<String> {
        Vec::new()
    }

    /// Parameters the step reads but neither trains nor checkpoints (distillation teachers,
    /// named `<teacher>/<param>`), loaded once before anything is written.
    fn fixed(&self, _config: &Config) -> Result<bv_nn::Params<HostArray>, TrainError> {
        Ok(bv_nn::Params::new())
    }

    /// How many variants of the step exist (values of a static argument); each compiles
    /// on first use.
    fn variants(&self) -> usize {
        1
    }

    /// The variant step `step` (1-based) runs.
    fn variant_at(&self, _step: u64) -> usize {
        0
    }

    /// The predict functions evaluators may name in `pred` (big_vision's `predict_fns`);
    /// the first is the default.
    fn predict_fns(&self) -> Vec<(String, PredictFn)> {
        vec![(
            "predict".into(),
            PredictFn::Single(Predict::trained(self.model())),
        )]
    }
}

/// A model as an evaluator calls it, with the parameters it reads.
#[derive(Clone, Debug)]
pub struct Predict {
    /// The model.
    pub model: Arc<dyn ImageModel>,
    /// `None`: the trained parameters; `Some("prof/")`: the fixed parameters under that
    /// prefix (a teacher).
    pub fixed_prefix: Option<String>,
}

impl Predict {
    /// `model` on the trained parameters.
    pub fn trained(model: Arc<dyn ImageModel>) -> Predict {
        Predict {
            model,
            fixed_prefix: None,
        }
    }

    /// The parameters this predict function reads: the trained ones, or the fixed ones
    /// under its prefix (prefix removed).
    pub fn params<T: Clone>(&self, trained: &Params<T>, fixed: &Params<T>) -> Params<T> {
        match &self.fixed_prefix {
            None => trained.clone(),
            Some(p) => fixed
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(p.as_str())
                        .map(|k| (k.to_string(), v.clone()))
                })
                .collect(),
        }
    }
}

/// A predict function by kind: one model's outputs, or a (student, teacher) pair's.
#[derive(Clone, Debug)]
pub enum PredictFn {
    /// `predict`, `student_fwd`, `prof_fwd`, `predict_seqhw=8`, ...
    Single(Predict),
    /// `student_prof_fwd`, `student_seqhw=8_prof`, ...
    Pair(Predict, Predict),
}

/// The trainer names `config.trainer` takes.
pub const NAMES: [&str; 6] = [
    "train",
    "proj.image_text.siglip",
    "proj.distill.distill",
    "proj.flexi.train",
    "proj.flexi.distill",
    "proj.gsam.train",
];

/// Whether `config` runs a distillation trainer (a student and teachers).
pub fn is_distill(config: &Config) -> bool {
    matches!(
        config.trainer.as_deref(),
        Some("proj.distill.distill" | "proj.flexi.distill")
    )
}

/// The trainer `config.trainer` names (default `train`), built for the model of
/// `config`, the first training batch `probe` (which gives input shapes) and the plan
/// (the schedules GSAM follows).
pub fn build(
    config: &Config,
    probe: &Batch,
    devices: usize,
    plan: &Plan,
) -> Result<Arc<dyn Trainer>, TrainError> {
    match config.trainer.as_deref().unwrap_or("train") {
        "train" => Ok(Arc::new(classification::Classification::new(
            config, probe, devices,
        )?)),
        "proj.image_text.siglip" => Ok(Arc::new(siglip::Siglip::new(config, probe)?)),
        "proj.distill.distill" | "proj.flexi.distill" => {
            Ok(Arc::new(distill::Distill::new(config, probe, devices)?))
        }
        "proj.flexi.train" => Ok(Arc::new(flexi::FlexiTrain::new(config, probe, devices)?)),
        "proj.gsam.train" => Ok(Arc::new(gsam::GsamTrain::new(
            config, probe, devices, plan,
        )?)),
        other => Err(TrainError::unknown("trainer", "trainer", other, &NAMES)),
    }
}

/// The image model and the two-tower model (if any) evaluators call.
pub type EvalModels = (Arc<dyn ImageModel>, Option<Arc<TwoTowers>>);

/// The models evaluators call, without a training batch (for `bv-train eval`): the image
/// model and, for the SigLIP trainer, the two-tower model.
pub fn eval_models(config: &Config) -> Result<EvalModels, TrainError> {
    match config.trainer.as_deref().unwrap_or("train") {
        "proj.image_text.siglip" => {
            let t = siglip::model(config)?;
            Ok((t.clone(), Some(t)))
        }
        _ if is_distill(config) => Ok((distill::student(config)?, None)),
        _ => Ok((classification::model(config)?, None)),
    }
}

/// The optimizer half of an update step: `tx.update` on `grads`, applied to the
/// parameters, with big_vision's `l2_grads` (frozen parameters left out), `l2_updates`
/// and `l2_params` (after the update).
pub fn apply_gradients(
    tx: &dyn Transform,
    frozen: &[String],
    (params, opt): TrainState,
    grads: Params,
) -> (TrainState, Measurements) {
    let trainable: Params = grads
        .iter()
        .filter(|(n, _)| !frozen.iter().any(|f| f == n))
        .map(|(n, g)| (n.to_string(), g.clone()))
        .collect();
    let l2_grads = global_norm(&trainable);
    let (updates, opt) = tx.update(&grads, opt, &params);
    let l2_updates = global_norm(&updates);
    let params = apply_updates(&params, &updates);
    let l2_params = global_norm(&params);
    let m = [
        ("l2_grads", l2_grads),
        ("l2_params", l2_params),
        ("l2_updates", l2_updates),
    ];
    (
        (params, opt),
        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    )
}

/// The local `.npz` a `model_init`-like key names for a `model_name` model: an object in
/// a bucket (`gs://`, `s3://`) through its copy in the bv cache, else a path or one of
/// big_vision's checkpoint names ([`bv_nn::zoo::resolve`]).
pub fn resolve_init(model_name: &str, init: &str) -> Result<std::path::PathBuf, TrainError> {
    let path = std::path::Path::new(init);
    if crate::storage::is_bucket(path) {
        return crate::storage::local_copy(path).map_err(|source| TrainError::File {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(bv_nn::zoo::resolve(model_name, init)?)
}

/// `model_load.<key>.dont_load` (a list of regexes), empty when absent.
pub fn dont_load(config: &Config, key: Option<&str>) -> Result<Vec<String>, TrainError> {
    let kw = match key {
        Some(k) => match config.model_load.get(k) {
            Some(v) => v.get("dont_load"),
            None => None,
        },
        None => config.model_load.get("dont_load"),
    };
    match kw {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            let at = key.map_or("model_load.dont_load".into(), |k| {
                format!("model_load.{k}.dont_load")
            });
            TrainError::setting(at, format!("expected a list of regexes, got {v}"))
        }),
    }
}

/// `dont_load` of a loader's keyword arguments `kw` (config key `what`, e.g.
/// `student_load` or `teachers.prof.load`): a list of regexes, empty when absent; any
/// other key is an error (big_vision's loaders take no other).
pub fn dont_load_in(
    what: &str,
    kw: Option<&crate::config::Dict>,
) -> Result<Vec<String>, TrainError> {
    let Some(kw) = kw else {
        return Ok(Vec::new());
    };
    if let Some(k) = kw.keys().find(|k| *k != "dont_load") {
        return Err(TrainError::setting(
            format!("{what}.{k}"),
            "the loader takes only dont_load",
        ));
    }
    match kw.get("dont_load") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            TrainError::setting(
                format!("{what}.dont_load"),
                format!("expected a list of regexes, got {v}"),
            )
        }),
    }
}

/// big_vision's `u.mixup(rng, *things, p=p)`: `rng, rng_mixup = split(rng)`, one
/// `a ~ Beta(p, p)` with `a = max(a, 1 − a)`, and every thing mixed with its neighbour
/// (`roll` by one within each of `devices` equal blocks of the batch). Returns the new key
/// and the mixed things.
pub fn mixup(rng: &Tensor, p: f64, devices: usize, things: &[&Tensor]) -> (Tensor, Vec<Tensor>) {
    let (rng, rng_mixup) = bv_core::random::split2(rng);
    let a = bv_core::random::beta(&rng_mixup, p, p, &[]);
    let a = bv_core::numpy::maximum(&a, 1.0 - &a);
    let mixed = things
        .iter()
        .map(|x| crate::train::mix_with_neighbour(x, &a, devices))
        .collect();
    (rng, mixed)
}

/// The start of big_vision's classifier `update_fn`s: the step's key
/// `fold_in(rng_loop, step)`, the image as float32, then [`mixup`] of image and labels when
/// on. Returns the key left after mixup, the images and the labels.
pub fn classifier_batch(
    rng_loop: &Tensor,
    step: &Tensor,
    image: &Tensor,
    labels: &Tensor,
    mixup_on: Option<(f64, usize)>,
) -> (Tensor, Tensor, Tensor) {
    let rng = bv_core::random::fold_in(rng_loop, step);
    let image = bv_core::numpy::astype(image, bv_core::DType::F32);
    match mixup_on {
        Some((p, devices)) => {
            let (rng, mut mixed) = mixup(&rng, p, devices, &[&image, labels]);
            let labels = mixed.pop().expect("two things mixed");
            (rng, mixed.pop().expect("two things mixed"), labels)
        }
        None => (rng, image, labels.clone()),
    }
}

/// A classifier's training loss: the mean over the batch of `loss_name` (one of
/// [`crate::losses::NAMES`]) between `model`'s logits on `x` (train mode, `rngs`) and `y`.
pub fn classifier_loss(
    model: &dyn ImageModel,
    params: Params,
    x: &Tensor,
    y: &Tensor,
    loss_name: &str,
    rngs: &[(Stream, Tensor)],
) -> Tensor {
    let (logits, _) = model.apply(&params, x, true, rngs);
    let per_example = crate::losses::per_example(loss_name, &logits, y).unwrap_or(logits);
    bv_core::numpy::mean(&per_example, bv_core::numpy::Axes::All, false)
}
