//! Dense literals for `stablehlo.constant`: splats and small arrays as readable numbers,
//! large arrays as little-endian hex, non-finite floats as their bit patterns.

use std::fmt::Write as _;

use crate::dtype::DType;

/// Arrays up to this many elements are written as nested lists; larger ones as hex.
const MAX_LIST_ELEMENTS: usize = 64;

/// The `dense<...>` attribute for `bytes` (little-endian elements of `dtype`) of `shape`.
/// `bytes` holds either one element (a splat) or every element.
pub fn dense(dtype: DType, bytes: &[u8], shape: &[usize]) -> String {
    let w = dtype.size_in_bytes();
    let n = bytes.len() / w;
    if n == 0 {
        return "dense<>".into();
    }
    let first = &bytes[..w];
    if n == 1 || bytes.chunks(w).all(|c| c == first) {
        return format!("dense<{}>", element(dtype, first));
    }
    if n <= MAX_LIST_ELEMENTS || dtype == DType::Bool {
        let elems: Vec<String> = bytes.chunks(w).map(|c| element(dtype, c)).collect();
        let mut s = String::from("dense<");
        nested(&mut s, &elems, shape);
        s.push('>');
        return s;
    }
    let mut s = String::with_capacity(bytes.len() * 2 + 10);
    s.push_str("dense<\"0x");
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s.push_str("\">");
    s
}

fn nested(s: &mut String, elems: &[String], shape: &[usize]) {
    match shape.split_first() {
        None => s.push_str(&elems[0]),
        Some((&d, rest)) => {
            let inner: usize = rest.iter().product();
            s.push('[');
            for i in 0..d {
                if i > 0 {
                    s.push_str(", ");
                }
                nested(s, &elems[i * inner..(i + 1) * inner], rest);
            }
            s.push(']');
        }
    }
}

/// One element in MLIR literal syntax.
fn element(dtype: DType, b: &[u8]) -> String {
    match dtype {
        DType::Bool => (if b[0] != 0 { "true" } else { "false" }).into(),
        DType::I8 => (b[0] as i8).to_string(),
        DType::I16 => i16::from_le_bytes([b[0], b[1]]).to_string(),
        DType::I32 => i32::from_le_bytes(arr(b)).to_string(),
        DType::I64 => i64::from_le_bytes(arr(b)).to_string(),
        DType::U8 => b[0].to_string(),
        DType::U16 => u16::from_le_bytes([b[0], b[1]]).to_string(),
        DType::U32 => u32::from_le_bytes(arr(b)).to_string(),
        DType::U64 => u64::from_le_bytes(arr(b)).to_string(),
        DType::F16 => {
            let bits = u16::from_le_bytes([b[0], b[1]]);
            float(
                f32::from(half::f16::from_bits(bits)) as f64,
                &format!("0x{bits:04X}"),
                false,
            )
        }
        DType::BF16 => {
            let bits = u16::from_le_bytes([b[0], b[1]]);
            float(
                f32::from(half::bf16::from_bits(bits)) as f64,
                &format!("0x{bits:04X}"),
                false,
            )
        }
        DType::F32 => {
            let bits = u32::from_le_bytes(arr(b));
            float(f32::from_bits(bits) as f64, &format!("0x{bits:08X}"), false)
        }
        DType::F64 => {
            let bits = u64::from_le_bytes(arr(b));
            float(f64::from_bits(bits), &format!("0x{bits:016X}"), true)
        }
    }
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

/// A finite float as the shortest decimal that round-trips in its type (MLIR needs a `.`;
/// very large or small magnitudes use an exponent);
/// NaN and infinities as the hex bit pattern.
fn float(v: f64, hex: &str, is_f64: bool) -> String {
    if !v.is_finite() {
        return hex.to_string();
    }
    let a = v.abs();
    if a == 0.0 || (1e-4..1e16).contains(&a) {
        let s = if is_f64 {
            v.to_string()
        } else {
            (v as f32).to_string()
        };
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = if is_f64 {
        format!("{v:e}")
    } else {
        format!("{:e}", v as f32)
    };
    match s.split_once('e') {
        Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
        Some((m, e)) => format!("{m}e{e}"),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_f32(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn splat_and_list_and_hex() {
        assert_eq!(dense(DType::F32, &bytes_f32(&[1.0]), &[2, 2]), "dense<1.0>");
        assert_eq!(
            dense(DType::F32, &bytes_f32(&[0.5, -2.5]), &[2]),
            "dense<[0.5, -2.5]>"
        );
        assert_eq!(
            dense(DType::F32, &bytes_f32(&[f32::NAN]), &[]),
            "dense<0x7FC00000>"
        );
        assert_eq!(
            dense(DType::Bool, &[1, 0, 1, 1], &[2, 2]),
            "dense<[[true, false], [true, true]]>"
        );
        let big: Vec<f32> = (0..65).map(|i| i as f32).collect();
        let s = dense(DType::F32, &bytes_f32(&big), &[65]);
        assert!(s.starts_with("dense<\"0x000000000000803F"), "{s}");
    }

    #[test]
    fn short_floats_round_trip() {
        assert_eq!(float(0.1f32 as f64, "", false), "0.1");
        assert_eq!(float(0.1, "", true), "0.1");
        assert_eq!(float(-0.0, "", true), "-0.0");
        assert_eq!(float(1e20, "", true), "1.0e20");
        assert_eq!(float(1.5e-7, "", false), "1.5e-7");
        let b = half::bf16::from_f32(2.71).to_bits().to_le_bytes();
        assert_eq!(element(DType::BF16, &b), "2.703125");
        assert_eq!(
            element(DType::U64, &u64::MAX.to_le_bytes()),
            "18446744073709551615"
        );
    }
}
