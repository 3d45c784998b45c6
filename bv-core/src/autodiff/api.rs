//! The user-facing transformations: `vjp`, `grad`, `value_and_grad` (with auxiliary
//! outputs) and `jvp`, over trees of tensors. Applied to concrete tensors outside any
//! trace, they trace the function and run the derivative op by op ([`crate::eager`]).

use std::rc::Rc;

use crate::autodiff::{backprop, forward};
use crate::eager;
use crate::trace::{self, replay, CallSite, Concrete, Func, Tensor, TraceError};
use crate::trace::{fill, fresh, zeros_like};
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
    /// For a function applied eagerly: its graph, which each pullback differentiates.
    staged: Option<Result<Rc<Staged>, TraceError>>,
    _types: std::marker::PhantomData<fn(O) -> I>,
}

/// A function applied to concrete tensors, traced: its graph, whose parameters are the
/// primals and then the concrete tensors it closes over (`consts`).
struct Staged {
    func: Func,
    consts: Vec<Tensor>,
}

impl<I: Tree<Leaf = Tensor>, O: Tree<Leaf = Tensor>> Vjp<I, O> {
    /// The input cotangents for output cotangents `ct` (same structure and shapes as the
    /// outputs). Inputs that are not floating point get zeros of their own type, as JAX's
    /// `float0` cotangents.
    pub fn pullback(&self, ct: &O) -> I {
        let (_, cts) = leaves(ct);
        match &self.staged {
            Some(Ok(staged)) => {
                let n = self.seeds.len();
                let mut args = self.seeds.clone();
                args.extend(cts);
                let staged = staged.clone();
                let res: Vec<Tensor> = eager::run(args, move |mut xs| {
                    let cts = xs.split_off(n);
                    let (_, pb) = vjp(|xs: Vec<Tensor>| staged.apply(xs), &xs);
                    pb.pullback(&cts)
                });
                return rebuild(&self.in_def, res);
            }
            Some(Err(e)) => return rebuild(&self.in_def, errors(&self.seeds, e)),
            None => {}
        }
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

impl Staged {
    /// The function's outputs at `xs`, recorded again in the current trace.
    #[track_caller]
    fn apply(&self, mut xs: Vec<Tensor>) -> Vec<Tensor> {
        xs.extend(self.consts.iter().cloned());
        replay(&self.func, &xs)
    }
}

/// Concrete tensors holding `e`, shaped like `like`.
fn errors(like: &[Tensor], e: &TraceError) -> Vec<Tensor> {
    like.iter()
        .map(|t| Tensor::concrete(t.aval().clone(), Concrete::Error(e.clone())))
        .collect()
}

/// Evaluates `f` at `primals` and returns its outputs with the pullback (JAX's `jax.vjp`).
/// On concrete primals outside any trace, `f` is traced once and run now; each pullback
/// runs its derivative (recomputing the forward pass, op by op).
#[track_caller]
pub fn vjp<I, O>(f: impl FnOnce(I) -> O, primals: &I) -> (O, Vjp<I, O>)
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    let site = CallSite::here();
    let (in_def, xs) = leaves(primals);
    if !trace::is_tracing() {
        return eager_vjp(f, in_def, xs, site);
    }
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
        staged: None,
        _types: std::marker::PhantomData,
    };
    (out, pullback)
}

/// [`vjp`] on concrete primals: `f` traced into a graph, run now on the primals.
fn eager_vjp<I, O>(
    f: impl FnOnce(I) -> O,
    in_def: TreeDef,
    xs: Vec<Tensor>,
    site: CallSite,
) -> (O, Vjp<I, O>)
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    let avals: Vec<crate::Aval> = xs.iter().map(|t| t.aval().clone()).collect();
    let ((out_def, outs), tr) = trace::trace(&avals, |p| {
        let (def, outs) = leaves(&f(rebuild(&in_def, p)));
        // Fresh values, so outputs that are inputs or closed-over tensors are in the graph.
        (def, fresh(&outs))
    });
    let input_error = xs.iter().find_map(|t| t.error().cloned());
    let ids: Result<Vec<usize>, TraceError> = outs.iter().map(|t| tr.value_of(t, "")).collect();
    let staged = match (input_error.or_else(|| tr.error.clone()), ids) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(outputs)) => Ok(Rc::new(Staged {
            consts: tr.constants(),
            func: Func {
                graph: tr.graph,
                outputs,
            },
        })),
    };
    let values = match &staged {
        Ok(s) => s.apply(xs.clone()),
        Err(e) => errors(&outs, e),
    };
    let pullback = Vjp {
        start: 0,
        seeds: xs,
        in_def,
        outs: values.clone(),
        site,
        staged: Some(staged),
        _types: std::marker::PhantomData,
    };
    (rebuild(&out_def, values), pullback)
}

