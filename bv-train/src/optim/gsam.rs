//! GSAM and SAM gradients (big_vision's `trainers/proj/gsam/gsam.py`,
//! <https://openreview.net/pdf?id=edONMAnhLu->): the gradient at parameters perturbed by
//! `ρ_t` along the normalized clean gradient, with `ρ_t` following the learning rate
//! between `rho_min` and `rho_max`, and the surrogate-gap term weighted by `alpha`.
//! `alpha = 0, rho_max = rho_min` is SAM.

use bv_core::autodiff::value_and_grad;
use bv_core::numpy as np;
use bv_core::tree::Params;
use bv_core::Tensor;
use serde_json::Value;

use super::{global_norm, OptimError};

/// big_vision's `config.gsam` (the keyword arguments of `gsam_gradient` besides the loss,
/// parameters and learning rate).
#[derive(Clone, Debug, PartialEq)]
pub struct Gsam {
    /// Perturbation radius at the largest learning rate.
    pub rho_max: f64,
    /// Perturbation radius at the smallest learning rate.
    pub rho_min: f64,
    /// Weight of the surrogate-gap term (0: SAM).
    pub alpha: f64,
    /// The schedule's largest learning rate.
    pub lr_max: f64,
    /// The schedule's smallest learning rate.
    pub lr_min: f64,
    /// Added to the gradient norm before dividing.
    pub eps: f64,
    /// Scale the perturbation of each parameter by its magnitude.
    pub adaptive_perturbation: bool,
    /// Minimize the perturbed loss and the gap (GSAM); `false`: the clean loss and the gap.
    pub minimize_fp: bool,
}

/// The keys of `config.gsam`.
pub const KEYS: [&str; 8] = [
    "rho_max",
    "rho_min",
    "alpha",
    "lr_max",
    "lr_min",
    "eps",
    "adaptive_perturbation",
    "minimize_fp",
];

impl Gsam {
    /// `config.gsam`: `rho_max`, `rho_min`, `alpha`, `lr_max`, `lr_min` required, `eps`
    /// (1e-12), `adaptive_perturbation` (false), `minimize_fp` (true) optional. Radii must
    /// be non-negative with `rho_min <= rho_max`, and `lr_min <= lr_max`.
    pub fn from_config(v: &Value) -> Result<Gsam, OptimError> {
        let bad = |key: String, msg: String| OptimError::Gsam { key, msg };
        let map = v.as_object().ok_or_else(|| {
            bad(
                "gsam".into(),
                format!("expected a map of {KEYS:?}, got {v}"),
            )
        })?;
        if let Some(k) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(bad(
                format!("gsam.{k}"),
                format!("not a GSAM setting; use {KEYS:?}"),
            ));
        }
        let num = |k: &str, default: Option<f64>| -> Result<f64, OptimError> {
            match (map.get(k), default) {
                (Some(v), _) => v
                    .as_f64()
                    .ok_or_else(|| bad(format!("gsam.{k}"), format!("expected a number, got {v}"))),
                (None, Some(d)) => Ok(d),
                (None, None) => Err(bad(
                    format!("gsam.{k}"),
                    "missing (big_vision requires it)".into(),
                )),
            }
        };
        let flag = |k: &str, default: bool| -> Result<bool, OptimError> {
            map.get(k).map_or(Ok(default), |v| {
                v.as_bool().ok_or_else(|| {
                    bad(
                        format!("gsam.{k}"),
                        format!("expected true or false, got {v}"),
                    )
                })
            })
        };
        let g = Gsam {
            rho_max: num("rho_max", None)?,
            rho_min: num("rho_min", None)?,
            alpha: num("alpha", None)?,
            lr_max: num("lr_max", None)?,
            lr_min: num("lr_min", None)?,
            eps: num("eps", Some(1e-12))?,
            adaptive_perturbation: flag("adaptive_perturbation", false)?,
            minimize_fp: flag("minimize_fp", true)?,
        };
        if g.rho_min < 0.0 || g.rho_min > g.rho_max {
            return Err(bad(
                "gsam".into(),
                format!(
                    "rho_min ({}) must be between 0 and rho_max ({}); ρ follows the learning \
                     rate from rho_max down to rho_min",
                    g.rho_min, g.rho_max
                ),
            ));
        }
        if g.lr_min > g.lr_max {
            return Err(bad(
                "gsam".into(),
                format!("lr_min ({}) is above lr_max ({})", g.lr_min, g.lr_max),
            ));
        }
        Ok(g)
    }

    /// `ρ_t` at learning rate `lr` (traced): `rho_max` when `lr_max == lr_min`, else linear
    /// in `lr` from `rho_min` at `lr_min` to `rho_max` at `lr_max`.
    pub fn rho(&self, lr: &Tensor) -> Tensor {
        if self.lr_max == self.lr_min {
            return np::full(&[], self.rho_max, lr.dtype());
        }
        let slope = (self.rho_max - self.rho_min) / (self.lr_max - self.lr_min);
        self.rho_min + (lr - self.lr_min) * slope
    }

    /// `gsam_gradient(loss_fn, params, ..., lr)`: the clean loss and the GSAM gradient.
    pub fn gradient(
        &self,
        loss: impl Fn(Params) -> Tensor,
        params: &Params,
        lr: &Tensor,
    ) -> (Tensor, Params) {
        let vg = value_and_grad(&loss);
        let (l_clean, g_clean) = vg(params);
        let g_len = global_norm(&g_clean);
        let rho = self.rho(lr);
        let step = |p: &Tensor, g: &Tensor| {
            let d = &rho * g / (&g_len + self.eps);
            if self.adaptive_perturbation {
                p + np::abs(p) * d
            } else {
                p + d
            }
        };
        let param_sam: Params = params
            .iter()
            .map(|(k, p)| (k.to_string(), step(p, &g_clean[k])))
            .collect();
        let (_, g_robust) = vg(&param_sam);
        // GSAM: g_robust minus alpha times the part of g_clean orthogonal to g_robust;
        // minimize_fp = false: g_clean plus alpha times the part of g_robust orthogonal to
        // g_clean.
        let (toward, along) = if self.minimize_fp {
            (&g_robust, &g_clean)
        } else {
            (&g_clean, &g_robust)
        };
        let n = global_norm(toward);
        let unit: Params = toward
            .iter()
            .map(|(k, g)| (k.to_string(), g / &n))
            .collect();
        let mut proj: Option<Tensor> = None;
        for (k, u) in &unit {
            let d = np::sum(&(u * &along[k]), np::Axes::All, false);
            proj = Some(proj.map_or(d.clone(), |p| p + d));
        }
        let proj = proj.unwrap_or_else(|| np::full(&[], 0.0, lr.dtype()));
        let g_gsam = unit
            .iter()
            .map(|(k, u)| {
                let residual = &along[k] - &proj * u;
                let g = if self.minimize_fp {
                    &toward[k] - residual * self.alpha
                } else {
                    &toward[k] + residual * self.alpha
                };
                (k.to_string(), g)
            })
            .collect();
        (l_clean, g_gsam)
    }
}
