//! `convolution`: N-d convolution with any dimension layout, strides, padding, dilations and
//! feature/batch grouping (`lax.conv_general_dilated`).

use crate::batching::{self as b};
use crate::emit::{list, EmitCx};
use crate::prim::BatchResult;
use crate::prim::{arity, check_axes, Class, Precision, Primitive};
use crate::prim::{reshape, reverse, transpose, VjpResult};
use crate::trace::error::ensure;
use crate::trace::zeros_like;
use crate::trace::{bind1, Aval, OpError, Tensor};
use std::rc::Rc;

/// Which dimension of each tensor is batch, feature and spatial.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvDims {
    /// Input batch dimension.
    pub lhs_batch: usize,
    /// Input feature dimension.
    pub lhs_feature: usize,
    /// Input spatial dimensions, in spatial order.
    pub lhs_spatial: Vec<usize>,
    /// Kernel input-feature dimension.
    pub rhs_in: usize,
    /// Kernel output-feature dimension.
    pub rhs_out: usize,
    /// Kernel spatial dimensions.
    pub rhs_spatial: Vec<usize>,
    /// Output batch dimension.
    pub out_batch: usize,
    /// Output feature dimension.
    pub out_feature: usize,
    /// Output spatial dimensions.
    pub out_spatial: Vec<usize>,
}

impl ConvDims {
    /// Dimension numbers from layout strings such as `("NHWC", "HWIO", "NHWC")` (JAX's
    /// `dimension_numbers`); letters other than N, C, I, O are spatial, in order.
    pub fn from_layouts(lhs: &str, rhs: &str, out: &str) -> ConvDims {
        let find = |s: &str, c: char| s.find(c).unwrap_or(usize::MAX);
        let spatial = |s: &str, skip: &str| {
            s.char_indices()
                .filter(|(_, c)| !skip.contains(*c))
                .map(|(i, _)| i)
                .collect()
        };
        ConvDims {
            lhs_batch: find(lhs, 'N'),
            lhs_feature: find(lhs, 'C'),
            lhs_spatial: spatial(lhs, "NC"),
            rhs_in: find(rhs, 'I'),
            rhs_out: find(rhs, 'O'),
            rhs_spatial: spatial(rhs, "IO"),
            out_batch: find(out, 'N'),
            out_feature: find(out, 'C'),
            out_spatial: spatial(out, "NC"),
        }
    }

    fn labels(rank: usize, a: (usize, &str), b: (usize, &str), spatial: &[usize]) -> String {
        let mut v = vec![String::from("?"); rank];
        for (d, l) in [a, b] {
            if d < rank {
                v[d] = l.into();
            }
        }
        for (i, &d) in spatial.iter().enumerate() {
            if d < rank {
                v[d] = i.to_string();
            }
        }
        format!("[{}]", v.join(", "))
    }
}

/// `x` with its batch dimension (at `d`) folded into dimension `into` (numbered without
/// the batch dimension), batch-major.
fn fold(x: &Tensor, d: usize, into: usize) -> Tensor {
    let x = b::moveaxis(x, d, into);
    let mut shape = x.shape().to_vec();
    shape[into] *= shape.remove(into + 1);
    reshape(&x, &shape)
}

/// See [`conv_general_dilated`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Convolution {
    /// Step per spatial dimension.
    pub strides: Vec<usize>,
    /// `(low, high)` padding per spatial dimension (negative crops).
    pub padding: Vec<(i64, i64)>,
    /// Input dilation per spatial dimension (transposed convolution).
    pub lhs_dilation: Vec<usize>,
    /// Kernel dilation per spatial dimension (atrous convolution).
    pub rhs_dilation: Vec<usize>,
    /// Dimension numbers.
    pub dims: ConvDims,
    /// Input features split into this many groups (depthwise when equal to the feature count).
    pub feature_group_count: usize,
    /// Batch split into this many groups (used by the weight gradient of grouped convs).
    pub batch_group_count: usize,
    /// Precision for both operands.
    pub precision: Precision,
}

