//! Primitives that steer differentiation: `stop_gradient`, `optimization_barrier`,
//! `checkpoint` (remat), `custom_vjp` and `custom_jvp`.

use std::fmt;
use std::rc::Rc;

use crate::autodiff::{backprop, differentiable};
use crate::batching as b;
use crate::emit::EmitCx;
use crate::trace::{self, bind, bind_rc, replay, trace_call, Aval, Func, OpError, Tensor};
use crate::trace::{fresh, zeros_like, Identity};
use crate::trace::{BatchResult, Primitive, VjpResult};
use crate::tree::{self, Tree, TreeDef};

/// Blocks derivatives: the value passes through, its cotangent and tangent are zero
/// (`lax.stop_gradient`).
#[derive(Debug)]
struct StopGradient(Identity);

impl Primitive for StopGradient {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        Ok((ins.iter().map(stop_gradient).collect(), dims.to_vec()))
    }

    fn name(&self) -> &'static str {
        "stop_gradient"
    }
    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        self.0.infer(ins)
    }
    fn emit(&self, _: &EmitCx) -> String {
        String::new()
    }
    fn vjp(&self, ins: &[Tensor], _: &[Tensor], _: &[Option<Tensor>]) -> VjpResult {
        Ok(vec![None; ins.len()])
    }
    fn jvp(&self, ins: &[Tensor], _: &[Tensor], _: &[Option<Tensor>]) -> Option<VjpResult> {
        Some(Ok(vec![None; ins.len()]))
    }
    fn inline(&self) -> Option<&Func> {
        self.0.inline()
    }
}

/// `x` with zero derivative (`jax.lax.stop_gradient`).
#[track_caller]
pub fn stop_gradient(x: &Tensor) -> Tensor {
    let mut outs = bind(StopGradient(Identity::new(&[x.aval().clone()])), &[x]);
    outs.swap_remove(0)
}

/// Passes values through a point XLA may not move computation across
/// (`stablehlo.optimization_barrier`).
#[derive(Debug)]
struct Barrier(usize);

impl Primitive for Barrier {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        Ok((optimization_barrier(ins), dims.to_vec()))
    }

    fn name(&self) -> &'static str {
        "optimization_barrier"
    }
    fn num_outputs(&self) -> usize {
        self.0
    }
    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        Ok(ins.iter().map(|a| (*a).clone()).collect())
    }
    fn emit(&self, cx: &EmitCx) -> String {
        let tys: Vec<String> = cx.ins.iter().map(|o| crate::emit::ty(o.aval)).collect();
        format!(
            "stablehlo.optimization_barrier {} : {}",
            cx.names(),
            tys.join(", ")
        )
    }
    fn vjp(&self, _: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        Ok(cts.to_vec())
    }
}

/// The values of `xs` behind an optimization barrier: XLA computes them before anything that
/// uses the results and cannot merge work across it.
#[track_caller]
pub fn optimization_barrier(xs: &[Tensor]) -> Vec<Tensor> {
    if xs.is_empty() {
        return Vec::new();
    }
    let refs: Vec<&Tensor> = xs.iter().collect();
    bind(Barrier(xs.len()), &refs)
}

/// What `checkpoint` may keep from the forward pass for the backward pass (big_vision's
/// `jax.checkpoint_policies`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RematPolicy {
    /// Keep nothing: recompute the whole function in the backward pass.
    NothingSaveable,
    /// Keep everything (no rematerialization).
    EverythingSaveable,
}

/// A function whose forward pass is recomputed in the backward pass.
#[derive(Debug)]
struct Remat {
    func: Func,
}

