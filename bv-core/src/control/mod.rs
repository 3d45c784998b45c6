//! Control flow that stays in the compiled program (`jax.lax.cond`, `switch`, `while_loop`,
//! `fori_loop`, `scan`): bodies are traced once into sub-graphs and lowered to StableHLO
//! `case` and `while` ops with regions. Tensors a body closes over become explicit operands.
//! `cond`, `switch`, `scan` and `fori_loop` are differentiable in both modes; `while_loop` in
//! forward mode only, as in JAX.
//!
//! ```
//! use bv_core::control::scan;
//! use bv_core::{jit, numpy as np, DType, Spec, Tensor};
//! // Cumulative sum of the rows of `xs` by a loop: carry the running sum, emit it per step.
//! let f = jit(|xs: Tensor| {
//!     let init = np::zeros(&[3], DType::F32);
//!     scan(|c: Tensor, x: Tensor| { let s = &c + &x; (s.clone(), s) }, init, xs).1
//! });
//! assert!(f.lower(&Spec::new([5, 3], DType::F32))?.text.contains("stablehlo.while"));
//! # Ok::<(), bv_core::JitError>(())
//! ```

use crate::prim;
use std::cell::RefCell;

use crate::prim::control::{scan_flat, switch_flat, while_flat, Branch};
use crate::trace::{self, CallSite, Tensor};
use crate::tree::{self, Tree, TreeDef};

fn leaves<T: Tree<Leaf = Tensor>>(t: &T) -> (TreeDef, Vec<Tensor>) {
    let (def, l) = tree::flatten(t);
    (def, l.into_iter().map(|(_, x)| x).collect())
}

fn rebuild<T: Tree<Leaf = Tensor>>(
    def: &TreeDef,
    leaves: Vec<Tensor>,
    op: &'static str,
    site: CallSite,
) -> Option<T> {
    match tree::unflatten(def, leaves) {
        Ok(t) => Some(t),
        Err(e) => {
            trace::record(op, format!("{e}"), &[], site);
            None
        }
    }
}

/// Runs `branches[index]` on `operands` inside the program (`jax.lax.switch`); the index is
/// clamped into range. Every branch must return the same structure, shapes and types.
///
/// # Panics
/// If `branches` is empty.
#[track_caller]
pub fn switch<I, O>(index: &Tensor, branches: &[&dyn Fn(I) -> O], operands: I) -> O
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    assert!(!branches.is_empty(), "switch needs at least one branch");
    let site = CallSite::here();
    let (def, mut xs) = leaves(&operands);
    xs.insert(0, index.clone());
    crate::eager::run(xs, |mut xs| {
        let index = xs.remove(0);
        let operands = tree::unflatten(&def, xs).expect("its own structure");
        switch_traced(&index, branches, operands, site)
    })
}

/// [`switch`] inside a trace.
fn switch_traced<I, O>(
    index: &Tensor,
    branches: &[&dyn Fn(I) -> O],
    operands: I,
    site: CallSite,
) -> O
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    let (in_def, ops) = leaves(&operands);
    let out_def: RefCell<Option<TreeDef>> = RefCell::new(None);
    type Flat<'a> = Box<dyn Fn(&[Tensor]) -> Vec<Tensor> + 'a>;
    let wrapped: Vec<Flat> = branches
        .iter()
        .map(|br| {
            let (in_def, out_def) = (&in_def, &out_def);
            Box::new(move |p: &[Tensor]| -> Vec<Tensor> {
                let Some(x) = rebuild::<I>(in_def, p.to_vec(), "switch", site) else {
                    return Vec::new();
                };
                let (d, l) = leaves(&br(x));
                out_def.borrow_mut().get_or_insert(d);
                l
            }) as Flat
        })
        .collect();
    let refs: Vec<Branch<'_>> = wrapped.iter().map(|b| b.as_ref()).collect();
    let outs = switch_flat(index, &refs, &ops);
    drop(refs);
    drop(wrapped);
    let def = out_def.into_inner().unwrap_or(TreeDef::None);
    rebuild(&def, outs, "switch", site).unwrap_or_else(|| branches[0](operands))
}

