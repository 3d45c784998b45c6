//! The derivative primitives of max/min windows, each the transpose of the other:
//! `select_and_scatter_add` adds each window's cotangent at the position its extremum came
//! from (`stablehlo.select_and_scatter`); `select_and_gather_add` reads a tangent at each
//! window's extremum (a two-operand `stablehlo.reduce_window`).

use crate::emit::{i64_array, scalar_ty, EmitCx};
use crate::prim::BatchResult;
use crate::prim::{compare_type, Primitive, ReduceKind, VjpResult, Window};
use crate::trace::error::ensure;
use crate::trace::fill;
use crate::trace::{bind, bind1, Aval, OpError, Tensor};
use std::rc::Rc;

fn select_dir(kind: ReduceKind) -> &'static str {
    if kind == ReduceKind::Min {
        "LE"
    } else {
        "GE"
    }
}

/// The rule of the window-gradient ops: the first `k` operands batched in front under the
/// window with a leading size-1 dimension (`led`), the scalar operands after them as they
/// are; batched scalars go one batch element at a time (`orig`).
fn window_batch<P: Primitive>(
    led: P,
    orig: Rc<dyn Primitive>,
    k: usize,
    ins: &[Tensor],
    dims: &[Option<usize>],
) -> BatchResult {
    if dims[k..].iter().any(Option::is_some) {
        return super::control::by_loop(orig, ins, dims);
    }
    let mut args = crate::batching::all_front(&ins[..k], &dims[..k]);
    args.extend(ins[k..].iter().cloned());
    let refs: Vec<&Tensor> = args.iter().collect();
    let outs = bind(led, &refs);
    let d = vec![Some(0); outs.len()];
    Ok((outs, d))
}

/// Scatters `source` (one value per window) into `operand`'s shape at each window's
/// max (or min) position, adding where windows overlap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectAndScatterAdd {
    /// `Max` or `Min`.
    pub kind: ReduceKind,
    /// The windows (no dilation).
    pub window: Window,
}

/// Scatters `source` (one value per window) into `operand`'s shape at each window's
/// max (or min) position, adding where windows overlap.
/// `kind`: `Max` or `Min`; `window`: the windows (no dilation).
#[track_caller]
pub fn select_and_scatter_add(
    source: &Tensor,
    operand: &Tensor,
    kind: ReduceKind,
    window: &Window,
) -> Tensor {
    let zero = fill(&Aval::new([], operand.dtype()), 0.0);
    bind1(
        SelectAndScatterAdd {
            kind,
            window: window.clone(),
        },
        &[operand, source, &zero],
    )
}

impl Primitive for SelectAndScatterAdd {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        window_batch(
            SelectAndScatterAdd {
                kind: self.kind,
                window: self.window.lead(),
            },
            Rc::new(self.clone()),
            2,
            ins,
            dims,
        )
    }

    fn name(&self) -> &'static str {
        "select_and_scatter_add"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        crate::prim::arity(ins, 3)?;
        let (x, s) = (ins[0], ins[1]);
        ensure!(
            x.dtype.is_float() && s.dtype == x.dtype,
            "operand and source must share a float type"
        );
        ensure!(
            self.window.output_shape(&x.shape)? == s.shape,
            "source must have the window output shape"
        );
        Ok(vec![x.with_dtype(x.dtype)])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let t = scalar_ty(cx.ins[0].aval);
        let s = cx.scope;
        let ct = compare_type(cx.ins[0].aval.dtype);
        let w = &self.window;
        let pads: Vec<String> = w
            .padding
            .iter()
            .map(|(l, h)| format!("[{l}, {h}]"))
            .collect();
        format!(
            "\"stablehlo.select_and_scatter\"({}) <{{padding = dense<[{}]> : tensor<{}x2xi64>, window_dimensions = {}, window_strides = {}}}> ({{\n  ^bb0(%{s}_a: {t}, %{s}_b: {t}):\n    %{s}_c = stablehlo.compare {}, %{s}_a, %{s}_b, {ct} : ({t}, {t}) -> tensor<i1>\n    stablehlo.return %{s}_c : tensor<i1>\n}}, {{\n  ^bb0(%{s}_x: {t}, %{s}_y: {t}):\n    %{s}_z = stablehlo.add %{s}_x, %{s}_y : {t}\n    stablehlo.return %{s}_z : {t}\n}}) : {}",
            cx.names(),
            pads.join(", "),
            w.dims.len(),
            i64_array(&w.dims),
            i64_array(&w.strides),
            select_dir(self.kind),
            cx.fn_type()
        )
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let d = cts[0]
            .as_ref()
            .map(|g| select_and_gather_add(g, &ins[0], self.kind, &self.window));
        Ok(vec![None, d, None])
    }
}

