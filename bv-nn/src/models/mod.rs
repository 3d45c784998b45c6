//! big_vision's models behind one interface, built by `model_name` from the free-form
//! `config.model` map of a big_vision config.
//!
//! ```
//! use bv_core::{jit, random::Key, DType, Spec, Tensor};
//! use serde_json::json;
//! let model = bv_nn::models::build("vit", &json!({"variant": "mu/8", "num_classes": 10}))?;
//! let spec = Spec::new([2, 32, 32, 3], DType::F32);
//! let m = model.clone();
//! let init = jit(move |key: Tensor| m.init(&key, &spec));
//! let lowered = init.lower(&Key::spec()).expect("lowers");
//! assert_eq!(lowered.out_avals.len(), 23); // mu: one block
//! # Ok::<(), bv_nn::models::ModelError>(())
//! ```

pub mod bit;
mod config;
pub mod ensemble;
pub mod mlp_mixer;
pub mod proj;
pub mod vit;

use std::fmt;
use std::sync::Arc;

use bv_core::io::HostArray;
use bv_core::{numpy as np, DType, Spec, Tensor};
use serde_json::Value;

use crate::scope::{Module, Scope, Stream};
use crate::Params;

/// Intermediate values by big_vision's `out` names (`pre_logits`, `logits`, `stage1`, ...).
pub type Out = Params<Tensor>;

/// A model as big_vision's trainer uses it: `model.init` and `model.apply`. Both trace
/// into the surrounding `jit`.
pub trait ImageModel: Send + Sync + fmt::Debug {
    /// big_vision's `model_name` (`"vit"`, `"mlp_mixer"`, `"bit"`, `"bit_paper"`).
    fn model_name(&self) -> &'static str;

    /// The model's `__call__(image, train=train)` in scope `s` (its [`Module::apply`]), which
    /// [`init`](ImageModel::init) and [`apply`](ImageModel::apply) run as the root module.
    fn forward(&self, s: &mut Scope, image: Tensor, train: bool) -> (Tensor, Out);

    /// `model.init(key, zeros(input))["params"]`: the parameters, Flax's names and values,
    /// created from the `params` key `key` (a `[2]` uint32 tensor).
    fn init(&self, key: &Tensor, input: &Spec) -> Params<Tensor> {
        let zeros = np::zeros(&input.shape, DType::F32);
        crate::init(&Root(self), key, (zeros, false)).1
    }

    /// `model.apply({"params": params}, image, train=train, rngs=rngs)`: the logits (or the
    /// representation for a model without head) and the `out` dict. `rngs` holds the
    /// streams the model draws from in training (`(Stream::DROPOUT, key)`); deterministic models
    /// and `train = false` need none. Images are cast to float32 first.
    fn apply(
        &self,
        params: &Params<Tensor>,
        image: &Tensor,
        train: bool,
        rngs: &[(Stream, Tensor)],
    ) -> (Tensor, Out) {
        let image = match image.dtype() {
            DType::F32 => image.clone(),
            _ => np::astype(image, DType::F32),
        };
        crate::apply(&Root(self), params, rngs, (image, train))
    }

    /// The model's fixes of older or other checkpoint layouts, applied by
    /// [`npz::load`](crate::npz::load) before merging; `Err` says why the
    /// checkpoint cannot be converted. None by default.
    fn fix_checkpoint(&self, loaded: Params<HostArray>) -> Result<Params<HostArray>, String> {
        Ok(loaded)
    }

    /// `loaded`, a checkpoint value of parameter `name`, resampled to the model's `shape`
    /// (the ViT's `pos_embedding` on another grid); `None` where a shape change is an error.
    fn resample(&self, name: &str, loaded: &HostArray, shape: &[usize]) -> Option<HostArray> {
        let _ = (name, loaded, shape);
        None
    }
}

/// big_vision's `config.init_head_bias`: sets every element of `head/bias` to `value`
/// (e.g. -6.9 for sigmoid losses); `false` when the model has no head.
pub fn init_head_bias(params: &mut Params<Tensor>, value: f64) -> bool {
    let Some(bias) = params.get("head/bias") else {
        return false;
    };
    let filled = np::full(bias.shape(), value, bias.dtype());
    params.insert("head/bias", filled);
    true
}

/// The model names [`build`] knows.
pub const MODEL_NAMES: [&str; 6] = [
    "vit",
    "mlp_mixer",
    "bit",
    "bit_paper",
    "proj.flexi.vit",
    "proj.image_text.two_towers",
];

/// Why a model could not be built from its config.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// No model of this name.
    UnknownModel {
        /// The name asked for.
        name: String,
    },
    /// The config is not a map.
    NotAnObject {
        /// The model.
        model: String,
        /// What was given.
        found: String,
    },
    /// A key the model does not take.
    UnknownKey {
        /// The model.
        model: String,
        /// The key.
        key: String,
        /// The keys it takes.
        known: Vec<String>,
    },
    /// A key with a value of the wrong kind or out of range.
    BadValue {
        /// The model.
        model: String,
        /// The key.
        key: String,
        /// What it must be.
        expected: String,
        /// What it is.
        found: String,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::UnknownModel { name } => write!(
                f,
                "unknown model_name `{name}`; known: {}",
                MODEL_NAMES.join(", ")
            ),
            ModelError::NotAnObject { model, found } => {
                write!(f, "{model}: the model config must be a map, got {found}")
            }
            ModelError::UnknownKey { model, key, known } => write!(
                f,
                "{model}: unknown model config key `{key}`; known: {}",
                known.join(", ")
            ),
            ModelError::BadValue {
                model,
                key,
                expected,
                found,
            } => write!(f, "{model}: model.{key} must be {expected}, got {found}"),
        }
    }
}

impl std::error::Error for ModelError {}

/// The model `name` (big_vision's `config.model_name`) with hyperparameters `config`
/// (`config.model`, with `num_classes` among its keys as `Model(num_classes, **kw)` takes
/// it). Keys follow big_vision's `Model` arguments; unknown names and keys are errors.
pub fn build(name: &str, config: &Value) -> Result<Arc<dyn ImageModel>, ModelError> {
    Ok(match name {
        "vit" => Arc::new(vit::Vit::from_config(config)?),
        "mlp_mixer" => Arc::new(mlp_mixer::MlpMixer::from_config(config)?),
        "bit" => Arc::new(bit::ResNet::from_config(bit::Version::V1, config)?),
        "bit_paper" => Arc::new(bit::ResNet::from_config(bit::Version::V2, config)?),
        "proj.flexi.vit" => Arc::new(proj::flexi::vit::FlexiVit::from_config(config)?),
        "proj.image_text.two_towers" => Arc::new(
            proj::image_text::two_towers::TwoTowers::from_config(config)?,
        ),
        _ => {
            return Err(ModelError::UnknownModel {
                name: name.to_string(),
            })
        }
    })
}

/// An [`ImageModel`] as the root module of `init` and `apply` (the root's name is in no
/// parameter path).
pub(crate) struct Root<'m, M: ?Sized>(pub(crate) &'m M);

impl<M: ImageModel + ?Sized> Module for Root<'_, M> {
    const NAME: &'static str = "Model";
    type In = (Tensor, bool);
    type Out = (Tensor, Out);

    fn apply(&self, s: &mut Scope, (image, train): (Tensor, bool)) -> (Tensor, Out) {
        self.0.forward(s, image, train)
    }
}
