//! Faults and bad input (issue 16 §3), each reproduced through the `bv-train` binary: two
//! runs on one workdir, an error while a step runs, an edited checkpoint manifest, a
//! missing `checkpoint.bv-LAST` and a damaged newest checkpoint, a read-only workdir, and a
//! damaged plugin in the cache.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::train::*;

/// The steps the tiny run logs when it runs `total` steps: step 0 (evaluation), the first
/// step, every log and eval step, and the first step after each of `resumed_at` (a
/// resumed run logs its first step, as train.py does).
fn logged_steps(total: u64, resumed_at: &[u64]) -> Vec<u64> {
    (0..=total)
        .filter(|s| {
            *s <= 1 || s % LOG_STEPS == 0 || s % EVAL_STEPS == 0 || resumed_at.contains(&(s - 1))
        })
        .collect()
}

fn steps(workdir: &Path) -> Vec<u64> {
    metrics(workdir).iter().map(|r| r.step).collect()
}

/// Runs `cmd` to completion and returns its exit code (`None`: killed by a signal) and
/// stderr.
fn run(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Item 1: a second run on a busy workdir refuses at once naming the holder; the first
/// run's metrics keep every line (before, one of them lost most of its lines).
#[test]
fn a_second_run_on_a_busy_workdir_refuses_and_the_first_keeps_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    let mut first = bv_train(&config, &workdir, &["--set", "total_steps=60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut first, "the first training step", || {
        logged(&workdir, 1)
    });
    let (code, err) = run(&mut bv_train(&config, &workdir, &[]));
    assert_eq!(code, Some(1), "{err}");
    let holder = format!(
        "{} is in use by another bv-train run (process {} on host ",
        workdir.display(),
        first.id()
    );
    assert!(err.contains(&holder), "{err}");
    assert!(
        !err.contains("steps ("),
        "refused only after starting: {err}"
    );
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(steps(&workdir), logged_steps(60, &[]));
}

/// Item 1: the lock a dead run left is taken over, by exactly one of two runs that start
/// together; the other refuses.
#[test]
fn of_two_runs_over_a_stale_lock_exactly_one_trains() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    std::fs::create_dir(&workdir).unwrap();
    let stale = r#"{"pid": 4000000, "host": "gone", "started": 0}"#;
    std::fs::write(workdir.join("bv-train.lock"), stale).unwrap();
    let runs: Vec<Child> = (0..2)
        .map(|_| {
            bv_train(&config, &workdir, &[])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = runs
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let ok = outs.iter().filter(|o| o.status.success()).count();
    let refused = outs.iter().filter(|o| {
        o.status.code() == Some(1)
            && String::from_utf8_lossy(&o.stderr).contains("is in use by another bv-train run")
    });
    let logs: Vec<_> = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr))
        .collect();
    assert_eq!((ok, refused.count()), (1, 1), "{logs:#?}");
    assert_eq!(steps(&workdir), logged_steps(TOTAL_STEPS, &[]));
}

/// Item 2: a corrupt record met while a step runs stops the run with its message and exit
/// code 1, never a signal (before, XLA's worker thread was still in the step when exit ran
/// the plugin's destructors: SIGSEGV in about half the runs with this config). The model is
/// the default job's, on 8 devices, so a step is long enough to be in flight.
#[test]
fn a_corrupt_record_mid_run_exits_1_with_the_message_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tfds");
    let version = data.join("fashion_mnist/3.0.1");
    std::fs::create_dir_all(&version).unwrap();
    let fixture = common::fixture_dir().join("fashion_mnist/3.0.1");
    for e in std::fs::read_dir(&fixture).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), version.join(e.file_name())).unwrap();
    }
    let shard = version.join("fashion_mnist-train.tfrecord-00000-of-00001");
    let mut bytes = std::fs::read(&shard).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&shard, bytes).unwrap();
    let config = tiny_config(dir.path());
    let model = r#"model={"patch_size": [4, 4], "width": 64, "depth": 4, "mlp_dim": 128, "num_heads": 4, "pool_type": "gap", "posemb": "learn"}"#;
    for run_index in 0..5 {
        let workdir = dir.path().join(format!("w{run_index}"));
        let (code, err) = run(Command::new(env!("CARGO_BIN_EXE_bv-train"))
            .args(["--config".as_ref(), config.as_os_str()])
            .args(["--workdir".as_ref(), workdir.as_os_str()])
            .args(["--data-dir".as_ref(), data.as_os_str()])
            .args(["--cpu-devices", "8", "--set", model])
            .args([
                "--set",
                "input.batch_size=128",
                "--set",
                "evals.test.batch_size=200",
            ]));
        assert_eq!(code, Some(1), "run {run_index}: {err}");
        let want = format!("corrupted shard {}", shard.display());
        assert!(
            err.contains(&want) && err.contains("data checksum mismatch"),
            "run {run_index}: {err}"
        );
        assert!(
            logged(&workdir, 1),
            "run {run_index} failed before training"
        );
    }
}

