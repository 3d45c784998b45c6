//! One training job over 2 processes × 4 devices on the PJRT test plugin (which computes
//! nothing real: every output element on device `d` is `d + 1`), as `bv-train` runs on
//! every host of a TPU slice: one 8-device mesh, each process feeding only its share of
//! each batch to its own devices, and each writing only its own checkpoint blocks. The
//! plugin's record of each process is checked against that.

mod common;

use std::ffi::OsStr;

use bv_core::DType;
use common::train::{metrics, run_job, tiny_config, values};
use pjrt_test_plugin::record::{self, Call};

const FSDP: &str = r#"sharding_strategy=[(".*", "fsdp(axis='data', min_size_to_shard_mb=0)")]"#;

fn device(c: &Call) -> usize {
    c.get("device").parse().unwrap()
}

#[test]
fn one_job_over_two_processes_of_four_devices() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path());
    let workdir = dir.path().join("w");
    let rec = dir.path().join("record");
    std::fs::create_dir_all(&rec).unwrap();
    let plugin = pjrt_test_plugin::library_path();
    let env: [(&str, &OsStr); 5] = [
        ("BV_PLATFORM", OsStr::new("cuda")),
        ("BV_PJRT_PLUGIN", plugin.as_os_str()),
        (pjrt_test_plugin::RECORD_ENV, rec.as_os_str()),
        (pjrt_test_plugin::DEVICES_ENV, OsStr::new("4")),
        ("BV_COMPILATION_CACHE_DIR", OsStr::new("off")),
    ];
    let extra = [
        "--stop-after",
        "3",
        "--set",
        FSDP,
        "--set",
        "evals.test.batch_size=40",
    ];
    let outs = run_job(&config, &workdir, 2, &extra, &env);
    for (p, o) in outs.iter().enumerate() {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "process {p} failed:\n{err}");
        assert!(err.contains("8 device(s)"), "process {p}:\n{err}");
    }

    for p in 0..2 {
        let calls = record::read(&rec.join(format!("process-{p}.log")));
        let mine = 4 * p..4 * (p + 1);
        let create: Vec<_> = calls
            .iter()
            .filter(|c| c.name == "PJRT_Client_Create")
            .collect();
        assert_eq!(create.len(), 1);
        assert_eq!(create[0].get("devices"), "8");
        // Data goes only to this process's devices, and a training batch of 16 is fed as
        // this process's 8 rows, 2 per device, at each of the 3 steps.
        let puts: Vec<_> = calls
            .iter()
            .filter(|c| c.name == "PJRT_Client_BufferFromHostBuffer")
            .collect();
        assert!(puts.iter().all(|c| mine.contains(&device(c))), "{puts:?}");
        for d in mine.clone() {
            let images = puts
                .iter()
                .filter(|c| device(c) == d && c.get("shape") == "2x28x28x1")
                .count();
            assert_eq!(images, 3, "process {p}, device {d}");
        }
        // Checkpoint blocks (and metrics) are read only from this process's devices.
        let reads: Vec<_> = calls
            .iter()
            .filter(|c| c.name == "PJRT_Buffer_ToHostBuffer")
            .collect();
        assert!(!reads.is_empty());
        assert!(reads.iter().all(|c| mine.contains(&device(c))), "{reads:?}");
        // The update step ran 3 times over the 8-device mesh, on this process's 4,
        // meeting the other process through the key-value store each time.
        let compiled: Vec<_> = calls
            .iter()
            .filter(|c| c.name == "PJRT_Client_Compile" && c.get("name") == "jit_update")
            .collect();
        assert_eq!(compiled.len(), 1);
        assert_eq!(compiled[0].ints("devices"), (0..8).collect::<Vec<i64>>());
        let updates = calls
            .iter()
            .filter(|c| c.name == "PJRT_LoadedExecutable_Execute" && c.get("name") == "jit_update")
            .inspect(|c| {
                assert_eq!(
                    c.ints("devices"),
                    mine.clone().map(|d| d as i64).collect::<Vec<_>>()
                )
            })
            .count();
        assert_eq!(updates, 3);
        let meetings = calls
            .iter()
            .filter(|c| c.name == "kv_get" && c.get("key").starts_with("pjrt_test/launch/"))
            .count();
        assert!(meetings >= 3, "{meetings} launches met the other process");
    }

    // Process 0 logged its local replica of the replicated loss: device 0's value, 1.
    let logged = metrics(&workdir);
    let step1 = logged.iter().find(|r| r.step == 1).expect("step 1 logged");
    assert_eq!(values(step1)["training_loss"], 1.0);

    // Each block of the checkpoint holds the value of the device that wrote it: block k of
    // a leaf in 8 blocks came from device k (k + 1), a leaf in one block from device 0.
    let dir = bv_train::checkpoint::last_dir(&workdir)
        .unwrap()
        .expect("a checkpoint");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let ckpt = bv_train::checkpoint::load_last(&workdir).unwrap().unwrap();
    assert_eq!(ckpt.step, 3);
    let mut split = 0;
    for leaf in manifest["leaves"].as_array().unwrap() {
        let name = leaf["name"].as_str().unwrap();
        let host = &ckpt.leaves.iter().find(|(n, _)| n == name).unwrap().1;
        let shape = host.shape().to_vec();
        let vals: Vec<f64> = match host.dtype() {
            DType::F32 => host
                .to_vec::<f32>()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect(),
            DType::I32 => host
                .to_vec::<i32>()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect(),
            DType::U32 => host
                .to_vec::<u32>()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect(),
            other => panic!("leaf {name} of unexpected type {other}"),
        };
        let blocks = leaf["blocks"].as_array().unwrap();
        assert!(
            blocks.len() == 1 || blocks.len() == 8,
            "{name}: {} blocks",
            blocks.len()
        );
        split += usize::from(blocks.len() == 8);
        for (k, b) in blocks.iter().enumerate() {
            let start: Vec<usize> = serde_json::from_value(b["start"].clone()).unwrap();
            let bshape: Vec<usize> = serde_json::from_value(b["shape"].clone()).unwrap();
            let want = (k * 8 / blocks.len() + 1) as f64;
            for (i, v) in vals.iter().enumerate() {
                let mut rest = i;
                let mut inside = true;
                for d in (0..shape.len()).rev() {
                    let x = rest % shape[d];
                    rest /= shape[d];
                    inside &= x >= start[d] && x < start[d] + bshape[d];
                }
                if inside {
                    assert_eq!(*v, want, "{name}, block {k}, element {i}");
                }
            }
        }
    }
    assert!(split > 0, "FSDP split some leaves over the 8 devices");
}
