//! SIGINT and SIGTERM (issue 16 §3.7): the first signal finishes the step, writes a
//! checkpoint, says so and exits with 128 + the signal; a second exits at once; with two
//! processes, a signal to one stops both after the same step.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::train::*;

/// Sends `signal` (`TERM`, `INT`) to process `pid`.
fn kill(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

/// The step in "stopped after step N" of a run's stderr.
fn stopped_at(stderr: &str) -> u64 {
    let tail = stderr
        .split("stopped after step ")
        .nth(1)
        .unwrap_or_else(|| panic!("no stop message in: {stderr}"));
    tail.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn sigterm_finishes_the_step_writes_a_checkpoint_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    let mut child = bv_train(&config, &workdir, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut child, "the first training step", || {
        logged(&workdir, 1)
    });
    kill(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(
        err.contains("SIGTERM: stopping after the current step with a checkpoint"),
        "{err}"
    );
    let step = stopped_at(&err);
    assert!(
        err.contains(&format!(
            "bv-train: SIGTERM: stopped after step {step} with a checkpoint; run the same command to resume"
        )),
        "{err}"
    );
    assert!((1..TOTAL_STEPS).contains(&step), "{err}");
    assert_eq!(last_step(&workdir), step);
    let (ckpt_step, _, _) = last_checkpoint(&workdir);
    assert_eq!(ckpt_step, step);
    assert!(metrics(&workdir).iter().all(|r| r.step <= step));

    // The same command resumes after the stop and logs every step once.
    run_ok(&mut bv_train(&config, &workdir, &[]));
    let steps: Vec<u64> = metrics(&workdir).iter().map(|r| r.step).collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
    assert_eq!(*steps.last().unwrap(), TOTAL_STEPS);
    assert!(steps.contains(&(step + 1)), "{steps:?}");
}

#[test]
fn a_second_sigint_exits_at_once_without_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    // An existing workdir is locked first thing, so the lock file tells when the run has
    // started; both signals then land before training (compilation, evaluation).
    std::fs::create_dir(&workdir).unwrap();
    let lock = workdir.join(bv_train::workdir::LOCK_FILE);
    let mut child = bv_train(&config, &workdir, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = format!("\"pid\":{}", child.id());
    wait_for(&mut child, "the lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&pid))
    });
    kill(child.id(), "INT");
    std::thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    kill(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    let waited = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(waited < Duration::from_secs(2), "took {waited:?}: {err}");
    assert!(!err.contains("stopped after step"), "{err}");
    assert_eq!(last_step(&workdir), 0, "a checkpoint was written");
    let leftovers: Vec<_> = std::fs::read_dir(&workdir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != bv_train::workdir::LOCK_FILE)
        .collect();
    assert!(
        leftovers.iter().all(|n| n == "config.json"),
        "{leftovers:?}"
    );
}

#[test]
fn a_signal_to_one_of_two_processes_stops_both_after_the_same_step() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    let (mut children, _) = spawn_job(&config, &workdir, 2, &["--allow-independent-replicas"], &[]);
    wait_for(&mut children[0], "the first training step", || {
        logged(&workdir, 1)
    });
    kill(children[1].id(), "TERM");
    // Both must stop within a step or so (not wait out a coordination timeout).
    let deadline = Instant::now() + Duration::from_secs(120);
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        if Instant::now() > deadline {
            children.iter_mut().for_each(|c| drop(c.kill()));
            panic!("the processes did not stop within 120 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let errs: Vec<String> = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    for (o, e) in outs.iter().zip(&errs) {
        assert_eq!(o.status.code(), Some(143), "{e}");
    }
    assert!(
        errs[0].contains("SIGTERM (sent to another process of the job): stopped after step"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].contains("SIGTERM: stopped after step"),
        "{}",
        errs[1]
    );
    let (a, b) = (stopped_at(&errs[0]), stopped_at(&errs[1]));
    assert_eq!(a, b, "{errs:#?}");
    assert_eq!(last_step(&workdir), a);
    assert!(a < TOTAL_STEPS);
}
