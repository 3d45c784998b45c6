//! `jit`: trace a function once per input signature, emit StableHLO, compile it with the
//! default client, cache the executable and dispatch it without blocking.
//!
//! The cache key is the function (each [`Jit`] owns its cache), the input tree structure,
//! every leaf's shape and element type, and the static argument. Donated arguments are
//! aliased to outputs of the same shape and type (`tf.aliasing_output`), so XLA reuses
//! their memory; a donated [`Array`] cannot be used again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::array::{Array, ArrayError};
use crate::emit::{self, EmitError, ModuleOptions};
use crate::pjrt::{self, Client, CompileOptions, LoadedExecutable};
use crate::trace::{self, Aval, Spec, Tensor, TraceError};
use crate::tree::{self, Tree, TreeDef, TreeError};
use crate::DType;

static DEFAULT_CLIENT: Mutex<Option<Client>> = Mutex::new(None);

/// The process-wide client `jit` and `Array::from_slice` use (JAX's default backend): set by
/// [`set_default_client`], else a one-device CPU client created on first use.
pub fn default_client() -> Result<Client, pjrt::Error> {
    let mut slot = DEFAULT_CLIENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = &*slot {
        return Ok(c.clone());
    }
    let c = Client::cpu()?;
    *slot = Some(c.clone());
    Ok(c)
}

/// Makes `client` the default for later `jit` calls and array creation.
pub fn set_default_client(client: Client) {
    *DEFAULT_CLIENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(client);
}

/// Why a jitted call failed.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    /// Tracing recorded an error (op, operand shapes, call site).
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The traced program could not be emitted.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// The arguments do not fit the function's input structure.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// An argument cannot be used (e.g. it was donated earlier).
    #[error("argument `{path}`: {source}")]
    Argument {
        /// The argument's path in the input tree.
        path: String,
        /// The array error.
        source: ArrayError,
    },
    /// Compiling or running failed in the runtime.
    #[error("`{function}`: {source}")]
    Runtime {
        /// The jitted function's name.
        function: String,
        /// The runtime error (for compiles, XLA's diagnostics).
        source: pjrt::Error,
    },
}

/// Counters for one jitted function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitStats {
    /// Programs compiled (cache misses).
    pub compiles: usize,
    /// Calls served from the cache.
    pub cache_hits: usize,
    /// Total time spent tracing and emitting.
    pub trace_time: Duration,
    /// Total time spent in the XLA compiler.
    pub compile_time: Duration,
}

/// A traced and emitted program, before compilation.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// The StableHLO module text.
    pub text: String,
    /// Output structure.
    pub out_def: TreeDef,
    /// Output abstract values, in leaf order.
    pub out_avals: Vec<Aval>,
    /// For each input leaf, the output it is donated to.
    pub aliases: Vec<Option<usize>>,
}

struct Compiled {
    exe: LoadedExecutable,
    lowered: Lowered,
}

type Key<S> = (TreeDef, Vec<(Vec<usize>, DType)>, S);
type Body<S, I, O> = dyn Fn(&S, I) -> O + Send + Sync;

/// A function staged for compilation; see [`jit`] and [`jit_static`].
pub struct Jit<S, I, O> {
    name: String,
    f: Box<Body<S, I, O>>,
    donate: Vec<usize>,
    cache: Mutex<HashMap<Key<S>, Arc<Compiled>>>,
    stats: Mutex<JitStats>,
}

/// Stages `f` for compilation: `f` runs on [`Tensor`]s once per input signature, and
/// calls run the compiled program on [`Array`]s of the same structure.
///
/// ```no_run
/// use bv_core::{jit, Array, Tensor};
/// let f = jit(|(x, y): (Tensor, Tensor)| (&x * &y).exp());
/// let x = Array::from_slice(&[1f32, 2.0], &[2])?;
/// let out = f.call(&(x.clone(), x))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn jit<I, O>(f: impl Fn(I) -> O + Send + Sync + 'static) -> Jit<(), I, O>
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    Jit::new(move |_: &(), x: I| f(x))
}

/// Like [`jit`], with a static (compile-time) argument that is part of the cache key, as
/// `static_argnums` in JAX: a different value traces and compiles again.
pub fn jit_static<S, I, O>(f: impl Fn(&S, I) -> O + Send + Sync + 'static) -> Jit<S, I, O>
where
    S: Hash + Eq + Clone,
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    Jit::new(f)
}

