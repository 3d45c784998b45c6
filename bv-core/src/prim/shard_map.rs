//! `shard_map`: a manual region inside a partitioned function (JAX's `shard_map`). The body
//! runs once per device on that device's shards, and may call the collectives of
//! [`crate::prim::collective`]. Emitted as Shardy's `sdy.manual_computation` with every mesh
//! axis manual.
//!
//! Forward mode differentiates the body in place. Reverse mode follows JAX's `shard_map`
//! without replication checks: the cotangent of an
//! output replicated over some mesh axes is divided by their size before the body is
//! transposed (the transpose of `psum` is `psum`), and the cotangent of an input replicated
//! over some axes is summed over them.

use std::cell::RefCell;
use std::rc::Rc;

use crate::autodiff::{backprop, differentiable, forward};
use crate::emit::{ty, EmitCx};
use crate::prim::collective::psum;
use crate::prim::sharding::MESH_NAME;
use crate::prim::{BatchResult, Primitive, VjpResult};
use crate::sharding::{Mesh, NamedSharding, PartitionSpec};
use crate::trace::{self, bind_rc, replay, trace_call, Aval, Func, OpError, Tensor};
use crate::trace::{fresh, zeros_like};

thread_local! {
    /// The meshes of the `jit`s being traced on this thread (`None`: not partitioned).
    static JIT_MESH: RefCell<Vec<Option<Mesh>>> = const { RefCell::new(Vec::new()) };
    /// The meshes of the `shard_map` bodies being traced on this thread.
    static MANUAL: RefCell<Vec<Mesh>> = const { RefCell::new(Vec::new()) };
}

/// Marks the mesh of a `jit` being traced until dropped.
pub(crate) struct JitMeshScope;

impl JitMeshScope {
    pub(crate) fn enter(mesh: Option<Mesh>) -> JitMeshScope {
        JIT_MESH.with(|m| m.borrow_mut().push(mesh));
        JitMeshScope
    }
}

impl Drop for JitMeshScope {
    fn drop(&mut self) {
        JIT_MESH.with(|m| m.borrow_mut().pop());
    }
}

struct ManualScope;

impl ManualScope {
    fn enter(mesh: &Mesh) -> ManualScope {
        MANUAL.with(|m| m.borrow_mut().push(mesh.clone()));
        ManualScope
    }
}

impl Drop for ManualScope {
    fn drop(&mut self) {
        MANUAL.with(|m| m.borrow_mut().pop());
    }
}

/// The mesh of the innermost `shard_map` body being traced.
pub(crate) fn manual_mesh() -> Option<Mesh> {
    MANUAL.with(|m| m.borrow().last().cloned())
}

/// The mesh's axes for messages: `'data'=4, 'model'=2`.
pub(crate) fn axis_names(mesh: &Mesh) -> String {
    let names: Vec<String> = mesh
        .axes()
        .iter()
        .map(|(a, s)| format!("'{a}'={s}"))
        .collect();
    names.join(", ")
}

/// The per-device shape of a `global` value laid out as `spec` over `mesh`.
fn local_aval(mesh: &Mesh, spec: &PartitionSpec, global: &Aval) -> Result<Aval, String> {
    let sh = NamedSharding::new(mesh.clone(), spec.clone()).map_err(|e| e.to_string())?;
    let dims: Vec<i64> = global.shape.iter().map(|&d| d as i64).collect();
    let local = sh.shard_shape(&dims).map_err(|e| e.to_string())?;
    Ok(global.with_shape(local.iter().map(|&d| d as usize).collect::<Vec<_>>()))
}

/// The mesh axes `spec` does not use, in mesh order.
fn unmentioned(mesh: &Mesh, spec: &PartitionSpec) -> Vec<String> {
    mesh.axes()
        .iter()
        .filter(|(a, _)| !spec.axes().any(|s| s == a))
        .map(|(a, _)| a.clone())
        .collect()
}

/// A manual region over `mesh`: operand `i` enters the body as its shard under
/// `in_specs[i]`, and result `j` leaves it as the shard under `out_specs[j]`.
#[derive(Debug)]
struct ShardMap {
    body: Func,
    mesh: Mesh,
    in_specs: Vec<PartitionSpec>,
    out_specs: Vec<PartitionSpec>,
}

