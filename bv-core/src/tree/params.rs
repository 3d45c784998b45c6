//! [`Params`]: the parameter tree of models, optimizers, trainers and checkpoints.

use std::collections::HashMap;
use std::ops::Index;

use super::{join, Leaf, Tree, TreeDef, TreeError};
use crate::trace::Tensor;

/// Parameters as a flat map from `/`-joined names (`Transformer/encoderblock_0/LayerNorm_0/scale`)
/// to leaves, in insertion order: tensors inside a traced function (the default), arrays
/// outside, specs for lowering, host arrays in checkpoints.
///
/// Models create their parameters in Flax's creation order, the order of big_vision's npz
/// checkpoints; [`Params::sorted`] gives name order (JAX's leaf order for nested dicts, which
/// the trainer keeps for its state, checkpoints and norms). As a [`Tree`] its leaves are
/// named by their keys, so optimizer masks, sharding rules and checkpoints match on them.
///
/// ```
/// use bv_core::tree::{self, Params};
/// use bv_core::{DType, Spec};
///
/// let mut p = Params::new();
/// p.insert("head/kernel", Spec::new([4, 2], DType::F32));
/// p.insert("head/bias", Spec::new([2], DType::F32));
/// assert_eq!(p.names().collect::<Vec<_>>(), ["head/kernel", "head/bias"]);
/// let (_, leaves) = tree::flatten(&p.sorted());
/// assert_eq!(leaves[0].0, "head/bias");
/// ```
#[derive(Clone, Debug)]
pub struct Params<L = Tensor> {
    entries: Vec<(String, L)>,
    index: HashMap<String, usize>,
}

impl<L> Default for Params<L> {
    fn default() -> Self {
        Params {
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<L> Params<L> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name`, or replaces its value in place (keeping its position).
    pub fn insert(&mut self, name: impl Into<String>, value: L) {
        let name = name.into();
        match self.index.get(&name) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, value));
            }
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&L> {
        self.index.get(name).map(|&i| &self.entries[i].1)
    }

    /// Whether `name` is present.
    pub fn contains_key(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Number of parameters (entries, not elements).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &L)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// The values in order.
    pub fn values(&self) -> impl Iterator<Item = &L> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The same entries in name order.
    pub fn sorted(self) -> Self {
        let mut entries = self.entries;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.into_iter().collect()
    }

    /// `f` applied to every value, keeping names and order.
    pub fn map<M>(&self, mut f: impl FnMut(&str, &L) -> M) -> Params<M> {
        self.iter().map(|(n, v)| (n.to_string(), f(n, v))).collect()
    }
}

impl<L> Index<&str> for Params<L> {
    type Output = L;

    /// The value of `name`; panics when absent (use [`Params::get`] to check).
    fn index(&self, name: &str) -> &L {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no parameter named {name:?}"),
        }
    }
}

impl<L> FromIterator<(String, L)> for Params<L> {
    fn from_iter<I: IntoIterator<Item = (String, L)>>(iter: I) -> Self {
        let mut p = Params::new();
        p.extend(iter);
        p
    }
}

impl<L> Extend<(String, L)> for Params<L> {
    /// Inserts every pair: new names at the end, existing ones replaced in place.
    fn extend<I: IntoIterator<Item = (String, L)>>(&mut self, iter: I) {
        for (n, v) in iter {
            self.insert(n, v);
        }
    }
}

impl<L, const N: usize> From<[(String, L); N]> for Params<L> {
    fn from(pairs: [(String, L); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<L> IntoIterator for Params<L> {
    type Item = (String, L);
    type IntoIter = std::vec::IntoIter<(String, L)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a, L> IntoIterator for &'a Params<L> {
    type Item = (&'a str, &'a L);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a L)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<L: PartialEq> PartialEq for Params<L> {
    /// Equal names and values in the same order.
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl<L: Leaf> Tree for Params<L> {
    type Leaf = L;
    type With<M: Leaf> = Params<M>;

    fn flatten_into(&self, prefix: &str, out: &mut Vec<(String, L)>) -> TreeDef {
        TreeDef::Map(
            self.entries
                .iter()
                .map(|(n, v)| (n.clone(), v.flatten_into(&join(prefix, n), out)))
                .collect(),
        )
    }

    fn unflatten_from(
        def: &TreeDef,
        leaves: &mut dyn Iterator<Item = L>,
    ) -> Result<Self, TreeError> {
        match def {
            TreeDef::Map(c) => c
                .iter()
                .map(|(n, d)| Ok((n.clone(), L::unflatten_from(d, leaves)?)))
                .collect(),
            other => Err(TreeError::Mismatch {
                expected: "a parameter map",
                found: other.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{flatten, unflatten};
    use crate::{DType, Spec};

    fn s(n: usize) -> Spec {
        Spec::new([n], DType::F32)
    }

    #[test]
    fn insertion_order_kept_replaced_in_place_sorted_on_request() {
        let mut p: Params<Spec> = [("b".to_string(), s(1)), ("a".to_string(), s(2))].into();
        p.insert("b", s(3));
        p.insert("c", s(4));
        assert_eq!(p.names().collect::<Vec<_>>(), ["b", "a", "c"]);
        assert_eq!(p["b"], s(3));
        let sorted = p.clone().sorted();
        assert_eq!(sorted.names().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_ne!(sorted, p);
        assert_eq!(sorted.get("c"), Some(&s(4)));
    }

    #[test]
    fn round_trips_as_a_tree_in_its_order() {
        let p: Params<Spec> = [("z/k".to_string(), s(1)), ("a/k".to_string(), s(2))].into();
        let (def, leaves) = flatten(&(p.clone(), s(3)));
        let names: Vec<&str> = leaves.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["0/z/k", "0/a/k", "1"]);
        let back: (Params<Spec>, Spec) =
            unflatten(&def, leaves.into_iter().map(|(_, l)| l).collect()).unwrap();
        assert_eq!(back.0, p);
        let wrong: Result<Params<Spec>, _> = unflatten(&TreeDef::Leaf, vec![s(1)]);
        assert!(matches!(
            wrong,
            Err(TreeError::Mismatch {
                expected: "a parameter map",
                ..
            })
        ));
    }
}
