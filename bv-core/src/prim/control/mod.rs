//! Control-flow primitives on flat lists of tensors (`lax.while_loop`, `scan`, `switch`
//! without pytrees): bodies are traced once into sub-graphs and lowered to StableHLO `case`
//! and `while` ops with regions; tensors a body closes over become explicit operands.
//! [`crate::control`] puts pytrees around them.

mod prims;

use std::rc::Rc;

use crate::dtype::DType;
use crate::prim::{self, CompareDir};
use crate::trace::{self, bind_rc, fresh, trace_call, Aval, BatchResult, CallSite, Func};
use crate::trace::{Primitive, Tensor};
use prims::{Body, Case, Scan, While};

/// Traces `f` as a body on parameters of `avals`; outputs it returns unchanged from outside
/// are captured too.
fn body(avals: &[Aval], f: impl FnOnce(&[Tensor]) -> Vec<Tensor>) -> (Func, Vec<Tensor>) {
    let b = trace_call(avals, |p| fresh(&f(p)));
    (b.func, b.captures)
}

fn avals(xs: &[Tensor]) -> Vec<Aval> {
    xs.iter()
        .map(|x| Aval {
            weak: false,
            ..x.aval().clone()
        })
        .collect()
}

fn strong(xs: &[Tensor]) -> Vec<Tensor> {
    xs.iter()
        .map(|x| {
            if x.is_weak() {
                prim::convert(x, x.dtype())
            } else {
                x.clone()
            }
        })
        .collect()
}

/// [`while_loop`] on flat lists.
#[track_caller]
pub(crate) fn while_flat(
    cond: &dyn Fn(&[Tensor]) -> Tensor,
    step: &dyn Fn(&[Tensor]) -> Vec<Tensor>,
    init: &[Tensor],
) -> Vec<Tensor> {
    let init = strong(init);
    let a = avals(&init);
    let n = init.len();
    let (cf, cc) = body(&a, |p| vec![cond(p)]);
    let (bf, bc) = body(&a, |p| step(p));
    let cmap = (0..n).chain(n..n + cc.len()).collect();
    let bmap = (0..n)
        .chain(n + cc.len()..n + cc.len() + bc.len())
        .collect();
    let mut ops = init;
    ops.extend(cc);
    ops.extend(bc);
    let prim = While {
        cond: Body {
            func: cf,
            map: cmap,
        },
        body: Body {
            func: bf,
            map: bmap,
        },
        n_carry: n,
        n_ops: ops.len(),
    };
    let refs: Vec<&Tensor> = ops.iter().collect();
    let mut out = bind_rc(Rc::new(prim), &refs);
    out.truncate(n);
    out
}

/// A scan body on flat lists: `(carry, x_slices) -> (carry, y_slices)`.
type ScanBody<'a> = &'a dyn Fn(&[Tensor], &[Tensor]) -> (Vec<Tensor>, Vec<Tensor>);

/// A branch of [`switch`] on flat lists.
pub(crate) type Branch<'a> = &'a dyn Fn(&[Tensor]) -> Vec<Tensor>;

/// [`scan`] on flat lists: `f(carry, x_slices) -> (carry, y_slices)`.
#[track_caller]
pub(crate) fn scan_flat(
    f: ScanBody<'_>,
    init: &[Tensor],
    xs: &[Tensor],
    length: usize,
    reverse: bool,
) -> (Vec<Tensor>, Vec<Tensor>) {
    let site = CallSite::here();
    let init = strong(init);
    let (nc, nx) = (init.len(), xs.len());
    for x in xs {
        if x.rank() == 0 || x.shape()[0] != length {
            let reason = format!(
                "every xs leaf needs leading dimension {length}, got {}",
                x.aval()
            );
            trace::record("scan", reason, &[x.aval()], site);
            return (init, Vec::new());
        }
    }
    let mut a = avals(&init);
    a.extend(xs.iter().map(|x| Aval::new(&x.shape()[1..], x.dtype())));
    let (func, caps) = body(&a, |p| {
        let (c, y) = f(&p[..nc], &p[nc..]);
        let mut o = strong(&c);
        o.extend(strong(&y));
        o
    });
    let outs = func.out_avals();
    if outs.len() < nc
        || outs[..nc]
            .iter()
            .zip(&init)
            .any(|(o, i)| o.shape != i.shape() || o.dtype != i.dtype())
    {
        let shown: Vec<String> = outs.iter().take(nc).map(|o| o.to_string()).collect();
        let reason = format!(
            "the body's carry ({}) must keep the shapes and types of init",
            shown.join(", ")
        );
        let ins: Vec<&Aval> = init.iter().map(|t| t.aval()).collect();
        trace::record("scan", reason, &ins, site);
        return (init, Vec::new());
    }
    let y_avals = outs[nc..].to_vec();
    let mut ops = init.clone();
    ops.extend(xs.iter().cloned());
    ops.extend(caps);
    let (lowered, inner) = body(&avals(&ops), |p| {
        lower_scan(&func, p, nc, nx, &y_avals, length, reverse)
    });
    if !inner.is_empty() {
        trace::record(
            "scan",
            "the lowered loop captured an outer value (a bug in bv)".into(),
            &[],
            site,
        );
    }
    let prim = Scan {
        body: func,
        n_carry: nc,
        n_x: nx,
        length,
        reverse,
        lowered,
    };
    let refs: Vec<&Tensor> = ops.iter().collect();
    let mut out = bind_rc(Rc::new(prim), &refs);
    let ys = out.split_off(nc.min(out.len()));
    (out, ys)
}

