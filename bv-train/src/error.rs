//! [`TrainError`]: what stops a run or a `bv-train` subcommand. Each module keeps its own
//! error type; this enum wraps them unchanged (same message, same `source` chain), so a
//! caller can match on the concern, and adds one variant per concern for the checks the
//! trainer, its evaluators and the subcommands make themselves (a config key's value, a
//! batch feature, a checkpoint's contents, ...), each carrying what it names.

use std::path::PathBuf;

use bv_core::distributed::DistError;
use bv_core::io::IoError;
use bv_core::sharding::ShardingError;
use bv_core::tree::TreeError;
use bv_core::{ArrayError, JitError};

use crate::checkpoint::CheckpointError;
use crate::config::{ConfigError, PlanError};
use crate::data::{DataError, PipelineError};
use crate::metrics::MetricsError;
use crate::optim::schedule::ScheduleError;
use crate::optim::OptimError;
use crate::plot::PlotError;
use crate::pp::PpError;
use crate::stop::{AgreeError, Interrupted};
use crate::workdir::WorkdirError;

/// Anything that stops a run; the message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A config key whose value the trainer, a trainer module or an evaluator cannot use.
    #[error("{key}: {problem}")]
    Setting {
        /// The key's path (`flexi.seqhw.p`, `evals.val.pred`).
        key: String,
        /// What is wrong with the value, and what would do.
        problem: String,
    },
    /// A name that is not in its registry (a trainer, loss, evaluator type or distance).
    #[error("{key}: unknown {kind} {name:?}; use one of {known:?}")]
    Unknown {
        /// The config key that names it.
        key: String,
        /// What the registry holds (`"loss"`, `"trainer"`).
        kind: &'static str,
        /// The name given.
        name: String,
        /// The registry's names.
        known: Vec<String>,
    },
    /// An error of something built for config key `key` (an evaluator's dataset or pp, a
    /// teacher's checkpoint), told under that key.
    #[error("{key}: {source}")]
    At {
        /// The key's path.
        key: String,
        /// The error itself.
        source: Box<TrainError>,
    },
    /// A batch feature the pp pipeline does not yield.
    #[error(
        "the pp pipeline yields no {key:?} (it yields {have:?}); end it with e.g. \
         keep(\"image\", \"labels\")"
    )]
    MissingFeature {
        /// The feature.
        key: String,
        /// The features it yields.
        have: Vec<String>,
    },
    /// A feature of another type than its reader takes (byte strings cannot go to devices).
    #[error("feature {key:?} holds {holds}, not {want}")]
    FeatureType {
        /// The feature.
        key: String,
        /// What it holds (`Value::dtype`: `"bytes"`, `"int64"`, ...).
        holds: &'static str,
        /// What its reader takes, and how to get it.
        want: &'static str,
    },
    /// The training input ended: before the first batch (`None`: the split is empty) or
    /// before step `Some(step)`.
    #[error("{}", match step {
        None => "the training split is empty".to_string(),
        Some(s) => format!("the training pipeline ended before step {s}"),
    })]
    InputEnded {
        /// The step it ended before.
        step: Option<u64>,
    },
    /// A loss or measurement that is NaN or infinite: the run stops.
    #[error(
        "{name} is {value} at step {step}; lower the learning rate or check the data (the \
         last checkpoint is kept)"
    )]
    NotFinite {
        /// The measurement (`training_loss`, `l2_grads`).
        name: String,
        /// Its value.
        value: f64,
        /// The step.
        step: u64,
    },
    /// An evaluator's split without examples.
    #[error("{key}: split {split:?} has no examples")]
    EmptySplit {
        /// The evaluator's config key.
        key: String,
        /// The split.
        split: String,
    },
    /// Evaluator data that contradicts itself (a caption of an image that is not there, a
    /// class without texts).
    #[error("{key}: {problem}")]
    EvalData {
        /// The evaluator's config key.
        key: String,
        /// What contradicts what.
        problem: String,
    },
    /// An evaluator that runs in single-process jobs only.
    #[error("{key}: {kind} runs in single-process jobs for now")]
    SingleProcessOnly {
        /// The evaluator's config key.
        key: String,
        /// Its type.
        kind: &'static str,
    },
    /// `bv-train` without `--config` or `--workdir` (and no subcommand).
    #[error("give --config FILE and --workdir DIR to train (see bv-train --help)")]
    TrainFlags,
    /// A config without evaluators, given to `bv-train eval`.
    #[error("{}: the config has no evals", config.display())]
    NoEvals {
        /// The config file.
        config: PathBuf,
    },
    /// A workdir without a checkpoint, given to `bv-train eval`.
    #[error(
        "{} has no checkpoint (no checkpoint.bv-LAST); train first with `bv-train --config {} \
         --workdir {}`, or give --checkpoint PATH",
        workdir.display(), config.display(), workdir.display()
    )]
    NoCheckpoint {
        /// The workdir.
        workdir: PathBuf,
        /// The config to train with.
        config: PathBuf,
    },
    /// A path given to `bv-train export` that is neither a workdir nor a checkpoint folder.
    #[error(
        "{}: no checkpoint here (neither a workdir with checkpoint.bv-LAST nor a checkpoint \
         folder with manifest.json)",
        path.display()
    )]
    NotACheckpoint {
        /// The path.
        path: PathBuf,
    },
    /// A checkpoint without parameters (`params/` leaves).
    #[error("{}: the checkpoint holds no params/ leaves", dir.display())]
    NoParams {
        /// The checkpoint folder.
        dir: PathBuf,
    },
    /// A checkpoint leaf that is neither `params/...` nor `opt/...`.
    #[error("checkpoint leaf {name:?} is neither params/... nor opt/...")]
    CheckpointLeaf {
        /// The leaf.
        name: String,
    },
    /// A checkpoint's data position or chrono that does not parse.
    #[error("checkpoint of step {step}: {what}: {source}")]
    CheckpointExtra {
        /// The checkpoint's step.
        step: u64,
        /// `"data position"` or `"chrono"`.
        what: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
    /// Several processes whose PJRT plugin cannot run one program across them.
    #[error(
        "{processes} processes, but the PJRT plugin ({plugin}, platform {platform}) has no \
         collectives across processes: each process would train a separate replica on its \
         share of the data. Use a GPU or TPU plugin for one job over all processes, run one \
         process, or pass --allow-independent-replicas to train independent replicas on purpose"
    )]
    NoCollectives {
        /// Processes in the job.
        processes: usize,
        /// The plugin's file name.
        plugin: String,
        /// Its platform.
        platform: String,
    },
    /// `bv-train data prepare` of a dataset other than Fashion-MNIST.
    #[error("`data prepare` knows only fashion_mnist, not '{name}': {hint}")]
    CannotPrepare {
        /// The dataset.
        name: String,
        /// How to prepare it with TFDS.
        hint: String,
    },
    /// `bv-train config` without the training data: give its size instead.
    #[error("{source}\nTo check the config without the data, give the size of {split:?} with --data-size N")]
    NoDataSize {
        /// The training split.
        split: String,
        /// Why the dataset did not open.
        source: DataError,
    },
    /// A file the trainer writes itself (an evaluator's output).
    #[error("{}: {source}", path.display())]
    File {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// SIGINT or SIGTERM: the run stopped after a step with a checkpoint (exit 128 + signal).
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    /// The processes could not agree on the step to stop at.
    #[error(transparent)]
    Agree(#[from] AgreeError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Pp(#[from] PpError),
    #[error(transparent)]
    Optim(#[from] OptimError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Workdir(#[from] WorkdirError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// A model's settings or parameters (bv-nn).
    #[error(transparent)]
    Model(#[from] bv_nn::models::ModelError),
    /// A big_vision checkpoint name whose file is not downloaded.
    #[error(transparent)]
    NotDownloaded(#[from] bv_nn::zoo::NotDownloaded),
    /// A big_vision npz file read, merged into a model's parameters or written (bv-nn).
    #[error(transparent)]
    Npz(#[from] bv_nn::npz::NpzError),
    /// Device arrays, compilation and execution (bv-core).
    #[error(transparent)]
    Array(#[from] ArrayError),
    /// Boxed, so that `Result<_, TrainError>` stays small (a `JitError` is 128 bytes or more).
    #[error(transparent)]
    Jit(Box<JitError>),
    #[error(transparent)]
    Sharding(#[from] ShardingError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    HostIo(#[from] IoError),
    #[error(transparent)]
    Distributed(#[from] DistError),
    #[error(transparent)]
    Pjrt(#[from] bv_core::pjrt::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl TrainError {
    /// [`TrainError::Setting`]: `key`'s value cannot be used, because of `problem`.
    pub fn setting(key: impl Into<String>, problem: impl Into<String>) -> TrainError {
        TrainError::Setting {
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// [`TrainError::At`]: `source`, told under config key `key`.
    pub fn at(key: impl Into<String>, source: impl Into<TrainError>) -> TrainError {
        TrainError::At {
            key: key.into(),
            source: Box::new(source.into()),
        }
    }

    /// [`TrainError::Unknown`]: `name` is not one of the `known` names of `kind`.
    pub fn unknown<S: ToString>(
        key: impl Into<String>,
        kind: &'static str,
        name: &str,
        known: &[S],
    ) -> TrainError {
        TrainError::Unknown {
            key: key.into(),
            kind,
            name: name.to_string(),
            known: known.iter().map(ToString::to_string).collect(),
        }
    }
}

impl From<JitError> for TrainError {
    fn from(e: JitError) -> Self {
        TrainError::Jit(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// A wrapped module error shows the same message and the same cause as the error itself
    /// (what `bv-train` prints), and a boxed `JitError` too.
    #[test]
    fn wrapping_keeps_message_and_cause() {
        let io = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let inner = WorkdirError::Io {
            path: "/w/d".into(),
            source: io(),
        };
        let (text, cause) = (inner.to_string(), inner.source().map(|s| s.to_string()));
        let e = TrainError::from(WorkdirError::Io {
            path: "/w/d".into(),
            source: io(),
        });
        assert!(matches!(e, TrainError::Workdir(_)));
        assert_eq!(e.to_string(), text);
        assert_eq!(e.source().map(|s| s.to_string()), cause);
        assert_eq!(cause.as_deref(), Some("denied"));

        let e = TrainError::from(JitError::Tree(TreeError::TooFewLeaves));
        assert!(matches!(e, TrainError::Jit(_)));
        assert_eq!(e.to_string(), TreeError::TooFewLeaves.to_string());
    }

    /// A check's error is a variant a caller can match on, carrying what it names, and
    /// prints as the message it had as a string (the key first).
    #[test]
    fn checks_are_typed_and_keep_their_messages() {
        let e = TrainError::unknown("loss", "loss", "softmax", &["sigmoid_xent", "softmax_xent"]);
        assert!(
            matches!(&e, TrainError::Unknown { key, kind: "loss", name, .. } if key == "loss" && name == "softmax")
        );
        assert_eq!(
            e.to_string(),
            r#"loss: unknown loss "softmax"; use one of ["sigmoid_xent", "softmax_xent"]"#
        );

        let e = TrainError::at(
            "evals.val",
            TrainError::setting("evals.val.pp", "a pp string"),
        );
        assert!(
            matches!(&e, TrainError::At { key, source } if key == "evals.val"
            && matches!(**source, TrainError::Setting { .. }))
        );
        assert_eq!(e.to_string(), "evals.val: evals.val.pp: a pp string");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("evals.val.pp: a pp string")
        );

        let e = TrainError::NotFinite {
            name: "training_loss".into(),
            value: f64::NAN,
            step: 7,
        };
        assert!(e
            .to_string()
            .starts_with("training_loss is NaN at step 7; lower the learning rate"));
        assert_eq!(
            TrainError::InputEnded { step: None }.to_string(),
            "the training split is empty"
        );
    }
}
