//! Multi-process jobs: who we are (process index and count, coordinator address) and the
//! key-value coordination service the processes share, as `jax.distributed` provides.
//!
//! Process 0 hosts a [`Coordinator`]; every process (0 included) connects a
//! [`CoordinationClient`], which is also the [`crate::pjrt::KeyValueStore`] handed to the PJRT
//! client so that GPU and TPU plugins can exchange topology and collective ids.
//!
//! ```no_run
//! use bv_core::distributed::{CoordinationClient, Coordinator, ProcessInfo};
//! use std::time::Duration;
//! let me = ProcessInfo::from_env()?.unwrap_or_else(ProcessInfo::single);
//! let _server = if me.process_id == 0 { Some(Coordinator::serve(me.coordinator)?) } else { None };
//! let kv = CoordinationClient::connect(me.coordinator, Duration::from_secs(60))?;
//! kv.barrier("start", me.num_processes, Duration::from_secs(60))?;
//! # Ok::<(), bv_core::distributed::DistError>(())
//! ```

mod client;
mod env;
mod protocol;
mod server;

pub use client::CoordinationClient;
pub use env::ProcessInfo;
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
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
