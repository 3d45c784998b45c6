//! The training and eval pipelines on the TFDS-written Fashion-MNIST fixture.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use bv_train::data::{
    eval, train, Batch, Corruption, EvalConfig, Position, Source, TfdsDataset, TrainConfig, Value,
};
use bv_train::pp::{Pipeline, OPS};

const PP: &str = "decode(channels=1)|inception_crop(20)|flip_lr|value_range(-1, 1)|\
                  onehot(10, key='label', key_result='labels')|keep('image', 'labels')";

fn fixture() -> Arc<TfdsDataset> {
    Arc::new(TfdsDataset::open("fashion_mnist", Some(&common::fixture_dir())).unwrap())
}

fn source(split: &str, pp: &str, weight: f64) -> Source {
    Source {
        dataset: fixture(),
        split: split.into(),
        pp: Arc::new(Pipeline::build(pp, OPS).unwrap()),
        weight,
        shuffle_buffer: 100,
    }
}

fn config(threads: usize, batch_size: usize, pp: &str) -> TrainConfig {
    TrainConfig {
        sources: vec![source("train", pp, 1.0)],
        batch_size,
        seed: 42,
        threads,
        prefetch: 2,
        host_index: 0,
        host_count: 1,
        shuffle_files: true,
        corruption: Corruption::Error,
    }
}

fn take(cfg: &TrainConfig, start: Option<&Position>, n: usize) -> Vec<Batch> {
    train(cfg, start)
        .unwrap()
        .take(n)
        .map(|b| b.unwrap())
        .collect()
}

fn same(a: &[Batch], b: &[Batch]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.data == y.data && x.position == y.position)
}

#[test]
fn one_and_four_threads_give_identical_batches() {
    // 40 batches of 32 cross the first epoch boundary (1000 examples).
    let one = take(&config(1, 32, PP), None, 40);
    let four = take(&config(4, 32, PP), None, 40);
    assert!(same(&one, &four));
    assert_eq!(one[0].data["image"].shape(), [32, 20, 20, 1]);
    assert_eq!(one[0].data["labels"].shape(), [32, 10]);
    let mut other = config(2, 32, PP);
    other.seed = 43;
    assert_ne!(take(&other, None, 1)[0].data, one[0].data);
}

#[test]
fn restoring_a_position_gives_the_identical_next_batches() {
    let cfg = config(3, 32, PP);
    let run = take(&cfg, None, 45);
    for k in [0, 17, 30, 31, 38] {
        let pos = run[k].position.clone().unwrap();
        // Positions survive a JSON round trip (as in a checkpoint).
        let pos: Position = serde_json::from_str(&serde_json::to_string(&pos).unwrap()).unwrap();
        let resumed = take(&cfg, Some(&pos), 5);
        assert!(same(&resumed, &run[k + 1..k + 6]), "resume after batch {k}");
    }
}

#[test]
fn each_epoch_is_a_permutation_of_the_split() {
    let pp = "decode(channels=1)|keep('image', 'label')";
    let cfg = config(2, 8, pp);
    let batches = take(&cfg, None, 250); // exactly two epochs of 1000
    let ds = fixture();
    let mut want: HashMap<Vec<u8>, i32> = HashMap::new();
    for rec in ds.stream(&ds.reads(&ds.ranges("train").unwrap()), Corruption::Error) {
        let ex = ds.example(&rec.unwrap()).unwrap();
        let Value::Bytes(b) = &ex["image"] else {
            panic!()
        };
        let px = bv_train::pp::decode::decode_png(&b.data[0], 1)
            .unwrap()
            .data;
        *want.entry(px).or_default() += 1;
    }
    for epoch in batches.chunks(125) {
        let mut got: HashMap<Vec<u8>, i32> = HashMap::new();
        for b in epoch {
            let Value::U8(img) = &b.data["image"] else {
                panic!()
            };
            for px in img.data.chunks_exact(784) {
                *got.entry(px.to_vec()).or_default() += 1;
            }
        }
        assert_eq!(got, want);
    }
    // The two epochs are shuffled differently.
    assert_ne!(batches[0].data, batches[125].data);
}

#[test]
fn mixture_follows_the_weights() {
    let mut cfg = config(2, 50, "");
    cfg.sources = vec![
        source(
            "train",
            "decode(channels=1)|value_range(0, 1)|keep('image')",
            3.0,
        ),
        source(
            "test",
            "decode(channels=1)|value_range(10, 11)|keep('image')",
            1.0,
        ),
    ];
    let batches = take(&cfg, None, 40);
    let mut from_test = 0;
    for b in &batches {
        let Value::F32(img) = &b.data["image"] else {
            panic!()
        };
        from_test += img
            .data
            .chunks_exact(784)
            .filter(|px| px[0] >= 10.0)
            .count();
    }
    let frac = from_test as f64 / 2000.0;
    assert!(
        (0.2..0.3).contains(&frac),
        "{frac} of examples from the weight-1 source"
    );
    let pos = batches[20].position.clone().unwrap();
    assert!(same(&take(&cfg, Some(&pos), 3), &batches[21..24]));
}

#[test]
fn eval_is_ordered_and_padded_equally_on_every_host() {
    let ds = fixture();
    let pp = Arc::new(Pipeline::build("decode(channels=1)|onehot(10, key='label', key_result='labels')|keep('image', 'labels')", OPS).unwrap());
    let mut all_images = Vec::new();
    for host in 0..3 {
        let cfg = EvalConfig {
            dataset: ds.clone(),
            split: "test".into(),
            pp: pp.clone(),
            batch_size: 64,
            threads: 3,
            host_index: host,
            host_count: 3,
        };
        let batches: Vec<Batch> = eval(&cfg).unwrap().map(|b| b.unwrap()).collect();
        // 200 examples over 3 hosts: 67, 67, 66; ceil(67 / 64) = 2 batches each.
        assert_eq!(batches.len(), 2, "host {host}");
        let mut real = 0;
        for b in &batches {
            let Value::U8(m) = &b.data["_mask"] else {
                panic!()
            };
            let Value::U8(img) = &b.data["image"] else {
                panic!()
            };
            for (i, &mk) in m.data.iter().enumerate() {
                let px = &img.data[i * 784..(i + 1) * 784];
                if mk == 1 {
                    real += 1;
                    all_images.push(px.to_vec());
                } else {
                    assert!(px.iter().all(|&x| x == 0));
                }
            }
        }
        assert_eq!(real, [67, 67, 66][host]);
    }
    let ordered: Vec<Vec<u8>> = ds
        .stream(&ds.reads(&ds.ranges("test").unwrap()), Corruption::Error)
        .map(|r| {
            let ex = ds.example(&r.unwrap()).unwrap();
            let Value::Bytes(b) = &ex["image"] else {
                panic!()
            };
            bv_train::pp::decode::decode_png(&b.data[0], 1)
                .unwrap()
                .data
        })
        .collect();
    assert_eq!(all_images, ordered);
}

#[test]
fn pp_errors_name_the_record() {
    let cfg = config(2, 4, "decode|central_crop(64)");
    let err = train(&cfg, None)
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fashion_mnist-train.tfrecord") && err.contains("central_crop(64)"),
        "{err}"
    );
}
