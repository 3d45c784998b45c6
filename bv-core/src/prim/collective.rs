//! Collectives over named mesh axes, for the body of [`crate::prim::shard_map::shard_map`]:
//! `psum` (`stablehlo.all_reduce`), `all_gather`, `psum_scatter` (`stablehlo.reduce_scatter`),
//! `ppermute` (`stablehlo.collective_permute`) and `axis_index` (`stablehlo.partition_id`).
//!
//! Lowered as JAX lowers them in a partitioned program: a fresh channel id per op,
//! `use_global_device_ids`, and replica groups of mesh positions (partition ids, which the
//! compile's device assignment maps to the mesh's devices). A group holds the devices that
//! differ only in the named axes, ordered by those axes (the first named is the major one).
//!
//! Derivatives follow JAX: `psum` transposes to `psum`, `all_gather` to `psum_scatter` and
//! back, and `ppermute` to `ppermute` with each pair reversed.

use crate::emit::{ty, EmitCx, Writer};
use crate::prim::shard_map::{axis_names, manual_mesh};
use crate::prim::BatchResult;
use crate::prim::{arity, reshape, Class, Primitive, ReduceKind, VjpResult};
use crate::sharding::Mesh;
use crate::trace::error::ensure;
use crate::trace::{bind1, fail, Aval, OpError, Tensor};
use crate::DType;

/// The mesh of the enclosing `shard_map` body, checked to have `axes` (each once).
fn context(op: &str, axes: &[&str]) -> Result<Mesh, String> {
    let quoted: Vec<String> = axes.iter().map(|a| format!("'{a}'")).collect();
    let Some(mesh) = manual_mesh() else {
        return Err(format!(
            "`{op}` over {} must be called inside the body of shard_map",
            quoted.join(", ")
        ));
    };
    for (i, a) in axes.iter().enumerate() {
        if mesh.axis_size(a).is_none() {
            return Err(format!(
                "the mesh has no axis '{a}' (axes: {})",
                axis_names(&mesh)
            ));
        }
        if axes[..i].contains(a) {
            return Err(format!("axis '{a}' is named twice"));
        }
    }
    if axes.is_empty() {
        return Err("no mesh axis named".into());
    }
    Ok(mesh)
}

/// The product of the sizes of `axes`.
fn group_size(mesh: &Mesh, axes: &[String]) -> usize {
    axes.iter().filter_map(|a| mesh.axis_size(a)).product()
}

/// The replica groups of a collective over `axes`: mesh positions that differ only in those
/// axes, ordered by them (first named major); groups ordered by the other axes.
fn groups(mesh: &Mesh, axes: &[String]) -> Vec<Vec<i64>> {
    let sizes: Vec<usize> = mesh.axes().iter().map(|(_, s)| *s).collect();
    let named: Vec<usize> = axes.iter().filter_map(|a| mesh.axis_index(a)).collect();
    let size = group_size(mesh, axes);
    let mut out = vec![vec![0i64; size]; mesh.size() / size];
    for p in 0..mesh.size() {
        let c = mesh.coords(p);
        let member = named.iter().fold(0, |acc, &k| acc * sizes[k] + c[k]);
        let group = (0..c.len())
            .filter(|k| !named.contains(k))
            .fold(0, |acc, k| acc * sizes[k] + c[k]);
        out[group][member] = p as i64;
    }
    out
}

/// A dense `i64` matrix attribute: `dense<[[0, 1], [2, 3]]> : tensor<2x2xi64>`.
fn dense(rows: &[Vec<i64>], width: usize) -> String {
    let rows_text: Vec<String> = rows
        .iter()
        .map(|r| {
            let v: Vec<String> = r.iter().map(|x| x.to_string()).collect();
            format!("[{}]", v.join(", "))
        })
        .collect();
    format!(
        "dense<[{}]> : tensor<{}x{width}xi64>",
        rows_text.join(", "),
        rows.len()
    )
}

