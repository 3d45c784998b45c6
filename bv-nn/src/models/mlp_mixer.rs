//! big_vision's MLP-Mixer (`big_vision/models/mlp_mixer.py`) with its parameter names,
//! `out` dict and stochastic depth.

use bv_core::{numpy as np, prim, random, DType, Tensor};
use serde_json::Value;

use crate::init::Init;
use crate::layers::{Conv, Dense, LayerNorm};
use crate::models::config::Cfg;
use crate::models::{ImageModel, ModelError, Out};
use crate::scope::{Module, Scope, Stream};

/// `(hidden_dim, num_blocks, channels_mlp_dim, tokens_mlp_dim)` of a named variant.
pub fn variant(name: &str) -> Option<(usize, usize, usize, usize)> {
    Some(match name {
        "S" => (512, 8, 2048, 256),
        "B" => (768, 12, 3072, 384),
        "L" => (1024, 24, 4096, 512),
        "H" => (1280, 32, 5120, 640),
        _ => return None,
    })
}

/// The Mixer's `MlpBlock`: `Dense_0(mlp_dim) → gelu (tanh) → Dense_1(d)`, Flax's default
/// initializers.
#[derive(Clone, Debug)]
pub struct MixerMlp {
    /// Hidden width.
    pub mlp_dim: usize,
}

impl Module for MixerMlp {
    const NAME: &'static str = "MlpBlock";
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        let d = x.shape().last().copied().unwrap_or(1);
        let y = np::gelu(&s.call(&Dense::new(self.mlp_dim), x), true);
        s.call(&Dense::new(d), y)
    }
}

/// `MixerBlock`: token mixing over the transposed tokens, then channel mixing, each a
/// residual branch under stochastic depth `drop_p`.
#[derive(Clone, Debug)]
pub struct MixerBlock {
    /// Token-mixing MLP width.
    pub tokens_mlp_dim: usize,
    /// Channel-mixing MLP width.
    pub channels_mlp_dim: usize,
    /// Probability of dropping each residual branch per example (training only).
    pub drop_p: f64,
}

impl MixerBlock {
    /// big_vision's `_stoch_depth_mask`: `1 - bernoulli(drop_p, (B, 1, 1))`, no rescaling;
    /// `None` (multiply by one) when deterministic or `drop_p` is 0.
    fn mask(&self, s: &mut Scope, x: &Tensor, train: bool) -> Option<Tensor> {
        if !train || self.drop_p == 0.0 {
            return None;
        }
        let mut shape = vec![1; x.rank()];
        shape[0] = x.shape()[0];
        let drop = random::bernoulli(&s.make_rng(Stream::DROPOUT), self.drop_p, &shape);
        let keep = prim::sub(
            &prim::full(&shape, 1.0, DType::F32),
            &np::astype(&drop, DType::F32),
        );
        Some(np::broadcast_to(&keep, x.shape()))
    }
}

impl Module for MixerBlock {
    const NAME: &'static str = "MixerBlock";
    /// `(x, train)`, `x` of shape `[batch, tokens, channels]`.
    type In = (Tensor, bool);
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, (x, train): (Tensor, bool)) -> Tensor {
        let residual = |s: &mut Scope, x: &Tensor, y: Tensor| match self.mask(s, x, train) {
            Some(m) => x + &(&y * &m),
            None => x + &y,
        };
        let y = s.call(&LayerNorm::default(), x.clone());
        let y = np::transpose(&y, &[0, 2, 1]);
        let token = MixerMlp {
            mlp_dim: self.tokens_mlp_dim,
        };
        let y = np::transpose(&s.call_named("token_mixing", &token, y), &[0, 2, 1]);
        let x = residual(s, &x, y);
        let y = s.call(&LayerNorm::default(), x.clone());
        let channel = MixerMlp {
            mlp_dim: self.channels_mlp_dim,
        };
        let y = s.call_named("channel_mixing", &channel, y);
        residual(s, &x, y)
    }
}

/// `mlp_mixer.MlpMixer`.
#[derive(Clone, Debug)]
pub struct MlpMixer {
    /// Patch height and width.
    pub patch_size: (usize, usize),
    /// Classes of the head (`None`: no head).
    pub num_classes: Option<usize>,
    /// Mixer blocks.
    pub num_blocks: usize,
    /// Channels C.
    pub hidden_dim: usize,
    /// Token-mixing MLP width.
    pub tokens_mlp_dim: usize,
    /// Channel-mixing MLP width.
    pub channels_mlp_dim: usize,
    /// Stochastic depth of the last block (block `i` gets `i / (n - 1)` of it).
    pub stoch_depth: f64,
}

