//! Eager execution: ops on concrete tensors outside any trace against float64 host
//! computations, JAX's PRNG outputs (`tests/golden/prng/`) and numpy's printing
//! (`tests/data/eager_print/make.py` wrote `print.json`); the per-signature compile cache;
//! concrete tensors closed over by `jit`; transformations applied to concrete inputs
//! against finite differences; errors held by tensors with the user's file:line.

mod support;

use std::path::PathBuf;

use bv_core::autodiff::{grad, jvp, value_and_grad, value_and_grad_aux, vjp};
use bv_core::batching::vmap;
use bv_core::control::{cond, fori_loop, scan, while_loop};
use bv_core::io::read_npz;
use bv_core::numpy::{self as np, Axes};
use bv_core::random;
use bv_core::trace::{self, Aval};
use bv_core::{eager, jit, Array, DType, EagerError, Spec, Tensor, TraceError};
use serde_json::Value;
use support::{quantize, read, rng, uniform};

/// A concrete tensor of `dtype` holding `v`.
fn tensor(v: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from(support::array(v, shape, dtype))
}

/// A concrete tensor's values as f64.
fn values(t: &Tensor) -> Vec<f64> {
    read(&t.to_array().expect("a computed value"))
}

fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// Row-major `[n, m]` values of `f(i, j)`.
fn grid(n: usize, m: usize, f: impl Fn(usize, usize) -> f64) -> Vec<f64> {
    (0..n * m).map(|k| f(k / m, k % m)).collect()
}

#[test]
fn elementwise_ops_match_float64() {
    let mut r = rng(1);
    let xv = quantize(&uniform(&mut r, 12, 0.5, 2.0), DType::F32);
    let yv = quantize(&uniform(&mut r, 4, -1.0, 1.0), DType::F32);
    let (x, y) = (
        tensor(&xv, &[3, 4], DType::F32),
        tensor(&yv, &[4], DType::F32),
    );
    let un = |f: fn(f64) -> f64| xv.iter().map(|&a| f(a)).collect::<Vec<f64>>();
    let bin = |f: fn(f64, f64) -> f64| grid(3, 4, |i, j| f(xv[i * 4 + j], yv[j]));
    let cases: Vec<(&str, Tensor, Vec<f64>)> = vec![
        ("exp", x.exp(), un(f64::exp)),
        ("log", x.log(), un(f64::ln)),
        ("sqrt", x.sqrt(), un(f64::sqrt)),
        ("tanh", np::tanh(&x), un(f64::tanh)),
        ("square", np::power(&x, 2), un(|a| a * a)),
        ("scale", &x * 2.0 - 1.0, un(|a| 2.0 * a - 1.0)),
        ("add", &x + &y, bin(|a, b| a + b)),
        ("divide", &x / &y, bin(|a, b| a / b)),
        ("maximum", np::maximum(&x, &y), bin(f64::max)),
        ("abs_neg", (-&y).abs(), yv.iter().map(|b| b.abs()).collect()),
        (
            "logaddexp",
            np::logaddexp(&x, 0.0),
            un(|a| (a.exp() + 1.0).ln()),
        ),
    ];
    for (name, t, want) in cases {
        assert_close(name, &values(&t), &want, 2e-6, 1e-7);
    }
    let lt = np::less(&x, &y);
    assert_eq!(lt.dtype(), DType::Bool);
    assert_eq!(values(&lt), bin(|a, b| f64::from(u8::from(a < b))));
}

