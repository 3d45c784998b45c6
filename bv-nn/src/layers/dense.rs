//! `Dense`, `DenseGeneral` and `Conv` (NHWC input, HWIO kernel), with Flax's `dtype`: the
//! input, kernel and bias cast to it for the matmul or convolution (parameters stay f32).

use bv_core::numpy as np;
use bv_core::numpy::promote::promote;
use bv_core::prim::{self, ConvDims, Convolution, DotDims, Precision};
use bv_core::{DType, Tensor};

use crate::init::Init;
use crate::layers::Dropout;
use crate::scope::{Module, Scope};

/// `y = x · kernel + bias` over the last axis; `kernel` is `(in, features)`.
#[derive(Clone, Debug)]
pub struct Dense {
    /// Output features.
    pub features: usize,
    /// Whether to add a bias.
    pub use_bias: bool,
    /// Kernel initializer (Flax default: lecun_normal).
    pub kernel_init: Init,
    /// Bias initializer (Flax default: zeros).
    pub bias_init: Init,
    /// Computation type (Flax's `dtype`; `None`: the promoted type of input and params).
    pub dtype: Option<DType>,
}

impl Dense {
    /// A Dense layer with Flax's defaults.
    pub fn new(features: usize) -> Dense {
        Dense {
            features,
            use_bias: true,
            kernel_init: Init::lecun_normal(),
            bias_init: Init::Zeros,
            dtype: None,
        }
    }

    /// With kernel and bias initializers.
    pub fn with_init(mut self, kernel_init: Init, bias_init: Init) -> Dense {
        self.kernel_init = kernel_init;
        self.bias_init = bias_init;
        self
    }

    /// Computing in `dtype` (Flax's `nn.Dense(dtype=...)`).
    pub fn with_dtype(mut self, dtype: Option<DType>) -> Dense {
        self.dtype = dtype;
        self
    }
}

/// Flax's `promote_dtype`: every array cast to `dtype`, or without one to the arrays'
/// promoted type, as `nn.Dense`, `nn.DenseGeneral` and `nn.Conv` do before computing.
pub fn promote_dtype(dtype: Option<DType>, xs: &[&Tensor]) -> Vec<Tensor> {
    let to = dtype.unwrap_or_else(|| {
        xs.iter()
            .map(|x| (x.dtype(), false))
            .reduce(promote)
            .map_or(DType::F32, |(d, _)| d)
    });
    xs.iter()
        .map(|&x| match x.dtype() == to {
            true => x.clone(),
            false => prim::convert(x, to),
        })
        .collect()
}

/// `[x, kernel]` cast with the bias, if any, as [`promote_dtype`] does.
fn cast(dtype: Option<DType>, xk: [&Tensor; 2], bias: Option<&Tensor>) -> [Tensor; 2] {
    let all: Vec<&Tensor> = xk.into_iter().chain(bias).collect();
    let mut cast = promote_dtype(dtype, &all).into_iter();
    [0, 1].map(|_| cast.next().expect("two operands"))
}

/// `y + bias` (none: `y`), the bias cast to `y`'s type, which [`promote_dtype`] chose with it.
fn add_bias(y: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let Some(bias) = bias else {
        return y.clone();
    };
    let bias = match bias.dtype() == y.dtype() {
        true => bias.clone(),
        false => prim::convert(bias, y.dtype()),
    };
    let n = bias.rank();
    let dims: Vec<usize> = (y.rank() - n..y.rank()).collect();
    prim::add(y, &prim::broadcast_in_dim(&bias, y.shape(), &dims))
}

impl Module for Dense {
    const NAME: &'static str = "Dense";
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        let din = x.shape().last().copied().unwrap_or(1);
        let kernel = s.param(
            "kernel",
            &self.kernel_init,
            &[din, self.features],
            DType::F32,
        );
        let bias = self
            .use_bias
            .then(|| s.param("bias", &self.bias_init, &[self.features], DType::F32));
        let [x, kernel] = cast(self.dtype, [&x, &kernel], bias.as_ref());
        let y = prim::dot_general(
            &x,
            &kernel,
            DotDims {
                lhs_contracting: vec![x.rank().saturating_sub(1)],
                rhs_contracting: vec![0],
                lhs_batch: vec![],
                rhs_batch: vec![],
            },
            Precision::Default,
            None,
        );
        add_bias(&y, bias.as_ref())
    }
}

