//! Trainers: what a big_vision trainer module adds to the loop that `train.rs` shares
//! (input pipeline, checkpoints, sharding, evaluator cadence, metrics): its model, how
//! parameters are born and loaded from `model_init`, and the update step. `config.trainer`
//! picks one by big_vision's module name: `train` (`big_vision.train`, the default) or
//! `proj.image_text.siglip` (`big_vision.trainers.proj.image_text.siglip`).
//!
//! A new trainer (distillation, FlexiViT, GSAM) is a file here implementing [`Trainer`]
//! and one line in [`build`]; [`apply_gradients`] is the optimizer half every update step
//! shares.

pub mod classification;
pub mod siglip;

use std::collections::BTreeMap;
use std::sync::Arc;

use bv_core::io::HostArray;
use bv_core::Tensor;
use bv_nn::models::proj::image_text::two_towers::TwoTowers;
use bv_nn::models::ImageModel;

use crate::config::Config;
use crate::data::Batch;
use crate::optim::{apply_updates, global_norm, Params, State, Transform};
use crate::train::TrainError;

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
}

/// The trainer names `config.trainer` takes.
pub const NAMES: [&str; 2] = ["train", "proj.image_text.siglip"];

/// The trainer `config.trainer` names (default `train`), built for the model of
/// `config` and the first training batch `probe` (which gives input shapes).
pub fn build(
    config: &Config,
    probe: &Batch,
    devices: usize,
) -> Result<Arc<dyn Trainer>, TrainError> {
    match config.trainer.as_deref().unwrap_or("train") {
        "train" => Ok(Arc::new(classification::Classification::new(
            config, probe, devices,
        )?)),
        "proj.image_text.siglip" => Ok(Arc::new(siglip::Siglip::new(config, probe)?)),
        other => Err(format!("trainer: unknown trainer {other:?}; use one of {NAMES:?}").into()),
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
        .filter(|(n, _)| !frozen.contains(n))
        .map(|(n, g)| (n.clone(), g.clone()))
        .collect();
    let l2_grads = global_norm(&trainable);
    let (updates, opt) = tx.update(grads, opt, &params);
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
            format!("{at}: expected a list of regexes, got {v}").into()
        }),
    }
}
