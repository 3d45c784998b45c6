//! `HostArray`: a dense, C-ordered, little-endian array in host memory.

use ndarray::{ArrayD, IxDyn};

use super::IoError;
use crate::{DType, Element};

/// A dense array in host memory: element type, shape and row-major little-endian bytes
/// (booleans one byte each, 0 or 1). The currency of `.npz` files and checkpoints;
/// `Array::from_bytes` / `Array::to_bytes` move it to and from devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostArray {
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl HostArray {
    /// Wraps row-major little-endian bytes; fails unless their length matches the shape.
    pub fn from_bytes(dtype: DType, shape: &[usize], data: Vec<u8>) -> Result<Self, IoError> {
        let expected = shape.iter().product::<usize>() * dtype.size_in_bytes();
        if data.len() != expected {
            return Err(IoError::Size {
                dtype,
                shape: shape.to_vec(),
                expected,
                got: data.len(),
            });
        }
        Ok(HostArray {
            dtype,
            shape: shape.to_vec(),
            data,
        })
    }

    /// Copies a slice of elements given in row-major order.
    pub fn from_slice<T: Element>(values: &[T], shape: &[usize]) -> Result<Self, IoError> {
        let mut data = Vec::with_capacity(values.len() * T::DTYPE.size_in_bytes());
        for &v in values {
            v.write_le(&mut data);
        }
        Self::from_bytes(T::DTYPE, shape, data)
    }

    /// Copies an `ndarray` array of any layout.
    pub fn from_ndarray<T: Element, S, D>(a: &ndarray::ArrayBase<S, D>) -> Self
    where
        S: ndarray::Data<Elem = T>,
        D: ndarray::Dimension,
    {
        let mut data = Vec::with_capacity(a.len() * T::DTYPE.size_in_bytes());
        for &v in a.iter() {
            v.write_le(&mut data);
        }
        HostArray {
            dtype: T::DTYPE,
            shape: a.shape().to_vec(),
            data,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape (empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row-major little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Takes the bytes out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// The elements in row-major order; the dtype must be `T`'s.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, IoError> {
        if T::DTYPE != self.dtype {
            return Err(IoError::DtypeMismatch {
                expected: T::DTYPE,
                found: self.dtype,
            });
        }
        Ok(self
            .data
            .chunks_exact(self.dtype.size_in_bytes())
            .map(T::read_le)
            .collect())
    }

    /// A copy as an `ndarray` array; the dtype must be `T`'s.
    pub fn to_ndarray<T: Element>(&self) -> Result<ArrayD<T>, IoError> {
        let v = self.to_vec::<T>()?;
        Ok(ArrayD::from_shape_vec(IxDyn(&self.shape), v).expect("length checked at construction"))
    }

    /// Every element widened to `f64` (booleans as 0/1, 64-bit integers rounded), for
    /// comparisons and summaries whatever the dtype.
    pub fn to_f64(&self) -> Vec<f64> {
        let n = self.dtype.size_in_bytes();
        let b = self.data.chunks_exact(n);
        match self.dtype {
            DType::Bool => b.map(|c| f64::from(c[0] != 0)).collect(),
            DType::I8 => b.map(|c| f64::from(i8::read_le(c))).collect(),
            DType::I16 => b.map(|c| f64::from(i16::read_le(c))).collect(),
            DType::I32 => b.map(|c| f64::from(i32::read_le(c))).collect(),
            DType::I64 => b.map(|c| i64::read_le(c) as f64).collect(),
            DType::U8 => b.map(|c| f64::from(c[0])).collect(),
            DType::U16 => b.map(|c| f64::from(u16::read_le(c))).collect(),
            DType::U32 => b.map(|c| f64::from(u32::read_le(c))).collect(),
            DType::U64 => b.map(|c| u64::read_le(c) as f64).collect(),
            DType::F16 => b.map(|c| half::f16::read_le(c).to_f64()).collect(),
            DType::BF16 => b.map(|c| half::bf16::read_le(c).to_f64()).collect(),
            DType::F32 => b.map(|c| f64::from(f32::read_le(c))).collect(),
            DType::F64 => b.map(f64::read_le).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndarray_round_trip_keeps_logical_order_of_any_layout() {
        let a = ndarray::Array2::from_shape_vec((2, 3), vec![1i32, 2, 3, 4, 5, 6]).unwrap();
        let t = a.t();
        let h = HostArray::from_ndarray(&t);
        assert_eq!(h.shape(), &[3, 2]);
        assert_eq!(h.to_vec::<i32>().unwrap(), vec![1, 4, 2, 5, 3, 6]);
        assert_eq!(h.to_ndarray::<i32>().unwrap(), t.into_dyn());
    }

    #[test]
    fn wrong_byte_count_and_dtype_are_errors() {
        let e = HostArray::from_bytes(DType::F32, &[2, 2], vec![0; 15]).unwrap_err();
        assert!(e.to_string().contains("needs 16 bytes, got 15"), "{e}");
        let h = HostArray::from_slice(&[1.0f32], &[1]).unwrap();
        assert!(matches!(
            h.to_vec::<f64>(),
            Err(IoError::DtypeMismatch { .. })
        ));
    }
}
