//! The record of the calls a client gets: one line per call, `CALL key=value ...`, appended
//! to a file that tests read after (or while) the code under test runs.
//!
//! Values hold no spaces: lists are comma-separated, shapes `2x3`, byte contents an FNV-1a
//! hash ([`fnv1a`]) that a test computes on the bytes it expects.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The entry point or event, e.g. `PJRT_Client_BufferFromHostBuffer` or `kv_get`.
    pub name: String,
    /// Its details by key.
    pub fields: BTreeMap<String, String>,
}

impl Call {
    /// The value of `key` (empty when absent).
    pub fn get(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", String::as_str)
    }

    /// The value of `key` as a comma-separated list of integers.
    pub fn ints(&self, key: &str) -> Vec<i64> {
        self.get(key)
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or(i64::MIN))
            .collect()
    }
}

/// Reads a record file; a missing file is an empty record.
pub fn read(path: &Path) -> Vec<Call> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            let name = words.next().filter(|n| !n.is_empty())?.to_string();
            let fields = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Some(Call { name, fields })
        })
        .collect()
}

/// The 64-bit FNV-1a hash of `bytes`, as the record writes it (16 hex digits).
pub fn fnv1a(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

/// Where a client writes its record (nowhere when no file was named).
pub(crate) struct Recorder {
    file: Option<Mutex<std::fs::File>>,
}

impl Recorder {
    pub(crate) fn open(path: Option<&Path>) -> std::io::Result<Recorder> {
        let file = match path {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        Ok(Recorder { file })
    }

    /// Appends one line (a single write, so lines of concurrent calls do not interleave).
    pub(crate) fn call(&self, name: &str, fields: &[(&str, String)]) {
        let Some(file) = &self.file else { return };
        let mut line = name.to_string();
        for (k, v) in fields {
            line.push(' ');
            line.push_str(k);
            line.push('=');
            line.push_str(&v.replace(' ', "_"));
        }
        line.push('\n');
        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(line.as_bytes());
    }
}

/// A comma-separated list.
pub(crate) fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference (draft-eastlake-fnv): "" and "a" under FNV-1a 64.
        assert_eq!(fnv1a(b""), "cbf29ce484222325");
        assert_eq!(fnv1a(b"a"), "af63dc4c8601ec8c");
    }

    #[test]
    fn lines_round_trip() {
        let dir = std::env::temp_dir().join(format!("pjrt-test-record-{}", std::process::id()));
        let r = Recorder::open(Some(&dir)).unwrap();
        r.call(
            "kv_get",
            &[("key", "a/b".into()), ("devices", list([0, 1]))],
        );
        let calls = read(&dir);
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, "kv_get");
        assert_eq!(calls[0].get("key"), "a/b");
        assert_eq!(calls[0].ints("devices"), vec![0, 1]);
    }
}
