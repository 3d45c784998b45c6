//! Differentiation of traced programs. `grad`, `vjp` and `jvp` run the user's function in
//! the current trace, then walk the nodes it recorded: backwards with each primitive's
//! reverse-mode rule (`Primitive::vjp`), or forwards with its forward-mode rule (by default
//! the transpose of the reverse rule). The derivative ops land in the same trace, so forward,
//! backward and update compile into one executable, and rules built from differentiable
//! primitives make derivatives of derivatives work.
//!
//! ```
//! use bv_core::autodiff::grad;
//! use bv_core::{jit, Spec, Tensor, DType};
//! // d/dx sum(x^3) = 3 x^2, and its derivative 6 x.
//! let f = jit(|x: Tensor| {
//!     let g = grad(|x: Tensor| bv_core::numpy::sum(&(&x * &x * &x), bv_core::numpy::Axes::All, false));
//!     grad(move |x: Tensor| bv_core::numpy::sum(&g(&x), bv_core::numpy::Axes::All, false))(&x)
//! });
//! assert!(f.lower(&Spec::new([3], DType::F32))?.text.contains("stablehlo.multiply"));
//! # Ok::<(), bv_core::JitError>(())
//! ```

mod api;
mod custom;

use std::collections::HashMap;

pub use api::{grad, jvp, value_and_grad, value_and_grad_aux, vjp, Aux, Vjp};
pub use custom::{
    checkpoint, custom_jvp, custom_vjp, optimization_barrier, stop_gradient, RematPolicy,
};

use crate::trace::{self, fresh, zeros_like, Aval, CoreOps, Primitive, Tensor, VjpResult};

/// True for values that carry derivatives (floating-point ones).
pub(crate) fn differentiable(a: &Aval) -> bool {
    a.dtype.is_float()
}

/// Reverse pass: the cotangents of `seeds` given cotangents `cts` of `outs`, through the
/// nodes recorded since node `start` of the trace. Seeds must be fresh values (see
/// [`fresh`]); non-float seeds and seeds without a path to an output get `None`.
pub(crate) fn backprop(
    start: usize,
    seeds: &[Tensor],
    outs: &[Tensor],
    cts: &[Option<Tensor>],
) -> Vec<Option<Tensor>> {
    let anchor = seeds.first().or(outs.first());
    let (tid, nodes) = trace::nodes_from(anchor, start);
    let mut active: HashMap<usize, ()> = HashMap::new();
    for s in seeds {
        if differentiable(s.aval()) && s.trace_id() == tid {
            active.insert(s.value_id(), ());
        }
    }
    let mut live = vec![false; nodes.len()];
    for (k, node) in nodes.iter().enumerate() {
        if node.inputs.iter().any(|i| active.contains_key(i)) {
            live[k] = true;
            for &o in &node.outputs {
                if differentiable(&trace::tensor_at(tid, o).aval().clone()) {
                    active.insert(o, ());
                }
            }
        }
    }
    let mut ct: HashMap<usize, Tensor> = HashMap::new();
    for (o, c) in outs.iter().zip(cts) {
        if let Some(c) = c {
            if o.trace_id() == tid && active.contains_key(&o.value_id()) {
                accumulate(&mut ct, o, c.clone());
            }
        }
    }
    for (k, node) in nodes.iter().enumerate().rev() {
        if !live[k] || !node.outputs.iter().any(|o| ct.contains_key(o)) {
            continue;
        }
        let ins: Vec<Tensor> = node
            .inputs
            .iter()
            .map(|&v| trace::tensor_at(tid, v))
            .collect();
        let outs: Vec<Tensor> = node
            .outputs
            .iter()
            .map(|&v| trace::tensor_at(tid, v))
            .collect();
        let node_cts: Vec<Option<Tensor>> = node.outputs.iter().map(|o| ct.remove(o)).collect();
        match node.prim.vjp(&ins, &outs, &node_cts) {
            Ok(res) => {
                for (x, r) in ins.iter().zip(res) {
                    if let (true, Some(r)) = (active.contains_key(&x.value_id()), r) {
                        if check(node.prim.as_ref(), x, &r, node.site) {
                            accumulate(&mut ct, x, r);
                        }
                    }
                }
            }
            Err(e) => {
                let avals: Vec<&Aval> = ins.iter().map(|t| t.aval()).collect();
                trace::record(
                    "grad",
                    format!("{}: {}", node.prim.name(), e.0),
                    &avals,
                    node.site,
                );
            }
        }
    }
    seeds
        .iter()
        .map(|s| ct.remove(&s.value_id()).filter(|_| s.trace_id() == tid))
        .collect()
}

