//! Vectorization (`jax.vmap`): a function written for one example runs on a batch. `vmap`
//! traces the function once on unbatched values, then records its nodes again, each through
//! its primitive's batching rule (`Primitive::batch`, beside the primitive's shape rule
//! and derivative rules) with the position of every value's batch dimension tracked along
//! the way (JAX's `BatchTrace`, applied to the traced graph). Rules emit ordinary
//! primitives into the current trace, so `vmap` composes with `jit`, `grad`, `jvp` and the
//! control-flow primitives in any order.

mod api;

pub use api::{vmap, Axes, Axis};

use crate::trace::{self, bind_rc, fresh, trace_call, Aval, BatchResult, CoreOps, Func};
use crate::trace::{Primitive, Tensor, ValueDef};

/// The batch size: the length of the batch dimension of the batched operands.
pub(crate) fn size(ins: &[Tensor], dims: &[Option<usize>]) -> usize {
    ins.iter()
        .zip(dims)
        .find_map(|(x, d)| d.map(|d| x.shape()[d]))
        .unwrap_or(1)
}

/// `x` with dimension `from` moved to position `to`.
pub(crate) fn moveaxis(x: &Tensor, from: usize, to: usize) -> Tensor {
    if from == to {
        return x.clone();
    }
    let mut perm: Vec<usize> = (0..x.rank()).filter(|&i| i != from).collect();
    perm.insert(to, from);
    x.permute_dims(&perm)
}

/// `x` with its batch dimension at `to`: moved from `d`, or made by broadcasting to size
/// `n` when `x` is not batched.
pub(crate) fn batch_at(x: &Tensor, d: Option<usize>, n: usize, to: usize) -> Tensor {
    match d {
        Some(d) => moveaxis(x, d, to),
        None => {
            let mut shape = x.shape().to_vec();
            shape.insert(to, n);
            let dims: Vec<usize> = (0..x.rank())
                .map(|i| if i < to { i } else { i + 1 })
                .collect();
            x.broadcast_dims(&shape, &dims)
        }
    }
}

/// Every operand with the batch dimension in front (unbatched ones broadcast).
pub(crate) fn all_front(ins: &[Tensor], dims: &[Option<usize>]) -> Vec<Tensor> {
    let n = size(ins, dims);
    ins.iter()
        .zip(dims)
        .map(|(x, &d)| batch_at(x, d, n, 0))
        .collect()
}

/// `dims` shifted past a new leading batch dimension.
pub(crate) fn shift(dims: &[usize]) -> Vec<usize> {
    dims.iter().map(|d| d + 1).collect()
}

/// `[0]` followed by `dims` shifted past it.
pub(crate) fn lead(dims: &[usize]) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(shift(dims));
    v
}

/// Binds `prim` to `ins` and reports every result batched at `d`.
fn bind_at<P: Primitive>(prim: P, ins: &[Tensor], d: usize) -> BatchResult {
    let refs: Vec<&Tensor> = ins.iter().collect();
    let outs = trace::bind(prim, &refs);
    let dims = vec![Some(d); outs.len()];
    Ok((outs, dims))
}

/// The rule of a primitive whose results keep their operands' element positions (elementwise
/// ops on equal shapes): the primitive itself on operands batched at the same dimension.
pub(crate) fn elementwise<P: Primitive>(
    prim: P,
    ins: &[Tensor],
    dims: &[Option<usize>],
) -> BatchResult {
    if let Some(&Some(d)) = dims.first() {
        if dims.iter().all(|&x| x == Some(d)) {
            return bind_at(prim, ins, d);
        }
    }
    bind_at(prim, &all_front(ins, dims), 0)
}

/// The rule of a primitive that gets a leading batch dimension by shifting its dimension
/// parameters: `prim` (built for that) on every operand batched in front.
pub(crate) fn leading<P: Primitive>(
    prim: P,
    ins: &[Tensor],
    dims: &[Option<usize>],
) -> BatchResult {
    bind_at(prim, &all_front(ins, dims), 0)
}

/// Which results of `f` depend on the parameters marked `batched`: a superset of the
/// results that come out batched (rules give unbatched results only for unbatched operands).
pub(crate) fn depends(f: &Func, batched: &[bool]) -> Vec<bool> {
    let mut b = vec![false; f.graph.values.len()];
    for (vid, def) in f.graph.values.iter().enumerate() {
        if let ValueDef::Param(i) = def {
            b[vid] = batched.get(*i).copied().unwrap_or(false);
        }
    }
    for node in &f.graph.nodes {
        if node.inputs.iter().any(|&i| b[i]) {
            for &o in &node.outputs {
                b[o] = true;
            }
        }
    }
    f.outputs.iter().map(|&o| b[o]).collect()
}

/// `x` (batched at `d`) with the batch dimension at `want`, or as it is when `want` is
/// `None` (then `x` is unbatched, as [`depends`] guarantees to callers that use it).
pub(crate) fn place(x: &Tensor, d: Option<usize>, n: usize, want: Option<usize>) -> Tensor {
    match want {
        Some(w) => batch_at(x, d, n, w),
        None => x.clone(),
    }
}

/// The aval of `x` without dimension `d`.
fn unbatched(x: &Tensor, d: Option<usize>) -> Aval {
    match d {
        Some(d) => {
            let mut s = x.shape().to_vec();
            s.remove(d);
            x.aval().with_shape(s)
        }
        None => x.aval().clone(),
    }
}

