//! big_vision's ViT (`big_vision/models/vit.py`) with its parameter names and its `out`
//! dict of intermediate values, dropout as Flax draws it, and [`Vit::from_config`] for
//! big_vision's `config.model` keys. With `scan` the encoder blocks run in a loop over
//! parameters stacked under `Transformer/encoderblock`; checkpoints convert between the two
//! layouts on load ([`pyloop_to_scan`], [`scan_to_pyloop`]).

use std::collections::BTreeMap;

use bv_core::autodiff::RematPolicy;
use bv_core::io::HostArray;
use bv_core::numpy as np;
use bv_core::prim;
use bv_core::{DType, Tensor};
use serde_json::Value;

use crate::init::Init;
use crate::layers::{
    Conv, ConvPadding, Dense, Dropout, LayerNorm, MlpBlock, MultiHeadDotProductAttention,
};
use crate::models::config::Cfg;
use crate::models::{ImageModel, ModelError, Out};
use crate::scope::{Module, ScanLift, Scope, Stream};
use crate::Params;

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
    /// Dropout rate after the posemb, in the MLPs and on both residual branches.
    pub dropout: f64,
    /// Run the encoder blocks in a `scan` over stacked parameters (`Transformer/encoderblock`).
    pub scan: bool,
    /// What the scanned blocks keep for the backward pass (ignored without `scan`).
    pub remat_policy: RematPolicy,
    /// big_vision's `dtype_mm`: the type of the image, the stem, the position embedding
    /// and the residual stream of the encoder blocks, whose matmuls run in it; LayerNorm
    /// outputs, the head and all other parameters stay f32.
    pub dtype_mm: DType,
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
            dropout: 0.0,
            scan: false,
            remat_policy: RematPolicy::NothingSaveable,
            dtype_mm: DType::F32,
        })
    }

    /// `vit.Model(**config)`: big_vision's keys (`variant`, `num_classes`, `patch_size`,
    /// `width`, `depth`, `mlp_dim`, `num_heads`, `posemb`, `rep_size`, `dropout`,
    /// `pool_type`, `head_zeroinit`, `scan`, `remat_policy`, `dtype_mm`); explicit keys
    /// override the variant's.
    pub fn from_config(config: &Value) -> Result<Vit, ModelError> {
        let c = Cfg::new("vit", config, &CONFIG_KEYS)?;
        let mut v = match c.str("variant")? {
            Some(name) => {
                let (size, patch) = name.split_once('/').unwrap_or((name, ""));
                let (width, depth, mlp_dim, num_heads) =
                    variant(size).ok_or_else(|| c.bad("variant", "a ViT variant like \"B/16\""))?;
                let p = match patch {
                    "" => 16,
                    p => p
                        .parse()
                        .map_err(|_| c.bad("variant", "a ViT variant like \"B/16\""))?,
                };
                Vit {
                    patch_size: (p, p),
                    width,
                    depth,
                    mlp_dim: Some(mlp_dim),
                    num_heads,
                    ..Vit::from_variant("B/16", None).expect("a known variant")
                }
            }
            None => Vit {
                mlp_dim: None,
                ..Vit::from_variant("B/16", None).expect("a known variant")
            },
        };
        v.num_classes = c.usize("num_classes")?.filter(|&n| n > 0);
        v.patch_size = c.pair("patch_size")?.unwrap_or(v.patch_size);
        v.width = c.usize("width")?.unwrap_or(v.width);
        v.depth = c.usize("depth")?.unwrap_or(v.depth);
        v.mlp_dim = c.usize("mlp_dim")?.or(v.mlp_dim);
        v.num_heads = c.usize("num_heads")?.unwrap_or(v.num_heads);
        v.posemb = match c.str("posemb")? {
            None | Some("learn") => Posemb::Learn,
            Some("sincos2d") => Posemb::Sincos2d,
            Some(_) => return Err(c.bad("posemb", "\"learn\" or \"sincos2d\"")),
        };
        v.rep_size = match c.bool("rep_size") {
            Ok(b) => b.and_then(|b| b.then_some(v.width)),
            Err(_) => c
                .usize("rep_size")
                .map_err(|_| c.bad("rep_size", "true, false or an integer"))?
                .filter(|&n| n > 0),
        };
        v.dropout = c.f64("dropout")?.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&v.dropout) {
            return Err(c.bad("dropout", "a rate in [0, 1]"));
        }
        v.pool = match c.str("pool_type")? {
            None | Some("gap") => Pool::Gap,
            Some("tok") => Pool::Tok,
            Some("0") => Pool::First,
            Some("map") => Pool::Map,
            Some("none") => Pool::None,
            Some(_) => return Err(c.bad("pool_type", "one of gap, tok, 0, map, none")),
        };
        v.head_zeroinit = c.bool("head_zeroinit")?.unwrap_or(true);
        v.scan = c.bool("scan")?.unwrap_or(false);
        v.remat_policy = match c.str("remat_policy")? {
            None | Some("nothing_saveable") => RematPolicy::NothingSaveable,
            Some("everything_saveable") => RematPolicy::EverythingSaveable,
            Some(_) => {
                let expected = "\"nothing_saveable\" or \"everything_saveable\"";
                return Err(c.bad("remat_policy", expected));
            }
        };
        v.dtype_mm = c.dtype_mm()?;
        if v.width % v.num_heads.max(1) != 0 || v.num_heads == 0 {
            return Err(c.bad("num_heads", "a positive divisor of width"));
        }
        Ok(v)
    }
}

