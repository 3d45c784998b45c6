//! Gradients of a traced function, compiled with the forward pass into one executable.
//!
//! ```text
//! cargo run -p bv-core --example grad
//! ```
//! prints
//! ```text
//! f(x)   = 2.5774
//! f'(x)  = [0.9182, 1.3818, -1.1036]
//! f''(x) = [1.5155, 0.2391, -1.3548]
//! ```
//! for `f(x) = sum(x sin x)` at `x = [0.5, 1.0, -1.5]` (`f' = sin x + x cos x`,
//! `f'' = 2 cos x - x sin x`).

use bv_core::prelude::*;

fn f(x: Tensor) -> Tensor {
    np::sum(&(&x * &np::sin(&x)), Axes::All, false)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let step = jit(|x: Tensor| {
        let (v, g) = value_and_grad(f)(&x);
        let h = grad(|x: Tensor| np::sum(&grad(f)(&x), Axes::All, false))(&x);
        (v, g, h)
    });
    let x = Array::from_slice(&[0.5f32, 1.0, -1.5], &[3])?;
    let (v, g, h) = step.call(&x)?;
    let show = |a: &Array| -> Result<String, Box<dyn std::error::Error>> {
        let v: Vec<String> = a
            .to_vec::<f32>()?
            .iter()
            .map(|x| format!("{x:.4}"))
            .collect();
        Ok(v.join(", "))
    };
    println!("f(x)   = {}", show(&v)?);
    println!("f'(x)  = [{}]", show(&g)?);
    println!("f''(x) = [{}]", show(&h)?);
    Ok(())
}
