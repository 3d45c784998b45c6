//! [`TrainError`]: what stops a run or a `bv-train` subcommand. Each module keeps its own
//! error type; this enum wraps them unchanged (same message, same `source` chain), so a
//! caller can match on the concern, and adds [`TrainError::Invalid`] for the checks the
//! trainer, its evaluators and the subcommands make themselves.

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
    /// A setting, input or file the trainer checked itself; the message names it.
    #[error("{0}")]
    Invalid(String),
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
    /// A model's parameters or a big_vision npz file (bv-nn).
    #[error(transparent)]
    Model(#[from] bv_nn::models::ModelError),
    #[error(transparent)]
    ModelCheckpoint(#[from] bv_nn::checkpoint::CheckpointError),
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

impl From<JitError> for TrainError {
    fn from(e: JitError) -> Self {
        TrainError::Jit(Box::new(e))
    }
}

impl From<String> for TrainError {
    fn from(msg: String) -> Self {
        TrainError::Invalid(msg)
    }
}

impl From<&str> for TrainError {
    fn from(msg: &str) -> Self {
        TrainError::Invalid(msg.to_string())
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
}