#[test]
fn reductions_matmul_and_shapes_match_float64() {
    let mut r = rng(2);
    let xv = quantize(&uniform(&mut r, 12, -1.0, 1.0), DType::F32);
    let wv = quantize(&uniform(&mut r, 20, -1.0, 1.0), DType::F32);
    let x = tensor(&xv, &[3, 4], DType::F32);
    let w = tensor(&wv, &[4, 5], DType::F32);
    let mm = grid(3, 5, |i, j| {
        (0..4).map(|k| xv[i * 4 + k] * wv[k * 5 + j]).sum()
    });
    assert_close("matmul", &values(&x.matmul(&w)), &mm, 1e-5, 1e-6);
    let xr = &xv;
    let col = |j: usize| (0..3).map(move |i| xr[i * 4 + j]);
    let row = |i: usize| xv[i * 4..i * 4 + 4].iter().copied();
    let sum0: Vec<f64> = (0..4).map(|j| col(j).sum()).collect();
    assert_close("sum axis 0", &values(&x.sum(0)), &sum0, 1e-6, 1e-6);
    let mean1: Vec<f64> = (0..3).map(|i| row(i).sum::<f64>() / 4.0).collect();
    assert_close("mean axis 1", &values(&x.mean(1)), &mean1, 1e-6, 1e-6);
    let max_all = xv.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(values(&x.max(Axes::All)), [max_all]);
    let min_last: Vec<f64> = (0..3).map(|i| row(i).fold(f64::MAX, f64::min)).collect();
    assert_eq!(values(&x.min(-1)), min_last);
    let argmax: Vec<f64> = (0..3)
        .map(|i| {
            let v: Vec<f64> = row(i).collect();
            (0..4).fold(0, |b, k| if v[k] > v[b] { k } else { b }) as f64
        })
        .collect();
    assert_eq!(values(&x.argmax(1)), argmax);
    let xt = x.t();
    assert_eq!(xt.shape(), [4, 3]);
    assert_eq!(values(&xt), grid(4, 3, |i, j| xv[j * 4 + i]));
    let sl = x.slice(1, 1, 3).reshape(&[-1]);
    let want: Vec<f64> = (0..3)
        .flat_map(|i| [xv[i * 4 + 1], xv[i * 4 + 2]])
        .collect();
    assert_eq!(values(&sl), want);
    let e = x.expand_dims(0);
    assert_eq!(e.shape(), [1, 3, 4]);
    assert_eq!(e.squeeze(Axes::All).shape(), [3, 4]);
    assert_eq!(
        values(&x.astype(DType::I32)),
        xv.iter().map(|a| a.trunc()).collect::<Vec<_>>()
    );
    let b = tensor(&[1.0, 2.0], &[2, 1], DType::F32).broadcast_to(&[2, 3]);
    assert_eq!(values(&b), [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    let idx = Tensor::from_slice(&[2i32, 0], &[2]);
    assert_eq!(
        values(&x.take(&idx, 1)),
        grid(3, 2, |i, j| xv[i * 4 + [2, 0][j]])
    );
}

#[test]
fn random_samplers_match_jax() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/prng");
    let arrays: std::collections::HashMap<String, _> = read_npz(dir.join("prng.npz"))
        .expect("prng.npz")
        .into_iter()
        .collect();
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index.json parses");
    let key = |name: &str| -> Tensor {
        let e = index["entries"]
            .as_array()
            .and_then(|es| es.iter().find(|e| e["name"] == name))
            .expect(name);
        let k = [
            e["key"][0].as_u64().unwrap() as u32,
            e["key"][1].as_u64().unwrap() as u32,
        ];
        Tensor::from(random::Key(k).to_array().expect("key"))
    };
    // JAX's samplers ran under `jit`, where XLA fuses `bits * (max - min) + min` into one
    // rounding; eager rounds the product first: one ulp of it (below 4.8e-7 for products
    // under 5) before the shift.
    let uniform = random::uniform(&key("uniform/minmax"), &[4, 6], DType::F32, -2.0, 3.0);
    let want: Vec<f32> = arrays["uniform/minmax"].to_vec().unwrap();
    for (g, w) in uniform.to_vec::<f32>().unwrap().iter().zip(&want) {
        assert!((g - w).abs() <= 4.8e-7, "uniform: {g} vs JAX's {w}");
    }
    let normal = random::normal(&key("normal/f32"), &[1000], DType::F32);
    let want: Vec<f32> = arrays["normal/f32"].to_vec().unwrap();
    assert_eq!(want.len(), 1000);
    for (g, w) in normal.to_vec::<f32>().unwrap().iter().zip(&want) {
        assert!(
            (g - w).abs() <= 4.0 * f32::EPSILON * w.abs().max(1.0),
            "normal: {g} vs JAX's {w}"
        );
    }
    let bits = random::bits(&key("split/n2"), &[3, 5]);
    let want: Vec<u32> = arrays["bits/3x5"].to_vec().unwrap();
    assert_eq!(bits.to_vec::<u32>().unwrap(), want, "bits (exact)");
}

#[test]
fn control_flow_runs_eagerly() {
    let xv = [0.5, -1.0, 2.0];
    let x = tensor(&xv, &[3], DType::F32);
    // while i < 5: acc = 2 acc + x, with `x` closed over.
    let (i, acc) = while_loop(
        |(i, _): &(Tensor, Tensor)| np::less(i, 5),
        |(i, acc): (Tensor, Tensor)| (&i + 1, &acc * 2.0 + &x),
        (
            Tensor::from_slice(&[0i32], &[]),
            np::zeros(&[3], DType::F32),
        ),
    );
    assert_eq!(i.item::<i32>().unwrap(), 5);
    let want: Vec<f64> = xv.iter().map(|v| v * 31.0).collect();
    assert_eq!(values(&acc), want);

    let rows = grid(5, 3, |i, j| (i * 3 + j) as f64 * 0.25);
    let xs = tensor(&rows, &[5, 3], DType::F32);
    let (last, ys) = scan(
        |c: Tensor, r: Tensor| {
            let s = &c + &r;
            (s.clone(), s * 2.0)
        },
        np::zeros(&[3], DType::F32),
        xs,
    );
    let mut run = [0.0; 3];
    let mut want_ys = Vec::new();
    for i in 0..5 {
        for j in 0..3 {
            run[j] += rows[i * 3 + j];
            want_ys.push(run[j] * 2.0);
        }
    }
    assert_eq!(values(&last), run);
    assert_eq!(values(&ys), want_ys);

    let total = fori_loop(
        0,
        10,
        |i, s: Tensor| &s + &i.astype(DType::F32),
        np::zeros(&[], DType::F32),
    );
    assert_eq!(total.item::<f32>().unwrap(), 45.0);
    for (p, want) in [(true, 1.0), (false, -1.0)] {
        let pred = Tensor::from_slice(&[p], &[]);
        let out = cond(
            &pred,
            |v: Tensor| np::abs(&v),
            |v: Tensor| -v,
            x.slice(0, 0, 1),
        );
        assert_eq!(values(&out), [want * 0.5], "cond {p}");
    }
}

#[test]
fn each_signature_compiles_once() {
    // A signature no other test uses: stats are per thread, the cache is per process.
    let a = || Tensor::from_slice(&vec![3i16; 13 * 17], &[13, 17]);
    let before = eager::stats();
    let first = &a() * &a();
    let after_first = eager::stats();
    assert_eq!(after_first.compiles - before.compiles, 1);
    assert_eq!(after_first.cache_hits, before.cache_hits);
    let second = &a() * &a();
    let after_second = eager::stats();
    assert_eq!(
        after_second.compiles, after_first.compiles,
        "no compile the second time"
    );
    assert_eq!(after_second.cache_hits - after_first.cache_hits, 1);
    assert_eq!(first.to_vec::<i16>().unwrap(), vec![9; 13 * 17]);
    assert_eq!(second.to_vec::<i16>().unwrap(), vec![9; 13 * 17]);
}

#[test]
fn jit_closes_over_concrete_tensors() {
    let w = Array::from_slice(&[1f32, 2.0, 3.0], &[3]).unwrap();
    let w2 = w.clone();
    let f = jit(move |x: Tensor| {
        let w = Tensor::from(&w2);
        // Used directly and inside a loop body: both become arguments of the program.
        let (_, ys) = scan(
            |c: Tensor, xi: Tensor| (c.clone(), &xi * &w + &c),
            np::ones(&[], DType::F32),
            np::broadcast_to(&x, &[2, 3]),
        );
        (&x * &w, ys)
    });
    let lowered = f.lower(&Spec::new([3], DType::F32)).unwrap();
    assert_eq!(lowered.consts.len(), 1);
    assert!(
        lowered.text.contains("%arg1: tensor<3xf32>"),
        "{}",
        lowered.text
    );
    let x = Array::from_slice(&[4f32, 5.0, 6.0], &[3]).unwrap();
    let (y, ys) = f.call(&x).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), [4.0, 10.0, 18.0]);
    assert_eq!(
        ys.to_vec::<f32>().unwrap(),
        [5.0, 11.0, 19.0, 5.0, 11.0, 19.0]
    );
    assert_eq!(
        f.call(&x).unwrap().0.to_vec::<f32>().unwrap(),
        [4.0, 10.0, 18.0]
    );
    assert_eq!(f.stats().compiles, 1);
}

