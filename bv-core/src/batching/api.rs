//! `vmap` over trees, with JAX's `in_axes` and `out_axes`.

use std::cell::RefCell;

use crate::batching::{batch_at, vmap_flat};
use crate::trace::{self, CallSite, Tensor};
use crate::tree::{self, Tree, TreeDef};

/// Where a leaf carries the batch dimension (negative: counted from the end), or `None`
/// for a leaf that is the same for every batch element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis(pub Option<i32>);

impl Axis {
    /// Not batched (JAX's `None` in `in_axes`).
    pub const NONE: Axis = Axis(None);

    /// Batched at dimension `d`.
    pub fn at(d: i32) -> Axis {
        Axis(Some(d))
    }
}

crate::tree::leaf!(Axis);

/// `in_axes` / `out_axes` of [`vmap`]: one [`Axis`] for every leaf, or a tree of axes that
/// is a prefix of the value's tree (an axis in place of a subtree applies to all its
/// leaves), as in JAX. `0.into()`, `None::<i32>.into()`, `Axes::tree(&(Axis::NONE, Axis::at(0)))`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Axes {
    /// The same axis for every leaf.
    All(Axis),
    /// A prefix tree's structure and its axes in leaf order.
    Tree(TreeDef, Vec<Axis>),
}

impl Axes {
    /// Axes given as a tree of [`Axis`] (a prefix of the value's tree).
    pub fn tree<T: Tree<Leaf = Axis>>(t: &T) -> Axes {
        let (def, leaves) = tree::flatten(t);
        Axes::Tree(def, leaves.into_iter().map(|(_, a)| a).collect())
    }

    /// One axis per leaf of a value of structure `def`.
    fn resolve(&self, def: &TreeDef) -> Result<Vec<Axis>, String> {
        match self {
            Axes::All(a) => Ok(vec![*a; def.num_leaves()]),
            Axes::Tree(adef, axes) => {
                let mut it = axes.iter().copied();
                let mut out = Vec::new();
                prefix(adef, def, &mut it, &mut out)?;
                Ok(out)
            }
        }
    }
}

impl From<i32> for Axes {
    fn from(d: i32) -> Axes {
        Axes::All(Axis::at(d))
    }
}

impl From<Option<i32>> for Axes {
    fn from(d: Option<i32>) -> Axes {
        Axes::All(Axis(d))
    }
}

impl From<Axis> for Axes {
    fn from(a: Axis) -> Axes {
        Axes::All(a)
    }
}

/// Expands the axes of prefix tree `a` over the leaves of `v`.
fn prefix(
    a: &TreeDef,
    v: &TreeDef,
    axes: &mut dyn Iterator<Item = Axis>,
    out: &mut Vec<Axis>,
) -> Result<(), String> {
    use TreeDef as T;
    let zip = |a: &[&TreeDef],
               v: &[&TreeDef],
               axes: &mut dyn Iterator<Item = Axis>,
               out: &mut Vec<Axis>| {
        a.iter()
            .zip(v)
            .try_for_each(|(a, v)| prefix(a, v, axes, out))
    };
    match (a, v) {
        (T::Leaf, v) => {
            let ax = axes.next().ok_or("the axes tree has too few leaves")?;
            out.extend(std::iter::repeat_n(ax, v.num_leaves()));
            Ok(())
        }
        (T::None, T::None) => Ok(()),
        (T::Some(a), T::Some(v)) => prefix(a, v, axes, out),
        (T::Tuple(a), T::Tuple(v)) | (T::List(a), T::List(v)) if a.len() == v.len() => {
            let (a, v): (Vec<&TreeDef>, Vec<&TreeDef>) = (a.iter().collect(), v.iter().collect());
            zip(&a, &v, axes, out)
        }
        (T::Map(a), T::Map(v))
            if a.len() == v.len() && a.iter().zip(v).all(|(x, y)| x.0 == y.0) =>
        {
            let a: Vec<&TreeDef> = a.iter().map(|(_, d)| d).collect();
            let v: Vec<&TreeDef> = v.iter().map(|(_, d)| d).collect();
            zip(&a, &v, axes, out)
        }
        (T::Struct(na, a), T::Struct(nv, v)) if na == nv && a.len() == v.len() => {
            let a: Vec<&TreeDef> = a.iter().map(|(_, d)| d).collect();
            let v: Vec<&TreeDef> = v.iter().map(|(_, d)| d).collect();
            zip(&a, &v, axes, out)
        }
        _ => Err(format!(
            "the axes tree {a:?} is not a prefix of the value's structure {v:?}"
        )),
    }
}

/// Checks axis `a` against rank `rank` and makes it non-negative.
fn normalize(a: i32, rank: usize, path: &str, what: &str) -> Result<usize, String> {
    let r = rank as i32;
    let d = if a < 0 { a + r } else { a };
    if d < 0 || d >= r {
        return Err(format!(
            "{what} {a} of leaf '{path}' is out of range for rank {rank}"
        ));
    }
    Ok(d as usize)
}

