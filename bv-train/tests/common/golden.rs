//! big_vision's training steps from `tests/golden/<set>/<case>` run through the trainer's own
//! step function (`bv_train::train::update_step`): the fixture's model from bv-nn's registry,
//! the optimizer chain of its `meta.json`, its batch every step, big_vision's `rng_loop`.
//! Checks the loss and `l2_grads` before each step, `l2_params` and `l2_updates` after it
//! (`meta.json`'s `steps`) and the parameters after each saved step (`params_step{K}.npz`).

use std::path::PathBuf;
use std::sync::Arc;

use super::golden_steps::arrays as npz;
use bv_core::random::Key;
use bv_core::tree::Params;
use bv_core::{jit, Array, Tensor};
use bv_train::config::ScheduleConfig;
use bv_train::optim::{make, Chain, OptimSpec, Optimizer, ScheduleGroups};
use bv_train::train::{update_step, Update};
use bv_train::trainers::TrainState;
use serde_json::Value;

/// How close a case must be; the numbers come from each fixture set's README.
pub struct Tolerances {
    /// Largest |difference| allowed in the parameters after step `k`.
    pub params_atol: fn(u64) -> f64,
    /// Bound on the mean |difference| over all compared parameter elements, if any.
    pub params_mean: Option<f64>,
    /// Also bound each tensor by 10 x its max |value| x the file's measured float32-vs-
    /// float64 `max_rel_to_maxabs` (`f64_check.json`), at least 1e-6: small tensors (the
    /// zero-initialised `gn3` of identity units) are held to their own scale.
    pub per_tensor: bool,
    /// Parameters whose names end with one of these are not compared (see the README).
    pub skip: &'static [&'static str],
    /// Largest |difference| of the training loss before each step.
    pub loss_atol: f64,
    /// Relative tolerance of `l2_grads`, `l2_params` and `l2_updates`.
    pub l2_rtol: f64,
}

/// `tests/golden/<set>/<case>`.
pub fn dir(set: &str, case: &str) -> PathBuf {
    super::golden_steps::golden(set).join(case)
}

fn f32s(a: &Array) -> Vec<f32> {
    a.to_vec::<f32>().unwrap()
}

/// big_vision's optimizer chain for `meta.json`'s `optimizer` over `names`.
fn optimizer<'a>(meta: &Value, names: impl Iterator<Item = &'a str>) -> Chain {
    let opt = &meta["optimizer"];
    let mut config = opt["config"].clone();
    let schedule = config.as_object_mut().unwrap().remove("schedule");
    let spec: OptimSpec = serde_json::from_value(config).unwrap();
    let schedule: Option<ScheduleConfig> = schedule.map(|s| serde_json::from_value(s).unwrap());
    let kw = &opt["sched_kw"];
    let groups = ScheduleGroups::new(
        schedule.as_ref(),
        kw["total_steps"].as_u64().unwrap(),
        kw["batch_size"].as_u64(),
        kw["data_size"].as_u64(),
    )
    .unwrap();
    make(&spec, &groups, names).unwrap()
}

/// big_vision's `rng_loop` (`rng, rng_loop = split(rng)` after init); fixtures of models
/// without randomness in training (no dropout, no stochastic depth) do not record it, and
/// any key does for them.
fn rng_loop(meta: &Value) -> Key {
    match meta["rng"]["rng_loop_value"].as_array() {
        Some(v) => Key([0, 1].map(|i| v[i].as_u64().unwrap() as u32)),
        None => Key::from_seed(0),
    }
}

fn close(got: f64, want: f64, rtol: f64) -> bool {
    (got - want).abs() <= rtol * want.abs()
}

