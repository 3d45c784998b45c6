//! The control-flow primitives: `case` (branches), `while` and `scan`, with their StableHLO
//! regions and derivative rules.

use std::rc::Rc;

use super::{scan_flat, switch_flat, while_flat, Branch};
use crate::autodiff::{backprop, differentiable, forward};
use crate::batching as b;
use crate::trace::{fresh, zeros_like};

/// A batched branch, owned.
type BranchFn<'a> = Box<dyn Fn(&[Tensor]) -> Vec<Tensor> + 'a>;
use crate::emit::{ty, EmitCx};
use crate::prim::{self as p, add, BatchResult, Primitive, VjpResult};
use crate::trace::{bind_rc, replay, trace_call, Aval, Func, OpError, Tensor};

/// A body with, for each of its parameters, the operand of the op it reads.
#[derive(Clone, Debug)]
pub(crate) struct Body {
    pub func: Func,
    pub map: Vec<usize>,
}

impl Body {
    fn args(&self, operands: &[Tensor]) -> Vec<Tensor> {
        self.map.iter().map(|&i| operands[i].clone()).collect()
    }

    fn dims(&self, dims: &[Option<usize>]) -> Vec<Option<usize>> {
        self.map.iter().map(|&i| dims[i]).collect()
    }

    /// Which results depend on the batched operands.
    fn depends(&self, batched: &[bool]) -> Vec<bool> {
        let b: Vec<bool> = self.map.iter().map(|&i| batched[i]).collect();
        b::depends(&self.func, &b)
    }

    /// The body applied to batched operands in the current trace.
    fn batched(&self, ops: &[Tensor], dims: &[Option<usize>]) -> (Vec<Tensor>, Vec<Option<usize>>) {
        b::batch_func(&self.func, &self.args(ops), &self.dims(dims))
    }

    fn names(&self, names: &[String]) -> Vec<String> {
        self.map.iter().map(|&i| names[i].clone()).collect()
    }
}

/// `x` batched at `d` placed per `batched`: in front when true, as it is otherwise.
fn put(x: &Tensor, d: Option<usize>, n: usize, batched: bool) -> Tensor {
    b::place(x, d, n, batched.then_some(0))
}

/// Which carries are batched: those batched on entry and, until nothing changes, those the
/// body makes depend on a batched value (JAX's fixpoint). `other` flags the operands after
/// the carry.
fn carry_fixpoint(
    body: &dyn Fn(&[bool]) -> Vec<bool>,
    init: Vec<bool>,
    other: &[bool],
) -> Vec<bool> {
    let mut cb = init;
    loop {
        let mut flags = cb.clone();
        flags.extend(other);
        let out = body(&flags);
        let next: Vec<bool> = cb.iter().zip(&out).map(|(a, o)| *a || *o).collect();
        if next == cb {
            return cb;
        }
        cb = next;
    }
}

/// A region in generic form: `{ ^bb0(args): lines; stablehlo.return rets }`.
fn block(
    args: &[(String, String)],
    lines: &[String],
    rets: &[String],
    ret_tys: &[String],
) -> String {
    let mut s = String::from("{\n");
    if !args.is_empty() {
        let a: Vec<String> = args.iter().map(|(n, t)| format!("{n}: {t}")).collect();
        s += &format!("^bb0({}):\n", a.join(", "));
    }
    for l in lines {
        s += &format!("  {}\n", l.replace('\n', "\n  "));
    }
    if rets.is_empty() {
        s += "  stablehlo.return\n}";
    } else {
        s += &format!(
            "  stablehlo.return {} : {}\n}}",
            rets.join(", "),
            ret_tys.join(", ")
        );
    }
    s
}

/// Runs one of several branches by index (`stablehlo.case`). Operand 0 is the `i32` index
/// (already clamped), the rest feed the branches.
#[derive(Debug)]
pub(crate) struct Case {
    pub branches: Vec<Body>,
}