/// A fresh device-to-device `channel_handle` and the replica groups over `axes`, as global
/// device ids.
fn attrs(w: &Writer, mesh: &Mesh, axes: &[String]) -> String {
    let g = groups(mesh, axes);
    format!(
        "channel_handle = #stablehlo.channel_handle<handle = {}, type = 1>, replica_groups = {}, use_global_device_ids",
        w.channel(),
        dense(&g, group_size(mesh, axes))
    )
}

/// See [`psum`].
#[derive(Clone, Debug)]
struct Psum {
    mesh: Mesh,
    axes: Vec<String>,
}

impl Primitive for Psum {
    /// Elementwise across devices: the batch dimension stays where it is.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        crate::batching::elementwise(self.clone(), ins, dims)
    }

    fn name(&self) -> &'static str {
        "psum"
    }
    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        ensure!(
            Class::Num.accepts(ins[0].dtype),
            "element type must be {}, got {}",
            Class::Num.describe(),
            ins[0].dtype
        );
        Ok(vec![ins[0].clone()])
    }
    fn emit(&self, cx: &EmitCx) -> String {
        let t = crate::emit::scalar_ty(cx.ins[0].aval);
        format!(
            "\"stablehlo.all_reduce\"({}) <{{{}}}> {} : {}",
            cx.name(0),
            attrs(cx.writer, &self.mesh, &self.axes),
            ReduceKind::Sum.region(cx.scope, &t),
            cx.fn_type()
        )
    }
    fn vjp(&self, _: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        Ok(vec![cts[0].as_ref().map(|ct| {
            bind1(
                Psum {
                    mesh: self.mesh.clone(),
                    axes: self.axes.clone(),
                },
                &[ct],
            )
        })])
    }
}

/// The sum of `x` over the devices along mesh `axes`, on every one of them (JAX's
/// `lax.psum`; `stablehlo.all_reduce`). Only inside a `shard_map` body.
#[track_caller]
pub fn psum(x: &Tensor, axes: &[&str]) -> Tensor {
    match context("psum", axes) {
        Ok(mesh) => bind1(
            Psum {
                mesh,
                axes: axes.iter().map(|a| a.to_string()).collect(),
            },
            &[x],
        ),
        Err(e) => fail("psum", e, &[x.aval()], Some(x), x.aval().clone()),
    }
}

/// The mean of `x` over the devices along mesh `axes` (JAX's `lax.pmean`): [`psum`] divided
/// by the number of those devices.
#[track_caller]
pub fn pmean(x: &Tensor, axes: &[&str]) -> Tensor {
    let n: usize = manual_mesh()
        .map(|m| axes.iter().filter_map(|a| m.axis_size(a)).product())
        .unwrap_or(1);
    psum(x, axes) / n as f64
}

/// See [`all_gather`].
#[derive(Clone, Debug)]
struct AllGather {
    mesh: Mesh,
    axis: String,
    dim: usize,
}

impl Primitive for AllGather {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let prim = AllGather {
            dim: self.dim + 1,
            ..self.clone()
        };
        crate::batching::leading(prim, ins, dims)
    }

    fn name(&self) -> &'static str {
        "all_gather"
    }
    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        let x = ins[0];
        ensure!(
            self.dim < x.rank(),
            "dimension {} is out of range for rank {}",
            self.dim,
            x.rank()
        );
        let mut shape = x.shape.clone();
        shape[self.dim] *= group_size(&self.mesh, std::slice::from_ref(&self.axis));
        Ok(vec![x.with_shape(shape)])
    }
    fn emit(&self, cx: &EmitCx) -> String {
        format!(
            "\"stablehlo.all_gather\"({}) <{{all_gather_dim = {} : i64, {}}}> : {}",
            cx.name(0),
            self.dim,
            attrs(cx.writer, &self.mesh, std::slice::from_ref(&self.axis)),
            cx.fn_type()
        )
    }
    fn vjp(&self, _: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        Ok(vec![cts[0].as_ref().map(|ct| {
            bind1(
                PsumScatter {
                    mesh: self.mesh.clone(),
                    axis: self.axis.clone(),
                    dim: self.dim,
                },
                &[ct],
            )
        })])
    }
}

