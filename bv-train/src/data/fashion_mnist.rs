//! Fashion-MNIST from Debian's `dataset-fashion-mnist` raw IDX files, written as TFDS's
//! `fashion_mnist/3.0.1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use serde_json::json;

use super::error::{DataError, Result};
use super::example::from_example;
use super::idx::read_idx_u8;
use super::value::{Array, Example, Value};
use super::writer::DatasetWriter;

/// Where the Debian package installs the files.
pub const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The Debian package name.
pub const PACKAGE: &str = "dataset-fashion-mnist";
/// TFDS's version of the dataset.
pub const VERSION: &str = "3.0.1";
/// The class names, in label order.
pub const LABELS: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The IDX file stem for a split: `train` or `t10k` (test).
fn stem(split: &str) -> &'static str {
    if split == "train" {
        "train"
    } else {
        "t10k"
    }
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [format!("{name}.gz"), name.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

fn has_all(dir: &Path) -> bool {
    ["train", "t10k"].iter().all(|s| {
        find_file(dir, &format!("{s}-images-idx3-ubyte")).is_some()
            && find_file(dir, &format!("{s}-labels-idx1-ubyte")).is_some()
    })
}

/// The user cache used when the package is not installed: `~/.cache/bv/datasets/fashion-mnist`.
pub fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    Path::new(&home).join(".cache/bv/datasets/fashion-mnist")
}

/// Finds the raw IDX directory: `explicit`, else the installed package, else the user cache,
/// else fetches the package with `apt-get download` and unpacks it into the cache with
/// `dpkg-deb -x` (nothing is installed).
pub fn provide_idx_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = explicit {
        return if has_all(d) {
            Ok(d.to_path_buf())
        } else {
            Err(DataError::Provision(format!(
                "{} lacks {{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz]",
                d.display()
            )))
        };
    }
    for d in [PathBuf::from(SYSTEM_DIR), cache_dir()] {
        if has_all(&d) {
            return Ok(d);
        }
    }
    fetch_with_apt(&cache_dir())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| DataError::Provision(format!("{what}: cannot run: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DataError::Provision(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn fetch_with_apt(dest: &Path) -> Result<PathBuf> {
    let work = dest.with_extension("download");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| DataError::io(&work, e))?;
    let hint = format!(
        "Fashion-MNIST IDX files not found in {SYSTEM_DIR} or {}; fetching Debian's {PACKAGE}",
        dest.display()
    );
    run(
        Command::new("apt-get")
            .args(["download", PACKAGE])
            .current_dir(&work),
        &format!(
            "{hint}: `apt-get download {PACKAGE}` (try `apt-get update` first, or pass --idx-dir)"
        ),
    )?;
    let deb = std::fs::read_dir(&work)
        .map_err(|e| DataError::io(&work, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| DataError::Provision(format!("{hint}: apt-get download left no .deb")))?;
    let root = work.join("root");
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        &format!("{hint}: dpkg-deb -x"),
    )?;
    let unpacked = root.join(SYSTEM_DIR.trim_start_matches('/'));
    if !has_all(&unpacked) {
        return Err(DataError::Provision(format!(
            "{hint}: the package holds no IDX files at {SYSTEM_DIR}"
        )));
    }
    let _ = std::fs::remove_dir_all(dest);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    std::fs::rename(&unpacked, dest).map_err(|e| DataError::io(dest, e))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(dest.to_path_buf())
}

/// One split of the raw data: images (N, 28, 28) and labels (N).
pub struct RawSplit {
    /// Images, row-major uint8.
    pub images: Array<u8>,
    /// Labels 0..9.
    pub labels: Array<u8>,
}

impl RawSplit {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.data.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.data.is_empty()
    }

    /// The 784 pixels of example `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images.data[i * 784..(i + 1) * 784]
    }
}

