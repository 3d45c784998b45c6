//! A persistent compilation cache, as JAX's `jax_compilation_cache_dir`: compiled programs
//! are kept on disk under a key of everything that decides the machine code, so a second
//! run of the same job loads its executables instead of compiling them.
//!
//! The directory is `BV_COMPILATION_CACHE_DIR`, else `<cache_dir>/xla` (see
//! [`crate::pjrt::provision::cache_dir`]); `BV_COMPILATION_CACHE_DIR=off` disables it.
//! Only programs whose compile took at least `BV_COMPILATION_CACHE_MIN_SECS` (default 1 s,
//! JAX's default) are written. Entries are written to a temporary name and renamed, and
//! carry a SHA-256 of their payload: a truncated or corrupt entry is recompiled and
//! replaced, never handed to the plugin.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::pjrt::{provision, Client, CompileOptions, LoadedExecutable, Result};

/// Counters for one jitted function (and, from [`crate::eager::stats`], for eager ops).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitStats {
    /// Programs built for a new signature (in-memory cache misses): compiled, or loaded
    /// from the persistent cache (this module).
    pub compiles: usize,
    /// Of those, the programs loaded from the persistent cache.
    pub disk_cache_hits: usize,
    /// Calls served from the cache.
    pub cache_hits: usize,
    /// Total time spent tracing and emitting.
    pub trace_time: Duration,
    /// Total time spent compiling (or loading) programs.
    pub compile_time: Duration,
}

/// Environment variable naming the cache directory (`off` disables the cache).
pub const DIR_ENV: &str = "BV_COMPILATION_CACHE_DIR";
/// Environment variable with the minimum compile time, in seconds, worth caching.
pub const MIN_SECS_ENV: &str = "BV_COMPILATION_CACHE_MIN_SECS";

const MAGIC: &[u8; 8] = b"BVXLA01\n";

/// How an executable was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Loaded from the cache.
    Hit,
    /// Compiled (and written to the cache if it took long enough).
    Compiled,
    /// Compiled; no cache is configured.
    Disabled,
}

/// The cache directory in effect, or `None` when disabled.
pub fn dir() -> Option<PathBuf> {
    match std::env::var_os(DIR_ENV) {
        Some(d) if d == "off" || d == "0" || d.is_empty() => None,
        Some(d) => Some(PathBuf::from(d)),
        None => Some(provision::cache_dir().join("xla")),
    }
}

fn min_compile_time() -> Duration {
    std::env::var(MIN_SECS_ENV)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(Duration::from_secs(1), Duration::from_secs_f64)
}

/// The cache key: the program, the compile options, the plugin (file, size, versions),
/// the platform, the devices and `XLA_FLAGS`.
pub fn key(client: &Client, mlir: &str, options: &CompileOptions) -> String {
    let plugin = client.plugin();
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(mlir.as_bytes());
    field(&options.encode());
    field(plugin.path().as_os_str().as_encoded_bytes());
    let size = std::fs::metadata(plugin.path()).map_or(0, |m| m.len());
    field(&size.to_le_bytes());
    field(format!("{:?}", plugin.api_version()).as_bytes());
    field(format!("{:?}", plugin.xla_version()).as_bytes());
    field(client.platform_name().as_bytes());
    field(client.platform_version().as_bytes());
    let kinds: Vec<String> = client
        .devices()
        .iter()
        .map(|d| d.kind().to_string())
        .collect();
    field(kinds.join(",").as_bytes());
    field(std::env::var("XLA_FLAGS").unwrap_or_default().as_bytes());
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compiles `mlir`, or loads it from the cache directory in effect.
pub fn compile(
    client: &Client,
    mlir: &str,
    options: &CompileOptions,
) -> Result<(LoadedExecutable, Outcome)> {
    match dir() {
        Some(d) => compile_in(&d, min_compile_time(), client, mlir, options),
        None => Ok((client.compile(mlir, options)?, Outcome::Disabled)),
    }
}

/// [`compile`] with an explicit cache directory, writing programs whose compile took at
/// least `min_time`.
pub fn compile_in(
    dir: &Path,
    min_time: Duration,
    client: &Client,
    mlir: &str,
    options: &CompileOptions,
) -> Result<(LoadedExecutable, Outcome)> {
    let path = dir.join(format!("{}.bvx", key(client, mlir, options)));
    if let Some(payload) = read_entry(&path) {
        if let Ok(exe) = client.deserialize_executable_for(&payload, mlir) {
            return Ok((exe, Outcome::Hit));
        }
    }
    let t0 = Instant::now();
    let exe = client.compile(mlir, options)?;
    if t0.elapsed() >= min_time {
        // A cache that cannot be written only costs the next run a compile.
        if let Ok(bytes) = exe.serialize() {
            let _ = write_entry(&path, &bytes);
        }
    }
    Ok((exe, Outcome::Compiled))
}

/// The payload of a whole, untampered entry; `None` for a missing, short or corrupt file.
fn read_entry(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let body = bytes.strip_prefix(MAGIC.as_slice())?;
    if body.len() < 32 {
        return None;
    }
    let (digest, payload) = body.split_at(32);
    (Sha256::digest(payload).as_slice() == digest).then(|| payload.to_vec())
}

fn write_entry(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    let mut bytes = Vec::with_capacity(MAGIC.len() + 32 + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&Sha256::digest(payload));
    bytes.extend_from_slice(payload);
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
