//! Scopes and modules, as Flax linen names and seeds them. A module's `apply` runs against
//! a [`Scope`]: at init, [`Scope::param`] creates each parameter from a key derived from
//! the module path; at apply, the same call reads it. So names cannot drift between the two.
//!
//! Naming: an unnamed child is `ClassName_n` (one counter per class per parent); a named
//! child keeps its name. Keys: each scope counts its `make_rng` calls per stream; the key
//! is `fold_in(root, u32(sha1(path items ++ counter)))` (Flax's `_fold_in_static`: strings
//! as UTF-8, the counter as minimal big-endian bytes, no separator, first four digest
//! bytes big-endian). The parameter's own name is not hashed; the counter is.

use std::collections::HashMap;

use bv_core::trace::{fail, Aval};
use bv_core::{random, DType, Tensor};
use sha1::{Digest, Sha1};

use crate::init::Init;
use crate::params::Params;

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

/// Where a module runs: its path from the root, the parameter store, the root rngs and
/// the per-stream counters of this scope.
pub struct Scope<'a> {
    store: Store<'a>,
    rngs: &'a [(String, Tensor)],
    path: Vec<String>,
    counters: HashMap<String, u32>,
    children: HashMap<&'static str, usize>,
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
        let counter = self.counters.entry(stream.to_string()).or_insert(0);
        *counter += 1;
        random::fold_in(root, path_hash(&self.path, *counter))
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
}

#[cfg(test)]
mod tests {
    use super::path_hash;

    /// Hashes from `shared/golden/flax_init/*/param_keys.json` (`hash_uint32`).
    #[test]
    fn path_hash_matches_flax() {
        assert_eq!(path_hash(&[], 1), 3213575472);
        assert_eq!(path_hash(&[], 2), 3303678395);
    }
}
