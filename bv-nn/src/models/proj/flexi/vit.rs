//! big_vision's FlexiViT (`models/proj/flexi/vit.py`): a ViT whose patch size is chosen
//! per call. The stored patch-embedding kernel (`patch_size`) is PI-resized to the patch
//! size that gives `seqhw × seqhw` tokens, and the position embedding (stored at
//! `posemb_size`) is resized to the token grid. Parameter names and the `out` dict are
//! `vit.Model`'s.

use bv_core::io::HostArray;
use bv_core::numpy as np;
use bv_core::trace::{fail, Aval};
use bv_core::{prim, DType, Tensor};
use serde_json::Value;

use super::resample::{resample_patchemb, resample_patchemb_host, resize_posemb};
use crate::init::Init;
use crate::layers::{Conv, ConvPadding};
use crate::models::config::Cfg;
use crate::models::vit::{posemb_sincos_2d, variant, Encoder, Head, MapHead, Pool, Posemb};
use crate::models::{ImageModel, ModelError, Out};
use crate::scope::{Module, Scope};
use crate::Params;

/// `proj.flexi.vit.Model`'s hyperparameters; `seqhw` is the token grid side used when a
/// call does not give one (`None`: the stored patch size).
#[derive(Clone, Debug)]
pub struct FlexiVit {
    /// Classes of the head (`None`: no head).
    pub num_classes: Option<usize>,
    /// The stored patch-embedding kernel's height and width.
    pub patch_size: (usize, usize),
    /// The grid the position embedding is stored at.
    pub posemb_size: (usize, usize),
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
    /// Pooling: `gap`, `tok` or `map`.
    pub pool: Pool,
    /// Zero-initialize the head kernel (big_vision's default).
    pub head_zeroinit: bool,
    /// The token grid side of every call (big_vision's `seqhw` argument).
    pub seqhw: Option<usize>,
}

/// The keys of `config.model` that [`FlexiVit::from_config`] takes.
pub const CONFIG_KEYS: [&str; 12] = [
    "variant",
    "num_classes",
    "patch_size",
    "posemb_size",
    "width",
    "depth",
    "mlp_dim",
    "num_heads",
    "posemb",
    "pool_type",
    "head_zeroinit",
    "seqhw",
];

impl FlexiVit {
    /// `proj.flexi.vit.Model(num_classes, variant=..., **kw)`: big_vision's keys; the
    /// variant's `/patch` sets `patch_size`; defaults are vit.py's `_Model` fields
    /// (patch 32, posemb 7x7, width 768, depth 12, 12 heads, learned posemb, gap).
    pub fn from_config(config: &Value) -> Result<FlexiVit, ModelError> {
        let c = Cfg::new("proj.flexi.vit", config, &CONFIG_KEYS)?;
        let mut v = FlexiVit {
            num_classes: None,
            patch_size: (32, 32),
            posemb_size: (7, 7),
            width: 768,
            depth: 12,
            mlp_dim: None,
            num_heads: 12,
            posemb: Posemb::Learn,
            pool: Pool::Gap,
            head_zeroinit: true,
            seqhw: None,
        };
        if let Some(name) = c.str("variant")? {
            let bad = || c.bad("variant", "a ViT variant like \"B\" or \"B/16\"");
            let (size, patch) = name.split_once('/').unwrap_or((name, ""));
            let (width, depth, mlp_dim, num_heads) = variant(size).ok_or_else(bad)?;
            (v.width, v.depth, v.mlp_dim, v.num_heads) = (width, depth, Some(mlp_dim), num_heads);
            if !patch.is_empty() {
                let p = patch.parse().map_err(|_| bad())?;
                v.patch_size = (p, p);
            }
        }
        v.num_classes = c.usize("num_classes")?.filter(|&n| n > 0);
        v.patch_size = c.pair("patch_size")?.unwrap_or(v.patch_size);
        v.posemb_size = c.pair("posemb_size")?.unwrap_or(v.posemb_size);
        v.width = c.usize("width")?.unwrap_or(v.width);
        v.depth = c.usize("depth")?.unwrap_or(v.depth);
        v.mlp_dim = c.usize("mlp_dim")?.or(v.mlp_dim);
        v.num_heads = c.usize("num_heads")?.unwrap_or(v.num_heads);
        v.posemb = match c.str("posemb")? {
            None | Some("learn") => Posemb::Learn,
            Some("sincos2d") => Posemb::Sincos2d,
            Some(_) => return Err(c.bad("posemb", "\"learn\" or \"sincos2d\"")),
        };
        v.pool = match c.str("pool_type")? {
            None | Some("gap") => Pool::Gap,
            Some("tok") => Pool::Tok,
            Some("map") => Pool::Map,
            Some(_) => return Err(c.bad("pool_type", "one of gap, tok, map")),
        };
        v.head_zeroinit = c.bool("head_zeroinit")?.unwrap_or(true);
        v.seqhw = c.usize("seqhw")?;
        if v.seqhw == Some(0) {
            return Err(c.bad("seqhw", "a positive grid side or null"));
        }
        if v.num_heads == 0 || !v.width.is_multiple_of(v.num_heads) {
            return Err(c.bad("num_heads", "a positive divisor of width"));
        }
        if v.patch_size.0 == 0 || v.patch_size.1 == 0 {
            return Err(c.bad("patch_size", "two positive integers"));
        }
        Ok(v)
    }