/// Item 3: an edited step, or data position, in the manifest of the checkpoint to resume
/// from is refused (before, the run resumed at the edited step and skipped the steps
/// between).
#[test]
fn an_edited_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    run_ok(&mut bv_train(&config, &workdir, &["--stop-after", "10"]));
    let manifest = workdir.join("checkpoint.bv-000000010-tmp/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let examples = v["extra"]["position"]["examples"].to_string();
    assert_eq!(examples, "160", "{text}");
    let edits = [
        ("\"step\": 10\n", "\"step\": 12\n"),
        ("\"examples\": 160", "\"examples\": 192"),
    ];
    for (from, to) in edits {
        assert!(text.contains(from), "{text}");
        std::fs::write(&manifest, text.replacen(from, to, 1)).unwrap();
        let before = snapshot(&workdir);
        let (code, err) = run(&mut bv_train(&config, &workdir, &[]));
        assert_eq!(code, Some(1), "{from} -> {to}: {err}");
        let want = format!("{}: the manifest's checksum is ", manifest.display());
        assert!(err.contains(&want), "{from} -> {to}: {err}");
        assert!(
            snapshot(&workdir) == before,
            "a refused run changed the workdir"
        );
    }
}

/// Item 4: without `checkpoint.bv-LAST` a run resumes from the newest complete checkpoint
/// and says so (before, it started again at step 0 and emptied the metrics file); with the
/// newest checkpoint damaged it refuses, naming the older one and the command that resumes
/// from it, which then works.
#[test]
fn a_missing_last_resumes_from_the_newest_and_a_damaged_one_names_an_older() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    run_ok(&mut bv_train(&config, &workdir, &["--stop-after", "13"]));
    let lines = |w: &Path| {
        std::fs::read_to_string(w.join(bv_train::metrics::METRICS_FILE))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let first = lines(&workdir);
    std::fs::remove_file(workdir.join("checkpoint.bv-LAST")).unwrap();
    let out = run_ok(&mut bv_train(&config, &workdir, &["--stop-after", "20"]));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "has no checkpoint.bv-LAST; resuming from the newest complete checkpoint, {}",
        workdir.join("checkpoint.bv-000000013-tmp").display()
    );
    assert!(err.contains(&want), "{err}");
    assert_eq!(lines(&workdir)[..first.len()], first[..]);
    assert_eq!(steps(&workdir), logged_steps(20, &[13]));

    // LAST is step 20 now; the last kept checkpoint is step 12.
    let newest = workdir.join("checkpoint.bv-000000020-tmp");
    let kernel = "params~head~kernel.zst";
    std::fs::write(newest.join(kernel), b"damaged").unwrap();
    let before = snapshot(&workdir);
    let (code, err) = run(&mut bv_train(&config, &workdir, &[]));
    assert_eq!(code, Some(1), "{err}");
    let last = workdir.join("checkpoint.bv-LAST");
    let fix = format!("echo 000000012 > {}", last.display());
    assert!(
        err.contains(&format!("cannot resume from {}", newest.display()))
            && err.contains(kernel)
            && err.contains(
                "the newest complete checkpoint before it is checkpoint.bv-000000012 (step 12)"
            )
            && err.contains(&fix),
        "{err}"
    );
    assert!(
        snapshot(&workdir) == before,
        "a refused run changed the workdir"
    );
    std::fs::write(&last, "000000012\n").unwrap();
    run_ok(&mut bv_train(&config, &workdir, &[]));
    assert_eq!(steps(&workdir), logged_steps(TOTAL_STEPS, &[12]));
}

