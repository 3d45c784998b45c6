//! Parameters as a flat map from `/`-joined names (`Transformer/encoderblock_0/LayerNorm_0/scale`)
//! to leaves, in creation order: the form of big_vision's npz checkpoints, sharding rules and
//! optimizer masks.

use std::collections::HashMap;

use bv_core::tree::{join, Leaf, Tree, TreeDef, TreeError};

/// An insertion-ordered map from parameter names to leaves (tensors inside a traced
/// function, arrays outside, specs for lowering).
#[derive(Clone, Debug)]
pub struct Params<L> {
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

    /// Adds `name`, or replaces its value in place.
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

    /// Number of parameters (entries, not elements).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(name, value)` pairs in creation order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &L)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The names in creation order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }
}

impl<L> FromIterator<(String, L)> for Params<L> {
    fn from_iter<I: IntoIterator<Item = (String, L)>>(iter: I) -> Self {
        let mut p = Params::new();
        for (n, v) in iter {
            p.insert(n, v);
        }
        p
    }
}

impl<L> IntoIterator for Params<L> {
    type Item = (String, L);
    type IntoIter = std::vec::IntoIter<(String, L)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
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
