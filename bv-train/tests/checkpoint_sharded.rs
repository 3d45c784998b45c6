//! Sharded checkpoints on 8 CPU devices: each distinct block of an array is written once
//! (replicas too), two processes writing their halves in step through the coordination
//! service make one checkpoint, loading assembles the arrays from the blocks, damaged block
//! lists are refused, and checkpoints of the earlier one-file-per-leaf format still load.

mod common;

use std::collections::HashSet;
use std::io::Write;

use bv_core::distributed::{CoordinationClient, Coordinator};
use bv_core::io::HostArray;
use bv_core::pjrt::Client;
use bv_core::sharding::{Mesh, NamedSharding, PartitionSpec};
use bv_core::{set_default_client, Array};
use bv_train::checkpoint::{load, load_last, owned_devices, save_shards, LeafShards, Peers};

fn mesh(axes: &[(&str, i64)]) -> Mesh {
    static IDS: std::sync::OnceLock<Vec<i64>> = std::sync::OnceLock::new();
    let ids = IDS.get_or_init(|| {
        let client = Client::cpu_with_devices(8).unwrap();
        let ids = client.devices().iter().map(|d| i64::from(d.id())).collect();
        set_default_client(client);
        ids
    });
    Mesh::new(axes, ids).unwrap()
}

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
}

fn put(v: &[f32], shape: &[usize], mesh: &Mesh, spec: &[Option<&str>]) -> Array {
    let sh = NamedSharding::new(mesh.clone(), PartitionSpec::of(spec)).unwrap();
    Array::from_slice_sharded(v, shape, &sh).unwrap()
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Named host values and their shapes.
type Host = Vec<(String, Vec<f32>, Vec<usize>)>;

/// Leaves of arrays over a 4x2 mesh: split on both axes, split on one (replicated over
/// 'model'), replicated, and a scalar.
fn leaves(m: &Mesh, writes: &HashSet<i64>) -> (Vec<LeafShards>, Host) {
    let host = vec![
        ("params/both".to_string(), values(8 * 6, 0.0), vec![8, 6]),
        ("params/rows".to_string(), values(4 * 5, 1.0), vec![4, 5]),
        ("opt/rep".to_string(), values(7, 2.0), vec![7]),
        ("opt/scalar".to_string(), values(1, 3.0), vec![]),
    ];
    let specs: [&[Option<&str>]; 4] = [&[Some("data"), Some("model")], &[Some("data")], &[], &[]];
    let shards = host
        .iter()
        .zip(specs)
        .map(|((name, v, shape), spec)| {
            LeafShards::of_array(name, &put(v, shape, m, spec), writes).unwrap()
        })
        .collect();
    (shards, host)
}

fn check_loaded(dir: &std::path::Path, host: &Host) {
    let c = load(dir).unwrap();
    assert_eq!(c.step, 7);
    assert_eq!(c.leaves.len(), host.len());
    for ((name, h), (want_name, v, shape)) in c.leaves.iter().zip(host) {
        assert_eq!(name, want_name);
        assert_eq!(h.shape(), shape.as_slice(), "{name}");
        assert_eq!(&h.to_vec::<f32>().unwrap(), v, "{name}");
    }
}

#[test]
fn each_block_is_written_once_and_loads_whole() {
    let m = mesh(&[("data", 4), ("model", 2)]);
    let w = tempfile::tempdir().unwrap();
    let all = owned_devices(&m, 0, 1).unwrap();
    assert_eq!(all, m.device_ids().iter().copied().collect::<HashSet<_>>());
    let (shards, host) = leaves(&m, &all);
    let counts: Vec<usize> = shards.iter().map(|l| l.blocks.len()).collect();
    assert_eq!(counts, vec![8, 4, 1, 1], "distinct blocks only");
    let extra = serde_json::json!({"position": 3});
    let dir = save_shards(w.path(), 7, &shards, &extra, true, None).unwrap();
    let mut want: Vec<String> = (0..8).map(|k| format!("params~both@{k}.zst")).collect();
    want.extend((0..4).map(|k| format!("params~rows@{k}.zst")));
    want.extend([
        "opt~rep.zst".into(),
        "opt~scalar.zst".into(),
        "manifest.json".into(),
    ]);
    want.sort();
    assert_eq!(files(&dir), want);
    check_loaded(&dir, &host);
    assert_eq!(load_last(w.path()).unwrap().unwrap().extra, extra);
}

#[test]
fn two_processes_write_their_own_blocks_into_one_checkpoint() {
    let m = mesh(&[("data", 4), ("model", 2)]);
    let w = tempfile::tempdir().unwrap();
    let ids = m.device_ids().to_vec();
    let halves: Vec<HashSet<i64>> = vec![
        ids[..4].iter().copied().collect(),
        ids[4..].iter().copied().collect(),
    ];
    let (mine, host): (Vec<_>, Vec<_>) = halves.iter().map(|h| leaves(&m, h)).unzip();
    for (p, shards) in mine.iter().enumerate() {
        let written: usize = shards.iter().map(|l| l.local.len()).sum();
        // Blocks owned by the first four devices: 4 of 'both', 2 of 'rows', the replicas.
        assert_eq!(
            written,
            if p == 0 { 4 + 2 + 1 + 1 } else { 4 + 2 },
            "process {p}"
        );
    }
    let server = Coordinator::serve("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.addr();
    let dir = std::thread::scope(|s| {
        let handles: Vec<_> = mine
            .iter()
            .enumerate()
            .map(|(p, shards)| {
                let workdir = w.path();
                s.spawn(move || {
                    let kv = CoordinationClient::connect(addr, std::time::Duration::from_secs(30))
                        .unwrap();
                    let peers = Peers {
                        process_id: p,
                        num_processes: 2,
                        kv: &kv,
                    };
                    let extra = serde_json::json!({});
                    save_shards(workdir, 7, shards, &extra, false, Some(&peers)).unwrap()
                })
            })
            .collect();
        let dirs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(dirs[0], dirs[1]);
        dirs[0].clone()
    });
    check_loaded(&dir, &host[0]);
    assert_eq!(load_last(w.path()).unwrap().unwrap().step, 7);
}

#[test]
fn bad_block_lists_are_refused() {
    let m = mesh(&[("data", 8)]);
    let w = tempfile::tempdir().unwrap();
    let all = owned_devices(&m, 0, 1).unwrap();
    let a = put(&values(16, 0.5), &[16], &m, &[Some("data")]);
    let leaf = LeafShards::of_array("params/w", &a, &all).unwrap();
    let dir = save_shards(w.path(), 7, &[leaf], &serde_json::json!({}), true, None).unwrap();
    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["leaves"][0]["blocks"][3]["start"] = serde_json::json!([4]);
    // An edit is refused by the manifest's checksum; resealed, the block checks see it.
    std::fs::write(&manifest, v.to_string()).unwrap();
    let e = load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("manifest.json: the manifest's checksum is"),
        "{e}"
    );
    common::reseal_manifest(&manifest, v.clone());
    let e = load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("leaf \"params/w\": block 3 overlaps another"),
        "{e}"
    );
    v["leaves"][0]["blocks"][3]["start"] = serde_json::json!([15]);
    common::reseal_manifest(&manifest, v.clone());
    let e = load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("block 3 at [15] of shape [2] does not fit"),
        "{e}"
    );
    std::fs::remove_file(dir.join("params~w@5.zst")).unwrap();
    v["leaves"][0]["blocks"][3]["start"] = serde_json::json!([6]);
    common::reseal_manifest(&manifest, v.clone());
    let e = load(&dir).unwrap_err().to_string();
    assert!(e.contains("params~w@5.zst"), "{e}");
}

