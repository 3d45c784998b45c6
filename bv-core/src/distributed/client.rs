//! A process's connection to the coordination service.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::protocol::*;
use super::DistError;
use crate::pjrt::KeyValueStore;

/// A client of the coordination service; thread-safe, with one pooled connection per
/// concurrent request (a blocking get does not hold up a put from another thread).
pub struct CoordinationClient {
    addr: SocketAddr,
    pool: Mutex<Vec<TcpStream>>,
}

/// Extra time allowed on the socket beyond a request's own timeout.
const SLACK: Duration = Duration::from_secs(10);

impl CoordinationClient {
    /// Connects to the service at `addr`, retrying for up to `wait` while it starts.
    pub fn connect(addr: SocketAddr, wait: Duration) -> Result<CoordinationClient, DistError> {
        let start = Instant::now();
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(CoordinationClient {
                        addr,
                        pool: Mutex::new(vec![s]),
                    });
                }
                Err(e) if start.elapsed() >= wait => {
                    return Err(DistError::Unreachable {
                        addr,
                        waited: wait,
                        reason: e.to_string(),
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Sets `key` to `value` (overwriting).
    pub fn put(&self, key: &str, value: &[u8]) -> Result<(), DistError> {
        self.request(Duration::ZERO, |w| {
            w.write_all(&[PUT])?;
            write_bytes(w, key.as_bytes())?;
            write_bytes(w, value)
        })
        .map(|_| ())
    }

    /// Waits up to `timeout` for `key` to be set and returns its value.
    pub fn get(&self, key: &str, timeout: Duration) -> Result<Vec<u8>, DistError> {
        let (status, payload) = self.request(timeout, |w| {
            w.write_all(&[GET])?;
            write_bytes(w, key.as_bytes())?;
            write_u64(w, timeout.as_millis() as u64)
        })?;
        match status {
            OK => Ok(payload),
            _ => Err(DistError::Timeout {
                what: format!("get {key:?}"),
                after: timeout,
            }),
        }
    }

    /// Returns the value of `key`, or `None` if it is not set; never waits.
    pub fn try_get(&self, key: &str) -> Result<Option<Vec<u8>>, DistError> {
        let (status, payload) = self.request(Duration::ZERO, |w| {
            w.write_all(&[TRY_GET])?;
            write_bytes(w, key.as_bytes())
        })?;
        Ok((status == OK).then_some(payload))
    }

    /// Waits until `count` processes have reached the barrier `name` (each call counts
    /// once), or fails after `timeout` saying how many arrived.
    pub fn barrier(&self, name: &str, count: usize, timeout: Duration) -> Result<(), DistError> {
        let (status, payload) = self.request(timeout, |w| {
            w.write_all(&[BARRIER])?;
            write_bytes(w, name.as_bytes())?;
            write_u64(w, count as u64)?;
            write_u64(w, timeout.as_millis() as u64)
        })?;
        match status {
            OK => Ok(()),
            _ => Err(DistError::Timeout {
                what: String::from_utf8_lossy(&payload).into_owned(),
                after: timeout,
            }),
        }
    }

    /// Sends one request on a pooled connection and reads the reply.
    fn request(
        &self,
        timeout: Duration,
        write: impl FnOnce(&mut TcpStream) -> std::io::Result<()>,
    ) -> Result<(u8, Vec<u8>), DistError> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut stream = match pooled {
            Some(s) => s,
            None => TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
                .map_err(|e| self.broken(e))?,
        };
        stream
            .set_read_timeout(Some(timeout + SLACK))
            .map_err(|e| self.broken(e))?;
        write(&mut stream)
            .and_then(|()| stream.flush())
            .map_err(|e| self.broken(e))?;
        let mut r = BufReader::new(&stream);
        let status = read_u8(&mut r).map_err(|e| self.broken(e))?;
        let payload = read_bytes(&mut r).map_err(|e| self.broken(e))?;
        drop(r);
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stream);
        Ok((status, payload))
    }

    fn broken(&self, e: std::io::Error) -> DistError {
        DistError::Protocol {
            addr: self.addr,
            reason: e.to_string(),
        }
    }
}

impl KeyValueStore for CoordinationClient {
    fn get(&self, key: &str, timeout: Duration) -> Result<Vec<u8>, String> {
        CoordinationClient::get(self, key, timeout).map_err(|e| e.to_string())
    }
    fn try_get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        CoordinationClient::try_get(self, key).map_err(|e| e.to_string())
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), String> {
        CoordinationClient::put(self, key, value).map_err(|e| e.to_string())
    }
}
