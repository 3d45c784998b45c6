//! A job of 2 processes × 4 devices on the PJRT test plugin, as on a multi-host GPU or TPU
//! slice: each process joins through the coordination service before its client exists,
//! the client lists all 8 devices, the mesh spans them, each process feeds only its own
//! shards, and programs spanning the processes meet through the key-value store. The
//! plugin's record of each process is checked against what the process should have done.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bv_core::distributed::{Job, ProcessInfo};
use bv_core::pjrt::ClientOptions;
use bv_core::sharding::{Mesh, NamedSharding, PartitionSpec};
use bv_core::{jit, numpy as np, Array, ArrayError, DType, Tensor};
use pjrt_test_plugin::record::{self, fnv1a, Call};

const PROCESSES: usize = 2;
const PER_PROCESS: usize = 4;
/// The local batch of each process: 8 rows of 3.
const ROWS: usize = 8;
const COLS: usize = 3;

/// Process `p`'s local batch: row `r` holds `p·1000 + r·10 + c`.
fn local_batch(p: usize) -> Vec<f32> {
    (0..ROWS * COLS)
        .map(|i| (p * 1000 + (i / COLS) * 10 + i % COLS) as f32)
        .collect()
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn two_processes_of_four_devices_form_one_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "process", "--ignored", "--nocapture"])
                .env("BV_COORDINATOR", format!("127.0.0.1:{port}"))
                .env("BV_NUM_PROCESSES", PROCESSES.to_string())
                .env("BV_PROCESS_ID", p.to_string())
                .env("BV_PLATFORM", "cuda")
                .env("BV_PJRT_PLUGIN", pjrt_test_plugin::library_path())
                .env(pjrt_test_plugin::RECORD_ENV, dir.path())
                .env(pjrt_test_plugin::DEVICES_ENV, PER_PROCESS.to_string())
                .env("BV_COMPILATION_CACHE_DIR", "off")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (p, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "process {p} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for p in 0..PROCESSES {
        check_record(
            p,
            &record::read(&dir.path().join(format!("process-{p}.log"))),
        );
    }
}

fn find<'a>(calls: &'a [Call], name: &str) -> Vec<&'a Call> {
    calls.iter().filter(|c| c.name == name).collect()
}

/// What process `p` must have done, by the plugin's record.
fn check_record(p: usize, calls: &[Call]) {
    let mine: Vec<i64> = (p * PER_PROCESS..(p + 1) * PER_PROCESS)
        .map(|d| d as i64)
        .collect();
    let create = find(calls, "PJRT_Client_Create");
    assert_eq!(create.len(), 1, "one client per process");
    assert_eq!(create[0].get("devices"), "8");
    assert_eq!(create[0].ints("addressable"), mine);
    // The topology exchange went through the store during creation.
    let created_at = calls
        .iter()
        .position(|c| c.name == "PJRT_Client_Create")
        .unwrap();
    assert!(calls[..created_at]
        .iter()
        .any(|c| c.name == "kv_get" && c.get("key") == "pjrt_test/node/1"));

    // Transfers only to this process's devices; the local batch went to them in mesh
    // order, two rows each (row block j of the local batch to the j-th local device).
    let puts = find(calls, "PJRT_Client_BufferFromHostBuffer");
    assert!(
        puts.iter()
            .all(|c| mine.contains(&c.get("device").parse().unwrap())),
        "process {p} put data on another process's device: {puts:?}"
    );
    let batch = local_batch(p);
    for (j, &device) in mine.iter().enumerate() {
        let rows = &batch[j * 2 * COLS..(j + 1) * 2 * COLS];
        let want = fnv1a(&bytes(rows));
        assert!(
            puts.iter().any(|c| c.get("device") == device.to_string()
                && c.get("fnv") == want
                && c.get("shape") == "2x3"),
            "process {p}: rows {}..{} of its batch never reached device {device}: {puts:?}",
            2 * j,
            2 * j + 2
        );
    }

    // The sharded program was compiled for all 8 devices and ran on this process's 4,
    // meeting the other process through the store at each launch.
    let compiles = find(calls, "PJRT_Client_Compile");
    let spanning: Vec<_> = compiles
        .iter()
        .filter(|c| c.get("devices") == "0,1,2,3,4,5,6,7")
        .collect();
    assert!(!spanning.is_empty(), "{compiles:?}");
    assert!(spanning.iter().all(|c| c.ints("addressable") == mine));
    let runs: Vec<_> = find(calls, "PJRT_LoadedExecutable_Execute")
        .into_iter()
        .filter(|c| c.ints("devices") == mine)
        .collect();
    assert!(!runs.is_empty());
    let launches = calls
        .iter()
        .filter(|c| c.name == "kv_get" && c.get("key").starts_with("pjrt_test/launch/"))
        .count();
    assert_eq!(launches, runs.len(), "one meeting per spanning launch");
    // The one-device program ran on this process's first device.
    assert!(
        compiles
            .iter()
            .any(|c| c.get("devices") == mine[0].to_string()
                && c.ints("addressable") == vec![mine[0]])
    );
    // Reads of shards only from this process's devices.
    assert!(find(calls, "PJRT_Buffer_ToHostBuffer")
        .iter()
        .all(|c| mine.contains(&c.get("device").parse().unwrap())));
}