#[test]
fn a_block_nobody_writes_fails_the_save() {
    let m = mesh(&[("data", 8)]);
    let w = tempfile::tempdir().unwrap();
    let some: HashSet<i64> = m.device_ids()[..7].iter().copied().collect();
    let a = put(&values(16, 0.5), &[16], &m, &[Some("data")]);
    let leaf = LeafShards::of_array("params/w", &a, &some).unwrap();
    let e = save_shards(w.path(), 7, &[leaf], &serde_json::json!({}), true, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("params~w@7.zst") && e.contains("no process wrote this block"),
        "{e}"
    );
    assert!(
        load_last(w.path()).unwrap().is_none(),
        "nothing became LAST"
    );
}

/// A checkpoint as the one-file-per-leaf writer (`bv-checkpoint-1`) laid it out.
#[test]
fn checkpoints_of_the_earlier_format_still_load() {
    let w = tempfile::tempdir().unwrap();
    let dir = w.path().join("checkpoint.bv-000000004");
    std::fs::create_dir(&dir).unwrap();
    let kernel = values(6, 0.25);
    let raw: Vec<u8> = kernel.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
    enc.write_all(&raw).unwrap();
    std::fs::write(dir.join("params~a~kernel.zst"), enc.finish().unwrap()).unwrap();
    let manifest = serde_json::json!({
        "format": "bv-checkpoint-1",
        "step": 4,
        "leaves": [{"name": "params/a/kernel", "file": "params~a~kernel.zst", "dtype": "float32", "shape": [2, 3], "nbytes": 24}],
        "extra": {"chrono": {"train_secs": 1.0}},
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(w.path().join("checkpoint.bv-LAST"), "000000004").unwrap();
    let c = load_last(w.path()).unwrap().unwrap();
    assert_eq!(c.step, 4);
    assert_eq!(
        c.leaves,
        vec![(
            "params/a/kernel".to_string(),
            HostArray::from_slice(&kernel, &[2, 3]).unwrap()
        )]
    );
}
