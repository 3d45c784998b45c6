//! Trees of arrays (JAX's pytrees): containers that flatten to named leaves and rebuild from
//! them. Leaf names are `/`-joined paths (`encoder/layer_0/kernel`), so checkpoints,
//! sharding rules and optimizer masks can match on them.
//!
//! A tree type is generic over its leaf, so one structure holds [`Tensor`]s inside a traced
//! function, [`Array`](crate::Array)s outside and [`Spec`]s for lowering without data:
//! `T::With<Array>` is the same structure as `T` with arrays at the leaves.
//!
//! ```
//! use bv_core::tree::{self, Tree};
//! use bv_core::{impl_tree, DType, Spec};
//!
//! struct Dense<L> { kernel: L, bias: Option<L> }
//! impl_tree!(Dense<L> { kernel, bias });
//!
//! let d = Dense { kernel: Spec::new([3, 4], DType::F32), bias: Some(Spec::new([4], DType::F32)) };
//! let (_, leaves) = tree::flatten(&d);
//! let names: Vec<&str> = leaves.iter().map(|(n, _)| n.as_str()).collect();
//! assert_eq!(names, ["kernel", "bias"]);
//! ```
//!
//! [`Params`] is the flat parameter map of models, optimizers and checkpoints; a user struct
//! with [`impl_tree!`](crate::impl_tree) serves as well wherever a `Tree` is taken.

use std::collections::BTreeMap;

mod params;
pub use params::Params;

use crate::trace::{Spec, Tensor};

/// The structure of a tree with its leaves removed; equal structures compare equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TreeDef {
    /// One leaf.
    Leaf,
    /// A tuple; children are named `0`, `1`, ...
    Tuple(Vec<TreeDef>),
    /// A `Vec`; children are named `0`, `1`, ...
    List(Vec<TreeDef>),
    /// `None` (no leaves).
    None,
    /// `Some(child)`; the child keeps the parent's path.
    Some(Box<TreeDef>),
    /// A `BTreeMap<String, _>`; children are named by key.
    Map(Vec<(String, TreeDef)>),
    /// A struct (see [`impl_tree!`](crate::impl_tree)); children are named by field.
    Struct(&'static str, Vec<(&'static str, TreeDef)>),
}

impl TreeDef {
    /// The number of leaves.
    pub fn num_leaves(&self) -> usize {
        match self {
            TreeDef::Leaf => 1,
            TreeDef::None => 0,
            TreeDef::Some(c) => c.num_leaves(),
            TreeDef::Tuple(c) | TreeDef::List(c) => c.iter().map(TreeDef::num_leaves).sum(),
            TreeDef::Map(c) => c.iter().map(|(_, d)| d.num_leaves()).sum(),
            TreeDef::Struct(_, c) => c.iter().map(|(_, d)| d.num_leaves()).sum(),
        }
    }
}

/// Why leaves could not be put back into a structure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// The structure does not fit the type being rebuilt (e.g. a `List` def for a tuple).
    #[error("tree structure mismatch: expected {expected}, found {found:?}")]
    Mismatch {
        /// What the type expected.
        expected: &'static str,
        /// The structure given.
        found: TreeDef,
    },
    /// Fewer leaves than the structure needs.
    #[error("not enough leaves to rebuild the tree")]
    TooFewLeaves,
}

/// A type that can sit at a tree's leaves: [`Tensor`], [`Array`](crate::Array), [`Spec`].
pub trait Leaf: Tree<Leaf = Self> + Clone {}

/// A container of leaves with a fixed structure.
pub trait Tree: Sized {
    /// The leaf type.
    type Leaf: Leaf;
    /// The same structure with leaves of type `L`.
    type With<L: Leaf>: Tree<Leaf = L>;

    /// Appends the leaves, named by their paths under `prefix`, and returns the structure.
    fn flatten_into(&self, prefix: &str, out: &mut Vec<(String, Self::Leaf)>) -> TreeDef;

    /// Rebuilds a value of this type from `def`, taking leaves in order.
    fn unflatten_from(
        def: &TreeDef,
        leaves: &mut dyn Iterator<Item = Self::Leaf>,
    ) -> Result<Self, TreeError>;
}

/// Flattens a tree into its structure and its named leaves, in order.
pub fn flatten<T: Tree>(t: &T) -> (TreeDef, Vec<(String, T::Leaf)>) {
    let mut out = Vec::new();
    let def = t.flatten_into("", &mut out);
    (def, out)
}

/// Rebuilds a tree from a structure and leaves in order.
pub fn unflatten<T: Tree>(def: &TreeDef, leaves: Vec<T::Leaf>) -> Result<T, TreeError> {
    T::unflatten_from(def, &mut leaves.into_iter())
}

