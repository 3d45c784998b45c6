//! A local S3 emulator for the bucket tests: moto's server (PyPI `moto[server]`) from the
//! Python venv `.ci/run` prepares (`$BV_EMULATORS_VENV`, default `target/emulators-venv`),
//! listening on 127.0.0.1 only.
//!
//! It starts once per test binary, from a thread that never ends, with `PR_SET_PDEATHSIG`,
//! so it dies with the test process however that ends. The variables that point bv's
//! storage at it (`AWS_ENDPOINT_URL`, dummy credentials) are set in this process, for
//! in-process storage calls, and returned for the `bv-train` processes the tests start.
//!
//! No GCS emulator on PyPI serves the XML API object_store's GCS client speaks:
//! gcp-storage-emulator answers its listings with 501, fake-gcs-server its uploads with
//! 404 or 400. gs:// is therefore not run here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The running emulator and the environment that reaches it.
pub struct Emulators {
    pub s3: String,
    pub env: Vec<(String, String)>,
}

/// The venv's `moto_server`. Absent: a panic under CI (`CI` set), else `None` after a
/// printed SKIP line.
fn moto_server() -> Option<PathBuf> {
    let dir = std::env::var_os("BV_EMULATORS_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/emulators-venv"),
        PathBuf::from,
    );
    let moto = dir.join("bin/moto_server");
    if moto.is_file() {
        return Some(moto);
    }
    let how = format!(
        "python3 -m venv {d} && {d}/bin/pip install 'moto[server]' (as .ci/run does)",
        d = dir.display()
    );
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(!ci, "CI is set but the S3 emulator is missing: {how}");
    eprintln!("SKIP: no S3 emulator; to run these tests: {how}");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `cmd` so that it is killed when this process ends.
fn spawn_tied(mut cmd: Command, log: &Path) {
    let log = std::fs::File::create(log).unwrap();
    cmd.stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    #[cfg(target_os = "linux")]
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    // PR_SET_PDEATHSIG fires when the spawning thread ends: this one never does.
    std::thread::spawn(move || {
        tx.send(cmd.spawn().map(|c| c.id())).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap().expect("an emulator starts");
}

/// Sends one HTTP/1.1 request and returns the status line.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or_default().to_string()
}

fn wait_listening(addr: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "emulator at {addr} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The emulator of this test binary, started on first use; `None` when skipped.
pub fn emulators() -> Option<&'static Emulators> {
    static EMU: OnceLock<Option<Emulators>> = OnceLock::new();
    EMU.get_or_init(|| {
        let moto_bin = moto_server()?;
        let logs = std::env::temp_dir().join(format!("bv-emulators-{}", std::process::id()));
        std::fs::create_dir_all(&logs).unwrap();
        let s3 = format!("127.0.0.1:{}", free_port());
        let mut moto = Command::new(moto_bin);
        moto.args(["-H", "127.0.0.1", "-p", s3.rsplit(':').next().unwrap()]);
        spawn_tied(moto, &logs.join("moto.log"));
        wait_listening(&s3, &logs.join("moto.log"));
        let env: Vec<(String, String)> = [
            ("AWS_ENDPOINT_URL", format!("http://{s3}")),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in &env {
            std::env::set_var(k, v);
        }
        Some(Emulators { s3, env })
    })
    .as_ref()
}

impl Emulators {
    /// Creates a bucket of a name unique to this process (`bv-<pid>-<name>`) and returns
    /// its URL, `s3://...`.
    pub fn bucket(&self, name: &str) -> String {
        let bucket = format!("bv-{}-{name}", std::process::id());
        let status = http(&self.s3, "PUT", &format!("/{bucket}"), "");
        assert!(status.contains(" 200"), "creating s3://{bucket}: {status}");
        format!("s3://{bucket}")
    }
}

/// Uploads every file under `local` to `url` (same relative names) through bv's storage.
pub fn upload_dir(local: &Path, url: &Path) {
    for e in std::fs::read_dir(local).unwrap() {
        let p = e.unwrap().path();
        let dest = url.join(p.file_name().unwrap());
        if p.is_dir() {
            upload_dir(&p, &dest);
        } else {
            bv_train::storage::write_atomic(&dest, &std::fs::read(&p).unwrap()).unwrap();
        }
    }
}

/// Removes the bv cache's copies of a bucket's objects (`<cache>/remote/<scheme>/<bucket>`).
pub fn forget_cached(url: &str) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let bucket = rest.split('/').next().unwrap();
    let dir = bv_core::pjrt::provision::cache_dir()
        .join("remote")
        .join(scheme)
        .join(bucket);
    let _ = std::fs::remove_dir_all(dir);
}
