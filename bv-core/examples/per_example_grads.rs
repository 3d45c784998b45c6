//! Per-example gradients with `vmap(grad(loss))`: the gradient of a logistic-regression loss
//! for each example of a batch at once, and the gradient of the batch's mean loss
//! (`grad(mean(vmap(loss)))`) beside it, checked against the numbers JAX gives for the same
//! model and data (`per_example_grads.py` wrote `per_example_grads.json`).
//!
//! ```text
//! cargo run -p bv-core --example per_example_grads
//! ```
//! prints each example's loss and gradient and the largest difference from JAX's.

use bv_core::batching::Axes;
use bv_core::prelude::*;
use serde_json::Value;

mod jax_reference;
use jax_reference::{differences, floats, report};

/// The model's parameters: a weight per feature and a bias.
struct Params<L> {
    w: L,
    b: L,
}
impl_tree!(Params<L> { w, b });

/// Binary cross-entropy of one example: `softplus(z) - y z` with `z = x.w + b`.
fn loss(p: &Params<Tensor>, x: &Tensor, y: &Tensor) -> Tensor {
    let z = np::matmul(x, &p.w) + &p.b;
    np::logaddexp(&z, 0.0) - y * &z
}

/// Our numbers, flattened: losses, per-example gradients of `w` and `b`, mean gradient of
/// `w` and `b`.
type Numbers = [Vec<f32>; 5];

/// JAX's numbers from the committed JSON.
fn reference() -> Result<Value, serde_json::Error> {
    serde_json::from_str(include_str!("per_example_grads.json"))
}

/// Runs the model on the JSON's data with bv.
fn compute(r: &Value) -> Result<Numbers, Box<dyn std::error::Error>> {
    let (x, y) = (floats(&r["x"]), floats(&r["y"]));
    let (n, d) = (y.len(), x.len() / y.len());
    let step = jit(|(p, x, y): (Params<Tensor>, Tensor, Tensor)| {
        // Params are shared by every example (None); x and y are batched along axis 0.
        let axes = || Axes::tree(&(Axis::NONE, Axis::at(0), Axis::at(0)));
        let per_example = vmap(
            |(p, x, y): (Params<Tensor>, Tensor, Tensor)| {
                grad(|p: Params<Tensor>| loss(&p, &x, &y))(&p)
            },
            axes(),
            0,
        )(&(
            Params {
                w: p.w.clone(),
                b: p.b.clone(),
            },
            x.clone(),
            y.clone(),
        ));
        let losses = vmap(
            |(p, x, y): (Params<Tensor>, Tensor, Tensor)| loss(&p, &x, &y),
            axes(),
            0,
        );
        let mean = grad(|p: Params<Tensor>| {
            np::mean(&losses(&(p, x.clone(), y.clone())), np::Axes::All, false)
        })(&p);
        let l = losses(&(p, x.clone(), y.clone()));
        (l, per_example.w, per_example.b, mean.w, mean.b)
    });
    let params = Params {
        w: Array::from_slice(&floats(&r["w"]), &[d])?,
        b: Array::from_slice(&floats(&r["b"]), &[])?,
    };
    let xs = Array::from_slice(&x, &[n, d])?;
    let ys = Array::from_slice(&y, &[n])?;
    let (l, gw, gb, mw, mb) = step.call(&(params, xs, ys))?;
    Ok([
        l.to_vec()?,
        gw.to_vec()?,
        gb.to_vec()?,
        mw.to_vec()?,
        mb.to_vec()?,
    ])
}

/// The outputs, as the JSON names them.
const KEYS: [&str; 5] = [
    "loss",
    "per_example_w",
    "per_example_b",
    "mean_grad_w",
    "mean_grad_b",
];

/// Float32 rounding: a few units in the last place.
const TOLERANCE: f64 = 2e-6;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let r = reference()?;
    let ours = compute(&r)?;
    let d = ours[1].len() / ours[0].len();
    for (i, l) in ours[0].iter().enumerate() {
        let g: Vec<String> = ours[1][i * d..(i + 1) * d]
            .iter()
            .map(|v| format!("{v:+.6}"))
            .collect();
        println!(
            "example {i}: loss {l:.6}  dL/dw [{}]  dL/db {:+.6}",
            g.join(", "),
            ours[2][i]
        );
    }
    println!(
        "mean-loss gradient: dL/dw {:?}  dL/db {:?}",
        ours[3], ours[4]
    );
    report(&differences(&KEYS, &ours, &r), TOLERANCE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_example_gradients_equal_jax() {
        let r = reference().unwrap();
        let ours = compute(&r).unwrap();
        report(&differences(&KEYS, &ours, &r), TOLERANCE).unwrap();
    }
}