/// Reads `tangent` at the position of each window's max (or min) of `operand`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectAndGatherAdd {
    /// `Max` or `Min`.
    pub kind: ReduceKind,
    /// The windows.
    pub window: Window,
}

/// Reads `tangent` at the position of each window's max (or min) of `operand`.
/// `kind`: `Max` or `Min`; `window`: the windows.
#[track_caller]
pub fn select_and_gather_add(
    tangent: &Tensor,
    operand: &Tensor,
    kind: ReduceKind,
    window: &Window,
) -> Tensor {
    let s = Aval::new([], operand.dtype());
    let init = fill(
        &s,
        if kind == ReduceKind::Min {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        },
    );
    let zero = fill(&s, 0.0);
    let mut outs = bind(
        SelectAndGatherAdd {
            kind,
            window: window.clone(),
        },
        &[operand, tangent, &init, &zero],
    );
    outs.swap_remove(1)
}

impl Primitive for SelectAndGatherAdd {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        window_batch(
            SelectAndGatherAdd {
                kind: self.kind,
                window: self.window.lead(),
            },
            Rc::new(self.clone()),
            2,
            ins,
            dims,
        )
    }

    fn name(&self) -> &'static str {
        "select_and_gather_add"
    }

    fn num_outputs(&self) -> usize {
        2
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        crate::prim::arity(ins, 4)?;
        let (x, t) = (ins[0], ins[1]);
        ensure!(
            x.dtype.is_float() && t.dtype == x.dtype && t.shape == x.shape,
            "operand and tangent must share a float type and shape"
        );
        let shape = self.window.output_shape(&x.shape)?;
        Ok(vec![
            Aval::new(shape.clone(), x.dtype),
            Aval::new(shape, x.dtype),
        ])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let t = scalar_ty(cx.ins[0].aval);
        let s = cx.scope;
        let ct = compare_type(cx.ins[0].aval.dtype);
        let v = |n: &str| format!("%{s}_{n}");
        let body = [
            format!(
                "{} = stablehlo.compare {}, {}, {}, {ct} : ({t}, {t}) -> tensor<i1>",
                v("p"),
                select_dir(self.kind),
                v("ax"),
                v("bx")
            ),
            format!(
                "{} = stablehlo.select {}, {}, {} : tensor<i1>, {t}",
                v("vx"),
                v("p"),
                v("ax"),
                v("bx")
            ),
            format!(
                "{} = stablehlo.select {}, {}, {} : tensor<i1>, {t}",
                v("vt"),
                v("p"),
                v("at"),
                v("bt")
            ),
        ];
        let args = [
            (v("ax"), t.clone()),
            (v("at"), t.clone()),
            (v("bx"), t.clone()),
            (v("bt"), t.clone()),
        ];
        let reg = crate::emit::region(&args, &body, &[(v("vx"), t.clone()), (v("vt"), t)]);
        format!(
            "\"stablehlo.reduce_window\"({}) <{{{}}}> {reg} : {}",
            cx.names(),
            self.window.attrs(),
            cx.fn_type()
        )
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let d = cts[1]
            .as_ref()
            .map(|g| select_and_scatter_add(g, &ins[0], self.kind, &self.window));
        Ok(vec![None, d, None, None])
    }
}