/// The keys of `config.model` that [`Vit::from_config`] takes.
pub const CONFIG_KEYS: [&str; 15] = [
    "variant",
    "num_classes",
    "patch_size",
    "width",
    "depth",
    "mlp_dim",
    "num_heads",
    "posemb",
    "rep_size",
    "dropout",
    "pool_type",
    "head_zeroinit",
    "scan",
    "remat_policy",
    "dtype_mm",
];

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

/// The prefix of the stacked encoder-block parameters of a `scan` model.
const SCANNED: &str = "Transformer/encoderblock/";

/// The prefix of the encoder blocks of a `scan=False` model, followed by `{i}/`.
const PYLOOP: &str = "Transformer/encoderblock_";

/// `vit.fix_old_checkpoints`: `pos_embedding` moved out of `Transformer` (and its
/// `posembed_input`), and a combined `[cls]`+grid posemb split, the cls part added to `cls`.
pub fn fix_old_checkpoints(loaded: Params<HostArray>) -> Result<Params<HostArray>, String> {
    let mut out: Params<HostArray> = loaded
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "Transformer/posembed_input/pos_embedding" | "Transformer/pos_embedding" => {
                ("pos_embedding".to_string(), v)
            }
            _ => (k, v),
        })
        .collect();
    let Some(pe) = out.get("pos_embedding").cloned() else {
        return Ok(out);
    };
    let &[1, n, d] = pe.shape() else {
        return Ok(out);
    };
    let g = (n as f64).sqrt() as usize;
    if g * g + 1 != n {
        return Ok(out);
    }
    let row = pe.bytes().len() / n;
    let grid = HostArray::from_bytes(pe.dtype(), &[1, n - 1, d], pe.bytes()[row..].to_vec())
        .map_err(|e| format!("`pos_embedding`: {e}"))?;
    out.insert("pos_embedding", grid);
    if let Some(cls) = out.get("cls") {
        if cls.len() != d {
            return Err(format!(
                "`cls` has shape {:?}, `pos_embedding` has width {d}",
                cls.shape()
            ));
        }
        let sum: Vec<f32> = cls
            .to_f64()
            .iter()
            .zip(pe.to_f64())
            .map(|(a, b)| (a + b) as f32)
            .collect();
        let sum = HostArray::from_slice(&sum, cls.shape()).map_err(|e| format!("`cls`: {e}"))?;
        out.insert("cls", sum);
    }
    Ok(out)
}

