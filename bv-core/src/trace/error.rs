//! Tracing errors: the first mistake made while staging a function, with the op, its operand
//! shapes and the caller's source location.

use std::fmt;
use std::panic::Location;

/// Where user code called an op (`#[track_caller]` carries it through bv's own frames).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSite {
    /// Source file, as `file!()` spells it.
    pub file: &'static str,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl CallSite {
    /// The location of the caller of the `#[track_caller]` function this is called from.
    #[track_caller]
    pub fn here() -> CallSite {
        let l = Location::caller();
        CallSite {
            file: l.file(),
            line: l.line(),
            column: l.column(),
        }
    }
}

impl fmt::Display for CallSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Why a shape or dtype rule rejected its operands; the tracer adds the op name, the operand
/// avals and the call site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpError(pub String);

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Returns `Err(OpError)` with a formatted reason.
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::trace::OpError(format!($($arg)*))) };
}
pub(crate) use bail;

/// Returns `Err(OpError)` with a formatted reason unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => { if !$cond { $crate::trace::error::bail!($($arg)*) } };
}
pub(crate) use ensure;

/// The first error recorded while tracing a function; reported by `jit` and `lower`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// An op's shape or dtype rule rejected its operands, e.g.
    /// `add: shapes must be equal; operands f32[8,197,384], f32[8,196,384] (at vit.rs:88:13)`.
    /// Fix the operand shapes at that line (broadcast, reshape or transpose them first).
    #[error("{op}: {reason}; operands {operands} (at {site})")]
    Op {
        /// The primitive or numpy-level function.
        op: &'static str,
        /// What the rule expected.
        reason: String,
        /// The operand avals, as `f32[2,3], i32[]`.
        operands: String,
        /// The user's call site.
        site: CallSite,
    },
    /// A tensor was used after the function that traced it returned (stored in a global,
    /// or captured from an outer `jit`). Pass it as an argument instead.
    #[error("{op}: a tensor from a finished or different trace was used (at {site}); pass it as an argument of the traced function instead")]
    Leak {
        /// The op that received the tensor.
        op: &'static str,
        /// The user's call site.
        site: CallSite,
    },
    /// An op run eagerly (outside any trace) failed in the runtime: compiling or running
    /// its program, or copying a constant to the device.
    #[error("{op}: running it failed: {message} (at {site})")]
    Runtime {
        /// The primitive.
        op: &'static str,
        /// The runtime's message.
        message: String,
        /// The user's call site.
        site: CallSite,
    },
    /// The traced function returned a tensor that it did not compute (one from another trace).
    #[error("output `{path}` is a tensor from another trace; return only tensors computed from the function's arguments")]
    ForeignOutput {
        /// The output's path in the result tree.
        path: String,
    },
}
