//! The evaluators `fewshot_lsr`, `mean` and `save` run from a config in a tiny training
//! run on the Fashion-MNIST fixture, then `bv-train eval` on its checkpoint. What they
//! write is checked against references computed here: the model applied to the saved
//! inputs, the fixture's labels, and float64 means of the saved logits.

mod common;

use std::process::Command;

use bv_core::io::{read_npz, HostArray};
use bv_core::{jit, Array, Tensor};
use bv_train::data::TfdsDataset;
use common::train::*;

const STEPS: u64 = 6;

const FEWSHOT_PP: &str = r#"decode(channels=1)|value_range(-1, 1)|keep("image", "label")"#;

/// The tiny config with `fewshot_lsr`, `mean` and `save` evaluators beside `test`.
fn config_with_evals(dir: &std::path::Path) -> std::path::PathBuf {
    let path = tiny_config(dir);
    let pp = r#"decode(channels=1)|value_range(-1, 1)|onehot(10, key="label", key_result="labels")|keep("image", "labels")"#;
    let extra = format!(
        r##"evals: {{
        "fewshot": (
            type: "fewshot_lsr",
            datasets: {{"fmnist": ("fashion_mnist", "train", "test")}},
            shots: [1, 5],
            l2_regs: [0.01, 1024.0],
            num_seeds: 2,
            pp_train: r#"{FEWSHOT_PP}"#,
            pp_eval: r#"{FEWSHOT_PP}"#,
            display_first: [("fmnist", 5)],
            prefix: "",
            batch_size: 100,
            log_steps: 3,
        ),
        "m": (
            type: "mean",
            pred: "classify",
            data: (name: "fashion_mnist", split: "test"),
            pp_fn: r#"{pp}"#,
            batch_size: 64,
            log_steps: 3,
        ),
        "pred": (
            type: "save",
            data: (name: "fashion_mnist", split: "test"),
            pp_fn: r#"{pp}"#,
            outfile: "{{workdir}}/pred-{{step:09d}}.npz",
            outputs: ["logits", "pre_logits"],
            batch_size: 64,
            log_steps: 3,
        ),
"##
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("evals: {", &extra, 1);
    std::fs::write(&path, text).unwrap();
    path
}

fn short_run() -> [&'static str; 4] {
    ["--set", "total_steps=6", "--set", "schedule.warmup_steps=2"]
}

/// `v[key]`, or a panic listing the keys there are.
fn get(v: &std::collections::BTreeMap<&str, f64>, key: &str) -> f64 {
    *v.get(key)
        .unwrap_or_else(|| panic!("no {key}; have {:?}", v.keys()))
}

fn array(npz: &[(String, HostArray)], key: &str) -> HostArray {
    npz.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in the npz"))
        .1
        .clone()
}

#[test]
fn evaluators_run_from_the_config_and_bv_train_eval_reproduces_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_evals(dir.path());
    let workdir = dir.path().join("w");
    run_ok(&mut bv_train(&config, &workdir, &short_run()));
    let records = metrics(&workdir);
    let first = values(&records[0]);
    let last = values(records.last().unwrap());
    assert_eq!((records[0].step, records.last().unwrap().step), (0, STEPS));

    // num_params at step 0 (the tiny ViT's parameter count, from the checkpoint's leaves);
    // z/secs/update0 on the first step.
    let (_, leaves, _) = last_checkpoint(&workdir);
    let params: Vec<_> = leaves
        .iter()
        .filter(|l| l.0.starts_with("params/"))
        .collect();
    let count: usize = params.iter().map(|l| l.2.iter().product::<usize>()).sum();
    assert_eq!(first["num_params"], count as f64);
    let step1 = values(&records[1]);
    assert!(step1["z/secs/update0"] > 0.0, "{step1:?}");
    assert!(!last.contains_key("z/secs/update0"), "only the first step");
    assert!(
        step1.keys().any(|k| k.starts_with("core_hours_")),
        "{step1:?}"
    );

    // fewshot_lsr: big_vision's names, a/ for display_first, the mean over seeds, the
    // chosen λ among the candidates.
    for v in [&first, &last] {
        for k in [1, 5] {
            let group = if k == 5 { "a" } else { "z" };
            let seeds: Vec<f64> = (0..2)
                .map(|s| get(v, &format!("{group}/fmnist_{k}shot-seed-{s}")))
                .collect();
            for acc in &seeds {
                assert!((0.0..=1.0).contains(acc), "{v:?}");
                // 200 test examples: accuracies are multiples of 1/200.
                assert!((acc * 200.0 - (acc * 200.0).round()).abs() < 1e-9, "{acc}");
            }
            let mean = get(v, &format!("{group}/fmnist_{k}shot"));
            assert!((mean - (seeds[0] + seeds[1]) / 2.0).abs() < 1e-12);
            let l2 = get(v, &format!("z/{k}shot_best_l2"));
            assert!(l2 == 0.01 || l2 == 1024.0, "{l2}");
        }
        assert!(v.contains_key("z/secs/eval/fewshot"));
    }
    eprintln!(
        "fewshot 5-shot accuracy at step {STEPS}: {}",
        last["a/fmnist_5shot"]
    );

    // save: every test example in order, its labels the fixture's, its logits the model's.
    let npz = read_npz(workdir.join(format!("pred-{STEPS:09}.npz"))).unwrap();
    assert!(workdir.join("pred-000000000.npz").is_file());
    let mut names: Vec<&str> = npz.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "inputs/image",
            "inputs/labels",
            "outputs/logits",
            "outputs/pre_logits"
        ]
    );
    let logits = array(&npz, "outputs/logits");
    assert_eq!(logits.shape(), [200, 10]);
    assert_eq!(array(&npz, "outputs/pre_logits").shape(), [200, 16]);
    let labels = array(&npz, "inputs/labels").to_vec::<f32>().unwrap();
    let ds = TfdsDataset::open("fashion_mnist", Some(&common::fixture_dir())).unwrap();
    let reads = ds.reads(&ds.ranges("test").unwrap());
    let fixture: Vec<i64> = ds
        .stream(&reads, Default::default())
        .map(|r| match &ds.example(&r.unwrap()).unwrap()["label"] {
            bv_train::data::Value::I64(a) => a.data[0],
            other => panic!("label is {other:?}"),
        })
        .collect();
    assert_eq!(fixture.len(), 200);
    for (i, want) in fixture.iter().enumerate() {
        assert_eq!(labels[i * 10 + *want as usize], 1.0, "example {i}");
    }
    let image = array(&npz, "inputs/image");
    let model = bv_nn::models::build(
        "vit",
        &serde_json::json!({"patch_size": [7, 7], "width": 16, "depth": 1, "mlp_dim": 32,
                            "num_heads": 2, "pool_type": "gap", "num_classes": 10}),
    )
    .unwrap();
    let f = jit(move |(p, x): (bv_nn::Params, Tensor)| model.apply(&p, &x, false, &[]).0);
    let p: bv_nn::Params<Array> = params
        .iter()
        .map(|l| {
            let a = Array::from_bytes(&l.3, bv_core::DType::F32, &l.2).unwrap();
            (l.0["params/".len()..].to_string(), a)
        })
        .collect();
    let x = Array::from_bytes(image.bytes(), image.dtype(), image.shape()).unwrap();
    let want = f.call(&(p, x)).unwrap().to_vec::<f32>().unwrap();
    let got = logits.to_vec::<f32>().unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "logit {i}: {g} vs {w}"
        );
    }

    // mean: the float64 mean of the saved logits' softmax cross-entropy and top-1 hits.
    let (mut loss, mut hits) = (0.0, 0.0);
    for (z, y) in got.chunks(10).zip(labels.chunks(10)) {
        let z: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        loss -= y
            .iter()
            .zip(&z)
            .map(|(y, z)| f64::from(*y) * (z - lse))
            .sum::<f64>();
        let top = (0..10).fold(0, |b, c| if z[c] > z[b] { c } else { b });
        hits += f64::from(y[top]);
    }
    assert!(
        (last["m/loss"] - loss / 200.0).abs() < 1e-5,
        "{} vs {}",
        last["m/loss"],
        loss / 200.0
    );
    assert!((last["m/prec@1"] - hits / 200.0).abs() < 1e-6);
    assert!((last["m/prec@1"] - last["test/prec@1"]).abs() < 1e-6);

    // bv-train eval: the LAST checkpoint again, without training; the checkpoints are
    // untouched and one line is appended, with the same values as training's last evals.
    let ckpt = workdir.join(format!("checkpoint.bv-{STEPS:09}"));
    let before = snapshot(&ckpt);
    let out = run_ok(
        Command::new(env!("CARGO_BIN_EXE_bv-train"))
            .args(["eval", "--config"])
            .arg(&config)
            .arg("--workdir")
            .arg(&workdir)
            .arg("--data-dir")
            .arg(common::fixture_dir())
            .args(short_run()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test/prec@1: "), "{stdout}");
    assert_eq!(snapshot(&ckpt), before, "the checkpoint was modified");
    let again = metrics(&workdir);
    assert_eq!(again.len(), records.len() + 1);
    assert_eq!(&again[..records.len()], &records[..]);
    let line = values(again.last().unwrap());
    assert_eq!(again.last().unwrap().step, STEPS);
    for key in [
        "test/prec@1",
        "test/loss",
        "m/loss",
        "a/fmnist_5shot-seed-1",
        "z/1shot_best_l2",
    ] {
        assert!(
            (line[key] - last[key]).abs() < 1e-6,
            "{key}: {} vs {}",
            line[key],
            last[key]
        );
    }
}

#[test]
fn eval_without_a_checkpoint_says_to_train_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_bv-train"))
        .args(["eval", "--config"])
        .arg(&config)
        .arg("--workdir")
        .arg(dir.path().join("empty"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no checkpoint"), "{err}");
    assert!(err.contains("train first with `bv-train --config"), "{err}");
    assert!(!dir.path().join("empty").exists(), "nothing is written");
}

#[test]
fn bad_evaluator_configs_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let check = |sets: &[&str], want: &str| {
        let mut cmd = bv_train(&config, &dir.path().join("w"), &short_run());
        for s in sets {
            cmd.args(["--set", s]);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{sets:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{sets:?}: {err}");
        assert!(!dir.path().join("w").exists(), "nothing is written");
    };
    check(
        &["evals.test.shots=[1]"],
        "evals.test.shots: not a key of classification",
    );
    check(
        &["evals.test.type=fewshot_lsr"],
        "evals.test.data: not a key of fewshot_lsr",
    );
    check(
        &["evals.f.type=fewshot_lsr"],
        "evals.f.datasets: fewshot_lsr needs datasets",
    );
    // A new evaluator, its keys set one by one.
    let fewshot = [
        "evals.f.type=fewshot_lsr",
        r#"evals.f.datasets={"fm": ("fashion_mnist", "train", "test")}"#,
        r#"evals.f.pp_train="keep(\"image\", \"label\")""#,
        r#"evals.f.pp_eval="keep(\"image\", \"label\")""#,
    ];
    check(
        &fewshot[..3],
        "evals.f.pp_eval: fewshot_lsr needs this pp string",
    );
    check(
        &[&fewshot[..], &["evals.f.l2_reg=-1"]].concat(),
        "evals.f.l2_reg: -1 is not a positive number",
    );
    check(
        &[&fewshot[..], &["evals.f.l2_reg=1", "evals.f.l2_regs=[1.0]"]].concat(),
        "evals.f.l2_regs: set l2_reg or l2_regs, not both",
    );
    check(
        &[&fewshot[..], &["evals.f.shots=[0]"]].concat(),
        "evals.f.shots: give shot counts of at least 1",
    );
    check(
        &[&fewshot[..], &[r#"evals.f.display_first=[("pets", 10)]"#]].concat(),
        r#"evals.f.display_first: "pets" is not one of the datasets ["fm"]"#,
    );
    check(
        &[&fewshot[..], &["evals.f.label_key=labels"]].concat(),
        r#"fashion_mnist has no class-label feature "labels""#,
    );
    check(
        &["evals.test.pred=loss"],
        "evals.test.pred: classification evaluators call predict",
    );
    check(
        &["evals.test.type=mean", "evals.test.pred=predict"],
        "evals.test.pred: mean evaluators call loss or classify",
    );

    // An output the model does not have is known once the model is traced.
    let out = bv_train(&config, &dir.path().join("w"), &short_run())
        .args([
            "--set",
            "evals.test.type=save",
            "--set",
            r#"evals.test.outputs=["nope"]"#,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"evals.test.outputs: the model has no output "nope"; it has "#)
            && err.contains("pre_logits"),
        "{err}"
    );
}