/// One process of the job (run by the test above).
#[test]
#[ignore = "a process of two_processes_of_four_devices_form_one_mesh"]
fn process() {
    let me = ProcessInfo::from_env().unwrap().expect("BV_* variables");
    let job = Job::initialize(&me, ClientOptions::new(), Duration::from_secs(60)).unwrap();
    assert!(job.spans_processes());
    assert_eq!(job.client.process_index() as usize, me.process_id);
    let ids: Vec<i64> = job
        .client
        .devices()
        .iter()
        .map(|d| i64::from(d.id()))
        .collect();
    assert_eq!(ids, (0..8).collect::<Vec<_>>());
    let mesh = Mesh::new(&[("data", -1)], &ids).unwrap();
    assert_eq!(mesh.size(), 8);
    let data = NamedSharding::new(mesh.clone(), PartitionSpec::of(&[Some("data")])).unwrap();

    // The local batch of 8 becomes this process's half of a global batch of 16.
    let x = Array::from_process_local_data(
        &bytes(&local_batch(me.process_id)),
        DType::F32,
        &[ROWS, COLS],
        &data,
    )
    .unwrap();
    assert_eq!(x.shape(), &[2 * ROWS, COLS]);
    assert!(!x.is_fully_addressable());
    assert_eq!(x.shard_shapes().unwrap(), vec![vec![2, 3]; 4]);
    let shards = x.shards().unwrap();
    assert_eq!(shards.len(), 8, "every shard of the job is listed");
    let first = PER_PROCESS * me.process_id;
    assert_eq!(
        shards[first].1[0],
        (2 * first as i64)..(2 * first as i64 + 2)
    );
    assert_eq!(
        x.shard_to_bytes(first).unwrap(),
        bytes(&local_batch(me.process_id)[..2 * COLS])
    );
    let other = PER_PROCESS * (1 - me.process_id);
    assert!(matches!(
        x.shard_to_bytes(other),
        Err(ArrayError::NotAddressable { .. })
    ));
    let err = x.to_vec::<f32>().unwrap_err().to_string();
    assert!(err.contains("lives on devices of other processes"), "{err}");

    // A program over the whole mesh; its replicated result is read from a local replica.
    let f = jit(|x: Tensor| np::sum(&x, np::Axes::All, false))
        .named("global_sum")
        .sharded(mesh.clone(), |_, _| PartitionSpec::replicated());
    for _ in 0..2 {
        let total = f.call(&x).unwrap();
        // Not all of its shards are here, but each holds every element.
        assert!(!total.is_fully_addressable());
        // The plugin fills outputs on device d with d + 1: this process's first device.
        assert_eq!(total.item::<f32>().unwrap(), first as f32 + 1.0);
    }
    // A one-device program runs here, on this process's first device.
    let one = jit(|x: Tensor| &x + 1.0);
    let y = one.call(&Array::scalar(1f32).unwrap()).unwrap();
    assert_eq!(y.item::<f32>().unwrap(), first as f32 + 1.0);
    job.barrier("test/done", Duration::from_secs(60)).unwrap();
    assert!(Path::new(&std::env::var(pjrt_test_plugin::RECORD_ENV).unwrap()).is_dir());
}
