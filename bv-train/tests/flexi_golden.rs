//! The FlexiViT trainers against big_vision (`tests/golden/flexi`, made by `make_flexi.py`
//! running flexi/train.py's and flexi/distill.py's own `update_fn`): three steps at grid
//! sides 2, 6 and 3 (kernel resized up, down and up again; posemb down, up and not at all),
//! one compiled step per side, through `Trainer::update` (measurements within 2e-5
//! relative, parameters after steps 1 and 3 within 2e-5); a grid side that does not divide
//! the image is an error before anything runs.

mod common;

use bv_core::Array;
use bv_train::config::Config;
use bv_train::trainers::PredictFn;
use common::golden_steps::{self as gs, Steps};

fn dir() -> std::path::PathBuf {
    gs::golden("flexi")
}

fn device(h: &bv_core::io::HostArray) -> Array {
    Array::from_bytes(h.bytes(), h.dtype(), h.shape()).unwrap()
}

const OPT: &str = r#"optax_name: "scale_by_adam", lr: 0.001, wd: 0.0001, grad_clip_norm: 1.0,
    schedule: (decay_type: "cosine", warmup_steps: 1),"#;

fn train_config() -> Config {
    let m = gs::meta(&dir());
    let ron = format!(
        r#"( trainer: "proj.flexi.train", total_steps: 10, loss: "softmax_xent",
        input: (data: (name: "none", split: "train"), batch_size: 4, pp: ""),
        model_name: "proj.flexi.vit", model: {model},
        flexi: {{"seqhw": (v: [2, 3, 4, 6])}}, mixup: (p: 0.5), {OPT} )"#,
        model = gs::kwargs(&m["model"]),
    );
    Config::from_str(&ron, "flexi.ron", &[]).unwrap()
}

/// The variant index of each fixture step's grid side.
fn variants(steps: &serde_json::Value) -> Vec<usize> {
    let order = [2u64, 3, 4, 6];
    steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            order
                .iter()
                .position(|&v| v == s["seqhw"].as_u64().unwrap())
                .unwrap()
        })
        .collect()
}

#[test]
fn flexi_train_three_steps_at_three_grids() {
    let config = train_config();
    let i = gs::host(&dir().join("inputs.npz"));
    let probe = gs::probe(&[("image", &i["image"]), ("labels", &i["labels_onehot"])]);
    let trainer = gs::build(&config, &probe);
    assert_eq!(trainer.variants(), 4);
    let names: Vec<String> = trainer.predict_fns().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "predict_seqhw=2",
            "predict_seqhw=3",
            "predict_seqhw=4",
            "predict_seqhw=6"
        ]
    );
    let m = gs::meta(&dir());
    let got = gs::run(Steps {
        trainer,
        config: &config,
        params: gs::arrays(&dir().join("params_init.npz")),
        rng_loop: gs::key(&m["rng"]["rng_loop_value"]),
        image: device(&i["image"]),
        labels: device(&i["labels_onehot"]),
        features: Default::default(),
        fixed: Default::default(),
        variants: variants(&m["train"]["steps"]),
    });
    gs::check_measurements(
        "flexi train",
        &m["train"]["steps"],
        &got,
        2e-5,
        &["training_loss", "l2_grads", "l2_params", "l2_updates"],
    );
    gs::check_params("flexi train", &got, &dir(), "train_", &[1, 3], 2e-5);
}

#[test]
fn flexi_distill_three_steps_with_a_teacher_on_its_own_images() {
    let m = gs::meta(&dir());
    let teacher = {
        let mut t = m["distill"]["teacher"].clone();
        for k in ["name", "init", "image_key"] {
            t.as_object_mut().unwrap().remove(k);
        }
        gs::kwargs(&t)
    };
    let ron = format!(
        r#"( trainer: "proj.flexi.distill", total_steps: 10,
        input: (data: (name: "none", split: "train"), batch_size: 4, pp: ""),
        student_name: "proj.flexi.vit", student: {student},
        teachers: {{"prof": (name: "vit", model: {teacher}, init: "{d}/distill_teacher.npz")}},
        distance: "kl", distance_kw: {{"t": 2.0}},
        flexi: {{"seqhw": (v: [2, 3, 4, 6], p: [1, 1, 1, 1])}}, mixup: (p: 1.0), {OPT} )"#,
        student = gs::kwargs(&m["model"]),
        d = dir().display(),
    );
    let config = Config::from_str(&ron, "flexi_distill.ron", &[]).unwrap();
    let i = gs::host(&dir().join("inputs.npz"));
    let probe = gs::probe(&[
        ("image", &i["image"]),
        ("prof", &i["prof"]),
        ("labels", &i["labels_onehot"]),
    ]);
    let trainer = gs::build(&config, &probe);
    let fns = trainer.predict_fns();
    assert!(matches!(
        fns.iter().find(|(n, _)| n == "student_seqhw=6_prof"),
        Some((_, PredictFn::Pair(..)))
    ));
    assert!(matches!(
        fns.iter().find(|(n, _)| n == "prof"),
        Some((_, PredictFn::Single(_)))
    ));
    let fixed = trainer
        .fixed(&config)
        .unwrap()
        .iter()
        .map(|(k, h)| (k.to_string(), device(h)))
        .collect();
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
        variants: variants(&m["distill"]["steps"]),
    });
    gs::check_measurements(
        "flexi distill",
        &m["distill"]["steps"],
        &got,
        2e-5,
        &[
            "training_loss",
            "distill_loss_prof",
            "entropy_prof",
            "l2_grads",
        ],
    );
    gs::check_params("flexi distill", &got, &dir(), "distill_", &[1, 3], 2e-5);
}

#[test]
fn a_grid_side_that_does_not_divide_the_image_is_an_error() {
    let mut config = train_config();
    config
        .flexi
        .as_mut()
        .unwrap()
        .get_mut("seqhw")
        .unwrap()
        .v
        .push(5);
    let i = gs::host(&dir().join("inputs.npz"));
    let probe = gs::probe(&[("image", &i["image"]), ("labels", &i["labels_onehot"])]);
    let plan = bv_train::config::Plan::new(&config, 4).unwrap();
    let e = bv_train::trainers::build(&config, &probe, 1, &plan)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("flexi.seqhw.v") && e.contains("seqhw=5 on 24x24"),
        "{e}"
    );
}
