//! `bv-train config`: resolved runs on stdout, bad configs as clear errors with a non-zero
//! exit code.

use std::process::{Command, Output};

fn bv_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bv-train"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn prints_the_resolved_run() {
    let o = bv_train(&[
        "config",
        "configs/vit_s16_i1k.ron",
        "--data-size",
        "1268355",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("total_steps: 111477 (90.00 epochs"), "{out}");
    assert!(
        out.contains("checkpoint: every 1000 steps, kept every 111477 steps"),
        "{out}"
    );
    assert!(out.contains("\"lr\": 0.001"), "{out}");
}

/// The split size comes from the prepared dataset: the TFDS-written Fashion-MNIST fixture
/// has 1000 training examples, so train[:98%] is 980.
#[test]
fn counts_the_split_of_the_prepared_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/transfer_cifar10.ron"
    ))
    .unwrap()
    .replace(
        "name: \"cifar10\", split: \"train[:98%]\"",
        "name: \"fashion_mnist\", split: \"train[:98%]\"",
    )
    .replace("total_steps: 10000", "total_epochs: 1000");
    let config = dir.path().join("fm.ron");
    std::fs::write(&config, text).unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/tfds");
    let o = bv_train(&["config", config.to_str().unwrap(), "--data-dir", fixture]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // 1000 epochs of 980 examples at batch 512: 1914.06 -> 1914 steps.
    assert!(
        out.contains("total_steps: 1914 (999.97 epochs of 980 examples"),
        "{out}"
    );
}

#[test]
fn bad_configs_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/transfer_cifar10.ron"
    ))
    .unwrap();
    let bad = dir.path().join("typo.ron");
    std::fs::write(&bad, text.replace("grad_clip_norm", "grad_clip_nrom")).unwrap();
    let o = bv_train(&["config", bad.to_str().unwrap(), "--data-size", "49000"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("typo.ron:25:"), "{e}");
    assert!(e.contains("did you mean \"grad_clip_norm\""), "{e}");

    let o = bv_train(&[
        "config",
        "configs/transfer_cifar10.ron",
        "--data-size",
        "49000",
        "--set",
        "schedule.warmup_steps=20000",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("warmup of 20000 steps is not shorter than the run of 10000 steps"));

    let o = bv_train(&[
        "config",
        "configs/transfer_cifar10.ron",
        "--data-dir",
        "/nonexistent",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("cifar10") && e.contains("not found"), "{e}");
}
