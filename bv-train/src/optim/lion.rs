//! `optax.scale_by_lion`: the sign of an interpolation of gradient and momentum (Lion,
//! Chen et al. 2023), with a low-precision momentum (`mu_dtype`).

use bv_core::trace::Aval;
use bv_core::tree::Params;
use bv_core::{numpy as np, DType};

use super::scale::next_count;
use super::transform::{take, zero_count, State, Transform};

/// `u = sign((1 - b1) g + b1 mu)`, then `mu = (1 - b2) g + b2 mu` (no learning rate).
/// State: `count`, `mu/<param>` (in `mu_dtype`).
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleByLion {
    pub b1: f64,
    pub b2: f64,
    /// The dtype `mu` is stored in (`None`: the parameter's).
    pub mu_dtype: Option<DType>,
}

impl Default for ScaleByLion {
    fn default() -> Self {
        ScaleByLion {
            b1: 0.9,
            b2: 0.99,
            mu_dtype: None,
        }
    }
}

impl Transform for ScaleByLion {
    fn init_leaves(&self, params: &Params) -> State {
        let mut s = State::from([("count".to_string(), zero_count())]);
        for (k, p) in params {
            let mu = self.mu_dtype.unwrap_or(p.dtype());
            s.insert(format!("mu/{k}"), np::zeros(p.shape(), mu));
        }
        s
    }

    fn update_leaves(&self, updates: Params, mut state: State, _: &Params) -> (Params, State) {
        let (_, count) = next_count(&mut state);
        let mut out = Params::new();
        let mut new = State::from([("count".to_string(), count)]);
        for (k, g) in updates {
            let mu_dtype = self.mu_dtype.unwrap_or(g.dtype());
            let key = format!("mu/{k}");
            let mu_prev = take(&mut state, &key, Aval::new(g.shape(), mu_dtype));
            // As optax writes it: `(1 - b) * g + b * m`, the constant in m's dtype.
            let u = np::sign(&(&g * (1.0 - self.b1) + &mu_prev * self.b1));
            let mu = &g * (1.0 - self.b2) + &mu_prev * self.b2;
            new.insert(key, np::astype(&mu, mu_dtype));
            out.insert(k, u);
        }
        (out, new)
    }
}
