//! big_vision's ViT (`big_vision/models/vit.py`) with its parameter names and its `out`
//! dict of intermediate values. Deterministic (no dropout) and unscanned for now.

use bv_core::numpy as np;
use bv_core::prim;
use bv_core::{DType, Tensor};

use crate::init::Init;
use crate::layers::{Conv, ConvPadding, Dense, LayerNorm, MlpBlock, MultiHeadDotProductAttention};
use crate::params::Params;
use crate::scope::{Module, Scope};

/// Position embedding of the patch tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Posemb {
    /// A parameter `pos_embedding`, init normal(1/sqrt(width)).
    Learn,
    /// MoCo-v3's fixed 2-D sine-cosine embedding (no parameter).
    Sincos2d,
}

/// How the encoded tokens become one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Mean over tokens.
    Gap,
    /// A prepended `cls` token (zeros init), taken from position 0.
    Tok,
    /// Token 0 (no extra token).
    First,
    /// Multihead attention pooling with a learned probe (`MAPHead_0`).
    Map,
    /// No pooling.
    None,
}

/// `vit.Model`: hyperparameters as in big_vision (see `decode_variant` for the table).
#[derive(Clone, Debug)]
pub struct Vit {
    /// Classes of the head (`None`: no head).
    pub num_classes: Option<usize>,
    /// Patch height and width.
    pub patch_size: (usize, usize),
    /// Token width D.
    pub width: usize,
    /// Encoder blocks.
    pub depth: usize,
    /// MLP hidden width (4·D when `None`).
    pub mlp_dim: Option<usize>,
    /// Attention heads.
    pub num_heads: usize,
    /// Position embedding.
    pub posemb: Posemb,
    /// Pooling.
    pub pool: Pool,
    /// Width of the tanh `pre_logits` layer, if any.
    pub rep_size: Option<usize>,
    /// Zero-initialize the head kernel (big_vision's default).
    pub head_zeroinit: bool,
}

/// `(width, depth, mlp_dim, num_heads)` of a named variant (`"mu"`, `"Ti"`, `"S"`, ...).
pub fn variant(name: &str) -> Option<(usize, usize, usize, usize)> {
    Some(match name {
        "mu" => (32, 1, 128, 2),
        "Ti" => (192, 12, 768, 3),
        "S" => (384, 12, 1536, 6),
        "M" => (512, 12, 2048, 8),
        "B" => (768, 12, 3072, 12),
        "L" => (1024, 24, 4096, 16),
        "So400m" => (1152, 27, 4304, 16),
        "H" => (1280, 32, 5120, 16),
        "g" => (1408, 40, 6144, 16),
        "g-opt" => (1536, 40, 6144, 16),
        "G" => (1664, 48, 8192, 16),
        "G-opt" => (1536, 48, 8192, 16),
        "e" => (1792, 56, 15360, 16),
        _ => return None,
    })
}

impl Vit {
    /// A model from a variant string such as `"S/16"` with big_vision's defaults (learned
    /// posemb, gap pooling, zero-initialized head); `None` for an unknown variant.
    pub fn from_variant(v: &str, num_classes: Option<usize>) -> Option<Vit> {
        let (name, patch) = v.split_once('/')?;
        let p: usize = patch.parse().ok()?;
        let (width, depth, mlp_dim, num_heads) = variant(name)?;
        Some(Vit {
            num_classes,
            patch_size: (p, p),
            width,
            depth,
            mlp_dim: Some(mlp_dim),
            num_heads,
            posemb: Posemb::Learn,
            pool: Pool::Gap,
            rep_size: None,
            head_zeroinit: true,
        })
    }
}