/// The shards of `x` from every device along mesh `axis`, in axis order, on every one of
/// them (JAX's `lax.all_gather`; `stablehlo.all_gather`). `tiled` concatenates them along
/// `dim`; otherwise they are stacked in a new dimension `dim`. Only inside a `shard_map`
/// body.
#[track_caller]
pub fn all_gather(x: &Tensor, axis: &str, dim: usize, tiled: bool) -> Tensor {
    let mesh = match context("all_gather", &[axis]) {
        Ok(m) => m,
        Err(e) => return fail("all_gather", e, &[x.aval()], Some(x), x.aval().clone()),
    };
    let x = if tiled {
        x.clone()
    } else {
        if dim > x.rank() {
            let reason = format!("dimension {dim} is out of range for rank {}", x.rank());
            return fail("all_gather", reason, &[x.aval()], Some(x), x.aval().clone());
        }
        let mut shape = x.shape().to_vec();
        shape.insert(dim, 1);
        reshape(x, &shape)
    };
    bind1(
        AllGather {
            mesh,
            axis: axis.to_string(),
            dim,
        },
        &[&x],
    )
}

/// See [`psum_scatter`].
#[derive(Clone, Debug)]
struct PsumScatter {
    mesh: Mesh,
    axis: String,
    dim: usize,
}

impl Primitive for PsumScatter {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let prim = PsumScatter {
            dim: self.dim + 1,
            ..self.clone()
        };
        crate::batching::leading(prim, ins, dims)
    }

    fn name(&self) -> &'static str {
        "psum_scatter"
    }
    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        let x = ins[0];
        ensure!(
            Class::Num.accepts(x.dtype),
            "element type must be {}, got {}",
            Class::Num.describe(),
            x.dtype
        );
        ensure!(
            self.dim < x.rank(),
            "dimension {} is out of range for rank {}",
            self.dim,
            x.rank()
        );
        let n = group_size(&self.mesh, std::slice::from_ref(&self.axis));
        ensure!(
            x.shape[self.dim].is_multiple_of(n),
            "dimension {} of size {} is not divisible by the size {n} of axis '{}'",
            self.dim,
            x.shape[self.dim],
            self.axis
        );
        let mut shape = x.shape.clone();
        shape[self.dim] /= n;
        Ok(vec![x.with_shape(shape)])
    }
    fn emit(&self, cx: &EmitCx) -> String {
        let t = crate::emit::scalar_ty(cx.ins[0].aval);
        format!(
            "\"stablehlo.reduce_scatter\"({}) <{{{}, scatter_dimension = {} : i64}}> {} : {}",
            cx.name(0),
            attrs(cx.writer, &self.mesh, std::slice::from_ref(&self.axis)),
            self.dim,
            ReduceKind::Sum.region(cx.scope, &t),
            cx.fn_type()
        )
    }
    fn vjp(&self, _: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        Ok(vec![cts[0].as_ref().map(|ct| {
            bind1(
                AllGather {
                    mesh: self.mesh.clone(),
                    axis: self.axis.clone(),
                    dim: self.dim,
                },
                &[ct],
            )
        })])
    }
}

/// The sum of `x` over the devices along mesh `axis`, of which each device keeps its block
/// along `dim` (block `i` on the device at index `i`; JAX's `lax.psum_scatter` with
/// `tiled=True`; `stablehlo.reduce_scatter`). Only inside a `shard_map` body.
#[track_caller]
pub fn psum_scatter(x: &Tensor, axis: &str, dim: usize) -> Tensor {
    match context("psum_scatter", &[axis]) {
        Ok(mesh) => bind1(
            PsumScatter {
                mesh,
                axis: axis.to_string(),
                dim,
            },
            &[x],
        ),
        Err(e) => fail("psum_scatter", e, &[x.aval()], Some(x), x.aval().clone()),
    }
}

/// See [`ppermute`].
#[derive(Clone, Debug)]
struct Ppermute {
    mesh: Mesh,
    axis: String,
    perm: Vec<(usize, usize)>,
}