    /// The same model with every call at token grid `seqhw × seqhw` (big_vision's
    /// `predict_fn(..., seqhw=s)` and the `seqhw` static argument of a training step).
    pub fn at_seqhw(&self, seqhw: usize) -> FlexiVit {
        FlexiVit {
            seqhw: Some(seqhw),
            ..self.clone()
        }
    }

    /// The patch size a call on `(h, w)` images uses: the stored one without `seqhw`,
    /// else `(h / seqhw, w / seqhw)`, which must divide the image exactly.
    pub fn call_patch_size(&self, hw: (usize, usize)) -> Result<(usize, usize), String> {
        let Some(s) = self.seqhw else {
            return Ok(self.patch_size);
        };
        let (ph, pw) = (hw.0 / s, hw.1 / s);
        if ph == 0 || pw == 0 || ph * s != hw.0 || pw * s != hw.1 {
            return Err(format!(
                "proj.flexi.vit: seqhw={s} on {}x{} images needs patch size {}/{s} x {}/{s}, \
                 which is not a whole number of pixels; use a seqhw that divides the image size",
                hw.0, hw.1, hw.0, hw.1
            ));
        }
        Ok((ph, pw))
    }
}

/// big_vision's `Patchify` (named `embedding`): the stored `(patch_size, c, width)` kernel,
/// normal(1/sqrt(width)) at init, PI-resized to `patch` before a stride-`patch` VALID
/// convolution, plus the bias.
struct Patchify {
    stored: (usize, usize),
    patch: (usize, usize),
    width: usize,
}

impl Module for Patchify {
    const NAME: &'static str = "Patchify";
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, image: Tensor) -> Tensor {
        let c = image.shape()[3];
        let init = Init::normal(1.0 / (self.width as f64).sqrt());
        let shape = [self.stored.0, self.stored.1, c, self.width];
        let kernel = s.param("kernel", &init, &shape, DType::F32);
        let bias = s.param("bias", &Init::Zeros, &[self.width], DType::F32);
        let kernel = match resample_patchemb(&kernel, self.patch) {
            Ok(k) => k,
            Err(e) => {
                let aval = Aval::new(vec![self.patch.0, self.patch.1, c, self.width], DType::F32);
                fail(
                    "resample_patchemb",
                    e,
                    &[kernel.aval()],
                    Some(&kernel),
                    aval,
                )
            }
        };
        let conv = Conv {
            strides: vec![self.patch.0, self.patch.1],
            padding: ConvPadding::Valid,
            ..Conv::new(self.width, &[self.patch.0, self.patch.1])
        };
        conv.convolve(&image, &kernel) + bias
    }
}

