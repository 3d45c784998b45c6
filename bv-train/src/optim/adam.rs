//! `optax.scale_by_adam`, with a low-precision first moment (`mu_dtype`) and nesterov.

use bv_core::trace::Aval;
use bv_core::tree::Params;
use bv_core::{numpy as np, DType, Tensor};

use super::scale::next_count;
use super::transform::{take, zero_count, State, Transform};

/// Adam's preconditioning (no learning rate). State: `count`, `mu/<param>` (in `mu_dtype`),
/// `nu/<param>` (in the parameter's dtype).
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleByAdam {
    pub b1: f64,
    pub b2: f64,
    pub eps: f64,
    pub eps_root: f64,
    /// The dtype `mu` is stored in (`None`: the parameter's).
    pub mu_dtype: Option<DType>,
    pub nesterov: bool,
}

impl Default for ScaleByAdam {
    fn default() -> Self {
        ScaleByAdam {
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            eps_root: 0.0,
            mu_dtype: None,
            nesterov: false,
        }
    }
}

/// `1 - decay^count` in float32 (`optax.tree_bias_correction`'s denominator).
fn bias_correction(decay: f64, count: &Tensor) -> Tensor {
    1.0 - np::power(
        np::full(&[], decay, DType::F32),
        np::astype(count, DType::F32),
    )
}

impl Transform for ScaleByAdam {
    fn init_leaves(&self, params: &Params) -> State {
        let mut s = State::from([("count".to_string(), zero_count())]);
        for (k, p) in params {
            let mu = self.mu_dtype.unwrap_or(p.dtype());
            s.insert(format!("mu/{k}"), np::zeros(p.shape(), mu));
            s.insert(format!("nu/{k}"), np::zeros(p.shape(), p.dtype()));
        }
        s
    }

    fn update_leaves(&self, updates: Params, mut state: State, _: &Params) -> (Params, State) {
        let (_, count) = next_count(&mut state);
        let bc1 = bias_correction(self.b1, &count);
        let bc2 = bias_correction(self.b2, &count);
        let bc1_next = self
            .nesterov
            .then(|| bias_correction(self.b1, &(&count + 1)));
        let mut out = Params::new();
        let mut new = State::from([("count".to_string(), count.clone())]);
        for (k, g) in updates {
            let mu_dtype = self.mu_dtype.unwrap_or(g.dtype());
            let mu_prev = take(
                &mut state,
                &format!("mu/{k}"),
                Aval::new(g.shape(), mu_dtype),
            );
            let nu_prev = take(
                &mut state,
                &format!("nu/{k}"),
                Aval::new(g.shape(), g.dtype()),
            );
            // As optax writes it: `(1 - b) * g + b * t`, the constant in t's dtype.
            let mu = &g * (1.0 - self.b1) + &mu_prev * self.b1;
            let nu = (&g * &g) * (1.0 - self.b2) + &nu_prev * self.b2;
            let mu_hat = match &bc1_next {
                Some(next) => {
                    (&mu / &np::astype(next, mu.dtype())) * self.b1
                        + (&g / &np::astype(&bc1, g.dtype())) * (1.0 - self.b1)
                }
                None => &mu / &np::astype(&bc1, mu.dtype()),
            };
            let nu_hat = &nu / &np::astype(&bc2, nu.dtype());
            let u = mu_hat / (np::sqrt(&(nu_hat + self.eps_root)) + self.eps);
            new.insert(format!("mu/{k}"), np::astype(&mu, mu_dtype));
            new.insert(format!("nu/{k}"), nu);
            out.insert(k, u);
        }
        (out, new)
    }
}
