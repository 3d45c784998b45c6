//! Errors of the PJRT layer.

use std::fmt;
use std::path::PathBuf;

use crate::DType;

/// The result type of the PJRT layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A status code reported by a plugin (absl's canonical codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// The plugin does not implement the call.
    pub const UNIMPLEMENTED: ErrorCode = ErrorCode(12);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 17] = [
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ];
        match NAMES.get(self.0 as usize) {
            Some(name) => f.write_str(name),
            None => write!(f, "code {}", self.0),
        }
    }
}

/// What went wrong in the PJRT layer. Each message names the call, file or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plugin call failed; `message` is the plugin's own text (for a compile, the MLIR
    /// diagnostics verbatim).
    #[error("{call} failed ({code}): {message}")]
    Plugin {
        call: &'static str,
        code: ErrorCode,
        message: String,
    },
    /// The plugin file does not exist or the dynamic loader refused it.
    #[error("cannot load PJRT plugin {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    /// The file loaded but is not a PJRT plugin (no usable `GetPjrtApi`).
    #[error("{path} is not a PJRT plugin: {reason}")]
    NotAPlugin { path: PathBuf, reason: String },
    /// The plugin speaks an ABI-incompatible PJRT API.
    #[error("PJRT plugin {path} has API version {major}.{minor}; bv speaks {want_major}.x")]
    IncompatibleApi {
        path: PathBuf,
        major: i32,
        minor: i32,
        want_major: u32,
    },
    /// The plugin is too old (or too limited) to offer this entry point.
    #[error(
        "{entry} is not offered by PJRT plugin {path} (API {major}.{minor}); use a newer plugin"
    )]
    Unsupported {
        entry: &'static str,
        path: PathBuf,
        major: i32,
        minor: i32,
    },
    /// No plugin was found for a platform, and none could be fetched.
    #[error("no PJRT plugin for {platform}; looked in:\n{}\n{hint}", looked.iter().map(|l| format!("  - {l}")).collect::<Vec<_>>().join("\n"))]
    NotFound {
        platform: String,
        looked: Vec<String>,
        hint: String,
    },
    /// Fetching a plugin package failed.
    #[error("fetching PJRT plugin {package}=={version} failed: {reason}\nto fetch it by hand, run:\n  {command}")]
    Fetch {
        package: String,
        version: String,
        reason: String,
        command: String,
    },
    /// A caller's argument does not fit the call (shape, element type, count, device).
    #[error("{op}: {message}")]
    InvalidArgument { op: &'static str, message: String },
    /// The plugin returned an element type bv does not handle.
    #[error("element type {0} (PJRT_Buffer_Type) is not supported by bv")]
    UnsupportedElementType(u32),
    /// Host data of one element type was read as another.
    #[error("buffer holds {actual}, not {requested}")]
    ElementTypeMismatch { actual: DType, requested: DType },
    /// An I/O failure, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// Builds an [`Error::InvalidArgument`].
    pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> Error {
        Error::InvalidArgument {
            op,
            message: message.into(),
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Some(())` for success, `None` where the plugin lacks the feature (an entry it does not
/// have, or one that answers UNIMPLEMENTED), the error otherwise.
pub(crate) fn offered(result: Result<()>) -> Result<Option<()>> {
    match result {
        Ok(()) => Ok(Some(())),
        Err(Error::Unsupported { .. }) => Ok(None),
        Err(Error::Plugin { code, .. }) if code == ErrorCode::UNIMPLEMENTED => Ok(None),
        Err(e) => Err(e),
    }
}