/// `on_true(operands)` if `pred` (a bool scalar) holds, else `on_false(operands)`, chosen at
/// run time (`jax.lax.cond`).
#[track_caller]
pub fn cond<I, O>(
    pred: &Tensor,
    on_true: impl Fn(I) -> O,
    on_false: impl Fn(I) -> O,
    operands: I,
) -> O
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    switch(pred, &[&on_false, &on_true], operands)
}

/// Repeats `body` while `cond` holds, starting from `init` (`jax.lax.while_loop`). The carry
/// keeps its structure, shapes and types. Forward-mode differentiable only.
#[track_caller]
pub fn while_loop<C>(cond: impl Fn(&C) -> Tensor, body: impl Fn(C) -> C, init: C) -> C
where
    C: Tree<Leaf = Tensor>,
{
    let site = CallSite::here();
    let (def, xs) = leaves(&init);
    crate::eager::run(xs, |xs| {
        let init = tree::unflatten(&def, xs).expect("its own structure");
        while_traced(cond, body, init, site)
    })
}

/// [`while_loop`] inside a trace.
fn while_traced<C>(cond: impl Fn(&C) -> Tensor, body: impl Fn(C) -> C, init: C, site: CallSite) -> C
where
    C: Tree<Leaf = Tensor>,
{
    let (def, xs) = leaves(&init);
    let out = while_flat(
        &|s: &[Tensor]| match rebuild::<C>(&def, s.to_vec(), "while_loop", site) {
            Some(c) => cond(&c),
            None => prim::scalar(false),
        },
        &|s: &[Tensor]| match rebuild::<C>(&def, s.to_vec(), "while_loop", site) {
            Some(c) => leaves(&body(c)).1,
            None => s.to_vec(),
        },
        &xs,
    );
    rebuild(&def, out, "while_loop", site).unwrap_or(init)
}

/// `body(i, carry)` for `i` in `lower..upper` (`jax.lax.fori_loop` with static bounds,
/// which is a scan and so differentiable in both modes). `i` is an `i32` scalar.
#[track_caller]
pub fn fori_loop<C>(lower: usize, upper: usize, body: impl Fn(&Tensor, C) -> C, init: C) -> C
where
    C: Tree<Leaf = Tensor>,
{
    let site = CallSite::here();
    let (def, xs) = leaves(&init);
    crate::eager::run(xs, |xs| {
        let init = tree::unflatten(&def, xs).expect("its own structure");
        fori_traced(lower, upper, body, init, site)
    })
}

/// [`fori_loop`] inside a trace.
fn fori_traced<C>(
    lower: usize,
    upper: usize,
    body: impl Fn(&Tensor, C) -> C,
    init: C,
    site: CallSite,
) -> C
where
    C: Tree<Leaf = Tensor>,
{
    let (def, xs) = leaves(&init);
    let mut state = vec![prim::scalar(lower as i32)];
    state.extend(xs);
    let (out, _) = scan_flat(
        &|c: &[Tensor], _: &[Tensor]| {
            let next_i = prim::add(&c[0], &prim::scalar(1i32));
            let mut next = vec![next_i];
            match rebuild::<C>(&def, c[1..].to_vec(), "fori_loop", site) {
                Some(carry) => next.extend(leaves(&body(&c[0], carry)).1),
                None => next.extend(c[1..].iter().cloned()),
            }
            (next, Vec::new())
        },
        &state,
        &[],
        upper.saturating_sub(lower),
        false,
    );
    rebuild(&def, out[1..].to_vec(), "fori_loop", site).unwrap_or(init)
}

/// `jax.lax.scan`: applies `f(carry, x) -> (carry, y)` to the slices of `xs` along their
/// leading axis in order; returns the final carry and the `y`s stacked along a new leading
/// axis. Differentiable in both modes; the backward pass recomputes the forward steps.
/// [`scan_with`] takes JAX's keywords (`length`, `reverse`).
#[track_caller]
pub fn scan<C, X, Y>(f: impl Fn(C, X) -> (C, Y), init: C, xs: X) -> (C, Y)
where
    C: Tree<Leaf = Tensor>,
    X: Tree<Leaf = Tensor>,
    Y: Tree<Leaf = Tensor>,
{
    scan_with(f, init, xs, ScanOptions::default())
}

