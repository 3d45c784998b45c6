//! Configs: the RON port of vit_s16_i1k against the numbers of big_vision's config (spec
//! §6.3), unknown keys and syntax errors with positions, dotted overrides, config.json.

use std::path::Path;

use bv_train::config::{check_batch_divisible, Config, ConfigError, Plan, PlanError};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// train[:99%] of imagenet2012 (spec §6.3).
const I1K_TRAIN_99: u64 = 1_268_355;

const SMALL: &str = r#"(
    total_steps: 100,
    num_classes: 10,
    input: (data: (name: "fashion_mnist", split: "train"), batch_size: 64, pp: "keep(\"image\")"),
    model_name: "vit",
    optax_name: "scale_by_adam",
    lr: 0.001,
)"#;

#[test]
fn vit_s16_i1k_port_resolves_like_big_vision() {
    let c = Config::load(repo("configs/vit_s16_i1k.ron"), &[]).unwrap();
    assert_eq!(c.input.batch_size, 1024);
    assert_eq!(c.model["variant"], "S/16");
    assert_eq!(c.optax["mu_dtype"], "bfloat16");
    assert_eq!(c.evals.len(), 5);
    let plan = Plan::new(&c, I1K_TRAIN_99).unwrap();
    // spec §6.3: 90 epochs -> 111,477 steps.
    assert_eq!(plan.total_steps, 111_477);
    assert_eq!(plan.log_training_steps, Some(50));
    assert_eq!(plan.ckpt_steps, Some(1000));
    assert_eq!(plan.keep_ckpt_steps, Some(111_477)); // default: keep the final one
    let s = plan.schedules.groups().next().unwrap().1.unwrap();
    assert_eq!(s.warmup_steps, 10_000);
    assert_eq!(s.at(5_000.0), 0.5);
    // Checkpoints at step 1 (rotated), every 1000 (rotated) and the last (kept).
    assert_eq!(plan.checkpoint_due(1), Some(false));
    assert_eq!(plan.checkpoint_due(2), None);
    assert_eq!(plan.checkpoint_due(111_000), Some(false));
    assert_eq!(plan.checkpoint_due(111_477), Some(true));
    let val = plan.evals.iter().find(|e| e.name == "val").unwrap();
    assert_eq!(val.prefix, "val/");
    assert!(val.due(2500, plan.total_steps) && !val.due(2501, plan.total_steps));
    assert!(val.due(111_477, plan.total_steps));
    // 300 epochs, as the config's docstring suggests.
    let c = Config::load(
        repo("configs/vit_s16_i1k.ron"),
        &["total_epochs=300".into()],
    )
    .unwrap();
    assert_eq!(Plan::new(&c, I1K_TRAIN_99).unwrap().total_steps, 371_588);
}

