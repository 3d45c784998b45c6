//! Writes a TFDS-format dataset directory (TFRecord shards plus `dataset_info.json` and
//! `features.json`), the way `tfds build` lays it out.
//!
//! Records are ordered as TFDS orders them (ascending `md5(split name + str(key))`), shard counts
//! follow `shard_utils.calculate_number_shards`, and the folder is written as
//! `NAME/incomplete.VERSION` and renamed when complete.

use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde_json::Value as Json;

use super::error::{DataError, Result};
use super::info::{shard_file_names, DatasetInfo, SplitInfo, DEFAULT_TEMPLATE};
use super::tfrecord::TfRecordWriter;

/// TFDS's shard count for a split of `num_examples` records totalling `total_bytes`.
pub fn number_of_shards(total_bytes: u64, num_examples: u64) -> u64 {
    const MIN: u64 = 64 << 20;
    const MAX: u64 = 1024 << 20;
    let total = total_bytes + 16 * num_examples;
    let (max_n, min_n) = (total / MIN, total / MAX);
    if min_n <= 1024 && 1024 <= max_n && num_examples >= 1024 {
        return 1024;
    }
    if min_n > 1024 {
        let mut n = 2048;
        while n < min_n || num_examples < n {
            n += 1024;
        }
        return n;
    }
    [512, 256, 128, 64, 32, 16, 8, 4, 2]
        .into_iter()
        .find(|&n| min_n <= n && n <= max_n && num_examples >= n)
        .unwrap_or(1)
}

/// TFDS's record-order key: `md5(salt + key)` as a 128-bit integer.
pub fn tfds_hash(salt: &str, key: &str) -> u128 {
    let mut h = Md5::new();
    h.update(salt.as_bytes());
    h.update(key.as_bytes());
    u128::from_be_bytes(h.finalize().into())
}

/// Builds one dataset directory.
pub struct DatasetWriter {
    info: DatasetInfo,
    tmp: PathBuf,
    dest: PathBuf,
}

impl DatasetWriter {
    /// Starts `data_dir/name/version`, replacing an unfinished earlier attempt.
    pub fn new(data_dir: &Path, name: &str, version: &str) -> Result<Self> {
        let base = data_dir.join(name);
        let tmp = base.join(format!("incomplete.{version}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        Ok(DatasetWriter {
            info: DatasetInfo {
                name: name.to_string(),
                version: version.to_string(),
                file_format: Some("tfrecord".into()),
                ..Default::default()
            },
            tmp,
            dest: base.join(version),
        })
    }

    /// The `dataset_info.json` fields to be written (description, supervised keys, ...).
    pub fn info_mut(&mut self) -> &mut DatasetInfo {
        &mut self.info
    }

    /// Writes one split from `(key, serialized tf.train.Example)` pairs, in TFDS's order.
    pub fn write_split(&mut self, split: &str, mut records: Vec<(String, Vec<u8>)>) -> Result<()> {
        records.sort_by_cached_key(|(k, _)| tfds_hash(split, k));
        let n = records.len() as u64;
        let total: u64 = records.iter().map(|(_, r)| r.len() as u64).sum();
        let shards = number_of_shards(total, n);
        let bounds: Vec<u64> = (0..=shards)
            .map(|i| ((n as f64) * (i as f64) / (shards as f64)).round_ties_even() as u64)
            .collect();
        let mut si = SplitInfo {
            name: split.to_string(),
            shard_lengths: bounds.windows(2).map(|w| w[1] - w[0]).collect(),
            num_bytes: Some(total),
            filepath_template: Some(DEFAULT_TEMPLATE.into()),
            ..Default::default()
        };
        let names = shard_file_names(&self.info, &si);
        for (i, name) in names.iter().enumerate() {
            let mut w = TfRecordWriter::create(&self.tmp.join(name))?;
            for (_, rec) in &records[bounds[i] as usize..bounds[i + 1] as usize] {
                w.write(rec)?;
            }
            w.finish()?;
        }
        si.num_bytes = Some(total);
        self.info.splits.push(si);
        Ok(())
    }

    /// Writes a text file beside the shards (e.g. `label.labels.txt`).
    pub fn write_file(&self, name: &str, text: &str) -> Result<()> {
        let p = self.tmp.join(name);
        std::fs::write(&p, text).map_err(|e| DataError::io(p, e))
    }

    /// Writes the JSON files and moves the folder into place; returns its path.
    pub fn finish(self, features: &Json) -> Result<PathBuf> {
        self.info.write(&self.tmp.join("dataset_info.json"))?;
        let fpath = self.tmp.join("features.json");
        let text = serde_json::to_string_pretty(features).expect("serializable");
        std::fs::write(&fpath, text).map_err(|e| DataError::io(&fpath, e))?;
        if self.dest.exists() {
            std::fs::remove_dir_all(&self.dest).map_err(|e| DataError::io(&self.dest, e))?;
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| DataError::io(&self.dest, e))?;
        Ok(self.dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_counts_follow_tfds() {
        // Full Fashion-MNIST train (32.7 MB) fits one shard; ImageNet train (~140 GB) gets 1024.
        assert_eq!(number_of_shards(32_717_636, 60_000), 1);
        assert_eq!(number_of_shards(140 << 30, 1_281_167), 1024);
        assert_eq!(number_of_shards(1 << 30, 100_000), 16);
    }
}
