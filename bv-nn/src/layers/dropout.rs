//! Flax's `Dropout`: keeps each element with probability `1 - rate` and scales kept ones by
//! `1 / (1 - rate)`; the mask comes from the `dropout` rng of the module's own scope.

use bv_core::{numpy as np, prim, random, Tensor};

use crate::scope::{Module, Scope, Stream};

/// `nn.Dropout(rate)`; called with `(x, deterministic)`.
#[derive(Clone, Debug)]
pub struct Dropout {
    /// Probability of dropping an element.
    pub rate: f64,
}

impl Module for Dropout {
    const NAME: &'static str = "Dropout";
    /// `(x, deterministic)`: deterministic (or rate 0) returns `x` and draws no key.
    type In = (Tensor, bool);
    type Out = Tensor;

    fn apply(&self, s: &mut Scope, (x, deterministic): (Tensor, bool)) -> Tensor {
        if self.rate == 0.0 || deterministic {
            return x;
        }
        let zeros = np::zeros(x.shape(), x.dtype());
        if self.rate >= 1.0 {
            return zeros;
        }
        let keep = 1.0 - self.rate;
        let mask = random::bernoulli(&s.make_rng(Stream::DROPOUT), keep, x.shape());
        let scaled = prim::div(&x, &prim::full(x.shape(), keep, x.dtype()));
        prim::select(&mask, &scaled, &zeros)
    }
}
