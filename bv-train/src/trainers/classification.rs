//! big_vision's `train.py` trainer: an image model, a classification loss (with mixup),
//! `init_head_bias`, and `model_init` through the model's loader. Its step and init are
//! `train.rs`'s own functions.

use std::sync::Arc;

use bv_core::io::HostArray;
use bv_core::{Spec, Tensor};
use bv_nn::models::{self, ImageModel};

use super::{Measurements, StepInputs, TrainState, Trainer};
use crate::config::Config;
use crate::data::Batch;
use crate::error::TrainError;
use crate::optim::Transform;
use crate::train::{batch_spec, init_params, update_step, Update};
use bv_core::tree::Params;

/// The classification trainer.
pub struct Classification {
    model: Arc<dyn ImageModel>,
    image: Spec,
    head_bias: Option<f64>,
    loss_name: String,
    mixup: Option<(f64, usize)>,
}

/// The image model of `config` (`model_name` with `config.model`, `num_classes` among its
/// keys).
pub fn model(config: &Config) -> Result<Arc<dyn ImageModel>, TrainError> {
    if config.model_name == "proj.image_text.two_towers" {
        return Err(TrainError::setting(
            "model_name",
            "\"proj.image_text.two_towers\" is trained by trainer \"proj.image_text.siglip\"; \
             set trainer: \"proj.image_text.siglip\"",
        ));
    }
    let mut model_kw = serde_json::Value::Object(config.model.clone().into_iter().collect());
    if let Some(n) = config.num_classes {
        model_kw["num_classes"] = n.into();
    }
    Ok(models::build(&config.model_name, &model_kw)?)
}

impl Classification {
    /// The model of `config`, input shapes from `probe`.
    pub fn new(
        config: &Config,
        probe: &Batch,
        devices: usize,
    ) -> Result<Classification, TrainError> {
        Ok(Classification {
            model: model(config)?,
            image: batch_spec(probe, "image")?,
            head_bias: config.init_head_bias,
            loss_name: config.loss.clone().unwrap_or_else(|| "sigmoid_xent".into()),
            mixup: config
                .mixup
                .as_ref()
                .filter(|m| m.p > 0.0)
                .map(|m| (m.p, devices)),
        })
    }
}

impl Trainer for Classification {
    fn model(&self) -> Arc<dyn ImageModel> {
        self.model.clone()
    }

    fn init(&self, key: &Tensor) -> Params {
        init_params(self.model.as_ref(), key, &self.image, self.head_bias)
    }

    fn update(
        &self,
        tx: &dyn Transform,
        frozen: &[String],
        state: TrainState,
        inputs: StepInputs<'_>,
    ) -> (TrainState, Measurements) {
        let update = Update {
            model: self.model.as_ref(),
            tx,
            loss_name: &self.loss_name,
            frozen,
            mixup: self.mixup,
        };
        let (state, loss, l2_grads, l2_params, l2_updates) = update_step(
            &update,
            state,
            inputs.rng_loop,
            inputs.step,
            inputs.image,
            inputs.labels,
        );
        let m = [
            ("training_loss", loss),
            ("l2_grads", l2_grads),
            ("l2_params", l2_params),
            ("l2_updates", l2_updates),
        ];
        (
            state,
            m.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        )
    }

    fn load(
        &self,
        fresh: &bv_nn::Params<HostArray>,
        config: &Config,
    ) -> Result<bv_nn::Params<HostArray>, TrainError> {
        load_model_init(self.model.as_ref(), fresh, config)
    }
}

/// `model_mod.load(params, config.model_init, config.model, **config.model_load)` for an
/// image model: the `.npz` (or big_vision checkpoint name) of `model_init` merged into
/// `fresh` by the model's loader (`dont_load`, checkpoint fixes, resampling).
pub fn load_model_init(
    model: &dyn ImageModel,
    fresh: &bv_nn::Params<HostArray>,
    config: &Config,
) -> Result<bv_nn::Params<HostArray>, TrainError> {
    let path = match &config.model_init {
        Some(serde_json::Value::String(p)) => p.clone(),
        other => {
            let got = other.as_ref().map_or("nothing".into(), |v| v.to_string());
            return Err(TrainError::setting(
                "model_init",
                format!("expected the path of an .npz, got {got}"),
            ));
        }
    };
    let dont_load = super::dont_load(config, None)?;
    let path = super::resolve_init(&config.model_name, &path)?;
    Ok(bv_nn::npz::load(model, fresh, &path, &dont_load)?)
}