/// Item 4: a run that starts from scratch over the metrics of an earlier one (which left no
/// checkpoint) keeps those lines in `big_vision_metrics.txt.old` and says so.
#[test]
fn metrics_of_a_run_without_checkpoints_are_kept_when_a_new_one_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    run_ok(&mut bv_train(&config, &workdir, &["--stop-after", "5"]));
    let text = std::fs::read_to_string(workdir.join(bv_train::metrics::METRICS_FILE)).unwrap();
    for e in std::fs::read_dir(&workdir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("checkpoint.bv-")
        {
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    let out = run_ok(&mut bv_train(&config, &workdir, &["--stop-after", "1"]));
    let err = String::from_utf8_lossy(&out.stderr);
    let old = workdir.join("big_vision_metrics.txt.old");
    let want = format!(
        "no checkpoint to resume from, so training starts at step 0; the 3 lines of the earlier big_vision_metrics.txt are kept in {}",
        old.display()
    );
    assert!(err.contains(&want), "{err}");
    assert_eq!(std::fs::read_to_string(&old).unwrap(), text);
    assert_eq!(steps(&workdir), vec![0, 1]);
}

/// Item 8: a new workdir on a read-only file system fails with the path in the message
/// (before: only "Read-only file system (os error 30)"). Needs `unshare` to mount one.
#[test]
fn a_read_only_workdir_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let mount = dir.path().join("ro");
    std::fs::create_dir(&mount).unwrap();
    let workdir = mount.join("w");
    let probe = Command::new("unshare")
        .args(["-rm", "sh", "-c"])
        .arg(format!("mount -t tmpfs -o ro none {}", mount.display()))
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP: cannot mount a read-only file system here (unshare -rm): {probe:?}");
        return;
    }
    let train = bv_train(&config, &workdir, &[]);
    let args: Vec<String> = std::iter::once(train.get_program())
        .chain(train.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    let script = format!(
        "mount -t tmpfs -o ro none {} && exec {}",
        mount.display(),
        args.join(" ")
    );
    let (code, err) = run(Command::new("unshare").args(["-rm", "sh", "-c", &script]));
    assert_eq!(code, Some(1), "{err}");
    let want = format!("{}: Read-only file system (os error 30)", workdir.display());
    assert!(err.contains(&want), "{err}");
}

/// Item 5: a damaged plugin in the cache (cut short) is found before `dlopen`, fetched again
/// and the run goes on (before, every run died of SIGBUS with no message).
#[test]
fn a_damaged_cached_plugin_is_fetched_again() {
    use bv_core::pjrt::provision;
    let good = provision::cpu_plugin().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let package = provision::LAMMPS_CPU;
    let relative = provision::cached_path(&package)
        .strip_prefix(provision::cache_dir())
        .unwrap()
        .to_path_buf();
    let cached = cache.join(relative);
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&cached, &bytes[..bytes.len() / 3]).unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    let out = run_ok(
        bv_train(&config, &workdir, &["--stop-after", "1"])
            .env(provision::CACHE_ENV, &cache)
            .env_remove(provision::PLUGIN_ENV)
            .env_remove(provision::CPU_PACKAGE_ENV)
            .env("BV_COMPILATION_CACHE_DIR", "off"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("the cached CPU plugin {} is damaged (", cached.display());
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("fetched the CPU PJRT plugin"), "{err}");
    assert_eq!(
        provision::sha256_file(&cached).unwrap(),
        package.plugin_sha256
    );
}