impl Primitive for ShardMap {
    /// Every operand gets the batch dimension in front, replicated over the mesh (JAX's
    /// rule without `spmd_axis_name`); the body is batched alike.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = crate::batching::size(ins, dims);
        let args = crate::batching::all_front(ins, dims);
        let avals: Vec<Aval> = self
            .body
            .graph
            .params
            .iter()
            .map(|a| {
                let mut s = a.shape.clone();
                s.insert(0, n);
                a.with_shape(s)
            })
            .collect();
        let front = vec![Some(0); args.len()];
        let body = crate::batching::batch_body(&self.body, &avals, &front, n)?;
        let lead = |specs: &[PartitionSpec]| -> Vec<PartitionSpec> {
            specs
                .iter()
                .map(|s| {
                    let mut v = vec![Vec::new()];
                    v.extend(s.0.iter().cloned());
                    PartitionSpec(v)
                })
                .collect()
        };
        let prim = ShardMap {
            body,
            mesh: self.mesh.clone(),
            in_specs: lead(&self.in_specs),
            out_specs: lead(&self.out_specs),
        };
        let refs: Vec<&Tensor> = args.iter().collect();
        let outs = bind_rc(Rc::new(prim), &refs);
        let d = vec![Some(0); outs.len()];
        Ok((outs, d))
    }

    fn name(&self) -> &'static str {
        "shard_map"
    }

    fn num_outputs(&self) -> usize {
        self.body.outputs.len()
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        if ins.len() != self.in_specs.len() {
            return Err(OpError(format!(
                "{} operands for {} in_specs",
                ins.len(),
                self.in_specs.len()
            )));
        }
        for (i, (a, spec)) in ins.iter().zip(&self.in_specs).enumerate() {
            let local = local_aval(&self.mesh, spec, a)
                .map_err(|e| OpError(format!("in_specs[{i}]: {e}")))?;
            let param = &self.body.graph.params[i];
            if param.shape != local.shape || param.dtype != local.dtype {
                return Err(OpError(format!(
                    "operand {i} {a} has shards {local} under {spec}, but the body takes {param}"
                )));
            }
        }
        let outs = self.body.out_avals();
        if outs.len() != self.out_specs.len() {
            return Err(OpError(format!(
                "the body returns {} values for {} out_specs",
                outs.len(),
                self.out_specs.len()
            )));
        }
        outs.iter()
            .zip(&self.out_specs)
            .enumerate()
            .map(|(j, (local, spec))| {
                let sh = NamedSharding::new(self.mesh.clone(), spec.clone())
                    .map_err(|e| OpError(format!("out_specs[{j}]: {e}")))?;
                if spec.0.len() > local.rank() {
                    return Err(OpError(format!(
                        "out_specs[{j}] {spec} has {} entries for a result {local} of rank {}",
                        spec.0.len(),
                        local.rank()
                    )));
                }
                let global: Vec<usize> = (0..local.rank())
                    .map(|d| local.shape[d] * sh.parts(d))
                    .collect();
                Ok(local.with_shape(global))
            })
            .collect()
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let shardings = |specs: &[PartitionSpec], avals: Vec<&Aval>| -> String {
            let v: Vec<String> = specs
                .iter()
                .zip(avals)
                .map(|(spec, a)| {
                    let sh = NamedSharding {
                        mesh: self.mesh.clone(),
                        spec: spec.clone(),
                    };
                    let s = sh.to_sdy(MESH_NAME, a.rank());
                    s.strip_prefix("#sdy.sharding").unwrap_or(&s).to_string()
                })
                .collect();
            format!("[{}]", v.join(", "))
        };
        let args: Vec<(String, String)> = self
            .body
            .graph
            .params
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("%{}_a{i}", cx.scope), ty(a)))
            .collect();
        let names: Vec<String> = args.iter().map(|a| a.0.clone()).collect();
        let (lines, rets) = cx.writer.body(&self.body, &names).unwrap_or_default();
        let local_tys: Vec<String> = self.body.out_avals().iter().map(ty).collect();
        let manual: Vec<String> = self
            .mesh
            .axes()
            .iter()
            .map(|(a, _)| format!("\"{a}\""))
            .collect();
        let block_args: Vec<String> = args.iter().map(|(n, t)| format!("{n}: {t}")).collect();
        let mut s = format!(
            "sdy.manual_computation({}) in_shardings={} out_shardings={} manual_axes={{{}}} ({}) {{\n",
            cx.names(),
            shardings(&self.in_specs, cx.ins.iter().map(|o| o.aval).collect()),
            shardings(&self.out_specs, cx.outs.iter().collect()),
            manual.join(", "),
            block_args.join(", ")
        );
        for l in &lines {
            s += &format!("  {}\n", l.replace('\n', "\n  "));
        }
        let in_tys: Vec<String> = cx.ins.iter().map(|o| ty(o.aval)).collect();
        let out_tys: Vec<String> = cx.outs.iter().map(ty).collect();
        let out_ty = if out_tys.len() == 1 {
            out_tys[0].clone()
        } else {
            format!("({})", out_tys.join(", "))
        };
        s += &format!(
            "  sdy.return {} : {}\n}} : ({}) -> {out_ty}",
            rets.join(", "),
            local_tys.join(", "),
            in_tys.join(", ")
        );
        s
    }

    fn jvp(
        &self,
        ins: &[Tensor],
        outs: &[Tensor],
        tangents: &[Option<Tensor>],
    ) -> Option<VjpResult> {
        let with_t: Vec<(usize, &Tensor)> = tangents
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|t| (i, t)))
            .filter(|(i, _)| differentiable(ins[*i].aval()))
            .collect();
        let diff_outs: Vec<usize> = (0..outs.len())
            .filter(|&j| differentiable(outs[j].aval()))
            .collect();
        if with_t.is_empty() || diff_outs.is_empty() {
            return Some(Ok(vec![None; outs.len()]));
        }
        let params = &self.body.graph.params;
        let mut locals = params.clone();
        locals.extend(with_t.iter().map(|&(i, _)| params[i].clone()));
        let n_in = ins.len();
        let body = {
            let _manual = ManualScope::enter(&self.mesh);
            trace_call(&locals, |p| {
                let (xs, ts) = p.split_at(n_in);
                let start = trace::node_count(p.first());
                let seeds = fresh(xs);
                let ys = replay(&self.body, &seeds);
                let mut tin: Vec<Option<Tensor>> = vec![None; n_in];
                for (&(i, _), t) in with_t.iter().zip(ts) {
                    tin[i] = Some(t.clone());
                }
                let tout = forward(start, &seeds, &tin, &ys);
                diff_outs
                    .iter()
                    .map(|&j| tout[j].clone().unwrap_or_else(|| zeros_like(&ys[j])))
                    .collect::<Vec<_>>()
            })
        };
        if !body.captures.is_empty() {
            return Some(Err(OpError(
                "the body's forward-mode derivative used an outer value".into(),
            )));
        }
        let mut operands = ins.to_vec();
        operands.extend(with_t.iter().map(|&(_, t)| t.clone()));
        let mut in_specs = self.in_specs.clone();
        in_specs.extend(with_t.iter().map(|&(i, _)| self.in_specs[i].clone()));
        let refs: Vec<&Tensor> = operands.iter().collect();
        let t = bind_rc(
            Rc::new(ShardMap {
                body: body.func,
                mesh: self.mesh.clone(),
                in_specs,
                out_specs: diff_outs
                    .iter()
                    .map(|&j| self.out_specs[j].clone())
                    .collect(),
            }),
            &refs,
        );
        let mut out = vec![None; outs.len()];
        for (&j, t) in diff_outs.iter().zip(t) {
            out[j] = Some(t);
        }
        Some(Ok(out))
    }

    fn vjp(&self, ins: &[Tensor], outs: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let with_ct: Vec<(usize, &Tensor)> = cts
            .iter()
            .enumerate()
            .filter_map(|(j, c)| c.as_ref().map(|c| (j, c)))
            .filter(|(j, _)| differentiable(outs[*j].aval()))
            .collect();
        let wanted: Vec<usize> = (0..ins.len())
            .filter(|&i| differentiable(ins[i].aval()))
            .collect();
        if wanted.is_empty() || with_ct.is_empty() {
            return Ok(vec![None; ins.len()]);
        }
        let mut operands = ins.to_vec();
        let mut specs = self.in_specs.clone();
        for &(j, ct) in &with_ct {
            let copies: usize = unmentioned(&self.mesh, &self.out_specs[j])
                .iter()
                .filter_map(|a| self.mesh.axis_size(a))
                .product();
            operands.push(if copies > 1 {
                ct * (1.0 / copies as f64)
            } else {
                ct.clone()
            });
            specs.push(self.out_specs[j].clone());
        }
        let body_outs = self.body.out_avals();
        let mut locals: Vec<Aval> = self.body.graph.params.clone();
        locals.extend(with_ct.iter().map(|&(j, _)| body_outs[j].clone()));
        let n_in = ins.len();
        let mesh = self.mesh.clone();
        let body = {
            let _manual = ManualScope::enter(&self.mesh);
            trace_call(&locals, |p| {
                let (xs, cts) = p.split_at(n_in);
                let start = trace::node_count(p.first());
                let seeds = fresh(xs);
                let ys = replay(&self.body, &seeds);
                let mut out_cts: Vec<Option<Tensor>> = vec![None; ys.len()];
                for (&(j, _), c) in with_ct.iter().zip(cts) {
                    out_cts[j] = Some(c.clone());
                }
                let g = backprop(start, &seeds, &ys, &out_cts);
                wanted
                    .iter()
                    .map(|&i| {
                        let g = g[i].clone().unwrap_or_else(|| zeros_like(&seeds[i]));
                        let axes = unmentioned(&mesh, &self.in_specs[i]);
                        if axes.is_empty() {
                            g
                        } else {
                            let axes: Vec<&str> = axes.iter().map(String::as_str).collect();
                            psum(&g, &axes)
                        }
                    })
                    .collect::<Vec<_>>()
            })
        };
        if !body.captures.is_empty() {
            return Err(OpError(
                "the body's backward pass used an outer value".into(),
            ));
        }
        let out_specs = wanted.iter().map(|&i| self.in_specs[i].clone()).collect();
        let refs: Vec<&Tensor> = operands.iter().collect();
        let g = bind_rc(
            Rc::new(ShardMap {
                body: body.func,
                mesh: self.mesh.clone(),
                in_specs: specs,
                out_specs,
            }),
            &refs,
        );
        let mut out = vec![None; ins.len()];
        for (&i, g) in wanted.iter().zip(g) {
            out[i] = Some(g);
        }
        Ok(out)
    }
}

