//! Helpers for the trainer tests: a tiny ViT config on the TFDS fixture, the built
//! `bv-train` binary, and readers of what a run leaves in its workdir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bv_train::metrics::Record;

/// Training steps of the tiny run (batch 16 over the fixture's 1000 training examples).
pub const TOTAL_STEPS: u64 = 30;
/// Training metrics are logged at step 1 and every this many steps.
pub const LOG_STEPS: u64 = 5;
/// The test split is evaluated before training, every this many steps and at the end.
pub const EVAL_STEPS: u64 = 15;
/// Checkpoint cadence (`-tmp`, rotated) and kept checkpoints.
pub const CKPT_STEPS: u64 = 3;
pub const KEEP_CKPT_STEPS: u64 = 12;
/// Warmup of the cosine schedule.
pub const WARMUP_STEPS: u64 = 5;

/// The metric names big_vision's train.py logs with every training log line.
pub const TRAINING_METRICS: [&str; 11] = [
    "training_loss",
    "l2_grads",
    "l2_params",
    "l2_updates",
    "global_schedule",
    "img/sec/core",
    "examples_seen",
    "epoch",
    "progress",
    "uptime",
    "core_hours",
];

/// Writes the tiny config (a 1-block ViT of width 16 on 7×7 patches) into `dir`.
pub fn tiny_config(dir: &Path) -> PathBuf {
    let pp = r#"decode(channels=1)|value_range(-1, 1)|onehot(10, key="label", key_result="labels")|keep("image", "labels")"#;
    let text = format!(
        r##"// A tiny ViT on the Fashion-MNIST fixture, written by bv-train's tests.
(
    seed: 0,
    total_steps: {TOTAL_STEPS},
    num_classes: 10,
    loss: "softmax_xent",
    input: (
        data: (name: "fashion_mnist", split: "train"),
        batch_size: 16,
        shuffle_buffer_size: 200,
        pp: r#"{pp}"#,
    ),
    log_training_steps: {LOG_STEPS},
    ckpt_steps: {CKPT_STEPS},
    keep_ckpt_steps: {KEEP_CKPT_STEPS},
    model_name: "vit",
    model: {{"patch_size": [7, 7], "width": 16, "depth": 1, "mlp_dim": 32, "num_heads": 2, "pool_type": "gap"}},
    optax_name: "scale_by_adam",
    grad_clip_norm: 1.0,
    lr: 0.01,
    wd: 0.0001,
    schedule: (decay_type: "cosine", warmup_steps: {WARMUP_STEPS}),
    evals: {{
        "test": (
            type: "classification",
            data: (name: "fashion_mnist", split: "test"),
            pp_fn: r#"{pp}"#,
            log_steps: {EVAL_STEPS},
            batch_size: 100,
        ),
    }},
)
"##
    );
    let path = dir.join("tiny.ron");
    std::fs::write(&path, text).unwrap();
    path
}

/// `bv-train --config CONFIG --workdir WORKDIR --data-dir <fixture> EXTRA...`.
pub fn bv_train(config: &Path, workdir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bv-train"));
    cmd.arg("--config")
        .arg(config)
        .arg("--workdir")
        .arg(workdir)
        .arg("--data-dir")
        .arg(super::fixture_dir())
        .args(extra);
    cmd
}

/// Runs `cmd` to completion and checks that it succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The records of the workdir's `big_vision_metrics.txt`.
pub fn metrics(workdir: &Path) -> Vec<Record> {
    bv_train::metrics::read_metrics(workdir.join(bv_train::metrics::METRICS_FILE)).unwrap()
}

/// One record's values by name (null values dropped).
pub fn values(r: &Record) -> BTreeMap<&str, f64> {
    r.values
        .iter()
        .filter_map(|(k, v)| v.map(|v| (k.as_str(), v)))
        .collect()
}

/// The step `checkpoint.bv-LAST` points at (0 without one).
pub fn last_step(workdir: &Path) -> u64 {
    match std::fs::read_to_string(workdir.join("checkpoint.bv-LAST")) {
        Ok(s) => s.trim().trim_end_matches("-tmp").parse().unwrap(),
        Err(_) => 0,
    }
}

/// The LAST checkpoint's leaves as (name, dtype, shape, raw bytes), and its step.
pub type Leaves = Vec<(String, String, Vec<usize>, Vec<u8>)>;
pub fn last_checkpoint(workdir: &Path) -> (u64, Leaves, serde_json::Value) {
    let c = bv_train::checkpoint::load_last(workdir)
        .unwrap()
        .expect("the workdir has a LAST checkpoint");
    let leaves = c
        .leaves
        .iter()
        .map(|(n, a)| {
            (
                n.clone(),
                a.dtype().name().to_string(),
                a.shape().to_vec(),
                a.bytes().to_vec(),
            )
        })
        .collect();
    (c.step, leaves, c.extra)
}

/// Asserts that two checkpoints hold the same leaves, bit for bit.
pub fn assert_bit_identical(what: &str, a: &Leaves, b: &Leaves) {
    let names = |l: &Leaves| l.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(a), names(b), "{what}: leaf names differ");
    for (x, y) in a.iter().zip(b) {
        assert_eq!((&x.1, &x.2), (&y.1, &y.2), "{what}: leaf {} differs", x.0);
        if x.3 != y.3 {
            let n = x.3.iter().zip(&y.3).filter(|(p, q)| p != q).count();
            panic!("{what}: leaf {} differs in {n} of {} bytes", x.0, x.3.len());
        }
    }
}

/// Every file and folder under `dir`: relative path → (contents, modification time); a
/// folder has no contents. The workdir lock file is left out: every run that starts
/// writes its name into it.
pub type Snapshot = BTreeMap<PathBuf, (Option<Vec<u8>>, std::time::SystemTime)>;
pub fn snapshot(dir: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p == dir.join(bv_train::workdir::LOCK_FILE) {
                continue;
            }
            let modified = p.metadata().unwrap().modified().unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel, (None, modified));
                stack.push(p);
            } else {
                out.insert(rel, (Some(std::fs::read(&p).unwrap()), modified));
            }
        }
    }
    out
}

/// Waits (polling) until `ready` holds, failing if the child exits first or after 120 s.
pub fn wait_for(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("bv-train exited ({status}) before {what}");
        }
        assert!(Instant::now() < deadline, "no {what} within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the workdir's metrics hold a line of `step` or later.
pub fn logged(workdir: &Path, step: u64) -> bool {
    let path = workdir.join(bv_train::metrics::METRICS_FILE);
    bv_train::metrics::read_metrics(path).is_ok_and(|r| r.iter().any(|r| r.step >= step))
}

/// Starts a job of `n` `bv-train` processes on this machine (coordinator on a free loopback
/// port), each with `extra` flags and `env`, their stdout and stderr piped; returns them and
/// the coordinator address.
pub fn spawn_job(
    config: &Path,
    workdir: &Path,
    n: usize,
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> (Vec<Child>, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let coordinator = format!("127.0.0.1:{port}");
    let children = (0..n)
        .map(|i| {
            let (id, count) = (i.to_string(), n.to_string());
            let flags = [
                "--coordinator",
                &coordinator,
                "--num-processes",
                &count,
                "--process-id",
                &id,
            ];
            bv_train(config, workdir, &flags)
                .args(extra)
                .envs(env.iter().copied())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    (children, coordinator)
}

/// Runs a job as [`spawn_job`] does and returns each process's output, in order.
pub fn run_job(
    config: &Path,
    workdir: &Path,
    n: usize,
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Vec<Output> {
    spawn_job(config, workdir, n, extra, env)
        .0
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}
