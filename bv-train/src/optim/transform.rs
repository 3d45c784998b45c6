//! Gradient transformations as (init, update) pairs, as Optax's `GradientTransformation`,
//! with [`chain`] and [`masked`]. Everything runs on traced tensors, so a whole optimizer
//! update is part of one jitted step.
//!
//! A [`Transform`] is written over named leaves (a flat [`Params`]); [`Optimizer`] gives
//! every transform `init` and `update` over any [`Tree`] of tensors: a [`Params`], a
//! `BTreeMap`, or a user struct with [`impl_tree!`](bv_core::impl_tree). The tree is
//! flattened to its `/`-joined leaf names, transformed, and rebuilt, so masks and lr/wd
//! multipliers match on those names whatever the tree.
//!
//! State is a flat map of named entries: a transform names its fields (`mu/<param>`,
//! `count`), and a [`Chain`] prefixes each stage's entries with the stage name
//! (`adam/mu/a/kernel`), so a checkpoint of the state reads like the parameters.
//!
//! ```
//! use std::sync::Arc;
//! use bv_core::tree::Params;
//! use bv_core::{jit, Array};
//! use bv_train::optim::{apply_updates, make, OptimSpec, Optimizer, ScheduleGroups, State};
//! let spec: OptimSpec =
//!     serde_json::from_str(r#"{"optax_name": "scale_by_adam", "lr": 0.1}"#).unwrap();
//! let groups = ScheduleGroups::new(None, 10, None, None).unwrap();
//! let tx = Arc::new(make(&spec, &groups, ["w"]).unwrap());
//! let t = tx.clone();
//! let init = jit(move |p: Params| t.init(&p));
//! let step = jit(move |(p, g, s): (Params, Params, State)| {
//!     let (u, s) = tx.update(&g, s, &p);
//!     (apply_updates(&p, &u), s)
//! });
//! let w = Array::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
//! let g = Array::from_slice(&[0.5f32, -0.5], &[2]).unwrap();
//! let params: Params<Array> = [("w".to_string(), w)].into();
//! let grads: Params<Array> = [("w".to_string(), g)].into();
//! let state = init.call(&params).unwrap();
//! let (params, state) = step.call(&(params, grads, state)).unwrap();
//! let w = params["w"].to_vec::<f32>().unwrap(); // Adam's first step: θ - lr · sign(g)
//! assert!((w[0] - 0.9).abs() < 1e-6 && (w[1] - 2.1).abs() < 1e-6);
//! assert_eq!(state["adam/count"].item::<i32>().unwrap(), 1);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use bv_core::trace::{self, Aval};
use bv_core::tree::{self, Params, Tree, TreeDef};
use bv_core::{numpy as np, DType, Tensor};

/// Optimizer state by entry name (`adam/mu/<param>`, `adam/count`, ...). Not a parameter
/// tree: its entries are the transforms' own fields, kept in name order so a checkpoint of
/// the state is laid out the same whatever the order of the parameters.
pub type State = BTreeMap<String, Tensor>;

/// A gradient transformation over named leaves: pure `init_leaves` and `update_leaves` on
/// traced tensors. Implement this; call it through [`Optimizer`], which takes any tree.
pub trait Transform: Send + Sync {
    /// The initial state for the leaves `params`.
    fn init_leaves(&self, params: &Params) -> State;
    /// Transforms `updates` (at first the gradients), given the state from `init_leaves`
    /// or the previous update and the current `params`, all by leaf name.
    fn update_leaves(&self, updates: Params, state: State, params: &Params) -> (Params, State);
}

/// `init` and `update` over any tree of tensors, for every [`Transform`] (Optax's
/// `tx.init(params)` and `tx.update(grads, state, params)`).
pub trait Optimizer {
    /// The initial state for `params`.
    fn init<T: Tree<Leaf = Tensor>>(&self, params: &T) -> State;
    /// The updates for `updates` (at first the gradients; the structure of `params`) and
    /// the next state.
    fn update<T: Tree<Leaf = Tensor>>(&self, updates: &T, state: State, params: &T) -> (T, State);
}