/// `vit.pyloop_to_scan`: the blocks `Transformer/encoderblock_{i}/...` (numbered from 0
/// without gaps) stacked into `Transformer/encoderblock/...` with block `i` at index `i` of a
/// new leading axis; every block must have the same names, shapes and types. The stacked
/// entries take the place of the first block entry; other entries are unchanged.
pub fn pyloop_to_scan(params: Params<HostArray>) -> Result<Params<HostArray>, String> {
    let mut blocks: BTreeMap<usize, Params<HostArray>> = BTreeMap::new();
    let mut others: Vec<(String, HostArray)> = Vec::new();
    let mut at = None;
    for (k, v) in params {
        let Some((i, rest)) = k.strip_prefix(PYLOOP).and_then(|r| r.split_once('/')) else {
            others.push((k, v));
            continue;
        };
        let i: usize = i
            .parse()
            .map_err(|_| format!("`{k}`: `encoderblock_{i}` is not a numbered encoder block"))?;
        at.get_or_insert(others.len());
        blocks.entry(i).or_default().insert(rest, v);
    }
    let (Some(at), Some((&last, _))) = (at, blocks.last_key_value()) else {
        return Ok(others.into_iter().collect());
    };
    if let Some(gap) = (0..last).find(|i| !blocks.contains_key(i)) {
        return Err(format!(
            "the checkpoint has `{PYLOOP}{last}` but no `{PYLOOP}{gap}`: cannot stack its blocks"
        ));
    }
    let first = &blocks[&0];
    for (i, block) in &blocks {
        let extra = block.names().find(|n| first.get(n).is_none());
        let lacking = first.names().find(|n| block.get(n).is_none());
        if let Some(n) = extra {
            return Err(format!(
                "`{PYLOOP}{i}/{n}` has no counterpart in `{PYLOOP}0`: blocks differ"
            ));
        }
        if let Some(n) = lacking {
            return Err(format!(
                "`{PYLOOP}{i}/{n}` is missing (`{PYLOOP}0/{n}` exists): blocks differ"
            ));
        }
    }
    let depth = last + 1;
    let mut stacked = Vec::with_capacity(first.len());
    for (rest, v0) in first.iter() {
        let mut bytes = Vec::with_capacity(v0.bytes().len() * depth);
        for (i, block) in &blocks {
            let v = block
                .get(rest)
                .expect("checked: every block has every name");
            if v.shape() != v0.shape() || v.dtype() != v0.dtype() {
                return Err(format!(
                    "`{PYLOOP}{i}/{rest}` is {} {:?} but `{PYLOOP}0/{rest}` is {} {:?}: \
                     blocks of different shapes cannot be stacked",
                    v.dtype(),
                    v.shape(),
                    v0.dtype(),
                    v0.shape()
                ));
            }
            bytes.extend_from_slice(v.bytes());
        }
        let mut shape = vec![depth];
        shape.extend_from_slice(v0.shape());
        let name = format!("{SCANNED}{rest}");
        let v = HostArray::from_bytes(v0.dtype(), &shape, bytes)
            .map_err(|e| format!("`{name}`: {e}"))?;
        stacked.push((name, v));
    }
    others.splice(at..at, stacked);
    Ok(others.into_iter().collect())
}

/// `vit.scan_to_pyloop`: every `Transformer/encoderblock/...` entry, all with the same
/// leading (depth) dimension, split into `Transformer/encoderblock_{i}/...`; the blocks take
/// the place of the first stacked entry.
pub fn scan_to_pyloop(params: Params<HostArray>) -> Result<Params<HostArray>, String> {
    let mut stacked: Vec<(String, HostArray)> = Vec::new();
    let mut others: Vec<(String, HostArray)> = Vec::new();
    let mut at = None;
    for (k, v) in params {
        if k.starts_with(SCANNED) {
            at.get_or_insert(others.len());
            stacked.push((k, v));
        } else {
            others.push((k, v));
        }
    }
    let (Some(at), Some((k0, v0))) = (at, stacked.first()) else {
        return Ok(others.into_iter().collect());
    };
    let Some(&depth) = v0.shape().first() else {
        return Err(format!("`{k0}` is a scalar, not stacked on a depth axis"));
    };
    if let Some((k, v)) = stacked
        .iter()
        .find(|(_, v)| v.shape().first() != Some(&depth))
    {
        return Err(format!(
            "`{k}` has shape {:?} but `{k0}` has {:?}: stacked encoder parameters must share \
             the leading (depth) axis",
            v.shape(),
            v0.shape()
        ));
    }
    let mut blocks = Vec::with_capacity(depth * stacked.len());
    for i in 0..depth {
        for (k, v) in &stacked {
            let rest = &k[SCANNED.len()..];
            let chunk = v.bytes().len() / depth;
            let name = format!("{PYLOOP}{i}/{rest}");
            let slice = v.bytes()[i * chunk..(i + 1) * chunk].to_vec();
            let block = HostArray::from_bytes(v.dtype(), &v.shape()[1..], slice)
                .map_err(|e| format!("`{name}`: {e}"))?;
            blocks.push((name, block));
        }
    }
    others.splice(at..at, blocks);
    Ok(others.into_iter().collect())
}

