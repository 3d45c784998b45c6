//! big_vision's CLIP-like text encoder (`models/proj/image_text/text_transformer.py`):
//! token embedding, learned position embedding, the ViT encoder, pooling and an optional
//! head, with the tied `vocab_logits` (the embedding table's `attend`).

use bv_core::autodiff::RematPolicy;
use bv_core::numpy as np;
use bv_core::prim;
use bv_core::{DType, Tensor};
use serde_json::Value;

use crate::init::Init;
use crate::layers::{attend, Dense, Embed};
use crate::models::config::Cfg;
use crate::models::vit::{self, Encoder, MapHead};
use crate::models::{ModelError, Out};
use crate::scope::{Module, Scope};

/// How the encoded tokens become one vector (`pool_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextPool {
    /// The last token (with "sticky" EOS tokenization it is always EOS).
    Last,
    /// The first token.
    First,
    /// Mean over tokens (`gap` or `mean`).
    Gap,
    /// Max over tokens (`max` or `gmp`).
    Max,
    /// Multihead attention pooling (`MAPHead_0`).
    Map,
}

/// `text_transformer._Model`: hyperparameters as in big_vision (defaults: width 512, depth
/// 12, MLP 2048, 8 heads, vocabulary 32 000, `pool_type="last"`).
#[derive(Clone, Debug)]
pub struct TextTransformer {
    /// Width of the head (`None`: no head, the pooled representation is the output).
    pub num_classes: Option<usize>,
    /// Token width.
    pub width: usize,
    /// Encoder blocks.
    pub depth: usize,
    /// MLP hidden width.
    pub mlp_dim: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Dropout rate (posemb is not followed by dropout, unlike the ViT).
    pub dropout: f64,
    /// Vocabulary size (rows of `Embed_0/embedding`).
    pub vocab_size: usize,
    /// Pooling.
    pub pool: TextPool,
    /// Scan over stacked encoder blocks.
    pub scan: bool,
    /// Remat policy of the scanned block.
    pub remat_policy: RematPolicy,
}

/// The keys of a text tower config that [`TextTransformer::from_config`] takes.
pub const CONFIG_KEYS: [&str; 11] = [
    "num_classes",
    "variant",
    "width",
    "depth",
    "mlp_dim",
    "num_heads",
    "dropout",
    "vocab_size",
    "pool_type",
    "scan",
    "remat_policy",
];

impl TextTransformer {
    /// `text_transformer.Model(num_classes, variant=..., **kw)`: a ViT size name such as
    /// `"B"` (no patch size) gives width, depth, MLP and heads; explicit keys override it.
    pub fn from_config(config: &Value) -> Result<TextTransformer, ModelError> {
        let c = Cfg::new("proj.image_text.text_transformer", config, &CONFIG_KEYS)?;
        let mut t = TextTransformer {
            num_classes: None,
            width: 512,
            depth: 12,
            mlp_dim: 2048,
            num_heads: 8,
            dropout: 0.0,
            vocab_size: 32_000,
            pool: TextPool::Last,
            scan: false,
            remat_policy: RematPolicy::NothingSaveable,
        };
        if let Some(name) = c.str("variant")? {
            let expected = "a ViT size without patch, like \"B\" or \"So400m\"";
            let (width, depth, mlp_dim, num_heads) =
                vit::variant(name).ok_or_else(|| c.bad("variant", expected))?;
            (t.width, t.depth, t.mlp_dim, t.num_heads) = (width, depth, mlp_dim, num_heads);
        }
        t.num_classes = c.usize("num_classes")?.filter(|&n| n > 0);
        t.width = c.usize("width")?.unwrap_or(t.width);
        t.depth = c.usize("depth")?.unwrap_or(t.depth);
        t.mlp_dim = c.usize("mlp_dim")?.unwrap_or(t.mlp_dim);
        t.num_heads = c.usize("num_heads")?.unwrap_or(t.num_heads);
        t.vocab_size = c.usize("vocab_size")?.unwrap_or(t.vocab_size);
        t.dropout = c.f64("dropout")?.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&t.dropout) {
            return Err(c.bad("dropout", "a rate in [0, 1]"));
        }
        t.pool = match c.str("pool_type")? {
            None | Some("last") => TextPool::Last,
            Some("first") => TextPool::First,
            Some("gap" | "mean") => TextPool::Gap,
            Some("max" | "gmp") => TextPool::Max,
            Some("map") => TextPool::Map,
            Some(_) => {
                return Err(c.bad("pool_type", "one of last, first, gap, mean, max, gmp, map"))
            }
        };
        t.scan = c.bool("scan")?.unwrap_or(false);
        t.remat_policy = match c.str("remat_policy")? {
            None | Some("nothing_saveable") => RematPolicy::NothingSaveable,
            Some("everything_saveable") => RematPolicy::EverythingSaveable,
            Some(_) => {
                let expected = "\"nothing_saveable\" or \"everything_saveable\"";
                return Err(c.bad("remat_policy", expected));
            }
        };
        if t.num_heads == 0 || !t.width.is_multiple_of(t.num_heads) {
            return Err(c.bad("num_heads", "a positive divisor of width"));
        }
        if t.vocab_size == 0 {
            return Err(c.bad("vocab_size", "a positive integer"));
        }
        Ok(t)
    }
}

impl Module for TextTransformer {
    const NAME: &'static str = "_Model";
    /// Token ids `[batch, len]` (any integer type) and `train` (dropout on).
    type In = (Tensor, bool);
    /// The head's output (or the pooled representation without a head) and the `out` dict:
    /// `embedded`, `transformed`, the encoder's `block{i:02}/...` (and `pre_ln`),
    /// `vocab_logits`, `pre_logits`, `logits`.
    type Out = (Tensor, Out);

    fn apply(&self, s: &mut Scope, (text, train): (Tensor, bool)) -> Self::Out {
        let mut out = Out::new();
        let embed = Embed {
            num_embeddings: self.vocab_size,
            features: self.width,
        };
        let (x, table) = s.call(&embed, text);
        out.insert("embedded", x.clone());
        let (n, l, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let init = Init::normal(1.0 / (d as f64).sqrt());
        let pe = s.param("pos_embedding", &init, &[1, l, d], DType::F32);
        let encoder = Encoder {
            depth: self.depth,
            mlp_dim: Some(self.mlp_dim),
            num_heads: self.num_heads,
            dropout: self.dropout,
            scan: self.scan,
            remat_policy: self.remat_policy,
            dtype_mm: DType::F32,
        };
        let (x, enc) = s.call(&encoder, (&x + &pe, !train));
        out.insert("transformed", x.clone());
        for (name, v) in enc {
            out.insert(name, v);
        }
        out.insert("vocab_logits", attend(&table, &x));
        let token = |i: usize| prim::reshape(&prim::slice(&x, &[0, i, 0], &[n, i + 1, d]), &[n, d]);
        let mut x = match self.pool {
            TextPool::Last => token(l - 1),
            TextPool::First => token(0),
            TextPool::Gap => np::mean(&x, 1, false),
            TextPool::Max => np::max(&x, 1, false),
            TextPool::Map => {
                let head = MapHead {
                    mlp_dim: Some(self.mlp_dim),
                    num_heads: self.num_heads,
                };
                s.call(&head, x.clone())
            }
        };
        out.insert("pre_logits", x.clone());
        if let Some(classes) = self.num_classes {
            x = s.call_named("head", &Dense::new(classes), x);
            out.insert("logits", x.clone());
        }
        (x, out)
    }
}
