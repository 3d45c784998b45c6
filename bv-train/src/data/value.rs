//! The values that flow through the input pipeline: a flat dict of named, typed, shaped arrays.

use std::collections::BTreeMap;

/// A dense row-major array with a shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Array<T> {
    /// Dimensions, outermost first; empty for a scalar.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements, row-major.
    pub data: Vec<T>,
}

impl<T> Array<T> {
    /// An array from its shape and data; the caller keeps `data.len() == product(shape)`.
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Array { shape, data }
    }

    /// A rank-0 array.
    pub fn scalar(v: T) -> Self {
        Array {
            shape: vec![],
            data: vec![v],
        }
    }
}

/// One value of an example (or, after batching, of a batch).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// uint8 data, e.g. a decoded image (H, W, C).
    U8(Array<u8>),
    /// int64 data, e.g. class labels.
    I64(Array<i64>),
    /// float32 data, e.g. a normalized image or one-hot labels.
    F32(Array<f32>),
    /// Byte strings, e.g. an encoded image or text.
    Bytes(Array<Vec<u8>>),
}

impl Value {
    /// The dtype name, as numpy writes it.
    pub fn dtype(&self) -> &'static str {
        match self {
            Value::U8(_) => "uint8",
            Value::I64(_) => "int64",
            Value::F32(_) => "float32",
            Value::Bytes(_) => "bytes",
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::U8(a) => &a.shape,
            Value::I64(a) => &a.shape,
            Value::F32(a) => &a.shape,
            Value::Bytes(a) => &a.shape,
        }
    }

    /// A value of the same dtype and shape filled with zeros (empty strings), for padding.
    pub fn zeros_like(&self) -> Value {
        fn z<T: Clone + Default>(a: &Array<T>) -> Array<T> {
            Array::new(a.shape.clone(), vec![T::default(); a.data.len()])
        }
        match self {
            Value::U8(a) => Value::U8(z(a)),
            Value::I64(a) => Value::I64(z(a)),
            Value::F32(a) => Value::F32(z(a)),
            Value::Bytes(a) => Value::Bytes(z(a)),
        }
    }
}

/// One example: feature key (nested keys joined with `/`) to value.
pub type Example = BTreeMap<String, Value>;