/// The keys of `config.model` that [`MlpMixer::from_config`] takes.
pub const CONFIG_KEYS: [&str; 9] = [
    "variant",
    "num_classes",
    "patch_size",
    "num_blocks",
    "hidden_dim",
    "tokens_mlp_dim",
    "channels_mlp_dim",
    "model_name",
    "stoch_depth",
];

impl MlpMixer {
    /// `mlp_mixer.Model(**config)`: a `variant` such as `"B/16"` fills the keys not given.
    pub fn from_config(config: &Value) -> Result<MlpMixer, ModelError> {
        let c = Cfg::new("mlp_mixer", config, &CONFIG_KEYS)?;
        let from_variant = match c.str("variant")? {
            Some(v) => {
                let bad = || c.bad("variant", "a Mixer variant like \"B/16\"");
                let (size, patch) = v.split_once('/').ok_or_else(bad)?;
                let p: usize = patch.parse().map_err(|_| bad())?;
                Some((variant(size).ok_or_else(bad)?, p))
            }
            None => None,
        };
        let required = |key: &str, default: Option<usize>| {
            c.usize(key)?
                .or(default)
                .ok_or_else(|| c.bad(key, "an integer (or a variant)"))
        };
        let v = from_variant.map(|(v, _)| v);
        let patch_size = match (c.pair("patch_size")?, from_variant) {
            (Some(p), _) => p,
            (None, Some((_, p))) => (p, p),
            (None, None) => return Err(c.bad("patch_size", "[height, width] (or a variant)")),
        };
        c.str("model_name")?;
        let stoch_depth = c.f64("stoch_depth")?.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&stoch_depth) {
            return Err(c.bad("stoch_depth", "a rate in [0, 1]"));
        }
        Ok(MlpMixer {
            patch_size,
            num_classes: c.usize("num_classes")?.filter(|&n| n > 0),
            hidden_dim: required("hidden_dim", v.map(|v| v.0))?,
            num_blocks: required("num_blocks", v.map(|v| v.1))?,
            channels_mlp_dim: required("channels_mlp_dim", v.map(|v| v.2))?,
            tokens_mlp_dim: required("tokens_mlp_dim", v.map(|v| v.3))?,
            stoch_depth,
        })
    }
}

impl Module for MlpMixer {
    const NAME: &'static str = "MlpMixer";
    /// Images `[batch, H, W, 3]` and `train` (stochastic depth on).
    type In = (Tensor, bool);
    /// The logits (or `pre_logits` without a head) and the `out` dict.
    type Out = (Tensor, Out);

    fn apply(&self, s: &mut Scope, (image, train): (Tensor, bool)) -> Self::Out {
        let mut out = Out::new();
        let (ph, pw) = self.patch_size;
        let stem = Conv {
            strides: vec![ph, pw],
            ..Conv::new(self.hidden_dim, &[ph, pw])
        };
        let x = s.call_named("stem", &stem, image);
        out.insert("stem", x.clone());
        let (n, h, w, c) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let mut x = prim::reshape(&x, &[n, h * w, c]);
        out.insert("input_tokens", x.clone());
        for i in 0..self.num_blocks {
            let block = MixerBlock {
                tokens_mlp_dim: self.tokens_mlp_dim,
                channels_mlp_dim: self.channels_mlp_dim,
                drop_p: i as f64 / (self.num_blocks.max(2) - 1) as f64 * self.stoch_depth,
            };
            x = s.call(&block, (x, train));
            out.insert(format!("block_{i}"), x.clone());
        }
        let x = s.call_named("pre_head_layer_norm", &LayerNorm::default(), x);
        let mut x = np::mean(&x, 1, false);
        out.insert("pre_logits", x.clone());
        if let Some(classes) = self.num_classes {
            let head = Dense::new(classes).with_init(Init::Zeros, Init::Zeros);
            x = s.call_named("head", &head, x);
            out.insert("logits", x.clone());
        }
        (x, out)
    }
}

impl ImageModel for MlpMixer {
    fn model_name(&self) -> &'static str {
        "mlp_mixer"
    }

    fn forward(&self, s: &mut Scope, image: Tensor, train: bool) -> (Tensor, Out) {
        Module::apply(self, s, (image, train))
    }
}