/// JAX's `shard_map(f, mesh, in_specs, out_specs)`: a function that runs `f` on every
/// device of `mesh` with that device's shards of its arguments (argument `i` split as
/// `in_specs[i]`) and assembles result `j` from the per-device results as `out_specs[j]`
/// says. A result is taken to be equal across the mesh axes its spec leaves out (JAX's
/// `check_rep=False`). Tensors `f` closes over enter replicated. Inside `f`, the
/// collectives of [`crate::prim`] (`psum`, `all_gather`, `ppermute`, …) work over
/// the mesh's named axes.
///
/// Use it in a function jitted with [`crate::Jit::sharded`] over the same `mesh`; it is
/// emitted as `sdy.manual_computation` with every mesh axis manual.
pub fn shard_map<F>(
    f: F,
    mesh: &Mesh,
    in_specs: &[PartitionSpec],
    out_specs: &[PartitionSpec],
) -> impl Fn(&[Tensor]) -> Vec<Tensor>
where
    F: Fn(&[Tensor]) -> Vec<Tensor>,
{
    let mesh = mesh.clone();
    let in_specs = in_specs.to_vec();
    let out_specs = out_specs.to_vec();
    move |args: &[Tensor]| apply(&f, &mesh, &in_specs, &out_specs, args)
}