impl Primitive for Case {
    /// An unbatched index picks a branch, each batched alike; a batched index runs every
    /// branch and selects per batch element (JAX turns the `cond` into `select_n`).
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let (ops, od) = (&ins[1..], &dims[1..]);
        let outs = self.num_outputs();
        if let Some(d) = dims[0] {
            let idx = b::moveaxis(&ins[0], d, 0);
            let mut res: Vec<Tensor> = Vec::new();
            for (k, br) in self.branches.iter().enumerate() {
                let (o, odims) = br.batched(ops, od);
                let o = o.iter().zip(odims).map(|(x, d)| b::batch_at(x, d, n, 0));
                if k == 0 {
                    res = o.collect();
                    continue;
                }
                let k = p::full(&[n], k as i32, idx.dtype());
                let hit = p::compare(&idx, &k, p::CompareDir::Eq);
                res = res
                    .iter()
                    .zip(o)
                    .map(|(prev, x)| {
                        p::select(&p::broadcast_in_dim(&hit, x.shape(), &[0]), &x, prev)
                    })
                    .collect();
            }
            return Ok((res, vec![Some(0); outs]));
        }
        let flags: Vec<bool> = od.iter().map(Option::is_some).collect();
        let mut ob = vec![false; outs];
        for br in &self.branches {
            for (o, d) in ob.iter_mut().zip(br.depends(&flags)) {
                *o |= d;
            }
        }
        let fns: Vec<BranchFn<'_>> = self
            .branches
            .iter()
            .map(|br| {
                let ob = &ob;
                Box::new(move |p: &[Tensor]| {
                    let (o, odims) = br.batched(p, od);
                    o.iter()
                        .zip(odims)
                        .zip(ob)
                        .map(|((x, d), &bt)| put(x, d, n, bt))
                        .collect()
                }) as BranchFn<'_>
            })
            .collect();
        let refs: Vec<Branch<'_>> = fns.iter().map(|f| f.as_ref()).collect();
        let res = switch_flat(&ins[0], &refs, ops);
        Ok((res, ob.iter().map(|&bt| bt.then_some(0)).collect()))
    }

    fn name(&self) -> &'static str {
        "case"
    }
    fn num_outputs(&self) -> usize {
        self.branches.first().map_or(0, |b| b.func.outputs.len())
    }
    fn infer(&self, _: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        let Some(first) = self.branches.first() else {
            return Err(OpError("needs at least one branch".into()));
        };
        let outs = first.func.out_avals();
        for (k, b) in self.branches.iter().enumerate() {
            let o = b.func.out_avals();
            let same = o.len() == outs.len()
                && o.iter()
                    .zip(&outs)
                    .all(|(a, b)| a.shape == b.shape && a.dtype == b.dtype);
            if !same {
                let show = |v: &[Aval]| {
                    v.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(OpError(format!(
                    "branch {k} returns ({}) but branch 0 returns ({}); branches must agree",
                    show(&o),
                    show(&outs)
                )));
            }
        }
        Ok(outs
            .into_iter()
            .map(|a| Aval { weak: false, ..a })
            .collect())
    }
    fn emit(&self, cx: &EmitCx) -> String {
        let names: Vec<String> = cx.ins[1..].iter().map(|o| o.name.to_string()).collect();
        let out_tys: Vec<String> = cx.outs.iter().map(ty).collect();
        let regions: Vec<String> = self
            .branches
            .iter()
            .map(|b| {
                let (lines, rets) = cx
                    .writer
                    .body(&b.func, &b.names(&names))
                    .unwrap_or_default();
                block(&[], &lines, &rets, &out_tys)
            })
            .collect();
        format!(
            "\"stablehlo.case\"({}) ({}) : ({}) -> ({})",
            cx.name(0),
            regions.join(", "),
            cx.ty(0),
            out_tys.join(", ")
        )
    }
    fn vjp(&self, ins: &[Tensor], outs: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let ops = &ins[1..];
        let cts: Vec<Tensor> = outs
            .iter()
            .zip(cts)
            .map(|(o, c)| c.clone().unwrap_or_else(|| zeros_like(o)))
            .collect();
        let wanted: Vec<usize> = (0..ops.len())
            .filter(|&j| differentiable(ops[j].aval()))
            .collect();
        let mut all = ops.to_vec();
        all.extend(cts.iter().cloned());
        let avals: Vec<Aval> = all.iter().map(|t| t.aval().clone()).collect();
        let mut branches = Vec::new();
        for b in &self.branches {
            let body = trace_call(&avals, |p| {
                let (ops, cts) = p.split_at(ops.len());
                let start = crate::trace::node_count(p.first());
                let seeds = fresh(&b.args(ops));
                let outs = replay(&b.func, &seeds);
                let cts: Vec<Option<Tensor>> = cts.iter().cloned().map(Some).collect();
                let g = backprop(start, &seeds, &outs, &cts);
                let mut acc: Vec<Option<Tensor>> = vec![None; ops.len()];
                for (&j, g) in b.map.iter().zip(g) {
                    if let Some(g) = g {
                        acc[j] = Some(match acc[j].take() {
                            Some(prev) => add(&prev, &g),
                            None => g,
                        });
                    }
                }
                wanted
                    .iter()
                    .map(|&j| acc[j].clone().unwrap_or_else(|| zeros_like(&ops[j])))
                    .collect::<Vec<_>>()
            });
            if !body.captures.is_empty() {
                return Err(OpError(
                    "a branch's backward pass used an outer value".into(),
                ));
            }
            branches.push(Body {
                func: body.func,
                map: (0..all.len()).collect(),
            });
        }
        let mut args = vec![ins[0].clone()];
        args.extend(all);
        let refs: Vec<&Tensor> = args.iter().collect();
        let g = bind_rc(Rc::new(Case { branches }), &refs);
        let mut out = vec![None; ins.len()];
        for (&j, g) in wanted.iter().zip(g) {
            out[j + 1] = Some(g);
        }
        Ok(out)
    }
}

