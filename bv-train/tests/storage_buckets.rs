//! Workdirs, TFDS data and `model_init` files in buckets, against local emulators (moto for
//! s3://, fake-gcs-server for gs://; see `common/buckets.rs`), each test for both schemes:
//! a run killed with SIGKILL and resumed from a bucket workdir ends bit for bit where an
//! uninterrupted local run ends and logs the same steps; a dataset put in a bucket reads as
//! the local one; a `model_init` in a bucket is what the run starts from; a checkpoint in a
//! bucket whose manifest is missing is never loaded.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use bv_train::checkpoint::{self, Checkpoint, CheckpointError};
use bv_train::data::TfdsDataset;
use bv_train::metrics::Record;
use bv_train::storage;
use common::buckets::{emulators, forget_cached, upload_dir, Emulators};
use common::train::*;

/// What the uninterrupted local run leaves, shared by the tests of this file.
struct Reference {
    workdir: PathBuf,
    leaves: Leaves,
    records: Vec<Record>,
    _dir: tempfile::TempDir,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let workdir = dir.path().join("workdir");
        run_ok(&mut bv_train(&tiny_config(dir.path()), &workdir, &[]));
        let (step, leaves, _) = last_checkpoint(&workdir);
        assert_eq!(step, TOTAL_STEPS);
        Reference {
            records: metrics(&workdir),
            workdir,
            leaves,
            _dir: dir,
        }
    })
}

