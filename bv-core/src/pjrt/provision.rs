//! Finding PJRT plugins, and fetching the CPU plugin when a machine has none.
//!
//! Search order, first hit wins:
//! 1. an explicit file: `BV_PJRT_PLUGIN=/path/to/plugin.so`;
//! 2. the user cache: `$BV_CACHE_DIR` or `$XDG_CACHE_HOME/bv` or `~/.cache/bv`, under
//!    `pjrt/PACKAGE-VERSION/`;
//! 3. installed Python packages (`libtpu`, `jax_plugins` CUDA 12/13, `xla_plugins`,
//!    `lammps_jax_pjrt_cpu`) on `python3`'s `sys.path`;
//! 4. for CPU only: `python3 -m pip download --no-deps PACKAGE==VERSION` into the cache,
//!    checked against a pinned SHA-256, unpacked, and announced in one line on stderr.
//!
//! Several processes may provision at once: fetching holds a lock file and every file is
//! written under a temporary name and renamed into place.
//!
//! A cached plugin is checked before it is loaded: a damaged file (cut short by a full
//! disk, a killed copy) would otherwise kill every run with SIGBUS inside `dlopen`. Its
//! SHA-256 must be the pinned one; once it is, a stamp beside it records its size,
//! modification time and inode, and later runs that find those unchanged skip the hashing.
//! A damaged plugin is fetched again and replaced by rename, so processes that already
//! mapped the old file are not disturbed.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::error::{Error, Result};

/// Environment variable naming a plugin file to use, bypassing the search.
pub const PLUGIN_ENV: &str = "BV_PJRT_PLUGIN";
/// Environment variable choosing the CPU plugin package (`lammps-jax-pjrt-cpu` or
/// `xla-cpu-pjrt`).
pub const CPU_PACKAGE_ENV: &str = "BV_CPU_PLUGIN";
/// Environment variable overriding the cache directory.
pub const CACHE_ENV: &str = "BV_CACHE_DIR";

/// A platform a plugin serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Cpu,
    Cuda,
    Tpu,
}

/// Environment variable naming the platform of the default client (`cpu`, `cuda`, `tpu`).
pub const PLATFORM_ENV: &str = "BV_PLATFORM";

impl Platform {
    /// The platform `BV_PLATFORM` names: `cpu` (the default), `cuda` (or `gpu`), `tpu`.
    pub fn from_env() -> Result<Platform> {
        match std::env::var(PLATFORM_ENV).as_deref() {
            Err(_) | Ok("cpu") | Ok("") => Ok(Platform::Cpu),
            Ok("cuda") | Ok("gpu") => Ok(Platform::Cuda),
            Ok("tpu") => Ok(Platform::Tpu),
            Ok(other) => Err(Error::invalid(
                "BV_PLATFORM",
                format!("{other:?} is not a platform; use cpu, cuda or tpu"),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Platform::Cpu => "cpu",
            Platform::Cuda => "cuda",
            Platform::Tpu => "tpu",
        }
    }

    /// Plugin files inside Python packages, relative to a `sys.path` entry.
    fn python_paths(self) -> &'static [&'static str] {
        match self {
            Platform::Cpu => &[
                "lammps_jax_pjrt_cpu/pjrt_c_api_cpu_plugin.so",
                "xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so",
            ],
            Platform::Cuda => &[
                "jax_plugins/xla_cuda13/xla_cuda_plugin.so",
                "jax_plugins/xla_cuda12/xla_cuda_plugin.so",
            ],
            Platform::Tpu => &["libtpu/libtpu.so"],
        }
    }
}

/// A PyPI wheel that carries a CPU plugin, pinned by version and checksum.
#[derive(Clone, Copy, Debug)]
pub struct PluginPackage {
    /// The name pip knows it by.
    pub name: &'static str,
    pub version: &'static str,
    /// SHA-256 of the manylinux x86-64 wheel.
    pub wheel_sha256: &'static str,
    /// The plugin's path inside the wheel.
    pub member: &'static str,
    /// SHA-256 of the plugin file itself (`third_party/PLUGINS.md`).
    pub plugin_sha256: &'static str,
}

/// The default CPU plugin, chosen by measurement (`third_party/PLUGINS.md`).
pub const LAMMPS_CPU: PluginPackage = PluginPackage {
    name: "lammps-jax-pjrt-cpu",
    version: "0.11.2",
    wheel_sha256: "1319390d948b39f69f7dade496b7c385149d9ca6097a6b62114da113216d9ad1",
    member: "lammps_jax_pjrt_cpu/pjrt_c_api_cpu_plugin.so",
    plugin_sha256: "ad1309ac822b1b24d51b7f9947c7c9fa9ef5d67f390584cbc3d1fa2428fed9c2",
};

/// OpenXLA's own CPU plugin wheel (PJRT API 0.81).
pub const XLA_CPU: PluginPackage = PluginPackage {
    name: "xla-cpu-pjrt",
    version: "0.0.1",
    wheel_sha256: "55837b6b7b47daa717f2d9a5a03563ea0ceaa338d06a81a1e2d3f060d960decc",
    member: "xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so",
    plugin_sha256: "88c3f28c5900f48ad4a82cab9e79bba9537809743395e341485f8794268820dc",
};

/// The CPU plugin packages bv knows, default first.
pub const CPU_PACKAGES: [PluginPackage; 2] = [LAMMPS_CPU, XLA_CPU];

/// The cache directory for plugins and other downloads.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(CACHE_ENV) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("bv");
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("bv")
}

