//! The `.npy` format (versions 1.0, 2.0 and 3.0): a magic string, a Python dict literal
//! header `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`, then the raw data.

use std::path::Path;

use super::{HostArray, IoError};
use crate::DType;

const MAGIC: &[u8] = b"\x93NUMPY";
/// NumPy pads the header so that the data starts at a multiple of this.
const ALIGN: usize = 64;

/// Reads one `.npy` file.
pub fn read_npy(path: impl AsRef<Path>) -> Result<HostArray, IoError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| IoError::io(path, e))?;
    decode(&bytes, &path.display().to_string())
}

/// Writes one `.npy` file (version 1.0, C order, little-endian), as `numpy.save` does.
pub fn write_npy(path: impl AsRef<Path>, a: &HostArray) -> Result<(), IoError> {
    let path = path.as_ref();
    std::fs::write(path, encode(a)).map_err(|e| IoError::io(path, e))
}

/// The descriptor bv writes for a dtype (bfloat16 as ml_dtypes does: `<V2`).
fn descr(d: DType) -> &'static str {
    match d {
        DType::Bool => "|b1",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::F16 => "<f2",
        DType::BF16 => "<V2",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
    }
}

/// Parses a descriptor into a dtype and whether its bytes are big-endian.
fn parse_descr(s: &str) -> Option<(DType, bool)> {
    let (order, kind) = match s.as_bytes().first()? {
        b'<' | b'=' | b'|' => (false, &s[1..]),
        b'>' => (true, &s[1..]),
        _ => (false, s),
    };
    let d = match kind {
        "b1" | "?" => DType::Bool,
        "i1" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" => DType::U8,
        "u2" => DType::U16,
        "u4" => DType::U32,
        "u8" => DType::U64,
        "f2" => DType::F16,
        "V2" | "bfloat16" => DType::BF16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        _ => return None,
    };
    Some((d, order))
}

