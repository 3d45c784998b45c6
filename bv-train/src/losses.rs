//! big_vision's classification losses (`utils.py`), written with traced ops so they run
//! inside the jitted step.

use bv_core::numpy as np;
use bv_core::Tensor;

/// The per-example loss `name` (`softmax_xent` or `sigmoid_xent`) of `logits` against
/// (one- or multi-hot) `labels`, both `[batch, classes]`; `None` for an unknown name.
pub fn per_example(name: &str, logits: &Tensor, labels: &Tensor) -> Option<Tensor> {
    match name {
        "softmax_xent" => Some(softmax_xent(logits, labels)),
        "sigmoid_xent" => Some(sigmoid_xent(logits, labels)),
        _ => None,
    }
}

/// The losses a config may name.
pub const NAMES: [&str; 2] = ["softmax_xent", "sigmoid_xent"];

/// `-sum_c y · log_softmax(z)` per example.
pub fn softmax_xent(logits: &Tensor, labels: &Tensor) -> Tensor {
    -np::sum(&(labels * np::log_softmax(logits, -1)), -1, false)
}

/// `-sum_c [y · log σ(z) + (1 − y) · log σ(−z)]` per example (big_vision's default loss).
pub fn sigmoid_xent(logits: &Tensor, labels: &Tensor) -> Tensor {
    let log_p = log_sigmoid(logits);
    let log_not_p = log_sigmoid(&-logits);
    -np::sum(&(labels * &log_p + (1.0 - labels) * log_not_p), -1, false)
}

/// `log σ(z) = min(z, 0) − log1p(exp(−|z|))`, stable for large |z| (`jax.nn.log_sigmoid`).
pub fn log_sigmoid(z: &Tensor) -> Tensor {
    np::minimum(z, 0.0) - np::log1p(&np::exp(&-np::abs(z)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bv_core::{jit, Array};

    /// float64 references computed by hand from the definitions above.
    #[test]
    fn losses_match_float64_definitions() {
        let z = [2.0f32, -1.0, 0.5, -30.0, 40.0, 0.0];
        let y = [1.0f32, 0.0, 0.0, 0.0, 0.5, 0.5];
        let f = jit(|(z, y): (Tensor, Tensor)| (softmax_xent(&z, &y), sigmoid_xent(&z, &y)));
        let (s, g) = f
            .call(&(
                Array::from_slice(&z, &[2, 3]).unwrap(),
                Array::from_slice(&y, &[2, 3]).unwrap(),
            ))
            .unwrap();
        let (s, g) = (s.to_vec::<f32>().unwrap(), g.to_vec::<f32>().unwrap());
        for row in 0..2 {
            let zr: Vec<f64> = z[row * 3..row * 3 + 3]
                .iter()
                .map(|v| f64::from(*v))
                .collect();
            let yr: Vec<f64> = y[row * 3..row * 3 + 3]
                .iter()
                .map(|v| f64::from(*v))
                .collect();
            let lse = zr.iter().map(|v| v.exp()).sum::<f64>().ln();
            let soft: f64 = -yr.iter().zip(&zr).map(|(y, z)| y * (z - lse)).sum::<f64>();
            let ls = |x: f64| -(1.0 + (-x).exp()).ln();
            let sig: f64 = -yr
                .iter()
                .zip(&zr)
                .map(|(y, z)| y * ls(*z) + (1.0 - y) * ls(-z))
                .sum::<f64>();
            assert!(
                (f64::from(s[row]) - soft).abs() < 1e-5 * (1.0 + soft.abs()),
                "softmax row {row}"
            );
            assert!(
                (f64::from(g[row]) - sig).abs() < 1e-5 * (1.0 + sig.abs()),
                "sigmoid row {row}"
            );
        }
    }
}
