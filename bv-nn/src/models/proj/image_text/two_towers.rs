//! big_vision's two-tower model (`models/proj/image_text/two_towers.py`) of LiT, SigLIP and
//! SigLIP 2: any registered image model under `img/`, the text transformer under `txt/`, a
//! learned log-temperature `t` and an optional bias `b`; both embeddings L2-normalized.

use std::sync::Arc;

use bv_core::numpy as np;
use bv_core::prim;
use bv_core::{DType, Spec, Tensor};
use serde_json::{Map, Value};

use super::text_transformer::TextTransformer;
use crate::models::config::Cfg;
use crate::models::{self, ImageModel, ModelError, Out, Root};
use crate::scope::{Module, Scope, Stream};
use crate::Params;

/// `two_towers.Model`.
#[derive(Clone, Debug)]
pub struct TwoTowers {
    /// The image tower (`image_model` built from `image`, `num_classes` = the image out dim).
    pub image: Arc<dyn ImageModel>,
    /// The text tower.
    pub text: TextTransformer,
    /// `temperature_init`: `t` starts at its log.
    pub temperature_init: f64,
    /// `bias_init`: the value of `b`; `None` creates no `b`.
    pub bias_init: Option<f64>,
}

/// The keys of `config.model` that [`TwoTowers::from_config`] takes.
pub const CONFIG_KEYS: [&str; 7] = [
    "image",
    "text",
    "image_model",
    "text_model",
    "out_dim",
    "temperature_init",
    "bias_init",
];

/// The text models a two-tower model can hold.
pub const TEXT_MODELS: [&str; 1] = ["proj.image_text.text_transformer"];

/// `embedding / (|embedding| + 1e-8)` and the norm `[batch, 1]`, as big_vision normalizes.
fn normalize(z: &Tensor) -> (Tensor, Tensor) {
    let norm = np::sqrt(&np::sum(&(z * z), 1, true));
    (z / (&norm + 1e-8), norm)
}

impl TwoTowers {
    /// `two_towers.Model(**config)`: `image` and `text` are the towers' own configs (their
    /// `num_classes` defaults to the out dims), `out_dim` an integer or an `[image, text]`
    /// pair where `null` means no head, `temperature_init` (default 1) and `bias_init`.
    pub fn from_config(config: &Value) -> Result<TwoTowers, ModelError> {
        let c = Cfg::new("proj.image_text.two_towers", config, &CONFIG_KEYS)?;
        let text_model = c.str("text_model")?.unwrap_or(TEXT_MODELS[0]);
        if !TEXT_MODELS.contains(&text_model) {
            let expected = format!("one of {}", TEXT_MODELS.join(", "));
            return Err(c.bad("text_model", &expected));
        }
        let image_model = c.str("image_model")?.unwrap_or("vit");
        let pair = "an integer or an [image, text] pair of integers or null";
        let dims = match config.get("out_dim") {
            None => (Some(128), Some(128)),
            Some(Value::Array(v)) if v.len() == 2 => {
                let dim = |v: &Value| match v {
                    Value::Null => Ok(None),
                    v => v
                        .as_u64()
                        .map(|n| Some(n as usize))
                        .ok_or_else(|| c.bad("out_dim", pair)),
                };
                (dim(&v[0])?, dim(&v[1])?)
            }
            Some(_) => {
                let d = c.usize("out_dim").map_err(|_| c.bad("out_dim", pair))?;
                (d, d)
            }
        };
        let tower = |key: &str, dim: Option<usize>| -> Result<Value, ModelError> {
            let mut m = Map::new();
            m.insert("num_classes".into(), dim.map_or(Value::Null, Value::from));
            match config.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Object(o)) => m.extend(o.clone()),
                Some(_) => return Err(c.bad(key, "a map of the tower's config")),
            }
            Ok(Value::Object(m))
        };
        let image = models::build(image_model, &tower("image", dims.0)?)?;
        let text = TextTransformer::from_config(&tower("text", dims.1)?)?;
        let temperature_init = c.f64("temperature_init")?.unwrap_or(1.0);
        if temperature_init <= 0.0 {
            return Err(c.bad("temperature_init", "a positive number"));
        }
        Ok(TwoTowers {
            image,
            text,
            temperature_init,
            bias_init: c.f64("bias_init")?,
        })
    }

    /// `model.init(key, zeros(image), zeros(text))["params"]`: both towers, `t` and `b`.
    pub fn init_both(&self, key: &Tensor, image: &Spec, text: &Spec) -> Params<Tensor> {
        let x = np::zeros(&image.shape, DType::F32);
        let ids = np::zeros(&text.shape, DType::I32);
        crate::init(self, key, (Some(x), Some(ids), false)).1
    }

    /// `model.apply({"params": params}, image, text, train=train, rngs=rngs)`: the
    /// normalized image and text embeddings (for the inputs given) and the `out` dict
    /// (`img/...`, `txt/...`, `t` = exp(`t`), `t/parameter`, `b`).
    pub fn apply_both(
        &self,
        params: &Params<Tensor>,
        image: Option<&Tensor>,
        text: Option<&Tensor>,
        train: bool,
        rngs: &[(Stream, Tensor)],
    ) -> (Option<Tensor>, Option<Tensor>, Out) {
        crate::apply(self, params, rngs, (image.cloned(), text.cloned(), train))
    }
}

impl Module for TwoTowers {
    const NAME: &'static str = "Model";
    /// `(image, text, train)`; either input may be absent (few-shot, zero-shot texts).
    type In = (Option<Tensor>, Option<Tensor>, bool);
    /// `(zimg, ztxt, out)`.
    type Out = (Option<Tensor>, Option<Tensor>, Out);

    fn apply(&self, s: &mut Scope, (image, text, train): Self::In) -> Self::Out {
        let mut out = Out::new();
        let ztxt = text.map(|text| {
            let (z, parts) = s.call_named("txt", &self.text, (text, train));
            for (k, v) in parts {
                out.insert(format!("txt/{k}"), v);
            }
            let (z, norm) = normalize(&z);
            out.insert("txt/norm", norm);
            out.insert("txt/normalized", z.clone());
            z
        });
        let zimg = image.map(|image| {
            let image = match image.dtype() {
                DType::F32 => image,
                _ => np::astype(&image, DType::F32),
            };
            let (z, parts) = s.call_named("img", &Root(self.image.as_ref()), (image, train));
            for (k, v) in parts {
                out.insert(format!("img/{k}"), v);
            }
            let (z, norm) = normalize(&z);
            out.insert("img/norm", norm);
            out.insert("img/normalized", z.clone());
            z
        });
        let t_init = self.temperature_init;
        let t = s.param_with("t", &[1], DType::F32, |_| {
            prim::log(&prim::full(&[1], t_init, DType::F32))
        });
        out.insert("t", np::exp(&t));
        out.insert("t/parameter", t);
        if let Some(b) = self.bias_init {
            let b = s.param_with("b", &[1], DType::F32, |_| prim::full(&[1], b, DType::F32));
            out.insert("b", b);
        }
        (zimg, ztxt, out)
    }
}

impl ImageModel for TwoTowers {
    fn model_name(&self) -> &'static str {
        "proj.image_text.two_towers"
    }

    /// The image-only call (`model.apply(params, image)`): `zimg` and the `out` dict.
    fn forward(&self, s: &mut Scope, image: Tensor, train: bool) -> (Tensor, Out) {
        let (zimg, _, out) = Module::apply(self, s, (Some(image), None, train));
        (zimg.expect("an image was given"), out)
    }
}
