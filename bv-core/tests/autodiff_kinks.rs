//! Derivatives where JAX chooses a convention: kinks (relu, abs, clamp), ties (max, min,
//! their reductions and windows, sort, top_k, argmax), singular points (sqrt, log, pow, div
//! at 0, norm and std of zeros, where JAX's numbers are inf or nan), and values that carry no
//! derivative (integers, bools, stop_gradient). Each row's value, reverse-mode cotangents and
//! forward-mode tangent are checked against what JAX 0.10.2 gives at the same inputs:
//! `tests/data/kinks_jax.json`, written by `tests/data/kinks_jax.py` (which says how to
//! rerun it). Rows are named as the script's cases; every case of the file has a row.

mod support;

use std::collections::BTreeMap;

use bv_core::autodiff::{jvp, stop_gradient, vjp};
use bv_core::numpy::{self as np, Axes, Padding};
use bv_core::prim::{self, ScatterDims, ScatterKind};
use bv_core::{jit, DType, Tensor};
use serde_json::Value;
use support::{array, read};

/// A case's function of its inputs.
type F = fn(&[Tensor]) -> Tensor;

type Row = (&'static str, F);

/// `x` at one index per position along `axis` (`idx` lacks that axis), as the script's `take_at`.
fn take_at(x: &Tensor, idx: &Tensor, axis: isize) -> Tensor {
    let a = if axis < 0 {
        x.rank() as isize + axis
    } else {
        axis
    } as usize;
    let mut shape = idx.shape().to_vec();
    shape.insert(a, 1);
    let i = prim::reshape(idx, &shape);
    prim::squeeze_dims(&np::take_along_axis(x, &i, axis), &[a])
}

fn f32s(x: &Tensor) -> Tensor {
    np::astype(x, DType::F32)
}

const ROWS: &[Row] = &[
    ("relu", |x| np::relu(&x[0])),
    ("maximum", |x| np::maximum(&x[0], &x[1])),
    ("minimum", |x| np::minimum(&x[0], &x[1])),
    ("maximum_scalar", |x| np::maximum(&x[0], 0.0)),
    ("reduce_max_axis", |x| np::max(&x[0], 1, false)),
    ("reduce_min_axis0", |x| np::min(&x[0], 0, false)),
    ("reduce_max_all", |x| np::max(&x[0], Axes::All, false)),
    ("abs", |x| np::abs(&x[0])),
    ("sign", |x| np::sign(&x[0])),
    ("clip", |x| np::clip(&x[0], &x[1], &x[2])),
    ("clamp", |x| prim::clamp(&x[0], &x[1], &x[2])),
    ("clamp_inverted", |x| prim::clamp(&x[0], &x[1], &x[2])),
    ("where_branches", |x| {
        np::where_(&np::greater(&x[0], 0.0), &x[0], &x[0] * 2.0)
    }),
    ("where_sqrt", |x| {
        np::where_(&np::greater(&x[0], 0.0), np::sqrt(&x[0]), 0.0)
    }),
    ("where_bool_input", |x| np::where_(&x[0], &x[1], &x[2])),
    ("sort", |x| np::sort(&x[0], 0)),
    ("sort_axis0", |x| np::sort(&x[0], 0)),
    ("argsort_values", |x| {
        np::take_along_axis(&x[0], &np::argsort(&x[0], 0), 0)
    }),
    ("argsort_indices", |x| f32s(&np::argsort(&x[0], 0))),
    ("top_k_values", |x| np::top_k(&x[0], 4).0),
    ("top_k_indices", |x| f32s(&np::top_k(&x[0], 4).1)),
    ("top_k_zeros", |x| np::top_k(&x[0], 3).0),
    ("argmax_indices", |x| f32s(&np::argmax(&x[0], -1))),
    ("argmax_take", |x| {
        take_at(&x[0], &np::argmax(&x[0], -1), -1)
    }),
    ("argmin_take", |x| take_at(&x[0], &np::argmin(&x[0], 0), 0)),
    ("sqrt", |x| np::sqrt(&x[0])),
    ("rsqrt", |x| np::rsqrt(&x[0])),
    ("log", |x| np::log(&x[0])),
    ("log1p", |x| np::log1p(&x[0])),
    ("div", |x| np::divide(&x[0], &x[1])),
    ("atan2", |x| np::arctan2(&x[0], &x[1])),
    ("pow", |x| np::power(&x[0], &x[1])),
    ("power_int2", |x| np::power(&x[0], 2)),
    ("power_int0", |x| np::power(&x[0], 0)),
    ("power_int_neg1", |x| np::power(&x[0], -1)),
    ("power_int3", |x| np::power(&x[0], 3)),
    ("remainder", |x| np::remainder(&x[0], &x[1])),
    ("prod_with_zero", |x| np::prod(&x[0], 1, false)),
    ("norm_zero", |x| np::norm(&x[0], Axes::All, false)),
    ("norm", |x| np::norm(&x[0], Axes::All, false)),
    ("norm_rows", |x| np::norm(&x[0], 1, false)),
    ("std_constant", |x| np::std(&x[0], Axes::All, 0, false)),
    ("var_constant", |x| np::var(&x[0], Axes::All, 0, false)),
    ("stop_gradient", |x| &x[0] * stop_gradient(&x[0])),
    ("through_int", |x| {
        f32s(&np::astype(&x[0], DType::I32)) * &x[0]
    }),
    ("rounding", |x| {
        np::floor(&x[0]) + np::round(&x[0]) + np::ceil(&x[0])
    }),
    ("int_input", |x| &x[0] * &x[1]),
    ("bool_mask", |x| &x[0] * np::greater(&x[0], 0.0)),
    ("scatter_set_repeated", |x| {
        let dims = ScatterDims {
            update_window_dims: vec![1],
            inserted_window_dims: vec![0],
            scatter_dims_to_operand_dims: vec![0],
            index_vector_dim: 1,
            ..ScatterDims::default()
        };
        let idx = prim::constant(&[1i32, 1, 3], &[3, 1]);
        prim::scatter(&x[0], &idx, &x[1], dims, ScatterKind::Replace)
    }),
    ("max_pool_ties", |x| {
        np::max_pool(&x[0], &[2, 2], &[1, 1], Padding::Valid)
    }),
    ("max_pool_same", |x| {
        np::max_pool(&x[0], &[3, 3], &[2, 2], Padding::Same)
    }),
    ("cummax_ties", |x| prim::cummax(&x[0], 0, false)),
    ("cummin_ties", |x| prim::cummin(&x[0], 0, true)),
    ("logsumexp", |x| np::logsumexp(&x[0], -1, false)),
    ("softmax", |x| np::softmax(&x[0], -1)),
    ("log_softmax", |x| np::log_softmax(&x[0], -1)),
    ("log_sigmoid", |x| np::log_sigmoid(&x[0])),
    ("logaddexp", |x| np::logaddexp(&x[0], &x[1])),
];

/// A JSON number, or one of the strings "nan", "inf", "-inf".
fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) => match s.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("unexpected number {other:?}"),
        },
        v => v.as_f64().expect("a number"),
    }
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().expect("a list").iter().map(num).collect()
}

