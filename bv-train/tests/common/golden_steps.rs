//! Runs a trainer's update step on a golden fixture's batch and checks the measurements
//! and parameters big_vision's own step gave (`tests/golden/{distill,flexi,gsam}`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bv_core::io::{read_npz, HostArray};
use bv_core::tree::Params;
use bv_core::{jit, Array};
use bv_train::config::{Config, Plan};
use bv_train::data::{self, Batch, Example, Value};
use bv_train::optim::{make_for_config, Optimizer};
use bv_train::train::update_fn;
use bv_train::trainers::{self, Trainer};
use serde_json::Value as Json;

/// Device arrays by name, in name order.
pub type Arrays = Params<Array>;

/// `tests/golden/<set>`.
pub fn golden(set: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(set)
}

/// Every array of an npz file, on the device.
pub fn arrays(path: &Path) -> Arrays {
    host(path)
        .iter()
        .map(|(k, h)| {
            (
                k.to_string(),
                Array::from_bytes(h.bytes(), h.dtype(), h.shape()).unwrap(),
            )
        })
        .collect()
}

/// Every array of an npz file.
pub fn host(path: &Path) -> BTreeMap<String, HostArray> {
    read_npz(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// `meta.json` of a fixture directory.
pub fn meta(dir: &Path) -> Json {
    serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap()
}

/// A fixture's model kwargs without the `module` entry, as RON-compatible JSON text.
pub fn kwargs(v: &Json) -> String {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("module");
    v.to_string()
}

/// A batch holding zeros of the fixture arrays' shapes (the trainer reads shapes and keys).
pub fn probe(features: &[(&str, &HostArray)]) -> Batch {
    let data: Example = features
        .iter()
        .map(|(k, h)| {
            let n = h.shape().iter().product();
            let a = data::Array::new(h.shape().to_vec(), vec![0f32; n]);
            (k.to_string(), Value::F32(a))
        })
        .collect();
    Batch {
        data,
        position: None,
    }
}

/// The raw `PRNGKey` of meta's `rng_loop_value`.
pub fn key(v: &Json) -> Array {
    let k: Vec<u32> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    Array::from_slice(&k, &[2]).unwrap()
}

/// What one run of steps needs.
pub struct Steps<'a> {
    pub trainer: Arc<dyn Trainer>,
    pub config: &'a Config,
    pub params: Arrays,
    pub rng_loop: Array,
    pub image: Array,
    pub labels: Array,
    pub features: Arrays,
    pub fixed: Arrays,
    /// The variant each step runs.
    pub variants: Vec<usize>,
}

/// Runs the steps through `Trainer::update` (one jit per variant, as train.rs) and returns
/// each step's measurements and parameters.
pub fn run(s: Steps<'_>) -> Vec<(BTreeMap<String, f64>, Arrays)> {
    let plan = Plan::new(s.config, 4).unwrap();
    let tx = Arc::new(make_for_config(s.config, &plan, s.params.names()).unwrap());
    let t = tx.clone();
    let opt = jit(move |p: Params| t.init(&p)).call(&s.params).unwrap();
    let steps: Vec<_> = (0..s.trainer.variants())
        .map(|variant| update_fn(s.trainer.clone(), tx.clone(), Vec::new(), variant))
        .collect();
    let mut state = (s.params, opt);
    let mut out = Vec::new();
    for (k, &v) in s.variants.iter().enumerate() {
        let args = (
            state,
            (
                s.rng_loop.clone(),
                Array::scalar(k as u32).unwrap(),
                s.image.clone(),
                s.labels.clone(),
            ),
            (s.features.clone(), s.fixed.clone()),
        );
        let (next, measured) = steps[v].call(&args).unwrap();
        let m = measured
            .iter()
            .map(|(k, a)| (k.clone(), f64::from(a.item::<f32>().unwrap())))
            .collect();
        out.push((m, next.0.clone()));
        state = next;
    }
    out
}

/// Checks every measurement of meta `steps` that the run has (relative tolerance `rtol`
/// on `1 + |want|`), and that the run has each of `required`.
pub fn check_measurements(
    what: &str,
    want: &Json,
    got: &[(BTreeMap<String, f64>, Arrays)],
    rtol: f64,
    required: &[&str],
) {
    for (k, (m, _)) in got.iter().enumerate() {
        let w = want[k].as_object().unwrap();
        for name in required {
            assert!(m.contains_key(*name), "{what} step {}: no {name}", k + 1);
        }
        for (name, v) in m {
            let Some(wv) = w.get(name).and_then(Json::as_f64) else {
                continue;
            };
            assert!(
                (v - wv).abs() <= rtol * (1.0 + wv.abs()),
                "{what} step {} {name}: {v} vs {wv}",
                k + 1
            );
        }
    }
}

/// Checks the parameters after each of `steps` (1-based) of `got` against
/// `<prefix>params_step<k>.npz` in `dir` (atol `atol`; attention `key/bias` skipped: its gradient is analytically zero,
/// so Adam turns rounding noise into O(lr) steps).
pub fn check_params(
    what: &str,
    got: &[(BTreeMap<String, f64>, Arrays)],
    dir: &Path,
    prefix: &str,
    steps: &[usize],
    atol: f32,
) {
    for &step in steps {
        let want = host(&dir.join(format!("{prefix}params_step{step}.npz")));
        let got = &got[step - 1].1;
        assert_eq!(got.len(), want.len(), "{what} step {step}: parameter count");
        for (name, w) in &want {
            if name.ends_with("key/bias") {
                continue;
            }
            let g = got[name].to_vec::<f32>().unwrap();
            for (i, (a, b)) in g.iter().zip(w.to_vec::<f32>().unwrap()).enumerate() {
                assert!(
                    (a - b).abs() <= atol,
                    "{what} step {step} {name}[{i}]: {a} vs {b}"
                );
            }
        }
    }
}

/// The trainer `config` names, built as train.rs builds it.
pub fn build(config: &Config, probe: &Batch) -> Arc<dyn Trainer> {
    let plan = Plan::new(config, 4).unwrap();
    trainers::build(config, probe, 1, &plan).unwrap()
}
