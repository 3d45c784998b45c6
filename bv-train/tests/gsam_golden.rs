//! GSAM and SAM against big_vision (`tests/golden/gsam/{gsam,sam}`, made by `make_gsam.py`
//! with big_vision's `gsam_gradient` and gsam/train.py's own `update_fn`): the GSAM
//! gradient at init (loss atol 1e-5, gradients 1e-5 + 1e-4 × the tensor's max |value|) and
//! three steps through `Trainer::update` (measurements within 2e-5 relative, parameters
//! after steps 1 and 3 within 2e-5); `rho_min > rho_max` is an error.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use bv_core::io::{read_npz, HostArray};
use bv_core::numpy as np;
use bv_core::tree::Params;
use bv_core::{jit, Array, Tensor};
use bv_train::losses;
use bv_train::optim::gsam::Gsam;
use serde_json::Value;

fn dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/gsam")
        .join(case)
}

fn npz(path: PathBuf) -> BTreeMap<String, HostArray> {
    read_npz(path).unwrap().into_iter().collect()
}

fn device(h: &HostArray) -> Array {
    Array::from_bytes(h.bytes(), h.dtype(), h.shape()).unwrap()
}

fn meta(case: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir(case).join("meta.json")).unwrap()).unwrap()
}

fn model_kw(case: &str) -> Value {
    let mut kw = meta(case)["model"].clone();
    kw.as_object_mut().unwrap().remove("module");
    kw
}

fn gradient_at_init(case: &str) {
    let m = meta(case);
    let gsam = Gsam::from_config(&m["gsam"]).unwrap();
    let lr = m["grads_init_lr"].as_f64().unwrap();
    let model = bv_nn::models::build("vit", &model_kw(case)).unwrap();
    let inputs = npz(dir("").join("inputs.npz"));
    let params: Params<Array> = npz(dir(case).join("params_init.npz"))
        .iter()
        .map(|(k, h)| (k.clone(), device(h)))
        .collect();
    let f = jit(move |(p, x, y): (Params, Tensor, Tensor)| {
        let loss = |p: Params| {
            let (logits, _) = model.apply(&p, &x, true, &[]);
            np::mean(&losses::sigmoid_xent(&logits, &y), np::Axes::All, false)
        };
        let lr = np::full(&[], lr, bv_core::DType::F32);
        gsam.gradient(loss, &p, &lr)
    });
    let (l, g) = f
        .call(&(
            params,
            device(&inputs["image"]),
            device(&inputs["labels_onehot"]),
        ))
        .unwrap();
    let want = npz(dir(case).join("grads_init.npz"));
    let dl = (f64::from(l.item::<f32>().unwrap()) - want["loss"].to_f64()[0]).abs();
    assert!(dl <= 1e-5, "{case}: loss off by {dl}");
    assert_eq!(g.len() + 1, want.len());
    for (k, got) in &g {
        let w = want[k].to_f64();
        let max = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.to_vec::<f32>().unwrap().iter().zip(&w).enumerate() {
            let d = (f64::from(*a) - b).abs();
            assert!(d <= 1e-5 + 1e-4 * max, "{case} {k}[{i}]: got {a}, want {b}");
        }
    }
}

#[test]
fn gsam_gradient_at_init() {
    gradient_at_init("gsam");
}

#[test]
fn sam_adaptive_gradient_at_init() {
    gradient_at_init("sam");
}

#[test]
fn rho_min_above_rho_max_is_an_error() {
    let v = serde_json::json!({"rho_max": 0.1, "rho_min": 0.6, "alpha": 0.6,
                               "lr_max": 0.003, "lr_min": 3e-5});
    let e = Gsam::from_config(&v).unwrap_err().to_string();
    assert!(
        e.contains("rho_min (0.6)") && e.contains("rho_max (0.1)"),
        "{e}"
    );
    let v = serde_json::json!({"rho_max": 0.1, "rho_min": 0.1, "alpha": 0.0,
                               "lr_max": 0.003, "lr_min": 3e-5, "rho": 1});
    assert!(Gsam::from_config(&v)
        .unwrap_err()
        .to_string()
        .contains("gsam.rho:"));
}

use bv_train::config::Config;
use common::golden_steps::{self as gs, Steps};

/// A config like the fixture's: gsam/train.py's settings and the case's `gsam` block.
fn config(case: &str) -> Config {
    let m = meta(case);
    let ron = format!(
        r#"( trainer: "proj.gsam.train", total_steps: 10, loss: "sigmoid_xent",
        input: (data: (name: "none", split: "train"), batch_size: 4, pp: ""),
        model_name: "vit", model: {model}, gsam: {gsam},
        optax_name: "scale_by_adam", optax: {{"mu_dtype": "float32"}}, lr: 0.003, wd: 0.001,
        grad_clip_norm: 1.0,
        schedule: (warmup_steps: 2, decay_type: "linear", linear_end: 0.01), )"#,
        model = model_kw(case),
        gsam = m["gsam"],
    );
    Config::from_str(&ron, "gsam.ron", &[]).unwrap()
}

fn three_steps(case: &str) {
    let config = config(case);
    let i = npz(dir("").join("inputs.npz"));
    let probe = gs::probe(&[("image", &i["image"]), ("labels", &i["labels_onehot"])]);
    let m = meta(case);
    let got = gs::run(Steps {
        trainer: gs::build(&config, &probe),
        config: &config,
        params: gs::arrays(&dir(case).join("params_init.npz")),
        rng_loop: gs::key(&m["rng"]["rng_loop_value"]),
        image: device(&i["image"]),
        labels: device(&i["labels_onehot"]),
        features: Default::default(),
        fixed: Default::default(),
        variants: vec![0, 0, 0],
    });
    gs::check_measurements(
        case,
        &m["steps"],
        &got,
        2e-5,
        &["training_loss", "l2_grads", "l2_params", "l2_updates"],
    );
    gs::check_params(case, &got, &dir(case), "", &[1, 3], 2e-5);
}

#[test]
fn gsam_three_steps_through_the_trainer_update() {
    three_steps("gsam");
}

#[test]
fn sam_three_steps_through_the_trainer_update() {
    three_steps("sam");
}