fn dtype(name: &str) -> DType {
    match name {
        "float32" => DType::F32,
        "int32" => DType::I32,
        "bool" => DType::Bool,
        other => panic!("unexpected dtype {other}"),
    }
}

/// NaN matches NaN, infinities match exactly, finite values within `1e-6 (1 + |want|)`
/// (a few float32 ulp: the softmax rows round differently).
fn matches(got: &[f64], want: &[f64]) -> bool {
    got.len() == want.len()
        && got.iter().zip(want).all(|(&g, &w)| {
            if w.is_nan() {
                g.is_nan()
            } else if w.is_infinite() {
                g == w
            } else {
                (g - w).abs() <= 1e-6 * (1.0 + w.abs())
            }
        })
}

/// Cases whose result XLA leaves to the backend: which of several updates to one index a
/// scatter keeps. The references are JAX's on a CPU; on an H200, JAX 0.11.2 keeps the first
/// update where its CPU keeps the last, as bv does there (docs/tpu_gpu.md).
const BACKEND_DEFINED: &[&str] = &["scatter_set_repeated"];

/// Inputs, tangents and output weights of one case, as arrays.
struct Case {
    name: String,
    f: F,
    inputs: Vec<bv_core::Array>,
    floats: Vec<bool>,
    tangents: Vec<bv_core::Array>,
    weights: bv_core::Array,
    want: Value,
}

