//! big_vision's `trainers/proj/image_text/siglip.py`: a two-tower model trained with the
//! sigmoid loss of SigLIP, or (`loss_fn: "softmax"`) the softmax contrastive loss of
//! LiT/CLIP from big_vision's earlier contrastive trainer. Both see the whole global batch
//! (the step is one `jit` over the mesh). Frozen towers (LiT) are `schedule` groups of
//! `None`. Measurements: `training_loss`, `l2_grads`, `l2_params`, `l2_updates`, and the
//! temperature `t` (= exp of the parameter) and bias `b` before the update.

use std::sync::Arc;

use bv_core::autodiff::value_and_grad_aux;
use bv_core::io::HostArray;
use bv_core::numpy as np;
use bv_core::random;
use bv_core::{DType, Spec, Tensor};
use bv_nn::models::proj::image_text::load;
use bv_nn::models::proj::image_text::two_towers::TwoTowers;
use bv_nn::models::ImageModel;
use bv_nn::Stream;

use super::{apply_gradients, Measurements, StepInputs, TrainState, Trainer};
use crate::config::Config;
use crate::data::Batch;
use crate::error::TrainError;
use crate::optim::Transform;
use crate::train::batch_spec;
use bv_core::numpy::log_sigmoid;
use bv_core::tree::Params;

/// The contrastive loss (`loss_fn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// SigLIP: `-mean_i sum_j log σ(±(t·zimg_i·ztxt_j + b))`, + on the diagonal.
    Sigmoid,
    /// LiT/CLIP: the mean of the image→text and text→image softmax cross-entropies of
    /// `t·zimg·ztxtᵀ` with the positives on the diagonal.
    Softmax,
}

/// The SigLIP trainer.
pub struct Siglip {
    towers: Arc<TwoTowers>,
    image: Spec,
    text: Spec,
    loss: Loss,
}

/// The spec of `init_shapes[i]` / `init_types[i]`.
fn init_spec(config: &Config, i: usize) -> Result<Option<Spec>, TrainError> {
    let Some(shapes) = &config.init_shapes else {
        return Ok(None);
    };
    let shape = shapes.get(i).ok_or_else(|| {
        TrainError::setting(
            "init_shapes",
            format!(
                "the SigLIP trainer needs two shapes (image, text), got {}",
                shapes.len()
            ),
        )
    })?;
    let default = ["float32", "int32"][i];
    let dtype = match config
        .init_types
        .as_ref()
        .and_then(|t| t.get(i))
        .map_or(default, String::as_str)
    {
        "float32" => DType::F32,
        "int32" => DType::I32,
        other => {
            return Err(TrainError::setting(
                format!("init_types[{i}]"),
                format!("{other:?} is not float32 or int32"),
            ))
        }
    };
    Ok(Some(Spec::new(
        shape.iter().map(|&d| d as usize).collect::<Vec<_>>(),
        dtype,
    )))
}

/// The two-tower model of `config.model`.
pub fn model(config: &Config) -> Result<Arc<TwoTowers>, TrainError> {
    if config.model_name != "proj.image_text.two_towers" {
        return Err(TrainError::setting(
            "model_name",
            format!(
                "the SigLIP trainer trains \"proj.image_text.two_towers\", not {:?}",
                config.model_name
            ),
        ));
    }
    let kw = serde_json::Value::Object(config.model.clone().into_iter().collect());
    Ok(Arc::new(TwoTowers::from_config(&kw)?))
}

impl Siglip {
    /// The two-tower model of `config.model`; input shapes from `init_shapes`/`init_types`
    /// or, as big_vision's trainer, from the training batch's `image` and `labels`.
    pub fn new(config: &Config, probe: &Batch) -> Result<Siglip, TrainError> {
        if config.mixup.as_ref().is_some_and(|m| m.p > 0.0) {
            return Err(TrainError::setting(
                "mixup",
                "not supported by the SigLIP trainer (as big_vision)",
            ));
        }
        let loss = match config.loss_fn.as_deref().unwrap_or("sigmoid") {
            "sigmoid" => Loss::Sigmoid,
            "softmax" => Loss::Softmax,
            other => {
                return Err(TrainError::setting(
                    "loss_fn",
                    format!("{other:?} is not \"sigmoid\" or \"softmax\""),
                ))
            }
        };
        if let Some(k) = config
            .model_load
            .keys()
            .find(|k| !["img_load_kw", "txt_load_kw"].contains(&k.as_str()))
        {
            return Err(TrainError::setting(
                format!("model_load.{k}"),
                "the two-tower loader takes img_load_kw and txt_load_kw",
            ));
        }
        Ok(Siglip {
            towers: model(config)?,
            image: init_spec(config, 0)?.map_or_else(|| batch_spec(probe, "image"), Ok)?,
            text: init_spec(config, 1)?.map_or_else(|| batch_spec(probe, "labels"), Ok)?,
            loss,
        })
    }
}

