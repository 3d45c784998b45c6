//! Checkpoints: round trip, big_vision's layout and rotation, leftovers of interrupted
//! saves, damaged files, edited manifests and swapped files (checksums), the checkpoint to
//! resume from without `checkpoint.bv-LAST`, and a writer process killed with SIGKILL at
//! random moments.

mod common;

use std::path::Path;
use std::time::Duration;

use bv_core::io::HostArray;
use bv_train::checkpoint::{
    dir_name, load, load_last, load_latest, save, Checkpoint, CheckpointError,
};

/// A checkpoint whose content is a function of the step, so a loaded one can be verified.
fn ckpt(step: u64) -> Checkpoint {
    let n = 200_000 + step as usize % 7;
    let kernel: Vec<f32> = (0..n)
        .map(|i| (i as f32 * 0.37 + step as f32).sin())
        .collect();
    let mu: Vec<half::bf16> = (0..n)
        .map(|i| half::bf16::from_f32(i as f32 / (step + 1) as f32))
        .collect();
    Checkpoint {
        step,
        leaves: vec![
            (
                "params/Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel".into(),
                HostArray::from_slice(&kernel, &[n]).unwrap(),
            ),
            (
                "opt/adam/mu/x".into(),
                HostArray::from_slice(&mu, &[1, n]).unwrap(),
            ),
            (
                "opt/count".into(),
                HostArray::from_slice(&[step as i32], &[]).unwrap(),
            ),
            (
                "mask".into(),
                HostArray::from_slice(&[true, false], &[2]).unwrap(),
            ),
        ],
        extra: serde_json::json!({"data": {"epoch": 0, "position": step * 64}, "chrono": {"accum_train_time": 1.5}}),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn round_trip_and_big_vision_layout() {
    let w = tempfile::tempdir().unwrap();
    assert!(load_last(w.path()).unwrap().is_none());
    let dir = save(w.path(), &ckpt(1), false).unwrap();
    assert_eq!(dir, w.path().join("checkpoint.bv-000000001-tmp"));
    assert_eq!(
        std::fs::read_to_string(w.path().join("checkpoint.bv-LAST")).unwrap(),
        "000000001-tmp"
    );
    assert_eq!(load_last(w.path()).unwrap().unwrap(), ckpt(1));
    assert!(names(&dir)
        .contains(&"params~Transformer~encoderblock_0~MlpBlock_0~Dense_0~kernel.zst".to_string()));

    save(w.path(), &ckpt(2), true).unwrap();
    save(w.path(), &ckpt(3), false).unwrap();
    save(w.path(), &ckpt(4), false).unwrap();
    // Rotated: only the kept one and the current -tmp remain.
    assert_eq!(
        names(w.path()),
        vec![
            "checkpoint.bv-000000002",
            "checkpoint.bv-000000004-tmp",
            "checkpoint.bv-LAST"
        ]
    );
    assert_eq!(load_last(w.path()).unwrap().unwrap(), ckpt(4));
    assert_eq!(load(w.path().join(dir_name(2, true))).unwrap(), ckpt(2));
    let e = save(w.path(), &ckpt(4), true).unwrap_err();
    assert!(matches!(e, CheckpointError::Exists { step: 4, .. }), "{e}");
}

#[test]
fn leftovers_of_a_crash_do_not_hide_the_last_good_checkpoint() {
    let w = tempfile::tempdir().unwrap();
    save(w.path(), &ckpt(5), false).unwrap();
    // A save of step 6 killed at various points: staging folder with a partial file, a
    // finished folder that never became LAST, and a pointer file not yet renamed.
    let staging = w.path().join("checkpoint.bv-000000007-tmp.writing");
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("opt~count.part"), b"\x28\xb5").unwrap();
    let half = w.path().join("checkpoint.bv-000000006-tmp");
    std::fs::create_dir(&half).unwrap();
    std::fs::write(half.join("mask.zst"), b"junk").unwrap();
    std::fs::write(w.path().join("checkpoint.bv-CUR"), b"000000006-tmp").unwrap();
    assert_eq!(load_last(w.path()).unwrap().unwrap(), ckpt(5));
    // The next save clears them.
    save(w.path(), &ckpt(8), false).unwrap();
    assert_eq!(
        names(w.path()),
        vec!["checkpoint.bv-000000008-tmp", "checkpoint.bv-LAST"]
    );
}

#[test]
fn damage_is_reported_with_the_file() {
    let w = tempfile::tempdir().unwrap();
    let dir = save(w.path(), &ckpt(3), true).unwrap();
    let leaf = dir.join("opt~adam~mu~x.zst");
    let mut bytes = std::fs::read(&leaf).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&leaf, &bytes).unwrap();
    let e = load_last(w.path()).unwrap_err().to_string();
    assert!(e.contains("opt~adam~mu~x.zst"), "{e}");

    std::fs::remove_file(&leaf).unwrap();
    let e = load_last(w.path()).unwrap_err().to_string();
    assert!(e.contains("opt~adam~mu~x.zst"), "{e}");

    std::fs::write(dir.join("manifest.json"), b"{\"format\": ").unwrap();
    let e = load_last(w.path()).unwrap_err().to_string();
    assert!(e.contains("manifest.json: invalid manifest"), "{e}");

    std::fs::write(w.path().join("checkpoint.bv-LAST"), b"latest").unwrap();
    let e = load_last(w.path()).unwrap_err().to_string();
    assert!(e.contains("checkpoint.bv-LAST: expected a step"), "{e}");

    let mut bad = ckpt(9);
    bad.leaves[0].0 = "params/a~b".into();
    let e = save(w.path(), &bad, false).unwrap_err();
    assert!(matches!(e, CheckpointError::LeafName(_)), "{e}");
}

