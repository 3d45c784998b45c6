//! The tracer: while a function is staged, every op on a [`Tensor`] appends a node to the
//! graph of the innermost active trace. Shape and dtype rules run at each op; the first error
//! is recorded with the op, the operand shapes and the caller's location, and later ops on
//! the poisoned result are recorded no further. `jit`/`lower` report the error, so user code
//! needs no `?` per op.
//!
//! With no trace active, ops run at once on concrete tensors ([`crate::eager`], JAX's eval
//! trace); a concrete tensor used inside a trace is closed over: it becomes a parameter of
//! the traced function, passed its value when the program runs.

pub(crate) mod aval;
pub(crate) mod error;
mod identity;
mod lowering;
mod ops;
mod primitive;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use aval::{Aval, Spec};
pub use error::{CallSite, OpError, TraceError};
pub(crate) use identity::{fresh, Identity};
pub(crate) use lowering::{EmitCx, Operand, Writer};
pub(crate) use ops::{fill, zeros_like, CoreOps};
pub(crate) use primitive::{BatchResult, Eval, Primitive, VjpResult};

use crate::dtype::DType;

/// A value: inside a function being traced, a cheap handle (an id and its abstract value)
/// whose arithmetic records ops; outside any trace, a concrete value on a device, computed
/// op by op as it is used ([`crate::eager`]).
#[derive(Clone)]
pub struct Tensor {
    trace: u64,
    id: usize,
    aval: Rc<Aval>,
    /// For a concrete tensor (trace 0): its value, or the error of the op that made it.
    value: Option<Rc<Concrete>>,
}

/// What a concrete tensor holds.
pub(crate) enum Concrete {
    /// The computed value: the device array [`Eval`]'s implementation stored (the core
    /// holds it opaquely, so it does not depend on devices).
    Value(Box<dyn std::any::Any>),
    /// Why it could not be computed (the first failing op, with the user's call site).
    Error(TraceError),
}

impl Tensor {
    /// The abstract value (shape, element type, weak typing).
    pub fn aval(&self) -> &Aval {
        &self.aval
    }

    /// Dimension sizes.
    pub fn shape(&self) -> &[usize] {
        &self.aval.shape
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.aval.dtype
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.aval.rank()
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        self.aval.size()
    }

    /// True when the element type is weak (the tensor came from a Rust scalar).
    pub fn is_weak(&self) -> bool {
        self.aval.weak
    }

    /// The id of the trace this tensor belongs to.
    pub(crate) fn trace_id(&self) -> u64 {
        self.trace
    }

    /// The value id inside its trace.
    pub(crate) fn value_id(&self) -> usize {
        self.id
    }

    /// A concrete tensor of abstract value `aval` (whose weak typing it keeps).
    pub(crate) fn concrete(aval: Aval, value: Concrete) -> Tensor {
        Tensor {
            trace: 0,
            id: usize::MAX,
            aval: Rc::new(aval),
            value: Some(Rc::new(value)),
        }
    }

    /// The value of a concrete tensor; `None` for a traced one.
    pub(crate) fn concrete_value(&self) -> Option<&Concrete> {
        self.value.as_deref()
    }

    /// True for a concrete tensor (one computed outside any trace, or made from an
    /// array), false for a value inside a trace.
    pub fn is_concrete(&self) -> bool {
        self.value.is_some()
    }

    /// True when `self` and `other` are the same value (the same traced value, or the
    /// same concrete one).
    fn same(&self, other: &Tensor) -> bool {
        match (&self.value, &other.value) {
            (Some(a), Some(b)) => Rc::ptr_eq(a, b),
            (None, None) => self.trace == other.trace && self.id == other.id,
            _ => false,
        }
    }
}

/// How a value of the graph is defined.
#[derive(Clone, Debug)]
pub(crate) enum ValueDef {
    /// The function's i-th flat argument.
    Param(usize),
    /// A result of a node (the node's `outputs` list it).
    Node,
    /// The result of a rejected op (or of an op on such a result).
    Poison,
    /// A tensor of an enclosing trace used by a body being traced; it becomes a parameter
    /// when the body's trace finishes.
    Capture,
}

