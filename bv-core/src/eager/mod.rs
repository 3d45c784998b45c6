//! Eager execution, JAX's eval trace: with no trace active, a primitive applied to concrete
//! tensors runs at once, so `numpy::zeros(&[3], DType::F32)` is a value that prints.
//!
//! Each application is a one-node program emitted as `jit` emits, compiled once per
//! signature and kept in a process-wide cache. The signature is the module text, which
//! spells the primitive with its static parameters and the operand types and nothing else,
//! so equal applications share one executable; the persistent [`crate::compile_cache`]
//! applies as for any `jit`. Constants are copied to the device without a program.
//! Programs run on the default client's first device.
//!
//! Errors never panic. An op that fails (its shape rule, or the runtime) gives a concrete
//! tensor that holds the error, naming the op, the operand shapes and the user's
//! file:line; ops on it pass the error on, and reading it ([`Tensor::to_array`],
//! [`Tensor::to_vec`], [`Tensor::item`]) returns it, as `jit` returns a traced function's
//! first error.
//!
//! Transformations and control flow called on concrete tensors (`grad`, `jvp`, `vjp`,
//! `vmap`, `scan`, `while_loop`, `cond`, `custom_vjp`, ...) trace their function into a
//! graph and run that graph op by op, as un-jitted JAX does. A concrete tensor
//! used inside a trace (a `jit` body, say) is closed over: it becomes a parameter of the
//! program, passed its value at each call. That is the graph's existing mechanism for
//! captured values (a body's captures become parameters), and unlike a literal constant it
//! costs no copy to the host, keeps large arrays out of the program text, and keeps the
//! compile caches keyed by shapes rather than data.
//!
//! ```
//! use bv_core::{numpy as np, DType, Tensor};
//! let x = np::arange(4, DType::F32); // runs now: a concrete tensor
//! let y = (&x * 2.0 + 1.0).reshape(&[2, 2]);
//! assert_eq!(y.to_vec::<f32>()?, [1.0, 3.0, 5.0, 7.0]);
//! assert_eq!(y.sum(np::Axes::All).item::<f32>()?, 16.0);
//! assert_eq!(y.to_string(), "[[1. 3.]\n [5. 7.]]");
//! // A shape error is held by the result and returned when it is read.
//! let bad = &y + &np::ones(&[3], DType::F32);
//! assert!(bad.to_vec::<f32>().unwrap_err().to_string().contains("cannot broadcast"));
//! # Ok::<(), bv_core::eager::EagerError>(())
//! ```

mod print;

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::array::{Array, ArrayError};
use crate::client::default_client;
use crate::compile_cache;
use crate::compile_cache::JitStats;
use crate::dtype::Element;
use crate::emit::{self, ModuleOptions};
use crate::pjrt::{self, Client, CompileOptions, LoadedExecutable};
use crate::trace::{
    self, aval, CallSite, Concrete, Eval, Func, Graph, Node, Primitive, Tensor, TraceError,
    ValueDef,
};
use crate::tree::{self, Tree};
use crate::Aval;