/// Convolution (`stablehlo.convolution`); operands share an element type.
#[track_caller]
pub fn conv_general_dilated(lhs: &Tensor, rhs: &Tensor, conv: Convolution) -> Tensor {
    bind1(conv, &[lhs, rhs])
}

impl Primitive for Convolution {
    /// JAX's rule: the batch folds into a dimension the convolution maps independently: a
    /// batched input's into its batch dimension, a batched kernel's into its output
    /// features, both (as feature groups) into the input and output features. Grouped
    /// convolutions with a batched kernel go one batch element at a time.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let cd = &self.dims;
        let (fg, bg) = (self.feature_group_count, self.batch_group_count);
        let (lhs, rhs, conv, out) = match (dims[0], dims[1]) {
            (Some(d), None) if bg == 1 => (
                fold(&ins[0], d, cd.lhs_batch),
                ins[1].clone(),
                self.clone(),
                cd.out_batch,
            ),
            (None, Some(d)) if fg == 1 && bg == 1 => (
                ins[0].clone(),
                fold(&ins[1], d, cd.rhs_out),
                self.clone(),
                cd.out_feature,
            ),
            (Some(a), Some(c)) if fg == 1 && bg == 1 => (
                fold(&ins[0], a, cd.lhs_feature),
                fold(&ins[1], c, cd.rhs_out),
                Convolution {
                    feature_group_count: n,
                    ..self.clone()
                },
                cd.out_feature,
            ),
            _ => return super::control::by_loop(Rc::new(self.clone()), ins, dims),
        };
        let y = bind1(conv, &[&lhs, &rhs]);
        let mut shape = y.shape().to_vec();
        shape[out] /= n;
        shape.insert(out, n);
        Ok((vec![reshape(&y, &shape)], vec![Some(out)]))
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let Some(g) = &cts[0] else {
            return Ok(vec![None, None]);
        };
        let (lhs, rhs) = (&ins[0], &ins[1]);
        Ok(vec![
            Some(self.transpose_lhs(g, lhs, rhs)),
            Some(self.transpose_rhs(g, lhs, rhs)),
        ])
    }

    fn name(&self) -> &'static str {
        "convolution"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 2)?;
        let (l, r) = (ins[0], ins[1]);
        let d = &self.dims;
        let rank = l.rank();
        let n = rank.saturating_sub(2);
        ensure!(
            l.dtype == r.dtype,
            "operand element types must be equal (convert them first)"
        );
        ensure!(Class::Num.accepts(l.dtype), "element type must be numeric");
        ensure!(
            rank >= 2 && r.rank() == rank,
            "input and kernel must have equal rank of at least 2"
        );
        ensure!(
            d.lhs_spatial.len() == n && d.rhs_spatial.len() == n && d.out_spatial.len() == n,
            "dimension numbers need {n} spatial dimensions per tensor"
        );
        let mut lhs_all = vec![d.lhs_batch, d.lhs_feature];
        lhs_all.extend(&d.lhs_spatial);
        let mut rhs_all = vec![d.rhs_in, d.rhs_out];
        rhs_all.extend(&d.rhs_spatial);
        let mut out_all = vec![d.out_batch, d.out_feature];
        out_all.extend(&d.out_spatial);
        check_axes(&lhs_all, rank, "input dimension")?;
        check_axes(&rhs_all, rank, "kernel dimension")?;
        check_axes(&out_all, rank, "output dimension")?;
        ensure!(
            self.strides.len() == n
                && self.padding.len() == n
                && self.lhs_dilation.len() == n
                && self.rhs_dilation.len() == n,
            "strides, padding and dilations need {n} entries each"
        );
        let (fg, bg) = (self.feature_group_count, self.batch_group_count);
        ensure!(
            fg >= 1 && bg >= 1 && (fg == 1 || bg == 1),
            "group counts must be at least 1 and not both above 1"
        );
        let (batch, feat) = (l.shape[d.lhs_batch], l.shape[d.lhs_feature]);
        let (kin, kout) = (r.shape[d.rhs_in], r.shape[d.rhs_out]);
        ensure!(feat == kin * fg, "input features ({feat}) must equal kernel input features ({kin}) x feature_group_count ({fg})");
        ensure!(
            kout % fg == 0,
            "kernel output features ({kout}) must be divisible by feature_group_count ({fg})"
        );
        ensure!(batch % bg == 0 && kout % bg == 0, "batch ({batch}) and output features ({kout}) must be divisible by batch_group_count ({bg})");
        let mut shape = vec![0; rank];
        shape[d.out_batch] = batch / bg;
        shape[d.out_feature] = kout;
        for i in 0..n {
            ensure!(
                self.strides[i] >= 1 && self.lhs_dilation[i] >= 1 && self.rhs_dilation[i] >= 1,
                "strides and dilations must be at least 1"
            );
            let x = l.shape[d.lhs_spatial[i]] as i64;
            let k = r.shape[d.rhs_spatial[i]] as i64;
            let xd = if x == 0 {
                0
            } else {
                (x - 1) * self.lhs_dilation[i] as i64 + 1
            } + self.padding[i].0
                + self.padding[i].1;
            let kd = if k == 0 {
                0
            } else {
                (k - 1) * self.rhs_dilation[i] as i64 + 1
            };
            ensure!(
                xd >= 0,
                "padding of spatial dimension {i} leaves a negative size"
            );
            shape[d.out_spatial[i]] = if xd < kd {
                0
            } else {
                ((xd - kd) / self.strides[i] as i64 + 1) as usize
            };
        }
        Ok(vec![Aval {
            shape,
            dtype: l.dtype,
            weak: false,
        }])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let d = &self.dims;
        let rank = cx.ins[0].aval.rank();
        let dn = format!(
            "{}x{}->{}",
            ConvDims::labels(
                rank,
                (d.lhs_batch, "b"),
                (d.lhs_feature, "f"),
                &d.lhs_spatial
            ),
            ConvDims::labels(rank, (d.rhs_in, "i"), (d.rhs_out, "o"), &d.rhs_spatial),
            ConvDims::labels(
                rank,
                (d.out_batch, "b"),
                (d.out_feature, "f"),
                &d.out_spatial
            ),
        );
        let pads: Vec<String> = self
            .padding
            .iter()
            .map(|(l, h)| format!("[{l}, {h}]"))
            .collect();
        let p = self.precision.mlir();
        format!(
            "stablehlo.convolution({}, {}) dim_numbers = {dn}, window = {{stride = {}, pad = [{}], lhs_dilate = {}, rhs_dilate = {}}} {{batch_group_count = {} : i64, feature_group_count = {} : i64, precision_config = [#stablehlo<precision {p}>, #stablehlo<precision {p}>]}} : {}",
            cx.name(0),
            cx.name(1),
            list(&self.strides),
            pads.join(", "),
            list(&self.lhs_dilation),
            list(&self.rhs_dilation),
            self.batch_group_count,
            self.feature_group_count,
            cx.fn_type()
        )
    }
}