impl<X: Transform + ?Sized> Optimizer for X {
    fn init<T: Tree<Leaf = Tensor>>(&self, params: &T) -> State {
        self.init_leaves(&named_leaves(params).2)
    }

    fn update<T: Tree<Leaf = Tensor>>(&self, updates: &T, state: State, params: &T) -> (T, State) {
        let (def, order, flat) = named_leaves(updates);
        let (out, state) = self.update_leaves(flat, state, &named_leaves(params).2);
        let leaves = order.into_iter().map(|(name, aval)| match out.get(&name) {
            Some(u) => u.clone(),
            None => {
                let reason = format!("the optimizer returned no update for leaf {name:?}");
                trace::fail("optimizer", reason, &[], None, aval)
            }
        });
        (rebuild(&def, leaves.collect()), state)
    }
}

/// The structure of `t`, the name and aval of each leaf in order, and the leaves by name;
/// two leaves of one name are a trace error.
fn named_leaves<T: Tree<Leaf = Tensor>>(t: &T) -> (TreeDef, Vec<(String, Aval)>, Params) {
    let (def, flat) = tree::flatten(t);
    let order = flat
        .iter()
        .map(|(n, l)| (n.clone(), Aval::new(l.shape(), l.dtype())))
        .collect();
    let mut named = Params::new();
    for (name, leaf) in flat {
        let leaf = if named.contains_key(&name) {
            let reason = format!(
                "two leaves of the tree are named {name:?}; an optimizer needs unique leaf names"
            );
            let aval = Aval::new(leaf.shape(), leaf.dtype());
            trace::fail("optimizer", reason, &[], Some(&leaf), aval)
        } else {
            leaf
        };
        named.insert(name, leaf);
    }
    (def, order, named)
}

/// A `T` from its own structure and leaves (cannot fail: `def` came from flattening a `T`).
fn rebuild<T: Tree<Leaf = Tensor>>(def: &TreeDef, leaves: Vec<Tensor>) -> T {
    tree::unflatten(def, leaves).expect("a tree rebuilds from its own structure")
}

/// Which leaves a masked stage applies to, by `/`-joined leaf name (Optax's `mask`).
#[derive(Clone)]
pub struct Mask(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl Mask {
    /// The leaves for which `f(name)` holds.
    pub fn new(f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Mask {
        Mask(Arc::new(f))
    }

    /// Exactly the leaves named in `names`.
    pub fn names(names: BTreeSet<String>) -> Mask {
        Mask::new(move |n| names.contains(n))
    }

    /// The leaves whose whole name matches the regex `pattern` (Python's `fullmatch`, as
    /// big_vision's `wd_mults` patterns).
    pub fn regex(pattern: &str) -> Result<Mask, regex::Error> {
        let re = regex::Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(Mask::new(move |n| re.is_match(n)))
    }

    /// Whether the leaf `name` is in the mask.
    pub fn contains(&self, name: &str) -> bool {
        (self.0)(name)
    }
}

impl fmt::Debug for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mask(..)")
    }
}

/// A sequence of named stages; stage `s`'s state entries are stored as `s/<entry>`.
pub struct Chain {
    stages: Vec<(String, Box<dyn Transform>)>,
}

/// Chains `stages` in order; names must be unique and contain no `/`.
pub fn chain(stages: Vec<(String, Box<dyn Transform>)>) -> Chain {
    Chain { stages }
}

impl Chain {
    /// The stage names, in order.
    pub fn stage_names(&self) -> impl Iterator<Item = &str> {
        self.stages.iter().map(|(n, _)| n.as_str())
    }
}

impl Transform for Chain {
    fn init_leaves(&self, params: &Params) -> State {
        let mut state = State::new();
        for (name, stage) in &self.stages {
            for (k, v) in stage.init_leaves(params) {
                state.insert(format!("{name}/{k}"), v);
            }
        }
        state
    }

