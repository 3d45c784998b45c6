//! Scopes and modules, as Flax linen names and seeds them. A module's `apply` runs against
//! a [`Scope`]: at init, [`Scope::param`] creates each parameter from a key derived from
//! the module path; at apply, the same call reads it. So names cannot drift between the two.
//!
//! Naming: an unnamed child is `ClassName_n` (one counter per class per parent); a named
//! child keeps its name. Keys: each scope counts its `make_rng` calls per [`Stream`]; the
//! key is `fold_in(root, u32(sha1(path items ++ counter)))` (Flax's `_fold_in_static`: strings
//! as UTF-8, the counter as minimal big-endian bytes, no separator, first four digest
//! bytes big-endian). The parameter's own name is not hashed; the counter is.
//!
//! [`Scope::scan_named`] is Flax's `nn.scan` (optionally over `nn.remat`): one child whose
//! parameters are stacked on a leading axis and whose body runs in `bv_core::control::scan`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bv_core::autodiff::{checkpoint as remat, RematPolicy};
use bv_core::control::{scan_with, ScanOptions};
use bv_core::trace::{fail, trace_body, Aval};
use bv_core::tree::{self, Tree};
use bv_core::{random, DType, Tensor};
use sha1::{Digest, Sha1};

use crate::init::Init;
use crate::Params;

/// A layer or model: its fields are hyperparameters; `apply` creates or reads its
/// parameters through the scope.
pub trait Module {
    /// The class name used for automatic child names (`"MlpBlock"` gives `MlpBlock_0`).
    const NAME: &'static str;
    /// The input.
    type In;
    /// The output.
    type Out;
    /// Runs the module in scope `s`.
    fn apply(&self, s: &mut Scope, x: Self::In) -> Self::Out;
}

