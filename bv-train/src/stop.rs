//! Stopping a run on SIGINT or SIGTERM as a preemptible job needs, and leaving the process
//! safely.
//!
//! The first signal asks the run to stop: it finishes the step in progress (with that
//! step's evaluations), writes a checkpoint, says so and exits with 128 + the signal
//! number (130 for SIGINT, 143 for SIGTERM). A second signal exits at once; a checkpoint
//! then being written is left as a `.writing` folder the next run removes, and
//! `checkpoint.bv-LAST` still names the last complete one, so no partial checkpoint is
//! ever resumed from.
//!
//! Several processes: a checkpoint is written by all of them together, so all must stop
//! after the same step, though a signal often reaches only one (Ctrl-C in one terminal,
//! one host's maintenance notice). As JAX's preemption sync point does, they agree on the
//! step through the coordination service: a process that gets a signal publishes it; a
//! watcher thread in every process sees it, posts the last step its loop finished, and
//! once every process has posted, all stop after the largest posted step plus one. A loop
//! that knows of the request waits at the end of its step until that step is agreed, so
//! none can pass it: a watcher reads its loop's step only after marking the request, so the
//! loop can have finished at most one more step before it sees the mark. A process that
//! has already finished the run just finishes (then so do the others: the agreed step lies
//! beyond the end). What is not covered: a process that dies (SIGKILL, a lost machine)
//! without publishing; the others then fail at their next coordination point after its
//! timeout, and resume from the last checkpoint.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bv_core::distributed::{CoordinationClient, DistError, ProcessInfo};
use signal_hook::consts::{SIGINT, SIGTERM};

/// The signal that asked this process to stop (0: none yet).
static SIGNAL: AtomicUsize = AtomicUsize::new(0);
/// Set by the first signal; a second one then exits at once.
static ASKED: AtomicBool = AtomicBool::new(false);
/// Whether the request came from another process of the job.
static FROM_PEER: AtomicBool = AtomicBool::new(false);

/// The coordination key a signalled process publishes its signal under.
const KEY: &str = "bv-train/stop";
/// How long the processes wait for each other to agree on the stop step.
const AGREE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a process waits for running executions before it exits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Installs the SIGINT and SIGTERM handlers: the first signal asks the run to stop after
/// its step (see the module docs), a second exits at once with 128 + its number.
pub fn install_handlers() -> std::io::Result<()> {
    for sig in [SIGINT, SIGTERM] {
        // Actions run in the order registered: the exit checks the flag the first one set.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, &ASKED)?;
        signal_hook::flag::register_usize(sig, &SIGNAL, sig as usize)?;
        signal_hook::flag::register(sig, &ASKED)?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("bv-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!(
                    "bv-train: {}: stopping after the current step with a checkpoint (send it again to stop at once)",
                    signal_name(sig)
                );
            }
        })?;
    Ok(())
}

/// The signal that asked this run to stop (its own, or another process's), if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s as i32),
    }
}

/// `SIGINT`, `SIGTERM`, or `signal N`.
pub fn signal_name(sig: i32) -> String {
    match sig {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// A run stopped by a signal after writing a checkpoint; the process exits with
/// 128 + the signal number.
#[derive(Debug, thiserror::Error)]
#[error(
    "{}{}: stopped after step {step} with a checkpoint; run the same command to resume",
    signal_name(*signal),
    if *by_peer { " (sent to another process of the job)" } else { "" }
)]
pub struct Interrupted {
    pub signal: i32,
    pub step: u64,
    pub by_peer: bool,
}

impl Interrupted {
    /// The exit status: 128 + the signal number, as a shell reports a process the signal
    /// killed.
    pub fn exit_code(&self) -> u8 {
        (128 + self.signal).clamp(0, 255) as u8
    }
}

/// Why the processes could not agree on a stop step.
#[derive(Debug, thiserror::Error)]
#[error("stopping on {}: the processes could not agree on a step: {msg}", signal_name(*signal))]
pub struct AgreeError {
    signal: i32,
    msg: String,
}

/// The agreed stop step, once known.
type Agreed = Arc<(Mutex<Option<Result<u64, String>>>, Condvar)>;

/// Where the training loop asks whether to stop; see the module docs.
pub struct StopPoint {
    /// The last step the loop finished (read by the watcher).
    current: Arc<AtomicU64>,
    /// `None` for a single process: it stops after the step in which the signal came.
    agreed: Option<Agreed>,
}