/// Serializes a host array as `.npy` bytes.
pub(crate) fn encode(a: &HostArray) -> Vec<u8> {
    let shape = match a.shape() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        descr(a.dtype())
    );
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    let total = unpadded.div_ceil(ALIGN) * ALIGN;
    header.extend(std::iter::repeat_n(' ', total - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(total + a.bytes().len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(a.bytes());
    out
}

/// Parses `.npy` bytes; `file` names the source in errors (`path` or `path:entry`).
pub(crate) fn decode(bytes: &[u8], file: &str) -> Result<HostArray, IoError> {
    let bad = |offset: usize, msg: String| IoError::Malformed {
        file: file.to_string(),
        offset: offset as u64,
        msg,
    };
    if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad(0, "missing the \\x93NUMPY magic string".into()));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let len_size = match major {
        1 => 2,
        2 | 3 => 4,
        _ => return Err(bad(6, format!("unknown format version {major}.{minor}"))),
    };
    let start = 8 + len_size;
    if bytes.len() < start {
        return Err(bad(8, "file ends inside the header length".into()));
    }
    let header_len = if len_size == 2 {
        u16::from_le_bytes([bytes[8], bytes[9]]) as usize
    } else {
        u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
    };
    let end = start + header_len;
    if bytes.len() < end {
        return Err(bad(
            8,
            format!(
                "header of {header_len} bytes runs past the end of the file ({} bytes)",
                bytes.len()
            ),
        ));
    }
    let text = std::str::from_utf8(&bytes[start..end])
        .map_err(|e| bad(start + e.valid_up_to(), "header is not valid UTF-8".into()))?;
    let h = Header::parse(text).map_err(|(pos, msg)| bad(start + pos, msg))?;
    let (dtype, big_endian) = parse_descr(&h.descr).ok_or_else(|| IoError::UnsupportedDtype {
        file: file.to_string(),
        descr: h.descr.clone(),
    })?;
    let size = dtype.size_in_bytes();
    let n: usize = h.shape.iter().product();
    let data = &bytes[end..];
    if data.len() != n * size {
        return Err(bad(
            end,
            format!(
                "{} array of shape {:?} needs {} data bytes, found {}",
                dtype,
                h.shape,
                n * size,
                data.len()
            ),
        ));
    }
    let mut data = data.to_vec();
    if big_endian && size > 1 {
        data.chunks_exact_mut(size).for_each(|c| c.reverse());
    }
    if dtype == DType::Bool {
        data.iter_mut().for_each(|b| *b = (*b != 0) as u8);
    }
    if h.fortran_order && h.shape.len() > 1 {
        data = fortran_to_c(&data, &h.shape, size);
    }
    HostArray::from_bytes(dtype, &h.shape, data)
}

/// Reorders column-major element bytes into row-major order.
fn fortran_to_c(data: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let mut f_strides = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        f_strides[k] = f_strides[k - 1] * shape[k - 1];
    }
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let src: usize = idx.iter().zip(&f_strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&data[src * size..(src + 1) * size]);
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// The three keys of a `.npy` header.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value in the header's dict literal.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

impl Header {
    /// Parses the dict literal; errors carry the byte position within the header.
    fn parse(text: &str) -> Result<Header, (usize, String)> {
        let mut p = Cursor { s: text, pos: 0 };
        p.expect('{')?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        loop {
            p.skip_ws();
            if p.eat('}') {
                break;
            }
            let key_pos = p.pos;
            let key = p.string()?;
            p.expect(':')?;
            let value_pos = p.pos;
            let value = p.value()?;
            match (key.as_str(), value) {
                ("descr", Value::Str(s)) => descr = Some(s),
                ("fortran_order", Value::Bool(b)) => fortran = Some(b),
                ("shape", Value::Tuple(t)) => shape = Some(t),
                ("descr", _) => {
                    return Err((value_pos, "structured dtypes are not supported".into()))
                }
                ("fortran_order" | "shape", _) => {
                    return Err((value_pos, format!("wrong type of value for {key:?}")))
                }
                _ => return Err((key_pos, format!("unexpected header key {key:?}"))),
            }
            p.skip_ws();
            if !p.eat(',') {
                p.expect('}')?;
                break;
            }
        }
        let missing = |k: &str| (text.len(), format!("header lacks the key {k:?}"));
        Ok(Header {
            descr: descr.ok_or_else(|| missing("descr"))?,
            fortran_order: fortran.ok_or_else(|| missing("fortran_order"))?,
            shape: shape.ok_or_else(|| missing("shape"))?,
        })
    }
}

/// A position in the header text.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let t = self.rest();
        self.pos += t.len() - t.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), (usize, String)> {
        if self.eat(c) {
            Ok(())
        } else {
            Err((self.pos, format!("expected {c:?}")))
        }
    }

    fn string(&mut self) -> Result<String, (usize, String)> {
        self.skip_ws();
        let quote = match self.rest().chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err((self.pos, "expected a quoted string".into())),
        };
        let body = &self.rest()[1..];
        let len = body
            .find(quote)
            .ok_or_else(|| (self.pos, "unterminated string".to_string()))?;
        let s = body[..len].to_string();
        self.pos += len + 2;
        Ok(s)
    }

    fn value(&mut self) -> Result<Value, (usize, String)> {
        self.skip_ws();
        let t = self.rest();
        if t.starts_with('\'') || t.starts_with('"') {
            return self.string().map(Value::Str);
        }
        for (word, b) in [("True", true), ("False", false)] {
            if t.starts_with(word) {
                self.pos += word.len();
                return Ok(Value::Bool(b));
            }
        }
        if t.starts_with('[') {
            return Err((self.pos, "structured dtypes are not supported".into()));
        }
        self.expect('(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(')') {
                return Ok(Value::Tuple(dims));
            }
            let t = self.rest();
            let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let d = t[..digits]
                .parse::<usize>()
                .map_err(|_| (self.pos, "expected a dimension".to_string()))?;
            self.pos += digits;
            dims.push(d);
            if !self.eat(',') {
                self.expect(')')?;
                return Ok(Value::Tuple(dims));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes as `numpy.save(np.array([[1, 2, 3], [4, 5, 6]], dtype='<i2', order='F'))`
    /// writes them (header text from NumPy 2.4; data column-major).
    fn numpy_fortran_i2() -> Vec<u8> {
        let header = "{'descr': '<i2', 'fortran_order': True, 'shape': (2, 3), }";
        let mut h = header.to_string();
        h.extend(std::iter::repeat_n(' ', 128 - 10 - header.len() - 1));
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        for v in [1i16, 4, 2, 5, 3, 6] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn fortran_order_is_reordered_to_row_major() {
        let a = decode(&numpy_fortran_i2(), "f.npy").unwrap();
        assert_eq!(a.shape(), &[2, 3]);
        assert_eq!(a.to_vec::<i16>().unwrap(), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn big_endian_is_swapped() {
        let header = "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }";
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16 + 1).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.push(b'\n');
        b.extend_from_slice(&[0, 0, 1, 0, 0xff, 0xff, 0xff, 0xfe]);
        let a = decode(&b, "be.npy").unwrap();
        assert_eq!(a.to_vec::<i32>().unwrap(), vec![256, -2]);
    }

    #[test]
    fn header_matches_numpy_byte_for_byte() {
        // numpy.save(np.zeros((2, 3), np.float32)) starts with exactly these 128 bytes.
        let a = HostArray::from_slice(&[0f32; 6], &[2, 3]).unwrap();
        let b = encode(&a);
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        assert_eq!(&b[..6], MAGIC);
        assert_eq!(&b[6..10], &[1, 0, 118, 0]);
        assert_eq!(&b[10..10 + header.len()], header.as_bytes());
        assert_eq!(b[127], b'\n');
        assert_eq!(b.len(), 128 + 24);
        let scalar = encode(&HostArray::from_slice(&[7i64], &[]).unwrap());
        assert!(std::str::from_utf8(&scalar[10..74])
            .unwrap()
            .contains("'shape': (), "));
    }

    #[test]
    fn malformed_input_names_file_and_offset() {
        let mut b = numpy_fortran_i2();
        b.pop();
        let e = decode(&b, "x.npz:w.npy").unwrap_err().to_string();
        assert!(
            e.starts_with("x.npz:w.npy: malformed .npy at byte 128"),
            "{e}"
        );
        assert!(e.contains("needs 12 data bytes, found 11"), "{e}");

        let e = decode(b"\x93NUMPY\x09\x00", "v.npy")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at byte 6: unknown format version 9.0"), "{e}");

        let e = decode(b"PK\x03\x04", "z.npy").unwrap_err().to_string();
        assert!(e.contains("at byte 0: missing"), "{e}");

        let mut b = numpy_fortran_i2();
        b[10 + 12] = b'c'; // '<i2' -> '<c2'
        let e = decode(&b, "c.npy").unwrap_err().to_string();
        assert!(e.contains("unsupported dtype \"<c2\""), "{e}");

        let mut b = numpy_fortran_i2();
        let at = 10 + 1 + b[10..].iter().position(|&c| c == b'(').unwrap();
        b[at] = b'x'; // '(2, 3)' -> '(x, 3)'
        let e = decode(&b, "s.npy").unwrap_err().to_string();
        assert!(
            e.contains(&format!("at byte {at}: expected a dimension")),
            "{e}"
        );
    }
}