/// Why a tensor's value cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum EagerError {
    /// The tensor is a value inside a trace (a `jit` body, `grad`, `vmap`, ...), which has
    /// no value yet.
    #[error("tensor {0} is a traced value (inside jit, grad, vmap or a loop body), which has no value yet; return it from the traced function to read it")]
    Traced(Aval),
    /// The op that made it (or one before it) failed.
    #[error(transparent)]
    Op(#[from] TraceError),
    /// Reading the array failed (wrong element type, runtime error).
    #[error(transparent)]
    Array(#[from] ArrayError),
}

/// The executables of one-node programs, by module text, for one client.
struct Cache {
    client: Client,
    programs: HashMap<String, Arc<LoadedExecutable>>,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

thread_local! {
    static STATS: Cell<JitStats> = Cell::new(JitStats::default());
}

/// Counters of the eager ops run on this thread: `compiles` programs built for a new
/// signature (of which `disk_cache_hits` loaded from the persistent cache), `cache_hits`
/// ops served by a program already built; `trace_time` is time spent emitting.
pub fn stats() -> JitStats {
    STATS.with(Cell::get)
}

fn count(f: impl FnOnce(&mut JitStats)) {
    STATS.with(|s| {
        let mut v = s.get();
        f(&mut v);
        s.set(v);
    });
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Applies a primitive to concrete operands now (from [`trace::bind_rc`] when no trace is
/// active). Failures give concrete tensors holding the error.
impl Eval for dyn Primitive {
    fn eval(self: Rc<Self>, inputs: &[&Tensor], site: CallSite) -> Vec<Tensor> {
        apply(self, inputs, site)
    }
}

/// What a concrete tensor holds: its array (the value [`apply`] stored) or its error; `None`
/// for a traced tensor.
pub(crate) fn held(t: &Tensor) -> Option<Result<&Array, &TraceError>> {
    match t.concrete_value()? {
        Concrete::Value(v) => v.downcast_ref::<Array>().map(Ok),
        Concrete::Error(e) => Some(Err(e)),
    }
}

fn apply(prim: Rc<dyn Primitive>, inputs: &[&Tensor], site: CallSite) -> Vec<Tensor> {
    let in_avals: Vec<&Aval> = inputs.iter().map(|t| t.aval()).collect();
    let inferred = prim.infer(&in_avals);
    let out_avals = match &inferred {
        Ok(outs) => outs.clone(),
        Err(_) => trace::poison_like(&in_avals, prim.num_outputs()),
    };
    let errors = |e: TraceError| -> Vec<Tensor> {
        out_avals
            .iter()
            .map(|a| Tensor::concrete(a.clone(), Concrete::Error(e.clone())))
            .collect()
    };
    let mut arrays = Vec::with_capacity(inputs.len());
    for t in inputs {
        match held(t) {
            Some(Ok(a)) => arrays.push(a.clone()),
            Some(Err(e)) => return errors(e.clone()),
            None => {
                return errors(TraceError::Leak {
                    op: prim.name(),
                    site,
                })
            }
        }
    }
    if let Err(e) = inferred {
        return errors(TraceError::Op {
            op: prim.name(),
            reason: e.0,
            operands: aval::list(&in_avals),
            site,
        });
    }
    if let Some(f) = prim.inline() {
        let ins: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
        return trace::replay(f, &ins);
    }
    let result = match prim.literal() {
        Some(bytes) => upload(&out_avals[0], bytes).map(|a| vec![a]),
        None => execute(&prim, &in_avals, &out_avals, &arrays, site),
    };
    match result {
        Ok(values) => out_avals
            .iter()
            .zip(values)
            .map(|(a, v)| Tensor::concrete(a.clone(), Concrete::Value(Box::new(v))))
            .collect(),
        Err(message) => errors(TraceError::Runtime {
            op: prim.name(),
            message,
            site,
        }),
    }
}

/// Copies a constant to the device: `bytes` hold one element (a splat) or all of them.
fn upload(aval: &Aval, bytes: &[u8]) -> Result<Array, String> {
    let elem = aval.dtype.size_in_bytes();
    let n = aval.size();
    let all = if bytes.len() == elem && n != 1 {
        bytes.repeat(n)
    } else {
        bytes.to_vec()
    };
    Array::from_bytes(&all, aval.dtype, &aval.shape).map_err(|e| e.to_string())
}

/// Runs `prim` as a one-node program on `arrays`.
fn execute(
    prim: &Rc<dyn Primitive>,
    in_avals: &[&Aval],
    out_avals: &[Aval],
    arrays: &[Array],
    site: CallSite,
) -> Result<Vec<Array>, String> {
    let t0 = Instant::now();
    let n_in = in_avals.len();
    let mut graph = Graph {
        params: in_avals.iter().map(|a| (*a).clone()).collect(),
        ..Graph::default()
    };
    for (i, a) in in_avals.iter().enumerate() {
        graph.values.push(ValueDef::Param(i));
        graph.avals.push(Rc::new((*a).clone()));
    }
    for a in out_avals {
        graph.values.push(ValueDef::Node);
        graph.avals.push(Rc::new(a.clone()));
    }
    let outputs: Vec<usize> = (n_in..n_in + out_avals.len()).collect();
    graph.nodes.push(Node {
        prim: prim.clone(),
        inputs: (0..n_in).collect(),
        outputs: outputs.clone(),
        site,
    });
    let opts = ModuleOptions {
        name: format!("eager_{}", prim.name()),
        ..ModuleOptions::default()
    };
    let text = emit::module(&graph, &outputs, &opts).map_err(|e| e.to_string())?;
    count(|s| s.trace_time += t0.elapsed());
    let exe = executable(&text).map_err(|e| e.to_string())?;
    let mut buffers = Vec::with_capacity(arrays.len());
    for a in arrays {
        let bufs = a.buffers().map_err(|e| e.to_string())?;
        if bufs.len() != 1 {
            return Err(format!(
                "operand {} is laid out over {} devices; eager ops run on one device, so use jit for sharded arrays",
                a.aval(),
                bufs.len()
            ));
        }
        buffers.extend(bufs);
    }
    let refs: Vec<&pjrt::Buffer> = buffers.iter().map(|b| b.as_ref()).collect();
    let outs = exe
        .execute_sharded(&[refs])
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("the program ran on no device")?;
    Ok(outs
        .into_iter()
        .zip(out_avals)
        .map(|(b, a)| Array::from_buffers(a.shape.clone(), a.dtype, vec![b]))
        .collect())
}

/// The executable of a one-node program, compiled (or loaded from the persistent cache)
/// on first use.
fn executable(text: &str) -> Result<Arc<LoadedExecutable>, pjrt::Error> {
    let client = default_client()?;
    {
        let mut slot = lock(&CACHE);
        let same_client = slot
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.client.inner, &client.inner));
        if !same_client {
            *slot = Some(Cache {
                client: client.clone(),
                programs: HashMap::new(),
            });
        }
        if let Some(exe) = slot.as_ref().and_then(|c| c.programs.get(text)) {
            count(|s| s.cache_hits += 1);
            return Ok(exe.clone());
        }
    }
    let first = client.addressable_devices().first().map(|d| d.id());
    let options = CompileOptions::default()
        .with_device_assignment(first.map(i64::from).into_iter().collect());
    let t0 = Instant::now();
    let (exe, outcome) = compile_cache::compile(&client, text, &options)?;
    count(|s| {
        s.compiles += 1;
        s.disk_cache_hits += usize::from(outcome == compile_cache::Outcome::Hit);
        s.compile_time += t0.elapsed();
    });
    let exe = Arc::new(exe);
    if let Some(c) = lock(&CACHE)
        .as_mut()
        .filter(|c| Arc::ptr_eq(&c.client.inner, &client.inner))
    {
        c.programs.insert(text.to_string(), exe.clone());
    }
    Ok(exe)
}

/// Applies a transformation or control-flow function `f` to the tensors `xs`: inside a
/// trace, `f(xs)` itself; with no trace active, `f` traced on the tensors' abstract values
/// and its graph run op by op on `xs` (the concrete tensors `f` closes over passed as the
/// graph's extra parameters), as JAX runs an un-jitted `grad` or `scan`. An error recorded
/// while tracing, or held by an input, is held by every output.
#[track_caller]
pub(crate) fn run<O: Tree<Leaf = Tensor>>(xs: Vec<Tensor>, f: impl FnOnce(Vec<Tensor>) -> O) -> O {
    if trace::is_tracing() {
        return f(xs);
    }
    let site = CallSite::here();
    let avals: Vec<Aval> = xs.iter().map(|t| t.aval().clone()).collect();
    let (out, tr) = trace::trace(&avals, f);
    let (out_def, leaves) = tree::flatten(&out);
    let input_error = xs.iter().find_map(|t| match held(t) {
        Some(Ok(_)) => None,
        Some(Err(e)) => Some(e.clone()),
        None => Some(TraceError::Leak { op: "eager", site }),
    });
    let mut ids = Vec::new();
    let mut error = input_error.or_else(|| tr.error.clone());
    for (path, t) in &leaves {
        if !t.is_concrete() {
            match tr.value_of(t, path) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
    }
    let results: Vec<Tensor> = match error {
        Some(e) => leaves
            .iter()
            .map(|(_, t)| Tensor::concrete(t.aval().clone(), Concrete::Error(e.clone())))
            .collect(),
        None => {
            let mut args = xs;
            args.extend(tr.constants());
            let func = Func {
                graph: tr.graph,
                outputs: ids,
            };
            let mut values = trace::replay(&func, &args).into_iter();
            leaves
                .into_iter()
                .map(|(_, t)| {
                    if t.is_concrete() {
                        t
                    } else {
                        values.next().unwrap_or(t)
                    }
                })
                .collect()
        }
    };
    tree::unflatten(&out_def, results).expect("a structure rebuilt from its own flattening")
}

impl From<Array> for Tensor {
    /// A concrete tensor holding `a` (no copy). Used inside a trace, it is closed over.
    fn from(a: Array) -> Tensor {
        let aval = a.aval().clone();
        Tensor::concrete(aval, Concrete::Value(Box::new(a)))
    }
}

impl From<&Array> for Tensor {
    fn from(a: &Array) -> Tensor {
        Tensor::from(a.clone())
    }
}

impl Tensor {
    /// The value of a concrete tensor as an [`Array`] (no copy); the error it holds, or
    /// [`EagerError::Traced`] for a value inside a trace.
    pub fn to_array(&self) -> Result<Array, EagerError> {
        match held(self) {
            Some(Ok(a)) => Ok(a.clone()),
            Some(Err(e)) => Err(e.clone().into()),
            None => Err(EagerError::Traced(self.aval().clone())),
        }
    }

    /// Copies the value to the host, row-major (blocks until it is computed).
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, EagerError> {
        Ok(self.to_array()?.to_vec()?)
    }

    /// Copies a one-element value to the host.
    pub fn item<T: Element>(&self) -> Result<T, EagerError> {
        Ok(self.to_array()?.item()?)
    }

    /// The error a concrete tensor holds, if any.
    pub fn error(&self) -> Option<&TraceError> {
        match held(self) {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// Waits until a concrete value is computed; its error, if any.
    pub fn block_until_ready(&self) -> Result<(), EagerError> {
        Ok(self.to_array()?.block_until_ready()?)
    }
}
