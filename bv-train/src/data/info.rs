//! `dataset_info.json` and `features.json`: TFDS's `DatasetInfo` and `Feature` protos as JSON.
//!
//! Both the current form (`shardLengths`, `fileFormat`, `filepathTemplate`, supervised keys as
//! `tuple`) and the older one (`schema`, `statistics`, `supervisedKeys: {input, output}`) are
//! read; unknown keys are ignored. int64 fields are JSON strings in these files (protobuf's JSON
//! mapping); plain numbers are accepted too.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

use super::error::{DataError, Result};

/// TFDS's default shard file name template.
pub const DEFAULT_TEMPLATE: &str = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}";

/// The parts of `dataset_info.json` the reader uses.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetInfo {
    /// Dataset name, e.g. `fashion_mnist`.
    pub name: String,
    /// Version, e.g. `3.0.1`.
    #[serde(default)]
    pub version: String,
    /// Builder config name, if the dataset has configs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_name: Option<String>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `tfrecord` (also when absent), `array_record`, `riegeli` or `parquet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_format: Option<String>,
    /// The splits and their shards.
    #[serde(default)]
    pub splits: Vec<SplitInfo>,
    /// `(input, label)` feature keys, either form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervised_keys: Option<Json>,
    /// Everything else (citation, location, moduleName, ...), written back unchanged.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Json>,
}

/// One split's entry in `dataset_info.json`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitInfo {
    /// Split name, e.g. `train`.
    pub name: String,
    /// Examples per shard, in shard order.
    #[serde(default, with = "int64_list")]
    pub shard_lengths: Vec<u64>,
    /// Sum of the serialized example sizes (without framing).
    #[serde(default, with = "int64_opt", skip_serializing_if = "Option::is_none")]
    pub num_bytes: Option<u64>,
    /// Shard file name template (newer files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filepath_template: Option<String>,
    /// Deprecated shard count (old files).
    #[serde(default, with = "int64_opt", skip_serializing_if = "Option::is_none")]
    pub num_shards: Option<u64>,
    /// Anything else (statistics, ...).
    #[serde(flatten)]
    pub other: serde_json::Map<String, Json>,
}

impl SplitInfo {
    /// Number of examples in the split.
    pub fn num_examples(&self) -> u64 {
        self.shard_lengths.iter().sum()
    }
}

impl DatasetInfo {
    /// Reads and checks `dataset_info.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let info: DatasetInfo = serde_json::from_str(&text).map_err(|source| DataError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        for s in &info.splits {
            if s.shard_lengths.is_empty() && s.num_shards.unwrap_or(0) > 0 {
                return Err(DataError::Metadata {
                    path: path.to_path_buf(),
                    msg: format!(
                        "split '{}' has numShards but no shardLengths (a pre-2020 TFDS file); \
                         rebuild the dataset with a current tensorflow-datasets",
                        s.name
                    ),
                });
            }
        }
        Ok(info)
    }

    /// The file format, `tfrecord` when unset.
    pub fn file_format(&self) -> &str {
        self.file_format.as_deref().unwrap_or("tfrecord")
    }

    /// The split named `name`.
    pub fn split(&self, name: &str) -> Option<&SplitInfo> {
        self.splits.iter().find(|s| s.name == name)
    }

    /// Writes the JSON as TFDS does (keys sorted, 2-space indent).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("serializable");
        std::fs::write(path, text).map_err(|e| DataError::io(path, e))
    }
}

/// The shard file names of a split, in shard order.
pub fn shard_file_names(info: &DatasetInfo, split: &SplitInfo) -> Vec<String> {
    let template = split
        .filepath_template
        .as_deref()
        .unwrap_or(DEFAULT_TEMPLATE);
    let n = split.shard_lengths.len();
    (0..n)
        .map(|i| {
            template
                .replace("{DATASET}", &info.name)
                .replace("{SPLIT}", &split.name)
                .replace("{FILEFORMAT}", info.file_format())
                .replace("{SHARD_X_OF_Y}", &format!("{i:05}-of-{n:05}"))
                .replace("{SHARD_INDEX}", &format!("{i:05}"))
                .replace("{NUM_SHARDS}", &format!("{n:05}"))
        })
        .collect()
}

/// How one feature is stored, from `features.json`.
#[derive(Clone, Debug, PartialEq)]
pub enum FeatureKind {
    /// An encoded image (bytes); `shape` is (H, W, C) with -1 for unknown dims.
    Image {
        /// Decoded shape, -1 where unknown.
        shape: Vec<i64>,
        /// Pixel dtype, usually `uint8`.
        dtype: String,
        /// `png` or `jpeg`; `None` means PNG.
        encoding: Option<String>,
    },
    /// A class index stored as int64.
    ClassLabel {
        /// Number of classes.
        num_classes: u64,
    },
    /// A dense tensor.
    Tensor {
        /// Shape, -1 where unknown.
        shape: Vec<i64>,
        /// Element dtype.
        dtype: String,
    },
    /// A UTF-8 string.
    Text,
    /// A feature type this reader passes through by its stored list kind.
    Other(String),
}

