//! Shared helpers of the golden tests: reading `tests/golden/*` fixtures, running a model
//! from the registry under `jit`, big_vision's losses and tolerance checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bv_core::autodiff::value_and_grad_aux;
use bv_core::io::{read_npz, HostArray};
use bv_core::{jit, numpy as np, Array, Tensor};
use bv_nn::models::{ImageModel, Out};
use bv_nn::Params;

/// `tests/golden/<set>/<case>`.
pub fn golden(set: &str, case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(set)
        .join(case)
}

/// A host array on the device.
pub fn device(a: &HostArray) -> Array {
    Array::from_bytes(a.bytes(), a.dtype(), a.shape()).expect("host to device")
}

/// Every array of an npz file, on the device, keys unchanged.
pub fn load(path: &Path) -> Params<Array> {
    read_npz(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .iter()
        .map(|(k, a)| (k.clone(), device(a)))
        .collect()
}

/// Entry `key` of an npz file on the device.
pub fn entry(path: &Path, key: &str) -> Array {
    load(path)
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("{}: no `{key}`", path.display()))
}

/// big_vision's `utils.softmax_xent` / `utils.sigmoid_xent` (mean over the batch).
pub fn loss(name: &str, logits: &Tensor, labels: &Tensor) -> Tensor {
    let per_example = match name {
        "softmax_xent" => -np::sum(&(labels * np::log_softmax(logits, -1)), -1, false),
        "sigmoid_xent" => {
            let (lp, lq) = (np::log_sigmoid(logits), np::log_sigmoid(&-logits));
            -np::sum(&(labels * &lp + (1.0 - labels) * lq), -1, false)
        }
        other => panic!("unknown loss {other}"),
    };
    np::mean(&per_example, 0, false)
}

/// `model.apply(params, image, train=False)` under one `jit`: logits and `out`.
pub fn forward(
    model: &Arc<dyn ImageModel>,
) -> impl Fn(Params<Array>, &Array) -> (Array, Params<Array>) {
    let m = model.clone();
    let f = jit(move |(p, x): (Params<Tensor>, Tensor)| m.apply(&p, &x, false, &[]));
    move |params, image| f.call(&(params, image.clone())).expect("forward runs")
}

/// `value_and_grad` of `loss(model.apply(params, image, train=True), labels)` under one
/// `jit`.
pub fn loss_and_grads(
    model: &Arc<dyn ImageModel>,
    loss_name: &'static str,
) -> impl Fn(Params<Array>, &Array, &Array) -> (f64, Params<Array>) {
    let m = model.clone();
    let f = jit(move |(p, x, y): (Params<Tensor>, Tensor, Tensor)| {
        let vg = value_and_grad_aux(|p: Params<Tensor>| {
            let (logits, _): (Tensor, Out) = m.apply(&p, &x, true, &[]);
            (loss(loss_name, &logits, &y), ())
        });
        let ((l, ()), g) = vg(&p);
        (l, g)
    });
    move |params, image, labels| {
        let (l, g) = f
            .call(&(params, image.clone(), labels.clone()))
            .expect("gradient runs");
        (f64::from(l.item::<f32>().unwrap()), g)
    }
}

/// The largest `|got - want|` after checking `|got - want| <= atol + rtol |want|` for every
/// element (shapes must match).
pub fn check(what: &str, got: &Array, want: &HostArray, atol: f64, rtol: f64) -> f64 {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let got = got.to_vec::<f32>().unwrap();
    let want = want.to_f64();
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let d = (f64::from(g) - w).abs();
        assert!(d <= atol + rtol * w.abs(), "{what}[{i}]: got {g}, want {w}");
        worst = worst.max(d);
    }
    eprintln!("{what}: max abs diff {worst:.2e}");
    worst
}

/// Checks every array of the npz `file` against `got` by name (`out/` stripped), with
/// `atol + rtol |want|`; `atol_of_max` adds that fraction of the array's max |value| to
/// `atol`. Returns how many arrays were compared.
pub fn check_all(
    file: &Path,
    got: &Params<Array>,
    atol: f64,
    rtol: f64,
    atol_of_max: f64,
) -> usize {
    let mut n = 0;
    for (key, want) in read_npz(file).unwrap() {
        let short = key.strip_prefix("out/").unwrap_or(&key);
        let g = got
            .get(short)
            .unwrap_or_else(|| panic!("{}: we have no `{short}`", file.display()));
        let max = want.to_f64().iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let what = format!("{}:{key}", file.display());
        check(&what, g, &want, atol + atol_of_max * max, rtol);
        n += 1;
    }
    n
}

/// `meta.json` of a fixture.
pub fn meta(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap()
}

/// The distance of two floats in units in the last place (0 for equal values).
pub fn ulps(a: f32, b: f32) -> u32 {
    let ord = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i32::MIN - i
        } else {
            i
        }
    };
    ord(a).abs_diff(ord(b))
}
