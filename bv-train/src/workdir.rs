//! The workdir lock: one run at a time per workdir, and workdir folders created with their
//! path in every error.
//!
//! A run holds an exclusive `flock` on `WORKDIR/bv-train.lock` until it exits and writes
//! into that file who holds it (process id, host, start time). A second run finds the lock
//! taken and refuses at once, naming the holder. The kernel drops the lock when its holder
//! exits, however it exits (an error, SIGKILL, a crash), so the lock of a dead run is simply
//! taken by the next one, and of two runs starting together the kernel gives it to exactly
//! one. The file itself is never deleted: a run that deleted it could lock a new file while
//! another still held the old one.
//!
//! What this guarantees: on local file systems, and on NFS (v4, or v3 with `lockd`), where
//! Linux maps `flock` to NFS byte-range locks, two runs exclude each other whether on one
//! machine or several; on NFS the lock of a holder whose machine died lasts until the
//! server's lease expires (about 90 s with NFSv4). Not guaranteed: FUSE mounts of object
//! stores (gcsfuse, s3fs) lock only within one machine, and a file system that refuses
//! locks altogether gets a warning and no protection.
//!
//! A workdir in a bucket (`gs://`, `s3://`) has no lock: object stores offer no lock that
//! a killed run gives up, and a lock object left by a SIGKILL would refuse every resume.
//! A run there prints a note saying so; keeping one run per bucket workdir is the user's
//! (or the job scheduler's) task, as with big_vision's own `gs://` workdirs.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The lock file inside the workdir.
pub const LOCK_FILE: &str = "bv-train.lock";

/// A workdir that cannot be created or locked.
#[derive(Debug, thiserror::Error)]
pub enum WorkdirError {
    /// The file system refused (read-only, permissions, a file where a folder should be).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another run holds the workdir; wait for it to end, stop it, or use another
    /// `--workdir`.
    #[error(
        "{} is in use by another bv-train run ({holder}, holding {}); wait for it to end or stop it, or train in another --workdir",
        workdir.display(),
        lock.display()
    )]
    Busy {
        workdir: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    /// The workdir did not exist when this run started, and another run has written to it
    /// since; running again resumes from what that run left.
    #[error(
        "{} was created by another run while this one was starting (it holds {found:?}); run again to continue from it",
        workdir.display()
    )]
    Raced {
        workdir: PathBuf,
        found: Vec<String>,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WorkdirError + '_ {
    move |source| WorkdirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` and its parents (nothing to do on a bucket); the error names the path.
pub fn create_dir(dir: &Path) -> Result<(), WorkdirError> {
    crate::storage::create_dir_all(dir).map_err(io(dir))
}

/// Who holds a lock, as written in the lock file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    /// Seconds since the Unix epoch.
    started: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        write!(
            f,
            "process {} on host {}, started {} s ago",
            self.pid,
            self.host,
            now.saturating_sub(self.started)
        )
    }
}

/// This machine's host name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The exclusive hold of a workdir; released when dropped or when the process exits.
#[derive(Debug)]
pub struct WorkdirLock {
    /// `None` where the file system refuses locks (a warning was printed) or on a bucket.
    _file: Option<File>,
}

impl WorkdirLock {
    /// Creates `workdir` if needed and takes its lock, or fails at once naming the run that
    /// holds it. A workdir in a bucket gets a note and no lock (see the module's doc).
    pub fn acquire(workdir: &Path) -> Result<WorkdirLock, WorkdirError> {
        if crate::storage::is_bucket(workdir) {
            eprintln!(
                "bv-train: note: {} is in a bucket, where bv-train takes no workdir lock; make sure no other run uses it",
                workdir.display()
            );
            return Ok(WorkdirLock { _file: None });
        }
        create_dir(workdir)?;
        let path = workdir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        if let Err(e) = fs2::FileExt::try_lock_exclusive(&file) {
            if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() {
                return Err(WorkdirError::Busy {
                    workdir: workdir.to_path_buf(),
                    holder: read_holder(&mut file),
                    lock: path,
                });
            }
            if is_unsupported(&e) {
                eprintln!(
                    "bv-train: warning: {}: the file system offers no locks ({e}), so another run on this workdir would not be noticed",
                    path.display()
                );
                return Ok(WorkdirLock { _file: None });
            }
            return Err(io(&path)(e));
        }
        let holder = Holder {
            pid: std::process::id(),
            host: host_name(),
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let text = serde_json::to_string(&holder).expect("a holder serializes") + "\n";
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(io(&path))?;
        Ok(WorkdirLock { _file: Some(file) })
    }

    /// [`Self::acquire`] for a workdir that did not exist when this run started: anything
    /// in it but the lock file was then written by another run meanwhile, and this one
    /// refuses rather than start over it.
    pub fn acquire_new(workdir: &Path) -> Result<WorkdirLock, WorkdirError> {
        let lock = Self::acquire(workdir)?;
        if crate::storage::is_bucket(workdir) {
            return Ok(lock);
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(workdir).map_err(io(workdir))? {
            let name = entry.map_err(io(workdir))?.file_name();
            if name != LOCK_FILE {
                found.push(name.to_string_lossy().into_owned());
            }
        }
        if !found.is_empty() {
            found.sort();
            return Err(WorkdirError::Raced {
                workdir: workdir.to_path_buf(),
                found,
            });
        }
        Ok(lock)
    }
}

/// Whether a lock request failed because the file system has no locks.
fn is_unsupported(e: &std::io::Error) -> bool {
    const ENOLCK: i32 = 37;
    e.kind() == std::io::ErrorKind::Unsupported || e.raw_os_error() == Some(ENOLCK)
}

/// The holder named in a lock file. A holder that has just taken the lock may not have
/// written its name yet, so a few short waits are allowed.
fn read_holder(file: &mut File) -> String {
    for _ in 0..20 {
        let mut text = String::new();
        if file
            .rewind()
            .and_then(|()| file.read_to_string(&mut text))
            .is_ok()
        {
            if let Ok(h) = serde_json::from_str::<Holder>(&text) {
                return h.to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    "a process that has not written its name".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name() {
        let dir = tempfile::tempdir().unwrap();
        let workdir = dir.path().join("a/b");
        let first = WorkdirLock::acquire(&workdir).unwrap();
        // flock locks belong to open files, so a second open in this process conflicts.
        let e = WorkdirLock::acquire(&workdir).unwrap_err().to_string();
        let want = format!(
            "is in use by another bv-train run (process {} on host {}, started ",
            std::process::id(),
            host_name()
        );
        assert!(e.contains(&want), "{e}");
        assert!(e.contains("bv-train.lock"), "{e}");
        drop(first);
        WorkdirLock::acquire(&workdir).unwrap();
    }

    #[test]
    fn a_stale_lock_file_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let stale = r#"{"pid": 4000000, "host": "elsewhere", "started": 0}"#;
        std::fs::write(dir.path().join(LOCK_FILE), stale).unwrap();
        let _lock = WorkdirLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        let holder: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!(holder.pid, std::process::id());
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = WorkdirLock::acquire(&file.join("w"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{}: ", file.join("w").display())),
            "{e}"
        );
    }
}