impl Primitive for Remat {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let avals: Vec<Aval> = ins.iter().map(|x| x.aval().clone()).collect();
        let func = b::batch_body(&self.func, &avals, dims, n)?;
        let refs: Vec<&Tensor> = ins.iter().collect();
        let outs = bind_rc(Rc::new(Remat { func }), &refs);
        let d = vec![Some(0); outs.len()];
        Ok((outs, d))
    }

    fn name(&self) -> &'static str {
        "checkpoint"
    }
    fn num_outputs(&self) -> usize {
        self.func.outputs.len()
    }
    fn infer(&self, _: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        Ok(self.func.out_avals())
    }
    fn emit(&self, _: &EmitCx) -> String {
        String::new()
    }
    fn inline(&self) -> Option<&Func> {
        Some(&self.func)
    }
    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        // The barrier ties the recomputation to the cotangents, so it runs in the backward
        // pass and XLA cannot reuse the forward pass's values.
        let given: Vec<Tensor> = cts.iter().flatten().cloned().collect();
        let mut both = ins.to_vec();
        both.extend(given);
        let held = optimization_barrier(&both);
        let start = trace::node_count(held.first());
        let seeds = fresh(&held[..ins.len()]);
        let outs = replay(&self.func, &seeds);
        Ok(backprop(start, &seeds, &outs, cts))
    }
}

/// Flattens a tree into its structure and leaves.
fn leaves<T: Tree<Leaf = Tensor>>(t: &T) -> (TreeDef, Vec<Tensor>) {
    let (def, l) = tree::flatten(t);
    (def, l.into_iter().map(|(_, x)| x).collect())
}

/// Traces `f` as a body on fresh parameters shaped like `xs`; returns the body, the outer
/// tensors it captured and the output structure.
fn trace_tree<I, O>(
    f: impl FnOnce(I) -> O,
    def: &TreeDef,
    xs: &[Tensor],
) -> (Func, Vec<Tensor>, Option<TreeDef>)
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    let avals: Vec<Aval> = xs.iter().map(|x| x.aval().clone()).collect();
    let mut out_def = None;
    let body = trace_call(&avals, |params| {
        let Ok(input) = tree::unflatten::<I>(def, params.to_vec()) else {
            return Vec::new();
        };
        let (d, outs) = leaves(&f(input));
        out_def = Some(d);
        outs
    });
    let out_def = out_def.filter(|_| body.foreign.is_none());
    (body.func, body.captures, out_def)
}

/// `jax.checkpoint` (remat): `f`, whose intermediate values are recomputed in the backward
/// pass instead of kept, under [`RematPolicy::NothingSaveable`]. Trades compute for memory.
#[track_caller]
pub fn checkpoint<I, O>(f: impl Fn(I) -> O, policy: RematPolicy) -> impl Fn(I) -> O
where
    I: Tree<Leaf = Tensor>,
    O: Tree<Leaf = Tensor>,
{
    let site = trace::CallSite::here();
    move |x: I| {
        let (def, xs) = leaves(&x);
        crate::eager::run(xs, |xs| {
            let x: I = tree::unflatten(&def, xs).expect("its own structure");
            if policy == RematPolicy::EverythingSaveable {
                return f(x);
            }
            let (def, xs) = leaves(&x);
            let (func, caps, out_def) = trace_tree(&f, &def, &xs);
            let Some(out_def) = out_def else {
                foreign_output("checkpoint", "the function", site);
                return f(x);
            };
            let mut args = xs;
            args.extend(caps);
            let refs: Vec<&Tensor> = args.iter().collect();
            let outs = bind_rc(Rc::new(Remat { func }), &refs);
            tree::unflatten(&out_def, outs).expect("outputs of the traced function's own structure")
        })
    }
}

type Bwd = dyn Fn(&[Tensor], &[Tensor]) -> Vec<Tensor>;

/// A function with a user-written reverse-mode rule.
struct CustomVjp {
    func: Func,
    n_out: usize,
    n_in: usize,
    bwd: Rc<Bwd>,
}

impl fmt::Debug for CustomVjp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomVjp({} outputs)", self.n_out)
    }
}

