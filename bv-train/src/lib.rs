//! big_vision's trainer in Rust: configs, the TFDS input pipeline and preprocessing ops,
//! optimizers and schedules, evaluators, checkpoints and the training loop.
//!
//! ```no_run
//! use bv_train::data::TfdsDataset;
//! let ds = TfdsDataset::open("fashion_mnist", None)?;
//! let reads = ds.reads(&ds.ranges("train[:99%]")?);
//! for rec in ds.stream(&reads, Default::default()).take(3) {
//!     let ex = ds.example(&rec?)?;
//!     println!("{:?}", ex["label"]);
//! }
//! # Ok::<(), bv_train::data::DataError>(())
//! ```

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod evaluators;
pub mod losses;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod pp;
pub mod prefetch;
pub mod progress;
pub mod stop;
pub mod storage;
pub mod train;
pub mod trainers;
pub mod workdir;

pub use error::TrainError;