/// MoCo-v3's 2-D sine-cosine position embedding `(1, h·w, width)`, computed on the host.
pub fn posemb_sincos_2d(h: usize, w: usize, width: usize) -> Tensor {
    let q = width / 4;
    let omega: Vec<f64> = (0..q)
        .map(|i| 1.0 / 10_000f64.powf(i as f64 / (q.max(2) - 1) as f64))
        .collect();
    let mut pe = Vec::with_capacity(h * w * width);
    for y in 0..h {
        for x in 0..w {
            let row = |c: f64, f: fn(f64) -> f64| omega.iter().map(move |o| f(c * o) as f32);
            pe.extend(row(x as f64, f64::sin));
            pe.extend(row(x as f64, f64::cos));
            pe.extend(row(y as f64, f64::sin));
            pe.extend(row(y as f64, f64::cos));
        }
    }
    prim::constant(&pe, &[1, h * w, 4 * q])
}

/// Intermediate values, by big_vision's `out` names (`encoder/block00/+sa`, `logits`, ...).
pub type Out = Params<Tensor>;

fn attention(num_heads: usize) -> MultiHeadDotProductAttention {
    MultiHeadDotProductAttention {
        num_heads,
        kernel_init: Init::xavier_uniform(),
    }
}

/// One pre-LN transformer block (`Encoder1DBlock`); also returns its `sa`, `+sa`, `mlp`
/// and `+mlp` values.
#[derive(Clone, Debug)]
pub struct EncoderBlock {
    /// MLP hidden width.
    pub mlp_dim: Option<usize>,
    /// Attention heads.
    pub num_heads: usize,
}

impl Module for EncoderBlock {
    const NAME: &'static str = "Encoder1DBlock";
    type In = Tensor;
    type Out = (Tensor, [Tensor; 4]);

    fn apply(&self, s: &mut Scope, x: Tensor) -> Self::Out {
        let y = s.call(&LayerNorm::default(), x.clone());
        let sa = s.call(&attention(self.num_heads), (y.clone(), y));
        let x = &x + &sa;
        let y = s.call(&LayerNorm::default(), x.clone());
        let mlp = s.call(
            &MlpBlock {
                mlp_dim: self.mlp_dim,
            },
            y,
        );
        let out = &x + &mlp;
        (out.clone(), [sa, x, mlp, out])
    }
}

/// The encoder (`Transformer`): `depth` blocks named `encoderblock_{i}`, then
/// `encoder_norm`. Also returns `block{i:02}/...` and `pre_ln` values.
#[derive(Clone, Debug)]
pub struct Encoder {
    /// Blocks.
    pub depth: usize,
    /// MLP hidden width.
    pub mlp_dim: Option<usize>,
    /// Attention heads.
    pub num_heads: usize,
}

impl Module for Encoder {
    const NAME: &'static str = "Encoder";
    type In = Tensor;
    type Out = (Tensor, Out);

    fn apply(&self, s: &mut Scope, mut x: Tensor) -> Self::Out {
        let mut out = Out::new();
        let block = EncoderBlock {
            mlp_dim: self.mlp_dim,
            num_heads: self.num_heads,
        };
        for i in 0..self.depth {
            let (y, parts) = s.call_named(&format!("encoderblock_{i}"), &block, x);
            for (name, v) in ["sa", "+sa", "mlp", "+mlp"].iter().zip(parts) {
                out.insert(format!("block{i:02}/{name}"), v);
            }
            x = y;
        }
        out.insert("pre_ln", x.clone());
        (s.call_named("encoder_norm", &LayerNorm::default(), x), out)
    }
}

/// big_vision's `MAPHead`: a learned probe attends over the tokens, then `x + MLP(LN(x))`;
/// returns token 0.
#[derive(Clone, Debug)]
pub struct MapHead {
    /// MLP hidden width.
    pub mlp_dim: Option<usize>,
    /// Attention heads.
    pub num_heads: usize,
}

