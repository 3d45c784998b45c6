//! Distillation against big_vision (`tests/golden/distill/`, made by `make_distill.py` with
//! big_vision's `distance.dist` and distill.py's own `loss_fn` / `update_fn`): every
//! distance kind on random logits (atol 1e-5 + 1e-5 × max |value|, `agree` exact).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use bv_core::io::{read_npz, HostArray};
use bv_core::{jit, Array, Tensor};
use bv_train::evaluators::distance::Distance;
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/distill")
}

fn npz(name: &str) -> BTreeMap<String, HostArray> {
    read_npz(dir().join(name)).unwrap().into_iter().collect()
}

fn meta() -> Value {
    serde_json::from_slice(&std::fs::read(dir().join("meta.json")).unwrap()).unwrap()
}

fn device(h: &HostArray) -> Array {
    Array::from_bytes(h.bytes(), h.dtype(), h.shape()).unwrap()
}

#[test]
fn every_distance_kind_matches_big_vision() {
    let file = npz("distances.npz");
    let (s, t) = (device(&file["student"]), device(&file["teacher"]));
    let cases = meta()["distances"].as_object().unwrap().clone();
    assert_eq!(cases.len(), 9);
    for (name, kw) in cases {
        let d = Distance::from_entry(&name, &kw).unwrap();
        let f = jit(move |(s, t): (Tensor, Tensor)| d.per_example(&s, &t));
        let got = f.call(&(s.clone(), t.clone())).unwrap();
        let want = file[&name].to_f64();
        let got: Vec<f64> = match got.dtype() {
            bv_core::DType::I32 => got
                .to_vec::<i32>()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect(),
            _ => got
                .to_vec::<f32>()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect(),
        };
        let max = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 + 1e-5 * max,
                "{name}[{i}]: got {g}, want {w}"
            );
        }
    }
}

#[test]
fn distance_config_errors_name_the_key() {
    let kw = serde_json::json!({"t": 0.0}).as_object().unwrap().clone();
    let e = Distance::new("distance_kw", "kl", &kw)
        .unwrap_err()
        .to_string();
    assert!(e.contains("distance_kw.t") && e.contains("positive"), "{e}");
    let e = Distance::new("distance", "cosine", &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown distance \"cosine\""), "{e}");
    let kw = serde_json::json!({"k": 2}).as_object().unwrap().clone();
    let e = Distance::new("distance_kw", "kl", &kw)
        .unwrap_err()
        .to_string();
    assert!(e.contains("takes [\"t\"]"), "{e}");
}

use std::sync::Arc;

use bv_core::autodiff::value_and_grad_aux;
use bv_core::tree::Params;
use bv_train::config::Config;
use bv_train::trainers::distill::Distill;
use bv_train::trainers::Trainer;
use common::golden_steps::{self as gs, Steps};

/// A config like the fixture's: student, two teachers (their `.npz` as `init`), kl with
/// t=2, mixup p=1, big_vision's optimizer settings of `meta.json`.
fn config() -> Config {
    let m = meta();
    let d = dir();
    let ron = format!(
        r#"(
        trainer: "proj.distill.distill", total_steps: 10,
        input: (data: (name: "none", split: "train"), batch_size: 4, pp: ""),
        student_name: "vit", student: {student},
        teachers: {{
            "prof": (name: "vit", model: {prof}, init: "{d}/teacher_prof.npz"),
            "t2": (name: "vit", model: {t2}, init: "{d}/teacher_t2.npz"),
        }},
        distance: "kl", distance_kw: {{"t": 2.0}}, mixup: (p: 1.0),
        optax_name: "scale_by_adam", lr: 0.001, wd: 0.0001, grad_clip_norm: 1.0,
        schedule: (decay_type: "cosine", warmup_steps: 1),
    )"#,
        student = gs::kwargs(&m["student"]),
        prof = gs::kwargs(&m["teachers"]["prof"]),
        t2 = gs::kwargs(&m["teachers"]["t2"]),
        d = d.display(),
    );
    Config::from_str(&ron, "distill.ron", &[]).unwrap()
}

fn inputs() -> BTreeMap<String, HostArray> {
    npz("inputs.npz")
}

fn probe() -> bv_train::data::Batch {
    let i = inputs();
    gs::probe(&[
        ("image", &i["image"]),
        ("prof", &i["prof"]),
        ("labels", &i["labels_onehot"]),
    ])
}

/// Teachers loaded by the trainer (`fixed`) from their `.npz`, on the device.
fn fixed(trainer: &dyn Trainer, config: &Config) -> gs::Arrays {
    trainer
        .fixed(config)
        .unwrap()
        .iter()
        .map(|(k, h)| (k.to_string(), device(h)))
        .collect()
}

