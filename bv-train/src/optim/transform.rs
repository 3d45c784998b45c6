//! Gradient transformations as (init, update) pairs over named parameter maps, as Optax's
//! `GradientTransformation`, with [`chain`] and [`masked`]. Everything runs on traced
//! tensors, so a whole optimizer update is part of one jitted step.
//!
//! State is a flat map of named entries: a transform names its fields (`mu/<param>`,
//! `count`), and a [`Chain`] prefixes each stage's entries with the stage name
//! (`adam/mu/a/kernel`), so a checkpoint of the state reads like the parameters.
//!
//! ```
//! use std::sync::Arc;
//! use bv_core::{jit, Array};
//! use bv_train::optim::{apply_updates, make, OptimSpec, Params, ScheduleGroups, State, Transform};
//! let spec: OptimSpec =
//!     serde_json::from_str(r#"{"optax_name": "scale_by_adam", "lr": 0.1}"#).unwrap();
//! let groups = ScheduleGroups::new(None, 10, None, None).unwrap();
//! let tx = Arc::new(make(&spec, &groups, ["w"]).unwrap());
//! let t = tx.clone();
//! let init = jit(move |p: Params| t.init(&p));
//! let step = jit(move |(p, g, s): (Params, Params, State)| {
//!     let (u, s) = tx.update(g, s, &p);
//!     (apply_updates(&p, &u), s)
//! });
//! let params = [("w".to_string(), Array::from_slice(&[1.0f32, 2.0], &[2]).unwrap())].into();
//! let grads = [("w".to_string(), Array::from_slice(&[0.5f32, -0.5], &[2]).unwrap())].into();
//! let state = init.call(&params).unwrap();
//! let (params, state) = step.call(&(params, grads, state)).unwrap();
//! let w = params["w"].to_vec::<f32>().unwrap(); // Adam's first step: θ - lr · sign(g)
//! assert!((w[0] - 0.9).abs() < 1e-6 && (w[1] - 2.1).abs() < 1e-6);
//! assert_eq!(state["adam/count"].item::<i32>().unwrap(), 1);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use bv_core::trace::{self, Aval};
use bv_core::{numpy as np, DType, Tensor};

/// Parameters, gradients or updates by `/`-joined name (big_vision's flat names).
pub type Params = BTreeMap<String, Tensor>;

/// Optimizer state by entry name (`mu/<param>`, `count`, ...).
pub type State = BTreeMap<String, Tensor>;

/// A gradient transformation: pure `init` and `update` on traced tensors.
pub trait Transform: Send + Sync {
    /// The initial state for `params`.
    fn init(&self, params: &Params) -> State;
    /// Transforms `updates` (at first the gradients), given the state from `init` or the
    /// previous update and the current `params`.
    fn update(&self, updates: Params, state: State, params: &Params) -> (Params, State);
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
    fn init(&self, params: &Params) -> State {
        let mut state = State::new();
        for (name, stage) in &self.stages {
            for (k, v) in stage.init(params) {
                state.insert(format!("{name}/{k}"), v);
            }
        }
        state
    }

    fn update(&self, mut updates: Params, mut state: State, params: &Params) -> (Params, State) {
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
            let (u, s) = stage.update(updates, own, params);
            updates = u;
            out.extend(s.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
        }
        (updates, out)
    }
}

/// `inner` applied to the parameters named in `names` only; others pass through unchanged
/// and get no state (Optax's `masked`).
pub struct Masked {
    inner: Box<dyn Transform>,
    names: BTreeSet<String>,
}

/// Applies `inner` to the parameters in `names` only.
pub fn masked(inner: Box<dyn Transform>, names: BTreeSet<String>) -> Masked {
    Masked { inner, names }
}

impl Masked {
    fn select(&self, params: &Params) -> Params {
        params
            .iter()
            .filter(|(k, _)| self.names.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl Transform for Masked {
    fn init(&self, params: &Params) -> State {
        self.inner.init(&self.select(params))
    }

    fn update(&self, mut updates: Params, state: State, params: &Params) -> (Params, State) {
        let inside = self.select(&updates);
        let (new, state) = self.inner.update(inside, state, &self.select(params));
        updates.extend(new);
        (updates, state)
    }
}

/// `params + updates`, in each parameter's dtype (`optax.apply_updates`).
pub fn apply_updates(params: &Params, updates: &Params) -> Params {
    params
        .iter()
        .map(|(k, p)| {
            let new = match updates.get(k) {
                Some(u) => np::astype(&(p + u), p.dtype()),
                None => p.clone(),
            };
            (k.clone(), new)
        })
        .collect()
}

/// The square root of the sum of squares of all leaves (`optax.global_norm`), summed in
/// name order as Optax does.
pub fn global_norm(tree: &Params) -> Tensor {
    let mut total: Option<Tensor> = None;
    for x in tree.values() {
        let s = np::sum(&(x * x), np::Axes::All, false);
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
    use bv_core::{jit, Array};

    struct AddOne;
    impl Transform for AddOne {
        fn init(&self, _: &Params) -> State {
            State::from([("count".to_string(), zero_count())])
        }
        fn update(&self, u: Params, mut s: State, _: &Params) -> (Params, State) {
            let c = increment(&take(&mut s, "count", Aval::new([], DType::I32)));
            (
                u.into_iter().map(|(k, v)| (k, v + 1.0)).collect(),
                State::from([("count".into(), c)]),
            )
        }
    }

    #[test]
    fn chain_names_state_by_stage_and_masked_leaves_others_alone() {
        let f = jit(|p: Params| {
            let mask = BTreeSet::from(["a".to_string()]);
            let c = chain(vec![
                ("first".into(), Box::new(masked(Box::new(AddOne), mask))),
                ("second".into(), Box::new(AddOne)),
            ]);
            let s = c.init(&p);
            let (u, s) = c.update(p.clone(), s, &p);
            (u, s)
        });
        let p = BTreeMap::from([
            ("a".to_string(), Array::scalar(1.0f32).unwrap()),
            ("b".to_string(), Array::scalar(1.0f32).unwrap()),
        ]);
        let (u, s) = f.call(&p).unwrap();
        assert_eq!(u["a"].item::<f32>().unwrap(), 3.0);
        assert_eq!(u["b"].item::<f32>().unwrap(), 2.0);
        let names: Vec<&str> = s.keys().map(String::as_str).collect();
        assert_eq!(names, ["first/count", "second/count"]);
        assert_eq!(s["first/count"].item::<i32>().unwrap(), 1);
    }
}