impl Module for MapHead {
    const NAME: &'static str = "MAPHead";
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        let (n, d) = (x.shape()[0], x.shape()[2]);
        let probe = s.param("probe", &Init::xavier_uniform(), &[1, 1, d], DType::F32);
        let probe = prim::broadcast_in_dim(&probe, &[n, 1, d], &[0, 1, 2]);
        let x = s.call(&attention(self.num_heads), (probe, x));
        let y = s.call(&LayerNorm::default(), x.clone());
        let x = &x
            + &s.call(
                &MlpBlock {
                    mlp_dim: self.mlp_dim,
                },
                y,
            );
        prim::reshape(&prim::slice(&x, &[0, 0, 0], &[n, 1, d], &[]), &[n, d])
    }
}

impl Module for Vit {
    const NAME: &'static str = "_Model";
    /// Images `[batch, H, W, 3]`.
    type In = Tensor;
    /// The logits (or the pooled representation without a head) and the `out` dict.
    type Out = (Tensor, Out);

    fn apply(&self, s: &mut Scope, image: Tensor) -> Self::Out {
        let mut out = Out::new();
        let (ph, pw) = self.patch_size;
        let stem = Conv {
            strides: vec![ph, pw],
            padding: ConvPadding::Valid,
            ..Conv::new(self.width, &[ph, pw])
        };
        let x = s.call_named("embedding", &stem, image);
        out.insert("stem", x.clone());
        let (n, h, w, c) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let x = prim::reshape(&x, &[n, h * w, c]);
        let pe = match self.posemb {
            Posemb::Learn => {
                let init = Init::normal(1.0 / (c as f64).sqrt());
                s.param("pos_embedding", &init, &[1, h * w, c], DType::F32)
            }
            Posemb::Sincos2d => posemb_sincos_2d(h, w, c),
        };
        let mut x = &x + &pe;
        out.insert("with_posemb", x.clone());
        if self.pool == Pool::Tok {
            let cls = s.param("cls", &Init::Zeros, &[1, 1, c], DType::F32);
            let cls = prim::broadcast_in_dim(&cls, &[n, 1, c], &[0, 1, 2]);
            x = prim::concatenate(&[&cls, &x], 1);
        }
        let encoder = Encoder {
            depth: self.depth,
            mlp_dim: self.mlp_dim,
            num_heads: self.num_heads,
        };
        let (x, enc) = s.call_named("Transformer", &encoder, x);
        for (name, v) in enc {
            out.insert(format!("encoder/{name}"), v);
        }
        out.insert("encoded", x.clone());
        let l = x.shape()[1];
        let first =
            |t: &Tensor| prim::reshape(&prim::slice(t, &[0, 0, 0], &[n, 1, c], &[]), &[n, c]);
        let (mut x, encoded) = match self.pool {
            Pool::Gap => (np::mean(&x, 1, false), x),
            Pool::First => (first(&x), x),
            Pool::Tok => (first(&x), prim::slice(&x, &[0, 1, 0], &[n, l, c], &[])),
            Pool::Map => {
                let head = MapHead {
                    mlp_dim: self.mlp_dim,
                    num_heads: self.num_heads,
                };
                (s.call(&head, x.clone()), x)
            }
            Pool::None => (x.clone(), x),
        };
        if self.pool != Pool::None {
            out.insert("head_input", x.clone());
        }
        let mut x_2d = prim::reshape(&encoded, &[n, h, w, c]);
        if let Some(rep) = self.rep_size {
            let hid = Dense::new(rep);
            x_2d = np::tanh(&s.call_named("pre_logits", &hid, x_2d));
            x = np::tanh(&s.call_named("pre_logits", &hid, x));
            out.insert("pre_logits_2d", x_2d.clone());
        }
        out.insert("pre_logits", x.clone());
        if let Some(classes) = self.num_classes {
            let mut head = Dense::new(classes);
            if self.head_zeroinit {
                head.kernel_init = Init::Zeros;
            }
            out.insert("logits_2d", s.call_named("head", &head, x_2d));
            x = s.call_named("head", &head, x);
            out.insert("logits", x.clone());
        }
        (x, out)
    }
}