/// One recorded op application.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// The primitive and its static parameters.
    pub(crate) prim: Rc<dyn Primitive>,
    /// Value ids of the operands.
    pub(crate) inputs: Vec<usize>,
    /// Value ids of the results.
    pub(crate) outputs: Vec<usize>,
    /// Where user code applied it.
    pub(crate) site: CallSite,
}

/// A traced program: parameters, values and nodes in program order (a topological order).
#[derive(Clone, Debug, Default)]
pub(crate) struct Graph {
    /// Abstract values of the parameters (value ids `0..params.len()`).
    pub(crate) params: Vec<Aval>,
    /// Definition of every value, by id.
    pub(crate) values: Vec<ValueDef>,
    /// Abstract value of every value, by id.
    pub(crate) avals: Vec<Rc<Aval>>,
    /// The recorded ops.
    pub(crate) nodes: Vec<Node>,
}

impl Graph {
    fn new_value(&mut self, def: ValueDef, aval: Aval) -> (usize, Rc<Aval>) {
        let aval = Rc::new(aval);
        self.values.push(def);
        self.avals.push(aval.clone());
        (self.values.len() - 1, aval)
    }
}

/// A traced function: a graph and which of its values it returns (JAX's closed jaxpr).
/// Control-flow, remat and custom-rule primitives hold their bodies as `Func`s.
#[derive(Clone, Debug, Default)]
pub(crate) struct Func {
    /// The body; its parameters are the function's inputs.
    pub(crate) graph: Graph,
    /// Value ids of the results.
    pub(crate) outputs: Vec<usize>,
}

impl Func {
    /// Abstract values of the results.
    pub(crate) fn out_avals(&self) -> Vec<Aval> {
        self.outputs
            .iter()
            .map(|&o| (*self.graph.avals[o]).clone())
            .collect()
    }
}

/// A finished trace: the graph and the first error, if any.
#[derive(Debug)]
pub struct Trace {
    id: u64,
    /// The recorded program.
    pub(crate) graph: Graph,
    /// The first error recorded.
    pub error: Option<TraceError>,
    /// The tensors from outside that the function used, with the values that stand for
    /// them, in the order of the extra parameters they become: for a sub-trace (a loop or
    /// branch body) tensors of enclosing traces and concrete ones; for a top-level trace
    /// concrete ones only (using an outer traced tensor there is a leak).
    captures: Vec<(Tensor, usize)>,
    /// True for a sub-trace.
    sub: bool,
}

impl Trace {
    /// Checks that `t` was computed inside this trace and returns its value id.
    pub(crate) fn value_of(&self, t: &Tensor, path: &str) -> Result<usize, TraceError> {
        if t.trace != self.id {
            return Err(TraceError::ForeignOutput {
                path: path.to_string(),
            });
        }
        Ok(t.id)
    }

    /// The concrete tensors the function closed over: they became the graph's parameters
    /// after the declared ones, in this order, and are passed their values when it runs.
    pub(crate) fn constants(&self) -> Vec<Tensor> {
        self.captures.iter().map(|(t, _)| t.clone()).collect()
    }
}

static NEXT_TRACE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static STACK: RefCell<Vec<Trace>> = const { RefCell::new(Vec::new()) };
}

/// Pops a trace from the stack if the traced function unwinds.
struct PopOnDrop(u64);

impl Drop for PopOnDrop {
    fn drop(&mut self) {
        let id = self.0;
        STACK.with(|s| s.borrow_mut().retain(|t| t.id != id));
    }
}

/// Runs `f` on fresh parameter tensors with the given avals inside a new trace, and returns
/// its result with the finished trace. Concrete tensors `f` uses become parameters after
/// `params`.
pub fn trace<R>(params: &[Aval], f: impl FnOnce(Vec<Tensor>) -> R) -> (R, Trace) {
    trace_impl(params, false, f)
}

