//! An MLP, written as a user struct, fitted with [`adamw`] under `jit` + `value_and_grad`:
//! the loss at every step equals the one JAX + Optax give for the same program
//! (`mlp_adamw.py` wrote `mlp_adamw.json`). Data and initial parameters come from formulas,
//! computed here and checked against the JSON's copy.
//!
//! ```text
//! cargo run -p bv-train --example mlp_adamw
//! ```
//! prints the loss every 10 steps and the largest difference from JAX's.

use std::sync::Arc;

use bv_core::prelude::*;
use bv_train::optim::{adamw, apply_updates, AdamWOptions, Mask, Optimizer, State};
use serde_json::Value;

#[path = "../../bv-core/examples/jax_reference/mod.rs"]
mod jax_reference;
use jax_reference::{differences, floats, report, worst};

/// A dense layer's parameters.
struct Dense<L> {
    kernel: L,
    bias: L,
}
impl_tree!(Dense<L> { kernel, bias });

/// The model: leaves `hidden/kernel`, `hidden/bias`, `out/kernel`, `out/bias`.
struct Mlp<L> {
    hidden: Dense<L>,
    out: Dense<L>,
}
impl_tree!(Mlp<L> { hidden, out });

const N: usize = 32;
const D: usize = 2;
const H: usize = 16;
const STEPS: usize = 60;

/// Mean squared error of `tanh(x W1 + b1) W2 + b2` against `y`.
fn loss(p: &Mlp<Tensor>, x: &Tensor, y: &Tensor) -> Tensor {
    let h = np::tanh(&(np::matmul(x, &p.hidden.kernel) + &p.hidden.bias));
    let err = np::matmul(&h, &p.out.kernel) + &p.out.bias - y;
    np::mean(&(&err * &err), np::Axes::All, false)
}

/// `scale · sin(a r + b k + c)` over a `rows × cols` grid, as float32.
fn table(rows: usize, cols: usize, (a, b, c): (f64, f64, f64), scale: f64) -> Vec<f32> {
    let cell = |r: usize, k: usize| scale * (a * r as f64 + b * k as f64 + c).sin();
    (0..rows)
        .flat_map(|r| (0..cols).map(move |k| cell(r, k) as f32))
        .collect()
}

/// The data: `x_i = (sin 0.37i, cos(0.91i + 0.5))`, `y_i = sin(2 x_i0) + x_i1² / 2`.
fn data() -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f64> = (0..N)
        .flat_map(|i| {
            let i = i as f64;
            [(0.37 * i).sin(), (0.91 * i + 0.5).cos()]
        })
        .collect();
    let y = x
        .chunks(2)
        .map(|p| ((2.0 * p[0]).sin() + 0.5 * p[1] * p[1]) as f32)
        .collect();
    (x.into_iter().map(|v| v as f32).collect(), y)
}

/// The initial parameters, from the same formulas as the JAX script.
fn init() -> [Vec<f32>; 4] {
    [
        table(D, H, (1.7, 0.3, 0.1), 0.8),
        table(1, H, (0.0, 0.5, 0.2), 0.1),
        table(H, 1, (0.9, 0.0, 0.3), 0.4),
        vec![0.0],
    ]
}

/// JAX's numbers from the committed JSON.
fn reference() -> Result<Value, serde_json::Error> {
    serde_json::from_str(include_str!("mlp_adamw.json"))
}

/// The loss at each of `STEPS` steps (before its update), and how far our data and initial
/// parameters are from the JSON's copies.
fn train(r: &Value) -> Result<(Vec<f32>, f64), Box<dyn std::error::Error>> {
    let (x, y) = data();
    let [w1, b1, w2, b2] = init();
    let p = &r["params"];
    let inputs_off = [
        worst(&x, &floats(&r["x"])),
        worst(&y, &floats(&r["y"])),
        worst(&w1, &floats(&p["hidden"]["kernel"])),
        worst(&b1, &floats(&p["hidden"]["bias"])),
        worst(&w2, &floats(&p["out"]["kernel"])),
        worst(&b2, &floats(&p["out"]["bias"])),
    ]
    .into_iter()
    .fold(0.0, f64::max);

    // Weight decay on the kernels only, matched on the leaf names.
    let options = AdamWOptions {
        weight_decay: 1e-3,
        mask: Some(Mask::regex(".*/kernel")?),
        ..Default::default()
    };
    let tx = Arc::new(adamw(0.02, options));
    let t = tx.clone();
    let opt_init = jit(move |p: Mlp<Tensor>| t.init(&p));
    let step = jit(move |(p, s, x, y): (Mlp<Tensor>, State, Tensor, Tensor)| {
        let (l, g) = value_and_grad(|p: Mlp<Tensor>| loss(&p, &x, &y))(&p);
        let (u, s) = tx.update(&g, s, &p);
        (apply_updates(&p, &u), s, l)
    });
    let mut params = Mlp {
        hidden: Dense {
            kernel: Array::from_slice(&w1, &[D, H])?,
            bias: Array::from_slice(&b1, &[H])?,
        },
        out: Dense {
            kernel: Array::from_slice(&w2, &[H, 1])?,
            bias: Array::from_slice(&b2, &[1])?,
        },
    };
    let (x, y) = (
        Array::from_slice(&x, &[N, D])?,
        Array::from_slice(&y, &[N, 1])?,
    );
    let mut state = opt_init.call(&params)?;
    let mut losses = Vec::new();
    for _ in 0..STEPS {
        let (p, s, l) = step.call(&(params, state, x.clone(), y.clone()))?;
        losses.push(l.item::<f32>()?);
        (params, state) = (p, s);
    }
    Ok((losses, inputs_off))
}

/// Float32 rounding carried through 60 steps.
const TOLERANCE: f64 = 1e-5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let r = reference()?;
    let (losses, inputs_off) = train(&r)?;
    for (i, l) in losses.iter().enumerate().step_by(10) {
        println!("step {i:2}: loss {l:.6}");
    }
    let mut off = differences(&["loss"], &[losses], &r);
    off.push(("data and initial parameters", inputs_off));
    report(&off, TOLERANCE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_equal_jax_and_optax() {
        let r = reference().unwrap();
        let (losses, inputs_off) = train(&r).unwrap();
        assert!(inputs_off <= 1e-7, "data: {inputs_off:e} from the JSON's");
        let off = worst(&losses, &floats(&r["loss"]));
        assert!(off <= TOLERANCE, "losses: {off:e} from JAX's");
        assert!(
            losses[STEPS - 1] < losses[0] / 10.0,
            "the fit makes progress"
        );
    }
}