fn attention(num_heads: usize, dtype: Option<DType>) -> MultiHeadDotProductAttention {
    MultiHeadDotProductAttention {
        num_heads,
        kernel_init: Init::xavier_uniform(),
        dtype,
    }
}

/// One pre-LN transformer block (`Encoder1DBlock`); also returns its `out` dict: `sa`,
/// `+sa`, `mlp` and `+mlp`.
#[derive(Clone, Debug)]
pub struct EncoderBlock {
    /// MLP hidden width.
    pub mlp_dim: Option<usize>,
    /// Attention heads.
    pub num_heads: usize,
    /// Dropout rate.
    pub dropout: f64,
    /// Computation type of the attention and the MLP (`dtype_mm`).
    pub dtype_mm: DType,
}

impl Module for EncoderBlock {
    const NAME: &'static str = "Encoder1DBlock";
    /// `(x, deterministic)`.
    type In = (Tensor, bool);
    type Out = (Tensor, Out);

    fn apply(&self, s: &mut Scope, (x, det): (Tensor, bool)) -> Self::Out {
        let drop = Dropout { rate: self.dropout };
        let y = s.call(&LayerNorm::default(), x.clone());
        let sa = s.call(
            &attention(self.num_heads, Some(self.dtype_mm)),
            (y.clone(), y),
        );
        let x = &x + &s.call(&drop, (sa.clone(), det));
        let y = s.call(&LayerNorm::default(), x.clone());
        let mlp = MlpBlock {
            mlp_dim: self.mlp_dim,
            dropout: self.dropout,
            dtype: Some(self.dtype_mm),
        };
        let mlp = s.call(&mlp, (y, det));
        let y = &x + &s.call(&drop, (mlp.clone(), det));
        let out = [("sa", sa), ("+sa", x), ("mlp", mlp), ("+mlp", y.clone())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        (y, out)
    }
}

/// The encoder (`Transformer`): `depth` blocks named `encoderblock_{i}` (or, with `scan`,
/// one scanned and rematerialized `encoderblock`), then `encoder_norm`. Also returns
/// `block{i:02}/...` and, without `scan` as in big_vision, `pre_ln`.
#[derive(Clone, Debug)]
pub struct Encoder {
    /// Blocks.
    pub depth: usize,
    /// MLP hidden width.
    pub mlp_dim: Option<usize>,
    /// Attention heads.
    pub num_heads: usize,
    /// Dropout rate.
    pub dropout: f64,
    /// Scan over stacked blocks.
    pub scan: bool,
    /// Remat policy of the scanned block.
    pub remat_policy: RematPolicy,
    /// Computation type of the blocks (`dtype_mm`).
    pub dtype_mm: DType,
}

impl Module for Encoder {
    const NAME: &'static str = "Encoder";
    /// `(x, deterministic)`.
    type In = (Tensor, bool);
    type Out = (Tensor, Out);