impl<S, I, O> Jit<S, I, O>
where
    S: Hash + Eq + Clone,
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    fn new(f: impl Fn(&S, I) -> O + Send + Sync + 'static) -> Self {
        Jit {
            name: "main".into(),
            f: Box::new(f),
            donate: Vec::new(),
            cache: Mutex::new(HashMap::new()),
            stats: Mutex::new(JitStats::default()),
        }
    }

    /// Names the function (in the module name and in errors).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Donates the input subtrees at these top-level positions (tuple elements, or the
    /// first path component of other trees), as JAX's `donate_argnums`.
    pub fn donate_argnums(mut self, argnums: &[usize]) -> Self {
        self.donate = argnums.to_vec();
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> JitStats {
        *lock(&self.stats)
    }

    /// [`Jit::lower`] with a static argument.
    pub fn lower_static(&self, s: &S, args: &I::With<Spec>) -> Result<Lowered, JitError> {
        let (def, leaves) = tree::flatten(args);
        let named: Vec<(String, Aval)> = leaves.into_iter().map(|(p, l)| (p, l.aval())).collect();
        self.trace_and_emit(s, &def, &named)
    }

    /// [`Jit::call`] with a static argument.
    pub fn call_static(&self, s: &S, args: &I::With<Array>) -> Result<O::With<Array>, JitError> {
        let (def, leaves) = tree::flatten(args);
        let key: Key<S> = (
            def,
            leaves
                .iter()
                .map(|(_, a)| (a.shape().to_vec(), a.dtype()))
                .collect(),
            s.clone(),
        );
        let cached = lock(&self.cache).get(&key).cloned();
        let compiled = match cached {
            Some(c) => {
                lock(&self.stats).cache_hits += 1;
                c
            }
            None => {
                let named: Vec<(String, Aval)> = leaves
                    .iter()
                    .map(|(p, a)| (p.clone(), a.aval().clone()))
                    .collect();
                let lowered = self.trace_and_emit(s, &key.0, &named)?;
                let client = default_client().map_err(|e| self.runtime(e))?;
                let t0 = Instant::now();
                let exe = client
                    .compile(&lowered.text, &CompileOptions::default())
                    .map_err(|e| self.runtime(e))?;
                let c = Arc::new(Compiled { exe, lowered });
                {
                    let mut st = lock(&self.stats);
                    st.compiles += 1;
                    st.compile_time += t0.elapsed();
                }
                lock(&self.cache).insert(key, c.clone());
                c
            }
        };
        self.execute(&compiled, &leaves)
    }

    fn execute(
        &self,
        c: &Compiled,
        leaves: &[(String, Array)],
    ) -> Result<O::With<Array>, JitError> {
        let mut held = Vec::with_capacity(leaves.len());
        for (i, (path, a)) in leaves.iter().enumerate() {
            let bufs = if c.lowered.aliases[i].is_some() {
                a.donate(&self.name)
            } else {
                a.buffers()
            };
            let mut bufs = bufs.map_err(|source| JitError::Argument {
                path: path.clone(),
                source,
            })?;
            match bufs.pop() {
                Some(b) if bufs.is_empty() => held.push(b),
                _ => {
                    let e = pjrt::Error::InvalidArgument {
                        op: "jit",
                        message: format!("argument `{path}` is not on exactly one device"),
                    };
                    return Err(self.runtime(e));
                }
            }
        }
        let refs: Vec<&pjrt::Buffer> = held.iter().map(|b| b.as_ref()).collect();
        let outs = c.exe.execute(&refs).map_err(|e| self.runtime(e))?;
        let arrays: Vec<Array> = outs
            .into_iter()
            .zip(&c.lowered.out_avals)
            .map(|(b, a)| Array::from_buffers(a.shape.clone(), a.dtype, vec![b]))
            .collect();
        Ok(tree::unflatten(&c.lowered.out_def, arrays)?)
    }

    fn trace_and_emit(
        &self,
        s: &S,
        def: &TreeDef,
        inputs: &[(String, Aval)],
    ) -> Result<Lowered, JitError> {
        let t0 = Instant::now();
        let avals: Vec<Aval> = inputs.iter().map(|(_, a)| a.clone()).collect();
        let (result, tr) = trace::trace(&avals, |params| -> Result<O, TreeError> {
            let input: I = tree::unflatten(def, params)?;
            Ok((self.f)(s, input))
        });
        let out = result?;
        if let Some(e) = tr.error.clone() {
            return Err(e.into());
        }
        let (out_def, out_leaves) = tree::flatten(&out);
        let mut ids = Vec::with_capacity(out_leaves.len());
        for (path, t) in &out_leaves {
            ids.push(tr.value_of(t, path)?);
        }
        let out_avals: Vec<Aval> = out_leaves.iter().map(|(_, t)| t.aval().clone()).collect();
        let aliases = self.aliases(inputs, &out_avals);
        let opts = ModuleOptions {
            name: format!("jit_{}", self.name),
            aliases: aliases.clone(),
            result_names: out_leaves.iter().map(|(p, _)| p.clone()).collect(),
        };
        let text = emit::module(&tr.graph, &ids, &opts)?;
        lock(&self.stats).trace_time += t0.elapsed();
        Ok(Lowered {
            text,
            out_def,
            out_avals,
            aliases,
        })
    }

    /// Pairs each donated input leaf with the first unused output of the same shape and type.
    fn aliases(&self, inputs: &[(String, Aval)], outs: &[Aval]) -> Vec<Option<usize>> {
        let mut used = vec![false; outs.len()];
        inputs
            .iter()
            .map(|(path, a)| {
                let top = match path.split('/').next() {
                    Some("") | None => "0",
                    Some(t) => t,
                };
                let donated = self.donate.iter().any(|n| n.to_string() == top);
                if !donated {
                    return None;
                }
                let k = outs
                    .iter()
                    .enumerate()
                    .position(|(k, o)| !used[k] && o.shape == a.shape && o.dtype == a.dtype)?;
                used[k] = true;
                Some(k)
            })
            .collect()
    }

    fn runtime(&self, source: pjrt::Error) -> JitError {
        JitError::Runtime {
            function: self.name.clone(),
            source,
        }
    }
}

impl<I, O> Jit<(), I, O>
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    /// Traces and emits the program for inputs of these shapes and types, without data.
    pub fn lower(&self, args: &I::With<Spec>) -> Result<Lowered, JitError> {
        self.lower_static(&(), args)
    }

    /// Runs the program on `args`, compiling it first for a new signature. Returns without
    /// waiting for the result; reading an output waits.
    pub fn call(&self, args: &I::With<Array>) -> Result<O::With<Array>, JitError> {
        self.call_static(&(), args)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