/// A loop (`stablehlo.while`): the first `n_carry` operands are the carry, the rest are
/// loop-invariant values the bodies read. All operands are results (invariants unchanged).
#[derive(Debug)]
pub(crate) struct While {
    pub cond: Body,
    pub body: Body,
    pub n_carry: usize,
    pub n_ops: usize,
}

impl Primitive for While {
    /// JAX's rule: carries that become batched are batched from the start; a batched
    /// condition runs the loop while any batch element's holds, and elements whose condition
    /// fails keep their carry (every carry batched then).
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let nc = self.n_carry;
        let (carry, extra) = ins.split_at(nc);
        let ed = &dims[nc..];
        let other: Vec<bool> = ed.iter().map(Option::is_some).collect();
        let init_b = dims[..nc].iter().map(Option::is_some).collect();
        let mut cb = carry_fixpoint(&|f| self.body.depends(f), init_b, &other);
        let mut flags = cb.clone();
        flags.extend(&other);
        let pred_b = self.cond.depends(&flags)[0];
        if pred_b {
            cb = vec![true; nc];
        }
        let init: Vec<Tensor> = carry
            .iter()
            .zip(&dims[..nc])
            .zip(&cb)
            .map(|((x, &d), &bt)| put(x, d, n, bt))
            .collect();
        let mut all_dims: Vec<Option<usize>> = cb.iter().map(|&bt| bt.then_some(0)).collect();
        all_dims.extend(ed);
        let ops = |s: &[Tensor]| -> Vec<Tensor> {
            let mut o = s.to_vec();
            o.extend(extra.iter().cloned());
            o
        };
        let pred = |s: &[Tensor]| -> Tensor {
            let (o, od) = self.cond.batched(&ops(s), &all_dims);
            put(&o[0], od[0], n, pred_b)
        };
        let cond = |s: &[Tensor]| -> Tensor {
            let q = pred(s);
            if pred_b {
                p::reduce(&q, p::ReduceKind::Or, &[0])
            } else {
                q
            }
        };
        let step = |s: &[Tensor]| -> Vec<Tensor> {
            let (o, od) = self.body.batched(&ops(s), &all_dims);
            let next = o
                .iter()
                .zip(od)
                .zip(&cb)
                .map(|((x, d), &bt)| put(x, d, n, bt));
            if !pred_b {
                return next.collect();
            }
            let q = pred(s);
            next.zip(s)
                .map(|(x, old)| p::select(&p::broadcast_in_dim(&q, x.shape(), &[0]), &x, old))
                .collect()
        };
        let mut res = while_flat(&cond, &step, &init);
        res.extend(extra.iter().cloned());
        let mut rd: Vec<Option<usize>> = cb.iter().map(|&bt| bt.then_some(0)).collect();
        rd.extend(ed);
        Ok((res, rd))
    }

    fn name(&self) -> &'static str {
        "while_loop"
    }
    fn num_outputs(&self) -> usize {
        self.n_ops
    }
    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        let c = self.cond.func.out_avals();
        if c.len() != 1 || c[0].rank() != 0 || c[0].dtype != crate::DType::Bool {
            return Err(OpError("the condition must return a bool scalar".into()));
        }
        let b = self.body.func.out_avals();
        if b.len() != self.n_carry {
            return Err(OpError(format!(
                "the body returns {} values for a carry of {}",
                b.len(),
                self.n_carry
            )));
        }
        for (k, (o, i)) in b.iter().zip(ins).enumerate() {
            if o.shape != i.shape || o.dtype != i.dtype {
                return Err(OpError(format!(
                    "the body returns {o} for carry element {k}, which enters as {i}; the carry must keep its shapes and types"
                )));
            }
        }
        Ok(ins
            .iter()
            .map(|a| Aval {
                weak: false,
                ..(*a).clone()
            })
            .collect())
    }
    fn emit(&self, cx: &EmitCx) -> String {
        let tys: Vec<String> = cx.ins.iter().map(|o| ty(o.aval)).collect();
        let args = |p: &str| -> Vec<(String, String)> {
            tys.iter()
                .enumerate()
                .map(|(i, t)| (format!("%{}_{p}{i}", cx.scope), t.clone()))
                .collect()
        };
        let (ca, ba) = (args("c"), args("b"));
        let cnames: Vec<String> = ca.iter().map(|a| a.0.clone()).collect();
        let bnames: Vec<String> = ba.iter().map(|a| a.0.clone()).collect();
        let (cl, cr) = cx
            .writer
            .body(&self.cond.func, &self.cond.names(&cnames))
            .unwrap_or_default();
        let (bl, mut br) = cx
            .writer
            .body(&self.body.func, &self.body.names(&bnames))
            .unwrap_or_default();
        br.extend(bnames[self.n_carry..].iter().cloned());
        let cond = block(&ca, &cl, &cr, &["tensor<i1>".into()]);
        let body = block(&ba, &bl, &br, &tys);
        format!(
            "\"stablehlo.while\"({}) ({cond}, {body}) : ({}) -> ({})",
            cx.names(),
            tys.join(", "),
            tys.join(", ")
        )
    }
    fn vjp(&self, _: &[Tensor], _: &[Tensor], _: &[Option<Tensor>]) -> VjpResult {
        Err(OpError(
            "reverse-mode differentiation of while_loop is not supported (as in JAX); use scan or fori_loop with static bounds".into(),
        ))
    }
    fn jvp(&self, ins: &[Tensor], _: &[Tensor], tangents: &[Option<Tensor>]) -> Option<VjpResult> {
        let n = self.n_carry;
        let (carry, extra) = ins.split_at(n);
        let tan = |xs: &[Tensor], ts: &[Option<Tensor>]| -> Vec<Tensor> {
            xs.iter()
                .zip(ts)
                .map(|(x, t)| t.clone().unwrap_or_else(|| zeros_like(x)))
                .collect()
        };
        let tcarry = tan(carry, &tangents[..n]);
        let textra = tan(extra, &tangents[n..]);
        let (cond, body) = (&self.cond, &self.body);
        let mut init = carry.to_vec();
        init.extend(tcarry);
        let out = while_flat(
            &|s: &[Tensor]| {
                let mut ops = s[..n].to_vec();
                ops.extend(extra.iter().cloned());
                replay(&cond.func, &cond.args(&ops)).swap_remove(0)
            },
            &|s: &[Tensor]| {
                let mut ops = s[..n].to_vec();
                ops.extend(extra.iter().cloned());
                let mut ts: Vec<Option<Tensor>> = s[n..].iter().cloned().map(Some).collect();
                ts.extend(textra.iter().cloned().map(Some));
                let start = crate::trace::node_count(s.first());
                let seeds = fresh(&ops);
                let outs = replay(&body.func, &body.args(&seeds));
                let touts = forward(start, &seeds, &ts, &outs);
                let mut next = outs.clone();
                next.extend(
                    touts
                        .into_iter()
                        .zip(&outs)
                        .map(|(t, o)| t.unwrap_or_else(|| zeros_like(o))),
                );
                next
            },
            &init,
        );
        let mut res: Vec<Option<Tensor>> = out[n..].iter().cloned().map(Some).collect();
        res.resize(ins.len(), None);
        Some(Ok(res))
    }
}