/// The other ports, against step counts derived by hand from big_vision's `utils.steps`
/// (train[:99%] of imagenet2012 = 1,268,355 examples).
#[test]
fn every_ported_config_resolves() {
    let cases = [
        // 90 epochs at 4096: 27,869.13 -> 27,869.
        ("configs/bit_i1k.ron", 27_869, 1000),
        // 300 epochs at 4096: 92,897.09 -> 92,897.
        ("configs/mlp_mixer_i1k.ron", 92_897, 10_000),
        ("configs/vit_i1k.ron", 92_897, 10_000),
        ("configs/vit_s16_i1k.ron", 111_477, 10_000),
    ];
    for (file, total, warmup) in cases {
        let c = Config::load(repo(file), &[]).unwrap();
        let plan = Plan::new(&c, I1K_TRAIN_99).unwrap();
        assert_eq!(plan.total_steps, total, "{file}");
        let (_, s) = plan.schedules.groups().next().unwrap();
        assert_eq!(s.unwrap().warmup_steps, warmup, "{file}");
        assert_eq!(plan.evals.len(), 5, "{file}");
    }
    // transfer.py gives steps directly; cifar10 train[:98%] has 49,000 examples.
    for (file, total, warmup, classes) in [
        ("configs/transfer_cifar10.ron", 10_000, 500, 10),
        ("configs/transfer_pets.ron", 500, 100, 37),
        ("configs/transfer_flowers.ron", 500, 100, 102),
    ] {
        let c = Config::load(repo(file), &[]).unwrap();
        assert_eq!(c.num_classes, Some(classes), "{file}");
        assert_eq!(c.model_load["dont_load"][1], "head/bias", "{file}");
        let plan = Plan::new(&c, 49_000).unwrap();
        assert_eq!(plan.total_steps, total, "{file}");
        let (_, s) = plan.schedules.groups().next().unwrap();
        assert_eq!(s.unwrap().warmup_steps, warmup, "{file}");
        assert_eq!(plan.keep_ckpt_steps, Some(total), "{file}");
    }
    let mut seen = 0;
    for entry in std::fs::read_dir(repo("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ron") {
            Config::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 7);
    // big_vision's linear scaling rule, written out in bit_i1k.ron.
    let bit = Config::load(repo("configs/bit_i1k.ron"), &[]).unwrap();
    assert!((bit.lr - 0.1 / 256.0 * 4096.0).abs() < 1e-12);
    assert!((bit.wd.unwrap() - 1e-4 / 256.0 * 4096.0).abs() < 1e-12);
}

#[test]
fn unknown_key_names_line_and_closest_key() {
    let text = SMALL.replace("    lr: 0.001,", "    lrr: 0.001,");
    let e = Config::from_str(&text, "my.ron", &[]).unwrap_err();
    let ConfigError::UnknownKey {
        line, suggestion, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(*line, 7);
    assert_eq!(suggestion.as_deref(), Some("lr"));
    assert!(e.to_string().starts_with("my.ron:7:"), "{e}");

    let text = SMALL.replace("batch_size: 64", "batch_sise: 64");
    let e = Config::from_str(&text, "my.ron", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean \"batch_size\""), "{e}");
    assert!(e.starts_with("my.ron:4:"), "{e}");
}

#[test]
fn syntax_and_type_errors_give_file_line_column() {
    let text = SMALL.replace("lr: 0.001,", "lr: 0.001,,");
    let e = Config::from_str(&text, "bad.ron", &[]).unwrap_err();
    assert!(matches!(e, ConfigError::Syntax { line: 7, .. }), "{e}");
    let text = SMALL.replace("lr: 0.001", "lr: \"fast\"");
    let e = Config::from_str(&text, "bad.ron", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bad.ron:7:"), "{e}");
    let e = Config::load("/nonexistent/x.ron", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/x.ron"), "{e}");
}

#[test]
fn dotted_overrides_are_type_checked() {
    let set = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Config::from_str(SMALL, "small.ron", &args)
    };
    let c = set(&[
        "lr=0.03",
        "input.batch_size=256",
        "input.data.split=train[:10%]",
        "schedule.decay_type=cosine",
        "model.variant=\"Ti/16\"",
        "model.depth=2",
        "wd_mults=[(\".*/kernel$\", 0.5)]",
        "mixup.p=0.2",
    ])
    .unwrap();
    assert_eq!(c.lr, 0.03);
    assert_eq!(c.input.batch_size, 256);
    assert_eq!(c.input.data.split, "train[:10%]");
    assert_eq!(c.model["variant"], "Ti/16");
    assert_eq!(c.model["depth"], 2);
    assert_eq!(c.wd_mults, Some(vec![(".*/kernel$".to_string(), 0.5)]));
    assert_eq!(c.mixup.unwrap().p, 0.2);

    let e = set(&["lr=abc"]).unwrap_err();
    assert!(matches!(e, ConfigError::OverrideType { .. }), "{e}");
    let e = set(&["input.batch_size=-3"]).unwrap_err().to_string();
    assert!(e.starts_with("override \"input.batch_size=-3\""), "{e}");
    let e = set(&["input.batch_sise=3"]).unwrap_err().to_string();
    assert!(
        e.contains("unknown key \"batch_sise\" in input; did you mean \"batch_size\"?"),
        "{e}"
    );
    let e = set(&["schedule.decay_tpye=cosine"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown key \"decay_tpye\" in schedule; did you mean \"decay_type\"?"),
        "{e}"
    );
    let e = set(&["total_step=3"]).unwrap_err().to_string();
    assert!(e.contains("did you mean \"total_steps\""), "{e}");
    // A section made by one override takes the keys of later ones.
    let c = set(&[
        "evals.f.type=mean",
        "evals.f.pred=classify",
        "schedule.decay_type=cosine",
        "schedule.warmup_steps=2",
    ])
    .unwrap();
    assert_eq!(c.evals["f"].pred.as_deref(), Some("classify"));
    let e = set(&["evals.f.type=mean", "evals.f.shot=[1]"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean \"shots\""), "{e}");
    let e = set(&["lr"]).unwrap_err();
    assert!(matches!(e, ConfigError::OverrideSyntax { .. }), "{e}");
}

#[test]
fn plan_rejects_what_big_vision_asserts() {
    let plan = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Plan::new(&Config::from_str(SMALL, "small.ron", &args).unwrap(), 6400)
    };
    let e = plan(&["schedule=(warmup_steps: 100)"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("warmup of 100 steps is not shorter than the run of 100 steps"),
        "{e}"
    );
    let both = SMALL.replace("total_steps: 100,", "total_steps: 100, total_epochs: 2,");
    let e = Plan::new(&Config::from_str(&both, "both.ron", &[]).unwrap(), 6400)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "only one of total_steps, total_epochs may be set");
    // The same from an override names the key to unset (issue 16 §4).
    let e = Config::from_str(SMALL, "small.ron", &["total_epochs=2".into()])
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("add --set total_steps=None"), "{e}");
    let e = plan(&["total_steps=None"]).unwrap_err();
    assert!(matches!(e, PlanError::NoLength), "{e}");
    let e = plan(&["loss=softmax_xnt"]).unwrap_err().to_string();
    assert!(e.contains("did you mean \"softmax_xent\""), "{e}");
    let e = plan(&["optax_name=big_vision.momentum"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean \"big_vision.momentum_hp\""), "{e}");
    let p = plan(&["total_steps=None", "total_epochs=3"]).unwrap();
    assert_eq!(p.total_steps, 300);
    assert_eq!(p.epochs(), 3.0);

    let e = check_batch_divisible(1000, 16).unwrap_err().to_string();
    assert_eq!(
        e,
        "batch size 1000 is not divisible by 16 devices; use a multiple of 16"
    );
    assert!(check_batch_divisible(1024, 8).is_ok());
}

