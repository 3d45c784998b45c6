//! A prepared TFDS dataset directory, `$TFDS_DATA_DIR/NAME[/CONFIG]/VERSION/`, read without
//! TensorFlow. A data dir in a bucket (`gs://`, `s3://`) is read through a local copy of
//! the dataset's folder in the bv cache ([`crate::storage::local_copy_dir`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;

use super::array_record::ArrayRecordReader;
use super::error::{DataError, Result};
use super::example::{to_example, ExampleProto};
use super::info::{read_features, shard_file_names, DatasetInfo, FeatureSpec};
use super::split::{even_split, shard_reads, ShardRead, SplitRange, SplitSpec};
use super::tfrecord::{Corruption, TfRecordReader};
use super::value::Example;

/// The data directory: `explicit`, else `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`.
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(d) = explicit {
        return d.to_path_buf();
    }
    if let Some(d) = std::env::var_os("TFDS_DATA_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    Path::new(&home).join("tensorflow_datasets")
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.').map(|p| p.parse().ok());
    let out = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(out)
}

/// A located dataset: its directory, `dataset_info.json` and `features.json`.
#[derive(Clone, Debug)]
pub struct TfdsDataset {
    /// `.../NAME[/CONFIG]/VERSION`.
    pub dir: PathBuf,
    /// Parsed `dataset_info.json`.
    pub info: DatasetInfo,
    /// Leaf features from `features.json` (empty when the file is absent).
    pub features: Vec<FeatureSpec>,
    /// How the shards are stored.
    pub format: FileFormat,
}

/// A shard file format we read (`fileFormat` in `dataset_info.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// `tfrecord`: [`TfRecordReader`].
    TfRecord,
    /// `array_record`: [`ArrayRecordReader`].
    ArrayRecord,
}

impl TfdsDataset {
    /// Opens `name[/config][:version]` under [`data_dir`]`(data_dir)`; without a version the
    /// newest complete one (a folder holding `dataset_info.json`) is used.
    pub fn open(name: &str, data_dir_opt: Option<&Path>) -> Result<Self> {
        let root = data_dir(data_dir_opt);
        let (path_part, version) = match name.split_once(':') {
            Some((p, v)) => (p, Some(v)),
            None => (name, None),
        };
        // A dataset in a bucket is read from its local copy in the bv cache.
        let base = crate::storage::local_copy_dir(&root.join(path_part)).map_err(|source| {
            DataError::Io {
                path: root.join(path_part),
                source,
            }
        })?;
        let not_found = |detail: String| DataError::NotFound {
            name: name.to_string(),
            data_dir: root.clone(),
            detail,
        };
        let dir = match version {
            Some(v) => base.join(v),
            None => {
                let entries = std::fs::read_dir(&base)
                    .map_err(|_| not_found(format!("no folder {}", base.display())))?;
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        let v = parse_version(&n)?;
                        e.path()
                            .join("dataset_info.json")
                            .is_file()
                            .then(|| (v, e.path()))
                    })
                    .max()
                    .map(|(_, p)| p)
                    .ok_or_else(|| {
                        not_found(format!(
                            "no VERSION folder with dataset_info.json in {}",
                            base.display()
                        ))
                    })?
            }
        };
        if !dir.join("dataset_info.json").is_file() {
            return Err(not_found(format!(
                "no {}",
                dir.join("dataset_info.json").display()
            )));
        }
        Self::from_dir(&dir)
    }

    /// Opens a dataset directory directly (TFDS's `builder_from_directory`).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let info = DatasetInfo::read(&dir.join("dataset_info.json"))?;
        let fpath = dir.join("features.json");
        let features = if fpath.is_file() {
            read_features(&fpath)?
        } else {
            Vec::new()
        };
        let format = match info.file_format() {
            "tfrecord" => FileFormat::TfRecord,
            "array_record" => FileFormat::ArrayRecord,
            other => {
                return Err(DataError::Metadata {
                    path: dir.join("dataset_info.json"),
                    msg: format!(
                        "file format '{other}' is not supported; rebuild with \
                         --file_format=tfrecord or array_record"
                    ),
                })
            }
        };
        Ok(TfdsDataset {
            dir: dir.to_path_buf(),
            info,
            features,
            format,
        })
    }

    /// Names of the splits.
    pub fn split_names(&self) -> Vec<&str> {
        self.info.splits.iter().map(|s| s.name.as_str()).collect()
    }

    /// Resolves a split string to example ranges.
    pub fn ranges(&self, split: &str) -> Result<Vec<SplitRange>> {
        SplitSpec::parse(split)?.resolve(
            |n| self.info.split(n).map(|s| s.num_examples()),
            &self.split_names(),
        )
    }

    /// The ranges of host `index` of `count`, as `tfds.even_splits(split, count)[index]`.
    pub fn host_ranges(&self, split: &str, index: usize, count: usize) -> Result<Vec<SplitRange>> {
        if index >= count {
            return Err(DataError::Split {
                spec: split.to_string(),
                msg: format!("host index {index} is not below the host count {count}"),
            });
        }
        Ok(even_split(&self.ranges(split)?, index, count, false))
    }

    /// The shard reads covering `ranges`, in order.
    pub fn reads(&self, ranges: &[SplitRange]) -> Vec<ShardRead> {
        ranges
            .iter()
            .flat_map(|r| {
                let lens = self
                    .info
                    .split(&r.name)
                    .map(|s| s.shard_lengths.clone())
                    .unwrap_or_default();
                shard_reads(r, &lens)
            })
            .collect()
    }

    /// Path of shard `shard` of split `split`.
    pub fn shard_path(&self, split: &str, shard: usize) -> PathBuf {
        let s = self.info.split(split).expect("split resolved before");
        self.dir.join(&shard_file_names(&self.info, s)[shard])
    }

    /// Reads the records of `reads` in order.
    pub fn stream(&self, reads: &[ShardRead], corruption: Corruption) -> RecordStream {
        let parts = reads
            .iter()
            .map(|r| (Arc::new(self.shard_path(&r.split, r.shard)), r.skip, r.take))
            .collect();
        RecordStream::new(parts, self.format, corruption)
    }

    /// Decodes one record into an example dict.
    pub fn example(&self, rec: &Record) -> Result<Example> {
        let proto =
            ExampleProto::decode(rec.data.as_slice()).map_err(|source| DataError::Example {
                path: rec.path.to_path_buf(),
                offset: rec.offset,
                source,
            })?;
        to_example(proto, &self.features)
    }
}