impl Primitive for CustomVjp {
    /// JAX's rule: the forward function and the backward rule are both batched, with every
    /// operand, residual and cotangent batched in front.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let args = b::all_front(ins, dims);
        let avals: Vec<Aval> = args.iter().map(|x| x.aval().clone()).collect();
        let front = vec![Some(0); args.len()];
        let func = b::batch_body(&self.func, &avals, &front, n)?;
        let bwd = self.bwd.clone();
        let rule = move |res: &[Tensor], cts: &[Tensor]| -> Vec<Tensor> {
            let k = res.len();
            let mut all = res.to_vec();
            all.extend(cts.iter().cloned());
            let d = vec![Some(0); all.len()];
            b::vmap_front(&|p: &[Tensor]| bwd(&p[..k], &p[k..]), &all, &d)
        };
        let prim = CustomVjp {
            func,
            n_out: self.n_out,
            n_in: self.n_in,
            bwd: Rc::new(rule),
        };
        let refs: Vec<&Tensor> = args.iter().collect();
        let outs = bind_rc(Rc::new(prim), &refs);
        let d = vec![Some(0); outs.len()];
        Ok((outs, d))
    }

    fn name(&self) -> &'static str {
        "custom_vjp"
    }
    fn num_outputs(&self) -> usize {
        self.func.outputs.len()
    }
    fn infer(&self, _: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        Ok(self.func.out_avals())
    }
    fn emit(&self, _: &EmitCx) -> String {
        String::new()
    }
    fn inline(&self) -> Option<&Func> {
        Some(&self.func)
    }
    fn vjp(&self, ins: &[Tensor], outs: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let cts: Vec<Tensor> = outs[..self.n_out]
            .iter()
            .zip(cts)
            .map(|(o, c)| c.clone().unwrap_or_else(|| zeros_like(o)))
            .collect();
        let res = (self.bwd)(&outs[self.n_out..], &cts);
        if res.len() != self.n_in {
            return Err(OpError(format!(
                "the backward rule returned {} cotangents for {} inputs",
                res.len(),
                self.n_in
            )));
        }
        let mut out: Vec<Option<Tensor>> = Vec::with_capacity(ins.len());
        for (x, r) in ins.iter().zip(res) {
            if r.shape() != x.shape() || r.dtype() != x.dtype() {
                return Err(OpError(format!(
                    "the backward rule returned a cotangent {} for an input {}",
                    r.aval(),
                    x.aval()
                )));
            }
            out.push(differentiable(x.aval()).then_some(r));
        }
        out.resize(ins.len(), None);
        Ok(out)
    }
}

/// `jax.custom_vjp`: a function given by its forward pass `fwd`, which returns the outputs
/// and residuals, and its backward rule `bwd`, which maps the residuals and the output
/// cotangents to the input cotangents (linearly in the cotangents). Tensors that `fwd`
/// closes over get no derivative.
#[track_caller]
pub fn custom_vjp<I, O, R>(
    fwd: impl Fn(I) -> (O, R),
    bwd: impl Fn(&R, &O) -> I + 'static,
) -> impl Fn(I) -> O
where
    I: Tree<Leaf = Tensor> + 'static,
    O: Tree<Leaf = Tensor> + 'static,
    R: Tree<Leaf = Tensor> + 'static,
{
    let site = trace::CallSite::here();
    let bwd = Rc::new(bwd);
    move |x: I| {
        let (def, xs) = leaves(&x);
        crate::eager::run(xs, |xs| {
            let x: I = tree::unflatten(&def, xs).expect("its own structure");
            let (def, xs) = leaves(&x);
            let mut res_def = None;
            let (func, caps, out_def) = trace_tree(
                |x: I| {
                    let (o, r) = fwd(x);
                    let (od, mut ol) = leaves(&o);
                    let (rd, rl) = leaves(&r);
                    res_def = Some((od, rd, ol.len()));
                    ol.extend(rl);
                    ol
                },
                &def,
                &xs,
            );
            let (Some(_), Some((od, rd, n_out))) = (out_def, res_def) else {
                foreign_output("custom_vjp", "the forward function", site);
                return fwd(x).0;
            };
            let bwd = bwd.clone();
            let (od2, rd2) = (od.clone(), rd.clone());
            let rule = move |res: &[Tensor], cts: &[Tensor]| -> Vec<Tensor> {
                let r: R = tree::unflatten(&rd2, res.to_vec()).expect("residual structure");
                let c: O = tree::unflatten(&od2, cts.to_vec()).expect("output structure");
                leaves(&bwd(&r, &c)).1
            };
            let n_in = xs.len();
            let mut args = xs;
            args.extend(caps);
            let refs: Vec<&Tensor> = args.iter().collect();
            let prim = CustomVjp {
                func,
                n_out,
                n_in,
                bwd: Rc::new(rule),
            };
            let mut outs = bind_rc(Rc::new(prim), &refs);
            outs.truncate(n_out);
            tree::unflatten(&od, outs).expect("outputs of the forward function's own structure")
        })
    }
}