enum Store<'a> {
    Init(&'a mut Params<Tensor>),
    Apply(&'a Params<Tensor>),
}

/// An rng stream (a key of Flax's `rngs` dict): [`Scope::make_rng`] draws from the root key
/// given for it. [`Stream::PARAMS`] creates parameters at init, [`Stream::DROPOUT`] drops
/// activations in training; [`Stream::named`] names any other, as Flax lets modules draw
/// from a stream of any name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stream(&'static str);

impl Stream {
    /// Flax's `"params"`: the keys of parameter initializers.
    pub const PARAMS: Stream = Stream("params");
    /// Flax's `"dropout"`: the keys of dropout masks.
    pub const DROPOUT: Stream = Stream("dropout");

    /// A stream of the user's, named `name`.
    pub const fn named(name: &'static str) -> Stream {
        Stream(name)
    }

    /// Its name, as Flax's `rngs` dict spells it.
    pub fn name(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// `make_rng` counters by `(scope path, stream)` that outlive the scopes using them (see
/// [`Scope::scan_named`]).
type SharedCounters = Rc<RefCell<HashMap<(String, Stream), u32>>>;

/// Where a module runs: its path from the root, the parameter store, the root rngs and
/// the per-stream counters of this scope (kept in a shared table inside a scan body).
pub struct Scope<'a> {
    store: Store<'a>,
    rngs: &'a [(Stream, Tensor)],
    path: Vec<String>,
    counters: HashMap<Stream, u32>,
    shared: Option<SharedCounters>,
    children: HashMap<&'static str, usize>,
}

/// How [`Scope::scan_named`] lifts its module, as Flax's `nn.scan(nn.remat(module),
/// variable_axes={"params": 0}, split_rngs={s: True for s in split_rngs},
/// in_axes=nn.broadcast, length=length)`.
#[derive(Clone, Debug)]
pub struct ScanLift<'s> {
    /// Iterations (the size of the parameters' leading axis).
    pub length: usize,
    /// Rng streams split into one key per iteration; the others are the same in each.
    pub split_rngs: &'s [Stream],
    /// `nn.remat` around the body with this policy (`None`: no remat).
    pub remat: Option<RematPolicy>,
}

/// Flax's `_fold_in_static` hash of a scope path and a counter.
pub fn path_hash(path: &[String], counter: u32) -> u32 {
    let mut h = Sha1::new();
    for item in path {
        h.update(item.as_bytes());
    }
    let bytes = counter.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    h.update(&bytes[skip..]);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Runs `m` in init mode with `params_key` as the [`Stream::PARAMS`] rng and returns its
/// output and the parameters it created, in creation order (`model.init(key, x)`).
pub fn init<M: Module>(m: &M, params_key: &Tensor, x: M::In) -> (M::Out, Params<Tensor>) {
    let mut params = Params::new();
    let rngs = [(Stream::PARAMS, params_key.clone())];
    let out = {
        let mut s = Scope::root(Store::Init(&mut params), &rngs);
        m.apply(&mut s, x)
    };
    (out, params)
}

/// Runs `m` on `params` with the given rng streams (e.g. `(Stream::DROPOUT, key)`):
/// `model.apply({"params": params}, x, rngs=...)`.
pub fn apply<M: Module>(
    m: &M,
    params: &Params<Tensor>,
    rngs: &[(Stream, Tensor)],
    x: M::In,
) -> M::Out {
    let mut s = Scope::root(Store::Apply(params), rngs);
    m.apply(&mut s, x)
}

impl<'a> Scope<'a> {
    fn root(store: Store<'a>, rngs: &'a [(Stream, Tensor)]) -> Scope<'a> {
        Scope {
            store,
            rngs,
            path: Vec::new(),
            counters: HashMap::new(),
            shared: None,
            children: HashMap::new(),
        }
    }

    /// True while parameters are being created.
    pub fn is_init(&self) -> bool {
        matches!(self.store, Store::Init(_))
    }

    /// The module path from the root (`["Transformer", "encoderblock_0"]`).
    pub fn path(&self) -> &[String] {
        &self.path
    }

    fn full_name(&self, name: &str) -> String {
        let mut parts = self.path.clone();
        parts.push(name.to_string());
        parts.join("/")
    }

    /// A new key from rng stream `stream` (`make_rng`): the stream's root key folded with
    /// this scope's path and its counter for the stream.
    #[track_caller]
    pub fn make_rng(&mut self, stream: Stream) -> Tensor {
        let Some((_, root)) = self.rngs.iter().find(|(n, _)| *n == stream) else {
            let reason = format!("no `{stream}` rng was given; pass one to apply");
            return fail("make_rng", reason, &[], None, Aval::new([2], DType::U32));
        };
        let counter = match &self.shared {
            Some(table) => {
                let mut table = table.borrow_mut();
                let c = table.entry((self.path.join("/"), stream)).or_insert(0);
                *c += 1;
                *c
            }
            None => {
                let c = self.counters.entry(stream).or_insert(0);
                *c += 1;
                *c
            }
        };
        random::fold_in(root, path_hash(&self.path, counter))
    }

    /// The parameter `name` of this scope: created by `make(key)` at init (the key comes
    /// from [`Stream::PARAMS`]), read at apply, where its shape and type are checked.
    #[track_caller]
    pub fn param_with(
        &mut self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        make: impl FnOnce(&Tensor) -> Tensor,
    ) -> Tensor {
        let full = self.full_name(name);
        if self.is_init() {
            let key = self.make_rng(Stream::PARAMS);
            let value = make(&key);
            if let Store::Init(p) = &mut self.store {
                p.insert(full, value.clone());
            }
            return value;
        }
        let found = match &self.store {
            Store::Apply(p) => p.get(&full).cloned(),
            Store::Init(_) => None,
        };
        let want = Aval::new(shape, dtype);
        match found {
            Some(t) if t.shape() == shape && t.dtype() == dtype => t,
            Some(t) => {
                let reason = format!(
                    "parameter `{full}` is {}, the module expects {want}",
                    t.aval()
                );
                fail("param", reason, &[t.aval()], Some(&t), want)
            }
            None => {
                let reason = format!("parameter `{full}` is missing");
                fail("param", reason, &[], None, want)
            }
        }
    }

    /// The parameter `name` with initializer `init` (see [`Scope::param_with`]).
    #[track_caller]
    pub fn param(&mut self, name: &str, init: &Init, shape: &[usize], dtype: DType) -> Tensor {
        self.param_with(name, shape, dtype, |key| init.sample(key, shape, dtype))
    }

    fn child(&mut self, name: String) -> Scope<'_> {
        let store = match &mut self.store {
            Store::Init(p) => Store::Init(p),
            Store::Apply(p) => Store::Apply(p),
        };
        let mut path = self.path.clone();
        path.push(name);
        Scope {
            store,
            rngs: self.rngs,
            path,
            counters: HashMap::new(),
            shared: self.shared.clone(),
            children: HashMap::new(),
        }
    }

    /// Runs child `m` under the automatic name `M::NAME_n`.
    pub fn call<M: Module>(&mut self, m: &M, x: M::In) -> M::Out {
        let n = self.children.entry(M::NAME).or_insert(0);
        let name = format!("{}_{}", M::NAME, *n);
        *n += 1;
        m.apply(&mut self.child(name), x)
    }

    /// Runs child `m` under an explicit name (`embedding`, `encoderblock_3`).
    pub fn call_named<M: Module>(&mut self, name: &str, m: &M, x: M::In) -> M::Out {
        m.apply(&mut self.child(name.to_string()), x)
    }

    /// Runs child `m` named `name` `lift.length` times in a `scan` (Flax's lifted
    /// `nn.scan`): the carry `C` threads through the iterations, `arg` is the same in each,
    /// and the per-iteration outputs `Y` come back stacked on a new leading axis. Its
    /// parameters are `{path}/{name}/...` with a leading axis of `lift.length` (created
    /// stacked at init, sliced per iteration at apply); each stream in `lift.split_rngs`
    /// is `split(key, length)`, one key per iteration, folded with the scope path as usual.
    ///
    /// As in Flax, the body is traced twice with `make_rng` counters carried over (the
    /// first trace checks loop invariants), so the `k`-th draw of a scope that draws `n`
    /// keys per iteration uses counter `n + k`. Remat applies at apply only (init is not
    /// differentiated).
    pub fn scan_named<M, C, A, Y>(
        &mut self,
        name: &str,
        m: &M,
        lift: &ScanLift<'_>,
        (carry, arg): (C, A),
    ) -> (C, Y)
    where
        M: Module<In = (C, A), Out = (C, Y)>,
        C: Tree<Leaf = Tensor>,
        A: Clone,
        Y: Tree<Leaf = Tensor>,
    {
        let mut path = self.path.clone();
        path.push(name.to_string());
        let prefix = format!("{}/", path.join("/"));
        let n = lift.length;
        let mut split_keys = Vec::new();
        let mut broadcast = Vec::new();
        for (stream, key) in self.rngs {
            if lift.split_rngs.contains(stream) {
                split_keys.push((*stream, random::split(key, n)));
            } else {
                broadcast.push((*stream, key.clone()));
            }
        }
        let stacked: Params<Tensor> = match &self.store {
            Store::Init(_) => Params::new(),
            Store::Apply(p) => p
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, t)| (k.to_string(), leading(k, t, n)))
                .collect(),
        };
        let init = self.is_init();
        let shared = SharedCounters::default();
        // One iteration on a slice of the parameters and of the split keys.
        let body =
            |(c, slices, keys): (C, Params<Tensor>, Vec<Tensor>)| -> (C, (Params<Tensor>, Y)) {
                let mut rngs = broadcast.clone();
                rngs.extend(split_keys.iter().map(|(s, _)| *s).zip(keys));
                let mut created = Params::new();
                let store = if init {
                    Store::Init(&mut created)
                } else {
                    Store::Apply(&slices)
                };
                let mut s = Scope {
                    store,
                    rngs: &rngs,
                    path: path.clone(),
                    counters: HashMap::new(),
                    shared: Some(shared.clone()),
                    children: HashMap::new(),
                };
                let (c, y) = m.apply(&mut s, (c, arg.clone()));
                (c, (created, y))
            };
        let xs = (stacked, split_keys.iter().map(|(_, k)| k.clone()).collect());
        // Flax's first trace of the body: on fresh tensors of one iteration, only to
        // advance the shared counters.
        let (cdef, cl) = tree::flatten(&carry);
        let (xdef, xl) = tree::flatten(&xs);
        let mut avals: Vec<Aval> = cl.iter().map(|(_, t)| t.aval().clone()).collect();
        avals.extend(
            xl.iter()
                .map(|(_, t)| Aval::new(&t.shape()[1..], t.dtype())),
        );
        trace_body(&avals, |p| {
            let (pc, px) = p.split_at(cl.len());
            let c = tree::unflatten::<C>(&cdef, pc.to_vec()).ok()?;
            let (slices, keys) = tree::unflatten(&xdef, px.to_vec()).ok()?;
            Some(body((c, slices, keys)))
        });
        let step = match (init, lift.remat) {
            (false, Some(policy)) => Box::new(remat(body, policy))
                as Box<dyn Fn((C, Params<Tensor>, Vec<Tensor>)) -> (C, (Params<Tensor>, Y))>,
            _ => Box::new(body),
        };
        let (carry, (created, ys)) = scan_with(
            |c: C, (slices, keys): (Params<Tensor>, Vec<Tensor>)| step((c, slices, keys)),
            carry,
            xs,
            ScanOptions {
                length: Some(n),
                ..Default::default()
            },
        );
        if let Store::Init(p) = &mut self.store {
            for (k, v) in created {
                p.insert(k, v);
            }
        }
        (carry, ys)
    }
}

