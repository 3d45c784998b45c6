//! Where a run's files live: a local path, or an object in a `gs://` or `s3://` bucket.
//!
//! Every place that reads or writes the workdir (config, metrics, checkpoints), a TFDS data
//! dir or a `model_init` file goes through the functions here, which take the location as a
//! [`Path`] (`workdirs/run` or `gs://bucket/run`, joined with `Path::join` as usual) and
//! answer with `std::io` results whose errors the callers name with the path. Local paths
//! go to the file system ([`local`]); bucket URLs to `object_store` ([`bucket`]) with the
//! providers' standard credential chains. Any other `scheme://` is refused, never taken as
//! a local folder named `scheme:`.
//!
//! What differs on a bucket: an object is written whole or not at all, so a write needs no
//! temporary name, but there is no rename of a folder and no file lock; callers that rely on
//! either ask [`is_bucket`] (checkpoints write their objects in place and let the manifest
//! and the LAST pointer make them visible; the workdir lock is skipped with a note).
//! Datasets and `model_init` files are read through a local copy in the bv cache
//! ([`local_copy`], [`local_copy_dir`]): the input pipeline reads files by offset.

mod bucket;
mod local;

use std::io;
use std::path::{Path, PathBuf};

/// An entry of a folder listing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The name inside the folder.
    pub name: String,
    /// A folder (on a bucket: a prefix other objects share).
    pub is_dir: bool,
}

/// Where a path points.
enum Location<'a> {
    Local(&'a Path),
    Bucket(bucket::Object),
}

/// The URL schemes bv reads and writes.
pub const SCHEMES: [&str; 2] = ["gs", "s3"];

/// The `scheme` of a `scheme://...` path, if it is one (a local path may contain `:`).
fn scheme(path: &Path) -> Option<&str> {
    let text = path.to_str()?;
    let (scheme, _) = text.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+');
    valid.then_some(scheme)
}

fn locate(path: &Path) -> io::Result<Location<'_>> {
    match scheme(path) {
        None => Ok(Location::Local(path)),
        Some(_) => bucket::Object::parse(path).map(Location::Bucket),
    }
}

/// Checks that `path` is a local path or a URL of a supported scheme with a bucket name.
pub fn check(path: &Path) -> io::Result<()> {
    match scheme(path) {
        None => Ok(()),
        Some(_) => bucket::split(path).map(|_| ()),
    }
}

/// Whether `path` names an object in a bucket (`gs://`, `s3://`) rather than a local file.
pub fn is_bucket(path: &Path) -> bool {
    scheme(path).is_some()
}

/// The whole content of a file.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    match locate(path)? {
        Location::Local(p) => std::fs::read(p),
        Location::Bucket(o) => o.read(),
    }
}

/// [`read`], with `None` for a file that does not exist.
pub fn read_opt(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a file exists (a folder is not a file).
pub fn is_file(path: &Path) -> io::Result<bool> {
    match locate(path)? {
        Location::Local(p) => Ok(p.is_file()),
        Location::Bucket(o) => o.exists(),
    }
}

/// Writes `path` so that a reader sees the old content or the new, never part of it: a
/// local file through `tmp` (written, fsynced, renamed over `path`); an object in one put.
pub fn write_via(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    match locate(path)? {
        Location::Local(p) => local::write_via(tmp, p, bytes),
        Location::Bucket(o) => o.write(bytes),
    }
}

/// [`write_via`] a temporary name beside `path` (its extension replaced by `part`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_via(&path.with_extension("part"), path, bytes)
}

/// The entries of a folder, sorted by name; empty for a folder that does not exist.
pub fn list(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut entries = match locate(dir)? {
        Location::Local(p) => local::list(p)?,
        Location::Bucket(o) => o.list()?,
    };
    entries.sort();
    Ok(entries)
}

/// Creates a folder and its parents (nothing to do on a bucket).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    match locate(dir)? {
        Location::Local(p) => std::fs::create_dir_all(p),
        Location::Bucket(_) => Ok(()),
    }
}

