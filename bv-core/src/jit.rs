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
use std::time::Instant;

use crate::array::{mesh_devices, Array, ArrayError};
use crate::client::default_client;
use crate::compile_cache::{self, JitStats};
use crate::emit::{self, EmitError, ModuleOptions};
use crate::pjrt::{self, CompileOptions, LoadedExecutable};
use crate::prim::shard_map::JitMeshScope;
use crate::prim::sharding::MESH_NAME;
use crate::sharding::{Mesh, NamedSharding, PartitionSpec};
use crate::trace::{self, Aval, Spec, Tensor, TraceError};
use crate::tree::{self, Tree, TreeDef, TreeError};
use crate::DType;

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
    /// For each output leaf, its layout over the mesh (`None` when not partitioned).
    pub out_shardings: Vec<Option<NamedSharding>>,
    /// The concrete arrays the function closes over: the program's arguments after the
    /// inputs, passed at every call.
    pub consts: Vec<Array>,
}

struct Compiled {
    exe: LoadedExecutable,
    lowered: Lowered,
    /// The mesh positions of this process's devices, in the order the program runs on
    /// them (`[0]` when unpartitioned).
    positions: Vec<usize>,
}

type Key<S> = (TreeDef, Vec<(Vec<usize>, DType, Option<PartitionSpec>)>, S);
type Body<S, I, O> = dyn Fn(&S, I) -> O + Send + Sync;
type SpecRule = dyn Fn(&str, &Aval) -> PartitionSpec + Send + Sync;

/// The mesh a function is partitioned over and how its outputs are laid out.
struct Partitioning {
    mesh: Mesh,
    out_specs: Box<SpecRule>,
}

/// A function staged for compilation; see [`jit`] and [`jit_static`].
pub struct Jit<S, I, O> {
    name: String,
    f: Box<Body<S, I, O>>,
    donate: Vec<usize>,
    partitioning: Option<Partitioning>,
    cache: Mutex<HashMap<Key<S>, Arc<Compiled>>>,
    stats: Mutex<JitStats>,
}

