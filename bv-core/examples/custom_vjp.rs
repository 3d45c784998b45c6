//! Functions with custom VJPs, from JAX's `custom_vjp` tutorial: a numerically stable
//! `log1pexp`, whose plain derivative `exp(x) / (1 + exp(x))` is NaN at large `x`, and
//! `clip_gradient`, the identity whose cotangent is clipped. Both are differentiated with
//! `vmap(grad(..))` on concrete tensors (eager mode) and checked against the numbers JAX
//! gives (`custom_vjp.py` wrote `custom_vjp.json`).
//!
//! ```text
//! cargo run -p bv-core --example custom_vjp
//! ```
//! prints the values and gradients and the largest difference from JAX's.

use bv_core::prelude::*;
use serde_json::Value;

mod jax_reference;
use jax_reference::{differences, floats, report};

/// `log(1 + e^x)` with the derivative `1 - 1 / (1 + e^x)`, which stays finite.
fn log1pexp(x: &Tensor) -> Tensor {
    let f = custom_vjp(
        |x: Tensor| (np::log1p(&np::exp(&x)), x),
        |x: &Tensor, g: &Tensor| g * (1.0 - 1.0 / (np::exp(x) + 1.0)),
    );
    f(x.clone())
}

/// The identity, whose cotangent is clipped to `[lo, hi]`.
fn clip_gradient(x: &Tensor, lo: f64, hi: f64) -> Tensor {
    let f = custom_vjp(
        |x: Tensor| (x.clone(), x),
        move |_: &Tensor, g: &Tensor| np::clip(g, lo, hi),
    );
    f(x.clone())
}

fn reference() -> Result<Value, serde_json::Error> {
    serde_json::from_str(include_str!("custom_vjp.json"))
}

/// Our numbers: log1pexp at the finite inputs, its gradient at all, clip_sin and its
/// gradient.
type Numbers = [Vec<f32>; 4];

fn compute(r: &Value) -> Result<Numbers, Box<dyn std::error::Error>> {
    let xv = floats(&r["x"]);
    let tv = floats(&r["t"]);
    let (lo, hi) = (r["lo"].as_f64().ok_or("lo")?, r["hi"].as_f64().ok_or("hi")?);
    let x = Tensor::from_slice(&xv, &[xv.len()]);
    let t = Tensor::from_slice(&tv, &[tv.len()]);
    let finite = x.slice(0, 0, xv.len() - 1);
    let clip_sin = move |x: Tensor| np::sin(&clip_gradient(&x, lo, hi));
    let grads = |f: &dyn Fn(Tensor) -> Tensor, at: &Tensor| {
        vmap(|x: Tensor| grad(|x: Tensor| f(x))(&x), 0, 0)(at)
    };
    Ok([
        log1pexp(&finite).to_vec()?,
        grads(&|x| log1pexp(&x), &x).to_vec()?,
        clip_sin(t.clone()).to_vec()?,
        grads(&clip_sin, &t).to_vec()?,
    ])
}

/// The outputs, as the JSON names them.
const KEYS: [&str; 4] = ["log1pexp", "grad_log1pexp", "clip_sin", "grad_clip_sin"];

/// Float32 rounding: a few units in the last place.
const TOLERANCE: f64 = 2e-6;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let r = reference()?;
    let ours = compute(&r)?;
    let x = floats(&r["x"]);
    let plain = grad(|x: Tensor| np::log1p(&np::exp(&x)));
    let naive = vmap(|x: Tensor| plain(&x), 0, 0)(&Tensor::from_slice(&x, &[x.len()]));
    println!("x                      {:?}", x);
    println!(
        "log1pexp(x), finite x  {:?} (at 100 it overflows float32)",
        ours[0]
    );
    println!("d/dx, custom rule      {:?}", ours[1]);
    println!("d/dx, plain derivative {naive}");
    println!("clip_sin(t)            {:?}", ours[2]);
    println!("d/dt, clipped          {:?}", ours[3]);
    report(&differences(&KEYS, &ours, &r), TOLERANCE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_vjp_gradients_equal_jax() {
        let r = reference().unwrap();
        let ours = compute(&r).unwrap();
        report(&differences(&KEYS, &ours, &r), TOLERANCE).unwrap();
    }
}