/// Issue 16 §3.3: an edited step or data position in the manifest, and a block file swapped
/// for a valid one of another checkpoint, are refused; format 2 (no checksums) still loads.
#[test]
fn edits_and_swapped_files_are_refused_by_checksums() {
    let w = tempfile::tempdir().unwrap();
    let dir = save(w.path(), &ckpt(3), true).unwrap();
    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let edits = [
        ("\"step\": 3\n", "\"step\": 4\n"),
        ("\"position\": 192", "\"position\": 193"),
    ];
    for (from, to) in edits {
        assert!(text.contains(from), "{text}");
        std::fs::write(&manifest, text.replacen(from, to, 1)).unwrap();
        let e = load_last(w.path()).unwrap_err().to_string();
        assert!(
            e.contains("manifest.json: the manifest's checksum is") && e.contains("changed"),
            "{from} -> {to}: {e}"
        );
    }
    // Resealed by hand, a step the folder's name contradicts is still refused.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["step"] = 4.into();
    common::reseal_manifest(&manifest, v);
    let e = load_last(w.path()).unwrap_err().to_string();
    assert!(
        e.contains("the manifest says step 4 but the folder is named for step 3"),
        "{e}"
    );
    std::fs::write(&manifest, &text).unwrap();
    assert_eq!(load_last(w.path()).unwrap().unwrap(), ckpt(3));

    // Step 10 has leaves of the same shapes: its kernel file is valid zstd of the right size.
    let other = tempfile::tempdir().unwrap();
    let dir10 = save(other.path(), &ckpt(10), true).unwrap();
    let kernel = "params~Transformer~encoderblock_0~MlpBlock_0~Dense_0~kernel.zst";
    std::fs::copy(dir10.join(kernel), dir.join(kernel)).unwrap();
    let e = load_last(w.path()).unwrap_err().to_string();
    assert!(
        e.contains(kernel) && e.contains("checksum differs from the manifest's"),
        "{e}"
    );

    // A checkpoint of format 2 has no checksums and loads as before.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("checksum");
    v["format"] = "bv-checkpoint-2".into();
    for leaf in v["leaves"].as_array_mut().unwrap() {
        for b in leaf["blocks"].as_array_mut().unwrap() {
            b.as_object_mut().unwrap().remove("sha256");
        }
    }
    std::fs::write(&manifest, v.to_string()).unwrap();
    std::fs::copy(dir10.join(kernel), dir.join(kernel)).unwrap();
    let c = load_last(w.path()).unwrap().unwrap();
    assert_eq!(c.step, 3);
}