    fn update_leaves(
        &self,
        mut updates: Params,
        mut state: State,
        params: &Params,
    ) -> (Params, State) {
        let mut out = State::new();
        for (name, stage) in &self.stages {
            let prefix = format!("{name}/");
            let keys: Vec<String> = state
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            let own = keys
                .into_iter()
                .filter_map(|k| state.remove_entry(&k))
                .map(|(k, v)| (k[prefix.len()..].to_string(), v))
                .collect();
            let (u, s) = stage.update_leaves(updates, own, params);
            updates = u;
            out.extend(s.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
        }
        (updates, out)
    }
}

/// `inner` applied to the leaves in a [`Mask`] only; others pass through unchanged and get
/// no state (Optax's `masked`).
pub struct Masked {
    inner: Box<dyn Transform>,
    mask: Mask,
}

/// Applies `inner` to the leaves in `mask` only.
pub fn masked(inner: Box<dyn Transform>, mask: Mask) -> Masked {
    Masked { inner, mask }
}

impl Masked {
    fn select(&self, params: &Params) -> Params {
        params
            .iter()
            .filter(|(k, _)| self.mask.contains(k))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

impl Transform for Masked {
    fn init_leaves(&self, params: &Params) -> State {
        self.inner.init_leaves(&self.select(params))
    }

    fn update_leaves(&self, mut updates: Params, state: State, params: &Params) -> (Params, State) {
        let inside = self.select(&updates);
        let (new, state) = self
            .inner
            .update_leaves(inside, state, &self.select(params));
        updates.extend(new);
        (updates, state)
    }
}

/// `params + updates`, in each parameter's dtype (`optax.apply_updates`); leaves are paired
/// by name, and a leaf without an update is kept.
pub fn apply_updates<T: Tree<Leaf = Tensor>>(params: &T, updates: &T) -> T {
    let (def, flat) = tree::flatten(params);
    let updates = named_leaves(updates).2;
    let new = flat.into_iter().map(|(k, p)| match updates.get(&k) {
        Some(u) => np::astype(&(&p + u), p.dtype()),
        None => p,
    });
    rebuild(&def, new.collect())
}

/// The square root of the sum of squares of all leaves (`optax.global_norm`), summed in the
/// tree's leaf order as Optax sums `jax.tree.leaves`.
pub fn global_norm<T: Tree<Leaf = Tensor>>(tree: &T) -> Tensor {
    let mut total: Option<Tensor> = None;
    for (_, x) in tree::flatten(tree).1 {
        let s = np::sum(&(&x * &x), np::Axes::All, false);
        total = Some(match total {
            Some(t) => t + s,
            None => s,
        });
    }
    np::sqrt(&total.unwrap_or_else(|| np::zeros(&[], DType::F32)))
}

/// A fresh step counter (int32 zero).
pub(crate) fn zero_count() -> Tensor {
    np::zeros(&[], DType::I32)
}

/// `count + 1`, saturating at `i32::MAX` (`optax.safe_increment`).
pub(crate) fn increment(count: &Tensor) -> Tensor {
    let max = np::full(&[], i32::MAX, DType::I32);
    np::where_(&np::less(count, &max), count + 1, count)
}

/// The state entry `key` (of `aval`), which the transform's own `init` created; a missing
/// or mismatched entry is reported as a trace error when the step is jitted.
#[track_caller]
pub(crate) fn take(state: &mut State, key: &str, aval: Aval) -> Tensor {
    match state.remove(key) {
        Some(t) if t.shape() == aval.shape.as_slice() && t.dtype() == aval.dtype => t,
        found => {
            let found = found.map(|t| format!("{:?} {}", t.shape(), t.dtype().name()));
            let reason = format!(
                "optimizer state entry {key:?} is {}, expected {:?} {}; pass the state that \
                 this optimizer's init created",
                found.as_deref().unwrap_or("missing"),
                aval.shape,
                aval.dtype.name()
            );
            trace::fail("optimizer", reason, &[], None, aval)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bv_core::{impl_tree, jit, Array};

    struct AddOne;
    impl Transform for AddOne {
        fn init_leaves(&self, _: &Params) -> State {
            State::from([("count".to_string(), zero_count())])
        }
        fn update_leaves(&self, u: Params, mut s: State, _: &Params) -> (Params, State) {
            let c = increment(&take(&mut s, "count", Aval::new([], DType::I32)));
            (
                u.into_iter().map(|(k, v)| (k, v + 1.0)).collect(),
                State::from([("count".into(), c)]),
            )
        }
    }

    fn add_ones(mask: Mask) -> Chain {
        chain(vec![
            ("first".into(), Box::new(masked(Box::new(AddOne), mask))),
            ("second".into(), Box::new(AddOne)),
        ])
    }

    #[test]
    fn chain_names_state_by_stage_and_masked_leaves_others_alone() {
        let f = jit(|p: Params| {
            let c = add_ones(Mask::names(BTreeSet::from(["a".to_string()])));
            let s = c.init(&p);
            c.update(&p, s, &p)
        });
        let p: Params<Array> = [
            ("b".to_string(), Array::scalar(1.0f32).unwrap()),
            ("a".to_string(), Array::scalar(1.0f32).unwrap()),
        ]
        .into();
        let (u, s) = f.call(&p).unwrap();
        assert_eq!(u.names().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(u["a"].item::<f32>().unwrap(), 3.0);
        assert_eq!(u["b"].item::<f32>().unwrap(), 2.0);
        let names: Vec<&str> = s.keys().map(String::as_str).collect();
        assert_eq!(names, ["first/count", "second/count"]);
        assert_eq!(s["first/count"].item::<i32>().unwrap(), 1);
    }

    struct Dense<L> {
        kernel: L,
        bias: Option<L>,
    }
    impl_tree!(Dense<L> { kernel, bias });

    struct Net<L> {
        layers: Vec<Dense<L>>,
    }
    impl_tree!(Net<L> { layers });

    #[test]
    fn a_user_struct_is_masked_by_leaf_path_and_rebuilt() {
        let f = jit(|p: Net<Tensor>| {
            let c = add_ones(Mask::regex(".*/kernel").unwrap());
            let s = c.init(&p);
            let (u, s) = c.update(&p, s, &p);
            (apply_updates(&p, &u), global_norm(&u), s)
        });
        let x = |v: f32| Array::from_slice(&[v, v], &[2]).unwrap();
        let p = Net {
            layers: vec![
                Dense {
                    kernel: x(1.0),
                    bias: Some(x(2.0)),
                },
                Dense {
                    kernel: x(3.0),
                    bias: None,
                },
            ],
        };
        let (new, norm, s) = f.call(&p).unwrap();
        // kernels: θ + (θ + 2), biases: θ + (θ + 1).
        assert_eq!(new.layers[0].kernel.to_vec::<f32>().unwrap(), [4.0, 4.0]);
        assert_eq!(
            new.layers[0]
                .bias
                .as_ref()
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            [5.0, 5.0]
        );
        assert_eq!(new.layers[1].kernel.to_vec::<f32>().unwrap(), [8.0, 8.0]);
        assert!(new.layers[1].bias.is_none());
        // Updates 3, 3, 3, 3, 5, 5 (f64 reference: sqrt(4·9 + 2·25)).
        let want = (4.0f64 * 9.0 + 2.0 * 25.0).sqrt();
        assert!((f64::from(norm.item::<f32>().unwrap()) - want).abs() < 1e-5);
        assert_eq!(s["first/count"].item::<i32>().unwrap(), 1);
    }

    #[test]
    fn a_tree_with_two_leaves_of_one_name_is_an_error() {
        let f = jit(|p: BTreeMap<String, Params>| {
            let s = AddOne.init(&p);
            AddOne.update(&p, s, &p).0
        });
        let leaf = |name: &str| Params::from([(name.to_string(), Array::scalar(1.0f32).unwrap())]);
        let fine = BTreeMap::from([("a".to_string(), leaf("b")), ("c".to_string(), leaf("d"))]);
        assert!(f.call(&fine).is_ok());
        // `a` + `b/c` and `a/b` + `c` both flatten to `a/b/c`.
        let clash = BTreeMap::from([
            ("a".to_string(), leaf("b/c")),
            ("a/b".to_string(), leaf("c")),
        ]);
        let e = f.call(&clash).err().unwrap().to_string();
        assert!(e.contains("unique leaf names"), "{e}");
    }
}
