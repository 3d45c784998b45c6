//! `bv-train data prepare|inspect`.

use crate::error::TrainError;
use std::path::PathBuf;

use clap::Subcommand;

use crate::data::{data_dir, fashion_mnist, inspect, FeatureKind, TfdsDataset};

/// Dataset commands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write a TFDS-format dataset directory from raw files (only `fashion_mnist` for now).
    Prepare {
        /// Dataset name.
        name: String,
        /// Folder with the raw IDX files (default: Debian's dataset-fashion-mnist, fetched
        /// with apt-get download when missing).
        #[arg(long)]
        idx_dir: Option<PathBuf>,
        /// Output data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Keep only the first N examples of each split.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print a dataset's splits, features, and per split the example count and a digest.
    Inspect {
        /// `name[/config][:version]`.
        name: String,
        /// A split string such as `train[:10%]` (default: every split).
        #[arg(long)]
        split: Option<String>,
        /// Data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

impl DataCommand {
    /// Runs the command, printing to stdout.
    pub fn run(self) -> Result<(), TrainError> {
        match self {
            DataCommand::Prepare {
                name,
                idx_dir,
                data_dir: dd,
                limit,
            } => {
                if name != "fashion_mnist" {
                    let hint = crate::data::error::how_to_prepare(&name, &data_dir(dd.as_deref()));
                    return Err(TrainError::CannotPrepare { name, hint });
                }
                let idx = fashion_mnist::provide_idx_dir(idx_dir.as_deref())?;
                println!("raw IDX files: {}", idx.display());
                let out = fashion_mnist::prepare(&idx, &data_dir(dd.as_deref()), [limit, limit])?;
                println!("wrote {}", out.display());
                Ok(())
            }
            DataCommand::Inspect {
                name,
                split,
                data_dir: dd,
            } => {
                let ds = TfdsDataset::open(&name, dd.as_deref())?;
                println!(
                    "dataset: {} {} ({})",
                    ds.info.name,
                    ds.info.version,
                    ds.dir.display()
                );
                println!("format: {}", ds.info.file_format());
                println!("features:");
                for f in &ds.features {
                    let kind = match &f.kind {
                        FeatureKind::Image {
                            shape,
                            dtype,
                            encoding,
                        } => format!(
                            "Image(shape={shape:?}, dtype={dtype}, encoding={})",
                            encoding.as_deref().unwrap_or("png")
                        ),
                        FeatureKind::ClassLabel { num_classes } => {
                            format!("ClassLabel(num_classes={num_classes})")
                        }
                        FeatureKind::Tensor { shape, dtype } => {
                            format!("Tensor(shape={shape:?}, dtype={dtype})")
                        }
                        FeatureKind::Text => "Text".into(),
                        FeatureKind::Other(c) => c.clone(),
                    };
                    println!("  {}: {kind}", f.key);
                }
                let splits = match split {
                    Some(s) => vec![s],
                    None => ds.split_names().iter().map(|s| s.to_string()).collect(),
                };
                for s in splits {
                    let sum = inspect::summarize(&ds, &s)?;
                    println!(
                        "split {}: {} examples, content sha256 {}",
                        sum.split, sum.num_examples, sum.content_sha256
                    );
                }
                Ok(())
            }
        }
    }
}