/// Deletes a folder and everything in it (on a bucket: every object under the prefix).
pub fn remove_dir_all(dir: &Path) -> io::Result<()> {
    match locate(dir)? {
        Location::Local(p) => match std::fs::remove_dir_all(p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        Location::Bucket(o) => o.remove_all(),
    }
}

/// Makes the entries of a local folder durable (nothing to do on a bucket).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    match locate(dir)? {
        Location::Local(p) => std::fs::File::open(p).and_then(|f| f.sync_all()),
        Location::Bucket(_) => Ok(()),
    }
}

/// A local file with the content of `path`: the path itself, or for an object a copy in
/// the bv cache (`<cache>/remote/<scheme>/<bucket>/<key>`), downloaded unless a copy of the
/// same size is there.
pub fn local_copy(path: &Path) -> io::Result<PathBuf> {
    match locate(path)? {
        Location::Local(p) => Ok(p.to_path_buf()),
        Location::Bucket(o) => o.download(),
    }
}

/// [`local_copy`] of a folder and everything under it.
pub fn local_copy_dir(dir: &Path) -> io::Result<PathBuf> {
    match locate(dir)? {
        Location::Local(p) => Ok(p.to_path_buf()),
        Location::Bucket(o) => o.download_all(),
    }
}

/// A file that grows by whole lines, as `big_vision_metrics.txt`: appended to locally; on a
/// bucket held in memory and written whole after each append (objects cannot grow).
pub struct Appender {
    inner: AppenderKind,
}

enum AppenderKind {
    File(std::fs::File),
    Object {
        object: bucket::Object,
        text: Vec<u8>,
    },
}

impl Appender {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> io::Result<Appender> {
        let inner = match locate(path)? {
            Location::Local(p) => AppenderKind::File(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            Location::Bucket(object) => {
                let text = read_opt(path)?.unwrap_or_default();
                AppenderKind::Object { object, text }
            }
        };
        Ok(Appender { inner })
    }

    /// Appends `bytes` and makes them visible to readers.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        match &mut self.inner {
            AppenderKind::File(f) => f.write_all(bytes).and_then(|()| f.flush()),
            AppenderKind::Object { object, text } => {
                text.extend_from_slice(bytes);
                object.write(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_buckets_and_unknown_schemes_are_refused() {
        assert!(is_bucket(Path::new("gs://b/w")));
        assert!(is_bucket(Path::new("s3://b")));
        for p in ["workdirs/run", "/tmp/a:b", "./x", "a//b", "c:/x"] {
            assert!(!is_bucket(Path::new(p)), "{p}");
            check(Path::new(p)).unwrap();
        }
        for p in ["hdfs://nn/w", "gs://", "s3:///key", "gs://b/a//c"] {
            let e = check(Path::new(p)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{p}: {e}");
        }
    }

    #[test]
    fn local_files_are_written_whole_listed_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_dir_all(&d).unwrap();
        write_atomic(&d.join("x.json"), b"{}").unwrap();
        assert_eq!(read(&d.join("x.json")).unwrap(), b"{}");
        assert!(!d.join("x.part").exists());
        assert_eq!(read_opt(&d.join("y")).unwrap(), None);
        create_dir_all(&d.join("sub")).unwrap();
        let mut a = Appender::open(&d.join("m.txt")).unwrap();
        a.append(b"1\n").unwrap();
        a.append(b"2\n").unwrap();
        assert_eq!(read(&d.join("m.txt")).unwrap(), b"1\n2\n");
        let names: Vec<(String, bool)> = list(&d)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.is_dir))
            .collect();
        let want = [("m.txt", false), ("sub", true), ("x.json", false)];
        assert_eq!(names, want.map(|(n, d)| (n.to_string(), d)));
        assert!(list(&dir.path().join("none")).unwrap().is_empty());
        remove_dir_all(&d).unwrap();
        assert!(!d.exists());
        assert_eq!(local_copy(&d).unwrap(), d);
    }
}