/// Applies `f` to `ins`, whose batch dimensions are `dims`, in the current trace: each node
/// is recorded again, through its primitive's batching rule when an operand is batched.
/// Returns the results and their batch dimensions. A primitive without a rule records an
/// error naming it.
pub(crate) fn batch_func(
    f: &Func,
    ins: &[Tensor],
    dims: &[Option<usize>],
) -> (Vec<Tensor>, Vec<Option<usize>>) {
    let n = size(ins, dims);
    let mut vals: Vec<Option<(Tensor, Option<usize>)>> = vec![None; f.graph.values.len()];
    for (vid, def) in f.graph.values.iter().enumerate() {
        if let ValueDef::Param(i) = def {
            vals[vid] = ins.get(*i).map(|t| (t.clone(), dims[*i]));
        }
    }
    for node in &f.graph.nodes {
        let args: Option<Vec<(Tensor, Option<usize>)>> =
            node.inputs.iter().map(|&v| vals[v].clone()).collect();
        let Some(args) = args else { continue };
        let (xs, ds): (Vec<Tensor>, Vec<Option<usize>>) = args.into_iter().unzip();
        let expected: Vec<Aval> = node
            .outputs
            .iter()
            .map(|&o| (*f.graph.avals[o]).clone())
            .collect();
        let result = if ds.iter().all(Option::is_none) {
            let refs: Vec<&Tensor> = xs.iter().collect();
            let outs = bind_rc(node.prim.clone(), &refs);
            let d = vec![None; outs.len()];
            Ok((outs, d))
        } else {
            node.prim.batch(&xs, &ds).and_then(|(outs, od)| {
                let fits = outs.len() == expected.len()
                    && od.len() == outs.len()
                    && outs.iter().zip(&od).zip(&expected).all(|((o, &d), e)| {
                        let u = unbatched(o, d);
                        u.shape == e.shape
                            && u.dtype == e.dtype
                            && d.is_none_or(|d| o.shape()[d] == n)
                    });
                if fits {
                    Ok((outs, od))
                } else {
                    Err(trace::OpError(format!(
                        "the batching rule gave results that do not fit {} (a bug in bv)",
                        aval_list(&expected)
                    )))
                }
            })
        };
        let (outs, od) = result.unwrap_or_else(|e| {
            let avals: Vec<&Aval> = xs.iter().map(|t| t.aval()).collect();
            trace::record(
                "vmap",
                format!("{}: {}", node.prim.name(), e.0),
                &avals,
                node.site,
            );
            let outs = expected
                .iter()
                .map(|e| {
                    let mut s = e.shape.clone();
                    s.insert(0, n);
                    trace::fail("vmap", e.to_string(), &[], xs.first(), e.with_shape(s))
                })
                .collect();
            (outs, vec![Some(0); expected.len()])
        });
        for ((&o, t), d) in node.outputs.iter().zip(outs).zip(od) {
            vals[o] = Some((t, d));
        }
    }
    f.outputs
        .iter()
        .map(|&o| {
            vals[o].clone().unwrap_or_else(|| {
                let a = &f.graph.avals[o];
                let t = trace::fail(
                    "vmap",
                    "a value of the body was rejected".into(),
                    &[a],
                    None,
                    (**a).clone(),
                );
                (t, None)
            })
        })
        .unzip()
}

fn aval_list(avals: &[Aval]) -> String {
    let v: Vec<String> = avals.iter().map(|a| a.to_string()).collect();
    format!("({})", v.join(", "))
}

/// `f` batched: applied to `ins` batched at `dims`, with results batched at `out` (the
/// batch dimension of result `j` moved to `out[j]`; `None` only for results [`depends`]
/// finds unbatched). Tensors `f` closes over enter unbatched.
pub(crate) fn vmap_flat(
    f: &dyn Fn(&[Tensor]) -> Vec<Tensor>,
    ins: &[Tensor],
    dims: &[Option<usize>],
) -> (Vec<Tensor>, Vec<Option<usize>>) {
    let avals: Vec<Aval> = ins
        .iter()
        .zip(dims)
        .map(|(x, &d)| unbatched(x, d))
        .collect();
    let body = trace_call(&avals, |p| fresh(&f(p)));
    let mut args = ins.to_vec();
    let mut ds = dims.to_vec();
    ds.extend(body.captures.iter().map(|_| None));
    args.extend(body.captures);
    batch_func(&body.func, &args, &ds)
}

/// [`vmap_flat`] with every result batched in front (broadcast where it is not batched).
pub(crate) fn vmap_front(
    f: &dyn Fn(&[Tensor]) -> Vec<Tensor>,
    ins: &[Tensor],
    dims: &[Option<usize>],
) -> Vec<Tensor> {
    let n = size(ins, dims);
    let (outs, od) = vmap_flat(f, ins, dims);
    outs.iter()
        .zip(od)
        .map(|(x, d)| batch_at(x, d, n, 0))
        .collect()
}

/// A body (of a call-like primitive) batched: a new function of parameters of `avals`
/// (batched at `dims`, batch size `n`) whose results are `f`'s batched in front.
pub(crate) fn batch_body(
    f: &Func,
    avals: &[Aval],
    dims: &[Option<usize>],
    n: usize,
) -> Result<Func, trace::OpError> {
    let body = trace_call(avals, |p| {
        let (o, od) = batch_func(f, p, dims);
        let o: Vec<Tensor> = o
            .iter()
            .zip(od)
            .map(|(x, d)| batch_at(x, d, n, 0))
            .collect();
        fresh(&o)
    });
    if !body.captures.is_empty() {
        return Err(trace::OpError(
            "the batched body used an outer value (a bug in bv)".into(),
        ));
    }
    Ok(body.func)
}