/// Runs `case`'s steps with `model` (a registry name) and checks them; `dropped` are saved
/// steps whose `params_step{K}.npz` the repository leaves out (tests/golden/README.md).
pub fn check_training_steps(set: &str, case: &str, model: &str, dropped: &[u64], tol: &Tolerances) {
    let dir = dir(set, case);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let model = bv_nn::models::build(model, &meta["model_kwargs"]).unwrap();
    let mut params = npz(&dir.join("params_init.npz"));
    let tx = Arc::new(optimizer(&meta, params.names()));
    let loss_name = meta["loss"].as_str().unwrap().to_string();
    let inputs = npz(&dir.join("inputs.npz"));
    let (image, labels) = (inputs["image"].clone(), inputs["labels_onehot"].clone());
    let rng_loop = rng_loop(&meta).to_array().unwrap();

    let t = tx.clone();
    let init = jit(move |p: Params| t.init(&p));
    let t = tx.clone();
    let step = jit(
        move |(state, rng, k, x, y): (TrainState, Tensor, Tensor, Tensor, Tensor)| {
            let u = Update {
                model: model.as_ref(),
                tx: t.as_ref(),
                loss_name: &loss_name,
                frozen: &[],
                mixup: None,
            };
            update_step(&u, state, &rng, &k, &x, &y)
        },
    );
    let mut opt = init.call(&params).unwrap();
    let saved: Vec<u64> = meta["saved_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .filter(|k| !dropped.contains(k))
        .collect();
    for k in 1..=*saved.last().unwrap() {
        let ((p, o), loss, l2_grads, l2_params, l2_updates) = step
            .call(&(
                (params, opt),
                rng_loop.clone(),
                Array::scalar((k - 1) as u32).unwrap(),
                image.clone(),
                labels.clone(),
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        (params, opt) = (p, o);
        let want = &meta["steps"][k as usize - 1];
        let got = |a: &Array| f64::from(a.item::<f32>().unwrap());
        let (loss, want_loss) = (got(&loss), want["training_loss"].as_f64().unwrap());
        assert!(
            (loss - want_loss).abs() <= tol.loss_atol,
            "{case} step {k}: loss {loss} vs {want_loss}"
        );
        for (name, a) in [
            ("l2_grads", &l2_grads),
            ("l2_params", &l2_params),
            ("l2_updates", &l2_updates),
        ] {
            let (g, w) = (got(a), want[name].as_f64().unwrap());
            assert!(
                close(g, w, tol.l2_rtol),
                "{case} step {k}: {name} {g} vs {w}"
            );
            println!("{case} step {k}: {name} {g} (big_vision {w})");
        }
        if !saved.contains(&k) {
            continue;
        }
        let want = npz(&dir.join(format!("params_step{k}.npz")));
        assert_eq!(
            want.names().collect::<Vec<_>>(),
            params.names().collect::<Vec<_>>(),
            "{case}: parameter names"
        );
        let atol = (tol.params_atol)(k);
        let rel = tol.per_tensor.then(|| {
            let f64_check: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("f64_check.json")).unwrap())
                    .unwrap();
            f64_check[format!("params_step{k}")]["max_rel_to_maxabs"]
                .as_f64()
                .unwrap()
        });
        let (mut worst, mut sum, mut n) = (0.0f64, 0.0f64, 0usize);
        for (name, w) in &want {
            if tol.skip.iter().any(|s| name.ends_with(s)) {
                continue;
            }
            let w = f32s(w);
            let own = rel.map_or(atol, |r| {
                let scale = w.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
                atol.min((10.0 * r * scale).max(1e-6))
            });
            for (x, y) in f32s(&params[name]).iter().zip(w) {
                let d = f64::from((x - y).abs());
                assert!(
                    d <= own,
                    "{case} step {k} {name}: {x} vs {y} (atol {own:.1e})"
                );
                worst = worst.max(d);
                sum += d;
                n += 1;
            }
        }
        let mean = sum / n as f64;
        if let Some(bound) = tol.params_mean {
            assert!(mean < bound, "{case} step {k}: mean |diff| {mean:e}");
        }
        println!(
            "{case} step {k}: params max |diff| {worst:.2e} (atol {atol:.1e}), mean {mean:.2e}"
        );
    }
    assert_eq!(
        step.stats().compiles,
        1,
        "{case}: one executable for every step"
    );
}