/// Traces a body (of a loop, branch, remat or custom rule) inside the current trace. Tensors
/// of enclosing traces and concrete tensors that `f` uses become extra parameters after
/// `params`; they are
/// returned, in that order, with the trace (whose graph has them as parameters). An error
/// inside the body is recorded in the enclosing trace too.
pub fn trace_body<R>(params: &[Aval], f: impl FnOnce(Vec<Tensor>) -> R) -> (R, Trace, Vec<Tensor>) {
    let (out, mut tr) = trace_impl(params, true, f);
    let captures = std::mem::take(&mut tr.captures);
    if let Some(e) = &tr.error {
        STACK.with(|s| {
            if let Some(top) = s.borrow_mut().last_mut() {
                top.error.get_or_insert(e.clone());
            }
        });
    }
    (out, tr, captures.into_iter().map(|(t, _)| t).collect())
}

/// The body of a call-like primitive (a loop, branch, remat, custom rule or `shard_map`),
/// traced by [`trace_call`].
pub(crate) struct CallBody {
    /// The function; its parameters are the declared ones, then one per capture.
    pub(crate) func: Func,
    /// The outer tensors the body used, in the order of the parameters they became; the
    /// primitive takes them as extra operands.
    pub(crate) captures: Vec<Tensor>,
    /// The first result the body did not compute (an input of an enclosing trace returned
    /// as it is), if any; callers that need every result computed inside report it.
    pub(crate) foreign: Option<usize>,
}

/// Traces `f` on fresh parameters of `avals` inside the current trace as the body of a
/// call-like primitive: the one place that closes over outer values and builds the `Func`
/// each such primitive holds.
pub(crate) fn trace_call(avals: &[Aval], f: impl FnOnce(&[Tensor]) -> Vec<Tensor>) -> CallBody {
    let (outs, tr, captures) = trace_body(avals, |p| f(&p));
    let foreign = outs.iter().position(|t| tr.value_of(t, "").is_err());
    CallBody {
        func: Func {
            outputs: outs.iter().map(|t| t.value_id()).collect(),
            graph: tr.graph,
        },
        captures,
        foreign,
    }
}

fn trace_impl<R>(params: &[Aval], sub: bool, f: impl FnOnce(Vec<Tensor>) -> R) -> (R, Trace) {
    let id = NEXT_TRACE.fetch_add(1, Ordering::Relaxed);
    let mut graph = Graph {
        params: params.to_vec(),
        ..Graph::default()
    };
    let tensors: Vec<Tensor> = params
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (vid, aval) = graph.new_value(ValueDef::Param(i), a.clone());
            Tensor {
                trace: id,
                id: vid,
                aval,
                value: None,
            }
        })
        .collect();
    STACK.with(|s| {
        s.borrow_mut().push(Trace {
            id,
            graph,
            error: None,
            captures: Vec::new(),
            sub,
        })
    });
    let guard = PopOnDrop(id);
    let out = f(tensors);
    let finished = STACK.with(|s| {
        let mut s = s.borrow_mut();
        s.iter().position(|t| t.id == id).map(|i| s.remove(i))
    });
    drop(guard);
    // The trace was pushed above and only this function removes it.
    let mut finished = finished.unwrap_or(Trace {
        id,
        graph: Graph::default(),
        error: None,
        captures: Vec::new(),
        sub,
    });
    for (k, (outer, vid)) in finished.captures.iter().enumerate() {
        finished.graph.values[*vid] = ValueDef::Param(params.len() + k);
        finished.graph.params.push(outer.aval().clone());
    }
    (out, finished)
}

/// True while some function is being traced on this thread.
pub fn is_tracing() -> bool {
    STACK.with(|s| !s.borrow().is_empty())
}

/// Applies a primitive to operands in their trace and returns its results. A rejected
/// application records the error (the first one only) and returns poisoned results with a
/// plausible aval, so tracing continues. With no trace active it runs at once on concrete
/// operands ([`Eval`]); concrete operands inside a trace are closed over.
#[track_caller]
pub(crate) fn bind(prim: impl Primitive, inputs: &[&Tensor]) -> Vec<Tensor> {
    bind_rc(Rc::new(prim), inputs)
}