/// The auxiliary output of a [`value_and_grad_aux`] function: a tree of tensors, or `()`.
pub trait Aux: Sized {
    /// The tensors, in order.
    fn aux_leaves(&self) -> Vec<Tensor>;
    /// The same structure holding `leaves` instead.
    fn with_leaves(&self, leaves: Vec<Tensor>) -> Self;
}

impl<T: Tree<Leaf = Tensor>> Aux for T {
    fn aux_leaves(&self) -> Vec<Tensor> {
        leaves(self).1
    }
    fn with_leaves(&self, l: Vec<Tensor>) -> Self {
        rebuild(&tree::flatten(self).0, l)
    }
}

impl Aux for () {
    fn aux_leaves(&self) -> Vec<Tensor> {
        Vec::new()
    }
    fn with_leaves(&self, _: Vec<Tensor>) -> Self {}
}

/// `value_and_grad` with an auxiliary output: `f` returns `(loss, aux)`; the result maps
/// inputs to `((loss, aux), gradient)`. `loss` must be a floating-point scalar.
#[track_caller]
pub fn value_and_grad_aux<I, A>(f: impl Fn(I) -> (Tensor, A)) -> impl Fn(&I) -> ((Tensor, A), I)
where
    I: Tree<Leaf = Tensor>,
    A: Aux,
{
    let site = CallSite::here();
    move |x: &I| {
        let (def, xs) = leaves(x);
        let mut aux = None;
        let (loss, g, aux_leaves) = eager::run(xs, |xs| {
            let mut aux_leaves = Vec::new();
            let (loss, pb) = vjp(
                |x: I| {
                    let (l, a) = f(x);
                    aux_leaves = a.aux_leaves();
                    aux = Some(a);
                    l
                },
                &rebuild::<I>(&def, xs),
            );
            if loss.rank() != 0 || !loss.dtype().is_float() {
                let reason = format!(
                    "grad needs a floating-point scalar output, got {}; reduce it (e.g. with sum or mean) first",
                    loss.aval()
                );
                trace::record("grad", reason, &[loss.aval()], site);
            }
            let g = pb.pullback(&fill(loss.aval(), 1.0));
            (loss, g, aux_leaves)
        });
        match aux {
            Some(a) => {
                let a = a.with_leaves(aux_leaves);
                ((loss, a), g)
            }
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
///
/// ```
/// use bv_core::prelude::*;
/// // d/dx sum(sin x) = cos x, here on concrete tensors (eager); inside `jit` the same.
/// let x = [0.0f32, 0.5, 1.0];
/// let g = grad(|x: Tensor| np::sin(&x).sum(Axes::All))(&Tensor::from_slice(&x, &[3]));
/// for (g, x) in g.to_vec::<f32>()?.iter().zip(x) {
///     assert!((*g as f64 - (x as f64).cos()).abs() < 1e-6);
/// }
/// # Ok::<(), bv_core::EagerError>(())
/// ```
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
    let (in_def, mut xs) = leaves(primals);
    let (t_def, ts) = leaves(tangents);
    let n = xs.len();
    xs.extend(ts);
    eager::run(xs, move |mut xs| {
        let ts = xs.split_off(n.min(xs.len()));
        jvp_traced(f, &in_def, xs, &t_def, ts, site)
    })
}

/// [`jvp`] inside a trace.
fn jvp_traced<I, O>(
    f: impl FnOnce(I) -> O,
    in_def: &TreeDef,
    xs: Vec<Tensor>,
    t_def: &TreeDef,
    ts: Vec<Tensor>,
    site: CallSite,
) -> (O, O)
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    if t_def != in_def {
        let reason = format!("tangents of structure {t_def:?} do not match primals {in_def:?}");
        let avals: Vec<&crate::Aval> = xs.iter().map(|x| x.aval()).collect();
        trace::record("jvp", reason, &avals, site);
    }
    for (x, t) in xs.iter().zip(&ts) {
        if x.shape() != t.shape() || x.dtype() != t.dtype() {
            let reason = format!("tangent {} does not match primal {}", t.aval(), x.aval());
            trace::record("jvp", reason, &[x.aval(), t.aval()], site);
        }
    }
    let start = trace::node_count(xs.first());
    let seeds = fresh(&xs);
    let out = f(rebuild(in_def, seeds.clone()));
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
