//! The wire format of the coordination service: length-prefixed frames over TCP.
//!
//! A request is `op: u8` followed by its fields; a response is `status: u8` and one
//! byte-string payload. Byte strings are a little-endian `u32` length and the bytes;
//! integers are little-endian `u64`.

use std::io::{self, Read, Write};

pub(crate) const PUT: u8 = 1;
pub(crate) const GET: u8 = 2;
pub(crate) const TRY_GET: u8 = 3;
pub(crate) const BARRIER: u8 = 4;

pub(crate) const OK: u8 = 0;
pub(crate) const NOT_FOUND: u8 = 1;
pub(crate) const TIMEOUT: u8 = 2;

/// The largest key or value accepted, so that a corrupt length cannot exhaust memory.
const MAX_LEN: u32 = 256 << 20;

pub(crate) fn write_bytes(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    let len = u32::try_from(b.len()).map_err(|_| io::Error::other("value over 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(b)
}

pub(crate) fn read_bytes(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_LEN}-byte limit"),
        ));
    }
    let mut b = vec![0u8; len as usize];
    r.read_exact(&mut b)?;
    Ok(b)
}

pub(crate) fn write_u64(w: &mut impl Write, v: u64) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

pub(crate) fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

pub(crate) fn read_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}