/// The CPU plugin package in use: `BV_CPU_PLUGIN` or the default.
pub fn cpu_package() -> Result<PluginPackage> {
    match std::env::var(CPU_PACKAGE_ENV) {
        Err(_) => Ok(CPU_PACKAGES[0]),
        Ok(name) => CPU_PACKAGES
            .iter()
            .find(|p| p.name == name)
            .copied()
            .ok_or_else(|| Error::NotFound {
                platform: "cpu".into(),
                looked: vec![format!("{CPU_PACKAGE_ENV}={name}")],
                hint: format!(
                    "{CPU_PACKAGE_ENV} must be one of: {}",
                    CPU_PACKAGES.map(|p| p.name).join(", ")
                ),
            }),
    }
}

/// Where a cached plugin of `package` lives.
pub fn cached_path(package: &PluginPackage) -> PathBuf {
    let file = Path::new(package.member)
        .file_name()
        .unwrap_or_default()
        .to_owned();
    cache_dir()
        .join("pjrt")
        .join(format!("{}-{}", package.name, package.version))
        .join(file)
}

/// Finds the CPU plugin, fetching it into the cache if no copy is found.
pub fn cpu_plugin() -> Result<PathBuf> {
    let package = cpu_package()?;
    let mut looked = Vec::new();
    if let Some(p) = explicit(&mut looked)? {
        return Ok(p);
    }
    let cached = cached_path(&package);
    let damaged = match cached.is_file() {
        true => damage(&cached, &package)?,
        false => None,
    };
    match &damaged {
        Some(what) => {
            eprintln!(
                "bv: the cached CPU plugin {} is damaged ({what}); fetching it again",
                cached.display()
            );
            looked.push(format!("cache: {} (damaged)", cached.display()));
        }
        None if cached.is_file() => return Ok(cached),
        None => looked.push(format!("cache: {}", cached.display())),
    }
    // Only the chosen package's file counts, so that BV_CPU_PLUGIN is honoured.
    let member = [package.member];
    if damaged.is_none() {
        if let Some(p) = in_python_packages(&member, &mut looked) {
            return Ok(p);
        }
    }
    fetch(&package).map_err(|e| match e {
        Error::Fetch {
            reason, command, ..
        } => {
            looked.push(format!("pip download: {reason}"));
            Error::NotFound {
                platform: "cpu".into(),
                looked,
                hint: format!("fetch it by hand with:\n  {command}\nor point {PLUGIN_ENV} at a PJRT plugin file"),
            }
        }
        other => other,
    })
}

