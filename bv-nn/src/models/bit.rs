//! big_vision's BiT ResNets with GroupNorm and weight standardization: ResNet v1
//! (`models/bit.py`, model_name `bit`) and the paper's pre-activation ResNet v2
//! (`models/bit_paper.py`, model_name `bit_paper`), with their parameter names and `out`
//! dicts.

use bv_core::io::HostArray;
use bv_core::{numpy as np, prim, DType, Tensor};
use serde_json::Value;

use crate::init::Init;
use crate::layers::{Conv, ConvPadding, Dense, GroupNorm};
use crate::models::config::Cfg;
use crate::models::{ImageModel, ModelError, Out};
use crate::scope::{Module, Scope};
use crate::Params;

/// Units per stage for a named depth (`get_block_desc`; no 18/34).
pub fn block_desc(depth: usize) -> Option<Vec<usize>> {
    Some(match depth {
        26 => vec![2, 2, 2, 2],
        50 => vec![3, 4, 6, 3],
        101 => vec![3, 4, 23, 3],
        152 => vec![3, 8, 36, 3],
        200 => vec![3, 24, 36, 3],
        _ => return None,
    })
}

/// Which ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `bit.py`: post-activation units, Flax GroupNorm, SAME padding.
    V1,
    /// `bit_paper.py`: pre-activation units, its own GroupNorm, explicit padding.
    V2,
}

/// A convolution without bias whose kernel is standardized per output channel on every
/// call: v1 `(w - mean) / (std + 1e-5)`, v2 `(w - mean) / sqrt(mean((w - mean)²) + 1e-10)`.
#[derive(Clone, Debug)]
pub struct StdConv {
    /// The convolution (its `use_bias` is ignored).
    pub conv: Conv,
    /// Which standardization.
    pub version: Version,
}

impl StdConv {
    fn new(version: Version, features: usize, k: usize, stride: usize) -> StdConv {
        let padding = match (version, k) {
            (Version::V1, _) => ConvPadding::Same,
            (Version::V2, 1) => ConvPadding::Valid,
            (Version::V2, _) => {
                let p = (k / 2) as i64;
                ConvPadding::Explicit(vec![(p, p), (p, p)])
            }
        };
        StdConv {
            conv: Conv {
                strides: vec![stride, stride],
                padding,
                use_bias: false,
                ..Conv::new(features, &[k, k])
            },
            version,
        }
    }
}

impl Module for StdConv {
    const NAME: &'static str = "StdConv";
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        let kshape = self
            .conv
            .kernel_shape(x.shape().last().copied().unwrap_or(1));
        let w = s.param("kernel", &self.conv.kernel_init, &kshape, DType::F32);
        let axes: Vec<isize> = vec![0, 1, 2];
        let w = &w - &np::mean(&w, axes.clone(), true);
        let w = match self.version {
            Version::V1 => &w / &(&np::std(&w, axes, 0, true) + 1e-5),
            Version::V2 => &w / &np::sqrt(&(&np::mean(&(&w * &w), axes, true) + 1e-10)),
        };
        self.conv.convolve(&x, &w)
    }
}

/// `bit_paper.GroupNorm`: 32 groups, two-pass statistics `x - mean`, then divided by
/// `sqrt(mean(x²) + 1e-5)`; scale and bias of shape `(1, 1, 1, C)`.
#[derive(Clone, Debug)]
pub struct GroupNormV2;

impl Module for GroupNormV2 {
    const NAME: &'static str = "GroupNorm";
    /// `[batch, H, W, C]`.
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        let shape = x.shape().to_vec();
        let c = shape[3];
        let grouped = [shape[0], shape[1], shape[2], 32, c / 32];
        let xg = prim::reshape(&x, &grouped);
        let axes: Vec<isize> = vec![1, 2, 4];
        let xg = &xg - &np::mean(&xg, axes.clone(), true);
        let xg = &xg / &np::sqrt(&(&np::mean(&(&xg * &xg), axes, true) + 1e-5));
        let x = prim::reshape(&xg, &shape);
        let scale = s.param("scale", &Init::Ones, &[1, 1, 1, c], DType::F32);
        let bias = s.param("bias", &Init::Zeros, &[1, 1, 1, c], DType::F32);
        &(&x * &np::broadcast_to(&scale, &shape)) + &np::broadcast_to(&bias, &shape)
    }
}

/// A bottleneck unit with `nmid` middle channels and `4·nmid` outputs.
#[derive(Clone, Debug)]
pub struct ResidualUnit {
    /// Middle channels.
    pub nmid: usize,
    /// Stride of the 3x3 convolution and the projection.
    pub stride: usize,
    /// Which ResNet.
    pub version: Version,
}

