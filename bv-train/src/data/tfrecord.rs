//! TFRecord framing: `u64 len | u32 masked_crc32c(len) | data | u32 masked_crc32c(data)`.
//!
//! Both checksums are verified on read. A corrupted record is an error naming the file and the
//! byte offset, unless [`Corruption::SkipAndCount`] is chosen: then a record whose data checksum
//! fails is skipped and counted, and a bad length header ends the shard (its records cannot be
//! found after it) and is counted as one.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::error::{DataError, Result};

const MASK_DELTA: u32 = 0xa282_ead8;

/// TFRecord's masked CRC32C (Castagnoli) of `data`.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// What to do with a record whose checksum does not match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Corruption {
    /// Stop with [`DataError::Corrupt`] (the default).
    #[default]
    Error,
    /// Skip the record, count it in [`TfRecordReader::skipped`], and go on.
    SkipAndCount,
}

/// Sequential reader of one TFRecord file.
pub struct TfRecordReader {
    path: PathBuf,
    inner: BufReader<File>,
    offset: u64,
    corruption: Corruption,
    verify: bool,
    skipped: u64,
    done: bool,
}

impl TfRecordReader {
    /// Opens `path` for reading from its start.
    pub fn open(path: &Path, corruption: Corruption) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        Ok(TfRecordReader {
            path: path.to_path_buf(),
            inner: BufReader::with_capacity(1 << 18, file),
            offset: 0,
            corruption,
            verify: true,
            skipped: 0,
            done: false,
        })
    }

    /// Turns checksum verification of the data on or off (the length header is always checked).
    pub fn verify_data(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Moves to byte `offset`, which must be the start of a record.
    pub fn seek(&mut self, offset: u64) -> Result<()> {
        self.inner
            .seek(SeekFrom::Start(offset))
            .map_err(|e| DataError::io(&self.path, e))?;
        self.offset = offset;
        self.done = false;
        Ok(())
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of corrupted records skipped so far (with [`Corruption::SkipAndCount`]).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn corrupt(&self, offset: u64, what: impl Into<String>) -> DataError {
        DataError::Corrupt {
            path: self.path.clone(),
            offset,
            what: what.into(),
        }
    }

    /// Reads the 12-byte header at the current offset: `Ok(None)` at a clean end of file.
    fn header(&mut self) -> Result<Option<u64>> {
        let start = self.offset;
        let mut hdr = [0u8; 12];
        let mut got = 0;
        while got < 12 {
            match self.inner.read(&mut hdr[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(self.corrupt(start, "truncated record header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DataError::io(&self.path, e)),
            }
        }
        let len = u64::from_le_bytes(hdr[..8].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(hdr[8..].try_into().expect("4 bytes"));
        if masked_crc32c(&hdr[..8]) != crc {
            return Err(self.corrupt(start, "length checksum mismatch"));
        }
        Ok(Some(len))
    }

    fn read_record(&mut self, want_data: bool) -> Result<Option<(u64, Vec<u8>)>> {
        let start = self.offset;
        let Some(len) = self.header()? else {
            return Ok(None);
        };
        let mut data = Vec::new();
        if want_data {
            data.resize(len as usize, 0);
            self.inner
                .read_exact(&mut data)
                .map_err(|_| self.corrupt(start, format!("truncated record of {len} bytes")))?;
            let mut crc = [0u8; 4];
            self.inner
                .read_exact(&mut crc)
                .map_err(|_| self.corrupt(start, "truncated record checksum"))?;
            if self.verify && masked_crc32c(&data) != u32::from_le_bytes(crc) {
                self.offset = start + 16 + len;
                return Err(self.corrupt(start, "data checksum mismatch"));
            }
        } else {
            self.inner
                .seek_relative(len as i64 + 4)
                .map_err(|e| DataError::io(&self.path, e))?;
        }
        self.offset = start + 16 + len;
        Ok(Some((start, data)))
    }

    fn next_inner(&mut self, want_data: bool) -> Option<Result<(u64, Vec<u8>)>> {
        loop {
            if self.done {
                return None;
            }
            match self.read_record(want_data) {
                Ok(Some(r)) => return Some(Ok(r)),
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    let DataError::Corrupt { what, .. } = &e else {
                        self.done = true;
                        return Some(Err(e));
                    };
                    if self.corruption == Corruption::Error {
                        self.done = true;
                        return Some(Err(e));
                    }
                    self.skipped += 1;
                    // Only a record with a bad payload leaves the framing intact.
                    if what != "data checksum mismatch" {
                        self.done = true;
                    }
                }
            }
        }
    }

    /// Reads the next record: `(byte offset, payload)`, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Option<Result<(u64, Vec<u8>)>> {
        self.next_inner(true)
    }

    /// Skips the next record without reading its payload; returns its offset.
    pub fn skip_record(&mut self) -> Option<Result<u64>> {
        self.next_inner(false).map(|r| r.map(|(o, _)| o))
    }
}

impl Iterator for TfRecordReader {
    type Item = Result<(u64, Vec<u8>)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// Writer of one TFRecord file.
pub struct TfRecordWriter {
    path: PathBuf,
    inner: BufWriter<File>,
    bytes: u64,
}

impl TfRecordWriter {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| DataError::io(path, e))?;
        Ok(TfRecordWriter {
            path: path.to_path_buf(),
            inner: BufWriter::new(file),
            bytes: 0,
        })
    }

    /// Appends one record.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut frame = Vec::with_capacity(16);
        frame.extend_from_slice(&len);
        frame.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        let crc = masked_crc32c(data).to_le_bytes();
        let w = &mut self.inner;
        w.write_all(&frame)
            .and_then(|_| w.write_all(data))
            .and_then(|_| w.write_all(&crc))
            .map_err(|e| DataError::io(&self.path, e))?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Sum of the payload sizes written (TFDS's `numBytes`).
    pub fn payload_bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes the file to disk.
    pub fn finish(mut self) -> Result<()> {
        self.inner
            .flush()
            .map_err(|e| DataError::io(&self.path, e))?;
        self.inner
            .get_ref()
            .sync_all()
            .map_err(|e| DataError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The CRC-32C check value of "123456789" is 0xE3069283 (RFC 3720, B.4).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        // ((crc >> 15) | (crc << 17)) + 0xa282ead8, computed by hand.
        assert_eq!(masked_crc32c(b"123456789"), 0xc78ab0e5);
    }

    #[test]
    fn skip_and_count_goes_past_a_bad_payload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tfrecord");
        let mut w = TfRecordWriter::create(&path).unwrap();
        for r in [b"one".as_slice(), b"two", b"three"] {
            w.write(r).unwrap();
        }
        w.finish().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[19 + 12] ^= 1; // second record's payload (`two` at 19+12)
        std::fs::write(&path, &bytes).unwrap();

        let err = TfRecordReader::open(&path, Corruption::Error)
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .unwrap_err();
        assert!(
            matches!(err, DataError::Corrupt { offset: 19, .. }),
            "{err}"
        );
        let mut r = TfRecordReader::open(&path, Corruption::SkipAndCount).unwrap();
        let got: Vec<Vec<u8>> = r.by_ref().map(|x| x.unwrap().1).collect();
        assert_eq!(got, vec![b"one".to_vec(), b"three".to_vec()]);
        assert_eq!(r.skipped(), 1);
    }
}