fn check(p: &dyn Primitive, x: &Tensor, r: &Tensor, site: trace::CallSite) -> bool {
    if r.shape() == x.shape() && r.dtype() == x.dtype() {
        return true;
    }
    let reason = format!(
        "`{}`'s derivative rule gave a cotangent {} for an operand {} (a bug in bv)",
        p.name(),
        r.aval(),
        x.aval()
    );
    trace::record("grad", reason, &[x.aval(), r.aval()], site);
    false
}

fn accumulate(ct: &mut HashMap<usize, Tensor>, x: &Tensor, c: Tensor) {
    let v = match ct.remove(&x.value_id()) {
        Some(prev) => prev.add_any(&c),
        None => c,
    };
    ct.insert(x.value_id(), v);
}

/// Forward pass: tangents of `outs` given `tangents` of fresh `seeds`, through the nodes
/// recorded since node `start`.
pub(crate) fn forward(
    start: usize,
    seeds: &[Tensor],
    tangents: &[Option<Tensor>],
    outs: &[Tensor],
) -> Vec<Option<Tensor>> {
    let anchor = seeds.first().or(outs.first());
    let (tid, nodes) = trace::nodes_from(anchor, start);
    let mut tan: HashMap<usize, Tensor> = HashMap::new();
    for (s, t) in seeds.iter().zip(tangents) {
        if let (true, Some(t)) = (differentiable(s.aval()), t) {
            tan.insert(s.value_id(), t.clone());
        }
    }
    for node in &nodes {
        let tin: Vec<Option<Tensor>> = node.inputs.iter().map(|i| tan.get(i).cloned()).collect();
        if tin.iter().all(Option::is_none) {
            continue;
        }
        let ins: Vec<Tensor> = node
            .inputs
            .iter()
            .map(|&v| trace::tensor_at(tid, v))
            .collect();
        let outs: Vec<Tensor> = node
            .outputs
            .iter()
            .map(|&v| trace::tensor_at(tid, v))
            .collect();
        if !outs.iter().any(|o| differentiable(o.aval())) {
            continue;
        }
        let res = node
            .prim
            .jvp(&ins, &outs, &tin)
            .unwrap_or_else(|| jvp_by_transposition(node.prim.as_ref(), &ins, &outs, &tin));
        match res {
            Ok(res) => {
                for (o, t) in outs.iter().zip(res) {
                    if let (true, Some(t)) = (differentiable(o.aval()), t) {
                        if check(node.prim.as_ref(), o, &t, node.site) {
                            tan.insert(o.value_id(), t);
                        }
                    }
                }
            }
            Err(e) => {
                let avals: Vec<&Aval> = ins.iter().map(|t| t.aval()).collect();
                trace::record(
                    "jvp",
                    format!("{}: {}", node.prim.name(), e.0),
                    &avals,
                    node.site,
                );
            }
        }
    }
    outs.iter()
        .map(|o| {
            tan.get(&o.value_id())
                .cloned()
                .filter(|_| o.trace_id() == tid)
        })
        .collect()
}

/// A forward-mode rule from a reverse-mode one: the reverse rule is linear in the result
/// cotangents, so pulling the tangents back through it (a second reverse pass) gives the
/// results' tangents.
fn jvp_by_transposition(
    p: &dyn Primitive,
    ins: &[Tensor],
    outs: &[Tensor],
    tin: &[Option<Tensor>],
) -> VjpResult {
    let start = trace::node_count(outs.first());
    let placeholders: Vec<Tensor> = outs.iter().map(zeros_like).collect();
    let us = fresh(&placeholders);
    let cts: Vec<Option<Tensor>> = us
        .iter()
        .map(|u| differentiable(u.aval()).then(|| u.clone()))
        .collect();
    let cts_in = p.vjp(ins, outs, &cts)?;
    let mut lin_outs = Vec::new();
    let mut lin_cts = Vec::new();
    for (c, t) in cts_in.into_iter().zip(tin) {
        if let (Some(c), Some(t)) = (c, t) {
            lin_outs.push(c);
            lin_cts.push(Some(t.clone()));
        }
    }
    Ok(backprop(start, &us, &lin_outs, &lin_cts))
}