impl Module for ResidualUnit {
    const NAME: &'static str = "ResidualUnit";
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        let (nmid, nout, st, v) = (self.nmid, 4 * self.nmid, self.stride, self.version);
        let project = x.shape().last() != Some(&nout) || st != 1;
        let conv = |f, k, stride| StdConv::new(v, f, k, stride);
        let gn = || GroupNorm::default();
        match v {
            Version::V1 => {
                let mut residual = x.clone();
                if project {
                    residual = s.call_named("conv_proj", &conv(nout, 1, st), residual);
                    residual = s.call_named("gn_proj", &gn(), residual);
                }
                let y = s.call_named("conv1", &conv(nmid, 1, 1), x);
                let y = np::relu(&s.call_named("gn1", &gn(), y));
                let y = s.call_named("conv2", &conv(nmid, 3, st), y);
                let y = np::relu(&s.call_named("gn2", &gn(), y));
                let y = s.call_named("conv3", &conv(nout, 1, 1), y);
                let gn3 = GroupNorm {
                    scale_init: Init::Zeros,
                    ..gn()
                };
                let y = s.call_named("gn3", &gn3, y);
                np::relu(&(&residual + &y))
            }
            Version::V2 => {
                let mut residual = x.clone();
                let x = np::relu(&s.call_named("gn1", &GroupNormV2, x));
                if project {
                    residual = s.call_named("conv_proj", &conv(nout, 1, st), x.clone());
                }
                let x = s.call_named("conv1", &conv(nmid, 1, 1), x);
                let x = np::relu(&s.call_named("gn2", &GroupNormV2, x));
                let x = s.call_named("conv2", &conv(nmid, 3, st), x);
                let x = np::relu(&s.call_named("gn3", &GroupNormV2, x));
                let x = s.call_named("conv3", &conv(nout, 1, 1), x);
                &x + &residual
            }
        }
    }
}

/// `bit.Model` / `bit_paper.Model`.
#[derive(Clone, Debug)]
pub struct ResNet {
    /// Which ResNet.
    pub version: Version,
    /// Classes of the head (`None`: no head).
    pub num_classes: Option<usize>,
    /// Width factor: the root has `int(64 · width)` channels.
    pub width: f64,
    /// Units per stage.
    pub blocks: Vec<usize>,
    /// Zero-initialize the head kernel (always for v1).
    pub head_zeroinit: bool,
}

impl ResNet {
    /// `bit.Model(**config)` (keys `num_classes`, `width`, `depth`) or
    /// `bit_paper.Model(**config)` (also `head_zeroinit`); `depth` is 26, 50, 101, 152, 200
    /// or a list of units per stage.
    pub fn from_config(version: Version, config: &Value) -> Result<ResNet, ModelError> {
        let (name, keys): (_, &[&str]) = match version {
            Version::V1 => ("bit", &["num_classes", "width", "depth"]),
            Version::V2 => (
                "bit_paper",
                &["num_classes", "width", "depth", "head_zeroinit"],
            ),
        };
        let c = Cfg::new(name, config, keys)?;
        let blocks = match c.usize_list("depth")? {
            None => block_desc(50).expect("a known depth"),
            Some(d) if d.len() == 1 && block_desc(d[0]).is_some() => {
                block_desc(d[0]).expect("checked")
            }
            Some(d) if !d.is_empty() && d.iter().all(|&n| n > 0) => d,
            Some(_) => {
                return Err(c.bad(
                    "depth",
                    "26, 50, 101, 152, 200 or a list of units per stage",
                ))
            }
        };
        let width = c.f64("width")?.unwrap_or(1.0);
        let root = (64.0 * width) as usize;
        if root == 0 || !root.is_multiple_of(32) {
            return Err(c.bad(
                "width",
                "a factor giving a multiple of 32 channels (64·width)",
            ));
        }
        Ok(ResNet {
            version,
            num_classes: c.usize("num_classes")?.filter(|&n| n > 0),
            width,
            blocks,
            head_zeroinit: version == Version::V1 || c.bool("head_zeroinit")?.unwrap_or(true),
        })
    }

    fn head(&self, s: &mut Scope, out: &mut Out, x: Tensor) -> Tensor {
        out.insert("pre_logits_2d", x.clone());
        let pooled = np::mean(&x, vec![1, 2], false);
        out.insert("pre_logits", pooled.clone());
        let Some(classes) = self.num_classes else {
            return pooled;
        };
        let mut head = Dense::new(classes);
        if self.head_zeroinit {
            head.kernel_init = Init::Zeros;
        }
        out.insert("logits_2d", s.call_named("head", &head, x));
        let logits = s.call_named("head", &head, pooled);
        out.insert("logits", logits.clone());
        logits
    }
}

