//! The image-text path end to end through `bv-train` on the Fashion-MNIST fixture: a tiny
//! ViT classifier is trained and exported (`bv-train export`), then a LiT run (the SigLIP
//! trainer, the exported ViT as locked image tower, captions from `class_prompts` and the
//! committed tokenizer) trains the text tower with the zero-shot and contrastive evaluators.
//! Checks: the metrics big_vision's SigLIP trainer logs, evaluator keys and ranges, and the
//! locked tower unchanged, bit for bit, in the final checkpoint.

mod common;

use std::path::{Path, PathBuf};

use bv_core::io::read_npz;
use common::train::{bv_train, metrics, run_ok, tiny_config, values};

const NAMES: &str = r#"["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]"#;

fn lit_config(dir: &Path, tower: &Path) -> PathBuf {
    let spm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs/proj/image_text/fashion_mnist_spm.model")
        .display()
        .to_string();
    let tok =
        format!(r#"tokenize(max_len=12, eos="sticky", pad_value=1, inkey="texts", model="{spm}")"#);
    let text = format!(
        r##"(
    trainer: "proj.image_text.siglip",
    total_steps: 6,
    input: (
        data: (name: "fashion_mnist", split: "train"),
        batch_size: 16,
        shuffle_buffer_size: 100,
        pp: r#"decode(channels=1)|value_range(-1, 1)|class_prompts(names={NAMES})|{tok}|keep("image", "labels")"#,
    ),
    log_training_steps: 3,
    ckpt_steps: 6,
    model_name: "proj.image_text.two_towers",
    model_init: {{"img": "{tower}"}},
    model_load: {{"img_load_kw": {{"dont_load": ["head/kernel", "head/bias"]}}}},
    model: {{
        "image": {{"patch_size": [7, 7], "width": 16, "depth": 1, "mlp_dim": 32, "num_heads": 2, "pool_type": "gap"}},
        "text": {{"width": 16, "depth": 1, "mlp_dim": 32, "num_heads": 2, "vocab_size": 99}},
        "out_dim": (None, 16), "temperature_init": 10.0, "bias_init": -10.0,
    }},
    optax_name: "scale_by_adam", lr: 0.01, wd: 0.0001, grad_clip_norm: 1.0,
    schedule: [("img/.*", None), (".*", (decay_type: "cosine", warmup_steps: 2))],
    evals: {{
        "zeroshot": (
            type: "proj.image_text.discriminative_classifier",
            dataset_names: ["fashion_mnist"], dataset_overrides: {{}},
            class_names: {NAMES}, prompt_templates: "clip_best",
            pp_img: "decode(channels=1)|value_range(-1, 1)", pp_txt: r#"{tok}"#,
            batch_size: 100, prefix: "z/0shot/", log_steps: 6,
        ),
        "contrastive": (
            type: "proj.image_text.contrastive",
            data: (name: "fashion_mnist", split: "test"),
            pp_fn: r#"decode(channels=1)|value_range(-1, 1)|class_prompts(names={NAMES})|{tok}|keep("image", "labels")"#,
            batch_size: 50, log_steps: 6,
        ),
    }},
)"##,
        tower = tower.display()
    );
    let path = dir.join("lit.ron");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn lit_from_an_exported_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let cls = dir.path().join("cls");
    run_ok(&mut bv_train(&tiny_config(dir.path()), &cls, &[]));
    let npz = dir.path().join("tower.npz");
    run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_bv-train"))
            .arg("export")
            .arg(&cls)
            .arg("--out")
            .arg(&npz),
    );
    let tower = read_npz(&npz).unwrap();
    assert!(
        tower.iter().any(|(k, _)| k == "head/kernel"),
        "the classifier's parameters"
    );

    let lit = dir.path().join("lit");
    run_ok(&mut bv_train(&lit_config(dir.path(), &npz), &lit, &[]));
    let records = metrics(&lit);
    let last = values(records.last().unwrap());
    for key in [
        "training_loss",
        "l2_grads",
        "l2_params",
        "l2_updates",
        "t",
        "b",
        "global_schedule",
    ] {
        assert!(
            last.get(key).is_some_and(|v| v.is_finite()),
            "{key} in {last:?}"
        );
    }
    let acc = last["z/0shot/fashion_mnist_accuracy"];
    assert!((0.0..=1.0).contains(&acc), "{acc}");
    assert!((0.0..=1.0).contains(&last["contrastive/ncorrect_minibatch"]));
    assert!(last["contrastive/loss"] > 0.0);
    assert!(
        values(&records[0]).contains_key("z/0shot/fashion_mnist_accuracy"),
        "evaluated before training"
    );

    let out = dir.path().join("lit.npz");
    run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_bv-train"))
            .arg("export")
            .arg(&lit)
            .arg("--out")
            .arg(&out),
    );
    let trained = read_npz(&out).unwrap();
    let mut locked = 0;
    for (name, v) in &trained {
        if let Some(rest) = name.strip_prefix("img/") {
            let (_, want) = tower.iter().find(|(k, _)| k == rest).unwrap();
            assert_eq!(v.bytes(), want.bytes(), "{name} changed though frozen");
            locked += 1;
        }
    }
    assert_eq!(
        locked,
        tower.len() - 2,
        "every image-tower parameter but the head"
    );
    assert!(trained.iter().any(|(k, _)| k.starts_with("txt/")));
}