/// The `while` loop behind a scan: a counter, the carry and output buffers written one
/// step at a time with `dynamic_update_slice`.
fn lower_scan(
    func: &Func,
    p: &[Tensor],
    nc: usize,
    nx: usize,
    y_avals: &[Aval],
    length: usize,
    reverse: bool,
) -> Vec<Tensor> {
    let (init, rest) = p.split_at(nc);
    let (xs, caps) = rest.split_at(nx);
    let zero = prim::scalar(0i32);
    let mut state = vec![zero.clone()];
    state.extend(init.iter().cloned());
    for y in y_avals {
        let mut shape = vec![length];
        shape.extend(&y.shape);
        state.push(prim::full(&shape, prim::Scalar::Int(0), y.dtype));
    }
    let n_len = prim::scalar(length as i32);
    let out = while_flat(
        &|s: &[Tensor]| prim::compare(&s[0], &n_len, CompareDir::Lt),
        &|s: &[Tensor]| {
            let i = &s[0];
            let idx = if reverse {
                prim::sub(&prim::scalar(length as i32 - 1), i)
            } else {
                i.clone()
            };
            let starts = |r: usize| -> Vec<Tensor> {
                let mut v = vec![idx.clone()];
                v.extend((1..r).map(|_| zero.clone()));
                v
            };
            let mut args: Vec<Tensor> = s[1..=nc].to_vec();
            for x in xs {
                let st = starts(x.rank());
                let refs: Vec<&Tensor> = st.iter().collect();
                let mut sizes = x.shape().to_vec();
                sizes[0] = 1;
                let sl = prim::dynamic_slice(x, &refs, &sizes);
                args.push(prim::reshape(&sl, &x.shape()[1..]));
            }
            args.extend(caps.iter().cloned());
            let o = trace::replay(func, &args);
            let mut next = vec![prim::add(i, &prim::scalar(1i32))];
            next.extend(o[..nc].iter().cloned());
            for (buf, y) in s[1 + nc..].iter().zip(&o[nc..]) {
                let st = starts(buf.rank());
                let refs: Vec<&Tensor> = st.iter().collect();
                let mut shape = vec![1];
                shape.extend(y.shape());
                next.push(prim::dynamic_update_slice(
                    buf,
                    &prim::reshape(y, &shape),
                    &refs,
                ));
            }
            next
        },
        &state,
    );
    out[1..].to_vec()
}

/// [`switch`] on flat lists.
#[track_caller]
pub(crate) fn switch_flat(index: &Tensor, branches: &[Branch<'_>], ops: &[Tensor]) -> Vec<Tensor> {
    let n = branches.len().max(1) as i32;
    let idx = prim::convert(index, DType::I32);
    let idx = prim::clamp(&prim::scalar(0i32), &idx, &prim::scalar(n - 1));
    let a = avals(ops);
    let mut all = ops.to_vec();
    let mut bodies = Vec::new();
    for br in branches {
        let (func, caps) = body(&a, |p| br(p));
        let start = all.len();
        all.extend(caps.iter().cloned());
        let map = (0..ops.len()).chain(start..all.len()).collect();
        bodies.push(Body { func, map });
    }
    let mut args = vec![idx];
    args.extend(all);
    let refs: Vec<&Tensor> = args.iter().collect();
    bind_rc(Rc::new(Case { branches: bodies }), &refs)
}

/// A rule for any primitive: applies it to one batch element at a time in a `scan` over the
/// batch. Correct but sequential; used only where no vectorized rule is written: a batched
/// initial value of a reduction, batched scalars of the window-gradient ops, and a batched
/// kernel of a grouped convolution.
pub(crate) fn by_loop(
    prim: Rc<dyn Primitive>,
    ins: &[Tensor],
    dims: &[Option<usize>],
) -> BatchResult {
    let n = crate::batching::size(ins, dims);
    let xs: Vec<Tensor> = ins
        .iter()
        .zip(dims)
        .filter_map(|(x, d)| d.map(|d| crate::batching::moveaxis(x, d, 0)))
        .collect();
    let (_, ys) = scan_flat(
        &|_: &[Tensor], slices: &[Tensor]| {
            let mut k = 0;
            let args: Vec<Tensor> = ins
                .iter()
                .zip(dims)
                .map(|(x, d)| match d {
                    Some(_) => {
                        k += 1;
                        slices[k - 1].clone()
                    }
                    None => x.clone(),
                })
                .collect();
            let refs: Vec<&Tensor> = args.iter().collect();
            (Vec::new(), bind_rc(prim.clone(), &refs))
        },
        &[],
        &xs,
        n,
        false,
    );
    let dims = vec![Some(0); ys.len()];
    Ok((ys, dims))
}