/// Stages `f` for compilation: `f` runs on [`Tensor`]s once per input signature, and
/// calls run the compiled program on [`Array`]s of the same structure.
///
/// ```
/// use bv_core::{jit, numpy as np, Array, Tensor};
/// let f = jit(|(x, y): (Tensor, Tensor)| np::exp(&(&x * &y)));
/// let x = Array::from_slice(&[1f32, 2.0], &[2])?;
/// let out = f.call(&(x.clone(), x))?;
/// let y = out.to_vec::<f32>()?;
/// assert!((y[1] - 4f32.exp()).abs() < 1e-4 * y[1]); // XLA's exp is within an ulp of libm's
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
            partitioning: None,
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

    /// Partitions the program over `mesh` (JAX's `jit` with shardings): each input keeps
    /// the layout of its [`Array`] (a single-device array is replicated onto the mesh), and
    /// output leaf `path` of abstract value `aval` is laid out as `out_specs(path, aval)`.
    pub fn sharded(
        mut self,
        mesh: Mesh,
        out_specs: impl Fn(&str, &Aval) -> PartitionSpec + Send + Sync + 'static,
    ) -> Self {
        self.partitioning = Some(Partitioning {
            mesh,
            out_specs: Box::new(out_specs),
        });
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
        let specs = vec![None; named.len()];
        self.trace_and_emit(s, &def, &named, &specs)
    }

    /// [`Jit::call`] with a static argument.
    pub fn call_static(&self, s: &S, args: &I::With<Array>) -> Result<O::With<Array>, JitError> {
        let (def, leaves) = tree::flatten(args);
        let key: Key<S> = (
            def,
            leaves
                .iter()
                .map(|(_, a)| {
                    let spec = self
                        .partitioning
                        .as_ref()
                        .and(a.sharding())
                        .map(|sh| sh.spec.clone());
                    (a.shape().to_vec(), a.dtype(), spec)
                })
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
                let specs: Vec<Option<PartitionSpec>> = key.1.iter().map(|k| k.2.clone()).collect();
                let lowered = self.trace_and_emit(s, &key.0, &named, &specs)?;
                let client = default_client().map_err(|e| self.runtime(e))?;
                let (options, positions) = match &self.partitioning {
                    Some(p) => {
                        let local = mesh_devices(&client, &p.mesh).map_err(|e| {
                            self.runtime(pjrt::Error::InvalidArgument {
                                op: "jit",
                                message: e.to_string(),
                            })
                        })?;
                        let options = CompileOptions::partitioned(p.mesh.size())
                            .with_device_assignment(p.mesh.device_ids().to_vec());
                        (options, local.into_iter().map(|(k, _)| k).collect())
                    }
                    // On this process's first device (JAX's default device): a plugin's
                    // default placement may pick another process's.
                    None => {
                        let first = client.addressable_devices().first().map(|d| d.id());
                        let options = CompileOptions::default()
                            .with_device_assignment(first.map(i64::from).into_iter().collect());
                        (options, vec![0])
                    }
                };
                let t0 = Instant::now();
                let (exe, outcome) = compile_cache::compile(&client, &lowered.text, &options)
                    .map_err(|e| self.runtime(e))?;
                let c = Arc::new(Compiled {
                    exe,
                    lowered,
                    positions,
                });
                {
                    let mut st = lock(&self.stats);
                    st.compiles += 1;
                    st.disk_cache_hits += usize::from(outcome == compile_cache::Outcome::Hit);
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
        let with_consts: Vec<(String, Array)>;
        let leaves = if c.lowered.consts.is_empty() {
            leaves
        } else {
            let consts = c.lowered.consts.iter().enumerate();
            with_consts = leaves
                .iter()
                .cloned()
                .chain(consts.map(|(k, a)| (format!("<closed-over constant {k}>"), a.clone())))
                .collect();
            &with_consts
        };
        let devices = c.positions.len();
        let mut per_device: Vec<Vec<Arc<pjrt::Buffer>>> =
            vec![Vec::with_capacity(leaves.len()); devices];
        for (i, (path, a)) in leaves.iter().enumerate() {
            let bufs = if c.lowered.aliases.get(i).is_some_and(Option::is_some) {
                a.donate(&self.name)
            } else {
                a.buffers()
            };
            let bufs = bufs.map_err(|source| JitError::Argument {
                path: path.clone(),
                source,
            })?;
            let bufs = match (&self.partitioning, a.sharding()) {
                (Some(_), None) if bufs.len() == 1 => self.replicate(&bufs[0], c, path)?,
                _ => bufs,
            };
            if bufs.len() != devices {
                let e = pjrt::Error::InvalidArgument {
                    op: "jit",
                    message: format!(
                        "argument `{path}` has {} buffers, the program runs on {devices} devices of this process; lay it out over the function's mesh",
                        bufs.len()
                    ),
                };
                return Err(self.runtime(e));
            }
            for (d, b) in bufs.into_iter().enumerate() {
                per_device[d].push(b);
            }
        }
        let refs: Vec<Vec<&pjrt::Buffer>> = per_device
            .iter()
            .map(|v| v.iter().map(|b| b.as_ref()).collect())
            .collect();
        let mut outs = c.exe.execute_sharded(&refs).map_err(|e| self.runtime(e))?;
        let mut by_output: Vec<Vec<pjrt::Buffer>> = (0..c.lowered.out_avals.len())
            .map(|_| Vec::with_capacity(devices))
            .collect();
        for device_outs in outs.drain(..) {
            for (k, b) in device_outs.into_iter().enumerate() {
                by_output[k].push(b);
            }
        }
        let arrays: Vec<Array> = by_output
            .into_iter()
            .zip(&c.lowered.out_avals)
            .zip(&c.lowered.out_shardings)
            .map(|((bufs, a), sh)| {
                Array::from_parts(
                    a.shape.clone(),
                    a.dtype,
                    sh.clone(),
                    c.positions.clone(),
                    bufs,
                )
            })
            .collect();
        Ok(tree::unflatten(&c.lowered.out_def, arrays)?)
    }

    /// Copies a single-device buffer to every device the program runs on here.
    fn replicate(
        &self,
        buf: &Arc<pjrt::Buffer>,
        c: &Compiled,
        path: &str,
    ) -> Result<Vec<Arc<pjrt::Buffer>>, JitError> {
        let here = buf.device().map_err(|e| self.runtime(e))?;
        c.exe
            .addressable_devices()
            .iter()
            .map(|dev| {
                if here == *dev {
                    Ok(buf.clone())
                } else {
                    buf.copy_to_device(dev)
                        .map(Arc::new)
                        .map_err(|source| JitError::Argument {
                            path: path.to_string(),
                            source: ArrayError::Runtime(source),
                        })
                }
            })
            .collect()
    }

    fn trace_and_emit(
        &self,
        s: &S,
        def: &TreeDef,
        inputs: &[(String, Aval)],
        in_specs: &[Option<PartitionSpec>],
    ) -> Result<Lowered, JitError> {
        let t0 = Instant::now();
        let avals: Vec<Aval> = inputs.iter().map(|(_, a)| a.clone()).collect();
        let _mesh = JitMeshScope::enter(self.partitioning.as_ref().map(|p| p.mesh.clone()));
        let (result, tr) = trace::trace(&avals, |params| -> Result<O, TreeError> {
            let input: I = tree::unflatten(def, params)?;
            Ok((self.f)(s, input))
        });
        let out = result?;
        if let Some(e) = tr.error.clone() {
            return Err(e.into());
        }
        // Every closed-over tensor holds a value: one holding an error fails the trace.
        let consts: Vec<Array> = tr
            .constants()
            .iter()
            .filter_map(|t| t.to_array().ok())
            .collect();
        let (out_def, out_leaves) = tree::flatten(&out);
        let mut ids = Vec::with_capacity(out_leaves.len());
        for (path, t) in &out_leaves {
            ids.push(tr.value_of(t, path)?);
        }
        let out_avals: Vec<Aval> = out_leaves.iter().map(|(_, t)| t.aval().clone()).collect();
        let aliases = self.aliases(inputs, &out_avals);
        let mut opts = ModuleOptions {
            name: format!("jit_{}", self.name),
            aliases: aliases.clone(),
            result_names: out_leaves.iter().map(|(p, _)| p.clone()).collect(),
            ..ModuleOptions::default()
        };
        let mut out_shardings = vec![None; out_avals.len()];
        if let Some(p) = &self.partitioning {
            let attr = |sh: &NamedSharding, rank: usize| {
                format!("sdy.sharding = {}", sh.to_sdy(MESH_NAME, rank))
            };
            opts.num_partitions = p.mesh.size();
            opts.preamble = vec![p.mesh.to_sdy(MESH_NAME)];
            opts.arg_shardings = inputs
                .iter()
                .zip(in_specs)
                .map(|((_, a), spec)| {
                    let spec = spec.clone().unwrap_or_default();
                    let sh = NamedSharding::new(p.mesh.clone(), spec).map_err(|e| e.to_string());
                    sh.map(|sh| Some(attr(&sh, a.shape.len())))
                })
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    self.runtime(pjrt::Error::InvalidArgument {
                        op: "jit",
                        message: e,
                    })
                })?;
            for (k, ((path, t), a)) in out_leaves.iter().zip(&out_avals).enumerate() {
                let sh = NamedSharding::new(p.mesh.clone(), (p.out_specs)(path, t.aval()))
                    .map_err(|e| {
                        self.runtime(pjrt::Error::InvalidArgument {
                            op: "jit",
                            message: format!("output `{path}`: {e}"),
                        })
                    })?;
                let dims: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
                sh.shard_shape(&dims).map_err(|e| {
                    self.runtime(pjrt::Error::InvalidArgument {
                        op: "jit",
                        message: format!("output `{path}`: {e}"),
                    })
                })?;
                out_shardings[k] = Some(sh);
            }
            opts.result_shardings = out_shardings
                .iter()
                .zip(&out_avals)
                .map(|(sh, a)| sh.as_ref().map(|sh| attr(sh, a.shape.len())))
                .collect();
        }
        let text = emit::module(&tr.graph, &ids, &opts)?;
        lock(&self.stats).trace_time += t0.elapsed();
        Ok(Lowered {
            text,
            out_def,
            out_avals,
            aliases,
            out_shardings,
            consts,
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
