//! big_vision's GSAM trainer (`trainers/proj/gsam/train.py`): train.py's model and loss,
//! with the gradient of [`Gsam::gradient`] (`config.gsam`) in place of the plain one, all
//! in one jitted step. ρ follows the learning rate `sched(step) · lr`, where `step` is the
//! 1-based step as gsam/train.py passes it (the optimizer's schedule reads the 0-based
//! count). One schedule group only, as big_vision asserts.

use std::sync::Arc;

use bv_core::io::HostArray;
use bv_core::numpy as np;
use bv_core::random;
use bv_core::{DType, Spec, Tensor};
use bv_nn::models::ImageModel;
use bv_nn::Stream;

use super::classification::{load_model_init, model};
use super::{
    apply_gradients, classifier_batch, classifier_loss, Measurements, StepInputs, TrainState,
    Trainer,
};
use crate::config::{Config, Plan};
use crate::data::Batch;
use crate::error::TrainError;
use crate::optim::gsam::Gsam;
use crate::optim::schedule::Schedule;
use crate::optim::Transform;
use crate::train::{batch_spec, init_params};
use bv_core::tree::Params;

/// The GSAM trainer.
pub struct GsamTrain {
    model: Arc<dyn ImageModel>,
    image: Spec,
    gsam: Gsam,
    schedule: Schedule,
    lr: f64,
    loss_name: String,
    mixup: Option<(f64, usize)>,
    head_bias: Option<f64>,
}

/// `config.gsam` checked (before anything is written).
pub fn settings(config: &Config) -> Result<Gsam, TrainError> {
    let g = config.gsam.as_ref().ok_or_else(|| {
        TrainError::setting(
            "gsam",
            "the proj.gsam.train trainer needs a gsam block (rho_max, rho_min, alpha, \
                 lr_max, lr_min)",
        )
    })?;
    let v = serde_json::Value::Object(g.clone().into_iter().collect());
    Ok(Gsam::from_config(&v)?)
}

impl GsamTrain {
    /// The model of `config`, its `gsam` block and the one schedule of `plan`.
    pub fn new(
        config: &Config,
        probe: &Batch,
        devices: usize,
        plan: &Plan,
    ) -> Result<GsamTrain, TrainError> {
        let gsam = settings(config)?;
        let groups: Vec<_> = plan.schedules.groups().collect();
        let schedule = match groups.as_slice() {
            [(_, Some(s))] => (*s).clone(),
            _ => {
                return Err(TrainError::setting(
                    "schedule",
                    "GSAM follows one global learning-rate schedule; give one schedule (no \
                     per-group list), as big_vision asserts",
                ))
            }
        };
        Ok(GsamTrain {
            model: model(config)?,
            image: batch_spec(probe, "image")?,
            gsam,
            schedule,
            lr: config.lr,
            loss_name: config.loss.clone().unwrap_or_else(|| "sigmoid_xent".into()),
            mixup: config
                .mixup
                .as_ref()
                .filter(|m| m.p > 0.0)
                .map(|m| (m.p, devices)),
            head_bias: config.init_head_bias,
        })
    }
}

impl Trainer for GsamTrain {
    fn model(&self) -> Arc<dyn ImageModel> {
        self.model.clone()
    }

    fn init(&self, key: &Tensor) -> Params {
        init_params(self.model.as_ref(), key, &self.image, self.head_bias)
    }

    /// gsam/train.py's `update_fn`: mixup, `rng, rng_model = split(rng)` (dropout from
    /// device 0's `fold_in(rng_model, 0)`), the GSAM gradient at `lr = sched(step) · lr`.
    fn update(
        &self,
        tx: &dyn Transform,
        frozen: &[String],
        (params, opt): TrainState,
        inputs: StepInputs<'_>,
    ) -> (TrainState, Measurements) {
        let (rng, x, y) = classifier_batch(
            inputs.rng_loop,
            inputs.step,
            inputs.image,
            inputs.labels,
            self.mixup,
        );
        let (_, rng_model) = random::split2(&rng);
        let rngs = [(Stream::DROPOUT, random::fold_in(&rng_model, 0u32))];
        let loss =
            |p: Params| classifier_loss(self.model.as_ref(), p, &x, &y, &self.loss_name, &rngs);
        let step = np::astype(inputs.step, DType::F32) + 1.0;
        let lr = self.schedule.at(step) * self.lr;
        let (l, grads) = self.gsam.gradient(loss, &params, &lr);
        let (state, mut m) = apply_gradients(tx, frozen, (params, opt), grads);
        m.insert("training_loss".into(), l);
        (state, m)
    }

    fn load(
        &self,
        fresh: &bv_nn::Params<HostArray>,
        config: &Config,
    ) -> Result<bv_nn::Params<HostArray>, TrainError> {
        load_model_init(self.model.as_ref(), fresh, config)
    }
}
