//! Executions dispatched and perhaps not finished, so that a process can wait for them
//! before it exits.
//!
//! `execute` returns as soon as the plugin has queued the work; the plugin's worker threads
//! run it afterwards. A process that calls `exit` meanwhile (say, after an error) runs the
//! plugin's static destructors while a worker thread is still inside the program, and
//! XLA's CPU plugin then dies with SIGSEGV. A binary calls [`drain_executions`] before it
//! returns from `main`.

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::event::Event;

/// The completion events of executions not yet seen to finish.
static IN_FLIGHT: Mutex<Vec<Event>> = Mutex::new(Vec::new());

/// Records the completion events of one execution (one per device), forgetting those of
/// earlier executions that have finished.
pub(crate) fn track(events: impl IntoIterator<Item = Event>) {
    let mut pending = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
    pending.retain(|e| !e.is_ready().unwrap_or(true));
    pending.extend(events);
}

/// The number of executions (per device) that may still be running.
pub fn executions_in_flight() -> usize {
    let mut pending = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
    pending.retain(|e| !e.is_ready().unwrap_or(true));
    pending.len()
}

/// Waits until every execution dispatched so far has finished (successfully or not), for
/// at most `timeout`. Returns false if some are still running then: the caller should
/// leave without running exit handlers (`_exit`), which is safe while they run.
pub fn drain_executions(timeout: Duration) -> bool {
    let events = std::mem::take(&mut *IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner()));
    let (tx, rx) = mpsc::channel();
    for e in &events {
        let done = tx.clone();
        let signal = move |_| {
            let _ = done.send(());
        };
        if e.on_ready(signal).is_err() {
            // The plugin offers no callback: wait for this one here.
            let _ = e.wait();
            let _ = tx.send(());
        }
    }
    let deadline = Instant::now() + timeout;
    for _ in 0..events.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if rx.recv_timeout(left).is_err() {
            // Still running: destroying their events now would gain nothing.
            std::mem::forget(events);
            return false;
        }
    }
    true
}