/// `mean((tanh(X w) - y)^2)` in float64.
fn loss(w: &Tensor, x: &Tensor, y: &Tensor) -> Tensor {
    np::mean(&np::square(&(np::tanh(&x.matmul(w)) - y)), Axes::All, false)
}

#[test]
fn transformations_of_concrete_inputs_match_finite_differences() {
    let mut r = rng(3);
    let xv = uniform(&mut r, 12, -1.0, 1.0);
    let yv = uniform(&mut r, 4, -0.5, 0.5);
    let wv = uniform(&mut r, 3, -1.0, 1.0);
    let (x, y) = (
        tensor(&xv, &[4, 3], DType::F64),
        tensor(&yv, &[4], DType::F64),
    );
    let w = tensor(&wv, &[3], DType::F64);
    let f = |w: Tensor| loss(&w, &x, &y);
    let h = 1e-6;
    let fd: Vec<f64> = (0..3)
        .map(|i| {
            let shift = |s: f64| {
                let mut v = wv.clone();
                v[i] += s;
                f(tensor(&v, &[3], DType::F64)).item::<f64>().unwrap()
            };
            (shift(h) - shift(-h)) / (2.0 * h)
        })
        .collect();
    let g = grad(f)(&w);
    assert!(g.is_concrete());
    assert_close("grad", &values(&g), &fd, 1e-6, 1e-9);
    let (v, g2) = value_and_grad(f)(&w);
    assert_eq!(
        v.item::<f64>().unwrap(),
        f(w.clone()).item::<f64>().unwrap()
    );
    assert_eq!(values(&g2), values(&g));

    let ((v3, z), g3) = value_and_grad_aux(|w: Tensor| (f(w.clone()), x.matmul(&w)))(&w);
    let xw: Vec<f64> = (0..4)
        .map(|i| (0..3).map(|k| xv[i * 3 + k] * wv[k]).sum())
        .collect();
    assert_close("aux", &values(&z), &xw, 1e-12, 1e-15);
    assert_eq!(values(&v3), values(&v));
    assert_eq!(values(&g3), values(&g));

    let dir = tensor(&[0.3, -0.2, 0.5], &[3], DType::F64);
    let (out, tangent) = jvp(f, &w, &dir);
    let want: f64 = fd.iter().zip([0.3, -0.2, 0.5]).map(|(a, b)| a * b).sum();
    assert_close("jvp", &values(&tangent), &[want], 1e-6, 1e-9);
    assert_eq!(values(&out), values(&v));

    let (out, pb) = vjp(f, &w);
    assert_eq!(values(&out), values(&v));
    let back = pb.pullback(&np::full(&[], 2.0, DType::F64));
    let twice: Vec<f64> = fd.iter().map(|d| 2.0 * d).collect();
    assert_close("vjp", &values(&back), &twice, 1e-6, 1e-9);

    // Per-row losses by vmap against a loop over rows.
    let per_row = vmap(
        |(xr, yr): (Tensor, Tensor)| loss(&w, &xr.reshape(&[1, 3]), &yr),
        0,
        0,
    )(&(x.clone(), y.clone()));
    let looped: Vec<f64> = (0..4)
        .map(|i| {
            let xr = tensor(&xv[i * 3..i * 3 + 3], &[1, 3], DType::F64);
            loss(&w, &xr, &tensor(&[yv[i]], &[], DType::F64))
                .item::<f64>()
                .unwrap()
        })
        .collect();
    assert_close("vmap", &values(&per_row), &looped, 1e-12, 1e-15);
}