type JvpRule = dyn Fn(&[Tensor], &[Tensor], &[Tensor]) -> Vec<Tensor>;

/// A function with a user-written forward-mode rule.
struct CustomJvp {
    func: Func,
    n_in: usize,
    rule: Rc<JvpRule>,
}

impl fmt::Debug for CustomJvp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomJvp({} outputs)", self.func.outputs.len())
    }
}

impl CustomJvp {
    /// The outputs' tangents from the rule, for tangents `ts` of the first `n_in` operands.
    fn tangents(&self, ins: &[Tensor], outs: &[Tensor], ts: &[Tensor]) -> VjpResult {
        let res = (self.rule)(&ins[..self.n_in], outs, ts);
        if res.len() != outs.len() {
            return Err(OpError(format!(
                "the jvp rule returned {} tangents for {} outputs",
                res.len(),
                outs.len()
            )));
        }
        let mut out = Vec::with_capacity(res.len());
        for (y, t) in outs.iter().zip(res) {
            if t.shape() != y.shape() || t.dtype() != y.dtype() {
                return Err(OpError(format!(
                    "the jvp rule returned a tangent {} for an output {}",
                    t.aval(),
                    y.aval()
                )));
            }
            out.push(differentiable(y.aval()).then_some(t));
        }
        Ok(out)
    }
}

impl Primitive for CustomJvp {
    /// JAX's rule: the function and the jvp rule are both batched, with every operand,
    /// output and tangent batched in front.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let args = b::all_front(ins, dims);
        let avals: Vec<Aval> = args.iter().map(|x| x.aval().clone()).collect();
        let front = vec![Some(0); args.len()];
        let func = b::batch_body(&self.func, &avals, &front, n)?;
        let inner = self.rule.clone();
        let rule = move |xs: &[Tensor], ys: &[Tensor], ts: &[Tensor]| -> Vec<Tensor> {
            let (k, m) = (xs.len(), ys.len());
            let mut all = xs.to_vec();
            all.extend(ys.iter().cloned());
            all.extend(ts.iter().cloned());
            let d = vec![Some(0); all.len()];
            b::vmap_front(
                &|p: &[Tensor]| inner(&p[..k], &p[k..k + m], &p[k + m..]),
                &all,
                &d,
            )
        };
        let prim = CustomJvp {
            func,
            n_in: self.n_in,
            rule: Rc::new(rule),
        };
        let refs: Vec<&Tensor> = args.iter().collect();
        let outs = bind_rc(Rc::new(prim), &refs);
        let d = vec![Some(0); outs.len()];
        Ok((outs, d))
    }

    fn name(&self) -> &'static str {
        "custom_jvp"
    }
    fn num_outputs(&self) -> usize {
        self.func.outputs.len()
    }
    fn infer(&self, _: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        Ok(self.func.out_avals())
    }
    fn emit(&self, _: &EmitCx) -> String {
        String::new()
    }
    fn inline(&self) -> Option<&Func> {
        Some(&self.func)
    }
    fn jvp(&self, ins: &[Tensor], outs: &[Tensor], t: &[Option<Tensor>]) -> Option<VjpResult> {
        let ts: Vec<Tensor> = ins[..self.n_in]
            .iter()
            .zip(t)
            .map(|(x, t)| t.clone().unwrap_or_else(|| zeros_like(x)))
            .collect();
        Some(self.tangents(ins, outs, &ts))
    }
    /// The rule is linear in the tangents, so its transpose is a reverse pass through it
    /// from fresh tangent placeholders (JAX linearizes and transposes the same way).
    fn vjp(&self, ins: &[Tensor], outs: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let start = trace::node_count(ins.first());
        let placeholders: Vec<Tensor> = ins[..self.n_in].iter().map(zeros_like).collect();
        let us = fresh(&placeholders);
        let touts = self.tangents(ins, outs, &us)?;
        let (lin_outs, lin_cts): (Vec<Tensor>, Vec<Option<Tensor>>) = touts
            .into_iter()
            .zip(cts)
            .filter_map(|(t, c)| Some((t?, c.clone())))
            .unzip();
        let mut res = backprop(start, &us, &lin_outs, &lin_cts);
        res.resize(ins.len(), None);
        Ok(res)
    }
}