/// One leaf feature with its flattened key (`/`-joined for nested dicts).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSpec {
    /// Flattened key.
    pub key: String,
    /// What it holds.
    pub kind: FeatureKind,
}

/// Reads `features.json` into its leaf features, sorted by key.
pub fn read_features(path: &Path) -> Result<Vec<FeatureSpec>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let json: Json = serde_json::from_str(&text).map_err(|source| DataError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    flatten_feature("", &json, &mut out).map_err(|msg| DataError::Metadata {
        path: path.to_path_buf(),
        msg,
    })?;
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn shape_of(v: &Json) -> std::result::Result<Vec<i64>, String> {
    let dims = v
        .get("shape")
        .and_then(|s| s.get("dimensions"))
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    dims.iter()
        .map(|d| match d {
            Json::String(s) => s.parse().map_err(|_| format!("bad dimension '{s}'")),
            Json::Number(n) => n.as_i64().ok_or_else(|| format!("bad dimension {n}")),
            other => Err(format!("bad dimension {other}")),
        })
        .collect()
}

fn flatten_feature(
    key: &str,
    v: &Json,
    out: &mut Vec<FeatureSpec>,
) -> std::result::Result<(), String> {
    let str_of = |v: &Json, k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
    if let Some(dict) = v.get("featuresDict") {
        let feats = dict
            .get("features")
            .and_then(Json::as_object)
            .ok_or_else(|| format!("featuresDict at '{key}' has no 'features' object"))?;
        for (k, sub) in feats {
            let full = if key.is_empty() {
                k.clone()
            } else {
                format!("{key}/{k}")
            };
            flatten_feature(&full, sub, out)?;
        }
        return Ok(());
    }
    let kind = if let Some(img) = v.get("image") {
        FeatureKind::Image {
            shape: shape_of(img)?,
            dtype: str_of(img, "dtype").unwrap_or_else(|| "uint8".into()),
            encoding: str_of(img, "encodingFormat"),
        }
    } else if let Some(cl) = v.get("classLabel") {
        let n = match cl.get("numClasses") {
            Some(Json::String(s)) => s.parse().map_err(|_| format!("bad numClasses '{s}'"))?,
            Some(Json::Number(n)) => n.as_u64().unwrap_or(0),
            _ => 0,
        };
        FeatureKind::ClassLabel { num_classes: n }
    } else if let Some(t) = v.get("tensor") {
        FeatureKind::Tensor {
            shape: shape_of(t)?,
            dtype: str_of(t, "dtype").unwrap_or_else(|| "float32".into()),
        }
    } else if v.get("text").is_some() {
        FeatureKind::Text
    } else {
        FeatureKind::Other(str_of(v, "pythonClassName").unwrap_or_else(|| "unknown".into()))
    };
    out.push(FeatureSpec {
        key: key.to_string(),
        kind,
    });
    Ok(())
}

fn json_u64<E: serde::de::Error>(v: &Json) -> std::result::Result<u64, E> {
    match v {
        Json::String(s) => s.parse().map_err(E::custom),
        Json::Number(n) => n
            .as_u64()
            .ok_or_else(|| E::custom(format!("not an unsigned integer: {n}"))),
        other => Err(E::custom(format!("expected an int64, got {other}"))),
    }
}

mod int64_list {
    use super::*;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u64>, D::Error> {
        let v: Vec<Json> = Vec::deserialize(d)?;
        v.iter().map(json_u64).collect()
    }
    pub fn serialize<S: Serializer>(v: &[u64], s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| x.to_string()))
    }
}

mod int64_opt {
    use super::*;
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<u64>, D::Error> {
        let v: Option<Json> = Option::deserialize(d)?;
        v.as_ref().map(json_u64).transpose()
    }
    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> std::result::Result<S::Ok, S::Error> {
        match v {
            Some(x) => s.serialize_str(&x.to_string()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_old_form() {
        // tensorflow/datasets testing/test_data/dataset_info/mnist/3.0.1 (abridged).
        let text = r#"{"name": "mnist", "schema": {"feature": [{"name": "image", "type": "INT"}]},
            "splits": [{"name": "test", "shardLengths": ["20"], "numBytes": "11594722",
                        "statistics": {"numExamples": "20"}}],
            "supervisedKeys": {"input": "image", "output": "label"}, "version": "3.0.1"}"#;
        let info: DatasetInfo = serde_json::from_str(text).unwrap();
        assert_eq!(info.file_format(), "tfrecord");
        let s = info.split("test").unwrap();
        assert_eq!((s.num_examples(), s.num_bytes), (20, Some(11594722)));
        assert_eq!(
            shard_file_names(&info, s),
            ["mnist-test.tfrecord-00000-of-00001"]
        );
    }
}
