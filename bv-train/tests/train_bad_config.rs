//! Bad configs stop `bv-train` with a clear message and a non-zero exit code before it
//! writes anything: an existing workdir stays byte for byte (and timestamp for timestamp)
//! as it was, and a missing one is not created.

mod common;

use common::train::*;

#[test]
fn bad_configs_fail_clearly_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let text = std::fs::read_to_string(&config).unwrap();
    // An existing workdir: a run stopped after its first step.
    let workdir = dir.path().join("workdir");
    run_ok(&mut bv_train(&config, &workdir, &["--stop-after", "1"]));
    let before = snapshot(&workdir);
    assert!(before.len() > 5, "{:?}", before.keys());

    // A config file with one key misspelled, one with a string for a number.
    let line_of = |key: &str| 1 + text.lines().position(|l| l.contains(key)).unwrap();
    let misspelled = dir.path().join("misspelled.ron");
    std::fs::write(
        &misspelled,
        text.replace("log_training_steps:", "log_trainig_steps:"),
    )
    .unwrap();
    let mistyped = dir.path().join("mistyped.ron");
    std::fs::write(
        &mistyped,
        text.replace("batch_size: 16,", "batch_size: \"16\","),
    )
    .unwrap();
    let unknown_key = format!("misspelled.ron:{}:", line_of("log_training_steps:"));
    let wrong_type = format!("mistyped.ron:{}:", line_of("batch_size: 16,"));

    let cases: [(&str, &std::path::Path, &[&str], &[&str]); 13] = [
        (
            "unknown key",
            &misspelled,
            &[],
            &[
                &unknown_key,
                "unknown key \"log_trainig_steps\"; did you mean \"log_training_steps\"?",
            ],
        ),
        (
            "unknown key (override)",
            &config,
            &["--set", "input.batch_sise=8"],
            &["input.batch_sise", "did you mean \"batch_size\""],
        ),
        (
            "wrong type",
            &mistyped,
            &[],
            &[&wrong_type, "Expected integer"],
        ),
        (
            "wrong type (override)",
            &config,
            &["--set", "input.batch_size=abc"],
            &["input.batch_size=abc", "expected u64"],
        ),
        (
            "missing dataset",
            &config,
            &["--set", "input.data.name=no_such_dataset"],
            &["dataset 'no_such_dataset' not found", "--data-dir"],
        ),
        (
            "missing eval dataset",
            &config,
            &["--set", "evals.test.data.name=no_such_dataset"],
            &["dataset 'no_such_dataset' not found"],
        ),
        (
            "missing split",
            &config,
            &["--set", "input.data.split=validation"],
            &["validation"],
        ),
        (
            "batch size not divisible by the devices",
            &config,
            &["--cpu-devices", "3"],
            &["batch size 16 is not divisible by 3 devices"],
        ),
        (
            "warmup as long as the run",
            &config,
            &["--set", "schedule.warmup_steps=30"],
            &["warmup of 30 steps is not shorter than the run of 30 steps"],
        ),
        (
            "unknown model",
            &config,
            &["--set", "model_name=vitt"],
            &["model_name = \"vitt\"", "did you mean \"vit\""],
        ),
        (
            "unknown loss",
            &config,
            &["--set", "loss=softmax"],
            &["loss = \"softmax\"", "did you mean \"softmax_xent\""],
        ),
        (
            "unknown eval loss",
            &config,
            &["--set", "evals.test.loss_name=softmax"],
            &["\"softmax\""],
        ),
        (
            "unknown evaluator",
            &config,
            &["--set", "evals.test.type=clasification"],
            &["clasification"],
        ),
    ];
    let missing = dir.path().join("not_created");
    for (what, config, extra, expected) in cases {
        for wd in [&workdir, &missing] {
            let out = bv_train(config, wd, extra).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            eprintln!("{what}: {}", stderr.trim());
            assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
            assert!(
                stderr.starts_with("error: ") && !stderr.contains("panicked"),
                "{what}: {stderr}"
            );
            for e in expected {
                assert!(stderr.contains(e), "{what}: no {e:?} in: {stderr}");
            }
        }
        assert!(before == snapshot(&workdir), "{what}: the workdir changed");
        assert!(!missing.exists(), "{what}: the workdir was created");
    }
}
