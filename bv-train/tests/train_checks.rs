//! Issue 16, §3.6 and §4: values and keys that used to be checked too late (after
//! `config.json` and a metrics line were written, or after training) or never, and paths a
//! new user gives. Each must stop the run before anything is written, naming the key; the
//! keys bv supports only in part either work or say why not.

mod common;

use std::path::Path;
use std::process::Command;

use common::train::*;

/// `bv-train --config CONFIG --workdir WORKDIR --data-dir <fixture> EXTRA...` run in `cwd`,
/// with downloaded checkpoints looked for in the empty `models`.
fn command(config: &Path, workdir: &str, extra: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bv-train"));
    cmd.arg("--config")
        .arg(config)
        .args(["--workdir", workdir, "--data-dir"])
        .arg(common::fixture_dir())
        .args(extra)
        .env("BV_MODELS_DIR", cwd.join("models"))
        .current_dir(cwd);
    cmd
}

/// One bad run: exit code 1 (2 for a flag clap refuses) and an `error:` message holding
/// every `expected` text.
fn refused(mut cmd: Command, what: &str, expected: &[&str]) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{what}: {}", stderr.trim());
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "{what}: {}\n{stderr}",
        out.status
    );
    assert!(
        stderr.starts_with("error: ") && !stderr.contains("panicked"),
        "{what}: {stderr}"
    );
    for e in expected {
        assert!(stderr.contains(e), "{what}: no {e:?} in: {stderr}");
    }
}