/// [`bind`] for a shared primitive (used when replaying a recorded graph).
#[track_caller]
pub(crate) fn bind_rc(prim: Rc<dyn Primitive>, inputs: &[&Tensor]) -> Vec<Tensor> {
    let site = CallSite::here();
    if !is_tracing() {
        return prim.eval(inputs, site);
    }
    let in_avals: Vec<&Aval> = inputs.iter().map(|t| &*t.aval).collect();
    let inferred = prim.infer(&in_avals);
    let name = prim.name();
    let n_out = prim.num_outputs();
    let poison_avals = |inferred: &Result<Vec<Aval>, OpError>| -> Vec<Aval> {
        match inferred {
            Ok(outs) => outs.clone(),
            Err(_) => poison_like(&in_avals, n_out),
        }
    };
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        let sub_top = stack.last().is_some_and(|t| t.sub);
        let target = if sub_top {
            stack.last().map(|t| t.id)
        } else {
            inputs
                .iter()
                .find(|t| t.value.is_none())
                .map(|t| t.trace)
                .or_else(|| stack.last().map(|t| t.id))
        };
        let pos = target.and_then(|id| stack.iter().position(|t| t.id == id));
        let Some(pos) = pos else {
            let top = stack
                .last_mut()
                .expect("the stack is not empty while tracing");
            top.error.get_or_insert(TraceError::Leak { op: name, site });
            return poison(top, poison_avals(&inferred));
        };
        let (outer, rest) = stack.split_at_mut(pos);
        let tr = &mut rest[0];
        let mut ids = Vec::with_capacity(inputs.len());
        for t in inputs {
            if t.trace == tr.id && t.value.is_none() {
                ids.push(t.id);
                continue;
            }
            if let Some(Concrete::Error(e)) = t.concrete_value() {
                tr.error.get_or_insert(e.clone());
                return poison(tr, poison_avals(&inferred));
            }
            let closable = t.value.is_some() || (tr.sub && outer.iter().any(|o| o.id == t.trace));
            if !closable {
                tr.error.get_or_insert(TraceError::Leak { op: name, site });
                return poison(tr, poison_avals(&inferred));
            }
            let known = tr.captures.iter().find(|(c, _)| c.same(t)).map(|&(_, v)| v);
            let vid = match known {
                Some(v) => v,
                None => {
                    let (v, _) = tr.graph.new_value(ValueDef::Capture, (*t.aval).clone());
                    tr.captures.push(((*t).clone(), v));
                    v
                }
            };
            ids.push(vid);
        }
        if ids
            .iter()
            .any(|&v| matches!(tr.graph.values[v], ValueDef::Poison))
        {
            return poison(tr, poison_avals(&inferred));
        }
        match inferred {
            Ok(outs) => {
                let mut tensors = Vec::with_capacity(outs.len());
                for a in outs {
                    let (vid, aval) = tr.graph.new_value(ValueDef::Node, a);
                    tensors.push(Tensor {
                        trace: tr.id,
                        id: vid,
                        aval,
                        value: None,
                    });
                }
                tr.graph.nodes.push(Node {
                    prim,
                    inputs: ids,
                    outputs: tensors.iter().map(|t| t.id).collect(),
                    site,
                });
                tensors
            }
            Err(ref e) => {
                let avals = poison_avals(&inferred);
                tr.error.get_or_insert(TraceError::Op {
                    op: name,
                    reason: e.0.clone(),
                    operands: aval::list(&in_avals),
                    site,
                });
                poison(tr, avals)
            }
        }
    })
}

/// Avals for the results of a rejected op: the first operand's (or `f32[]`), one per result.
pub(crate) fn poison_like(ins: &[&Aval], n_out: usize) -> Vec<Aval> {
    let a = ins
        .first()
        .map(|a| (*a).clone())
        .unwrap_or(Aval::new([], DType::F32));
    vec![a; n_out]
}

/// [`bind`] for single-result primitives.
#[track_caller]
pub(crate) fn bind1(prim: impl Primitive, inputs: &[&Tensor]) -> Tensor {
    let mut outs = bind(prim, inputs);
    outs.swap_remove(0)
}

