//! The TFDS-written Fashion-MNIST fixture against the raw IDX data of the same examples.

mod common;

use std::collections::HashMap;

use bv_train::data::fashion_mnist::read_raw;
use bv_train::data::{Corruption, DataError, TfdsDataset, Value};
use bv_train::pp::decode::decode_png;

/// (label, pixels) of every record of `split`, in file order.
fn read_split(ds: &TfdsDataset, split: &str) -> Vec<(i64, Vec<u8>)> {
    let reads = ds.reads(&ds.ranges(split).unwrap());
    ds.stream(&reads, Corruption::Error)
        .map(|rec| {
            let ex = ds.example(&rec.unwrap()).unwrap();
            let Value::Bytes(img) = &ex["image"] else {
                panic!("image is not bytes")
            };
            let Value::I64(label) = &ex["label"] else {
                panic!("label is not int64")
            };
            let px = decode_png(&img.data[0], 1).unwrap();
            assert_eq!(px.shape, [28, 28, 1]);
            (label.data[0], px.data)
        })
        .collect()
}

fn fixture() -> TfdsDataset {
    TfdsDataset::open("fashion_mnist", Some(&common::fixture_dir())).unwrap()
}

#[test]
fn fixture_metadata() {
    let ds = fixture();
    assert_eq!(ds.info.version, "3.0.1");
    let n: Vec<u64> = ["train", "test"]
        .iter()
        .map(|s| ds.info.split(s).unwrap().num_examples())
        .collect();
    assert_eq!(n, [1000, 200]);
    let keys: Vec<&str> = ds.features.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["image", "label"]);
}

#[test]
fn fixture_examples_equal_the_idx_data() {
    let Some(idx) = common::fashion_mnist_idx() else {
        return;
    };
    let ds = fixture();
    for (split, n) in [("train", 1000), ("test", 200)] {
        let raw = read_raw(&idx, split).unwrap();
        let mut want: HashMap<(i64, Vec<u8>), usize> = HashMap::new();
        for i in 0..n {
            let key = (i64::from(raw.labels.data[i]), raw.image(i).to_vec());
            *want.entry(key).or_default() += 1;
        }
        let got = read_split(&ds, split);
        assert_eq!(got.len(), n);
        let mut got_counts: HashMap<(i64, Vec<u8>), usize> = HashMap::new();
        for g in got {
            *got_counts.entry(g).or_default() += 1;
        }
        assert_eq!(
            got_counts, want,
            "{split}: the multisets of (label, pixels) differ"
        );
    }
}

#[test]
fn slices_and_host_splits_partition_the_records() {
    let ds = fixture();
    let all = read_split(&ds, "train");
    assert_eq!(read_split(&ds, "train[10:20]"), all[10..20]);
    assert_eq!(read_split(&ds, "train[:99%]"), all[..990]);
    assert_eq!(read_split(&ds, "train[99%:]"), all[990..]);
    let mut joined = Vec::new();
    for host in 0..3 {
        let reads = ds.reads(&ds.host_ranges("train[:10%]", host, 3).unwrap());
        let n = reads.iter().map(|r| r.take).sum::<u64>();
        assert_eq!(n, [34, 33, 33][host]);
        for rec in ds.stream(&reads, Corruption::Error) {
            joined.push(rec.unwrap().offset);
        }
    }
    let first100: Vec<u64> = ds
        .stream(
            &ds.reads(&ds.ranges("train[:100]").unwrap()),
            Corruption::Error,
        )
        .map(|r| r.unwrap().offset)
        .collect();
    assert_eq!(joined, first100);
}

#[test]
fn corrupted_shard_names_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let src = common::fixture_dir().join("fashion_mnist/3.0.1");
    let dst = tmp.path().join("fashion_mnist/3.0.1");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
    }
    let shard = dst.join("fashion_mnist-test.tfrecord-00000-of-00001");
    let mut bytes = std::fs::read(&shard).unwrap();
    // The third record's start: walk the framing.
    let mut off = 0usize;
    for _ in 0..2 {
        off += 16 + u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap()) as usize;
    }
    bytes[off + 100] ^= 0x40;
    std::fs::write(&shard, &bytes).unwrap();

    let ds = TfdsDataset::open("fashion_mnist", Some(tmp.path())).unwrap();
    let reads = ds.reads(&ds.ranges("test").unwrap());
    let err = ds
        .stream(&reads, Corruption::Error)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err();
    match &err {
        DataError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &shard);
            assert_eq!(*offset, off as u64);
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("fashion_mnist-test") && msg.contains(&format!("byte {off}")),
        "{msg}"
    );

    let mut s = ds.stream(&reads, Corruption::SkipAndCount);
    let mut n = 0;
    for r in s.by_ref() {
        r.unwrap();
        n += 1;
    }
    assert_eq!((n, s.skipped()), (199, 1));
}

#[test]
fn missing_dataset_and_bad_split_are_explained() {
    let err = TfdsDataset::open("cifar10", Some(&common::fixture_dir())).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cifar10") && msg.contains("not found"),
        "{msg}"
    );
    let ds = fixture();
    let msg = ds.ranges("validation").unwrap_err().to_string();
    assert!(
        msg.contains("no split 'validation'") && msg.contains("train, test"),
        "{msg}"
    );
    let msg = ds.ranges("train[:5").unwrap_err().to_string();
    assert!(msg.contains("closing ']'"), "{msg}");
}