#[track_caller]
fn apply<F>(
    f: &F,
    mesh: &Mesh,
    in_specs: &[PartitionSpec],
    out_specs: &[PartitionSpec],
    args: &[Tensor],
) -> Vec<Tensor>
where
    F: Fn(&[Tensor]) -> Vec<Tensor>,
{
    let avals: Vec<&Aval> = args.iter().map(|t| t.aval()).collect();
    let reject = |reason: String| {
        let like = args.first();
        trace::fail(
            "shard_map",
            reason,
            &avals,
            like,
            Aval::new([], crate::DType::F32),
        )
    };
    if args.len() != in_specs.len() {
        reject(format!(
            "{} arguments for {} in_specs",
            args.len(),
            in_specs.len()
        ));
    }
    match JIT_MESH.with(|m| m.borrow().last().cloned()) {
        Some(Some(m)) if &m == mesh => {}
        Some(Some(m)) => {
            reject(format!(
                "its mesh ({}) differs from the mesh the function is jitted over ({})",
                axis_names(mesh),
                axis_names(&m)
            ));
        }
        _ => {
            reject(format!(
                "it needs a function jitted with `.sharded(mesh, ..)` over its mesh ({})",
                axis_names(mesh)
            ));
        }
    }
    if manual_mesh().is_some() {
        reject("shard_map inside the body of another shard_map is not supported".into());
    }
    let mut locals = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let spec = in_specs.get(i).cloned().unwrap_or_default();
        match local_aval(mesh, &spec, a.aval()) {
            Ok(l) => locals.push(l),
            Err(e) => {
                reject(format!("argument {i}: {e}"));
                locals.push(a.aval().clone());
            }
        }
    }
    let body = {
        let _manual = ManualScope::enter(mesh);
        trace_call(&locals, f)
    };
    if let Some(j) = body.foreign {
        let bad = reject(format!("result {j} of the body was not computed inside it"));
        return vec![bad; body.func.outputs.len()];
    }
    let mut specs = in_specs.to_vec();
    specs.resize(args.len(), PartitionSpec::replicated());
    specs.extend(body.captures.iter().map(|_| PartitionSpec::replicated()));
    let mut operands: Vec<&Tensor> = args.iter().collect();
    operands.extend(body.captures.iter());
    let prim = ShardMap {
        body: body.func,
        mesh: mesh.clone(),
        in_specs: specs,
        out_specs: out_specs.to_vec(),
    };
    bind_rc(Rc::new(prim), &operands)
}
