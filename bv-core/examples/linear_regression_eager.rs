//! A linear regression fitted by gradient descent in eager mode: no `jit`, every op runs
//! as it is called on concrete tensors, and `value_and_grad` is applied to concrete
//! parameters each step, as the JAX script beside it does without `jax.jit`
//! (`linear_regression_eager.py` wrote `linear_regression_eager.json`).
//!
//! ```text
//! cargo run -p bv-core --example linear_regression_eager
//! ```
//! prints the loss curve, the fitted weights and the largest difference from JAX's numbers.

use bv_core::prelude::*;
use serde_json::Value;

mod jax_reference;
use jax_reference::{differences, floats, report};

/// Mean squared error of `x w + b`.
fn loss(w: &Tensor, b: &Tensor, x: &Tensor, y: &Tensor) -> Tensor {
    let pred = x.matmul(w) + b;
    np::square(&(pred - y)).mean(np::Axes::All)
}

/// The loss per step, the fitted weights and bias, the final loss.
struct Fit {
    losses: Vec<f32>,
    w: Vec<f32>,
    b: f32,
    final_loss: f32,
}

fn reference() -> Result<Value, serde_json::Error> {
    serde_json::from_str(include_str!("linear_regression_eager.json"))
}

/// Fits the JSON's data with bv, eagerly.
fn fit(r: &Value) -> Result<Fit, Box<dyn std::error::Error>> {
    let (xv, yv) = (floats(&r["x"]), floats(&r["y"]));
    let (n, d) = (yv.len(), xv.len() / yv.len());
    let x = Tensor::from_slice(&xv, &[n, d]);
    let y = Tensor::from_slice(&yv, &[n]);
    let steps = r["steps"].as_u64().ok_or("steps")? as usize;
    let lr = r["lr"].as_f64().ok_or("lr")?;
    let step = value_and_grad(|(w, b): (Tensor, Tensor)| loss(&w, &b, &x, &y));
    let (mut w, mut b) = (np::zeros(&[d], DType::F32), np::zeros(&[], DType::F32));
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let (l, (gw, gb)) = step(&(w.clone(), b.clone()));
        losses.push(l.item::<f32>()?);
        w = &w - &(gw * lr);
        b = &b - &(gb * lr);
    }
    Ok(Fit {
        losses,
        final_loss: loss(&w, &b, &x, &y).item()?,
        w: w.to_vec()?,
        b: b.item()?,
    })
}

/// Our numbers in the order of [`KEYS`].
fn numbers(fit: &Fit) -> [Vec<f32>; 4] {
    [
        fit.losses.clone(),
        fit.w.clone(),
        vec![fit.b],
        vec![fit.final_loss],
    ]
}

/// The outputs, as the JSON names them.
const KEYS: [&str; 4] = ["loss", "w", "b", "final_loss"];

/// Float32 rounding accumulated over the steps.
const TOLERANCE: f64 = 1e-5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let r = reference()?;
    let ours = fit(&r)?;
    for (i, l) in ours.losses.iter().enumerate() {
        if i % 10 == 0 || i + 1 == ours.losses.len() {
            println!("step {i:3}: loss {l:.6}");
        }
    }
    let w = Tensor::from_slice(&ours.w, &[ours.w.len()]);
    println!(
        "fit: w = {w}, b = {:.4} (data made with w = [1.5 -2. 0.5], b = 0.3)",
        ours.b
    );
    println!("final loss {:.6}", ours.final_loss);
    report(&differences(&KEYS, &numbers(&ours), &r), TOLERANCE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eager_fit_equals_jax() {
        let r = reference().unwrap();
        let ours = fit(&r).unwrap();
        report(&differences(&KEYS, &numbers(&ours), &r), TOLERANCE).unwrap();
    }
}
