//! Two processes of bv-train on one machine with the CPU plugin, which has no collectives
//! across processes: refused with a clear message, since each process would train a
//! separate replica; with `--allow-independent-replicas` they do so on purpose, each on its
//! half of the data, with metrics, config and checkpoints written by process 0 only.
//! (`train_multihost.rs` runs one job over both processes on the PJRT test plugin.)

mod common;

use common::train::{metrics, run_job, tiny_config};

#[test]
fn cpu_processes_refuse_to_train_separate_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    let outs = run_job(&config, &workdir, 2, &["--stop-after", "5"], &[]);
    for (i, o) in outs.iter().enumerate() {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "process {i} trained:\n{err}");
        assert!(
            err.contains("2 processes, but the PJRT plugin")
                && err.contains("has no collectives across processes: each process would train a separate replica")
                && err.contains("--allow-independent-replicas"),
            "process {i}:\n{err}"
        );
    }
    assert!(!workdir.exists(), "nothing is written before the refusal");
}

#[test]
fn independent_replicas_on_request_split_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    let extra = ["--stop-after", "5", "--allow-independent-replicas"];
    let outs = run_job(&config, &workdir, 2, &extra, &[]);
    for (i, o) in outs.iter().enumerate() {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "process {i} failed:\n{err}");
        assert!(
            err.contains(&format!(
                "--allow-independent-replicas: process {i} trains a replica of its own"
            )),
            "{err}"
        );
        // The fixture's 1000 training examples, split evenly as TFDS splits per host.
        let half = if i == 0 {
            "train[0:500]"
        } else {
            "train[500:1000]"
        };
        assert!(
            err.contains(&format!("process {i} of 2, coordinator 127.0.0.1:"))
                && err.contains(&format!("training input {half}")),
            "{err}"
        );
    }
    let steps: Vec<u64> = metrics(&workdir).iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![0, 1, 5], "one writer: every logged step once");
    assert!(workdir.join("config.json").is_file());
    assert!(workdir.join("checkpoint.bv-LAST").is_file());
}