/// The manifest's checksum covers floats in `extra` (timings): they read back exactly.
#[test]
fn floats_in_extra_read_back_exactly() {
    let w = tempfile::tempdir().unwrap();
    let mut c = ckpt(2);
    let floats: Vec<f64> = (1..2000)
        .map(|i| (f64::from(i) * 0.37).sin() * 1e3 / 7.0)
        .collect();
    c.extra["chrono"]["times"] = serde_json::json!(floats);
    save(w.path(), &c, true).unwrap();
    assert_eq!(load_last(w.path()).unwrap().unwrap(), c);
}

/// Issue 16 §3.4: without `checkpoint.bv-LAST` the newest complete checkpoint is resumed
/// from; a damaged newest one names the newest older complete one and how to use it.
#[test]
fn latest_without_pointer_and_advice_for_a_damaged_one() {
    let w = tempfile::tempdir().unwrap();
    assert!(load_latest(w.path()).unwrap().is_none());
    save(w.path(), &ckpt(4), true).unwrap();
    save(w.path(), &ckpt(6), true).unwrap();
    let last = save(w.path(), &ckpt(8), false).unwrap();
    std::fs::remove_file(w.path().join("checkpoint.bv-LAST")).unwrap();
    let latest = load_latest(w.path()).unwrap().unwrap();
    assert!(latest.without_pointer);
    assert_eq!(
        (latest.dir.as_path(), &latest.checkpoint),
        (last.as_path(), &ckpt(8))
    );

    // Step 8 damaged, and step 6 too: the advice names step 4.
    std::fs::write(last.join("opt~count.zst"), b"x").unwrap();
    std::fs::remove_file(w.path().join("checkpoint.bv-000000006/mask.zst")).unwrap();
    let e = load_latest(w.path()).unwrap_err().to_string();
    let pointer = w.path().join("checkpoint.bv-LAST");
    let want = format!(
        "the newest complete checkpoint before it is checkpoint.bv-000000004 (step 4); to resume from it, run: echo 000000004 > {}",
        pointer.display()
    );
    assert!(
        e.starts_with("cannot resume from ") && e.contains("opt~count.zst"),
        "{e}"
    );
    assert!(e.contains(&want), "{e}");
    std::fs::write(&pointer, "000000004\n").unwrap();
    let latest = load_latest(w.path()).unwrap().unwrap();
    assert!(!latest.without_pointer);
    assert_eq!(latest.checkpoint, ckpt(4));
}

/// Run as a child process by `killed_writer_leaves_a_whole_checkpoint`: saves checkpoints
/// forever, continuing after the last one in the workdir.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var("BV_CKPT_CHILD_WORKDIR") else {
        return;
    };
    let mut step = load_last(&dir).unwrap().map_or(0, |c| c.step);
    loop {
        step += 1;
        save(&dir, &ckpt(step), step % 5 == 0).unwrap();
    }
}

#[test]
fn killed_writer_leaves_a_whole_checkpoint() {
    let w = tempfile::tempdir().unwrap();
    let pointer = w.path().join("checkpoint.bv-LAST");
    let mut last = 0;
    for delay_ms in [3u64, 40, 0, 25, 70, 12, 55] {
        let before = std::fs::read(&pointer).ok();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_writer", "--nocapture"])
            .env("BV_CKPT_CHILD_WORKDIR", w.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it finish one checkpoint (however loaded the machine), then kill it while it
        // writes the next ones.
        let start = std::time::Instant::now();
        while std::fs::read(&pointer).ok() == before {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the child never saved"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let c = load_last(w.path()).unwrap().expect("a checkpoint");
        assert!(c.step > last, "no progress after {last}");
        assert_eq!(c, ckpt(c.step), "checkpoint {} is not whole", c.step);
        last = c.step;
    }
}