    fn apply(&self, s: &mut Scope, (mut x, det): (Tensor, bool)) -> Self::Out {
        let mut out = Out::new();
        let block = EncoderBlock {
            mlp_dim: self.mlp_dim,
            num_heads: self.num_heads,
            dropout: self.dropout,
            dtype_mm: self.dtype_mm,
        };
        if self.scan {
            let lift = ScanLift {
                length: self.depth,
                split_rngs: &[Stream::PARAMS, Stream::DROPOUT],
                remat: Some(self.remat_policy),
            };
            let (y, stacked): (Tensor, Out) = s.scan_named("encoderblock", &block, &lift, (x, det));
            for i in 0..self.depth {
                for (name, v) in stacked.iter() {
                    out.insert(format!("block{i:02}/{name}"), layer(v, i));
                }
            }
            x = y;
        } else {
            for i in 0..self.depth {
                let (y, parts) = s.call_named(&format!("encoderblock_{i}"), &block, (x, det));
                for (name, v) in parts {
                    out.insert(format!("block{i:02}/{name}"), v);
                }
                x = y;
            }
            out.insert("pre_ln", x.clone());
        }
        (s.call_named("encoder_norm", &LayerNorm::default(), x), out)
    }
}

/// Slice `i` of a stacked value (`v[i]`).
fn layer(v: &Tensor, i: usize) -> Tensor {
    let mut start = vec![0; v.rank()];
    let mut limit = v.shape().to_vec();
    start[0] = i;
    limit[0] = i + 1;
    prim::reshape(&prim::slice(v, &start, &limit), &v.shape()[1..])
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
        let probe = s.param("probe", &Init::xavier_uniform(), &[1, 1, d], x.dtype());
        let probe = prim::broadcast_in_dim(&probe, &[n, 1, d], &[0, 1, 2]);
        let x = s.call(&attention(self.num_heads, None), (probe, x));
        let y = s.call(&LayerNorm::default(), x.clone());
        let mlp = MlpBlock {
            mlp_dim: self.mlp_dim,
            ..MlpBlock::default()
        };
        let x = &x + &s.call(&mlp, (y, true));
        prim::reshape(&prim::slice(&x, &[0, 0, 0], &[n, 1, d]), &[n, d])
    }
}

impl Module for Vit {
    const NAME: &'static str = "_Model";
    /// Images `[batch, H, W, 3]` and `train` (dropout on).
    type In = (Tensor, bool);
    /// The logits (or the pooled representation without a head) and the `out` dict.
    type Out = (Tensor, Out);

    fn apply(&self, s: &mut Scope, (image, train): (Tensor, bool)) -> Self::Out {
        let mut out = Out::new();
        let (ph, pw) = self.patch_size;
        let stem = Conv {
            strides: vec![ph, pw],
            padding: ConvPadding::Valid,
            dtype: Some(self.dtype_mm),
            ..Conv::new(self.width, &[ph, pw])
        };
        let image = np::astype(&image, self.dtype_mm);
        let x = s.call_named("embedding", &stem, image);
        out.insert("stem", x.clone());
        let (n, h, w, c) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let x = prim::reshape(&x, &[n, h * w, c]);
        let pe = match self.posemb {
            Posemb::Learn => {
                let init = Init::normal(1.0 / (c as f64).sqrt());
                s.param("pos_embedding", &init, &[1, h * w, c], x.dtype())
            }
            Posemb::Sincos2d => np::astype(&posemb_sincos_2d(h, w, c), x.dtype()),
        };
        let mut x = &x + &pe;
        out.insert("with_posemb", x.clone());
        if self.pool == Pool::Tok {
            let cls = s.param("cls", &Init::Zeros, &[1, 1, c], x.dtype());
            let cls = prim::broadcast_in_dim(&cls, &[n, 1, c], &[0, 1, 2]);
            x = prim::concatenate(&[&cls, &x], 1);
        }
        let x = s.call(&Dropout { rate: self.dropout }, (x, !train));
        let encoder = Encoder {
            depth: self.depth,
            mlp_dim: self.mlp_dim,
            num_heads: self.num_heads,
            dropout: self.dropout,
            scan: self.scan,
            remat_policy: self.remat_policy,
            dtype_mm: self.dtype_mm,
        };
        let (x, enc) = s.call_named("Transformer", &encoder, (x, !train));
        for (name, v) in enc {
            out.insert(format!("encoder/{name}"), v);
        }
        out.insert("encoded", x.clone());
        let l = x.shape()[1];
        let first = |t: &Tensor| prim::reshape(&prim::slice(t, &[0, 0, 0], &[n, 1, c]), &[n, c]);
        let (x, encoded) = match self.pool {
            Pool::Gap => (np::mean(&x, 1, false), x),
            Pool::First => (first(&x), x),
            Pool::Tok => (first(&x), prim::slice(&x, &[0, 1, 0], &[n, l, c])),
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
        let x_2d = prim::reshape(&encoded, &[n, h, w, c]);
        let head = Head {
            rep_size: self.rep_size,
            num_classes: self.num_classes,
            zeroinit: self.head_zeroinit,
        };
        (head.apply(s, x, x_2d, &mut out), out)
    }
}

/// The end of big_vision's ViT (and FlexiViT): the tanh `pre_logits` Dense, if any, then
/// the `head` Dense, each applied to the pooled tokens and to the token grid.
pub(crate) struct Head {
    /// Width of the tanh `pre_logits` layer, if any.
    pub rep_size: Option<usize>,
    /// Classes of the head (`None`: no head).
    pub num_classes: Option<usize>,
    /// Zero-initialize the head kernel.
    pub zeroinit: bool,
}

impl Head {
    /// The logits of the pooled `x` (or its pre-logits without a head); records
    /// `pre_logits`, `pre_logits_2d`, `logits` and `logits_2d` (of `x_2d`) in `out`.
    pub fn apply(&self, s: &mut Scope, mut x: Tensor, mut x_2d: Tensor, out: &mut Out) -> Tensor {
        if let Some(rep) = self.rep_size {
            let hid = Dense::new(rep);
            x_2d = np::tanh(&s.call_named("pre_logits", &hid, x_2d));
            x = np::tanh(&s.call_named("pre_logits", &hid, x));
        }
        out.insert("pre_logits_2d", x_2d.clone());
        out.insert("pre_logits", x.clone());
        if let Some(classes) = self.num_classes {
            let mut head = Dense::new(classes);
            if self.zeroinit {
                head.kernel_init = Init::Zeros;
            }
            out.insert("logits_2d", s.call_named("head", &head, x_2d));
            x = s.call_named("head", &head, x);
            out.insert("logits", x.clone());
        }
        x
    }
}

impl ImageModel for Vit {
    fn model_name(&self) -> &'static str {
        "vit"
    }

