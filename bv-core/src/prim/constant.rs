//! `constant` and `iota`: values that come from no operand.

use crate::dtype::{DType, Element};
use crate::emit::{literal, EmitCx};
use crate::prim::{arity, Primitive};
use crate::trace::error::{bail, ensure};
use crate::trace::{bind1, Aval, OpError, Tensor};

/// A Rust scalar kept exactly until it is encoded in a tensor's element type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A float.
    Float(f64),
}

impl Scalar {
    /// The value as f64 (booleans as 0 or 1).
    pub fn to_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => b as u8 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::UInt(u) => u as f64,
            Scalar::Float(f) => f,
        }
    }

    /// The value converted to `dtype` as `astype` does (floats truncate toward zero into
    /// integers, integers wrap), as little-endian bytes.
    pub fn encode(self, dtype: DType) -> Vec<u8> {
        let mut out = Vec::with_capacity(8);
        let as_i64 = || match self {
            Scalar::Bool(b) => b as i64,
            Scalar::Int(i) => i,
            Scalar::UInt(u) => u as i64,
            Scalar::Float(f) => f as i64,
        };
        let f = self.to_f64();
        match dtype {
            DType::Bool => out.push((f != 0.0) as u8),
            DType::I8 => (as_i64() as i8).write_le(&mut out),
            DType::I16 => (as_i64() as i16).write_le(&mut out),
            DType::I32 => (as_i64() as i32).write_le(&mut out),
            DType::I64 => as_i64().write_le(&mut out),
            DType::U8 => (as_i64() as u8).write_le(&mut out),
            DType::U16 => (as_i64() as u16).write_le(&mut out),
            DType::U32 => (as_i64() as u32).write_le(&mut out),
            DType::U64 => match self {
                Scalar::UInt(u) => u.write_le(&mut out),
                Scalar::Float(x) => (x as u64).write_le(&mut out),
                _ => (as_i64() as u64).write_le(&mut out),
            },
            DType::F16 => half::f16::from_f64(f).write_le(&mut out),
            DType::BF16 => half::bf16::from_f64(f).write_le(&mut out),
            DType::F32 => (f as f32).write_le(&mut out),
            DType::F64 => f.write_le(&mut out),
        }
        out
    }
}

macro_rules! scalar_from {
    ($($t:ty => $v:ident as $c:ty),*) => { $(impl From<$t> for Scalar {
        fn from(x: $t) -> Scalar { Scalar::$v(x as $c) }
    })* };
}
scalar_from!(i8 => Int as i64, i16 => Int as i64, i32 => Int as i64, i64 => Int as i64,
    u8 => UInt as u64, u16 => UInt as u64, u32 => UInt as u64, u64 => UInt as u64,
    f32 => Float as f64, f64 => Float as f64);

impl From<bool> for Scalar {
    fn from(x: bool) -> Scalar {
        Scalar::Bool(x)
    }
}

/// A literal tensor (`stablehlo.constant`). `bytes` holds one element (a splat) or all.
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    /// The constant's abstract value.
    pub aval: Aval,
    /// Little-endian element bytes.
    pub bytes: Vec<u8>,
}

impl Tensor {
    /// A concrete tensor holding a copy of row-major `data` of `shape` on the default
    /// device (`jnp.array`); inside a trace, a constant of the program.
    #[track_caller]
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Tensor {
        constant(data, shape)
    }
}

/// A tensor holding `data` (row-major) with the given shape.
#[track_caller]
pub fn constant<T: Element>(data: &[T], shape: &[usize]) -> Tensor {
    let mut bytes = Vec::with_capacity(data.len() * T::DTYPE.size_in_bytes());
    for &x in data {
        x.write_le(&mut bytes);
    }
    bind1(
        Constant {
            aval: Aval::new(shape, T::DTYPE),
            bytes,
        },
        &[],
    )
}

/// A strongly typed rank-0 tensor.
#[track_caller]
pub fn scalar<T: Element>(v: T) -> Tensor {
    constant(&[v], &[])
}

/// A weakly typed rank-0 tensor of `dtype` (how Rust literals enter arithmetic).
#[track_caller]
pub fn scalar_weak(v: Scalar, dtype: DType) -> Tensor {
    bind1(
        Constant {
            aval: Aval {
                shape: vec![],
                dtype,
                weak: true,
            },
            bytes: v.encode(dtype),
        },
        &[],
    )
}

/// A tensor of `shape` filled with `v` converted to `dtype` (a splat constant).
#[track_caller]
pub fn full(shape: &[usize], v: impl Into<Scalar>, dtype: DType) -> Tensor {
    bind1(
        Constant {
            aval: Aval::new(shape, dtype),
            bytes: v.into().encode(dtype),
        },
        &[],
    )
}

impl Primitive for Constant {
    fn name(&self) -> &'static str {
        "constant"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 0)?;
        let w = self.aval.dtype.size_in_bytes();
        let n = self.bytes.len() / w;
        ensure!(
            n == 1 || n == self.aval.size(),
            "{} elements do not fill shape {:?} ({} elements)",
            n,
            self.aval.shape,
            self.aval.size()
        );
        if self.aval.size() == 0 && n != 0 && n != 1 {
            bail!("an empty constant takes no data");
        }
        Ok(vec![self.aval.clone()])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "stablehlo.constant {} : {}",
            literal::dense(self.aval.dtype, &self.bytes, &self.aval.shape),
            cx.out_ty()
        )
    }

    fn literal(&self) -> Option<&[u8]> {
        Some(&self.bytes)
    }
}

/// `0, 1, 2, ...` along `dim`, repeated along the other dimensions (`stablehlo.iota`).
#[derive(Clone, Debug, PartialEq)]
pub struct Iota {
    /// The result's abstract value.
    pub aval: Aval,
    /// The counting dimension.
    pub dim: usize,
}

/// `0, 1, 2, ...` along `dim`, repeated along the other dimensions (`stablehlo.iota`).
/// `dim`: the counting dimension.
#[track_caller]
pub fn iota(dtype: DType, shape: &[usize], dim: usize) -> Tensor {
    bind1(
        Iota {
            aval: Aval::new(shape, dtype),
            dim,
        },
        &[],
    )
}

impl Primitive for Iota {
    fn name(&self) -> &'static str {
        "iota"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 0)?;
        ensure!(
            self.dim < self.aval.rank(),
            "dimension {} is out of range for shape {:?}",
            self.dim,
            self.aval.shape
        );
        ensure!(
            self.aval.dtype != DType::Bool,
            "iota needs a numeric element type"
        );
        Ok(vec![self.aval.clone()])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        format!("stablehlo.iota dim = {} : {}", self.dim, cx.out_ty())
    }
}
