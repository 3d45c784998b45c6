//! ArrayRecord files written by Google's `array_record` writer (see
//! `fixtures/array_record/make_fixtures.py`) against the records it was given, and a TFDS
//! directory that TFDS itself wrote in both formats (`make_tfds_dirs.py`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bv_train::data::{
    train, ArrayRecordReader, Batch, Corruption, DataError, Source, TfdsDataset, TrainConfig,
};
use bv_train::pp::{Pipeline, OPS};
use sha2::{Digest, Sha256};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/array_record")
}

/// `(len, sha256 hex)` of each record of `file`, as the writer script recorded them.
fn expected(file: &str) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json[file]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let len = r["len"].as_u64().unwrap() as usize;
            (len, r["sha256"].as_str().unwrap().to_string())
        })
        .collect()
}

fn digest(r: &[u8]) -> (usize, String) {
    let h = Sha256::digest(r);
    (r.len(), h.iter().map(|b| format!("{b:02x}")).collect())
}

fn read_all(path: &Path, corruption: Corruption) -> Result<Vec<(u64, Vec<u8>)>, DataError> {
    let mut r = ArrayRecordReader::open(path, corruption)?;
    std::iter::from_fn(|| r.next_record()).collect()
}

#[test]
fn records_equal_what_the_writer_was_given() {
    for file in [
        "default.array_record",
        "group1_zstd.array_record",
        "group3_uncompressed.array_record",
    ] {
        let path = dir().join(file);
        let want = expected(file);
        let got = read_all(&path, Corruption::Error).unwrap();
        let digests: Vec<_> = got.iter().map(|(_, r)| digest(r)).collect();
        assert_eq!(digests, want, "{file}");

        // Random access and location-only skipping agree with the sequential read.
        let mut r = ArrayRecordReader::open(&path, Corruption::Error).unwrap();
        assert_eq!(r.num_records(), want.len() as u64);
        for (pos, rec) in got.iter().rev() {
            assert_eq!(&r.read_at(*pos).unwrap(), rec, "{file} at {pos}");
        }
        let skipped: Vec<u64> = std::iter::from_fn(|| r.skip_record())
            .map(|p| p.unwrap())
            .collect();
        let positions: Vec<u64> = got.iter().map(|(p, _)| *p).collect();
        assert_eq!(skipped, positions, "{file}");
    }
}

#[test]
fn unsupported_chunk_encodings_are_named() {
    // The footer chunk is compressed like the data, so brotli and snappy fail there.
    for (file, what) in [
        ("brotli.array_record", "brotli compression"),
        ("snappy.array_record", "snappy compression"),
        ("transposed.array_record", "transposed chunks"),
    ] {
        let err = read_all(&dir().join(file), Corruption::Error).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Unsupported { .. }), "{msg}");
        assert!(msg.contains(file) && msg.contains(what), "{msg}");
    }
}

/// A copy of `file` with `edit` applied, in a temporary directory.
fn damaged(file: &str, edit: impl FnOnce(&mut Vec<u8>)) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(file);
    let mut bytes = std::fs::read(dir().join(file)).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
    (tmp, path)
}

