//! Host arrays and NumPy's `.npy` / `.npz` files, the format of big_vision's released
//! checkpoints and of the golden files.
//!
//! ```no_run
//! use bv_core::io::{read_npz, write_npz, Compression};
//! let params = read_npz("params_init.npz")?;
//! let (name, kernel) = &params[0];
//! println!("{name}: {} {:?}", kernel.dtype(), kernel.shape());
//! write_npz("copy.npz", params.iter().map(|(k, a)| (k, a)), Compression::Deflated)?;
//! # Ok::<(), bv_core::io::IoError>(())
//! ```
//!
//! bfloat16 is stored as NumPy does with `ml_dtypes`: the descriptor `<V2` (two raw bytes),
//! which big_vision's `recover_dtype` also reads back as bfloat16.

mod host;
mod npy;
mod npz;

pub use host::HostArray;
pub use npy::{read_npy, write_npy};
pub use npz::{read_npz, write_npz, Compression};

use std::path::PathBuf;

use crate::DType;

/// Errors reading or writing host arrays and NumPy files.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The file system refused: the file is missing, unreadable or the disk is full.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The `.npz` container is not a valid zip archive.
    #[error("{}: not a valid .npz (zip) archive: {source}", path.display())]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    /// The `.npy` bytes do not follow the format; `file` is `path` or `path:entry`.
    #[error("{file}: malformed .npy at byte {offset}: {msg}")]
    Malformed {
        file: String,
        offset: u64,
        msg: String,
    },
    /// The `.npy` header names an element type bv has no counterpart for (e.g. complex).
    #[error("{file}: unsupported dtype {descr:?}; bv reads bool, int8..int64, uint8..uint64, float16, bfloat16 (V2), float32 and float64")]
    UnsupportedDtype { file: String, descr: String },
    /// Shape and byte count of a host array disagree.
    #[error("{dtype} array of shape {shape:?} needs {expected} bytes, got {got}")]
    Size {
        dtype: DType,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    /// Conversion to an `ndarray` of another element type; convert the dtype first.
    #[error("array has dtype {found}, asked for {expected}")]
    DtypeMismatch { expected: DType, found: DType },
    /// Two `.npz` entries would have the same name.
    #[error("{}: duplicate entry {name:?}", path.display())]
    DuplicateEntry { path: PathBuf, name: String },
}

impl IoError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError::Io {
            path: path.into(),
            source,
        }
    }
}
