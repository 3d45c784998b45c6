//! Input-pipeline throughput: `decode_jpeg_and_inception_crop(224)|flip_lr|value_range(-1, 1)`.
//!
//! ```text
//! cargo bench -p bv-train --bench pipeline -- make JPEG_DIR DATA_DIR   # write the dataset
//! cargo bench -p bv-train --bench pipeline -- run DATA_DIR [THREADS] [BATCHES]
//! cargo bench -p bv-train --bench pipeline -- ops DATA_DIR   # per-op cost, one thread
//! ```
//! `make` writes every `*.jpg` of JPEG_DIR (bytes unchanged) as TFDS dataset
//! `bv_jpeg_bench:1.0.0`; `run` prints one JSON line with images per second.
//! `benches/run.sh` compares with tf.data running big_vision's same pp string.

use std::sync::Arc;
use std::time::Instant;

use bv_train::data::example::from_example;
use bv_train::data::writer::DatasetWriter;
use bv_train::data::{train, Array, Corruption, Example, Source, TfdsDataset, TrainConfig, Value};
use bv_train::pp::{Pipeline, OPS};
use prost::Message;
use serde_json::json;

const PP: &str = "decode_jpeg_and_inception_crop(224)|flip_lr|value_range(-1, 1)|keep('image')";
const BATCH: usize = 64;

fn make(jpeg_dir: &str, data_dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut files: Vec<_> = std::fs::read_dir(jpeg_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    let mut records = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let mut ex = Example::new();
        ex.insert(
            "image".into(),
            Value::Bytes(Array::scalar(std::fs::read(f)?)),
        );
        ex.insert("label".into(), Value::I64(Array::scalar((i % 10) as i64)));
        let key = f.file_name().unwrap().to_string_lossy().into_owned();
        records.push((key, from_example(&ex).encode_to_vec()));
    }
    let mut w = DatasetWriter::new(data_dir.as_ref(), "bv_jpeg_bench", "1.0.0")?;
    w.write_split("train", records)?;
    w.info_mut().description = Some("JPEG photos for the input-pipeline benchmark".into());
    let feats = json!({"featuresDict": {"features": {
        "image": {"image": {"dtype": "uint8", "encodingFormat": "jpeg",
                            "shape": {"dimensions": ["-1", "-1", "3"]}},
                  "pythonClassName": "tensorflow_datasets.core.features.image_feature.Image"},
        "label": {"classLabel": {"numClasses": "10"},
                  "pythonClassName": "tensorflow_datasets.core.features.class_label_feature.ClassLabel"}}},
        "pythonClassName": "tensorflow_datasets.core.features.features_dict.FeaturesDict"});
    let out = w.finish(&feats)?;
    println!("wrote {} images to {}", files.len(), out.display());
    Ok(())
}

fn run(data_dir: &str, threads: usize, batches: usize) -> Result<(), Box<dyn std::error::Error>> {
    let ds = Arc::new(TfdsDataset::open("bv_jpeg_bench", Some(data_dir.as_ref()))?);
    let cfg = TrainConfig {
        sources: vec![Source {
            dataset: ds,
            split: "train".into(),
            pp: Arc::new(Pipeline::build(PP, OPS)?),
            weight: 1.0,
            shuffle_buffer: 1000,
        }],
        batch_size: BATCH,
        seed: 0,
        threads,
        prefetch: 2,
        host_index: 0,
        host_count: 1,
        shuffle_files: true,
        corruption: Corruption::Error,
    };
    let mut it = train(&cfg, None)?;
    for _ in 0..3 {
        it.next().ok_or("pipeline ended")??;
    }
    let t = Instant::now();
    for _ in 0..batches {
        it.next().ok_or("pipeline ended")??;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"impl": "bv", "threads": threads, "batches": batches, "batch_size": BATCH,
               "seconds": secs, "images_per_sec": (batches * BATCH) as f64 / secs})
    );
    Ok(())
}

/// Single-thread cost of each prefix of the pp string, in ms per image.
fn ops(data_dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let ds = TfdsDataset::open("bv_jpeg_bench", Some(data_dir.as_ref()))?;
    let reads = ds.reads(&ds.ranges("train[:200]")?);
    let examples = ds
        .stream(&reads, Corruption::Error)
        .map(|r| ds.example(&r?))
        .collect::<Result<Vec<_>, _>>()?;
    let parts: Vec<&str> = PP.split('|').collect();
    for n in 1..=parts.len() {
        let spec = parts[..n].join("|");
        let pp = Pipeline::build(&spec, OPS)?;
        let t = Instant::now();
        for (i, ex) in examples.iter().enumerate() {
            let mut ex = ex.clone();
            pp.apply(&mut ex, &mut bv_train::pp::Rng::new(0, i as u64))?;
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / examples.len() as f64;
        println!("{ms:8.3} ms/image  {spec}");
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("ops") if args.len() == 2 => ops(&args[1]),
        Some("make") if args.len() == 3 => make(&args[1], &args[2]),
        Some("run") if args.len() >= 2 => {
            let threads = args.get(2).map_or(Ok(2), |s| s.parse())?;
            let batches = args.get(3).map_or(Ok(50), |s| s.parse())?;
            run(&args[1], threads, batches)
        }
        _ => {
            eprintln!("usage: pipeline make JPEG_DIR DATA_DIR | pipeline run DATA_DIR [THREADS] [BATCHES]");
            Ok(())
        }
    }
}