#[test]
fn corruption_names_the_file_and_byte_offset() {
    // Riegeli layout: block header (24 bytes) + signature chunk (40), so the first data chunk's
    // header is at 64 and its data at 104. The uncompressed file holds a 100 KB record, whose
    // chunk crosses the block header at 65536.
    let file = "group3_uncompressed.array_record";
    let cases: [(usize, u64, &str); 3] = [
        (104 + 10, 64, "chunk data hash mismatch"),
        (64 + 9, 64, "chunk header hash mismatch"),
        (65536 + 3, 65536, "block header hash mismatch"),
    ];
    for (byte, offset, what) in cases {
        let (_tmp, path) = damaged(file, |b| b[byte] ^= 0x40);
        let err = read_all(&path, Corruption::Error).unwrap_err();
        let msg = err.to_string();
        match &err {
            DataError::Corrupt {
                path: p,
                offset: o,
                what: w,
            } => {
                assert_eq!((p, *o, w.as_str()), (&path, offset, what), "{msg}");
            }
            _ => panic!("{msg}"),
        }
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }

    // Skipping a corrupted chunk drops its 3 records and reads on.
    let (_tmp, path) = damaged(file, |b| b[104 + 10] ^= 0x40);
    let mut r = ArrayRecordReader::open(&path, Corruption::SkipAndCount).unwrap();
    let got: Vec<_> = std::iter::from_fn(|| r.next_record())
        .map(|x| digest(&x.unwrap().1))
        .collect();
    assert_eq!(got, expected(file)[3..]);
    assert_eq!(r.skipped(), 3);

    // A truncated file: the postscript block is gone.
    let (_tmp, path) = damaged(file, |b| b.truncate(100_000));
    let err = read_all(&path, Corruption::Error).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Corrupt {
                offset: 100_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");

    // Not a Riegeli file at all.
    let (_tmp, path) = damaged(file, |b| b[0] ^= 1);
    let err = read_all(&path, Corruption::Error).unwrap_err();
    assert!(err.to_string().contains("bad signature"), "{err}");
}

#[test]
fn a_flipped_byte_anywhere_is_an_error_or_harmless() {
    // Every header and chunk is hashed: a damaged file reads to an error, or (where the byte
    // is in padding that nothing reads) to the right records; never a panic or wrong data.
    let file = "group3_uncompressed.array_record";
    let bytes = std::fs::read(dir().join(file)).unwrap();
    let want = expected(file);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(file);
    let (mut errors, mut harmless) = (0, 0);
    for at in (0..bytes.len()).step_by(113) {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        std::fs::write(&path, &b).unwrap();
        match read_all(&path, Corruption::Error) {
            Ok(recs) => {
                let got: Vec<_> = recs.iter().map(|(_, r)| digest(r)).collect();
                assert_eq!(got, want, "byte {at} flipped");
                harmless += 1;
            }
            Err(DataError::Corrupt { .. }) => errors += 1,
            Err(e) => panic!("byte {at}: {e}"),
        }
    }
    assert!(
        errors > 0 && harmless > 0,
        "{errors} errors, {harmless} harmless"
    );
}

#[test]
fn tfds_array_record_dir_yields_the_tfrecord_examples() {
    let ar = TfdsDataset::from_dir(&dir().join("tfds/fashion_mnist/3.0.1")).unwrap();
    let tf = TfdsDataset::open("fashion_mnist", Some(&common::fixture_dir())).unwrap();
    // The array_record directory holds the first 40 train and 10 test examples.
    for (ar_split, tf_split) in [
        ("train", "train[:40]"),
        ("test", "test[:10]"),
        ("train[5:25]", "train[5:25]"),
        ("train[30:]", "train[30:40]"),
    ] {
        let read = |ds: &TfdsDataset, split: &str| {
            let reads = ds.reads(&ds.ranges(split).unwrap());
            ds.stream(&reads, Corruption::Error)
                .map(|r| {
                    let r = r.unwrap();
                    let ex = ds.example(&r).unwrap();
                    (r.data, format!("{ex:?}"))
                })
                .collect::<Vec<_>>()
        };
        let (a, t) = (read(&ar, ar_split), read(&tf, tf_split));
        assert!(!a.is_empty());
        assert_eq!(a, t, "{ar_split}");
    }
}

#[test]
fn tfds_written_array_record_equals_tfds_written_tfrecord() {
    // Both directories were written by TFDS 4.9.10 from the same 40 + 10 examples
    // (make_tfds_dirs.py); the array_record one with TFDS's writer options.
    let open = |fmt: &str| {
        TfdsDataset::from_dir(
            &dir()
                .join("tfds_written")
                .join(fmt)
                .join("fashion_mnist/3.0.1"),
        )
        .unwrap()
    };
    let (ar, tf) = (open("array_record"), open("tfrecord"));
    for (split, n) in [("train", 40), ("test", 10), ("train[7:31]", 24)] {
        let read = |ds: &TfdsDataset| {
            let reads = ds.reads(&ds.ranges(split).unwrap());
            ds.stream(&reads, Corruption::Error)
                .map(|r| {
                    let r = r.unwrap();
                    let ex = ds.example(&r).unwrap();
                    (r.data, format!("{ex:?}"))
                })
                .collect::<Vec<_>>()
        };
        let (a, t) = (read(&ar), read(&tf));
        assert_eq!(a.len(), n, "{split}");
        assert_eq!(a, t, "{split}");
    }
}

#[test]
fn training_pipeline_resumes_on_array_record_shards() {
    // Resuming replays the shuffle buffer by record position (ArrayRecordReader::read_at).
    let ds = TfdsDataset::from_dir(&dir().join("tfds/fashion_mnist/3.0.1")).unwrap();
    let cfg = TrainConfig {
        sources: vec![Source {
            dataset: Arc::new(ds),
            split: "train".into(),
            pp: Arc::new(
                Pipeline::build("decode(channels=1)|keep('image', 'label')", OPS).unwrap(),
            ),
            weight: 1.0,
            shuffle_buffer: 16,
        }],
        batch_size: 8,
        seed: 7,
        threads: 2,
        prefetch: 2,
        host_index: 0,
        host_count: 1,
        shuffle_files: true,
        corruption: Corruption::Error,
    };
    let take = |start, n| -> Vec<Batch> {
        train(&cfg, start)
            .unwrap()
            .take(n)
            .map(|b| b.unwrap())
            .collect()
    };
    let run = take(None, 12); // 40 examples: 5 batches per epoch
    for k in [1, 4, 6] {
        let resumed = take(run[k].position.as_ref(), 4);
        for (a, b) in resumed.iter().zip(&run[k + 1..]) {
            assert_eq!(a.data, b.data, "resume after batch {k}");
        }
    }
}
