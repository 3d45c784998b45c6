//! A 2-process launch of bv-train on one machine (each process with its own CPU device):
//! process discovery through the coordination service, an even split of the training data
//! per process, and metrics, config and checkpoints written by process 0 only.
//!
//! The CPU plugin has no collectives across processes, so here each process trains its own
//! replica on its half of the data; with a TPU or GPU plugin one program spans them.

mod common;

use common::train::{metrics, spawn_job, tiny_config};

#[test]
fn two_processes_discover_each_other_and_split_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    let (children, coordinator) = spawn_job(&config, &workdir, 2, &["--stop-after", "5"]);
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for (i, o) in outs.iter().enumerate() {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "process {i} failed:\n{err}");
        // The fixture's 1000 training examples, split evenly as TFDS splits per host.
        let half = if i == 0 {
            "train[0:500]"
        } else {
            "train[500:1000]"
        };
        assert!(
            err.contains(&format!(
                "process {i} of 2, coordinator {coordinator}, training input {half}"
            )),
            "{err}"
        );
    }
    let steps: Vec<u64> = metrics(&workdir).iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![0, 1, 5], "one writer: every logged step once");
    assert!(workdir.join("config.json").is_file());
    assert!(workdir.join("checkpoint.bv-LAST").is_file());
}
