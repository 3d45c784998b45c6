//! The `proj.distill.distance` evaluator on the Fashion-MNIST fixture (200 test images in
//! batches of 64, so the last batch is padded): a student and a teacher ViT (different
//! initializations, the teacher's parameters among the fixed ones under `prof/`) compared
//! by kl, euclidean and agree; each `avg`/`min`/`max` against a float64 reference computed
//! here from the two models' logits on the unpadded examples.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bv_core::random::Key;
use bv_core::sharding::Mesh;
use bv_core::tree::Params;
use bv_core::{jit, Array, Tensor};
use bv_nn::models::ImageModel;
use bv_train::config::{Config, Plan};
use bv_train::data::{self, Value};
use bv_train::evaluators::{self, Context};
use bv_train::trainers::{Predict, PredictFn};

const PP: &str = r#"decode(channels=1)|value_range(-1, 1)|keep("image")"#;

fn vit() -> Arc<dyn ImageModel> {
    let kw = serde_json::json!({"num_classes": 10, "patch_size": [7, 7], "width": 16, "depth": 1,
                                "mlp_dim": 32, "num_heads": 2, "head_zeroinit": false});
    bv_nn::models::build("vit", &kw).unwrap()
}

fn init(model: &Arc<dyn ImageModel>, seed: i64) -> Params<Array> {
    let (m, spec) = (
        model.clone(),
        bv_core::Spec::new([4, 28, 28, 1], bv_core::DType::F32),
    );
    let f = jit(move |k: Tensor| m.init(&k, &spec));
    f.call(&Key::from_seed(seed).to_array().unwrap()).unwrap()
}

#[test]
fn distances_over_a_padded_split_match_float64() {
    let ron = format!(
        r##"( total_steps: 1, input: (data: (name: "fashion_mnist", split: "train"), batch_size: 64, pp: ""),
        model_name: "vit", optax_name: "scale_by_adam", lr: 0.001,
        evals: {{ "dist": ( type: "proj.distill.distance", pred: "student_prof_fwd",
            data: (name: "fashion_mnist", split: "test"), pp_fn: r#"{PP}"#, batch_size: 64,
            distances: [{{"kind": "kl"}}, {{"kind": "euclidean"}}, {{"kind": "agree", "k": 1}}] ) }} )"##
    );
    let config = Config::from_str(&ron, "dist.ron", &[]).unwrap();
    let plan = Plan::new(&config, 1000).unwrap();
    let (student, teacher) = (vit(), vit());
    let ps = init(&student, 1);
    let pt = init(&teacher, 2);
    let fixed: Params<Array> = pt
        .iter()
        .map(|(k, v)| (format!("prof/{k}"), v.clone()))
        .collect();
    let sp = Predict::trained(student.clone());
    let tp = Predict {
        model: teacher.clone(),
        fixed_prefix: Some("prof/".into()),
    };
    let mesh = Mesh::new(&[("data", -1)], &[0]).unwrap();
    let ctx = Context {
        config: &config,
        model: student.clone(),
        towers: None,
        predict_fns: vec![("student_prof_fwd".into(), PredictFn::Pair(sp, tp))],
        fixed: Arc::new(fixed),
        mesh: mesh.clone(),
        data_dir: Some(common::fixture_dir()),
        threads: 2,
        process: (0, 1),
        workdir: std::env::temp_dir(),
    };
    let mut e = evaluators::from_config(&plan.evals, &ctx).unwrap();
    let got: BTreeMap<String, f64> = e[0].evaluator.run(&ps, 1).unwrap().into_iter().collect();

    // float64 reference: both models' logits on every unpadded test image.
    let cfg = ctx
        .pipeline(
            "dist",
            &config.evals["dist"],
            config.evals["dist"].data.as_ref(),
            Some(PP),
        )
        .unwrap();
    let logits = |m: &Arc<dyn ImageModel>| {
        let m = m.clone();
        jit(move |(p, x): (Params, Tensor)| m.apply(&p, &x, false, &[]).0)
    };
    let (fs, ft) = (logits(&student), logits(&teacher));
    let (mut kl, mut eu, mut agree) = (Vec::new(), Vec::new(), Vec::new());
    for b in data::eval(&cfg).unwrap() {
        let b = b.unwrap();
        let x = evaluators::to_device(&b, "image", &mesh).unwrap();
        let Value::U8(mask) = &b.data["_mask"] else {
            panic!("mask")
        };
        let s = fs
            .call(&(ps.clone(), x.clone()))
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let t = ft.call(&(pt.clone(), x)).unwrap().to_vec::<f32>().unwrap();
        for (i, &m) in mask.data.iter().enumerate() {
            if m == 0 {
                continue;
            }
            let (s, t): (Vec<f64>, Vec<f64>) = (
                s[i * 10..i * 10 + 10]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect(),
                t[i * 10..i * 10 + 10]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect(),
            );
            let lse = |z: &[f64]| z.iter().map(|v| v.exp()).sum::<f64>().ln();
            let (ls, lt) = (lse(&s), lse(&t));
            kl.push(
                (0..10)
                    .map(|c| (t[c] - lt).exp() * ((t[c] - lt) - (s[c] - ls)))
                    .sum::<f64>(),
            );
            eu.push(((0..10).map(|c| (s[c] - t[c]).powi(2)).sum::<f64>() + 1e-12).sqrt());
            let am = |z: &[f64]| (0..10).fold(0, |b, c| if z[c] > z[b] { c } else { b });
            agree.push(f64::from(u8::from(am(&s) == am(&t))));
        }
    }
    assert_eq!(kl.len(), 200, "every unpadded example once");
    for (name, v, tol) in [
        ("kind=kl", &kl, 1e-5),
        ("kind=euclidean", &eu, 1e-4),
        ("kind=agree_k=1", &agree, 0.0),
    ] {
        let want = [
            ("avg", v.iter().sum::<f64>() / v.len() as f64),
            ("min", v.iter().copied().fold(f64::INFINITY, f64::min)),
            ("max", v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        ];
        for (stat, w) in want {
            let g = got[&format!("{name}/{stat}")];
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{name}/{stat}: {g} vs {w}"
            );
        }
    }
}