#[test]
fn bad_values_and_unsupported_keys_stop_the_run_before_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("workdir");
    run_ok(&mut bv_train(&config, &workdir, &["--stop-after", "1"]));
    let before = snapshot(&workdir);
    let missing = dir.path().join("not_created");
    let cases: &[(&[&str], &[&str])] = &[
        // Used to fail only after training, once config.json and a metrics line were written.
        (
            &["--set", "evals.test.batch_size=0"],
            &["evals.test.batch_size: must be positive"],
        ),
        // Used to exit 0 and rewrite config.json.
        (
            &["--set", "total_steps=0"],
            &["the run has 0 steps", "bv-train eval"],
        ),
        // Used to train to a loss of 2.6e5.
        (&["--set", "lr=-1"], &["lr: -1 is not at least 0"]),
        (&["--set", "wd=-0.1"], &["wd: -0.1"]),
        (&["--set", "grad_clip_norm=0"], &["grad_clip_norm: 0 is not above 0"]),
        (&["--set", "input.shuffle_buffer_size=0"], &["input.shuffle_buffer_size"]),
        // Used to say "use a multiple of 0".
        (&["--cpu-devices", "0"], &["--cpu-devices", "must be at least 1"]),
        (&["--stop-after", "0"], &["--stop-after", "must be at least 1"]),
        // A sharding rule that does not apply used to leave the leaf replicated, silently.
        (
            &["--set", r#"sharding_strategy=[(".*", "shard_dim('data', 3)")]"#],
            &["sharding_strategy:", "shard_dim", "has rank"],
        ),
        // Keys bv reads only in part.
        (
            &["--set", "prefetch_to_device=0"],
            &["prefetch_to_device: must be at least 1"],
        ),
        (
            &["--set", "input.cache_raw=true"],
            &["input.cache_raw:", "page cache"],
        ),
        (
            &["--set", "mesh_allow_split_physical_axes=false"],
            &["mesh_allow_split_physical_axes:", "device-id order"],
        ),
        (
            &["--set", r#"sharding_rules=[("act_len", "data")]"#],
            &["sharding_rules.0:", "no logical-axis constraints"],
        ),
        (
            &["--set", r#"sharding_rules=[("act_batch", "model")]"#],
            &["sharding_rules.0:"],
        ),
        (
            &["--set", r#"pp_modules=["ops_imgae"]"#],
            &["pp_modules: \"ops_imgae\" is not a pp module", "did you mean \"ops_image\""],
        ),
        (
            &["--set", r#"pp_modules=["ops_image"]"#],
            &[
                "input.pp: pp op 'value_range' is registered by big_vision's pp module \"ops_general\"",
                "add it to pp_modules",
            ],
        ),
        // pp strings are checked with the config, eval ones included, with the key.
        (
            &["--set", r#"evals.test.pp_fn="decode|resiz(3)""#],
            &["evals.test.pp_fn: pp 'decode|resiz(3)', column 8: unknown op 'resiz'"],
        ),
        // §4: a remote workdir used to become a local folder named `gs:`; gs:// and s3://
        // are now buckets (test storage_buckets), any other scheme an error.
        (
            &["--workdir", "hdfs://nn/run"],
            &[
                "--workdir: \"hdfs://nn/run\": hdfs:// is not supported",
                "gs://BUCKET/PATH or s3://BUCKET/PATH",
            ],
        ),
        (
            &["--set", "model_init=ftp://host/x.npz"],
            &["model_init: \"ftp://host/x.npz\": ftp:// is not supported"],
        ),
        // §4: big_vision's checkpoint names used to fail with "No such file or directory".
        (
            &["--set", "model_init=howto-i21k-B/32"],
            &[
                "model_init \"howto-i21k-B/32\" is big_vision's name for gs://vit_models/augreg/B_32-i21k-300ep",
                "https://storage.googleapis.com/vit_models/augreg/B_32-i21k-300ep-lr_0.001-aug_light1-wd_0.1-do_0.0-sd_0.0.npz",
                "--set model_init=PATH.npz",
            ],
        ),
        // §4: a length given in a second unit names the key to unset.
        (
            &["--set", "total_epochs=2"],
            &["the config also sets total_steps = 30", "add --set total_steps=None"],
        ),
    ];
    for (extra, expected) in cases {
        let (workdir_arg, extra) = match extra {
            ["--workdir", w] => (Some(*w), &[][..]),
            _ => (None, *extra),
        };
        // model_init is read only by a run without a checkpoint.
        let resumes = !extra.iter().any(|a| a.starts_with("model_init="));
        let workdirs = if resumes {
            vec![&workdir, &missing]
        } else {
            vec![&missing]
        };
        for wd in workdirs {
            let wd = workdir_arg.map_or(wd.display().to_string(), str::to_string);
            let what = format!("{extra:?} --workdir {wd}");
            refused(command(&config, &wd, extra, dir.path()), &what, expected);
        }
        assert!(
            before == snapshot(&workdir),
            "{extra:?}: the workdir changed"
        );
        assert!(!missing.exists(), "{extra:?}: the workdir was created");
        assert!(
            !dir.path().join("hdfs:").exists() && !dir.path().join("ftp:").exists(),
            "{extra:?}: made a scheme: folder"
        );
    }
}

/// The partly supported keys at values bv honours (`prefetch_to_device` above 1 included)
/// train exactly as without them. With stderr not a terminal, each logged step prints a
/// plain progress line whose ETA leaves out the first step; the summary prints the loss as a
/// number.
#[test]
fn accepted_keys_train_as_without_them_and_progress_lines_are_printed() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let plain = dir.path().join("plain");
    let keyed = dir.path().join("keyed");
    let out = run_ok(&mut bv_train(&config, &plain, &["--stop-after", "6"]));
    run_ok(&mut bv_train(
        &config,
        &keyed,
        &[
            "--stop-after",
            "6",
            "--set",
            "prefetch_to_device=3",
            "--set",
            r#"sharding_rules=[("act_batch", "data")]"#,
            "--set",
            "mesh_allow_split_physical_axes=true",
            "--set",
            r#"pp_modules=["ops_general", "ops_image"]"#,
            "--set",
            "input.cache_raw=false",
        ],
    ));
    let (step_a, a, _) = last_checkpoint(&plain);
    let (step_b, b, _) = last_checkpoint(&keyed);
    assert_eq!((step_a, step_b), (6, 6));
    assert_bit_identical("with the accepted keys", &a, &b);

    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("step ")).collect();
    let progress: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(" img/s"))
        .collect();
    assert_eq!(progress.len(), 2, "steps 1 and {LOG_STEPS}: {stderr}");
    assert!(progress[0].starts_with("step 1/30: loss "), "{stderr}");
    assert!(progress[0].ends_with("ETA …"), "{stderr}");
    let fifth = format!("step {LOG_STEPS}/30: loss ");
    assert!(progress[1].starts_with(&fifth), "{stderr}");
    assert!(
        !progress[1].ends_with("ETA …") && progress[1].contains(", ETA "),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().next().unwrap_or_default();
    let loss = summary
        .strip_prefix("step 6: training_loss ")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(loss.parse::<f64>().is_ok(), "{stdout}");
}