/// Records an error found by a numpy-level function (before any primitive ran) and returns a
/// poisoned tensor of the given aval in the trace of `like` (or the current trace); outside
/// any trace, a concrete tensor holding the error.
#[track_caller]
pub fn fail(
    op: &'static str,
    reason: String,
    operands: &[&Aval],
    like: Option<&Tensor>,
    aval: Aval,
) -> Tensor {
    let site = CallSite::here();
    let error = TraceError::Op {
        op,
        reason,
        operands: aval::list(operands),
        site,
    };
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        let target = like
            .filter(|t| t.value.is_none())
            .map(|t| t.trace)
            .and_then(|id| stack.iter().position(|t| t.id == id));
        let pos = target.or_else(|| stack.len().checked_sub(1));
        match pos {
            Some(p) => {
                let tr = &mut stack[p];
                tr.error.get_or_insert(error);
                poison(tr, vec![aval]).swap_remove(0)
            }
            None => Tensor::concrete(aval, Concrete::Error(error)),
        }
    })
}

fn poison(tr: &mut Trace, avals: Vec<Aval>) -> Vec<Tensor> {
    avals
        .into_iter()
        .map(|a| {
            let (vid, aval) = tr.graph.new_value(ValueDef::Poison, a);
            Tensor {
                trace: tr.id,
                id: vid,
                aval,
                value: None,
            }
        })
        .collect()
}

/// The number of nodes recorded so far in `t`'s trace (or the innermost one).
pub(crate) fn node_count(t: Option<&Tensor>) -> usize {
    with_trace(t, |tr| tr.graph.nodes.len()).unwrap_or(0)
}

/// Copies of the nodes recorded in `t`'s trace from index `start` on, with the trace's id.
pub(crate) fn nodes_from(t: Option<&Tensor>, start: usize) -> (u64, Vec<Node>) {
    with_trace(t, |tr| {
        (
            tr.id,
            tr.graph.nodes[start.min(tr.graph.nodes.len())..].to_vec(),
        )
    })
    .unwrap_or((0, Vec::new()))
}

/// A handle to value `id` of trace `trace`.
pub(crate) fn tensor_at(trace: u64, id: usize) -> Tensor {
    STACK.with(|s| {
        let s = s.borrow();
        let aval = s
            .iter()
            .find(|t| t.id == trace)
            .and_then(|t| t.graph.avals.get(id).cloned())
            .unwrap_or_else(|| Rc::new(Aval::new([], DType::F32)));
        Tensor {
            trace,
            id,
            aval,
            value: None,
        }
    })
}

/// Records an error found by a transformation (e.g. an op without a derivative rule) in
/// `t`'s trace (or the innermost one), keeping an earlier error if there is one.
pub(crate) fn record(op: &'static str, reason: String, operands: &[&Aval], site: CallSite) {
    STACK.with(|s| {
        if let Some(top) = s.borrow_mut().last_mut() {
            top.error.get_or_insert(TraceError::Op {
                op,
                reason,
                operands: aval::list(operands),
                site,
            });
        }
    });
}

fn with_trace<R>(t: Option<&Tensor>, f: impl FnOnce(&Trace) -> R) -> Option<R> {
    STACK.with(|s| {
        let s = s.borrow();
        let tr = match t {
            Some(t) if t.value.is_none() => s.iter().find(|tr| tr.id == t.trace),
            _ => s.last(),
        };
        tr.map(f)
    })
}

/// Applies a traced function to `ins` in the current trace by recording its nodes again.
#[track_caller]
pub(crate) fn replay(f: &Func, ins: &[Tensor]) -> Vec<Tensor> {
    let mut vals: Vec<Option<Tensor>> = vec![None; f.graph.values.len()];
    for (vid, def) in f.graph.values.iter().enumerate() {
        if let ValueDef::Param(i) = def {
            vals[vid] = ins.get(*i).cloned();
        }
    }
    for node in &f.graph.nodes {
        let args: Option<Vec<Tensor>> = node.inputs.iter().map(|&v| vals[v].clone()).collect();
        let Some(args) = args else { continue };
        let refs: Vec<&Tensor> = args.iter().collect();
        for (&o, t) in node.outputs.iter().zip(bind_rc(node.prim.clone(), &refs)) {
            vals[o] = Some(t);
        }
    }
    f.outputs
        .iter()
        .map(|&o| {
            vals[o].clone().unwrap_or_else(|| {
                let a = &f.graph.avals[o];
                fail(
                    "replay",
                    "a value of the body was rejected".into(),
                    &[a],
                    None,
                    (**a).clone(),
                )
            })
        })
        .collect()
}