/// One record of a shard.
#[derive(Clone, Debug)]
pub struct Record {
    /// The shard file.
    pub path: Arc<PathBuf>,
    /// Byte offset of the record in the shard.
    pub offset: u64,
    /// The serialized `tf.train.Example`.
    pub data: Vec<u8>,
}

/// Records of a sequence of shard reads, in order.
pub struct RecordStream {
    parts: Vec<(Arc<PathBuf>, u64, u64)>,
    format: FileFormat,
    next_part: usize,
    reader: Option<(Arc<PathBuf>, ShardReader)>,
    left: u64,
    corruption: Corruption,
    skipped: u64,
}

impl RecordStream {
    /// A stream over `(shard path, skip, take)` parts.
    pub fn new(
        parts: Vec<(Arc<PathBuf>, u64, u64)>,
        format: FileFormat,
        corruption: Corruption,
    ) -> Self {
        RecordStream {
            parts,
            format,
            next_part: 0,
            reader: None,
            left: 0,
            corruption,
            skipped: 0,
        }
    }

    /// Corrupted records skipped so far (with [`Corruption::SkipAndCount`]).
    pub fn skipped(&self) -> u64 {
        self.skipped + self.reader.as_ref().map_or(0, |(_, r)| r.skipped())
    }

    fn advance(&mut self) -> Result<bool> {
        while self.left == 0 || self.reader.is_none() {
            if let Some((_, r)) = self.reader.take() {
                self.skipped += r.skipped();
            }
            let Some((path, skip, take)) = self.parts.get(self.next_part).cloned() else {
                return Ok(false);
            };
            self.next_part += 1;
            let mut r = ShardReader::open(&path, self.format, self.corruption)?;
            for _ in 0..skip {
                if r.skip_record().transpose()?.is_none() {
                    break;
                }
            }
            self.left = take;
            self.reader = Some((path, r));
        }
        Ok(true)
    }

