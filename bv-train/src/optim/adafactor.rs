//! `big_vision.scale_by_adafactor`: the "modified Adafactor" of the Scaling-ViT paper, i.e.
//! `optax.scale_by_factored_rms` with `β2_t = min(beta2_cap, 1 - (t+1)^-decay_rate)`, then
//! optional `clip_by_block_rms`, then an undebiased momentum EMA in low precision.

use bv_core::trace::Aval;
use bv_core::tree::Params;
use bv_core::{numpy as np, DType, Tensor};

use super::scale::next_count;
use super::transform::{take, zero_count, State, Transform};

/// State: `count`; `v_row/<param>` and `v_col/<param>` for factored parameters, `v/<param>`
/// for the others; `ema/<param>` in `dtype_momentum` if `momentum` is set.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleByAdafactor {
    pub min_dim_size_to_factor: usize,
    pub decay_rate: f64,
    pub decay_offset: i64,
    pub beta2_cap: f64,
    pub clipping_threshold: Option<f64>,
    pub momentum: Option<f64>,
    pub dtype_momentum: DType,
    pub eps: f64,
}

impl Default for ScaleByAdafactor {
    fn default() -> Self {
        ScaleByAdafactor {
            min_dim_size_to_factor: 32,
            decay_rate: 0.8,
            decay_offset: 0,
            beta2_cap: 0.999,
            clipping_threshold: None,
            momentum: Some(0.9),
            dtype_momentum: DType::BF16,
            eps: 1e-30,
        }
    }
}

/// `(d1, d0)`: the second-largest and largest axes (stable argsort of the shape), if the
/// leaf is factored (`optax._factored_dims`).
fn factored_dims(shape: &[usize], min_dim: usize) -> Option<(usize, usize)> {
    if shape.len() < 2 {
        return None;
    }
    let mut order: Vec<usize> = (0..shape.len()).collect();
    order.sort_by_key(|&i| shape[i]);
    let (d1, d0) = (order[order.len() - 2], order[order.len() - 1]);
    (shape[d1] >= min_dim).then_some((d1, d0))
}

/// `shape` without axis `axis`.
fn without(shape: &[usize], axis: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    s.remove(axis);
    s
}

/// `x` with a unit axis inserted at `axis` (`jnp.expand_dims`).
fn expand(x: &Tensor, axis: usize) -> Tensor {
    let mut s: Vec<isize> = x.shape().iter().map(|&d| d as isize).collect();
    s.insert(axis, 1);
    np::reshape(x, &s)
}

impl Transform for ScaleByAdafactor {
    fn init_leaves(&self, params: &Params) -> State {
        let mut s = State::from([("count".to_string(), zero_count())]);
        for (k, p) in params {
            match factored_dims(p.shape(), self.min_dim_size_to_factor) {
                Some((d1, d0)) => {
                    let row = np::zeros(&without(p.shape(), d0), DType::F32);
                    s.insert(format!("v_row/{k}"), row);
                    let col = np::zeros(&without(p.shape(), d1), DType::F32);
                    s.insert(format!("v_col/{k}"), col);
                }
                None => {
                    s.insert(format!("v/{k}"), np::zeros(p.shape(), DType::F32));
                }
            }
            if self.momentum.is_some() {
                let ema = np::zeros(p.shape(), self.dtype_momentum);
                s.insert(format!("ema/{k}"), ema);
            }
        }
        s
    }

    fn update_leaves(&self, updates: Params, mut state: State, _: &Params) -> (Params, State) {
        let (count, next) = next_count(&mut state);
        // `_decay_rate_pow(count - offset)` in float32.
        let t = np::astype(&(&count - self.decay_offset), DType::F32) + 1.0;
        let rho = np::minimum(self.beta2_cap, 1.0 - np::power(&t, -self.decay_rate));
        let mut out = Params::new();
        let mut new = State::from([("count".to_string(), next)]);
        let f32_entry = |state: &mut State, key: String, shape: Vec<usize>| {
            take(state, &key, Aval::new(shape, DType::F32))
        };
        for (k, g) in updates {
            let g2 = &g * &g + self.eps;
            let mut u = match factored_dims(g.shape(), self.min_dim_size_to_factor) {
                Some((d1, d0)) => {
                    let row_key = format!("v_row/{k}");
                    let col_key = format!("v_col/{k}");
                    let v_row = f32_entry(&mut state, row_key.clone(), without(g.shape(), d0));
                    let v_col = f32_entry(&mut state, col_key.clone(), without(g.shape(), d1));
                    let v_row = &rho * &v_row + (1.0 - &rho) * np::mean(&g2, [d0 as isize], false);
                    let v_col = &rho * &v_col + (1.0 - &rho) * np::mean(&g2, [d1 as isize], false);
                    let reduced_d1 = if d1 > d0 { d1 - 1 } else { d1 };
                    let row_col_mean = np::mean(&v_row, [reduced_d1 as isize], true);
                    let row_factor = np::power(&v_row / &row_col_mean, -0.5);
                    let col_factor = np::power(&v_col, -0.5);
                    let u = &g * &expand(&row_factor, d0) * expand(&col_factor, d1);
                    new.insert(row_key, v_row);
                    new.insert(col_key, v_col);
                    u
                }
                None => {
                    let key = format!("v/{k}");
                    let v = f32_entry(&mut state, key.clone(), g.shape().to_vec());
                    let v = &rho * &v + (1.0 - &rho) * g2;
                    let u = &g * &np::power(&v, -0.5);
                    new.insert(key, v);
                    u
                }
            };
            if let Some(threshold) = self.clipping_threshold {
                let rms = np::sqrt(&np::mean(&(&u * &u), np::Axes::All, false));
                u = &u / &np::maximum(1.0, rms / threshold);
            }
            if let Some(m) = self.momentum {
                let key = format!("ema/{k}");
                let prev = take(&mut state, &key, Aval::new(g.shape(), self.dtype_momentum));
                // optax.ema without debiasing: `(1 - m) * u + m * ema`, m in ema's dtype.
                u = &u * (1.0 - m) + &prev * m;
                new.insert(key, np::astype(&u, self.dtype_momentum));
            }
            out.insert(k, u);
        }
        (out, new)
    }
}

#[cfg(test)]
mod tests {
    use super::factored_dims;

    #[test]
    fn factors_the_two_largest_axes_ties_by_index() {
        assert_eq!(factored_dims(&[40, 36], 32), Some((1, 0)));
        assert_eq!(factored_dims(&[36, 40], 32), Some((0, 1)));
        assert_eq!(factored_dims(&[64, 64], 32), Some((0, 1)));
        assert_eq!(factored_dims(&[3, 3, 2, 4], 32), None);
        assert_eq!(factored_dims(&[128], 32), None);
    }
}