#[test]
fn loss_and_gradients_at_init_through_the_trainer_loss() {
    let config = config();
    let trainer = Arc::new(Distill::new(&config, &probe(), 1).unwrap());
    let fixed = fixed(trainer.as_ref(), &config);
    assert_eq!(trainer.batch_keys(), ["prof"]);
    let i = inputs();
    let m = meta();
    let t = trainer.clone();
    let teachers = [
        (
            "prof",
            bv_nn::models::build(
                "vit",
                &serde_json::from_str(&gs::kwargs(&m["teachers"]["prof"])).unwrap(),
            )
            .unwrap(),
        ),
        (
            "t2",
            bv_nn::models::build(
                "vit",
                &serde_json::from_str(&gs::kwargs(&m["teachers"]["t2"])).unwrap(),
            )
            .unwrap(),
        ),
    ];
    type Args = (Params, Params, (Tensor, Tensor, Tensor));
    let f = jit(move |(p, fx, (x, xp, y)): Args| {
        let mut data = BTreeMap::new();
        data.insert("image".to_string(), x.clone());
        data.insert("prof".to_string(), xp.clone());
        data.insert("labels".to_string(), y);
        let logits: Vec<Tensor> = teachers
            .iter()
            .map(|(n, model)| {
                let prefix = format!("{n}/");
                let tp: bv_nn::Params<Tensor> = fx
                    .iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone()))
                    })
                    .collect();
                model
                    .apply(&tp, if *n == "prof" { &xp } else { &x }, false, &[])
                    .0
            })
            .collect();
        let key = bv_core::random::key_from_seed(&bv_core::numpy::zeros(&[], bv_core::DType::U32));
        let vg = value_and_grad_aux(|p: Params| t.loss(0, p, &data, &logits, &key));
        let out = vg(&p);
        drop(vg);
        out
    });
    let params = gs::arrays(&dir().join("params_init.npz"));
    let args = (
        params,
        fixed,
        (
            device(&i["image"]),
            device(&i["prof"]),
            device(&i["labels_onehot"]),
        ),
    );
    let ((loss, measured), grads) = f.call(&args).unwrap();
    let want = npz("grads_init.npz");
    let dl = (f64::from(loss.item::<f32>().unwrap()) - want["loss"].to_f64()[0]).abs();
    assert!(dl <= 1e-5, "loss off by {dl}");
    for (name, w) in m["loss_init_measurements"].as_object().unwrap() {
        let got = f64::from(measured[name].item::<f32>().unwrap());
        let w = w.as_f64().unwrap();
        assert!(
            (got - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{name}: {got} vs {w}"
        );
    }
    assert_eq!(grads.len() + 1, want.len());
    for (k, g) in &grads {
        let w = want[k].to_f64();
        let max = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in g.to_vec::<f32>().unwrap().iter().zip(&w) {
            assert!(
                (f64::from(*a) - b).abs() <= 1e-5 + 1e-4 * max,
                "grad {k}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn three_steps_through_the_trainer_update() {
    let config = config();
    let trainer = gs::build(&config, &probe());
    let fixed = fixed(trainer.as_ref(), &config);
    let i = inputs();
    let m = meta();
    let got = gs::run(Steps {
        trainer,
        config: &config,
        params: gs::arrays(&dir().join("params_init.npz")),
        rng_loop: gs::key(&m["rng"]["rng_loop_value"]),
        image: device(&i["image"]),
        labels: device(&i["labels_onehot"]),
        features: [("prof".to_string(), device(&i["prof"]))]
            .into_iter()
            .collect(),
        fixed,
        variants: vec![0, 0, 0],
    });
    let required = [
        "training_loss",
        "distill_loss_prof",
        "distill_loss_t2",
        "entropy_student",
        "task_loss_t2",
        "l2_grads",
        "l2_params",
        "l2_updates",
    ];
    gs::check_measurements("distill", &m["steps"], &got, 2e-5, &required);
    gs::check_params("distill", &got, &dir(), "", &[1, 3], 2e-5);
}

#[test]
fn predict_fns_are_the_ones_distill_py_offers() {
    let trainer = gs::build(&config(), &probe());
    let names: Vec<String> = trainer.predict_fns().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "student_fwd",
            "prof_fwd",
            "t2_fwd",
            "teacher_ensemble_fwd",
            "student_prof_fwd",
            "student_t2_fwd",
            "student_teacher_ensemble_fwd"
        ]
    );
}

#[test]
fn a_teacher_whose_parameters_do_not_fit_its_model_is_an_error() {
    let mut config = config();
    let t = config.teachers.as_mut().unwrap().get_mut("t2").unwrap();
    t.model.insert("width".into(), serde_json::json!(32));
    let trainer = gs::build(&config, &probe());
    let e = trainer.fixed(&config).unwrap_err().to_string();
    assert!(
        e.contains("teachers.t2.init") && e.contains("teacher_t2.npz"),
        "{e}"
    );
}
