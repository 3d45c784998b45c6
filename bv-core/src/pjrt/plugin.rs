//! Loading a PJRT plugin: `dlopen`, `GetPjrtApi`, version check, one-time initialisation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use xla_sys as sys;

use super::api::{args, call, Api};
use super::error::{Error, Result};
use super::named_value::{read_list, NamedValue};

/// Environment variable that lets plugin log lines through to stderr (`BV_PJRT_LOG=1`).
pub const LOG_ENV: &str = "BV_PJRT_LOG";

/// A loaded and initialised PJRT plugin. Plugins are never unloaded: each file is opened
/// and initialised once per process and lives until exit, as JAX does.
pub struct Plugin {
    pub(crate) api: Api,
    attributes: BTreeMap<String, NamedValue>,
    _lib: libloading::Library,
}

/// Loaded plugins by canonical path.
static LOADED: Mutex<BTreeMap<PathBuf, &'static Plugin>> = Mutex::new(BTreeMap::new());

impl Plugin {
    /// Loads the plugin at `path`, or returns the one already loaded from that file.
    pub fn load(path: impl AsRef<Path>) -> Result<&'static Plugin> {
        let path = path.as_ref();
        let canonical = path.canonicalize().map_err(|e| Error::Load {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = loaded.get(&canonical) {
            return Ok(p);
        }
        quiet_plugin_logs();
        let plugin: &'static Plugin = Box::leak(Box::new(Plugin::open(&canonical)?));
        loaded.insert(canonical, plugin);
        Ok(plugin)
    }

    fn open(path: &Path) -> Result<Plugin> {
        check_whole(path)?;
        // SAFETY: loading a shared object runs its initialisers; that is the contract of
        // a PJRT plugin.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| Error::NotAPlugin {
            path: path.to_path_buf(),
            reason: format!("the dynamic loader refused it: {e}"),
        })?;
        type GetApi = unsafe extern "C" fn() -> *const sys::PJRT_Api;
        // SAFETY: `GetPjrtApi` has this signature in every PJRT plugin.
        let get: libloading::Symbol<GetApi> =
            unsafe { lib.get(b"GetPjrtApi\0") }.map_err(|_| Error::NotAPlugin {
                path: path.to_path_buf(),
                reason: "it exports no GetPjrtApi symbol".into(),
            })?;
        // SAFETY: calling the plugin's documented entry point.
        let raw = unsafe { get() };
        if raw.is_null() {
            return Err(Error::NotAPlugin {
                path: path.to_path_buf(),
                reason: "GetPjrtApi returned null".into(),
            });
        }
        // SAFETY: a non-null PJRT_Api lives as long as the library, which we never close.
        let api = unsafe { Api::new(raw, path.to_path_buf()) };
        if api.version.0 != sys::PJRT_API_MAJOR as i32 {
            return Err(Error::IncompatibleApi {
                path: path.to_path_buf(),
                major: api.version.0,
                minor: api.version.1,
                want_major: sys::PJRT_API_MAJOR,
            });
        }
        let mut init = args!(PJRT_Plugin_Initialize_Args {});
        match call!(&api, PJRT_Plugin_Initialize, &mut init) {
            Ok(()) | Err(Error::Unsupported { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut attrs = args!(PJRT_Plugin_Attributes_Args {});
        let attributes = match call!(&api, PJRT_Plugin_Attributes, &mut attrs) {
            // SAFETY: attributes live as long as the process, per the header.
            Ok(()) => unsafe { read_list(attrs.attributes, attrs.num_attributes) },
            Err(_) => BTreeMap::new(),
        };
        Ok(Plugin {
            api,
            attributes,
            _lib: lib,
        })
    }

    /// The file this plugin was loaded from.
    pub fn path(&self) -> &Path {
        &self.api.path
    }

    /// The PJRT C API version the plugin was built with, as (major, minor).
    pub fn api_version(&self) -> (i32, i32) {
        self.api.version
    }

    /// All attributes the plugin reports (`xla_version`, `stablehlo_current_version`, ...).
    pub fn attributes(&self) -> &BTreeMap<String, NamedValue> {
        &self.attributes
    }

    /// The plugin's `xla_version` attribute.
    pub fn xla_version(&self) -> Option<i64> {
        self.attributes.get("xla_version").and_then(|v| v.as_int())
    }

    /// The newest StableHLO version the plugin reads, e.g. `1.13.3`.
    pub fn stablehlo_current_version(&self) -> Option<String> {
        self.attributes
            .get("stablehlo_current_version")
            .and_then(|v| v.as_version())
    }

    /// The oldest StableHLO version the plugin reads.
    pub fn stablehlo_minimum_version(&self) -> Option<String> {
        self.attributes
            .get("stablehlo_minimum_version")
            .and_then(|v| v.as_version())
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.api.path)
            .field("api_version", &self.api.version)
            .finish()
    }
}

/// Checks that the ELF file at `path` holds every byte its headers name (the segments the
/// loader maps and the section table): `dlopen` of a file cut short maps pages past its end
/// and the process dies of SIGBUS with no message. Files that are not 64-bit little-endian
/// ELF are left to the loader.
fn check_whole(path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let fail = |reason: String| Error::NotAPlugin {
        path: path.to_path_buf(),
        reason,
    };
    let io = |e: std::io::Error| fail(format!("cannot read it: {e}"));
    let mut f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut h = [0u8; 64];
    if f.read_exact(&mut h).is_err() || &h[..4] != b"\x7fELF" || h[4] != 2 || h[5] != 1 {
        return Ok(());
    }
    let u16_at = |b: &[u8], i: usize| u64::from(u16::from_le_bytes([b[i], b[i + 1]]));
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let (phoff, shoff) = (u64_at(&h, 0x20), u64_at(&h, 0x28));
    let (phentsize, phnum) = (u16_at(&h, 0x36), u16_at(&h, 0x38));
    let (shentsize, shnum) = (u16_at(&h, 0x3a), u16_at(&h, 0x3c));
    let mut need = shoff.saturating_add(shentsize * shnum);
    if phentsize >= 56 && phoff.saturating_add(phentsize * phnum) <= size {
        let mut ph = vec![0u8; (phentsize * phnum) as usize];
        f.seek(SeekFrom::Start(phoff))
            .and_then(|_| f.read_exact(&mut ph))
            .map_err(io)?;
        for e in ph.chunks_exact(phentsize as usize) {
            const PT_LOAD: u32 = 1;
            if u32::from_le_bytes(e[..4].try_into().expect("4 bytes")) == PT_LOAD {
                need = need.max(u64_at(e, 8).saturating_add(u64_at(e, 32)));
            }
        }
    } else {
        need = need.max(phoff.saturating_add(phentsize * phnum));
    }
    if need > size {
        return Err(fail(format!(
            "the file is cut short: {size} bytes, its ELF headers need {need}; it was damaged in a download or copy, so delete it (bv fetches the CPU plugin again)"
        )));
    }
    Ok(())
}

/// Silences the C++ logging of XLA plugins unless [`LOG_ENV`] is set; a user's own
/// `TF_CPP_MIN_LOG_LEVEL` is left as it is.
fn quiet_plugin_logs() {
    if std::env::var_os(LOG_ENV).is_none() && std::env::var_os("TF_CPP_MIN_LOG_LEVEL").is_none() {
        std::env::set_var("TF_CPP_MIN_LOG_LEVEL", "3");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_elf_file_cut_short_is_refused_before_dlopen() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.so");
        std::fs::write(&path, &exe).unwrap();
        check_whole(&path).unwrap();
        std::fs::write(&path, &exe[..exe.len() / 2]).unwrap();
        let e = Plugin::load(&path).unwrap_err().to_string();
        let want = format!(
            "the file is cut short: {} bytes, its ELF headers need ",
            exe.len() / 2
        );
        assert!(e.contains(&want) && e.contains("cut.so"), "{e}");
    }
}
