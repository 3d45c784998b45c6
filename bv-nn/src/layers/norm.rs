//! `LayerNorm` with Flax's fast variance and epsilon.

use bv_core::prim::{self, ReduceKind};
use bv_core::{DType, Tensor};

use crate::init::Init;
use crate::scope::{Module, Scope};

/// Normalizes over the last axis: `(x - mean) * rsqrt(var + eps) * scale + bias` with
/// `var = max(mean(x²) - mean², 0)` (Flax's `use_fast_variance`).
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
        let r = x.rank();
        let d = x.shape().last().copied().unwrap_or(1);
        let shape = x.shape().to_vec();
        let keep: Vec<usize> = (0..r.saturating_sub(1)).collect();
        let mean_last = |t: &Tensor| {
            let sum = prim::reduce(t, ReduceKind::Sum, &[r - 1]);
            let m = prim::div(&sum, &prim::full(sum.shape(), d as f64, DType::F32));
            prim::broadcast_in_dim(&m, &shape, &keep)
        };
        let mean = mean_last(&x);
        let mean2 = mean_last(&prim::mul(&x, &x));
        let var = prim::max(
            &prim::sub(&mean2, &prim::mul(&mean, &mean)),
            &prim::full(&shape, 0.0, DType::F32),
        );
        let scale = s.param("scale", &Init::Ones, &[d], DType::F32);
        let bias = s.param("bias", &Init::Zeros, &[d], DType::F32);
        let last = |p: &Tensor| prim::broadcast_in_dim(p, &shape, &[r - 1]);
        let mul = prim::rsqrt(&prim::add(
            &var,
            &prim::full(&shape, self.epsilon, DType::F32),
        ));
        let y = prim::mul(&prim::sub(&x, &mean), &prim::mul(&mul, &last(&scale)));
        prim::add(&y, &last(&bias))
    }
}