/// Applies `f` to every leaf (with its path), keeping the structure.
pub fn map<T: Tree, L: Leaf>(
    t: &T,
    mut f: impl FnMut(&str, &T::Leaf) -> L,
) -> Result<T::With<L>, TreeError> {
    let (def, leaves) = flatten(t);
    let mapped: Vec<L> = leaves.iter().map(|(p, l)| f(p, l)).collect();
    unflatten(&def, mapped)
}

/// `prefix/name`, or `name` at the root.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

fn mismatch<T>(expected: &'static str, found: &TreeDef) -> Result<T, TreeError> {
    Err(TreeError::Mismatch {
        expected,
        found: found.clone(),
    })
}

/// Implements [`Leaf`] and [`Tree`] (a single leaf) for a type; the modules that define
/// leaf types invoke it, so this module depends on none of them.
macro_rules! leaf {
    ($t:ty) => {
        impl $crate::tree::Leaf for $t {}
        impl $crate::tree::Tree for $t {
            type Leaf = $t;
            type With<L: $crate::tree::Leaf> = L;
            fn flatten_into(
                &self,
                prefix: &str,
                out: &mut Vec<(String, $t)>,
            ) -> $crate::tree::TreeDef {
                out.push((prefix.to_string(), self.clone()));
                $crate::tree::TreeDef::Leaf
            }
            fn unflatten_from(
                def: &$crate::tree::TreeDef,
                leaves: &mut dyn Iterator<Item = $t>,
            ) -> Result<Self, $crate::tree::TreeError> {
                match def {
                    $crate::tree::TreeDef::Leaf => {
                        leaves.next().ok_or($crate::tree::TreeError::TooFewLeaves)
                    }
                    other => Err($crate::tree::TreeError::Mismatch {
                        expected: "a leaf",
                        found: other.clone(),
                    }),
                }
            }
        }
    };
}
pub(crate) use leaf;
leaf!(Tensor);
leaf!(Spec);

macro_rules! tuple {
    ($($t:ident $i:tt),+) => {
        impl<A: Tree, $($t: Tree<Leaf = A::Leaf>),+> Tree for (A, $($t),+) {
            type Leaf = A::Leaf;
            type With<L: Leaf> = (A::With<L>, $($t::With<L>),+);
            fn flatten_into(&self, prefix: &str, out: &mut Vec<(String, Self::Leaf)>) -> TreeDef {
                TreeDef::Tuple(vec![self.0.flatten_into(&join(prefix, "0"), out), $(self.$i.flatten_into(&join(prefix, stringify!($i)), out)),+])
            }
            fn unflatten_from(def: &TreeDef, leaves: &mut dyn Iterator<Item = Self::Leaf>) -> Result<Self, TreeError> {
                match def {
                    TreeDef::Tuple(c) if c.len() == 1 + [$(stringify!($i)),+].len() => {
                        Ok((A::unflatten_from(&c[0], leaves)?, $($t::unflatten_from(&c[$i], leaves)?),+))
                    }
                    other => mismatch("a tuple", other),
                }
            }
        }
    };
}
tuple!(B 1);
tuple!(B 1, C 2);
tuple!(B 1, C 2, D 3);
tuple!(B 1, C 2, D 3, E 4);
tuple!(B 1, C 2, D 3, E 4, F 5);

impl<T: Tree> Tree for Vec<T> {
    type Leaf = T::Leaf;
    type With<L: Leaf> = Vec<T::With<L>>;
    fn flatten_into(&self, prefix: &str, out: &mut Vec<(String, Self::Leaf)>) -> TreeDef {
        TreeDef::List(
            self.iter()
                .enumerate()
                .map(|(i, x)| x.flatten_into(&join(prefix, &i.to_string()), out))
                .collect(),
        )
    }
    fn unflatten_from(
        def: &TreeDef,
        leaves: &mut dyn Iterator<Item = Self::Leaf>,
    ) -> Result<Self, TreeError> {
        match def {
            TreeDef::List(c) => c.iter().map(|d| T::unflatten_from(d, leaves)).collect(),
            other => mismatch("a list", other),
        }
    }
}

impl<T: Tree> Tree for Option<T> {
    type Leaf = T::Leaf;
    type With<L: Leaf> = Option<T::With<L>>;
    fn flatten_into(&self, prefix: &str, out: &mut Vec<(String, Self::Leaf)>) -> TreeDef {
        match self {
            None => TreeDef::None,
            Some(x) => TreeDef::Some(Box::new(x.flatten_into(prefix, out))),
        }
    }
    fn unflatten_from(
        def: &TreeDef,
        leaves: &mut dyn Iterator<Item = Self::Leaf>,
    ) -> Result<Self, TreeError> {
        match def {
            TreeDef::None => Ok(None),
            TreeDef::Some(d) => Ok(Some(T::unflatten_from(d, leaves)?)),
            other => mismatch("an option", other),
        }
    }
}

