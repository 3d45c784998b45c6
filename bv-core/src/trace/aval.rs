//! Abstract values: what the tracer knows about a value (shape, element type, weak typing).

use std::fmt;

use crate::dtype::DType;

/// The abstract value of a traced tensor: its shape, element type and whether the element
/// type is *weak* (came from a Rust scalar literal and yields to the other operand's type in
/// promotion, as a Python scalar does in JAX).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Aval {
    /// Dimension sizes, major to minor.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Weakly typed (see the type-promotion rules in [`crate::numpy`]).
    pub weak: bool,
}

impl Aval {
    /// A strongly typed abstract value.
    pub fn new(shape: impl Into<Vec<usize>>, dtype: DType) -> Aval {
        Aval {
            shape: shape.into(),
            dtype,
            weak: false,
        }
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn size(&self) -> usize {
        self.shape.iter().product()
    }

    /// The same shape with another element type (strongly typed).
    pub fn with_dtype(&self, dtype: DType) -> Aval {
        Aval {
            shape: self.shape.clone(),
            dtype,
            weak: false,
        }
    }

    /// The same element type and weakness with another shape.
    pub fn with_shape(&self, shape: impl Into<Vec<usize>>) -> Aval {
        Aval {
            shape: shape.into(),
            dtype: self.dtype,
            weak: self.weak,
        }
    }
}

impl fmt::Display for Aval {
    /// JAX's short form, `f32[8,197,384]`; a weak type is marked `f32~[]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        let weak = if self.weak { "~" } else { "" };
        write!(f, "{}{}[{}]", short_name(self.dtype), weak, dims.join(","))
    }
}

/// A shape and element type without a value, like `jax.ShapeDtypeStruct`: used to lower a
/// function without device data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Spec {
    /// Dimension sizes.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
}

impl Spec {
    /// A spec of the given shape and type.
    pub fn new(shape: impl Into<Vec<usize>>, dtype: DType) -> Spec {
        Spec {
            shape: shape.into(),
            dtype,
        }
    }

    /// The strongly typed abstract value of this spec.
    pub fn aval(&self) -> Aval {
        Aval::new(self.shape.clone(), self.dtype)
    }
}

/// `f32`, `bf16`, `i32`, `u8`, `bool`: the names used in error messages.
pub fn short_name(dtype: DType) -> &'static str {
    match dtype {
        DType::Bool => "bool",
        DType::U8 => "u8",
        DType::U16 => "u16",
        DType::U32 => "u32",
        DType::U64 => "u64",
        other => other.mlir_name(),
    }
}

/// Lists avals as `f32[2,3], i32[]` for error messages.
pub fn list(avals: &[&Aval]) -> String {
    let parts: Vec<String> = avals.iter().map(|a| a.to_string()).collect();
    parts.join(", ")
}