    /// `vit.load`'s fixes: `fix_old_checkpoints` (see [`fix_old_checkpoints`]), then the
    /// encoder blocks converted to the model's layout, stacked for a `scan` model
    /// ([`pyloop_to_scan`]) and unstacked otherwise ([`scan_to_pyloop`]).
    fn fix_checkpoint(&self, loaded: Params<HostArray>) -> Result<Params<HostArray>, String> {
        let fixed = fix_old_checkpoints(loaded)?;
        let scanned = fixed.names().any(|k| k.starts_with(SCANNED));
        match (self.scan, scanned) {
            (true, false) => pyloop_to_scan(fixed),
            (false, true) => scan_to_pyloop(fixed),
            _ => Ok(fixed),
        }
    }

    /// `vit.resample_posemb`: a `pos_embedding` of another square grid, resampled
    /// bilinearly (`scipy.ndimage.zoom(order=1)`).
    fn resample(&self, name: &str, loaded: &HostArray, shape: &[usize]) -> Option<HostArray> {
        resample_posemb(name, loaded, shape)
    }

    fn forward(&self, s: &mut Scope, image: Tensor, train: bool) -> (Tensor, Out) {
        Module::apply(self, s, (image, train))
    }
}

/// `vit.resample_posemb` as the loader's resampling: a `pos_embedding` of another square
/// grid, resampled bilinearly (`scipy.ndimage.zoom(order=1)`); `None` for any other
/// parameter or shape.
pub fn resample_posemb(name: &str, loaded: &HostArray, shape: &[usize]) -> Option<HostArray> {
    let (old, new) = (loaded.shape(), shape);
    if name != "pos_embedding" || old.len() != 3 || new.len() != 3 || old[2] != new[2] {
        return None;
    }
    let (g, n) = (
        (old[1] as f64).sqrt() as usize,
        (new[1] as f64).sqrt() as usize,
    );
    if g * g != old[1] || n * n != new[1] {
        return None;
    }
    let values = loaded.to_vec::<f32>().ok()?;
    let grid = crate::npz::resample_grid(&values, g, n, new[2]);
    HostArray::from_slice(&grid, new).ok()
}
