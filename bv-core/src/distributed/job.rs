//! Joining a job as `jax.distributed.initialize` does: connect to the coordination service
//! first, then create the PJRT client with that connection as its key-value store, so that
//! the plugin can find the other processes and present every device of the job.

use std::sync::Arc;
use std::time::Duration;

use super::{CoordinationClient, Coordinator, DistError, ProcessInfo};
use crate::pjrt::provision::Platform;
use crate::pjrt::{Client, ClientOptions, Device};

/// This process's place in a running job: the coordination service (process 0 hosts it),
/// the connection to it, and the PJRT client created with it, which is also the default
/// client ([`crate::set_default_client`]).
pub struct Job {
    /// Who this process is.
    pub process: ProcessInfo,
    /// The client: in a job whose plugin spans processes, [`Client::devices`] lists every
    /// process's devices, in the order meshes use (JAX's `jax.devices()`).
    pub client: Client,
    kv: Option<Arc<CoordinationClient>>,
    _server: Option<Coordinator>,
}

impl Job {
    /// Joins the job `me` describes, waiting up to `wait` for the other processes, and
    /// creates the client of `BV_PLATFORM`'s plugin with `options` (plugin options such as
    /// `cpu_device_count`); a job of one process given no options uses the default client.
    /// Every plugin gets the key-value store, and CUDA plugins also `node_id` and
    /// `num_nodes` (as JAX passes them). Fails when the plugin's view of the job (its
    /// process index, the processes owning its devices) contradicts `me`.
    pub fn initialize(
        me: &ProcessInfo,
        options: ClientOptions,
        wait: Duration,
    ) -> Result<Job, DistError> {
        if me.num_processes <= 1 {
            let client = if options.is_empty() {
                crate::default_client()?
            } else {
                let c = Client::for_platform(Platform::from_env()?, options)?;
                crate::set_default_client(c.clone());
                c
            };
            return Ok(Job {
                process: me.clone(),
                client,
                kv: None,
                _server: None,
            });
        }
        let server = match me.process_id {
            0 => Some(Coordinator::serve(me.coordinator)?),
            _ => None,
        };
        let kv = Arc::new(CoordinationClient::connect(me.coordinator, wait)?);
        kv.barrier("bv/connect", me.num_processes, wait)?;
        let platform = Platform::from_env()?;
        let mut options = options.kv_store(kv.clone());
        if platform == Platform::Cuda {
            options = options
                .set("node_id", me.process_id as i64)
                .set("num_nodes", me.num_processes as i64);
        }
        let client = Client::for_platform(platform, options)?;
        check_topology(&client, me)?;
        crate::set_default_client(client.clone());
        Ok(Job {
            process: me.clone(),
            client,
            kv: Some(kv),
            _server: server,
        })
    }

    /// The connection to the coordination service (`None` for a single process).
    pub fn kv(&self) -> Option<&CoordinationClient> {
        self.kv.as_deref()
    }

    /// True when one program can span the processes of the job: the plugin lists other
    /// processes' devices, so it has collectives across them (TPU, GPU with NCCL). The CPU
    /// plugins list only their own, and each process could train only a replica of its own.
    pub fn spans_processes(&self) -> bool {
        spans_processes(&self.client)
    }

    /// Waits until every process reaches the barrier `name` (at once for one process).
    pub fn barrier(&self, name: &str, timeout: Duration) -> Result<(), DistError> {
        match &self.kv {
            Some(kv) => kv.barrier(name, self.process.num_processes, timeout),
            None => Ok(()),
        }
    }
}

/// True when `client` lists devices of other processes.
pub fn spans_processes(client: &Client) -> bool {
    client.devices().iter().any(|d| !d.is_addressable())
}

/// Checks that a client spanning processes agrees with `me` on who is who.
fn check_topology(client: &Client, me: &ProcessInfo) -> Result<(), DistError> {
    if !spans_processes(client) {
        return Ok(());
    }
    let bad = |reason: String| Err(DistError::Topology(reason));
    if client.process_index() as usize != me.process_id {
        return bad(format!(
            "the PJRT plugin says this is process {}, the job says process {}",
            client.process_index(),
            me.process_id
        ));
    }
    let mut owners: Vec<usize> = client
        .devices()
        .iter()
        .map(|d: &Device| d.process_index() as usize)
        .collect();
    owners.sort_unstable();
    owners.dedup();
    if owners != (0..me.num_processes).collect::<Vec<_>>() {
        return bad(format!(
            "the PJRT plugin's devices belong to processes {owners:?}, the job has {}",
            me.num_processes
        ));
    }
    Ok(())
}
