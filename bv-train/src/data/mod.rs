//! Datasets: the TFDS directory format (TFRecord and ArrayRecord shards, `tf.train.Example`,
//! split strings), raw-file preparation, and the training and eval input pipelines.

pub mod array_record;
pub mod batch;
pub mod error;
pub mod example;
pub mod fashion_mnist;
pub mod idx;
pub mod info;
pub mod inspect;
pub mod pipeline;
pub mod shuffle;
pub mod split;
pub mod tfds;
pub mod tfrecord;
pub mod value;
pub mod writer;

pub use array_record::ArrayRecordReader;
pub use error::DataError;
pub use info::{DatasetInfo, FeatureKind, FeatureSpec, SplitInfo};
pub use pipeline::{
    eval, train, Batch, Batches, EvalConfig, PipelineError, Position, Source, TrainConfig,
};
pub use split::{even_split, ShardRead, SplitRange, SplitSpec};
pub use tfds::{data_dir, FileFormat, Record, RecordStream, TfdsDataset};
pub use tfrecord::{Corruption, TfRecordReader, TfRecordWriter};
pub use value::{Array, Example, Value};