impl Module for ResNet {
    const NAME: &'static str = "Model";
    /// Images `[batch, H, W, 3]` and `train` (unused: no dropout, no batch statistics).
    type In = (Tensor, bool);
    /// The logits (or `pre_logits` without a head) and the `out` dict.
    type Out = (Tensor, Out);

    fn apply(&self, s: &mut Scope, (image, _train): (Tensor, bool)) -> Self::Out {
        let mut out = Out::new();
        let width = (64.0 * self.width) as usize;
        let v = self.version;
        let root = StdConv::new(v, width, 7, 2);
        let mut x = match v {
            Version::V1 => {
                let x = s.call_named("conv_root", &root, image);
                let x = np::relu(&s.call_named("gn_root", &GroupNorm::default(), x));
                np::max_pool(&x, &[3, 3], &[2, 2], np::Padding::Same)
            }
            Version::V2 => {
                let x = s.call_named("root_block", &RootV2(root), image);
                let pad = np::Padding::Explicit(vec![(1, 1), (1, 1)]);
                np::max_pool(&x, &[3, 3], &[2, 2], pad)
            }
        };
        out.insert("stem", x.clone());
        for (i, &units) in self.blocks.iter().enumerate() {
            let stage = Stage {
                units,
                nmid: width << i,
                first_stride: if i == 0 { 1 } else { 2 },
                version: v,
            };
            let (y, unit_outs) = s.call_named(&format!("block{}", i + 1), &stage, x);
            x = y;
            match v {
                Version::V1 => out.insert(format!("stage{}", i + 1), x.clone()),
                Version::V2 => {
                    for (name, u) in unit_outs {
                        out.insert(format!("stage{}/{name}", i + 1), u);
                    }
                }
            }
        }
        if v == Version::V2 {
            x = s.call_named("norm-pre-head", &GroupNormV2, x);
            out.insert("norm_pre_head", x.clone());
            x = np::relu(&x);
        }
        let logits = self.head(s, &mut out, x);
        (logits, out)
    }
}

/// v2's `root_block` scope around `conv_root` (7x7, stride 2, padding 3).
struct RootV2(StdConv);

impl Module for RootV2 {
    const NAME: &'static str = "RootBlock";
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        s.call_named("conv_root", &self.0, x)
    }
}

/// A stage `block{s}` of `units` units (`unit1..` in v1, `unit01..` in v2); returns each
/// unit's output by name.
struct Stage {
    units: usize,
    nmid: usize,
    first_stride: usize,
    version: Version,
}

impl Module for Stage {
    const NAME: &'static str = "ResNetStage";
    type In = Tensor;
    type Out = (Tensor, Vec<(String, Tensor)>);

    fn apply(&self, s: &mut Scope, mut x: Tensor) -> Self::Out {
        let mut outs = Vec::new();
        for j in 0..self.units {
            let name = match self.version {
                Version::V1 => format!("unit{}", j + 1),
                Version::V2 => format!("unit{:02}", j + 1),
            };
            let unit = ResidualUnit {
                nmid: self.nmid,
                stride: if j == 0 { self.first_stride } else { 1 },
                version: self.version,
            };
            x = s.call_named(&name, &unit, x);
            outs.push((name, x.clone()));
        }
        (x, outs)
    }
}

impl ImageModel for ResNet {
    fn model_name(&self) -> &'static str {
        match self.version {
            Version::V1 => "bit",
            Version::V2 => "bit_paper",
        }
    }

    /// v1's `fix_old_checkpoints`: GroupNorm parameters of old checkpoints are squeezed
    /// to `(C,)`.
    fn fix_checkpoint(&self, loaded: Params<HostArray>) -> Result<Params<HostArray>, String> {
        if self.version == Version::V2 {
            return Ok(loaded);
        }
        let gn = ["gn_root", "gn_proj", "gn1", "gn2", "gn3"];
        Ok(loaded
            .into_iter()
            .map(|(k, v)| {
                if !k.split('/').any(|part| gn.contains(&part)) || v.shape().len() <= 1 {
                    return (k, v);
                }
                let shape: Vec<usize> = v.shape().iter().copied().filter(|&n| n != 1).collect();
                let squeezed = HostArray::from_bytes(v.dtype(), &shape, v.bytes().to_vec());
                (k, squeezed.unwrap_or(v))
            })
            .collect())
    }

    fn forward(&self, s: &mut Scope, image: Tensor, train: bool) -> (Tensor, Out) {
        Module::apply(self, s, (image, train))
    }
}