/// `bv-train` with the tiny config on `workdir` reading `data_dir`, reaching the emulators.
fn bv_train_at(emu: &Emulators, config: &Path, workdir: &str, data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bv-train"));
    cmd.arg("--config")
        .arg(config)
        .args(["--workdir", workdir, "--data-dir"])
        .arg(data_dir)
        .envs(emu.env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// The step the bucket workdir's LAST names, if any.
fn last_in(workdir: &Path) -> Option<u64> {
    let text = storage::read_opt(&workdir.join("checkpoint.bv-LAST")).ok()??;
    let text = String::from_utf8(text).unwrap();
    text.trim().trim_end_matches("-tmp").parse().ok()
}

/// Trains in `workdir` (a bucket URL), kills the run with SIGKILL once a checkpoint is in
/// the bucket, resumes it to the end, and checks the result against the local reference.
fn kill_and_resume(emu: &Emulators, workdir: &str, data_dir: &Path) {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let w = Path::new(workdir);

    let mut child = bv_train_at(emu, &config, workdir, data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut child, "a checkpoint in the bucket", || {
        last_in(w).is_some_and(|s| s >= CKPT_STEPS)
    });
    child.kill().unwrap(); // SIGKILL
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is in a bucket, where bv-train takes no workdir lock"),
        "{stderr}"
    );
    let killed_at = last_in(w).unwrap();
    assert!(killed_at < TOTAL_STEPS, "the run ended before the kill");

    let out = run_ok(&mut bv_train_at(emu, &config, workdir, data_dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let resumed = format!("step {}/{TOTAL_STEPS}", killed_at + 1);
    assert!(stderr.contains(&resumed), "{stderr}");

    let (step, leaves, _) = last_checkpoint(w);
    assert_eq!(step, TOTAL_STEPS, "{workdir}");
    assert_bit_identical(workdir, &reference.leaves, &leaves);
    let config_json = storage::read(&w.join("config.json")).unwrap();
    serde_json::from_slice::<serde_json::Value>(&config_json).unwrap();

    // Every step the uninterrupted run logged, once, with its values.
    let records = metrics(w);
    let steps: Vec<u64> = records.iter().map(|r| r.step).collect();
    assert!(steps.windows(2).all(|s| s[0] < s[1]), "{steps:?}");
    for want in &reference.records {
        let got = records.iter().find(|r| r.step == want.step);
        let got = got.unwrap_or_else(|| panic!("{workdir}: step {} not logged", want.step));
        for key in ["training_loss", "l2_params", "test/prec@1"] {
            assert_eq!(
                values(got).get(key),
                values(want).get(key),
                "{workdir}: step {}: {key}",
                want.step
            );
        }
    }
    // Rotated checkpoints are gone from the bucket; the kept one and the last remain.
    let names: BTreeSet<String> = storage::list(w)
        .unwrap()
        .into_iter()
        .filter(|e| e.is_dir)
        .map(|e| e.name)
        .collect();
    let want: BTreeSet<String> = [KEEP_CKPT_STEPS, 24, TOTAL_STEPS]
        .iter()
        .map(|s| checkpoint::dir_name(*s, true))
        .collect();
    assert_eq!(names, want, "{workdir}");
}

/// The TFDS fixture put under `data` (a bucket URL) reads as the local one, record for
/// record.
fn assert_bucket_dataset(data: &Path) {
    upload_dir(&common::fixture_dir(), data);
    let local = TfdsDataset::open("fashion_mnist", Some(&common::fixture_dir())).unwrap();
    let remote = TfdsDataset::open("fashion_mnist", Some(data)).unwrap();
    for split in ["train", "test"] {
        let records = |ds: &TfdsDataset| -> Vec<Vec<u8>> {
            let reads = ds.reads(&ds.ranges(split).unwrap());
            ds.stream(&reads, Default::default())
                .map(|r| r.unwrap().data)
                .collect()
        };
        let (a, b) = (records(&local), records(&remote));
        assert_eq!(a.len(), if split == "train" { 1000 } else { 200 });
        assert!(a == b, "{}: {split}: records differ", data.display());
    }
}

/// A dataset in a `scheme` bucket reads as the local one; a run with its workdir in that
/// bucket and this data is killed and resumed; deleting the data's prefix empties it.
fn workdir_and_data_killed_and_resumed(emu: &Emulators, scheme: &str) {
    let bucket = emu.bucket(scheme, "train");
    let data = PathBuf::from(format!("{bucket}/tfds"));
    assert_bucket_dataset(&data);
    kill_and_resume(emu, &format!("{bucket}/w"), &data);
    storage::remove_dir_all(&data).unwrap();
    assert_eq!(storage::list(&data).unwrap(), vec![]);
    forget_cached(&bucket);
}

#[test]
fn s3_workdir_and_data_killed_and_resumed() {
    let Some(emu) = emulators() else { return };
    workdir_and_data_killed_and_resumed(emu, "s3");
}

#[test]
fn gs_workdir_and_data_killed_and_resumed() {
    let Some(emu) = emulators() else { return };
    workdir_and_data_killed_and_resumed(emu, "gs");
}

/// The L2 norm of every array of an `.npz` of float32 arrays, in float64.
fn l2_of_npz(path: &Path) -> f64 {
    let file = std::fs::File::open(path).unwrap();
    let names: Vec<String> = zip::ZipArchive::new(file)
        .unwrap()
        .file_names()
        .map(|n| n.trim_end_matches(".npy").to_string())
        .collect();
    let sum: f64 = names
        .iter()
        .flat_map(|n| common::npz(path, n).f32())
        .map(|x| f64::from(x) * f64::from(x))
        .sum();
    sum.sqrt()
}

/// A run with `model_init` in a `scheme` bucket starts from that file's parameters.
fn model_init_is_read_from(emu: &Emulators, scheme: &str) {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let npz = dir.path().join("trained.npz");
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_bv-train"))
            .arg("export")
            .arg(&reference.workdir)
            .arg("--out")
            .arg(&npz),
    );
    let bucket = emu.bucket(scheme, "init");
    let init = format!("{bucket}/models/trained.npz");
    storage::write_atomic(Path::new(&init), &std::fs::read(&npz).unwrap()).unwrap();

    // With lr and wd 0 the parameters stay those loaded, so the first logged l2_params is the
    // norm of the uploaded file's arrays (computed here in float64); a fresh init's differs.
    let config = tiny_config(dir.path());
    let set = |kv: &str| ["--set".to_string(), kv.to_string()];
    let mut cmd = bv_train_at(
        emu,
        &config,
        dir.path().join("w").to_str().unwrap(),
        &common::fixture_dir(),
    );
    cmd.args(set(&format!("model_init={init}")))
        .args(set("lr=0"))
        .args(set("wd=0"))
        .args(set("total_steps=2"))
        .args(set("schedule.warmup_steps=0"));
    run_ok(&mut cmd);
    let l2 = |records: &[Record]| {
        let first = records
            .iter()
            .find_map(|r| values(r).get("l2_params").copied());
        first.expect("a logged l2_params")
    };
    let got = l2(&metrics(&dir.path().join("w")));
    let want = l2_of_npz(&npz);
    assert!(
        (got - want).abs() <= 1e-5 * want,
        "l2_params {got}, the bucket's npz has {want}"
    );
    let fresh = l2(&reference.records);
    assert!((fresh - want).abs() > 1e-3 * want, "{fresh} vs {want}");
    forget_cached(&bucket);
}

#[test]
fn model_init_is_read_from_s3() {
    let Some(emu) = emulators() else { return };
    model_init_is_read_from(emu, "s3");
}

#[test]
fn model_init_is_read_from_gs() {
    let Some(emu) = emulators() else { return };
    model_init_is_read_from(emu, "gs");
}

fn tiny_checkpoint(step: u64) -> Checkpoint {
    let a = bv_core::io::HostArray::from_slice(&[step as f32; 6], &[2, 3]).unwrap();
    Checkpoint {
        step,
        leaves: vec![("params/w".into(), a)],
        extra: serde_json::json!({"position": step}),
    }
}

#[test]
fn a_bucket_checkpoint_without_its_manifest_is_not_trusted() {
    let Some(emu) = emulators() else { return };
    for scheme in ["s3", "gs"] {
        let bucket = emu.bucket(scheme, "manifest");
        let w = PathBuf::from(format!("{bucket}/w"));
        checkpoint::save(&w, &tiny_checkpoint(3), true).unwrap();
        let second = checkpoint::save(&w, &tiny_checkpoint(6), false).unwrap();
        assert_eq!(
            checkpoint::load_latest(&w).unwrap().unwrap().checkpoint,
            tiny_checkpoint(6)
        );

        // LAST names step 6, whose manifest is gone: an error naming it, and the way back
        // to step 3, never the blocks without their manifest.
        let manifest = second.join("manifest.json");
        storage::remove_dir_all(&second).unwrap();
        storage::write_atomic(&second.join("params~w.zst"), b"\x28\xb5").unwrap();
        let e = checkpoint::load_latest(&w).unwrap_err();
        assert!(matches!(e, CheckpointError::Unusable { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(&manifest.display().to_string()), "{msg}");
        assert!(msg.contains("checkpoint.bv-000000003 (step 3)"), "{msg}");
        assert!(msg.contains("cp - "), "{msg}");

        // A save cut before its manifest (blocks only) while LAST still names step 3:
        // step 3 is loaded, and the next save of step 6 replaces the cut one.
        storage::write_atomic(&w.join("checkpoint.bv-LAST"), b"000000003").unwrap();
        let latest = checkpoint::load_latest(&w).unwrap().unwrap();
        assert_eq!(latest.checkpoint, tiny_checkpoint(3));
        checkpoint::save(&w, &tiny_checkpoint(6), false).unwrap();
        assert_eq!(
            checkpoint::load_latest(&w).unwrap().unwrap().checkpoint,
            tiny_checkpoint(6)
        );
    }
}
