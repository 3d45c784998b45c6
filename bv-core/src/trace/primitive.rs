//! The `Primitive` trait: what the tracer records for an op, with its shape rule, emission
//! and derivative and batching rules. The tracer owns it; each primitive implements it in
//! its file under [`crate::prim`].

use std::fmt;
use std::rc::Rc;

use super::{Aval, CallSite, EmitCx, Func, OpError, Tensor};

/// A primitive operation with its static parameters (the struct's fields).
pub(crate) trait Primitive: fmt::Debug + 'static {
    /// The name used in errors, e.g. `"add"`.
    fn name(&self) -> &'static str;

    /// Shape and dtype rule: the result avals for these operand avals, or why not.
    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError>;

    /// The StableHLO text after `%n = ` (may span lines; regions use `cx.scope` for names).
    fn emit(&self, cx: &EmitCx) -> String;

    /// How many results the primitive has (used to shape poisoned results).
    fn num_outputs(&self) -> usize {
        1
    }

    /// Reverse-mode rule: the cotangents of the operands, given the operands, the results
    /// and the results' cotangents (`None` is a zero). Returns `None` for an operand with a
    /// zero (or no) cotangent. Only called when some floating-point result has a cotangent.
    fn vjp(&self, ins: &[Tensor], outs: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let _ = (ins, outs, cts);
        Err(OpError(format!(
            "`{}` has no reverse-mode derivative rule",
            self.name()
        )))
    }

    /// Forward-mode rule: the results' tangents given the operands' (`None` is a zero), or
    /// `None` to derive it by transposing [`Primitive::vjp`].
    fn jvp(
        &self,
        ins: &[Tensor],
        outs: &[Tensor],
        tangents: &[Option<Tensor>],
    ) -> Option<VjpResult> {
        let _ = (ins, outs, tangents);
        None
    }

    /// Batching rule (`vmap`): the results and where each carries the batch dimension,
    /// given operands of which operand `i` carries it at `dims[i]` (`None`: not batched).
    /// Only called when some operand is batched; all batched operands share its size.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let _ = (ins, dims);
        Err(OpError(format!("`{}` has no batching rule", self.name())))
    }

    /// For call-like primitives (remat, custom rules, identity): the function this node
    /// applies, emitted inline in its place (and run op by op in eager mode).
    fn inline(&self) -> Option<&Func> {
        None
    }

    /// For constants: the value's little-endian bytes (one element for a splat, else all),
    /// which eager mode copies to the device instead of compiling a program.
    fn literal(&self) -> Option<&[u8]> {
        None
    }
}

/// The result of a derivative rule: one optional tensor per operand (or result, for
/// [`Primitive::jvp`]), or why the rule does not apply.
pub(crate) type VjpResult = Result<Vec<Option<Tensor>>, OpError>;

/// The result of a batching rule: the results and the batch dimension of each (`None`:
/// the same for every batch element), or why the rule does not apply.
pub(crate) type BatchResult = Result<(Vec<Tensor>, Vec<Option<usize>>), OpError>;

/// Running a primitive at once on concrete operands, outside any trace (JAX's eval trace).
/// The tracer calls it; `eager` implements it for `dyn Primitive` (one compiled program per
/// signature), so the core depends on no device. Failures give concrete tensors that hold
/// the error.
pub(crate) trait Eval {
    /// The results of applying the primitive to concrete `inputs`, applied at `site`.
    fn eval(self: Rc<Self>, inputs: &[&Tensor], site: CallSite) -> Vec<Tensor>;
}