/// `jax.vmap`: `f` mapped over a batch dimension of its inputs. Input leaf `i` carries the
/// batch at `in_axes`' axis for it (`None`: shared by every batch element); each output
/// gets it at `out_axes`' axis. `vmap(grad(f))` gives per-example gradients, and `vmap`
/// works inside `jit`, `grad`, `jvp`, `scan` and the other transformations, and they inside
/// it.
///
/// ```
/// use bv_core::batching::Axes;
/// use bv_core::prelude::*;
/// // A matrix-vector product written for one vector, applied to the rows of `xs`.
/// let mv = |(w, x): (Tensor, Tensor)| np::matmul(&w, &x);
/// let rows = move || vmap(mv, Axes::tree(&(Axis::NONE, Axis::at(0))), 0);
/// let f = jit(move |(w, xs): (Tensor, Tensor)| rows()(&(w, xs)));
/// let l = f.lower(&(Spec::new([4, 3], DType::F32), Spec::new([8, 3], DType::F32)))?;
/// assert!(l.text.contains("tensor<8x4xf32>"));
/// // Eager: each row of `xs` times the identity is that row.
/// let (w, xs) = (np::eye(2, 2, 0, DType::F32), np::arange(6, DType::F32).reshape(&[3, 2]));
/// assert_eq!(rows()(&(w, xs)).to_vec::<f32>().unwrap(), [0., 1., 2., 3., 4., 5.]);
/// # Ok::<(), bv_core::JitError>(())
/// ```
#[track_caller]
pub fn vmap<I, O>(
    f: impl Fn(I) -> O,
    in_axes: impl Into<Axes>,
    out_axes: impl Into<Axes>,
) -> impl Fn(&I) -> O
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    let site = CallSite::here();
    let (in_axes, out_axes) = (in_axes.into(), out_axes.into());
    move |x: &I| {
        let (def, leaves) = tree::flatten(x);
        let xs: Vec<Tensor> = leaves.into_iter().map(|(_, t)| t).collect();
        crate::eager::run(xs, |xs| {
            let x: I = tree::unflatten(&def, xs).expect("its own structure");
            let x = &x;
            let (in_def, named) = tree::flatten(x);
            let fail = |reason: String, xs: &[Tensor]| {
                let avals: Vec<&crate::Aval> = xs.iter().map(|t| t.aval()).collect();
                trace::record("vmap", reason, &avals, site);
            };
            let xs: Vec<Tensor> = named.iter().map(|(_, t)| t.clone()).collect();
            let dims = match in_dims(&in_axes, &in_def, &named) {
                Ok(d) => d,
                Err(e) => {
                    fail(e, &xs);
                    return f(tree::unflatten(&in_def, xs).expect("its own structure"));
                }
            };
            let out_def = RefCell::new(None);
            let body = |p: &[Tensor]| -> Vec<Tensor> {
                let input: I = tree::unflatten(&in_def, p.to_vec()).expect("its own structure");
                let (def, leaves) = tree::flatten(&f(input));
                *out_def.borrow_mut() = Some(def);
                leaves.into_iter().map(|(_, t)| t).collect()
            };
            let (outs, od) = vmap_flat(&body, &xs, &dims);
            let n = crate::batching::size(&xs, &dims);
            let Some(out_def) = out_def.into_inner() else {
                unreachable!("the body runs while it is traced")
            };
            let placed = out_axes.resolve(&out_def).and_then(|axes| {
                let names: Vec<String> = tree::flatten(
                    &tree::unflatten::<O>(&out_def, outs.clone()).map_err(|e| e.to_string())?,
                )
                .1
                .into_iter()
                .map(|(p, _)| p)
                .collect();
                outs.iter()
                    .zip(&od)
                    .zip(axes)
                    .zip(&names)
                    .map(|(((o, &d), a), path)| match a.0 {
                        Some(a) => {
                            let to = normalize(
                                a,
                                o.rank() + usize::from(d.is_none()),
                                path,
                                "out_axes entry",
                            )?;
                            Ok(batch_at(o, d, n, to))
                        }
                        None if d.is_none() => Ok(o.clone()),
                        None => Err(format!(
                            "out_axes is None for output '{path}', which varies over the batch"
                        )),
                    })
                    .collect::<Result<Vec<Tensor>, String>>()
            });
            let outs = placed.unwrap_or_else(|e| {
                fail(e, &outs);
                outs
            });
            tree::unflatten(&out_def, outs).expect("its own structure")
        })
    }
}

/// The batch dimension of every input leaf, checked: in range, one batch size, and at least
/// one batched leaf.
fn in_dims(
    axes: &Axes,
    def: &TreeDef,
    named: &[(String, Tensor)],
) -> Result<Vec<Option<usize>>, String> {
    let axes = axes.resolve(def).map_err(|e| format!("in_axes: {e}"))?;
    let mut size: Option<(usize, &str)> = None;
    let mut dims = Vec::with_capacity(named.len());
    for ((path, x), a) in named.iter().zip(axes) {
        let d = match a.0 {
            Some(a) => Some(normalize(a, x.rank(), path, "in_axes entry")?),
            None => None,
        };
        if let Some(d) = d {
            let n = x.shape()[d];
            match size {
                Some((m, other)) if m != n => {
                    return Err(format!(
                        "inputs have different batch sizes: {m} (leaf '{other}') and {n} (leaf '{path}')"
                    ))
                }
                _ => size = Some((n, path)),
            }
        }
        dims.push(d);
    }
    if size.is_none() {
        return Err("needs at least one input with a batch axis (in_axes are all None)".into());
    }
    Ok(dims)
}