impl Module for FlexiVit {
    const NAME: &'static str = "_Model";
    /// Images `[batch, H, W, 3]` and `train` (FlexiViT has no dropout).
    type In = (Tensor, bool);
    type Out = (Tensor, Out);

    fn apply(&self, s: &mut Scope, (image, _train): (Tensor, bool)) -> Self::Out {
        let mut out = Out::new();
        let hw = (image.shape()[1], image.shape()[2]);
        let patch = match self.call_patch_size(hw) {
            Ok(p) => p,
            Err(e) => {
                let aval = Aval::new(vec![image.shape()[0]], DType::F32);
                return (
                    fail("proj.flexi.vit", e, &[image.aval()], Some(&image), aval),
                    out,
                );
            }
        };
        let stem = Patchify {
            stored: self.patch_size,
            patch,
            width: self.width,
        };
        let x = s.call_named("embedding", &stem, image);
        out.insert("stem", x.clone());
        let (n, h, w, c) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let x = prim::reshape(&x, &[n, h * w, c]);
        let (ph, pw) = self.posemb_size;
        let mut pe = match self.posemb {
            Posemb::Learn => {
                let init = Init::normal(1.0 / (c as f64).sqrt());
                s.param("pos_embedding", &init, &[1, ph * pw, c], DType::F32)
            }
            Posemb::Sincos2d => posemb_sincos_2d(ph, pw, c),
        };
        if ph * pw != h * w {
            pe = resize_posemb(&pe, (ph, pw), (h, w));
        }
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
            dropout: 0.0,
            scan: false,
            remat_policy: bv_core::autodiff::RematPolicy::NothingSaveable,
            dtype_mm: DType::F32,
        };
        let (x, enc) = s.call_named("Transformer", &encoder, (x, true));
        for (name, v) in enc {
            out.insert(format!("encoder/{name}"), v);
        }
        out.insert("encoded", x.clone());
        let l = x.shape()[1];
        let (x, encoded) = match self.pool {
            Pool::Map => {
                let head = MapHead {
                    mlp_dim: self.mlp_dim,
                    num_heads: self.num_heads,
                };
                (s.call(&head, x.clone()), x)
            }
            Pool::Tok => {
                let first = prim::reshape(&prim::slice(&x, &[0, 0, 0], &[n, 1, c]), &[n, c]);
                (first, prim::slice(&x, &[0, 1, 0], &[n, l, c]))
            }
            _ => (np::mean(&x, 1, false), x),
        };
        out.insert("head_input", x.clone());
        let x_2d = prim::reshape(&encoded, &[n, h, w, c]);
        let head = Head {
            rep_size: None,
            num_classes: self.num_classes,
            zeroinit: self.head_zeroinit,
        };
        (head.apply(s, x, x_2d, &mut out), out)
    }
}

impl ImageModel for FlexiVit {
    fn model_name(&self) -> &'static str {
        "proj.flexi.vit"
    }

    /// `flexi.vit.load`'s fixes: vit's `fix_old_checkpoints`.
    fn fix_checkpoint(&self, loaded: Params<HostArray>) -> Result<Params<HostArray>, String> {
        crate::models::vit::fix_old_checkpoints(loaded)
    }

    /// `flexi.vit.load`'s resampling: `pos_embedding` of another grid as vit's
    /// `resample_posemb`, and an `embedding/kernel` of another patch size PI-resized to
    /// the model's `patch_size`.
    fn resample(&self, name: &str, loaded: &HostArray, shape: &[usize]) -> Option<HostArray> {
        match name {
            "embedding/kernel" if loaded.shape().len() == 4 && shape.len() == 4 => {
                let same_cd = loaded.shape()[2..] == shape[2..];
                let k = resample_patchemb_host(loaded, (shape[0], shape[1])).ok()?;
                same_cd.then_some(k)
            }
            _ => crate::models::vit::resample_posemb(name, loaded, shape),
        }
    }

    fn forward(&self, s: &mut Scope, image: Tensor, train: bool) -> (Tensor, Out) {
        Module::apply(self, s, (image, train))
    }
}
