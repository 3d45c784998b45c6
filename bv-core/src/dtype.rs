//! Element types shared by the runtime, the tracer and the emitter.

use std::fmt;

/// An array element type, named as in JAX/NumPy (`f32`, `bf16`, `bool`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// Boolean (`pred` in XLA, `i1` in StableHLO).
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F16,
    BF16,
    F32,
    F64,
}

impl DType {
    /// Every element type, in a fixed order.
    pub const ALL: [DType; 13] = [
        DType::Bool,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
    ];

    /// Bytes per element in a dense host buffer.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 | DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    /// The element type as StableHLO spells it in tensor types (`tensor<2x3xf32>`).
    pub fn mlir_name(self) -> &'static str {
        match self {
            DType::Bool => "i1",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "ui8",
            DType::U16 => "ui16",
            DType::U32 => "ui32",
            DType::U64 => "ui64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }

    /// The JAX/NumPy name (`bool`, `int32`, `bfloat16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// True for f16, bf16, f32 and f64.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    /// True for the signed integer types.
    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64)
    }

    /// True for the unsigned integer types.
    pub fn is_unsigned_int(self) -> bool {
        matches!(self, DType::U8 | DType::U16 | DType::U32 | DType::U64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Rust scalar types that map one-to-one onto a [`DType`]; host data of these types can be
/// copied to and from devices.
///
/// The trait is sealed: host↔device copies trust `DTYPE` for the type's size and for which
/// bit patterns are valid, so only bv's own implementations (the integer and float types,
/// `half::f16`, `half::bf16` and `bool`) exist. Another type does not compile:
///
/// ```compile_fail
/// #[derive(Clone, Copy)]
/// struct Wide([u8; 64]);
/// impl bv_core::Element for Wide {
///     const DTYPE: bv_core::DType = bv_core::DType::U8;
///     fn write_le(self, out: &mut Vec<u8>) {
///         out.extend_from_slice(&self.0)
///     }
///     fn read_le(b: &[u8]) -> Self {
///         Wide([b[0]; 64])
///     }
/// }
/// ```
pub trait Element: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The element type of this Rust type.
    const DTYPE: DType;

    /// Appends the value's little-endian bytes (booleans as one byte, 0 or 1).
    fn write_le(self, out: &mut Vec<u8>);

    /// Reads a value from the first `DTYPE.size_in_bytes()` little-endian bytes of `b`
    /// (any non-zero byte is `true`).
    fn read_le(b: &[u8]) -> Self;
}

mod sealed {
    /// Implemented exactly by the [`super::Element`] types.
    pub trait Sealed {}
}

/// The bytes of a slice of elements, in memory order (little-endian on every platform bv
/// runs on).
pub fn as_bytes<T: Element>(data: &[T]) -> &[u8] {
    // SAFETY: Element types are plain data of DTYPE's size, without padding.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) }
}

macro_rules! element {
    ($($t:ty => $d:ident),* $(,)?) => { $(impl sealed::Sealed for $t {}
    impl Element for $t {
        const DTYPE: DType = DType::$d;
        fn write_le(self, out: &mut Vec<u8>) { out.extend_from_slice(&self.to_le_bytes()) }
        fn read_le(b: &[u8]) -> Self {
            let mut a = [0u8; std::mem::size_of::<$t>()];
            a.copy_from_slice(&b[..std::mem::size_of::<$t>()]);
            <$t>::from_le_bytes(a)
        }
    })* };
}

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8)
    }
    fn read_le(b: &[u8]) -> Self {
        b[0] != 0
    }
}
element!(
    i8 => I8, i16 => I16, i32 => I32, i64 => I64,
    u8 => U8, u16 => U16, u32 => U32, u64 => U64,
    half::f16 => F16, half::bf16 => BF16, f32 => F32, f64 => F64,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_rust_types() {
        assert_eq!(
            DType::BF16.size_in_bytes(),
            std::mem::size_of::<half::bf16>()
        );
        assert_eq!(DType::Bool.size_in_bytes(), std::mem::size_of::<bool>());
        assert_eq!(DType::U64.size_in_bytes(), std::mem::size_of::<u64>());
    }
}