/// The keywords of `jax.lax.scan` that [`scan_with`] takes (`unroll` is not offered: the
/// loop is one `stablehlo.while` step per slice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// The number of steps; needed only when `xs` has no leaves (else their leading size,
    /// which it must equal).
    pub length: Option<usize>,
    /// Visit the slices from last to first (the `y`s still stack in `xs`'s order).
    pub reverse: bool,
}

/// [`scan`] with [`ScanOptions`].
#[track_caller]
pub fn scan_with<C, X, Y>(f: impl Fn(C, X) -> (C, Y), init: C, xs: X, opts: ScanOptions) -> (C, Y)
where
    C: Tree<Leaf = Tensor>,
    X: Tree<Leaf = Tensor>,
    Y: Tree<Leaf = Tensor>,
{
    let ScanOptions { length, reverse } = opts;
    let site = CallSite::here();
    let (cdef, mut args) = leaves(&init);
    let (xdef, x0) = leaves(&xs);
    let n = args.len();
    args.extend(x0);
    crate::eager::run(args, |mut args| {
        let x0 = args.split_off(n.min(args.len()));
        let init = tree::unflatten(&cdef, args).expect("its own structure");
        let xs = tree::unflatten(&xdef, x0).expect("its own structure");
        scan_traced(f, init, xs, length, reverse, site)
    })
}

/// [`scan`] inside a trace.
fn scan_traced<C, X, Y>(
    f: impl Fn(C, X) -> (C, Y),
    init: C,
    xs: X,
    length: Option<usize>,
    reverse: bool,
    site: CallSite,
) -> (C, Y)
where
    C: Tree<Leaf = Tensor>,
    X: Tree<Leaf = Tensor>,
    Y: Tree<Leaf = Tensor>,
{
    let (cdef, c0) = leaves(&init);
    let (xdef, x0) = leaves(&xs);
    let length = length
        .or_else(|| x0.first().and_then(|x| x.shape().first().copied()))
        .unwrap_or(0);
    let ydef: RefCell<Option<TreeDef>> = RefCell::new(None);
    let (c, ys) = scan_flat(
        &|c: &[Tensor], x: &[Tensor]| {
            let carry = rebuild::<C>(&cdef, c.to_vec(), "scan", site);
            let xt = rebuild::<X>(&xdef, x.to_vec(), "scan", site);
            let (Some(carry), Some(xt)) = (carry, xt) else {
                return (c.to_vec(), Vec::new());
            };
            let (nc, y) = f(carry, xt);
            let (d, yl) = leaves(&y);
            ydef.borrow_mut().get_or_insert(d);
            (leaves(&nc).1, yl)
        },
        &c0,
        &x0,
        length,
        reverse,
    );
    let c: C = match rebuild(&cdef, c, "scan", site) {
        Some(c) => c,
        None => return f(init, unstacked(xs)),
    };
    let yd = ydef.into_inner().unwrap_or(TreeDef::None);
    match rebuild(&yd, ys, "scan", site) {
        Some(y) => (c, y),
        None => (c, f(init, unstacked(xs)).1),
    }
}

/// The first slice of every leaf (used only to give a value after an error was recorded).
fn unstacked<X: Tree<Leaf = Tensor>>(xs: X) -> X {
    let (def, l) = leaves(&xs);
    let sl: Vec<Tensor> = l
        .iter()
        .map(|x| match x.shape().split_first() {
            Some((_, rest)) if x.shape()[0] > 0 => {
                let mut lim = x.shape().to_vec();
                lim[0] = 1;
                let s = prim::slice(x, &vec![0; x.rank()], &lim);
                prim::reshape(&s, rest)
            }
            _ => x.clone(),
        })
        .collect();
    tree::unflatten(&def, sl).unwrap_or(xs)
}