impl StopPoint {
    /// The stop point of process `me`; with several processes, starts the watcher thread.
    pub fn new(me: &ProcessInfo) -> StopPoint {
        let current = Arc::new(AtomicU64::new(0));
        if me.num_processes <= 1 {
            return StopPoint {
                current,
                agreed: None,
            };
        }
        let agreed: Agreed = Arc::new((Mutex::new(None), Condvar::new()));
        let (me, c, a) = (me.clone(), current.clone(), agreed.clone());
        // The thread ends when it has agreed, or when the coordination service goes away
        // at the end of the job; until then it blocks in short requests only.
        let _ = std::thread::Builder::new()
            .name("bv-stop-watch".into())
            .spawn(move || {
                let result = watch(&me, &c)
                    .unwrap_or_else(|| Err("the coordination service is gone".into()));
                *a.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                a.1.notify_all();
            });
        StopPoint {
            current,
            agreed: Some(agreed),
        }
    }

    /// Called when the loop has finished `step` (its metrics line written): the signal to
    /// stop on if the run stops after this step, to be followed by a checkpoint.
    pub fn reached(&self, step: u64) -> Result<Option<i32>, AgreeError> {
        self.current.store(step, Ordering::SeqCst);
        let Some(signal) = requested() else {
            return Ok(None);
        };
        let Some(agreed) = &self.agreed else {
            return Ok(Some(signal));
        };
        let fail = |msg: String| AgreeError { signal, msg };
        let guard = agreed.0.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = agreed
            .1
            .wait_timeout_while(guard, AGREE_TIMEOUT, |a| a.is_none())
            .unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            None => Err(fail(format!("no agreement within {AGREE_TIMEOUT:?}"))),
            Some(Err(msg)) => Err(fail(msg.clone())),
            Some(Ok(at)) if step > *at => Err(fail(format!(
                "this process finished step {step}, past the agreed step {at}"
            ))),
            Some(Ok(at)) => Ok((step == *at).then_some(signal)),
        }
    }
}

/// Whether the request came from another process (for the message).
pub fn by_peer() -> bool {
    FROM_PEER.load(Ordering::SeqCst)
}

/// The watcher of one process: publishes this process's signal, waits for any process's,
/// then agrees on the stop step. `None` when the job ends first.
fn watch(me: &ProcessInfo, current: &AtomicU64) -> Option<Result<u64, String>> {
    let kv = CoordinationClient::connect(me.coordinator, Duration::from_secs(60)).ok()?;
    let mut published = false;
    let signal = loop {
        if let (false, Some(sig)) = (published, requested()) {
            kv.put(KEY, sig.to_string().as_bytes()).ok()?;
            published = true;
        }
        match kv.get(KEY, Duration::from_millis(500)) {
            Ok(v) => break String::from_utf8_lossy(&v).parse::<usize>().unwrap_or(15),
            Err(DistError::Timeout { .. }) => continue,
            Err(_) => return None,
        }
    };
    if SIGNAL
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        FROM_PEER.store(true, Ordering::SeqCst);
    }
    Some(agree(&kv, me, current.load(Ordering::SeqCst)))
}

/// Posts this process's last finished step and returns the largest posted plus one.
fn agree(kv: &CoordinationClient, me: &ProcessInfo, step: u64) -> Result<u64, String> {
    let key = |i: usize| format!("{KEY}/step/{i}");
    kv.put(&key(me.process_id), step.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    kv.barrier(KEY, me.num_processes, AGREE_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let mut last = 0;
    for i in 0..me.num_processes {
        let v = kv.get(&key(i), AGREE_TIMEOUT).map_err(|e| e.to_string())?;
        let s: u64 = String::from_utf8_lossy(&v)
            .parse()
            .map_err(|_| format!("process {i} posted {v:?}"))?;
        last = last.max(s);
    }
    Ok(last + 1)
}

/// Ends the process with `code` once the plugin's worker threads have finished what they
/// run: exiting under a running execution crashes XLA's CPU plugin (SIGSEGV) in its exit
/// handlers. If they are still busy after two minutes, leaves without exit handlers.
pub fn exit(code: u8) -> ExitCode {
    if !bv_core::pjrt::drain_executions(DRAIN_TIMEOUT) {
        eprintln!(
            "bv-train: device work still running after {DRAIN_TIMEOUT:?}; exiting without cleanup"
        );
        signal_hook::low_level::exit(i32::from(code));
    }
    ExitCode::from(code)
}