/// Flax's `DenseGeneral`: contracts the last `in_axes` axes of the input with a kernel of
/// shape `in_dims ++ features`. As in Flax, initializers see the 2-D shape
/// `(prod(in_dims), prod(features))` (bias: `(prod(features),)`) and are reshaped.
#[derive(Clone, Debug)]
pub struct DenseGeneral {
    /// Output feature dimensions.
    pub features: Vec<usize>,
    /// How many trailing input axes are contracted.
    pub in_axes: usize,
    /// Kernel initializer.
    pub kernel_init: Init,
    /// Bias initializer.
    pub bias_init: Init,
    /// Computation type (see [`Dense::dtype`]).
    pub dtype: Option<DType>,
}

impl Module for DenseGeneral {
    const NAME: &'static str = "DenseGeneral";
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        let r = x.rank();
        let k = self.in_axes.min(r);
        let in_dims = x.shape()[r - k..].to_vec();
        let (n_in, n_out): (usize, usize) =
            (in_dims.iter().product(), self.features.iter().product());
        let kshape: Vec<usize> = in_dims.iter().chain(&self.features).copied().collect();
        let ki = self.kernel_init.clone();
        let kernel = s.param_with("kernel", &kshape, DType::F32, |key| {
            prim::reshape(&ki.sample(key, &[n_in, n_out], DType::F32), &kshape)
        });
        let bi = self.bias_init.clone();
        let features = self.features.clone();
        let bias = s.param_with("bias", &features, DType::F32, |key| {
            prim::reshape(&bi.sample(key, &[n_out], DType::F32), &features)
        });
        let [x, kernel] = cast(self.dtype, [&x, &kernel], Some(&bias));
        let y = prim::dot_general(
            &x,
            &kernel,
            DotDims {
                lhs_contracting: (r - k..r).collect(),
                rhs_contracting: (0..k).collect(),
                lhs_batch: vec![],
                rhs_batch: vec![],
            },
            Precision::Default,
            None,
        );
        add_bias(&y, Some(&bias))
    }
}

/// Padding of a convolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConvPadding {
    /// No padding.
    Valid,
    /// Output size `ceil(in / stride)`, padding split with the extra on the high side.
    Same,
    /// `(low, high)` per spatial dimension.
    Explicit(Vec<(i64, i64)>),
}

/// Flax's `Conv`: NHWC input, kernel `(kh, kw, in / groups, features)`.
#[derive(Clone, Debug)]
pub struct Conv {
    /// Output features.
    pub features: usize,
    /// Kernel spatial size.
    pub kernel_size: Vec<usize>,
    /// Strides (ones when empty).
    pub strides: Vec<usize>,
    /// Padding.
    pub padding: ConvPadding,
    /// Kernel dilation (ones when empty).
    pub dilation: Vec<usize>,
    /// Feature groups.
    pub groups: usize,
    /// Whether to add a bias.
    pub use_bias: bool,
    /// Kernel initializer (Flax default: lecun_normal).
    pub kernel_init: Init,
    /// Bias initializer.
    pub bias_init: Init,
    /// Computation type (see [`Dense::dtype`]).
    pub dtype: Option<DType>,
}

impl Conv {
    /// A convolution with Flax's defaults (stride 1, SAME padding, bias).
    pub fn new(features: usize, kernel_size: &[usize]) -> Conv {
        Conv {
            features,
            kernel_size: kernel_size.to_vec(),
            strides: vec![],
            padding: ConvPadding::Same,
            dilation: vec![],
            groups: 1,
            use_bias: true,
            kernel_init: Init::lecun_normal(),
            bias_init: Init::Zeros,
            dtype: None,
        }
    }
}