impl Primitive for Ppermute {
    /// Elementwise across devices: the batch dimension stays where it is.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        crate::batching::elementwise(self.clone(), ins, dims)
    }

    fn name(&self) -> &'static str {
        "ppermute"
    }
    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 1)?;
        let n = group_size(&self.mesh, std::slice::from_ref(&self.axis));
        for (k, &(s, d)) in self.perm.iter().enumerate() {
            ensure!(
                s < n && d < n,
                "pair ({s}, {d}) is out of range for axis '{}' of size {n}",
                self.axis
            );
            ensure!(
                !self.perm[..k].iter().any(|p| p.0 == s),
                "source {s} appears twice"
            );
            ensure!(
                !self.perm[..k].iter().any(|p| p.1 == d),
                "destination {d} appears twice"
            );
        }
        Ok(vec![ins[0].clone()])
    }
    fn emit(&self, cx: &EmitCx) -> String {
        let pairs: Vec<Vec<i64>> = groups(&self.mesh, std::slice::from_ref(&self.axis))
            .iter()
            .flat_map(|g| self.perm.iter().map(move |&(s, d)| vec![g[s], g[d]]))
            .collect();
        format!(
            "\"stablehlo.collective_permute\"({}) <{{channel_handle = #stablehlo.channel_handle<handle = {}, type = 1>, source_target_pairs = {}}}> : {}",
            cx.name(0),
            cx.writer.channel(),
            dense(&pairs, 2),
            cx.fn_type()
        )
    }
    fn vjp(&self, _: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        Ok(vec![cts[0].as_ref().map(|ct| {
            bind1(
                Ppermute {
                    mesh: self.mesh.clone(),
                    axis: self.axis.clone(),
                    perm: self.perm.iter().map(|&(s, d)| (d, s)).collect(),
                },
                &[ct],
            )
        })])
    }
}

/// Sends each device's `x` along mesh `axis`: for a pair `(src, dst)` of axis indices, the
/// device at index `dst` receives the value of the one at `src`, in every group of the other
/// axes; a device that receives nothing gets zeros (JAX's `lax.ppermute`;
/// `stablehlo.collective_permute`). Only inside a `shard_map` body.
#[track_caller]
pub fn ppermute(x: &Tensor, axis: &str, perm: &[(usize, usize)]) -> Tensor {
    match context("ppermute", &[axis]) {
        Ok(mesh) => bind1(
            Ppermute {
                mesh,
                axis: axis.to_string(),
                perm: perm.to_vec(),
            },
            &[x],
        ),
        Err(e) => fail("ppermute", e, &[x.aval()], Some(x), x.aval().clone()),
    }
}

/// See [`axis_index`].
#[derive(Debug)]
struct PartitionId;

impl Primitive for PartitionId {
    fn name(&self) -> &'static str {
        "partition_id"
    }
    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 0)?;
        Ok(vec![Aval::new([], DType::U32)])
    }
    fn emit(&self, cx: &EmitCx) -> String {
        format!("\"stablehlo.partition_id\"() : () -> {}", ty(&cx.outs[0]))
    }
}

/// This device's index along mesh `axis`, an `i32` scalar (JAX's `lax.axis_index`): its
/// partition id divided by the sizes of the later mesh axes, modulo the axis size. Only
/// inside a `shard_map` body.
#[track_caller]
pub fn axis_index(axis: &str) -> Tensor {
    let mesh = match context("axis_index", &[axis]) {
        Ok(m) => m,
        Err(e) => return fail("axis_index", e, &[], None, Aval::new([], DType::I32)),
    };
    let k = mesh.axis_index(axis).unwrap_or(0);
    let later: usize = mesh.axes()[k + 1..].iter().map(|(_, s)| *s).product();
    let id = bind1(PartitionId, &[]);
    let id = crate::prim::div(&id, &crate::prim::scalar(later as u32));
    let id = crate::prim::rem(&id, &crate::prim::scalar(mesh.axes()[k].1 as u32));
    crate::prim::convert(&id, DType::I32)
}
