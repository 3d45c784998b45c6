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
    let line = 1 + text
        .lines()
        .position(|l| l.contains("grad_clip_norm"))
        .unwrap();
    assert!(e.contains(&format!("typo.ron:{line}:")), "{e}");
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

fn bv_train_in(cwd: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bv-train"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// Issue 16 §4: the configs ship inside the binary, so a bare name works from any
/// directory; a file at the path still wins; `config --list` shows them.
#[test]
fn bundled_configs_resolve_by_name_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["vit_s16_i1k.ron", "vit_s16_i1k", "configs/vit_s16_i1k.ron"] {
        let o = bv_train_in(dir.path(), &["config", name, "--data-size", "1268355"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("total_steps: 111477"), "{name}: {out}");
    }
    // A file of that name in the current directory wins.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/vit_s16_i1k.ron"
    ))
    .unwrap()
    .replace("total_epochs: 90", "total_epochs: 30");
    std::fs::write(dir.path().join("vit_s16_i1k.ron"), text).unwrap();
    let o = bv_train_in(
        dir.path(),
        &["config", "vit_s16_i1k.ron", "--data-size", "1268355"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("total_steps: 37159"));

    let o = bv_train_in(dir.path(), &["config", "--list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for b in bv_train::config::bundled::BUNDLED {
        assert!(out.contains(b.name), "{out}");
    }
    assert!(out.contains("ViT-S/16 on ImageNet-1k"), "{out}");
    let o = bv_train_in(dir.path(), &["--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Bundled configs"));

    // A missing file that is no bundled name: the cause once, and the bundled names.
    let o = bv_train_in(dir.path(), &["config", "nope.ron", "--data-size", "1"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    assert!(e.contains("fashion_mnist_vit.ron"), "{e}");
}

/// Every file of `configs/` is bundled, as it is.
#[test]
fn every_config_file_is_bundled() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ron"))
        .collect();
    files.sort();
    let bundled: Vec<&str> = bv_train::config::bundled::BUNDLED
        .iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(files, bundled);
    for b in bv_train::config::bundled::BUNDLED {
        let text = std::fs::read_to_string(format!("{dir}/{}", b.name)).unwrap();
        assert_eq!(text, b.text, "{}", b.name);
    }
}

/// Issue 16 §4: without ImageNet, say how to prepare it with TFDS and how to point bv at
/// it, and that `--data-size` checks the config without the data.
#[test]
fn a_missing_imagenet_says_how_to_prepare_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().to_str().unwrap();
    let o = bv_train(&["config", "vit_s16_i1k.ron", "--data-dir", empty]);
    assert!(!o.status.success());
    let e = stderr(&o);
    for want in [
        "dataset 'imagenet2012' not found",
        "ILSVRC2012_img_train.tar",
        &format!("{empty}/downloads/manual/"),
        &format!("tfds build imagenet2012 --data_dir {empty}"),
        "--data-dir DIR or TFDS_DATA_DIR=DIR",
        "--data-size N",
    ] {
        assert!(e.contains(want), "no {want:?} in {e}");
    }
    assert!(!e.contains("data prepare fashion_mnist"), "{e}");
    let o = bv_train(&["config", "transfer_cifar10.ron", "--data-dir", empty]);
    assert!(stderr(&o).contains(&format!("tfds build cifar10 --data_dir {empty}")));
}

/// `bv-train config configs/vit_s16_i1k.ron --data-size 1268355 --set S...`.
fn check_vit_s16(sets: &[&str]) -> Output {
    let mut args = vec![
        "config",
        "configs/vit_s16_i1k.ron",
        "--data-size",
        "1268355",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    bv_train(&args)
}

/// Issue 16 §4: `--set total_steps=30` on a config with `total_epochs` gives the fix.
#[test]
fn a_second_length_unit_names_the_key_to_unset() {
    let o = check_vit_s16(&["total_steps=30"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("the config also sets total_epochs = 90, and a length takes one unit; add --set total_epochs=None"),
        "{e}"
    );
    let o = check_vit_s16(&["total_steps=20000", "total_epochs=None"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("total_steps: 20000 "));
}

/// Issue 16 §4: `bv-train config` checks pp strings (with the key and the column) and
/// values, without the data.
#[test]
fn config_checks_pp_strings_and_values() {
    let cases = [
        (
            "input.pp=decode|inception_crop(224)|flip_lr|value_rnage(-1, 1)",
            "input.pp: pp 'decode|inception_crop(224)|flip_lr|value_rnage(-1, 1)', column 36: unknown op 'value_rnage'; did you mean value_range",
        ),
        (
            "evals.val.pp_fn=decode|resize(size=-3)",
            "evals.val.pp_fn: pp 'decode|resize(size=-3)', column 8: resize: size should be a positive integer",
        ),
        ("lr=-0.001", "lr: -0.001 is not at least 0"),
        ("total_epochs=0", "the run has 0 steps"),
    ];
    for (set, want) in cases {
        let o = check_vit_s16(&[set]);
        assert!(!o.status.success(), "{set}");
        assert!(stderr(&o).contains(want), "{set}: {}", stderr(&o));
    }
}

/// Issue 16 §4: `bv-train pp --list` (which the unknown-op message names) exists and shows
/// every op with its arguments; `pp OP` describes one; `pp STRING` checks a pipeline.
#[test]
fn pp_subcommand_lists_describes_and_checks() {
    let o = bv_train(&["pp", "--list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for def in bv_train::pp::OPS {
        assert!(out.contains(&bv_train::pp::signature(def)), "{out}");
        assert!(out.contains(def.doc), "{out}");
    }
    assert!(out.contains("resize(size, method, antialias, key, inkey, outkey)  [ops_image]"));
    assert!(out.contains("keep(*keys)  [ops_general]"));

    let o = bv_train(&["pp", "inception_crop"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with(
            "inception_crop(size, area_min, area_max, method, antialias, key, inkey, outkey)\n"
        ),
        "{out}"
    );
    assert!(out.contains("(default 'image')"), "{out}");

    let o = bv_train(&["pp", "decode|resize(224)|value_range(-1, 1)"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("column 8: resize(size, method"), "{out}");
    let o = bv_train(&["pp", "decode|frobnicate"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("column 8: unknown op 'frobnicate'; `bv-train pp --list` shows the known ops"),
        "{e}"
    );
}
