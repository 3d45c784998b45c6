//! The `.npz` format: a zip archive of `.npy` files, one per named array (`name.npy`),
//! stored (`numpy.savez`) or deflated (`numpy.savez_compressed`).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use super::npy::{decode, encode};
use super::{HostArray, IoError};

/// How `write_npz` stores entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed, as `numpy.savez`.
    Stored,
    /// Deflated, as `numpy.savez_compressed`.
    Deflated,
}

/// Reads every array of an `.npz` file, in archive order, named without the `.npy` suffix.
/// Errors inside an entry name it as `path:entry` with the byte offset within that entry.
pub fn read_npz(path: impl AsRef<Path>) -> Result<Vec<(String, HostArray)>, IoError> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| IoError::io(path, e))?;
    let zip_err = |source| IoError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(zip_err)?;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(zip_err)?;
        let label = format!("{}:{}", path.display(), entry.name());
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| IoError::Malformed {
                file: label.clone(),
                offset: bytes.len() as u64,
                msg: format!("cannot decompress the entry: {e}"),
            })?;
        let name = entry.name();
        let name = name.strip_suffix(".npy").unwrap_or(name).to_string();
        out.push((name, decode(&bytes, &label)?));
    }
    Ok(out)
}

/// Writes arrays to an `.npz` file that `numpy.load` reads, in the given order.
pub fn write_npz<'a, K: AsRef<str>>(
    path: impl AsRef<Path>,
    arrays: impl IntoIterator<Item = (K, &'a HostArray)>,
    compression: Compression,
) -> Result<(), IoError> {
    let path = path.as_ref();
    let io = |e| IoError::io(path, e);
    let zip_err = |source| IoError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let method = match compression {
        Compression::Stored => CompressionMethod::Stored,
        Compression::Deflated => CompressionMethod::Deflated,
    };
    let mut seen = HashSet::new();
    for (name, a) in arrays {
        let name = name.as_ref();
        if !seen.insert(name.to_string()) {
            return Err(IoError::DuplicateEntry {
                path: path.to_path_buf(),
                name: name.to_string(),
            });
        }
        let bytes = encode(a);
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(bytes.len() as u64 >= u32::MAX as u64);
        zip.start_file(format!("{name}.npy"), options)
            .map_err(zip_err)?;
        zip.write_all(&bytes).map_err(io)?;
    }
    let mut inner = zip.finish().map_err(zip_err)?;
    inner.flush().map_err(io)
}
