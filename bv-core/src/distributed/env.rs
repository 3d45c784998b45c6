//! Who this process is in a multi-process job, from flags or the environment.

use std::net::{SocketAddr, ToSocketAddrs};

use super::DistError;

/// The coordinator port on Cloud TPU VMs when only host names are known (as JAX uses).
pub const TPU_COORDINATOR_PORT: u16 = 8482;

/// A process's place in the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// This process's index, 0-based; process 0 hosts the coordinator and writes metrics.
    pub process_id: usize,
    /// How many processes the job has.
    pub num_processes: usize,
    /// Where process 0 serves the coordination service.
    pub coordinator: SocketAddr,
}

impl ProcessInfo {
    /// A job of one process (no coordinator is contacted).
    pub fn single() -> ProcessInfo {
        ProcessInfo {
            process_id: 0,
            num_processes: 1,
            coordinator: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// From explicit settings (`--coordinator HOST:PORT --num-processes N --process-id I`).
    pub fn new(
        coordinator: &str,
        num_processes: usize,
        process_id: usize,
    ) -> Result<ProcessInfo, DistError> {
        if num_processes == 0 || process_id >= num_processes {
            return Err(DistError::Config(format!(
                "process id {process_id} is not below the process count {num_processes}"
            )));
        }
        let coordinator = resolve(coordinator)?;
        Ok(ProcessInfo {
            process_id,
            num_processes,
            coordinator,
        })
    }

    /// From the environment: `BV_COORDINATOR`, `BV_NUM_PROCESSES` and `BV_PROCESS_ID`
    /// together, or Cloud TPU VM's `TPU_WORKER_HOSTNAMES` and `TPU_WORKER_ID`; `None` when
    /// neither is set (a single-process job).
    pub fn from_env() -> Result<Option<ProcessInfo>, DistError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] over any variable lookup (for tests).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ProcessInfo>, DistError> {
        let bv = ["BV_COORDINATOR", "BV_NUM_PROCESSES", "BV_PROCESS_ID"].map(&var);
        if bv.iter().any(Option::is_some) {
            let [Some(addr), Some(n), Some(id)] = bv else {
                return Err(DistError::Config(
                    "set all of BV_COORDINATOR, BV_NUM_PROCESSES and BV_PROCESS_ID, or none".into(),
                ));
            };
            return Self::new(
                &addr,
                parse(&n, "BV_NUM_PROCESSES")?,
                parse(&id, "BV_PROCESS_ID")?,
            )
            .map(Some);
        }
        if let (Some(hosts), Some(id)) = (var("TPU_WORKER_HOSTNAMES"), var("TPU_WORKER_ID")) {
            let hosts: Vec<&str> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .collect();
            let first = hosts
                .first()
                .ok_or_else(|| DistError::Config("TPU_WORKER_HOSTNAMES is empty".into()))?;
            return Self::new(
                &format!("{first}:{TPU_COORDINATOR_PORT}"),
                hosts.len(),
                parse(&id, "TPU_WORKER_ID")?,
            )
            .map(Some);
        }
        Ok(None)
    }
}

fn parse(v: &str, name: &str) -> Result<usize, DistError> {
    v.trim()
        .parse()
        .map_err(|_| DistError::Config(format!("{name}={v:?} is not a non-negative integer")))
}

fn resolve(addr: &str) -> Result<SocketAddr, DistError> {
    addr.to_socket_addrs()
        .map_err(|e| {
            DistError::Config(format!(
                "coordinator address {addr:?}: {e} (expected HOST:PORT)"
            ))
        })?
        .next()
        .ok_or_else(|| {
            DistError::Config(format!("coordinator address {addr:?} resolves to nothing"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn explicit_variables() {
        let p = ProcessInfo::from_vars(vars(&[
            ("BV_COORDINATOR", "127.0.0.1:9000"),
            ("BV_NUM_PROCESSES", "4"),
            ("BV_PROCESS_ID", "3"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.process_id, p.num_processes, p.coordinator.port()),
            (3, 4, 9000)
        );
    }

    #[test]
    fn cloud_tpu_variables() {
        let p = ProcessInfo::from_vars(vars(&[
            (
                "TPU_WORKER_HOSTNAMES",
                "127.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4",
            ),
            ("TPU_WORKER_ID", "2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((p.process_id, p.num_processes), (2, 4));
        assert_eq!(p.coordinator, "127.0.0.1:8482".parse().unwrap());
    }

    #[test]
    fn partial_or_bad_settings_are_errors() {
        let e = ProcessInfo::from_vars(vars(&[("BV_PROCESS_ID", "1")])).unwrap_err();
        assert!(e.to_string().contains("set all of"), "{e}");
        let e = ProcessInfo::from_vars(vars(&[
            ("BV_COORDINATOR", "127.0.0.1:1"),
            ("BV_NUM_PROCESSES", "2"),
            ("BV_PROCESS_ID", "2"),
        ]))
        .unwrap_err();
        assert!(
            e.to_string().contains("not below the process count 2"),
            "{e}"
        );
        assert!(ProcessInfo::from_vars(vars(&[])).unwrap().is_none());
    }
}