/// The loss of one batch of normalized embeddings with temperature `t` (`[1]`, already
/// exponentiated) and bias `b`.
pub fn contrastive_loss(
    loss: Loss,
    zimg: &Tensor,
    ztxt: &Tensor,
    t: &Tensor,
    b: Option<&Tensor>,
) -> Tensor {
    let n = zimg.shape()[0];
    let logits = np::matmul(zimg, &np::transpose(ztxt, &[1, 0])) * t;
    let ids = np::arange(n, DType::I32);
    let eye = np::astype(
        &np::equal(
            np::reshape(&ids, &[n as isize, 1]),
            np::reshape(&ids, &[1, n as isize]),
        ),
        DType::F32,
    );
    match loss {
        Loss::Sigmoid => {
            let logits = match b {
                Some(b) => logits + b,
                None => logits,
            };
            let m1_diag1 = eye * 2.0 - 1.0;
            let nll = -np::sum(&log_sigmoid(&(m1_diag1 * logits)), -1, false);
            np::mean(&nll, np::Axes::All, false)
        }
        Loss::Softmax => {
            let diag = |l: &Tensor| np::sum(&(l * &eye), -1, false);
            let i2t = -diag(&np::log_softmax(&logits, -1));
            let t2i = -diag(&np::log_softmax(&np::transpose(&logits, &[1, 0]), -1));
            (np::mean(&i2t, np::Axes::All, false) + np::mean(&t2i, np::Axes::All, false)) * 0.5
        }
    }
}

impl Siglip {
    /// The step's loss (big_vision's `loss_fn`): the model in training mode on the batch,
    /// and the temperature and bias it used.
    pub fn loss(
        &self,
        params: Params,
        image: &Tensor,
        text: &Tensor,
        rngs: &[(Stream, Tensor)],
    ) -> (Tensor, (Tensor, Option<Tensor>)) {
        let (zimg, ztxt, out) =
            self.towers
                .apply_both(&params, Some(image), Some(text), true, rngs);
        let (zimg, ztxt) = (
            zimg.expect("an image was given"),
            ztxt.expect("a text was given"),
        );
        let t = out.get("t").expect("a two-tower model has t").clone();
        let b = out.get("b").cloned();
        (
            contrastive_loss(self.loss, &zimg, &ztxt, &t, b.as_ref()),
            (t, b),
        )
    }
}

impl Trainer for Siglip {
    fn model(&self) -> Arc<dyn ImageModel> {
        self.towers.clone()
    }

    fn towers(&self) -> Option<Arc<TwoTowers>> {
        Some(self.towers.clone())
    }

    fn init(&self, key: &Tensor) -> Params {
        self.towers
            .init_both(key, &self.image, &self.text)
            .into_iter()
            .collect()
    }

    fn update(
        &self,
        tx: &dyn Transform,
        frozen: &[String],
        (params, opt): TrainState,
        inputs: StepInputs<'_>,
    ) -> (TrainState, Measurements) {
        let rng = random::fold_in(inputs.rng_loop, inputs.step);
        let (_, rng_model) = random::split2(&rng);
        let rngs = [(Stream::DROPOUT, rng_model)];
        let loss_fn = |p: Params| self.loss(p, inputs.image, inputs.labels, &rngs);
        let ((loss, (t, b)), grads) = value_and_grad_aux(loss_fn)(&params);
        let (state, mut m) = apply_gradients(tx, frozen, (params, opt), grads);
        m.insert("training_loss".into(), loss);
        m.insert("t".into(), np::reshape(&t, &[]));
        if let Some(b) = b {
            m.insert("b".into(), np::reshape(&b, &[]));
        }
        (state, m)
    }

    fn load(
        &self,
        fresh: &bv_nn::Params<HostArray>,
        config: &Config,
    ) -> Result<bv_nn::Params<HostArray>, TrainError> {
        let init = config
            .model_init
            .as_ref()
            .ok_or_else(|| TrainError::setting("model_init", "not set"))?;
        let img = super::dont_load(config, Some("img_load_kw"))?;
        let txt = super::dont_load(config, Some("txt_load_kw"))?;
        Ok(load::load(&self.towers, fresh, init, &img, &txt)?)
    }
}
