//! A checkpoint written by an 8-way FSDP run, in one block per device for the split leaves,
//! continues on 1 device and on 4 devices: both restore the same parameters and train on to
//! the same result as the uninterrupted 8-way run (within float tolerance: the device count
//! changes only the order of reductions).

mod common;

use std::path::Path;

use bv_train::checkpoint;
use common::train::{bv_train, run_ok, tiny_config};

const FSDP: &str = r#"sharding_strategy=[(".*", "fsdp(axis='data', min_size_to_shard_mb=0)")]"#;
const OPT: &str = "optax_name=\"big_vision.momentum_hp\"";

fn run(config: &Path, workdir: &Path, devices: &str, stop: Option<&str>) {
    let mut args = vec![
        "--cpu-devices",
        devices,
        "--set",
        FSDP,
        "--set",
        OPT,
        "--set",
        "evals.test.batch_size=40",
    ];
    if let Some(s) = stop {
        args.extend(["--stop-after", s]);
    }
    run_ok(&mut bv_train(config, workdir, &args));
}

fn params(workdir: &Path) -> Vec<(String, Vec<f32>)> {
    let c = checkpoint::load_last(workdir)
        .unwrap()
        .expect("a checkpoint");
    c.leaves
        .into_iter()
        .filter(|(n, h)| n.starts_with("params/") && h.dtype() == bv_core::DType::F32)
        .map(|(n, h)| (n, h.to_vec::<f32>().unwrap()))
        .collect()
}

/// How many blocks each leaf of the workdir's LAST checkpoint is stored in.
fn block_counts(workdir: &Path) -> Vec<usize> {
    let dir = checkpoint::last_dir(workdir)
        .unwrap()
        .expect("a checkpoint");
    let text = std::fs::read(dir.join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&text).unwrap();
    manifest["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["blocks"].as_array().unwrap().len())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn an_fsdp_checkpoint_continues_on_1_and_4_devices() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let (a, b, c, full) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
        dir.path().join("full"),
    );
    run(&config, &a, "8", Some("6"));
    assert_eq!(checkpoint::load_last(&a).unwrap().unwrap().step, 6);
    let at6 = params(&a);
    let blocks = block_counts(&a);
    assert!(blocks.contains(&8), "split leaves in 8 blocks: {blocks:?}");
    assert!(blocks.iter().all(|&n| n == 1 || n == 8), "{blocks:?}");
    copy_dir(&a, &b);
    copy_dir(&a, &c);
    run(&config, &b, "1", None);
    run(&config, &c, "4", None);
    run(&config, &full, "8", None);
    assert!(
        block_counts(&b).iter().all(|&n| n == 1),
        "one device, one block"
    );
    assert!(block_counts(&c).contains(&4), "4-way FSDP, 4 blocks");
    let (pb, pc, pf) = (params(&b), params(&c), params(&full));
    assert_eq!(pb.len(), at6.len());
    let mut moved = 0.0f32;
    for (((name, x), (_, y)), ((_, z), (_, w0))) in pb.iter().zip(&pc).zip(pf.iter().zip(&at6)) {
        for (i, ((p, q), (r, s))) in x.iter().zip(y).zip(z.iter().zip(w0)).enumerate() {
            assert!(
                (p - q).abs() <= 1e-5 + 1e-4 * q.abs(),
                "{name}[{i}]: 1 device {p} vs 4 devices {q}"
            );
            assert!(
                (p - r).abs() <= 1e-5 + 1e-4 * r.abs(),
                "{name}[{i}]: 1 device {p} vs 8 devices {r}"
            );
            moved = moved.max((p - s).abs());
        }
    }
    assert!(moved > 1e-3, "training went on after the restore");
}