/// Reads split `train` or `test` from an IDX directory.
pub fn read_raw(idx_dir: &Path, split: &str) -> Result<RawSplit> {
    let s = stem(split);
    let missing = |n: &str| DataError::Provision(format!("{} has no {n}[.gz]", idx_dir.display()));
    let ip = format!("{s}-images-idx3-ubyte");
    let lp = format!("{s}-labels-idx1-ubyte");
    let images = read_idx_u8(&find_file(idx_dir, &ip).ok_or_else(|| missing(&ip))?)?;
    let labels = read_idx_u8(&find_file(idx_dir, &lp).ok_or_else(|| missing(&lp))?)?;
    if images.shape.len() != 3 || images.shape[1..] != [28, 28] || labels.shape != [images.shape[0]]
    {
        return Err(DataError::Idx {
            path: idx_dir.join(&ip),
            msg: format!(
                "images {:?} and labels {:?} are not (N, 28, 28) and (N)",
                images.shape, labels.shape
            ),
        });
    }
    Ok(RawSplit { images, labels })
}

/// Encodes a grayscale image as an 8-bit PNG, as `tf.image.encode_png` does for TFDS.
pub fn encode_png_gray(pixels: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc
        .write_header()
        .map_err(|e| DataError::Encode(e.to_string()))?;
    wr.write_image_data(pixels)
        .map_err(|e| DataError::Encode(e.to_string()))?;
    wr.finish().map_err(|e| DataError::Encode(e.to_string()))?;
    Ok(out)
}

/// The `features.json` of TFDS's `fashion_mnist`.
pub fn features_json() -> serde_json::Value {
    json!({
        "featuresDict": {"features": {
            "image": {
                "image": {"dtype": "uint8", "shape": {"dimensions": ["28", "28", "1"]}},
                "pythonClassName": "tensorflow_datasets.core.features.image_feature.Image"
            },
            "label": {
                "classLabel": {"numClasses": "10"},
                "pythonClassName": "tensorflow_datasets.core.features.class_label_feature.ClassLabel"
            }
        }},
        "pythonClassName": "tensorflow_datasets.core.features.features_dict.FeaturesDict"
    })
}

/// Writes `data_dir/fashion_mnist/3.0.1` from the IDX files in `idx_dir`; `limits` (train,
/// test) keep only the first examples of a split. Returns the dataset folder.
pub fn prepare(idx_dir: &Path, data_dir: &Path, limits: [Option<usize>; 2]) -> Result<PathBuf> {
    let mut w = DatasetWriter::new(data_dir, "fashion_mnist", VERSION)?;
    for (split, limit) in ["train", "test"].into_iter().zip(limits) {
        let raw = read_raw(idx_dir, split)?;
        let n = limit.map_or(raw.len(), |l| l.min(raw.len()));
        let records = (0..n)
            .map(|i| {
                let mut ex = Example::new();
                let png = encode_png_gray(raw.image(i), 28, 28)?;
                ex.insert("image".into(), Value::Bytes(Array::scalar(png)));
                let label = i64::from(raw.labels.data[i]);
                ex.insert("label".into(), Value::I64(Array::scalar(label)));
                Ok((i.to_string(), from_example(&ex).encode_to_vec()))
            })
            .collect::<Result<Vec<_>>>()?;
        w.write_split(split, records)?;
    }
    let info = w.info_mut();
    info.description = Some(
        "Fashion-MNIST is a dataset of Zalando's article images consisting of a training set of \
         60,000 examples and a test set of 10,000 examples. Each example is a 28x28 grayscale \
         image, associated with a label from 10 classes."
            .into(),
    );
    info.supervised_keys = Some(json!({"tuple": {"items": [
        {"featureKey": "image"}, {"featureKey": "label"}
    ]}}));
    info.other.insert(
        "location".into(),
        json!({"urls": ["https://github.com/zalandoresearch/fashion-mnist"]}),
    );
    info.other.insert(
        "moduleName".into(),
        json!("tensorflow_datasets.image_classification.mnist"),
    );
    w.write_file("label.labels.txt", &(LABELS.join("\n") + "\n"))?;
    w.finish(&features_json())
}
