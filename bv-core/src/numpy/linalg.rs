//! `matmul` (numpy semantics, broadcast batch dimensions), two-operand `einsum`, the
//! 2-norm, `dot`, `inner`, `outer`, `vdot`, `diag` and `trace`.

use crate::dtype::DType;
use crate::numpy::{broadcast_shapes, broadcast_to, eye, inexact, promote_all, sqrt, sum, Axes};
use crate::prim::{self, DotDims, Precision};
use crate::trace::{fail, Aval, Tensor};

/// The 2-norm over `axes` (the Frobenius norm over two): `sqrt(sum(x * x))`, as
/// `jnp.linalg.norm` with `ord=None`. Like JAX's, its derivative at 0 is NaN (`0 * inf`).
#[track_caller]
pub fn norm(x: &Tensor, axes: impl Into<Axes>, keepdims: bool) -> Tensor {
    let x = inexact(x);
    sqrt(&sum(&prim::mul(&x, &x), axes, keepdims))
}

/// Matrix product with numpy's rules: 1-D operands gain and then lose a unit dimension,
/// leading (batch) dimensions broadcast.
#[track_caller]
pub fn matmul(x: &Tensor, y: &Tensor) -> Tensor {
    let (x, y) = promote_pair(x, y);
    if x.rank() == 0 || y.rank() == 0 {
        return fail(
            "matmul",
            "operands must have at least one dimension".into(),
            &[x.aval(), y.aval()],
            Some(&x),
            x.aval().clone(),
        );
    }
    let x2 = if x.rank() == 1 {
        prim::reshape(&x, &[1, x.shape()[0]])
    } else {
        x.clone()
    };
    let y2 = if y.rank() == 1 {
        prim::reshape(&y, &[y.shape()[0], 1])
    } else {
        y.clone()
    };
    let (xb, yb) = (&x2.shape()[..x2.rank() - 2], &y2.shape()[..y2.rank() - 2]);
    let Some(batch) = broadcast_shapes(xb, yb) else {
        let reason = format!("cannot broadcast batch dimensions {xb:?} and {yb:?}");
        return fail(
            "matmul",
            reason,
            &[x.aval(), y.aval()],
            Some(&x),
            x.aval().clone(),
        );
    };
    let with_batch = |t: &Tensor| {
        let mut s = batch.clone();
        s.extend_from_slice(&t.shape()[t.rank() - 2..]);
        broadcast_to(t, &s)
    };
    let (xs, ys) = (with_batch(&x2), with_batch(&y2));
    let nb = batch.len();
    let dims = DotDims {
        lhs_contracting: vec![nb + 1],
        rhs_contracting: vec![nb],
        lhs_batch: (0..nb).collect(),
        rhs_batch: (0..nb).collect(),
    };
    let out = prim::dot_general(&xs, &ys, dims, Precision::Default, None);
    let mut shape = batch;
    if x.rank() > 1 {
        shape.push(x2.shape()[x2.rank() - 2]);
    }
    if y.rank() > 1 {
        shape.push(y2.shape()[y2.rank() - 1]);
    }
    if shape == out.shape() {
        out
    } else {
        prim::reshape(&out, &shape)
    }
}

/// Promotes two tensors to one element type without broadcasting.
#[track_caller]
fn promote_pair(x: &Tensor, y: &Tensor) -> (Tensor, Tensor) {
    let mut v = promote_all(&[x, y]);
    let y = v.pop().expect("two operands");
    (v.pop().expect("two operands"), y)
}

/// Einstein summation over one or two operands, e.g. `"bqhd,bkhd->bhqk"`. Labels in both
/// operands and the output are batch dimensions; labels in both operands only are summed
/// (contracted); labels in one operand only and not in the output are summed first. Without
/// `->`, the output is the labels that occur once, in alphabetical order. No ellipsis.
#[track_caller]
pub fn einsum(spec: &str, operands: &[&Tensor]) -> Tensor {
    match parse(spec, operands) {
        Ok((ins, out)) => match operands {
            [x, y] => pair(x, y, &ins[0], &ins[1], &out),
            _ => single(operands[0], &ins[0], &out),
        },
        Err(reason) => {
            let avals: Vec<&Aval> = operands.iter().map(|t| t.aval()).collect();
            let like = operands.first().copied();
            let aval = like
                .map(|t| t.aval().clone())
                .unwrap_or(Aval::new([], crate::DType::F32));
            fail("einsum", reason, &avals, like, aval)
        }
    }
}

type Labels = Vec<char>;

