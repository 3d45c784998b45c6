//! `data prepare` against TFDS's own output: the same examples, content and record order as
//! the TFDS-written fixture, and readable by our reader; plus the CLI end to end.

mod common;

use bv_train::data::fashion_mnist::{prepare, read_raw};
use bv_train::data::inspect::summarize;
use bv_train::data::{Corruption, TfdsDataset, Value};
use bv_train::pp::decode::decode_png;

fn records(ds: &TfdsDataset, split: &str) -> Vec<(i64, Vec<u8>)> {
    let reads = ds.reads(&ds.ranges(split).unwrap());
    ds.stream(&reads, Corruption::Error)
        .map(|r| {
            let ex = ds.example(&r.unwrap()).unwrap();
            let (Value::Bytes(img), Value::I64(l)) = (&ex["image"], &ex["label"]) else {
                panic!("unexpected feature types")
            };
            (l.data[0], decode_png(&img.data[0], 1).unwrap().data)
        })
        .collect()
}

#[test]
fn prepared_subset_equals_the_tfds_fixture() {
    let Some(idx) = common::fashion_mnist_idx() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = prepare(&idx, tmp.path(), [Some(1000), Some(200)]).unwrap();
    let ours = TfdsDataset::from_dir(&dir).unwrap();
    let tfds = TfdsDataset::open("fashion_mnist", Some(&common::fixture_dir())).unwrap();
    assert_eq!(ours.features, tfds.features);
    assert_eq!(ours.info.split("test").unwrap().num_examples(), 200);
    for split in ["train", "test"] {
        // Same record order (TFDS's md5 key order), same labels, same decoded pixels.
        assert_eq!(records(&ours, split), records(&tfds, split), "{split}");
        assert_eq!(
            summarize(&ours, split).unwrap(),
            summarize(&tfds, split).unwrap()
        );
    }
    let labels = std::fs::read_to_string(dir.join("label.labels.txt")).unwrap();
    let want =
        std::fs::read_to_string(common::fixture_dir().join("fashion_mnist/3.0.1/label.labels.txt"));
    assert_eq!(labels, want.unwrap());
}

#[test]
fn cli_prepare_then_inspect_reads_back_the_idx_data() {
    let Some(idx) = common::fashion_mnist_idx() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_bv-train");
    let out = std::process::Command::new(bin)
        .args(["data", "prepare", "fashion_mnist", "--idx-dir"])
        .arg(&idx)
        .arg("--data-dir")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ds = TfdsDataset::open("fashion_mnist:3.0.1", Some(tmp.path())).unwrap();
    let got = records(&ds, "test");
    let raw = read_raw(&idx, "test").unwrap();
    let mut want: Vec<(i64, Vec<u8>)> = (0..raw.len())
        .map(|i| (i64::from(raw.labels.data[i]), raw.image(i).to_vec()))
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    want.sort();
    assert_eq!(got_sorted, want);

    let out = std::process::Command::new(bin)
        .args([
            "data",
            "inspect",
            "fashion_mnist",
            "--split",
            "test[:10]",
            "--data-dir",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("split test[:10]: 10 examples, content sha256 "),
        "{text}"
    );
    assert!(text.contains("label: ClassLabel(num_classes=10)"), "{text}");

    let out = std::process::Command::new(bin)
        .args(["data", "inspect", "imagenet2012", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dataset 'imagenet2012' not found"));
}
