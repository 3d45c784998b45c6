//! Helpers shared by the tracing tests: host arrays of any dtype from f64 values, reading
//! results back as f64, seeded random inputs and tolerance checks.
#![allow(dead_code)]

use bv_core::{Array, DType};
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Whether the default client is XLA:CPU, where the CPU-made references hold bit for bit;
/// other platforms differ where XLA leaves the result to the backend (see docs/tpu_gpu.md).
pub fn on_cpu() -> bool {
    bv_core::default_client()
        .map(|c| c.platform_name() == "cpu")
        .unwrap_or(true)
}

/// A deterministic generator per test.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` values uniform in `[lo, hi)`.
pub fn uniform(r: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| r.gen_range(lo..hi)).collect()
}

/// `n` integers uniform in `[lo, hi)`, as f64.
pub fn ints(r: &mut StdRng, n: usize, lo: i64, hi: i64) -> Vec<f64> {
    (0..n).map(|_| r.gen_range(lo..hi) as f64).collect()
}

/// Rounds values to what `dtype` can hold (so host references see the device's inputs).
pub fn quantize(v: &[f64], dtype: DType) -> Vec<f64> {
    v.iter()
        .map(|&x| match dtype {
            DType::F32 => x as f32 as f64,
            DType::BF16 => bf16::from_f64(x).to_f64(),
            DType::F16 => f16::from_f64(x).to_f64(),
            DType::Bool => (x != 0.0) as u8 as f64,
            _ => x,
        })
        .collect()
}

/// An array of `dtype` holding `v` (converted as `astype` would).
pub fn array(v: &[f64], shape: &[usize], dtype: DType) -> Array {
    let bytes: Vec<u8> = v
        .iter()
        .flat_map(|&x| match dtype {
            DType::Bool => vec![(x != 0.0) as u8],
            DType::I8 => (x as i8).to_le_bytes().to_vec(),
            DType::I16 => (x as i16).to_le_bytes().to_vec(),
            DType::I32 => (x as i32).to_le_bytes().to_vec(),
            DType::I64 => (x as i64).to_le_bytes().to_vec(),
            DType::U8 => (x as u8).to_le_bytes().to_vec(),
            DType::U16 => (x as u16).to_le_bytes().to_vec(),
            DType::U32 => (x as u32).to_le_bytes().to_vec(),
            DType::U64 => (x as u64).to_le_bytes().to_vec(),
            DType::F16 => f16::from_f64(x).to_le_bytes().to_vec(),
            DType::BF16 => bf16::from_f64(x).to_le_bytes().to_vec(),
            DType::F32 => (x as f32).to_le_bytes().to_vec(),
            DType::F64 => x.to_le_bytes().to_vec(),
        })
        .collect();
    Array::from_bytes(&bytes, dtype, shape).expect("host to device copy")
}

/// Reads any array back as f64 values.
pub fn read(a: &Array) -> Vec<f64> {
    let bytes = a.to_bytes().expect("device to host copy");
    let w = a.dtype().size_in_bytes();
    bytes
        .chunks_exact(w)
        .map(|b| match a.dtype() {
            DType::Bool => b[0] as f64,
            DType::I8 => b[0] as i8 as f64,
            DType::I16 => i16::from_le_bytes([b[0], b[1]]) as f64,
            DType::I32 => i32::from_le_bytes(b.try_into().unwrap()) as f64,
            DType::I64 => i64::from_le_bytes(b.try_into().unwrap()) as f64,
            DType::U8 => b[0] as f64,
            DType::U16 => u16::from_le_bytes([b[0], b[1]]) as f64,
            DType::U32 => u32::from_le_bytes(b.try_into().unwrap()) as f64,
            DType::U64 => u64::from_le_bytes(b.try_into().unwrap()) as f64,
            DType::F16 => f16::from_le_bytes([b[0], b[1]]).to_f64(),
            DType::BF16 => bf16::from_le_bytes([b[0], b[1]]).to_f64(),
            DType::F32 => f32::from_le_bytes(b.try_into().unwrap()) as f64,
            DType::F64 => f64::from_le_bytes(b.try_into().unwrap()),
        })
        .collect()
}

/// Tolerances `(relative, absolute)` per element type for results of a few ops computed
/// in that type, against an f64 reference on the same (quantized) inputs:
/// f64 ~1e-12, f32 a few ulp of transcendental error (XLA CPU uses fast approximations for
/// tanh, exp, log: ~1e-6 relative), f16 and bf16 one or two ulp of their 11- and 8-bit
/// significands; integers are exact.
pub fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-12, 1e-12),
        DType::F32 => (2e-6, 1e-6),
        DType::F16 => (2e-3, 1e-3),
        DType::BF16 => (1.6e-2, 1e-2),
        _ => (0.0, 0.0),
    }
}

/// Asserts `got` matches `want` within `(rtol, atol)`; NaNs must match NaNs, infinities
/// must match exactly.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], (rtol, atol): (f64, f64)) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        assert!(
            ok,
            "{what}[{i}]: got {g}, want {w} (rtol {rtol}, atol {atol})"
        );
    }
}
