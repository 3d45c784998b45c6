//! `optax.trace` (SGD momentum), and `big_vision.momentum_hp`: the same with a bfloat16
//! accumulator by default.

use bv_core::trace::Aval;
use bv_core::tree::Params;
use bv_core::{numpy as np, DType};

use super::transform::{take, State, Transform};

/// `tr = g + momentum · tr`; the update is `tr` (nesterov: `g + momentum · tr`). State:
/// `trace/<param>` in `dtype` (`None`: the parameter's).
#[derive(Clone, Debug, PartialEq)]
pub struct MomentumHp {
    pub momentum: f64,
    /// The accumulator's dtype (`big_vision.momentum_hp`: bfloat16; `optax.trace`'s
    /// `accumulator_dtype`: the parameter's when `None`).
    pub dtype: Option<DType>,
    pub nesterov: bool,
}

impl Default for MomentumHp {
    fn default() -> Self {
        MomentumHp {
            momentum: 0.9,
            dtype: Some(DType::BF16),
            nesterov: false,
        }
    }
}

impl Transform for MomentumHp {
    fn init_leaves(&self, params: &Params) -> State {
        params
            .iter()
            .map(|(k, p)| {
                let dtype = self.dtype.unwrap_or(p.dtype());
                (format!("trace/{k}"), np::zeros(p.shape(), dtype))
            })
            .collect()
    }

    fn update_leaves(&self, updates: Params, mut state: State, _: &Params) -> (Params, State) {
        let mut out = Params::new();
        let mut new = State::new();
        for (k, g) in updates {
            let key = format!("trace/{k}");
            let dtype = self.dtype.unwrap_or(g.dtype());
            let prev = take(&mut state, &key, Aval::new(g.shape(), dtype));
            // As optax writes it: `g + decay * t`, the constant in the accumulator's dtype.
            let tr = &g + &prev * self.momentum;
            let u = if self.nesterov {
                &g + &tr * self.momentum
            } else {
                tr.clone()
            };
            new.insert(key, np::astype(&tr, dtype));
            out.insert(k, u);
        }
        (out, new)
    }
}