/// `scan`: `length` applications of `body` to (carry, slices of `xs`), stacking the
/// per-step outputs. Operands are init (`n_carry`), xs (`n_x`, leading axis `length`) and
/// captured values; results are the final carry and the stacked outputs. Emitted as the
/// `while` loop in `lowered`.
#[derive(Debug)]
pub(crate) struct Scan {
    pub body: Func,
    pub n_carry: usize,
    pub n_x: usize,
    pub length: usize,
    pub reverse: bool,
    pub lowered: Func,
}

impl Primitive for Scan {
    /// JAX's rule: carries that become batched are batched from the start (in front); `xs`
    /// are scanned along their leading axis with the batch dimension next to it, so
    /// per-step slices and stacked outputs carry it at 1.
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let n = b::size(ins, dims);
        let (nc, nx) = (self.n_carry, self.n_x);
        let (init, rest) = ins.split_at(nc);
        let (xs, caps) = rest.split_at(nx);
        let other: Vec<bool> = dims[nc..].iter().map(Option::is_some).collect();
        let init_b = dims[..nc].iter().map(Option::is_some).collect();
        let body = &self.body;
        let cb = carry_fixpoint(&|f| b::depends(body, f), init_b, &other);
        let mut flags = cb.clone();
        flags.extend(&other);
        let yb = b::depends(body, &flags)[nc..].to_vec();
        let init2: Vec<Tensor> = init
            .iter()
            .zip(&dims[..nc])
            .zip(&cb)
            .map(|((x, &d), &bt)| put(x, d, n, bt))
            .collect();
        let xs2: Vec<Tensor> = xs
            .iter()
            .zip(&dims[nc..nc + nx])
            .map(|(x, d)| d.map_or(x.clone(), |d| b::moveaxis(x, d, 1)))
            .collect();
        let mut ad: Vec<Option<usize>> = cb.iter().map(|&bt| bt.then_some(0)).collect();
        ad.extend(dims[nc..nc + nx].iter().map(|d| d.map(|_| 0)));
        ad.extend(&dims[nc + nx..]);
        let (c, ys) = scan_flat(
            &|c: &[Tensor], x: &[Tensor]| {
                let mut a = c.to_vec();
                a.extend(x.iter().cloned());
                a.extend(caps.iter().cloned());
                let (o, od) = b::batch_func(body, &a, &ad);
                let mut placed = o.iter().zip(od).zip(cb.iter().chain(&yb));
                let carry = placed
                    .by_ref()
                    .take(nc)
                    .map(|((x, d), &bt)| put(x, d, n, bt))
                    .collect();
                let ys = placed.map(|((x, d), &bt)| put(x, d, n, bt)).collect();
                (carry, ys)
            },
            &init2,
            &xs2,
            self.length,
            self.reverse,
        );
        let mut rd: Vec<Option<usize>> = cb.iter().map(|&bt| bt.then_some(0)).collect();
        rd.extend(yb.iter().map(|&bt| bt.then_some(1)));
        let mut res = c;
        res.extend(ys);
        Ok((res, rd))
    }

    fn name(&self) -> &'static str {
        "scan"
    }
    fn num_outputs(&self) -> usize {
        self.lowered.outputs.len()
    }
    fn infer(&self, _: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        Ok(self.lowered.out_avals())
    }
    fn emit(&self, _: &EmitCx) -> String {
        String::new()
    }
    fn inline(&self) -> Option<&Func> {
        Some(&self.lowered)
    }
    fn vjp(&self, ins: &[Tensor], outs: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (nc, nx) = (self.n_carry, self.n_x);
        let (init, rest) = ins.split_at(nc);
        let (xs, caps) = rest.split_at(nx);
        let body = &self.body;
        // Forward again, keeping each step's incoming carry.
        let (_, stacked) = scan_flat(
            &|c: &[Tensor], x: &[Tensor]| {
                let mut a = c.to_vec();
                a.extend(x.iter().cloned());
                a.extend(caps.iter().cloned());
                let o = replay(body, &a);
                let mut ys = o[nc..].to_vec();
                ys.extend(c.iter().cloned());
                (o[..nc].to_vec(), ys)
            },
            init,
            xs,
            self.length,
            self.reverse,
        );
        let n_y = outs.len() - nc;
        let carries_in = &stacked[n_y..];
        let ct: Vec<Tensor> = outs
            .iter()
            .zip(cts)
            .map(|(o, c)| c.clone().unwrap_or_else(|| zeros_like(o)))
            .collect();
        let (ct_c, ct_ys) = ct.split_at(nc);
        let mut binit = ct_c.to_vec();
        binit.extend(caps.iter().map(zeros_like));
        let mut bxs = carries_in.to_vec();
        bxs.extend(xs.iter().cloned());
        bxs.extend(ct_ys.iter().cloned());
        let (fin, ct_xs) = scan_flat(
            &|c: &[Tensor], x: &[Tensor]| {
                let (ct_c, acc) = c.split_at(nc);
                let (c_in, rest) = x.split_at(nc);
                let (x_t, ct_y) = rest.split_at(nx);
                let mut a = c_in.to_vec();
                a.extend(x_t.iter().cloned());
                a.extend(caps.iter().cloned());
                let start = crate::trace::node_count(a.first());
                let seeds = fresh(&a);
                let o = replay(body, &seeds);
                let mut oc: Vec<Option<Tensor>> = ct_c.iter().cloned().map(Some).collect();
                oc.extend(ct_y.iter().cloned().map(Some));
                let g = backprop(start, &seeds, &o, &oc);
                let g: Vec<Tensor> = g
                    .into_iter()
                    .zip(&seeds)
                    .map(|(g, s)| g.unwrap_or_else(|| zeros_like(s)))
                    .collect();
                let mut carry = g[..nc].to_vec();
                for (a, gc) in acc.iter().zip(&g[nc + nx..]) {
                    carry.push(if differentiable(a.aval()) {
                        add(a, gc)
                    } else {
                        a.clone()
                    });
                }
                (carry, g[nc..nc + nx].to_vec())
            },
            &binit,
            &bxs,
            self.length,
            !self.reverse,
        );
        let mut res: Vec<Option<Tensor>> = fin[..nc].iter().cloned().map(Some).collect();
        res.extend(ct_xs.into_iter().map(Some));
        res.extend(fin[nc..].iter().cloned().map(Some));
        Ok(res
            .into_iter()
            .zip(ins)
            .map(|(r, x)| r.filter(|_| differentiable(x.aval())))
            .collect())
    }
}
