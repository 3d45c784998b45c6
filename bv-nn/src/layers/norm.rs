//! `LayerNorm` and `GroupNorm` with Flax's fast variance and epsilon.

use bv_core::numpy as np;
use bv_core::prim::{self, ReduceKind};
use bv_core::{DType, Tensor};

use crate::init::Init;
use crate::scope::{Module, Scope};

/// Normalizes over the last axis: `(x - mean) * rsqrt(var + eps) * scale + bias` with
/// `var = max(mean(x²) - mean², 0)` (Flax's `use_fast_variance`). As in Flax, a float16 or
/// bfloat16 input is normalized in float32 and the result is float32 (its f32 parameters'
/// type).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// Added to the variance (Flax default 1e-6).
    pub epsilon: f64,
}

impl Default for LayerNorm {
    fn default() -> Self {
        LayerNorm { epsilon: 1e-6 }
    }
}

impl Module for LayerNorm {
    const NAME: &'static str = "LayerNorm";
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        // Flax converts `x` twice, for the statistics and for `x - mean`: the backward pass
        // rounds each cotangent to half precision before adding them, as JAX's does.
        let widen = |x: &Tensor| match x.dtype() {
            DType::F16 | DType::BF16 => prim::convert(x, DType::F32),
            _ => x.clone(),
        };
        let (x, xc) = (widen(&x), widen(&x));
        let r = x.rank();
        let d = x.shape().last().copied().unwrap_or(1);
        let shape = x.shape().to_vec();
        let keep: Vec<usize> = (0..r.saturating_sub(1)).collect();
        // Statistics stay at the reduced shape (as Flax's keepdims), so rsqrt and the
        // variance run once per row, not once per element, in the forward and backward.
        let mean_last = |t: &Tensor| {
            let sum = prim::reduce(t, ReduceKind::Sum, &[r - 1]);
            prim::div(&sum, &prim::full(sum.shape(), d as f64, DType::F32))
        };
        // `x²` is traced before `mean(x)`, as in Flax: the backward pass then adds the
        // square's term last, and XLA materializes the residual-stream cotangent once per
        // block instead of re-fusing the whole chain into every consumer.
        let sq = prim::square(&x);
        let mean = mean_last(&x);
        let mean2 = mean_last(&sq);
        let var = prim::max(
            &prim::sub(&mean2, &prim::mul(&mean, &mean)),
            &prim::full(mean.shape(), 0.0, DType::F32),
        );
        let inv = prim::rsqrt(&prim::add(
            &var,
            &prim::full(var.shape(), self.epsilon, DType::F32),
        ));
        let scale = s.param("scale", &Init::Ones, &[d], DType::F32);
        let bias = s.param("bias", &Init::Zeros, &[d], DType::F32);
        let rows = |t: &Tensor| prim::broadcast_in_dim(t, &shape, &keep);
        let last = |p: &Tensor| prim::broadcast_in_dim(p, &shape, &[r - 1]);
        let y = prim::mul(
            &prim::sub(&xc, &rows(&mean)),
            &prim::mul(&rows(&inv), &last(&scale)),
        );
        prim::add(&y, &last(&bias))
    }
}

/// Flax's `GroupNorm`: statistics per example over the spatial axes and the channels of
/// each of `num_groups` groups, with the fast variance `max(E[x²] - E[x]², 0)`; scale and
/// bias of shape `(C,)`.
#[derive(Clone, Debug)]
pub struct GroupNorm {
    /// Channel groups (Flax default 32).
    pub num_groups: usize,
    /// Added to the variance (Flax default 1e-6).
    pub epsilon: f64,
    /// Initializer of `scale` (ones by default).
    pub scale_init: Init,
}

impl Default for GroupNorm {
    fn default() -> Self {
        GroupNorm {
            num_groups: 32,
            epsilon: 1e-6,
            scale_init: Init::Ones,
        }
    }
}

impl Module for GroupNorm {
    const NAME: &'static str = "GroupNorm";
    /// `[batch, spatial..., C]`.
    type In = Tensor;
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        let shape = x.shape().to_vec();
        let r = shape.len();
        let c = shape[r - 1];
        let g = self.num_groups.max(1);
        let mut grouped = shape[..r - 1].to_vec();
        grouped.extend([g, c / g]);
        let xg = prim::reshape(&x, &grouped);
        let axes: Vec<isize> = (1..r + 1)
            .filter(|&a| a != r - 1)
            .map(|a| a as isize)
            .collect();
        let sq = np::square(&xg);
        let mean = np::mean(&xg, axes.clone(), true);
        let mean2 = np::mean(&sq, axes, true);
        let var = np::maximum(&(&mean2 - &(&mean * &mean)), 0.0);
        let scale = s.param("scale", &self.scale_init, &[c], DType::F32);
        let bias = s.param("bias", &Init::Zeros, &[c], DType::F32);
        let mul = prim::reshape(
            &np::broadcast_to(&prim::rsqrt(&(&var + self.epsilon)), &grouped),
            &shape,
        );
        let mul = &mul * &prim::broadcast_in_dim(&scale, &shape, &[r - 1]);
        let centered = prim::reshape(&(&xg - &np::broadcast_to(&mean, &grouped)), &shape);
        &(&centered * &mul) + &prim::broadcast_in_dim(&bias, &shape, &[r - 1])
    }
}