/// Finds an installed plugin for `platform` (no fetching: GPU and TPU plugins come with
/// their pip packages, `jax-cuda13-pjrt` or `libtpu`).
pub fn find_plugin(platform: Platform) -> Result<PathBuf> {
    if platform == Platform::Cpu {
        return cpu_plugin();
    }
    let mut looked = Vec::new();
    if let Some(p) = explicit(&mut looked)? {
        return Ok(p);
    }
    if let Some(p) = in_python_packages(platform.python_paths(), &mut looked) {
        return Ok(p);
    }
    let package = match platform {
        Platform::Cuda => "jax-cuda13-pjrt (or jax-cuda12-pjrt)",
        _ => "libtpu",
    };
    Err(Error::NotFound {
        platform: platform.name().into(),
        looked,
        hint: format!("install it with `python3 -m pip install {package}`, or set {PLUGIN_ENV}"),
    })
}

/// The plugin named by `BV_PJRT_PLUGIN`, if set; an error if it names no file.
fn explicit(looked: &mut Vec<String>) -> Result<Option<PathBuf>> {
    match std::env::var_os(PLUGIN_ENV) {
        Some(p) => {
            let p = PathBuf::from(p);
            if p.is_file() {
                Ok(Some(p))
            } else {
                Err(Error::Load {
                    reason: format!("{PLUGIN_ENV} names a file that does not exist"),
                    path: p,
                })
            }
        }
        None => {
            looked.push(format!("{PLUGIN_ENV} (not set)"));
            Ok(None)
        }
    }
}

