//! big_vision's FlexiViT trainer (`trainers/proj/flexi/train.py`): a `proj.flexi.vit`
//! model trained with its token grid `seqhw` sampled per step from `flexi.seqhw` (`v`
//! values, `p` weights), one compiled step per value, and evaluated through one predict
//! function per value (`predict_seqhw=<s>`, big_vision's naming). Otherwise train.py's
//! step: `loss` with mixup (rolled within each device's block, as the pmap trainer).
//!
//! big_vision draws the value with `np.random.default_rng((xid, wid, step)).choice`; bv
//! draws it from a hash of `(seed, step)` with the same weights, so a resumed run repeats
//! the values of the steps it redoes.

use std::sync::Arc;

use bv_core::autodiff::value_and_grad;
use bv_core::io::HostArray;
use bv_core::random;
use bv_core::{Spec, Tensor};
use bv_nn::models::proj::flexi::vit::FlexiVit;
use bv_nn::models::ImageModel;
use bv_nn::Stream;

use super::classification::load_model_init;
use super::{
    apply_gradients, classifier_batch, classifier_loss, Measurements, Predict, PredictFn,
    StepInputs, TrainState, Trainer,
};
use crate::config::Config;
use crate::data::Batch;
use crate::error::TrainError;
use crate::optim::Transform;
use crate::train::{batch_spec, init_params};
use bv_core::tree::Params;

/// The per-step choice of `flexi.seqhw`.
#[derive(Clone, Debug)]
pub struct Sampler {
    /// The grid sides sampled from.
    pub values: Vec<usize>,
    cdf: Vec<f64>,
    seed: u64,
}

impl Sampler {
    /// `config.flexi` checked against the model and `(h, w)` images: only `seqhw` is
    /// flexible (FlexiViT's one call argument); every value must give a whole patch size.
    pub fn new(config: &Config, hw: (usize, usize), vit: &FlexiVit) -> Result<Sampler, TrainError> {
        let flexi = config.flexi.as_ref().ok_or_else(|| {
            TrainError::setting(
                "flexi",
                "a FlexiViT config samples `flexi.seqhw` (v: [...], p: [...])",
            )
        })?;
        if let Some(k) = flexi.keys().find(|k| *k != "seqhw") {
            return Err(TrainError::setting(
                format!("flexi.{k}"),
                "FlexiViT's only flexible argument is seqhw (the token grid side)",
            ));
        }
        let arg = flexi
            .get("seqhw")
            .ok_or_else(|| TrainError::setting("flexi.seqhw", "missing"))?;
        if arg.v.is_empty() {
            return Err(TrainError::setting(
                "flexi.seqhw.v",
                "give at least one grid side",
            ));
        }
        let values: Vec<usize> = arg.v.iter().map(|&v| v as usize).collect();
        for &s in &values {
            if s == 0 {
                return Err(TrainError::setting(
                    "flexi.seqhw.v",
                    "grid sides must be positive",
                ));
            }
            vit.at_seqhw(s)
                .call_patch_size(hw)
                .map_err(|e| TrainError::setting("flexi.seqhw.v", e))?;
        }
        let weights = arg.p.clone().unwrap_or_else(|| vec![1.0; values.len()]);
        if weights.len() != values.len() || weights.iter().any(|w| w.is_nan() || *w < 0.0) {
            return Err(TrainError::setting(
                "flexi.seqhw.p",
                format!(
                    "expected {} non-negative weights (one per value), got {weights:?}",
                    values.len()
                ),
            ));
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err(TrainError::setting("flexi.seqhw.p", "the weights sum to 0"));
        }
        let mut acc = 0.0;
        let cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        Ok(Sampler {
            values,
            cdf,
            seed: config.seed,
        })
    }

    /// The index of the value step `step` uses.
    pub fn at(&self, step: u64) -> usize {
        // splitmix64 of (seed, step): a uniform in [0, 1).
        let mut z = self
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(step)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.cdf.len() - 1)
    }
}

/// The FlexiViT trainer.
pub struct FlexiTrain {
    vit: FlexiVit,
    sampler: Sampler,
    image: Spec,
    loss_name: String,
    mixup: Option<(f64, usize)>,
    head_bias: Option<f64>,
}

impl FlexiTrain {
    /// The FlexiViT of `config.model` and its sampled grid sides; shapes from `probe`.
    pub fn new(config: &Config, probe: &Batch, devices: usize) -> Result<FlexiTrain, TrainError> {
        if config.model_name != "proj.flexi.vit" {
            return Err(TrainError::setting(
                "model_name",
                format!(
                    "the proj.flexi.train trainer trains \"proj.flexi.vit\", not {:?}",
                    config.model_name
                ),
            ));
        }
        let mut kw = serde_json::Value::Object(config.model.clone().into_iter().collect());
        if let Some(n) = config.num_classes {
            kw["num_classes"] = n.into();
        }
        let vit = FlexiVit::from_config(&kw)?;
        let image = batch_spec(probe, "image")?;
        let sampler = Sampler::new(config, (image.shape[1], image.shape[2]), &vit)?;
        Ok(FlexiTrain {
            vit,
            sampler,
            image,
            loss_name: config.loss.clone().unwrap_or_else(|| "sigmoid_xent".into()),
            mixup: config
                .mixup
                .as_ref()
                .filter(|m| m.p > 0.0)
                .map(|m| (m.p, devices)),
            head_bias: config.init_head_bias,
        })
    }

    /// The model at the grid side of variant `v`.
    fn at(&self, v: usize) -> Arc<dyn ImageModel> {
        Arc::new(self.vit.at_seqhw(self.sampler.values[v]))
    }
}

impl Trainer for FlexiTrain {
    fn model(&self) -> Arc<dyn ImageModel> {
        Arc::new(self.vit.clone())
    }

    fn init(&self, key: &Tensor) -> Params {
        init_params(&self.vit, key, &self.image, self.head_bias)
    }

    /// flexi/train.py's `update_fn` at `seqhw = values[variant]`.
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
        let model = self.at(inputs.variant);
        let loss = |p: Params| classifier_loss(model.as_ref(), p, &x, &y, &self.loss_name, &rngs);
        let (l, grads) = value_and_grad(loss)(&params);
        let (state, mut m) = apply_gradients(tx, frozen, (params, opt), grads);
        m.insert("training_loss".into(), l);
        (state, m)
    }

    fn load(
        &self,
        fresh: &bv_nn::Params<HostArray>,
        config: &Config,
    ) -> Result<bv_nn::Params<HostArray>, TrainError> {
        load_model_init(&self.vit, fresh, config)
    }

    fn variants(&self) -> usize {
        self.sampler.values.len()
    }

    fn variant_at(&self, step: u64) -> usize {
        self.sampler.at(step)
    }

    /// `predict_seqhw=<s>` for every sampled grid side.
    fn predict_fns(&self) -> Vec<(String, PredictFn)> {
        (0..self.sampler.values.len())
            .map(|i| {
                let name = format!("predict_seqhw={}", self.sampler.values[i]);
                (name, PredictFn::Single(Predict::trained(self.at(i))))
            })
            .collect()
    }
}