    fn step(&mut self, want_data: bool) -> Option<Result<Record>> {
        loop {
            match self.advance() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
            let (path, r) = self.reader.as_mut().expect("advance opened a reader");
            let got = if want_data {
                r.next_record()
            } else {
                r.skip_record().map(|x| x.map(|o| (o, Vec::new())))
            };
            match got {
                Some(Ok((offset, data))) => {
                    self.left -= 1;
                    return Some(Ok(Record {
                        path: path.clone(),
                        offset,
                        data,
                    }));
                }
                Some(Err(e)) => return Some(Err(e)),
                None if self.corruption == Corruption::Error => {
                    let left = std::mem::take(&mut self.left);
                    return Some(Err(DataError::Corrupt {
                        path: path.to_path_buf(),
                        offset: r.offset(),
                        what: format!(
                            "file ends {left} records early (dataset_info.json's shardLengths \
                             promise more); the shard is truncated"
                        ),
                    }));
                }
                None => self.left = 0,
            }
        }
    }

    /// The next record's location without reading its payload (`data` is empty).
    pub fn next_location(&mut self) -> Option<Result<Record>> {
        self.step(false)
    }
}

impl Iterator for RecordStream {
    type Item = Result<Record>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

/// Reads the payloads of `records` (as located by [`RecordStream::next_location`]) in place,
/// verifying their checksums; each shard is opened once and read in offset order.
pub fn fill_records(records: &mut [Record], format: FileFormat) -> Result<()> {
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&records[a], &records[b]);
        (&a.path, a.offset).cmp(&(&b.path, b.offset))
    });
    let mut i = 0;
    while i < order.len() {
        let path = records[order[i]].path.clone();
        let mut shard = ShardReader::open(&path, format, Corruption::Error)?;
        while let Some(&j) = order.get(i).filter(|&&j| records[j].path == path) {
            records[j].data = shard.read_at(records[j].offset)?;
            i += 1;
        }
    }
    Ok(())
}

/// A shard being read sequentially, in either format.
enum ShardReader {
    TfRecord(TfRecordReader),
    ArrayRecord(ArrayRecordReader),
}

impl ShardReader {
    fn open(path: &Path, format: FileFormat, corruption: Corruption) -> Result<Self> {
        Ok(match format {
            FileFormat::TfRecord => ShardReader::TfRecord(TfRecordReader::open(path, corruption)?),
            FileFormat::ArrayRecord => {
                ShardReader::ArrayRecord(ArrayRecordReader::open(path, corruption)?)
            }
        })
    }

    fn next_record(&mut self) -> Option<Result<(u64, Vec<u8>)>> {
        match self {
            ShardReader::TfRecord(r) => r.next_record(),
            ShardReader::ArrayRecord(r) => r.next_record(),
        }
    }

    fn skip_record(&mut self) -> Option<Result<u64>> {
        match self {
            ShardReader::TfRecord(r) => r.skip_record(),
            ShardReader::ArrayRecord(r) => r.skip_record(),
        }
    }

    fn skipped(&self) -> u64 {
        match self {
            ShardReader::TfRecord(r) => r.skipped(),
            ShardReader::ArrayRecord(r) => r.skipped(),
        }
    }

    fn offset(&self) -> u64 {
        match self {
            ShardReader::TfRecord(r) => r.offset(),
            ShardReader::ArrayRecord(r) => r.offset(),
        }
    }

    /// The payload of the record at `offset` (a TFRecord byte offset or an ArrayRecord
    /// position); moves a TFRecord reader past it.
    fn read_at(&mut self, offset: u64) -> Result<Vec<u8>> {
        match self {
            ShardReader::ArrayRecord(r) => r.read_at(offset),
            ShardReader::TfRecord(r) => {
                r.seek(offset)?;
                match r.next_record() {
                    Some(rec) => Ok(rec?.1),
                    None => Err(DataError::Corrupt {
                        path: r.path().to_path_buf(),
                        offset,
                        what: "no record at this offset (end of file)".into(),
                    }),
                }
            }
        }
    }
}