#[test]
fn printing_matches_numpy() {
    let cases: Value = serde_json::from_str(include_str!("data/eager_print/print.json")).unwrap();
    for (name, c) in cases.as_object().unwrap() {
        let shape: Vec<usize> = c["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let v: Vec<f64> = c["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| match x {
                Value::Bool(b) => f64::from(u8::from(*b)),
                Value::String(s) => s.parse().unwrap(),
                x => x.as_f64().unwrap(),
            })
            .collect();
        let dtype = match c["dtype"].as_str().unwrap() {
            "float32" => DType::F32,
            "float64" => DType::F64,
            "int32" => DType::I32,
            "uint8" => DType::U8,
            "bool" => DType::Bool,
            other => panic!("{name}: dtype {other}"),
        };
        let t = tensor(&v, &shape, dtype);
        assert_eq!(t.to_string(), c["str"].as_str().unwrap(), "{name}");
    }
    let t = Tensor::from_slice(&[1f32, 3.0, 5.0, 7.0], &[2, 2]);
    assert_eq!(
        format!("{t:?}"),
        "Tensor(f32[2,2], [[1. 3.]\n                  [5. 7.]])"
    );
    let (_, tr) = trace::trace(&[Aval::new([2], DType::F32)], |p| {
        assert_eq!(
            format!("{:?} {}", p[0], p[0]),
            "Tensor(f32[2]) Traced<f32[2]>"
        );
    });
    assert!(tr.error.is_none());
}

#[test]
fn errors_are_held_with_the_callers_line() {
    let a = np::ones(&[2], DType::F32);
    let b = np::ones(&[3], DType::F32);
    let bad = &a + &b;
    let line = line!() - 1;
    let later = bad.exp().sum(Axes::All);
    for t in [&bad, &later] {
        match t.to_vec::<f32>() {
            Err(EagerError::Op(TraceError::Op { op, site, .. })) => {
                assert_eq!(op, "add");
                assert!(site.file.ends_with("eager.rs"), "{}", site.file);
                assert_eq!(site.line, line);
            }
            other => panic!("expected the add's shape error, got {other:?}"),
        }
    }
    assert!(later.to_string().starts_with("<error: add: "), "{later}");
    let msg = grad(|w: Tensor| &w * 2.0)(&a)
        .to_vec::<f32>()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("grad needs a floating-point scalar output"),
        "{msg}"
    );
    assert!(
        matches!(a.item::<f32>(), Err(EagerError::Array(_))),
        "two elements"
    );
    assert!(
        matches!(a.to_vec::<i32>(), Err(EagerError::Array(_))),
        "wrong type"
    );
    let (traced, _) = trace::trace(&[Aval::new([2], DType::F32)], |p| p[0].to_vec::<f32>());
    assert!(matches!(traced, Err(EagerError::Traced(_))));
}
