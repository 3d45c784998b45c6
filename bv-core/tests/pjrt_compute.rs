//! A hand-written StableHLO program on one CPU device and on 8, checked against a float64
//! host computation.

use bv_core::pjrt::{Client, CompileOptions};

const M: usize = 8;
const K: usize = 3;
const N: usize = 5;

/// y = (tanh(a) * a + 1) @ b, s = sum over rows of y, m = max of y.
const PROGRAM: &str = r#"
func.func public @main(%a: tensor<8x3xf32>, %b: tensor<3x5xf32>) -> (tensor<8x5xf32>, tensor<5xf32>, tensor<f32>) {
  %t = stablehlo.tanh %a : tensor<8x3xf32>
  %p = stablehlo.multiply %t, %a : tensor<8x3xf32>
  %one = stablehlo.constant dense<1.0> : tensor<8x3xf32>
  %q = stablehlo.add %p, %one : tensor<8x3xf32>
  %y = stablehlo.dot_general %q, %b, contracting_dims = [1] x [0] : (tensor<8x3xf32>, tensor<3x5xf32>) -> tensor<8x5xf32>
  %zero = stablehlo.constant dense<0.0> : tensor<f32>
  %s = stablehlo.reduce(%y init: %zero) applies stablehlo.add across dimensions = [0] : (tensor<8x5xf32>, tensor<f32>) -> tensor<5xf32>
  %ninf = stablehlo.constant dense<0xFF800000> : tensor<f32>
  %m = stablehlo.reduce(%y init: %ninf) applies stablehlo.maximum across dimensions = [0, 1] : (tensor<8x5xf32>, tensor<f32>) -> tensor<f32>
  return %y, %s, %m : tensor<8x5xf32>, tensor<5xf32>, tensor<f32>
}
"#;

fn inputs() -> (Vec<f32>, Vec<f32>) {
    let a = (0..M * K)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3)
        .collect();
    let b = (0..K * N)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.25)
        .collect();
    (a, b)
}

/// The same computation in float64 on the host.
fn reference(a: &[f32], b: &[f32]) -> (Vec<f64>, Vec<f64>, f64) {
    let mut y = vec![0f64; M * N];
    for i in 0..M {
        for j in 0..N {
            for k in 0..K {
                let x = f64::from(a[i * K + k]);
                y[i * N + j] += (x.tanh() * x + 1.0) * f64::from(b[k * N + j]);
            }
        }
    }
    let s = (0..N).map(|j| (0..M).map(|i| y[i * N + j]).sum()).collect();
    let m = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (y, s, m)
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // f32 arithmetic over a handful of terms: a few ulps of the magnitude.
        let tol = 1e-5 * (1.0 + w.abs());
        assert!(
            (f64::from(*g) - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn one_device_matches_float64_host() {
    let client = Client::cpu().unwrap();
    let exe = client.compile(PROGRAM, &CompileOptions::default()).unwrap();
    let dev = &client.addressable_devices()[0];
    let (a, b) = inputs();
    let a_buf = client
        .buffer_from_host(&a, &[M as i64, K as i64], dev)
        .unwrap();
    let b_buf = client
        .buffer_from_host(&b, &[K as i64, N as i64], dev)
        .unwrap();
    let out = exe.execute(&[&a_buf, &b_buf]).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].dims(), &[M as i64, N as i64]);
    let (y, s, m) = reference(&a, &b);
    assert_close(&out[0].to_vec::<f32>().unwrap(), &y, "y");
    assert_close(&out[1].to_vec::<f32>().unwrap(), &s, "s");
    assert_close(&out[2].to_vec::<f32>().unwrap(), &[m], "max");
}
