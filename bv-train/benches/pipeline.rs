//! Input-pipeline throughput: `decode_jpeg_and_inception_crop(224)|flip_lr|value_range(-1, 1)`.
//!
//! ```text
//! cargo bench -p bv-train --bench pipeline -- make JPEG_DIR DATA_DIR   # write the dataset
//! cargo bench -p bv-train --bench pipeline -- run DATA_DIR [THREADS] [BATCHES]
//! cargo bench -p bv-train --bench pipeline -- ops DATA_DIR   # per-op cost, one thread
//! cargo bench -p bv-train --bench pipeline -- digest DATA_DIR   # sha256 of pp outputs
//! ```
//! `make` writes every `*.jpg` of JPEG_DIR (bytes unchanged) as TFDS dataset
//! `bv_jpeg_bench:1.0.0`; `run` prints one JSON line with images per second; `digest` hashes
//! the outputs of several pp strings on every image with 4 seeds, to check that two builds
//! (e.g. with and without `jpeg-simd`) compute identical pixels.
//! `benches/run.sh` compares with tf.data running big_vision's same pp string.

use std::sync::Arc;
use std::time::Instant;

use bv_train::data::example::from_example;
use bv_train::data::writer::DatasetWriter;
use bv_train::data::{train, Array, Corruption, Example, Source, TfdsDataset, TrainConfig, Value};
use bv_train::pp::{Pipeline, Rng, OPS};
use prost::Message;
use serde_json::json;
use sha2::{Digest, Sha256};

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
    let (t, cpu) = (Instant::now(), process_cpu_secs());
    for _ in 0..batches {
        it.next().ok_or("pipeline ended")??;
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu_ms = (process_cpu_secs() - cpu) * 1e3 / (batches * BATCH) as f64;
    println!(
        "{}",
        json!({"impl": "bv", "threads": threads, "batches": batches, "batch_size": BATCH,
               "seconds": secs, "images_per_sec": (batches * BATCH) as f64 / secs,
               "cpu_ms_per_image": cpu_ms})
    );
    Ok(())
}

fn examples(data_dir: &str, split: &str) -> Result<Vec<Example>, Box<dyn std::error::Error>> {
    let ds = TfdsDataset::open("bv_jpeg_bench", Some(data_dir.as_ref()))?;
    let reads = ds.reads(&ds.ranges(split)?);
    let examples = ds
        .stream(&reads, Corruption::Error)
        .map(|r| ds.example(&r?))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(examples)
}

/// This thread's CPU time in seconds (Linux `schedstat`), which other processes on a busy
/// machine disturb much less than wall time.
fn thread_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-9)
}

/// CPU time of all of this process's threads in seconds (Linux `schedstat`).
fn process_cpu_secs() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        * 1e-9
}

/// Single-thread cost of each prefix of the pp string, in ms per image: wall and CPU time,
/// each the best of 5 passes.
fn ops(data_dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let examples = examples(data_dir, "train[:200]")?;
    let parts: Vec<&str> = PP.split('|').collect();
    for n in 1..=parts.len() {
        let spec = parts[..n].join("|");
        let pp = Pipeline::build(&spec, OPS)?;
        let (mut wall, mut cpu) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..5 {
            let (t, c) = (Instant::now(), thread_cpu_secs());
            for (i, ex) in examples.iter().enumerate() {
                let mut ex = ex.clone();
                pp.apply(&mut ex, &mut Rng::new(0, i as u64))?;
            }
            let per = 1e3 / examples.len() as f64;
            wall = wall.min(t.elapsed().as_secs_f64() * per);
            cpu = cpu.min((thread_cpu_secs() - c) * per);
        }
        println!("{wall:8.3} ms/image wall {cpu:8.3} ms/image cpu  {spec}");
    }
    Ok(())
}

/// sha256 of the outputs of each pp string over every image and 4 seeds.
fn digest(data_dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let examples = examples(data_dir, "train")?;
    for spec in [
        "decode",
        "decode_jpeg_and_inception_crop(224)",
        "decode_jpeg_and_inception_crop(160)|flip_lr|value_range(-1, 1)",
        "decode_jpeg_and_inception_crop(224, area_min=50)|resize(96)",
        "decode_jpeg_and_inception_crop|resize((333, 250))",
        "decode(channels=1)|inception_crop(77)",
        "decode_jpeg_and_inception_crop|value_range(0, 255)|resize((150, 97))",
    ] {
        let pp = Pipeline::build(spec, OPS)?;
        let mut h = Sha256::new();
        for seed in 0..4 {
            for (i, ex) in examples.iter().enumerate() {
                let mut ex = ex.clone();
                pp.apply(&mut ex, &mut Rng::new(seed, i as u64))?;
                h.update(format!("{:?}", ex["image"].shape()));
                match &ex["image"] {
                    Value::U8(a) => h.update(&a.data),
                    Value::F32(a) => a.data.iter().for_each(|x| h.update(x.to_le_bytes())),
                    other => return Err(format!("unexpected {}", other.dtype()).into()),
                }
            }
        }
        println!("{:x}  {spec}", h.finalize());
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
        Some("digest") if args.len() == 2 => digest(&args[1]),
        Some("make") if args.len() == 3 => make(&args[1], &args[2]),
        Some("run") if args.len() >= 2 => {
            let threads = args.get(2).map_or(Ok(2), |s| s.parse())?;
            let batches = args.get(3).map_or(Ok(50), |s| s.parse())?;
            run(&args[1], threads, batches)
        }
        _ => {
            eprintln!(
                "usage: pipeline make JPEG_DIR DATA_DIR | run DATA_DIR [THREADS] [BATCHES] | \
                 ops DATA_DIR | digest DATA_DIR"
            );
            Ok(())
        }
    }
}