/// Looks for `members` under each directory on `python3`'s `sys.path`.
fn in_python_packages(members: &[&str], looked: &mut Vec<String>) -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; print('\\n'.join(p for p in sys.path if p))",
        ])
        .output();
    let dirs: Vec<PathBuf> = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .collect(),
        _ => {
            looked.push("python3 sys.path (python3 not runnable)".into());
            return None;
        }
    };
    for dir in &dirs {
        for m in members {
            let candidate = dir.join(m);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    looked.push(format!(
        "Python packages ({}) in {} sys.path directories",
        members.join(", "),
        dirs.len()
    ));
    None
}

/// The pip command that downloads `package` into `dir`.
fn pip_command(package: &PluginPackage, dir: &Path) -> Vec<String> {
    vec![
        "python3".into(),
        "-m".into(),
        "pip".into(),
        "download".into(),
        "--no-deps".into(),
        "--only-binary=:all:".into(),
        "--disable-pip-version-check".into(),
        "-d".into(),
        dir.display().to_string(),
        format!("{}=={}", package.name, package.version),
    ]
}

/// Downloads, verifies and unpacks `package` into the cache; returns the plugin's path.
pub fn fetch(package: &PluginPackage) -> Result<PathBuf> {
    let target = cached_path(package);
    let dir = target.parent().unwrap_or(Path::new(".")).to_path_buf();
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let lock_path = dir.join(".lock");
    let lock = fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    fs2::FileExt::lock_exclusive(&lock).map_err(|e| Error::io(&lock_path, e))?;
    // Another process may have finished the job while we waited for the lock.
    if target.is_file() && damage(&target, package)?.is_none() {
        return Ok(target);
    }
    let download = dir.join(format!(".download-{}", std::process::id()));
    let result = download_and_unpack(package, &download, &target);
    let _ = fs::remove_dir_all(&download);
    result
}

fn download_and_unpack(package: &PluginPackage, download: &Path, target: &Path) -> Result<PathBuf> {
    let cmd = pip_command(package, download);
    let shown = cmd.join(" ");
    let fail = |reason: String| Error::Fetch {
        package: package.name.into(),
        version: package.version.into(),
        reason,
        command: shown.clone(),
    };
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| fail(format!("cannot run python3: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(fail(format!("pip exited with {}: {last}", out.status)));
    }
    let wheel = fs::read_dir(download)
        .map_err(|e| Error::io(download, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| fail("pip reported success but left no wheel".into()))?;
    let digest = sha256_file(&wheel)?;
    if digest != package.wheel_sha256 {
        return Err(fail(format!(
            "checksum mismatch for {}: got {digest}, pinned {}",
            wheel.display(),
            package.wheel_sha256
        )));
    }
    let file = fs::File::open(&wheel).map_err(|e| Error::io(&wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| fail(format!("bad wheel: {e}")))?;
    let mut member = zip
        .by_name(package.member)
        .map_err(|e| fail(format!("{} not in wheel: {e}", package.member)))?;
    let tmp = target.with_extension(format!("so.tmp-{}", std::process::id()));
    let mut out = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut h = Sha256::new();
    loop {
        let n = member.read(&mut buf).map_err(|e| Error::io(&wheel, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::io(&tmp, e))?;
    }
    out.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(out);
    let digest = hex(&h.finalize());
    if digest != package.plugin_sha256 {
        let _ = fs::remove_file(&tmp);
        return Err(fail(format!(
            "checksum mismatch for {} in the wheel: got {digest}, pinned {}",
            package.member, package.plugin_sha256
        )));
    }
    fs::rename(&tmp, target).map_err(|e| Error::io(target, e))?;
    write_stamp(target, &digest)?;
    eprintln!(
        "bv: fetched the CPU PJRT plugin {}=={} from PyPI (wheel sha256 verified) into {}",
        package.name,
        package.version,
        target.display()
    );
    Ok(target.to_path_buf())
}

/// The hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stamp written beside a verified plugin.
fn stamp_path(plugin: &Path) -> PathBuf {
    let mut name = plugin.file_name().unwrap_or_default().to_owned();
    name.push(".verified");
    plugin.with_file_name(name)
}

/// What identifies one version of a file: its size, modification time and inode.
fn identity(path: &Path) -> Result<String> {
    let m = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(format!("size {} mtime {mtime} inode {inode}", m.len()))
}

/// Records that `plugin` (as it is now) has SHA-256 `digest`; written under a temporary
/// name and renamed, so concurrent writers are harmless.
fn write_stamp(plugin: &Path, digest: &str) -> Result<()> {
    let stamp = stamp_path(plugin);
    let tmp = stamp.with_extension(format!("tmp-{}", std::process::id()));
    let text = format!("sha256 {digest} {}\n", identity(plugin)?);
    fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, &stamp).map_err(|e| Error::io(&stamp, e))
}

/// What is wrong with the cached plugin at `path`, or `None` when it is the pinned file:
/// its stamp matches the file as it is now, or its SHA-256 is the pinned one (then the
/// stamp is written).
fn damage(path: &Path, package: &PluginPackage) -> Result<Option<String>> {
    let pinned = package.plugin_sha256;
    let stamp = fs::read_to_string(stamp_path(path)).unwrap_or_default();
    if stamp.trim() == format!("sha256 {pinned} {}", identity(path)?) {
        return Ok(None);
    }
    let digest = sha256_file(path)?;
    if digest != pinned {
        let size = fs::metadata(path).map_or(0, |m| m.len());
        return Ok(Some(format!(
            "{size} bytes with SHA-256 {digest}, not the pinned {pinned}"
        )));
    }
    write_stamp(path, &digest)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package pinned to a checksum no file of the test has.
    const OTHER: PluginPackage = PluginPackage {
        name: "test",
        version: "0",
        wheel_sha256: "",
        member: "plugin.so",
        plugin_sha256: "0000000000000000000000000000000000000000000000000000000000000000",
    };

    #[test]
    fn a_damaged_cached_plugin_is_found_and_a_verified_one_is_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugin.so");
        std::fs::write(&path, b"plugin bytes\n").unwrap();
        let pinned = sha256_file(&path).unwrap();
        let package = PluginPackage {
            plugin_sha256: Box::leak(pinned.clone().into_boxed_str()),
            ..OTHER
        };
        assert_eq!(damage(&path, &package).unwrap(), None);
        let stamp = std::fs::read_to_string(stamp_path(&path)).unwrap();
        assert!(
            stamp.starts_with(&format!("sha256 {pinned} size 13 ")),
            "{stamp}"
        );

        // Cut short: the stamp no longer matches, and the hash tells.
        std::fs::write(&path, b"plugin").unwrap();
        let d = damage(&path, &package).unwrap().unwrap();
        assert!(
            d.starts_with("6 bytes with SHA-256 ")
                && d.ends_with(&format!("not the pinned {pinned}")),
            "{d}"
        );

        // The pin of another file: damaged whatever the stamp says.
        std::fs::write(&path, b"plugin bytes\n").unwrap();
        assert!(damage(&path, &OTHER).unwrap().is_some());
    }
}
