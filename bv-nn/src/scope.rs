//! Scopes and modules, as Flax linen names and seeds them. A module's `apply` runs against
//! a [`Scope`]: at init, [`Scope::param`] creates each parameter from a key derived from
//! the module path; at apply, the same call reads it. So names cannot drift between the two.
//!
//! Naming: an unnamed child is `ClassName_n` (one counter per class per parent); a named
//! child keeps its name. Keys: each scope counts its `make_rng` calls per stream; the key
//! is `fold_in(root, u32(sha1(path items ++ counter)))` (Flax's `_fold_in_static`: strings
//! as UTF-8, the counter as minimal big-endian bytes, no separator, first four digest
//! bytes big-endian). The parameter's own name is not hashed; the counter is.
//!
//! [`Scope::scan_named`] is Flax's `nn.scan` (optionally over `nn.remat`): one child whose
//! parameters are stacked on a leading axis and whose body runs in `bv_core::control::scan`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bv_core::autodiff::{checkpoint, RematPolicy};
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

/// `make_rng` counters by `(scope path, stream)` that outlive the scopes using them (see
/// [`Scope::scan_named`]).
type SharedCounters = Rc<RefCell<HashMap<(String, String), u32>>>;

/// Where a module runs: its path from the root, the parameter store, the root rngs and
/// the per-stream counters of this scope (kept in a shared table inside a scan body).
pub struct Scope<'a> {
    store: Store<'a>,
    rngs: &'a [(String, Tensor)],
    path: Vec<String>,
    counters: HashMap<String, u32>,
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
    pub split_rngs: &'s [&'s str],
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

/// Runs `m` in init mode with `params_key` as the `params` rng and returns its output and
/// the parameters it created, in creation order (`model.init(key, x)`).
pub fn init<M: Module>(m: &M, params_key: &Tensor, x: M::In) -> (M::Out, Params<Tensor>) {
    let mut params = Params::new();
    let rngs = [("params".to_string(), params_key.clone())];
    let out = {
        let mut s = Scope::root(Store::Init(&mut params), &rngs);
        m.apply(&mut s, x)
    };
    (out, params)
}

/// Runs `m` on `params` with the given rng streams (e.g. `("dropout", key)`):
/// `model.apply({"params": params}, x, rngs=...)`.
pub fn apply<M: Module>(
    m: &M,
    params: &Params<Tensor>,
    rngs: &[(String, Tensor)],
    x: M::In,
) -> M::Out {
    let mut s = Scope::root(Store::Apply(params), rngs);
    m.apply(&mut s, x)
}

impl<'a> Scope<'a> {
    fn root(store: Store<'a>, rngs: &'a [(String, Tensor)]) -> Scope<'a> {
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
    pub fn make_rng(&mut self, stream: &str) -> Tensor {
        let Some((_, root)) = self.rngs.iter().find(|(n, _)| n == stream) else {
            let reason = format!("no `{stream}` rng was given; pass one to apply");
            return fail("make_rng", reason, &[], None, Aval::new([2], DType::U32));
        };
        let counter = match &self.shared {
            Some(table) => {
                let mut table = table.borrow_mut();
                let c = table
                    .entry((self.path.join("/"), stream.to_string()))
                    .or_insert(0);
                *c += 1;
                *c
            }
            None => {
                let c = self.counters.entry(stream.to_string()).or_insert(0);
                *c += 1;
                *c
            }
        };
        random::fold_in(root, path_hash(&self.path, counter))
    }

    /// The parameter `name` of this scope: created by `make(key)` at init (the key comes
    /// from the `params` stream), read at apply, where its shape and type are checked.
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
            let key = self.make_rng("params");
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
            if lift.split_rngs.contains(&stream.as_str()) {
                split_keys.push((stream.clone(), random::split(key, n)));
            } else {
                broadcast.push((stream.clone(), key.clone()));
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
                rngs.extend(split_keys.iter().map(|(s, _)| s.clone()).zip(keys));
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
            (false, Some(policy)) => Box::new(checkpoint(body, policy))
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
    use super::path_hash;

    /// Hashes from `tests/golden/flax_init/*/param_keys.json` (`hash_uint32`).
    #[test]
    fn path_hash_matches_flax() {
        assert_eq!(path_hash(&[], 1), 3213575472);
        assert_eq!(path_hash(&[], 2), 3303678395);
    }
}