fn dilate(s: usize, d: usize) -> i64 {
    if s == 0 {
        0
    } else {
        1 + d as i64 * (s as i64 - 1)
    }
}

/// Splits axis `src` into `(size1, rest)`.
fn axis_out_of(src: usize, size1: usize, x: &Tensor) -> Tensor {
    let mut shape = x.shape().to_vec();
    let n = shape[src];
    shape.splice(src..=src, [size1, n / size1.max(1)]);
    reshape(x, &shape)
}

/// Merges axis `src` into axis `dst` (numbered without `src`) as its major part.
fn axis_into(src: usize, dst: usize, x: &Tensor) -> Tensor {
    let mut perm: Vec<usize> = (0..x.rank()).filter(|&i| i != src).collect();
    perm.insert(dst, src);
    let mut shape: Vec<usize> = x.shape().to_vec();
    let size = shape.remove(src);
    shape[dst] *= size;
    reshape(&transpose(x, &perm), &shape)
}

impl Convolution {
    fn spatial(t: &Tensor, dims: &[usize]) -> Vec<usize> {
        dims.iter().map(|&d| t.shape()[d]).collect()
    }

    /// JAX's `_conv_general_dilated_transpose_lhs`.
    fn transpose_lhs(&self, g: &Tensor, lhs: &Tensor, rhs: &Tensor) -> Tensor {
        let d = &self.dims;
        let (fg, bg) = (self.feature_group_count, self.batch_group_count);
        let groups = fg.max(bg);
        let rhs = if groups > 1 {
            axis_into(d.rhs_out, d.rhs_in, &axis_out_of(d.rhs_out, groups, rhs))
        } else {
            rhs.clone()
        };
        let dims = ConvDims {
            lhs_batch: d.out_batch,
            lhs_feature: d.out_feature,
            lhs_spatial: d.out_spatial.clone(),
            rhs_in: d.rhs_out,
            rhs_out: d.rhs_in,
            rhs_spatial: d.rhs_spatial.clone(),
            out_batch: d.lhs_batch,
            out_feature: d.lhs_feature,
            out_spatial: d.lhs_spatial.clone(),
        };
        let (xs, ws, os) = (
            Self::spatial(lhs, &d.lhs_spatial),
            Self::spatial(&rhs, &d.rhs_spatial),
            Self::spatial(g, &d.out_spatial),
        );
        let padding = (0..xs.len())
            .map(|i| {
                let l = dilate(xs[i], self.lhs_dilation[i]);
                let r = dilate(ws[i], self.rhs_dilation[i]);
                let o = dilate(os[i], self.strides[i]);
                let before = r - self.padding[i].0 - 1;
                (before, l + r - 1 - o - before)
            })
            .collect();
        let conv = Convolution {
            strides: self.lhs_dilation.clone(),
            padding,
            lhs_dilation: self.strides.clone(),
            rhs_dilation: self.rhs_dilation.clone(),
            dims,
            feature_group_count: groups,
            batch_group_count: 1,
            precision: self.precision,
        };
        let out = conv_general_dilated(g, &reverse(&rhs, &d.rhs_spatial), conv);
        if bg > 1 {
            axis_into(
                d.lhs_feature,
                d.lhs_batch,
                &axis_out_of(d.lhs_feature, bg, &out),
            )
        } else {
            out
        }
    }