/// `t`, the stacked parameter `name`, checked to have leading dimension `n`.
fn leading(name: &str, t: &Tensor, n: usize) -> Tensor {
    if t.shape().first() == Some(&n) {
        return t.clone();
    }
    let mut want = vec![n];
    want.extend(t.shape().get(1..).unwrap_or_default());
    let want = Aval::new(want, t.dtype());
    let reason = format!(
        "stacked parameter `{name}` is {}, the scanned module expects a leading axis of {n} \
         (one slice per iteration)",
        t.aval()
    );
    fail("param", reason, &[t.aval()], Some(t), want)
}

#[cfg(test)]
mod tests {
    use bv_core::random::Key;
    use bv_core::{jit, Tensor};

    use super::{path_hash, Module, Scope, Stream};

    /// Hashes from `tests/golden/flax_init/*/param_keys.json` (`hash_uint32`).
    #[test]
    fn path_hash_matches_flax() {
        assert_eq!(path_hash(&[], 1), 3213575472);
        assert_eq!(path_hash(&[], 2), 3303678395);
    }

    /// Draws twice from a user-named stream and once from dropout.
    struct Draws;

    impl Module for Draws {
        const NAME: &'static str = "Draws";
        type In = ();
        type Out = Vec<Tensor>;
        fn apply(&self, s: &mut Scope, (): ()) -> Vec<Tensor> {
            let noise = Stream::named("noise");
            vec![
                s.make_rng(noise),
                s.make_rng(Stream::DROPOUT),
                s.make_rng(noise),
            ]
        }
    }

    /// A user-named stream draws from its own root key with its own counter, as Flax's
    /// `make_rng("noise")`: keys from the host `fold_in` with the Flax-checked path hash.
    #[test]
    fn a_named_stream_has_its_own_key_and_counter() {
        let (noise, dropout) = (Key::from_seed(1), Key::from_seed(2));
        let f = jit(|(n, d): (Tensor, Tensor)| {
            let rngs = [(Stream::named("noise"), n), (Stream::DROPOUT, d)];
            let params = crate::Params::new();
            super::apply(&Draws, &params, &rngs, ())
        });
        let args = (noise.to_array().unwrap(), dropout.to_array().unwrap());
        let got: Vec<Vec<u32>> = f
            .call(&args)
            .unwrap()
            .iter()
            .map(|a| a.to_vec::<u32>().unwrap())
            .collect();
        let want = |root: Key, counter| root.fold_in(path_hash(&[], counter)).0.to_vec();
        assert_eq!(got, [want(noise, 1), want(dropout, 1), want(noise, 2)]);
        assert_eq!(Stream::named("noise").name(), "noise");
        assert_eq!(Stream::DROPOUT.to_string(), "dropout");
    }
}
