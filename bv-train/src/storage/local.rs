//! The local file system side of [`super`].

use std::io::{self, Write};
use std::path::Path;

use super::Entry;

/// Writes `tmp`, fsyncs it and renames it to `path`.
pub(super) fn write_via(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = std::fs::File::create(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

/// The entries of `dir`; none when it does not exist.
pub(super) fn list(dir: &Path) -> io::Result<Vec<Entry>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    entries
        .map(|e| {
            let e = e?;
            Ok(Entry {
                name: e.file_name().to_string_lossy().into_owned(),
                is_dir: e.path().is_dir(),
            })
        })
        .collect()
}