impl<T: Tree> Tree for BTreeMap<String, T> {
    type Leaf = T::Leaf;
    type With<L: Leaf> = BTreeMap<String, T::With<L>>;
    fn flatten_into(&self, prefix: &str, out: &mut Vec<(String, Self::Leaf)>) -> TreeDef {
        TreeDef::Map(
            self.iter()
                .map(|(k, v)| (k.clone(), v.flatten_into(&join(prefix, k), out)))
                .collect(),
        )
    }
    fn unflatten_from(
        def: &TreeDef,
        leaves: &mut dyn Iterator<Item = Self::Leaf>,
    ) -> Result<Self, TreeError> {
        match def {
            TreeDef::Map(c) => c
                .iter()
                .map(|(k, d)| Ok((k.clone(), T::unflatten_from(d, leaves)?)))
                .collect(),
            other => mismatch("a map", other),
        }
    }
}

/// Implements [`Tree`] for a struct generic over its leaf type; fields are named by
/// their identifiers and must all be trees of that leaf.
///
/// `struct Mlp<L> { fc1: Dense<L>, fc2: Dense<L> }  impl_tree!(Mlp<L> { fc1, fc2 });`
#[macro_export]
macro_rules! impl_tree {
    ($name:ident < $l:ident > { $($field:ident),* $(,)? }) => {
        impl<$l: $crate::tree::Leaf> $crate::tree::Tree for $name<$l> {
            type Leaf = $l;
            type With<L2: $crate::tree::Leaf> = $name<L2>;
            fn flatten_into(&self, prefix: &str, out: &mut Vec<(String, $l)>) -> $crate::tree::TreeDef {
                $crate::tree::TreeDef::Struct(stringify!($name), vec![$(
                    (stringify!($field), $crate::tree::Tree::flatten_into(&self.$field, &$crate::tree::join(prefix, stringify!($field)), out))
                ),*])
            }
            fn unflatten_from(
                def: &$crate::tree::TreeDef,
                leaves: &mut dyn Iterator<Item = $l>,
            ) -> Result<Self, $crate::tree::TreeError> {
                let $crate::tree::TreeDef::Struct(_, fields) = def else {
                    return Err($crate::tree::TreeError::Mismatch { expected: stringify!($name), found: def.clone() });
                };
                let mut fields = fields.iter();
                Ok($name { $(
                    $field: {
                        let (_, d) = fields.next().ok_or_else(|| $crate::tree::TreeError::Mismatch {
                            expected: stringify!($name),
                            found: def.clone(),
                        })?;
                        $crate::tree::Tree::unflatten_from(d, leaves)?
                    }
                ),* })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    struct Block<L> {
        attn: BTreeMap<String, L>,
        mlp: Vec<L>,
        scale: Option<L>,
    }
    crate::impl_tree!(Block<L> { attn, mlp, scale });

    fn s(n: usize) -> Spec {
        Spec::new([n], DType::F32)
    }

    #[test]
    fn paths_and_round_trip() {
        let mut attn = BTreeMap::new();
        attn.insert("query".to_string(), s(1));
        attn.insert("key".to_string(), s(2));
        let t = (
            vec![Block {
                attn,
                mlp: vec![s(3), s(4)],
                scale: None,
            }],
            s(5),
        );
        let (def, leaves) = flatten(&t);
        let names: Vec<&str> = leaves.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "0/0/attn/key",
                "0/0/attn/query",
                "0/0/mlp/0",
                "0/0/mlp/1",
                "1"
            ]
        );
        assert_eq!(def.num_leaves(), 5);
        let back: (Vec<Block<Spec>>, Spec) =
            unflatten(&def, leaves.into_iter().map(|(_, l)| l).collect()).unwrap();
        assert_eq!(back.0[0].mlp[1], s(4));
        assert!(back.0[0].scale.is_none());
        assert_eq!(back.1, s(5));
    }

    #[test]
    fn mismatched_structure_is_an_error() {
        let (def, leaves) = flatten(&(s(1), s(2)));
        let r: Result<Vec<Spec>, _> = unflatten(&def, leaves.into_iter().map(|(_, l)| l).collect());
        assert!(matches!(r, Err(TreeError::Mismatch { .. })));
        let r: Result<(Spec, Spec), _> = unflatten(&def, vec![s(1)]);
        assert_eq!(r.err(), Some(TreeError::TooFewLeaves));
    }
}