    /// JAX's `_conv_general_dilated_transpose_rhs`.
    fn transpose_rhs(&self, g: &Tensor, lhs: &Tensor, rhs: &Tensor) -> Tensor {
        if g.size() == 0 {
            return zeros_like(rhs);
        }
        let d = &self.dims;
        let (fg, bg) = (self.feature_group_count, self.batch_group_count);
        let (fgc, bgc) = if bg > 1 { (bg, 1) } else { (1, fg) };
        let dims = ConvDims {
            lhs_batch: d.lhs_feature,
            lhs_feature: d.lhs_batch,
            lhs_spatial: d.lhs_spatial.clone(),
            rhs_in: d.out_batch,
            rhs_out: d.out_feature,
            rhs_spatial: d.out_spatial.clone(),
            out_batch: d.rhs_in,
            out_feature: d.rhs_out,
            out_spatial: d.rhs_spatial.clone(),
        };
        let (xs, ws, os) = (
            Self::spatial(lhs, &d.lhs_spatial),
            Self::spatial(rhs, &d.rhs_spatial),
            Self::spatial(g, &d.out_spatial),
        );
        let padding = (0..xs.len())
            .map(|i| {
                let l = dilate(xs[i], self.lhs_dilation[i]);
                let r = dilate(ws[i], self.rhs_dilation[i]);
                let o = dilate(os[i], self.strides[i]);
                let lo = self.padding[i].0;
                (lo, (o - l) + (r - lo - 1))
            })
            .collect();
        let conv = Convolution {
            strides: self.rhs_dilation.clone(),
            padding,
            lhs_dilation: self.lhs_dilation.clone(),
            rhs_dilation: self.strides.clone(),
            dims,
            feature_group_count: fgc,
            batch_group_count: bgc,
            precision: self.precision,
        };
        conv_general_dilated(lhs, g, conv)
    }
}