/// `jax.custom_jvp`: the function `f` with the forward-mode rule `jvp(primals, outputs,
/// tangents) -> output tangents`, which must be linear in the tangents; reverse mode
/// transposes it. Tangents of integer and bool inputs are zeros. Tensors that `f` closes
/// over get no derivative.
///
/// ```
/// use bv_core::autodiff::{custom_jvp, grad};
/// use bv_core::{jit, numpy as np, Spec, Tensor, DType};
/// // |x| whose derivative at 0 is 0, not JAX's abs' 1.
/// let f = jit(|x: Tensor| {
///     let abs0 = custom_jvp(
///         |x: Tensor| np::abs(&x),
///         |x: &Tensor, _: &Tensor, t: &Tensor| np::sign(x) * t,
///     );
///     grad(move |x: Tensor| np::sum(&abs0(x), np::Axes::All, false))(&x)
/// });
/// assert!(f.lower(&Spec::new([3], DType::F32))?.text.contains("stablehlo.sign"));
/// # Ok::<(), bv_core::JitError>(())
/// ```
#[track_caller]
pub fn custom_jvp<I, O>(
    f: impl Fn(I) -> O,
    jvp: impl Fn(&I, &O, &I) -> O + 'static,
) -> impl Fn(I) -> O
where
    I: Tree<Leaf = Tensor> + 'static,
    O: Tree<Leaf = Tensor> + 'static,
{
    let site = trace::CallSite::here();
    let jvp = Rc::new(jvp);
    move |x: I| {
        let (def, xs) = leaves(&x);
        crate::eager::run(xs, |xs| {
            let x: I = tree::unflatten(&def, xs).expect("its own structure");
            let (def, xs) = leaves(&x);
            let (func, caps, out_def) = trace_tree(&f, &def, &xs);
            let Some(od) = out_def else {
                foreign_output("custom_jvp", "the function", site);
                return f(x);
            };
            let (jvp, id, od2) = (jvp.clone(), def.clone(), od.clone());
            let rule = move |xs: &[Tensor], ys: &[Tensor], ts: &[Tensor]| -> Vec<Tensor> {
                let x: I = tree::unflatten(&id, xs.to_vec()).expect("input structure");
                let y: O = tree::unflatten(&od2, ys.to_vec()).expect("output structure");
                let t: I = tree::unflatten(&id, ts.to_vec()).expect("input structure");
                leaves(&jvp(&x, &y, &t)).1
            };
            let n_in = xs.len();
            let mut args = xs;
            args.extend(caps);
            let refs: Vec<&Tensor> = args.iter().collect();
            let prim = CustomJvp {
                func,
                n_in,
                rule: Rc::new(rule),
            };
            let outs = bind_rc(Rc::new(prim), &refs);
            tree::unflatten(&od, outs).expect("outputs of the function's own structure")
        })
    }
}

/// Records that `what`, traced for `op`, returned a tensor of no trace it can reach.
fn foreign_output(op: &'static str, what: &str, site: trace::CallSite) {
    trace::record(
        op,
        format!("{what} returned a tensor it did not compute from its inputs or captures"),
        &[],
        site,
    );
}
