//! An Elman RNN written with `scan` for one sequence, run over a batch of sequences with
//! `vmap`: per-sequence losses and final hidden states, per-sequence gradients
//! (`vmap(grad(loss))`, a gradient through a scan, batched) and the gradient of the mean
//! loss (`grad` of `vmap`), checked against the numbers JAX gives for the same model and
//! data (`rnn_scan.py` wrote `rnn_scan.json`).
//!
//! ```text
//! cargo run -p bv-core --example rnn_scan
//! ```
//! prints the losses and the largest difference of each output from JAX's.

use bv_core::batching::Axes;
use bv_core::prelude::*;
use serde_json::Value;

mod jax_reference;
use jax_reference::{differences, floats, report};

/// The RNN's parameters: `h_t = tanh(wh h_{t-1} + wx x_t + b)`, readout `v . h_t`.
#[derive(Clone)]
struct Rnn<L> {
    wh: L,
    wx: L,
    b: L,
    v: L,
}
impl_tree!(Rnn<L> { wh, wx, b, v });

/// The final hidden state and all hidden states of one sequence `x` (steps x features).
fn run(p: &Rnn<Tensor>, x: &Tensor) -> (Tensor, Tensor) {
    let h0 = np::zeros(&[p.b.shape()[0]], DType::F32);
    scan(
        |h: Tensor, xt: Tensor| {
            let h = np::tanh(&(np::matmul(&p.wh, &h) + np::matmul(&p.wx, &xt) + &p.b));
            (h.clone(), h)
        },
        h0,
        x.clone(),
    )
}

/// Mean squared error of the readout against the targets `y` of one sequence.
fn loss(p: &Rnn<Tensor>, x: &Tensor, y: &Tensor) -> Tensor {
    let (_, hs) = run(p, x);
    let e = np::matmul(&hs, &p.v) - y;
    np::mean(&(&e * &e), np::Axes::All, false)
}

/// The outputs compared with JAX's, by their keys in the JSON.
const KEYS: [&str; 10] = [
    "loss",
    "final_hidden",
    "per_sequence_grad/wh",
    "per_sequence_grad/wx",
    "per_sequence_grad/b",
    "per_sequence_grad/v",
    "mean_grad/wh",
    "mean_grad/wx",
    "mean_grad/b",
    "mean_grad/v",
];

fn reference() -> Result<Value, serde_json::Error> {
    serde_json::from_str(include_str!("rnn_scan.json"))
}

/// Runs the batched model on the JSON's data with bv; one vector per key of [`KEYS`].
fn compute(r: &Value) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error>> {
    let pr = &r["params"];
    let (h, bsz) = (
        floats(&pr["b"]).len(),
        r["xs"].as_array().map_or(0, Vec::len),
    );
    let d = floats(&pr["wx"]).len() / h;
    let t = floats(&r["targets"]).len() / bsz;
    let step = jit(|(p, xs, ys): (Rnn<Tensor>, Tensor, Tensor)| {
        let axes = || Axes::tree(&(Axis::NONE, Axis::at(0), Axis::at(0)));
        let losses = vmap(
            |(p, x, y): (Rnn<Tensor>, Tensor, Tensor)| loss(&p, &x, &y),
            axes(),
            0,
        );
        let finals = vmap(
            |(p, x): (Rnn<Tensor>, Tensor)| run(&p, &x).0,
            Axes::tree(&(Axis::NONE, Axis::at(0))),
            0,
        )(&(p.clone(), xs.clone()));
        let per = vmap(
            |(p, x, y): (Rnn<Tensor>, Tensor, Tensor)| grad(|p: Rnn<Tensor>| loss(&p, &x, &y))(&p),
            axes(),
            0,
        )(&(p.clone(), xs.clone(), ys.clone()));
        let mean = grad(|p: Rnn<Tensor>| {
            np::mean(&losses(&(p, xs.clone(), ys.clone())), np::Axes::All, false)
        })(&p);
        let l = losses(&(p, xs.clone(), ys.clone()));
        vec![
            l, finals, per.wh, per.wx, per.b, per.v, mean.wh, mean.wx, mean.b, mean.v,
        ]
    });
    let arr = |k: &str, shape: &[usize]| Array::from_slice(&floats(&pr[k]), shape);
    let p = Rnn {
        wh: arr("wh", &[h, h])?,
        wx: arr("wx", &[h, d])?,
        b: arr("b", &[h])?,
        v: arr("v", &[h])?,
    };
    let xs = Array::from_slice(&floats(&r["xs"]), &[bsz, t, d])?;
    let ys = Array::from_slice(&floats(&r["targets"]), &[bsz, t])?;
    let outs = step.call(&(p, xs, ys))?;
    Ok(outs
        .iter()
        .map(|a| a.to_vec::<f32>())
        .collect::<Result<_, _>>()?)
}

/// Float32 rounding: a few units in the last place.
const TOLERANCE: f64 = 2e-6;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let r = reference()?;
    let ours = compute(&r)?;
    println!("per-sequence losses: {:?}", ours[0]);
    report(&differences(&KEYS, &ours, &r), TOLERANCE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_rnn_equals_jax() {
        let r = reference().unwrap();
        let ours = compute(&r).unwrap();
        report(&differences(&KEYS, &ours, &r), TOLERANCE).unwrap();
    }
}