fn parse(spec: &str, operands: &[&Tensor]) -> Result<(Vec<Labels>, Labels), String> {
    let spec: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    if spec.contains("...") {
        return Err("ellipsis is not supported; name every dimension".into());
    }
    let (lhs, out) = match spec.split_once("->") {
        Some((l, o)) => (l.to_string(), Some(o.chars().collect::<Labels>())),
        None => (spec.clone(), None),
    };
    let ins: Vec<Labels> = lhs.split(',').map(|s| s.chars().collect()).collect();
    if ins.len() != operands.len() || !(1..=2).contains(&ins.len()) {
        return Err(format!(
            "spec `{spec}` names {} operands; {} given (one or two supported)",
            ins.len(),
            operands.len()
        ));
    }
    let mut sizes: Vec<(char, usize)> = Vec::new();
    for (labels, t) in ins.iter().zip(operands) {
        if labels.len() != t.rank() {
            return Err(format!(
                "`{}` has {} labels for a rank-{} operand",
                labels.iter().collect::<String>(),
                labels.len(),
                t.rank()
            ));
        }
        for (i, &c) in labels.iter().enumerate() {
            if labels[..i].contains(&c) {
                return Err(format!(
                    "label `{c}` repeats within one operand (diagonals are not supported)"
                ));
            }
            match sizes.iter().find(|(l, _)| *l == c) {
                Some(&(_, n)) if n != t.shape()[i] => {
                    return Err(format!("label `{c}` has sizes {n} and {}", t.shape()[i]))
                }
                Some(_) => {}
                None => sizes.push((c, t.shape()[i])),
            }
        }
    }
    let out = match out {
        Some(o) => o,
        None => {
            let mut once: Labels = sizes
                .iter()
                .map(|&(c, _)| c)
                .filter(|c| ins.iter().flatten().filter(|d| *d == c).count() == 1)
                .collect();
            once.sort_unstable();
            once
        }
    };
    for &c in &out {
        if !sizes.iter().any(|&(l, _)| l == c) {
            return Err(format!("output label `{c}` is not in any operand"));
        }
    }
    Ok((ins, out))
}

/// Sums away labels of `x` not in `keep`, returning the reduced tensor and its labels.
#[track_caller]
fn sum_unused(x: &Tensor, labels: &Labels, keep: &dyn Fn(char) -> bool) -> (Tensor, Labels) {
    let axes: Vec<usize> = labels
        .iter()
        .enumerate()
        .filter(|(_, &c)| !keep(c))
        .map(|(i, _)| i)
        .collect();
    if axes.is_empty() {
        return (x.clone(), labels.clone());
    }
    let rest: Labels = labels.iter().copied().filter(|&c| keep(c)).collect();
    (prim::reduce(x, prim::ReduceKind::Sum, &axes), rest)
}

#[track_caller]
fn permute_to(x: &Tensor, labels: &Labels, out: &Labels) -> Tensor {
    let perm: Vec<usize> = out
        .iter()
        .filter_map(|c| labels.iter().position(|l| l == c))
        .collect();
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        x.clone()
    } else {
        prim::transpose(x, &perm)
    }
}

#[track_caller]
fn single(x: &Tensor, labels: &Labels, out: &Labels) -> Tensor {
    let (r, rl) = sum_unused(x, labels, &|c| out.contains(&c));
    permute_to(&r, &rl, out)
}

#[track_caller]
fn pair(x: &Tensor, y: &Tensor, lx: &Labels, ly: &Labels, out: &Labels) -> Tensor {
    let (x, y) = promote_pair(x, y);
    let (x, lx) = sum_unused(&x, lx, &|c| out.contains(&c) || ly.contains(&c));
    let (y, ly) = sum_unused(&y, ly, &|c| out.contains(&c) || lx.contains(&c));
    let batch: Labels = lx
        .iter()
        .copied()
        .filter(|c| ly.contains(c) && out.contains(c))
        .collect();
    let contract: Labels = lx
        .iter()
        .copied()
        .filter(|c| ly.contains(c) && !out.contains(c))
        .collect();
    let pos = |ls: &Labels, c: &char| ls.iter().position(|l| l == c).unwrap_or(0);
    let dims = DotDims {
        lhs_batch: batch.iter().map(|c| pos(&lx, c)).collect(),
        rhs_batch: batch.iter().map(|c| pos(&ly, c)).collect(),
        lhs_contracting: contract.iter().map(|c| pos(&lx, c)).collect(),
        rhs_contracting: contract.iter().map(|c| pos(&ly, c)).collect(),
    };
    let r = prim::dot_general(&x, &y, dims, Precision::Default, None);
    let mut rl = batch.clone();
    rl.extend(
        lx.iter()
            .copied()
            .filter(|c| !batch.contains(c) && !contract.contains(c)),
    );
    rl.extend(
        ly.iter()
            .copied()
            .filter(|c| !batch.contains(c) && !contract.contains(c)),
    );
    permute_to(&r, &rl, out)
}