impl Conv {
    /// The kernel shape `(kh, kw, in / groups, features)` for `cin` input channels.
    pub fn kernel_shape(&self, cin: usize) -> Vec<usize> {
        let mut kshape = self.kernel_size.clone();
        kshape.extend([cin / self.groups.max(1), self.features]);
        kshape
    }

    /// The convolution of `x` with `kernel` (no bias), with this layer's strides, padding,
    /// dilation and groups.
    pub fn convolve(&self, x: &Tensor, kernel: &Tensor) -> Tensor {
        let nsp = self.kernel_size.len();
        let or_ones = |v: &[usize]| {
            if v.is_empty() {
                vec![1; nsp]
            } else {
                v.to_vec()
            }
        };
        let (strides, dilation) = (or_ones(&self.strides), or_ones(&self.dilation));
        let spatial = x.shape().get(1..1 + nsp).unwrap_or(&[]).to_vec();
        let padding = match &self.padding {
            ConvPadding::Valid => vec![(0, 0); nsp],
            ConvPadding::Explicit(p) => p.clone(),
            ConvPadding::Same => (0..nsp)
                .map(|i| {
                    let n = spatial.get(i).copied().unwrap_or(1);
                    let k = (self.kernel_size[i] - 1) * dilation[i] + 1;
                    let out = n.div_ceil(strides[i]);
                    let total = ((out - 1) * strides[i] + k).saturating_sub(n) as i64;
                    (total / 2, total - total / 2)
                })
                .collect(),
        };
        let (lhs, rhs) = if nsp == 2 {
            ("NHWC", "HWIO")
        } else {
            ("NWC", "WIO")
        };
        prim::conv_general_dilated(
            x,
            kernel,
            Convolution {
                strides,
                padding,
                lhs_dilation: vec![1; nsp],
                rhs_dilation: dilation,
                dims: ConvDims::from_layouts(lhs, rhs, lhs),
                feature_group_count: self.groups.max(1),
                batch_group_count: 1,
                precision: Precision::Default,
            },
        )
    }
}

impl Module for Conv {
    const NAME: &'static str = "Conv";
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        let cin = x.shape().last().copied().unwrap_or(1);
        let kshape = self.kernel_shape(cin);
        let kernel = s.param("kernel", &self.kernel_init, &kshape, DType::F32);
        let bias = self
            .use_bias
            .then(|| s.param("bias", &self.bias_init, &[self.features], DType::F32));
        let [x, kernel] = cast(self.dtype, [&x, &kernel], bias.as_ref());
        add_bias(&self.convolve(&x, &kernel), bias.as_ref())
    }
}

/// big_vision's ViT MLP block: `Dense(mlp_dim) → gelu (tanh) → Dropout → Dense(d)`,
/// kernels xavier_uniform, biases normal(1e-6).
#[derive(Clone, Debug, Default)]
pub struct MlpBlock {
    /// Hidden width (4·d when `None`).
    pub mlp_dim: Option<usize>,
    /// Dropout rate after the activation.
    pub dropout: f64,
    /// Computation type of both Dense layers (big_vision's `dtype_mm`).
    pub dtype: Option<DType>,
}

impl Module for MlpBlock {
    const NAME: &'static str = "MlpBlock";
    /// `(x, deterministic)`.
    type In = (Tensor, bool);
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, (x, deterministic): (Tensor, bool)) -> Tensor {
        let d = x.shape().last().copied().unwrap_or(1);
        let dense = |f| {
            Dense::new(f)
                .with_init(Init::xavier_uniform(), Init::normal(1e-6))
                .with_dtype(self.dtype)
        };
        let h = s.call(&dense(self.mlp_dim.unwrap_or(4 * d)), x);
        let h = np::gelu(&h, true);
        let h = s.call(&Dropout { rate: self.dropout }, (h, deterministic));
        s.call(&dense(d), h)
    }
}