fn cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/kinks_jax.json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(data["jax"], "0.10.2");
    let table: BTreeMap<&str, Value> = data["cases"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let rows: Vec<&str> = ROWS.iter().map(|r| r.0).collect();
    let mut missing: Vec<&&str> = table.keys().filter(|k| !rows.contains(k)).collect();
    missing.extend(rows.iter().filter(|k| !table.contains_key(*k)));
    assert!(
        missing.is_empty(),
        "cases without a row or data: {missing:?}"
    );
    ROWS.iter()
        .map(|&(name, f)| {
            let c = &table[name];
            let mut inputs = Vec::new();
            let mut tangents = Vec::new();
            let mut floats = Vec::new();
            for (i, x) in c["inputs"].as_array().unwrap().iter().enumerate() {
                let d = dtype(x["dtype"].as_str().unwrap());
                let shape: Vec<usize> = x["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_u64().unwrap() as usize)
                    .collect();
                let v = nums(&x["values"]);
                let t = match &c["tangents"][i] {
                    Value::Null => vec![0.0; v.len()],
                    t => nums(t),
                };
                inputs.push(array(&v, &shape, d));
                tangents.push(array(&t, &shape, d));
                floats.push(d.is_float());
            }
            let w = nums(&c["weights"]);
            let n = w.len();
            Case {
                name: name.into(),
                f,
                inputs,
                floats,
                tangents,
                weights: array(&w, &[n], DType::F32),
                want: c.clone(),
            }
        })
        .collect()
}

#[test]
fn derivatives_at_kinks_and_ties_match_jax() {
    let cases = cases();
    let fs: Vec<(F, usize)> = cases.iter().map(|c| (c.f, c.inputs.len())).collect();
    let program = jit(move |args: Vec<Tensor>| -> Vec<Tensor> {
        let mut k = 0;
        let mut outs = Vec::new();
        for &(f, n) in &fs {
            let xs = args[k..k + n].to_vec();
            let ts = args[k + n..k + 2 * n].to_vec();
            let w = args[k + 2 * n].clone();
            k += 2 * n + 1;
            let (y, pullback) = vjp(|xs: Vec<Tensor>| f(&xs), &xs);
            let ct = prim::reshape(&w, y.shape());
            outs.push(y);
            outs.extend(pullback.pullback(&ct));
            outs.push(jvp(|xs: Vec<Tensor>| f(&xs), &xs, &ts).1);
        }
        outs
    });
    let mut args = Vec::new();
    for c in &cases {
        args.extend(c.inputs.iter().cloned());
        args.extend(c.tangents.iter().cloned());
        args.push(c.weights.clone());
    }
    let out = program.call(&args).unwrap_or_else(|e| panic!("{e}"));
    let mut it = out.iter();
    let mut bad = Vec::new();
    for c in &cases {
        let strict = support::on_cpu() || !BACKEND_DEFINED.contains(&c.name.as_str());
        let mut check = |what: String, got: Vec<f64>, want: Vec<f64>| {
            let ok = matches(&got, &want);
            let verdict = match (ok, strict) {
                (true, _) => "ok ",
                (false, true) => "BAD",
                (false, false) => "backend-defined",
            };
            println!("{what:<28} {verdict}: bv {got:?} jax {want:?}");
            if !ok && strict {
                bad.push(what);
            }
        };
        check(
            format!("{} value", c.name),
            read(it.next().unwrap()),
            nums(&c.want["value"]),
        );
        for (i, &float) in c.floats.iter().enumerate() {
            let g = read(it.next().unwrap());
            if float {
                check(format!("{} grad {i}", c.name), g, nums(&c.want["grads"][i]));
            } else {
                let zeros = vec![0.0; g.len()];
                check(format!("{} grad {i} (int/bool)", c.name), g, zeros);
            }
        }
        check(
            format!("{} jvp", c.name),
            read(it.next().unwrap()),
            nums(&c.want["jvp"]),
        );
    }
    assert!(bad.is_empty(), "differ from JAX: {bad:?}");
}
