//! The coordination service hosted by process 0: a key-value store with blocking reads
//! and barriers, served over TCP to every process of the job.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::protocol::*;
use super::DistError;

#[derive(Default)]
struct Store {
    values: HashMap<String, Vec<u8>>,
    arrivals: HashMap<String, usize>,
}

struct Shared {
    store: Mutex<Store>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `ready` holds or `timeout` passes; returns whether it holds.
    fn wait_for(&self, timeout: Duration, mut ready: impl FnMut(&mut Store) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut store = self.lock();
        loop {
            if ready(&mut store) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || self.stop.load(Ordering::Relaxed) {
                return false;
            }
            store = self
                .changed
                .wait_timeout(store, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A running coordination service. Dropping it (or [`Coordinator::shutdown`]) stops it and
/// wakes every waiting request.
pub struct Coordinator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Coordinator {
    /// Listens on `addr` (port 0 picks a free port; see [`Coordinator::addr`]).
    pub fn serve(addr: SocketAddr) -> Result<Coordinator, DistError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| DistError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DistError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| DistError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("bv-coordinator".into())
            .spawn(move || accept_loop(listener, s))
            .map_err(|source| DistError::Bind { addr, source })?;
        Ok(Coordinator {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The address the service listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the service; blocked requests return a timeout to their callers.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let s = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("bv-coordinator-conn".into())
                    .spawn(move || serve_connection(stream, s));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Answers requests on one connection until the peer hangs up or the service stops.
fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_nonblocking(false);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    let mut w = BufWriter::new(write_half);
    while !shared.stop.load(Ordering::Relaxed) {
        let Ok(op) = read_u8(&mut r) else { return };
        let reply = handle(op, &mut r, &shared);
        let Ok((status, payload)) = reply else { return };
        if w.write_all(&[status]).is_err()
            || write_bytes(&mut w, &payload).is_err()
            || w.flush().is_err()
        {
            return;
        }
    }
}

fn handle(op: u8, r: &mut impl std::io::Read, shared: &Shared) -> std::io::Result<(u8, Vec<u8>)> {
    match op {
        PUT => {
            let key = String::from_utf8_lossy(&read_bytes(r)?).into_owned();
            let value = read_bytes(r)?;
            shared.lock().values.insert(key, value);
            shared.changed.notify_all();
            Ok((OK, Vec::new()))
        }
        GET => {
            let key = String::from_utf8_lossy(&read_bytes(r)?).into_owned();
            let timeout = Duration::from_millis(read_u64(r)?);
            let mut found = None;
            shared.wait_for(timeout, |s| {
                found = s.values.get(&key).cloned();
                found.is_some()
            });
            Ok(match found {
                Some(v) => (OK, v),
                None => (TIMEOUT, format!("key {key:?} was not set").into_bytes()),
            })
        }
        TRY_GET => {
            let key = String::from_utf8_lossy(&read_bytes(r)?).into_owned();
            Ok(match shared.lock().values.get(&key) {
                Some(v) => (OK, v.clone()),
                None => (NOT_FOUND, Vec::new()),
            })
        }
        BARRIER => {
            let name = String::from_utf8_lossy(&read_bytes(r)?).into_owned();
            let count = read_u64(r)? as usize;
            let timeout = Duration::from_millis(read_u64(r)?);
            *shared.lock().arrivals.entry(name.clone()).or_default() += 1;
            shared.changed.notify_all();
            let mut arrived = 0;
            let all = shared.wait_for(timeout, |s| {
                arrived = s.arrivals.get(&name).copied().unwrap_or(0);
                arrived >= count
            });
            Ok(if all {
                (OK, Vec::new())
            } else {
                (
                    TIMEOUT,
                    format!("barrier {name:?}: {arrived} of {count} processes arrived")
                        .into_bytes(),
                )
            })
        }
        other => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unknown request {other}"),
        )),
    }
}