#[test]
fn resolved_config_is_written_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = [
        "lr=0.5".into(),
        "log_training_steps=10".into(),
        "total_epochs=2.5".into(),
        "total_steps=None".into(),
        "model.width=16.0".into(),
    ];
    let c = Config::from_str(SMALL, "small.ron", &overrides).unwrap();
    c.write_json(dir.path()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["lr"], 0.5);
    // Counts stay integers, as Python's json writes a config's ints; fractions and
    // free-form values as written.
    assert!(text.contains("\"log_training_steps\": 10,"), "{text}");
    assert!(v["log_training_steps"].is_u64(), "{text}");
    assert_eq!(v["total_epochs"], 2.5);
    assert!(v["model"]["width"].is_f64(), "{text}");
    assert_eq!(v["input"]["batch_size"], 64);
    assert_eq!(serde_json::from_value::<Config>(v).unwrap(), c);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file left");
}

/// The image-text configs: big_vision's siglip_lit_coco.py (5000 steps; the image tower frozen,
/// warmup max(3% of steps, 100) = 150) and the two Fashion-MNIST jobs (6 and 3 epochs of
/// 60,000 at 128: 2812.5 -> 2812 and 1406.25 -> 1406).
///
/// bv has no BERT text tower yet, so the config as big_vision wrote it is refused at load time
/// when planned, with the op named; with the overrides its header documents it resolves.
#[test]
fn image_text_configs_resolve() {
    let file = repo("configs/proj/image_text/siglip_lit_coco.ron");
    let as_written = Config::load(&file, &[]).unwrap();
    let err = Plan::new(&as_written, 118_287).unwrap_err().to_string();
    assert!(err.contains("unknown op 'bert_tokenize'"), "{err}");
    let spm = repo("configs/proj/image_text/fashion_mnist_spm.model");
    let tok = |inkey: &str| {
        format!(
            r#"tokenize(max_len=16, eos=\"sticky\", pad_value=1, inkey=\"{inkey}\", model=\"{}\")"#,
            spm.display()
        )
    };
    let overrides = [
        "model.text_model=\"proj.image_text.text_transformer\"".to_string(),
        "model.text={}".to_string(),
        format!(
            "input.pp=\"decode|resize(224)|flip_lr|randaug(2,10)|value_range(-1,1)|flatten|{}|keep(\\\"image\\\", \\\"labels\\\")\"",
            tok("captions/text")
        ),
        format!("evals.retrieval_coco.pp_txt=\"{}\"", tok("texts")),
    ];
    let c = Config::load(&file, &overrides).unwrap();
    assert_eq!(c.trainer.as_deref(), Some("proj.image_text.siglip"));
    let plan = Plan::new(&c, 118_287).unwrap();
    assert_eq!(plan.total_steps, 5000);
    let groups: Vec<_> = plan.schedules.groups().collect();
    assert_eq!(groups[0].0, "img/.*");
    assert!(groups[0].1.is_none(), "image tower frozen");
    assert_eq!(groups[1].1.unwrap().warmup_steps, 150);
    assert_eq!(plan.evals.len(), 1);
    assert_eq!(c.evals["retrieval_coco"].kind, "proj.image_text.retrieval");
    // Their tokenizer path is relative to the repository root, where the README runs them.
    std::env::set_current_dir(repo("")).unwrap();
    for (file, total) in [
        ("configs/proj/image_text/siglip_fashion_mnist.ron", 2812),
        ("configs/proj/image_text/lit_fashion_mnist.ron", 1406),
    ] {
        let c = Config::load(repo(file), &[]).unwrap();
        assert_eq!(Plan::new(&c, 60_000).unwrap().total_steps, total, "{file}");
    }
}
