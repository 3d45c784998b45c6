//! Errors of the dataset reader and writer, each naming the file (and byte offset) involved.

use std::path::PathBuf;

/// What went wrong while locating, reading or writing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read or written. Check the path and its permissions.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON metadata file does not parse. Regenerate it, or fix the named field.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
    /// A JSON metadata file parses but does not describe a dataset we can read.
    #[error("{path}: {msg}")]
    Metadata {
        /// The JSON file.
        path: PathBuf,
        /// What is missing or wrong.
        msg: String,
    },
    /// No prepared dataset of that name exists under the data directory; the message says
    /// how to prepare it and how to point bv at it.
    #[error("dataset '{name}' not found under {} ({detail}); {}", data_dir.display(), how_to_prepare(name, data_dir))]
    NotFound {
        /// The dataset name as given (`name[/config][:version]`).
        name: String,
        /// The data directory searched.
        data_dir: PathBuf,
        /// What was looked for.
        detail: String,
    },
    /// A checksum or structure check of a shard fails: it is corrupted (or truncated).
    #[error("corrupted shard {path} at byte {offset}: {what}")]
    Corrupt {
        /// The shard file.
        path: PathBuf,
        /// Byte offset of the record's start.
        offset: u64,
        /// Which check failed.
        what: String,
    },
    /// A shard uses a feature of its format that this reader does not implement.
    #[error("{path} at byte {offset}: {what}")]
    Unsupported {
        /// The shard file.
        path: PathBuf,
        /// Byte offset of the chunk using it.
        offset: u64,
        /// The feature, and what to do instead.
        what: String,
    },
    /// A record's payload is not a valid `tf.train.Example`.
    #[error("{path} at byte {offset}: not a tf.train.Example: {source}")]
    Example {
        /// The shard file.
        path: PathBuf,
        /// Byte offset of the record's start.
        offset: u64,
        /// The protobuf decode error.
        source: prost::DecodeError,
    },
    /// A feature of an example does not match the dataset's features.json.
    #[error("feature '{key}': {msg}")]
    Feature {
        /// The flattened feature key (`a/b`).
        key: String,
        /// What does not match.
        msg: String,
    },
    /// A split string does not parse or does not fit the dataset.
    #[error("bad split '{spec}': {msg}")]
    Split {
        /// The split string as given.
        spec: String,
        /// What is wrong, and what would be accepted.
        msg: String,
    },
    /// A raw IDX file (MNIST format) is malformed.
    #[error("{path}: bad IDX file: {msg}")]
    Idx {
        /// The IDX file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Raw source files for `data prepare` could not be found or fetched.
    #[error("{0}")]
    Provision(String),
    /// An image could not be encoded while writing a dataset.
    #[error("encoding image: {0}")]
    Encode(String),
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for the data module.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// How to prepare dataset `name` (`name[/config][:version]`) under `data_dir`, and how to
/// point bv at a data directory elsewhere.
pub(crate) fn how_to_prepare(name: &str, data_dir: &std::path::Path) -> String {
    let base = name.split([':', '/']).next().unwrap_or(name);
    let dir = data_dir.display();
    let build = format!(
        "build it with TensorFlow Datasets (`pip install tensorflow tensorflow-datasets`, then \
         `tfds build {base} --data_dir {dir}`)"
    );
    let how = match base {
        "fashion_mnist" => "prepare it with `bv-train data prepare fashion_mnist`".to_string(),
        _ if base.starts_with("imagenet2012") => format!(
            "{base} needs the ImageNet archives downloaded by hand: get ILSVRC2012_img_train.tar \
             and ILSVRC2012_img_val.tar from https://image-net.org (after signing in), put them \
             in {dir}/downloads/manual/, then {build} (about an hour)"
        ),
        _ => build,
    };
    format!(
        "{how}. A dataset prepared elsewhere is found with --data-dir DIR or TFDS_DATA_DIR=DIR \
         (DIR holds {base}/VERSION/)"
    )
}
