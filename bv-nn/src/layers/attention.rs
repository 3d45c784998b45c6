//! Flax's `MultiHeadDotProductAttention` (no mask, no dropout): `query`, `key`, `value`
//! and `out` projections as `DenseGeneral`s with kernels `(D, heads, D/heads)` and
//! `(heads, D/heads, D)`.

use bv_core::numpy as np;
use bv_core::{DType, Tensor};

use crate::init::Init;
use crate::layers::DenseGeneral;
use crate::scope::{Module, Scope};

/// Attention of `q` over `k`/`v` (`[batch, len, heads, head_dim]`): `q` is divided by
/// `sqrt(head_dim)`, weights are a softmax over keys.
pub fn dot_product_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let depth = q.shape().last().copied().unwrap_or(1) as f64;
    let q = q / depth.sqrt();
    let w = np::softmax(&np::einsum("bqhd,bkhd->bhqk", &[&q, k]), -1);
    np::einsum("bhqk,bkhd->bqhd", &[&w, v])
}

/// Multi-head attention with Flax's parameter layout; `qkv_features` and `out_features`
/// default to the input width.
#[derive(Clone, Debug)]
pub struct MultiHeadDotProductAttention {
    /// Number of heads.
    pub num_heads: usize,
    /// Kernel initializer of all four projections.
    pub kernel_init: Init,
    /// Computation type of the projections, and so of the attention (Flax's `dtype`).
    pub dtype: Option<DType>,
}

impl Module for MultiHeadDotProductAttention {
    const NAME: &'static str = "MultiHeadDotProductAttention";
    /// `(inputs_q, inputs_kv)`, each `[batch, len, D]`.
    type In = (Tensor, Tensor);
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, (xq, xkv): (Tensor, Tensor)) -> Tensor {
        let d = xq.shape().last().copied().unwrap_or(1);
        let heads = self.num_heads.max(1);
        let proj = DenseGeneral {
            features: vec![heads, d / heads],
            in_axes: 1,
            kernel_init: self.kernel_init.clone(),
            bias_init: Init::Zeros,
            dtype: self.dtype,
        };
        let q = s.call_named("query", &proj, xq);
        let k = s.call_named("key", &proj, xkv.clone());
        let v = s.call_named("value", &proj, xkv);
        let o = dot_product_attention(&q, &k, &v);
        let out = DenseGeneral {
            features: vec![d],
            in_axes: 2,
            kernel_init: self.kernel_init.clone(),
            bias_init: Init::Zeros,
            dtype: self.dtype,
        };
        s.call_named("out", &out, o)
    }
}
