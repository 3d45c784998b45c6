//! The user-facing transformations: `vjp`, `grad`, `value_and_grad` (with auxiliary
//! outputs) and `jvp`, over trees of tensors.

use crate::autodiff::{backprop, fill, forward, fresh, zeros_like};
use crate::trace::{self, CallSite, Tensor};
use crate::tree::{self, Tree, TreeDef};

fn rebuild<T: Tree<Leaf = Tensor>>(def: &TreeDef, leaves: Vec<Tensor>) -> T {
    // `def` always comes from flattening a value of type `T`, so the leaves fit.
    tree::unflatten(def, leaves).expect("a structure rebuilt from its own flattening")
}

fn leaves<T: Tree<Leaf = Tensor>>(t: &T) -> (TreeDef, Vec<Tensor>) {
    let (def, l) = tree::flatten(t);
    (def, l.into_iter().map(|(_, x)| x).collect())
}

/// The pullback of a function at a point, from [`vjp`]: maps output cotangents to input
/// cotangents. It can be applied several times (each application records a backward pass).
pub struct Vjp<I, O> {
    start: usize,
    seeds: Vec<Tensor>,
    in_def: TreeDef,
    outs: Vec<Tensor>,
    site: CallSite,
    _types: std::marker::PhantomData<fn(O) -> I>,
}

impl<I: Tree<Leaf = Tensor>, O: Tree<Leaf = Tensor>> Vjp<I, O> {
    /// The input cotangents for output cotangents `ct` (same structure and shapes as the
    /// outputs). Inputs that are not floating point get zeros of their own type, as JAX's
    /// `float0` cotangents.
    pub fn pullback(&self, ct: &O) -> I {
        let (_, cts) = leaves(ct);
        for (o, c) in self.outs.iter().zip(&cts) {
            if o.shape() != c.shape() || o.dtype() != c.dtype() {
                let reason = format!("cotangent {} does not match output {}", c.aval(), o.aval());
                trace::record("vjp", reason, &[o.aval(), c.aval()], self.site);
            }
        }
        let cts: Vec<Option<Tensor>> = cts.into_iter().map(Some).collect();
        let res = backprop(self.start, &self.seeds, &self.outs, &cts);
        let res = res
            .into_iter()
            .zip(&self.seeds)
            .map(|(r, s)| r.unwrap_or_else(|| zeros_like(s)))
            .collect();
        rebuild(&self.in_def, res)
    }
}

/// Evaluates `f` at `primals` and returns its outputs with the pullback (JAX's `jax.vjp`).
#[track_caller]
pub fn vjp<I, O>(f: impl FnOnce(I) -> O, primals: &I) -> (O, Vjp<I, O>)
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    let site = CallSite::here();
    let (in_def, xs) = leaves(primals);
    let start = trace::node_count(xs.first());
    let seeds = fresh(&xs);
    let out = f(rebuild(&in_def, seeds.clone()));
    let (_, outs) = leaves(&out);
    let pullback = Vjp {
        start,
        seeds,
        in_def,
        outs,
        site,
        _types: std::marker::PhantomData,
    };
    (out, pullback)
}

/// `value_and_grad` with an auxiliary output: `f` returns `(loss, aux)`; the result maps
/// inputs to `((loss, aux), gradient)`. `loss` must be a floating-point scalar.
#[track_caller]
pub fn value_and_grad_aux<I, A>(f: impl Fn(I) -> (Tensor, A)) -> impl Fn(&I) -> ((Tensor, A), I)
where
    I: Tree<Leaf = Tensor>,
{
    let site = CallSite::here();
    move |x: &I| {
        let mut aux = None;
        let (loss, pb) = vjp(
            |x: I| {
                let (l, a) = f(x);
                aux = Some(a);
                l
            },
            x,
        );
        if loss.rank() != 0 || !loss.dtype().is_float() {
            let reason = format!(
                "grad needs a floating-point scalar output, got {}; reduce it (e.g. with sum or mean) first",
                loss.aval()
            );
            trace::record("grad", reason, &[loss.aval()], site);
        }
        let g = pb.pullback(&fill(loss.aval(), 1.0));
        match aux {
            Some(a) => ((loss, a), g),
            None => unreachable!("the function passed to vjp runs before it returns"),
        }
    }
}

/// The value and gradient of a scalar function (`jax.value_and_grad`).
#[track_caller]
pub fn value_and_grad<I>(f: impl Fn(I) -> Tensor) -> impl Fn(&I) -> (Tensor, I)
where
    I: Tree<Leaf = Tensor>,
{
    let g = value_and_grad_aux(move |x| (f(x), ()));
    move |x: &I| {
        let ((v, ()), d) = g(x);
        (v, d)
    }
}

/// The gradient of a scalar function (`jax.grad`); `grad(grad(f))` works.
#[track_caller]
pub fn grad<I>(f: impl Fn(I) -> Tensor) -> impl Fn(&I) -> I
where
    I: Tree<Leaf = Tensor>,
{
    let g = value_and_grad(f);
    move |x: &I| g(x).1
}

/// Forward mode (`jax.jvp`): `f`'s outputs at `primals` and their directional derivatives
/// along `tangents` (same structure and shapes as `primals`).
#[track_caller]
pub fn jvp<I, O>(f: impl FnOnce(I) -> O, primals: &I, tangents: &I) -> (O, O)
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    let site = CallSite::here();
    let (in_def, xs) = leaves(primals);
    let (_, ts) = leaves(tangents);
    for (x, t) in xs.iter().zip(&ts) {
        if x.shape() != t.shape() || x.dtype() != t.dtype() {
            let reason = format!("tangent {} does not match primal {}", t.aval(), x.aval());
            trace::record("jvp", reason, &[x.aval(), t.aval()], site);
        }
    }
    let start = trace::node_count(xs.first());
    let seeds = fresh(&xs);
    let out = f(rebuild(&in_def, seeds.clone()));
    let (out_def, outs) = leaves(&out);
    let ts: Vec<Option<Tensor>> = ts.into_iter().map(Some).collect();
    let tout = forward(start, &seeds, &ts, &outs);
    let tout = tout
        .into_iter()
        .zip(&outs)
        .map(|(t, o)| t.unwrap_or_else(|| zeros_like(o)))
        .collect();
    (out, rebuild(&out_def, tout))
}
