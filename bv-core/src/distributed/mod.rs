//! Multi-process jobs: who we are (process index and count, coordinator address) and the
//! key-value coordination service the processes share, as `jax.distributed` provides.
//!
//! Process 0 hosts a [`Coordinator`]; every process (0 included) connects a
//! [`CoordinationClient`], which is also the [`crate::pjrt::KeyValueStore`] handed to the PJRT
//! client so that GPU and TPU plugins can exchange topology and collective ids. [`Job`] does
//! both in that order, as `jax.distributed.initialize` does.
//!
//! ```no_run
//! use bv_core::distributed::{Job, ProcessInfo};
//! use bv_core::pjrt::ClientOptions;
//! use std::time::Duration;
//! let me = ProcessInfo::from_env()?.unwrap_or_else(ProcessInfo::single);
//! let job = Job::initialize(&me, ClientOptions::new(), Duration::from_secs(300))?;
//! // Every process's devices, in the order a mesh uses them (JAX's `jax.devices()`).
//! let devices: Vec<i64> = job.client.devices().iter().map(|d| i64::from(d.id())).collect();
//! job.barrier("start", Duration::from_secs(60))?;
//! # Ok::<(), bv_core::distributed::DistError>(())
//! ```

mod client;
mod env;
mod job;
mod protocol;
mod server;

pub use client::CoordinationClient;
pub use env::ProcessInfo;
pub use job::{spans_processes, Job};
pub use server::Coordinator;

use std::net::SocketAddr;
use std::time::Duration;

/// Errors of process discovery and the coordination service.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The coordinator could not be reached in time.
    #[error(
        "cannot reach the coordinator at {addr} within {waited:?}: {reason}; is process 0 running?"
    )]
    Unreachable {
        addr: SocketAddr,
        waited: Duration,
        reason: String,
    },
    /// A blocking get or a barrier ran out of time.
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    /// The connection broke or the peer answered nonsense.
    #[error("coordination service at {addr}: {reason}")]
    Protocol { addr: SocketAddr, reason: String },
    /// The process settings are incomplete or contradictory.
    #[error("process settings: {0}")]
    Config(String),
    /// The PJRT plugin's view of the job contradicts the process settings.
    #[error("job topology: {0}")]
    Topology(String),
    /// Creating the PJRT client failed.
    #[error(transparent)]
    Runtime(#[from] crate::pjrt::Error),
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
