//! One tiny training run end to end through the `bv-train` binary: the workdir it leaves is
//! read back against big_vision's documented layout and metric names.

mod common;

use common::train::*;

/// big_vision's cosine schedule with linear warmup (`bv_optax.create_learning_rate_schedule`)
/// at optimizer count `c`, written out from its definition.
fn cosine_warmup(c: u64) -> f64 {
    let (c, w, t) = (c as f64, WARMUP_STEPS as f64, TOTAL_STEPS as f64);
    let progress = ((c - w) / (t - w)).clamp(0.0, 1.0);
    0.5 * (1.0 + (std::f64::consts::PI * progress).cos()) * (c / w).min(1.0)
}

#[test]
fn a_tiny_run_writes_big_vision_metrics_config_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("workdir");
    let out = run_ok(&mut bv_train(&config, &workdir, &[]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("step 30: training_loss"), "{stdout}");

    // One line per logged step: step 0 (evals before training), step 1, every 5th, the last.
    let records = metrics(&workdir);
    let steps: Vec<u64> = records.iter().map(|r| r.step).collect();
    assert_eq!(steps, [0, 1, 5, 10, 15, 20, 25, 30]);
    let mut losses = Vec::new();
    for r in &records {
        let v = values(r);
        let evaluated = r.step % EVAL_STEPS == 0;
        for name in ["test/prec@1", "test/loss"] {
            assert_eq!(v.contains_key(name), evaluated, "step {}: {name}", r.step);
        }
        if evaluated {
            assert!((0.0..=1.0).contains(&v["test/prec@1"]), "{r:?}");
        }
        if r.step == 0 {
            assert!(!v.contains_key("training_loss"), "{r:?}");
            continue;
        }
        for name in TRAINING_METRICS {
            let x = v
                .get(name)
                .unwrap_or_else(|| panic!("step {}: no {name}", r.step));
            assert!(x.is_finite() && *x >= 0.0, "step {}: {name} = {x}", r.step);
        }
        let s = r.step as f64;
        assert_eq!(v["examples_seen"], 16.0 * s);
        assert!((v["epoch"] - 16.0 * s / 1000.0).abs() < 1e-12, "{r:?}");
        assert!(
            (v["progress"] - s / TOTAL_STEPS as f64).abs() < 1e-12,
            "{r:?}"
        );
        // The multiplier of this step's update, i.e. at optimizer count step - 1.
        let expected = cosine_warmup(r.step - 1);
        assert!(
            (v["global_schedule"] - expected).abs() < 1e-6,
            "step {}: global_schedule {} but big_vision's schedule gives {expected}",
            r.step,
            v["global_schedule"]
        );
        assert!(
            (v["core_hours"] - v["uptime"] / 3600.0).abs() < 1e-9,
            "{r:?}"
        );
        losses.push(v["training_loss"]);
    }
    // The head starts at zero, so the first loss is ln(10); then it goes down (each logged
    // loss is one batch of 16, so the last three are averaged).
    assert!((losses[0] - 10f64.ln()).abs() < 1e-5, "{losses:?}");
    let late = losses[losses.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(
        late < losses[0] - 0.15,
        "the loss did not go down: {losses:?}"
    );
    let first_eval = values(&records[0]);
    let last_eval = values(records.last().unwrap());
    assert!(
        last_eval["test/loss"] < first_eval["test/loss"] - 0.2,
        "{first_eval:?} -> {last_eval:?}"
    );
    eprintln!(
        "training_loss {:.4} -> {late:.4} (mean of the last 3 logged); test/loss {:.4} -> {:.4}; test/prec@1 {:.3} -> {:.3}",
        losses[0],
        first_eval["test/loss"],
        last_eval["test/loss"],
        first_eval["test/prec@1"],
        last_eval["test/prec@1"]
    );

    // The resolved config.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workdir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        json["total_steps"].as_u64(),
        Some(TOTAL_STEPS),
        "an int, as written"
    );
    assert_eq!(json["input"]["batch_size"], 16);
    assert_eq!(json["model"]["width"], 16);

    // Checkpoints: kept ones at multiples of keep_ckpt_steps and the end, `-tmp` ones rotated.
    let mut dirs: Vec<String> = std::fs::read_dir(&workdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint.bv-"))
        .collect();
    dirs.sort();
    assert_eq!(
        dirs,
        [
            "checkpoint.bv-000000012",
            "checkpoint.bv-000000024",
            "checkpoint.bv-000000030",
            "checkpoint.bv-LAST"
        ]
    );
    let (step, leaves, extra) = last_checkpoint(&workdir);
    assert_eq!(step, TOTAL_STEPS);
    let find = |name: &str| leaves.iter().find(|l| l.0 == name);
    let head = find("params/head/kernel").expect("params/head/kernel");
    assert_eq!(
        (head.1.as_str(), head.2.as_slice()),
        ("float32", &[16, 10][..])
    );
    assert!(
        leaves.iter().any(|l| l.0.starts_with("opt/")),
        "no optimizer state"
    );
    assert_eq!(extra["chrono"]["examples_seen"], 16 * TOTAL_STEPS);
    assert_eq!(extra["position"]["examples"], 16 * TOTAL_STEPS);
}

#[test]
fn help_shows_the_example_command() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bv-train"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("bv-train --config configs/fashion_mnist_vit.ron --workdir"),
        "{help}"
    );
}