/// `x[i] * y[j]` over the flattened operands (`jnp.outer`), promoting element types.
#[track_caller]
pub fn outer(x: &Tensor, y: &Tensor) -> Tensor {
    let (x, y) = promote_pair(x, y);
    let (n, m) = (x.size(), y.size());
    let xs = prim::broadcast_in_dim(&prim::reshape(&x, &[n]), &[n, m], &[0]);
    let ys = prim::broadcast_in_dim(&prim::reshape(&y, &[m]), &[n, m], &[1]);
    prim::mul(&xs, &ys)
}

/// The dot product of the flattened operands (`jnp.vdot` for real inputs).
#[track_caller]
pub fn vdot(x: &Tensor, y: &Tensor) -> Tensor {
    let (x, y) = promote_pair(x, y);
    if x.size() != y.size() {
        let reason = format!("sizes of {:?} and {:?} differ", x.shape(), y.shape());
        return fail(
            "vdot",
            reason,
            &[x.aval(), y.aval()],
            Some(&x),
            x.aval().clone(),
        );
    }
    let flat = |t: &Tensor| prim::reshape(t, &[t.size()]);
    contract("vdot", &flat(&x), &flat(&y), 0, 0)
}

/// `jnp.diag`: a 1-D `x` placed on the `k`-th diagonal of a square matrix, or the `k`-th
/// diagonal of a 2-D `x`.
#[track_caller]
pub fn diag(x: &Tensor, k: i64) -> Tensor {
    let off = k.unsigned_abs() as usize;
    match *x.shape() {
        [n] => {
            let size = n + off;
            let v = prim::pad(x, &prim::full(&[], 0, x.dtype()), &[(0, off as i64, 0)]);
            let along = if k >= 0 { 0 } else { 1 };
            let v = prim::broadcast_in_dim(&v, &[size, size], &[along]);
            let on = eye(size, size, k, DType::Bool);
            prim::select(&on, &v, &prim::full(&[size, size], 0, x.dtype()))
        }
        [n, m] => {
            let on = eye(n, m, k, DType::Bool);
            let kept = prim::select(&on, x, &prim::full(&[n, m], 0, x.dtype()));
            let (axis, len) = if k >= 0 {
                (1, n.min(m.saturating_sub(off)))
            } else {
                (0, m.min(n.saturating_sub(off)))
            };
            let line = prim::reduce(&kept, prim::ReduceKind::Sum, &[axis]);
            prim::slice_in_dim(&line, 0, 0, len, 1)
        }
        _ => {
            let reason = format!("needs a 1-D or 2-D input, got shape {:?}", x.shape());
            fail("diag", reason, &[x.aval()], Some(x), x.aval().clone())
        }
    }
}

/// `jnp.dot`: the product of scalars, the sum over the last axis of `x` and the
/// second-to-last of `y` (the last for a 1-D `y`); the result's dimensions are `x`'s then
/// `y`'s remaining ones.
#[track_caller]
pub fn dot(x: &Tensor, y: &Tensor) -> Tensor {
    let (x, y) = promote_pair(x, y);
    if x.rank() == 0 || y.rank() == 0 {
        return crate::numpy::multiply(&x, &y);
    }
    let (a, b) = (x.rank() - 1, y.rank().saturating_sub(2));
    contract("dot", &x, &y, a, b)
}

/// `jnp.inner`: the sum over the last axes of both operands (the product for scalars).
#[track_caller]
pub fn inner(x: &Tensor, y: &Tensor) -> Tensor {
    let (x, y) = promote_pair(x, y);
    if x.rank() == 0 || y.rank() == 0 {
        return crate::numpy::multiply(&x, &y);
    }
    contract("inner", &x, &y, x.rank() - 1, y.rank() - 1)
}

/// Sums `x`'s axis `a` against `y`'s axis `b` (equal lengths), keeping the other axes in
/// order, `x`'s first.
#[track_caller]
fn contract(op: &'static str, x: &Tensor, y: &Tensor, a: usize, b: usize) -> Tensor {
    if x.shape()[a] != y.shape()[b] {
        let reason = format!(
            "axis {a} of {:?} and axis {b} of {:?} differ in length",
            x.shape(),
            y.shape()
        );
        return fail(op, reason, &[x.aval(), y.aval()], Some(x), x.aval().clone());
    }
    let dims = DotDims {
        lhs_contracting: vec![a],
        rhs_contracting: vec![b],
        ..DotDims::default()
    };
    prim::dot_general(x, y, dims, Precision::Default, None)
}

/// The sum of the `k`-th diagonal of a matrix (`jnp.trace`).
#[track_caller]
pub fn trace(x: &Tensor, k: i64) -> Tensor {
    if x.rank() != 2 {
        let reason = format!("needs a 2-D input, got shape {:?}", x.shape());
        return fail("trace", reason, &[x.aval()], Some(x), x.aval().clone());
    }
    sum(&diag(x, k), Axes::All, false)
}
