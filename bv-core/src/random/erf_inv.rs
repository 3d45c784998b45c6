//! The inverse error function as XLA expands `chlo.erf_inv` for float32 (Giles'
//! approximation), written with the same StableHLO ops so XLA compiles it identically,
//! including its own `log1p` and the fused multiply-adds of the Horner steps.

use crate::dtype::DType;
use crate::prim::{self, CompareDir};
use crate::trace::{fail, Tensor};

// The coefficients exactly as XLA writes them.
#[allow(clippy::excessive_precision)]
const W_LT_5: [f32; 9] = [
    2.81022636e-08,
    3.43273939e-07,
    -3.5233877e-06,
    -4.39150654e-06,
    0.00021858087,
    -0.00125372503,
    -0.00417768164,
    0.246640727,
    1.50140941,
];
#[allow(clippy::excessive_precision)]
const W_GE_5: [f32; 9] = [
    -0.000200214257,
    0.000100950558,
    0.00134934322,
    -0.00367342844,
    0.00573950773,
    -0.0076224613,
    0.00943887047,
    1.00167406,
    2.83297682,
];

/// `erfinv(x)` elementwise for float inputs (float16 and bfloat16 compute in float32, as
/// XLA does); `erfinv(±1) = ±inf`. float64 is not supported (JAX with x64 disabled).
#[track_caller]
pub fn erf_inv(x: &Tensor) -> Tensor {
    match x.dtype() {
        DType::F32 => erf_inv_f32(x),
        DType::F16 | DType::BF16 => {
            prim::convert(&erf_inv_f32(&prim::convert(x, DType::F32)), x.dtype())
        }
        d => {
            let reason = format!("erf_inv supports float32, float16 and bfloat16, got {d}");
            fail("erf_inv", reason, &[x.aval()], Some(x), x.aval().clone())
        }
    }
}

fn erf_inv_f32(x: &Tensor) -> Tensor {
    let shape = x.shape().to_vec();
    let c = |v: f32| prim::full(&shape, v, DType::F32);
    let w = prim::neg(&prim::log1p(&prim::mul(x, &prim::neg(x))));
    let lt = prim::compare(&w, &c(5.0), CompareDir::Lt);
    let coefficient = |i: usize| prim::select(&lt, &c(W_LT_5[i]), &c(W_GE_5[i]));
    let w = prim::select(
        &lt,
        &prim::sub(&w, &c(2.5)),
        &prim::sub(&prim::sqrt(&w), &c(3.0)),
    );
    let mut p = coefficient(0);
    for i in 1..W_LT_5.len() {
        p = prim::add(&coefficient(i), &prim::mul(&p, &w));
    }
    let result = prim::mul(&p, x);
    let is_one = prim::compare(&prim::abs(x), &c(1.0), CompareDir::Eq);
    prim::select(&is_one, &prim::mul(x, &c(f32::INFINITY)), &result)
}
