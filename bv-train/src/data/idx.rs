//! IDX files (the MNIST family's raw format), plain or gzipped.
//!
//! Layout: `0x00 0x00 dtype ndim`, then `ndim` big-endian u32 dimensions, then the data.
//! Only unsigned bytes (dtype 0x08) are used by (Fashion-)MNIST and supported here.

use std::io::Read;
use std::path::Path;

use super::error::{DataError, Result};
use super::value::Array;

/// Reads a uint8 IDX file; a `.gz` name is decompressed.
pub fn read_idx_u8(path: &Path) -> Result<Array<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::Idx {
                path: path.to_path_buf(),
                msg: format!("gzip: {e}"),
            })?;
        out
    } else {
        raw
    };
    parse_idx_u8(&bytes).map_err(|msg| DataError::Idx {
        path: path.to_path_buf(),
        msg,
    })
}

fn parse_idx_u8(b: &[u8]) -> std::result::Result<Array<u8>, String> {
    if b.len() < 4 || b[0] != 0 || b[1] != 0 {
        return Err("missing the 0x0000 magic".into());
    }
    if b[2] != 0x08 {
        return Err(format!("dtype 0x{:02x} is not unsigned byte (0x08)", b[2]));
    }
    let ndim = b[3] as usize;
    let head = 4 + 4 * ndim;
    if b.len() < head {
        return Err("truncated header".into());
    }
    let shape: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(b[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let n: usize = shape.iter().product();
    if b.len() != head + n {
        return Err(format!(
            "shape {shape:?} needs {n} data bytes, the file has {}",
            b.len() - head
        ));
    }
    Ok(Array::new(shape, b[head..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let ok = [0, 0, 8, 2, 0, 0, 0, 1, 0, 0, 0, 2, 7, 9];
        assert_eq!(
            parse_idx_u8(&ok).unwrap(),
            Array::new(vec![1, 2], vec![7, 9])
        );
        assert!(parse_idx_u8(&ok[..13]).unwrap_err().contains("needs 2"));
        assert!(parse_idx_u8(&[0, 0, 0x0d, 1])
            .unwrap_err()
            .contains("dtype"));
    }
}
