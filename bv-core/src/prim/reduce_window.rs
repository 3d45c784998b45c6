//! `reduce_window`: a monoid over sliding windows (max/avg pooling, cumulative sums).

use crate::emit::{i64_array, EmitCx};
use crate::prim::window_grad::select_and_scatter_add;
use crate::prim::BatchResult;
use crate::prim::VjpResult;
use crate::prim::{arity, scalar_weak, Primitive, ReduceKind};
use crate::trace::error::ensure;
use crate::trace::fill;
use crate::trace::{bind1, Aval, OpError, Tensor};
use std::rc::Rc;

/// Window geometry, one entry per operand dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Window size.
    pub dims: Vec<usize>,
    /// Step between windows.
    pub strides: Vec<usize>,
    /// `(low, high)` padding (with the monoid's identity).
    pub padding: Vec<(i64, i64)>,
    /// Spacing inserted between operand elements (1 = none).
    pub base_dilation: Vec<usize>,
    /// Spacing between window taps (1 = none).
    pub window_dilation: Vec<usize>,
}

impl Window {
    /// A window of `dims` with the given strides, no padding and no dilation.
    pub fn new(dims: &[usize], strides: &[usize]) -> Window {
        let n = dims.len();
        Window {
            dims: dims.to_vec(),
            strides: strides.to_vec(),
            padding: vec![(0, 0); n],
            base_dilation: vec![1; n],
            window_dilation: vec![1; n],
        }
    }

    /// The same window with `(low, high)` padding per dimension.
    pub fn with_padding(mut self, padding: &[(i64, i64)]) -> Window {
        self.padding = padding.to_vec();
        self
    }

    /// The same window with base and window dilation per dimension.
    pub fn with_dilation(mut self, base: &[usize], window: &[usize]) -> Window {
        self.base_dilation = base.to_vec();
        self.window_dilation = window.to_vec();
        self
    }

    /// The same window with a leading dimension of size 1 (for a batch dimension in front).
    pub(crate) fn lead(&self) -> Window {
        let one = |v: &[usize]| {
            let mut w = vec![1];
            w.extend(v);
            w
        };
        let mut padding = vec![(0, 0)];
        padding.extend(&self.padding);
        Window {
            dims: one(&self.dims),
            strides: one(&self.strides),
            padding,
            base_dilation: one(&self.base_dilation),
            window_dilation: one(&self.window_dilation),
        }
    }

    /// The output shape for an operand shape, or why the window does not fit it.
    pub fn output_shape(&self, shape: &[usize]) -> Result<Vec<usize>, OpError> {
        let n = shape.len();
        ensure!(
            self.dims.len() == n
                && self.strides.len() == n
                && self.padding.len() == n
                && self.base_dilation.len() == n
                && self.window_dilation.len() == n,
            "window dims, strides, padding and dilations need {n} entries each"
        );
        let mut out = Vec::with_capacity(n);
        // Seven per-dimension vectors are read in parallel, so the index is clearest.
        #[allow(clippy::needless_range_loop)]
        for i in 0..n {
            ensure!(
                self.dims[i] >= 1 && self.strides[i] >= 1,
                "window sizes and strides must be at least 1"
            );
            ensure!(
                self.base_dilation[i] >= 1 && self.window_dilation[i] >= 1,
                "dilations must be at least 1"
            );
            let dilated = if shape[i] == 0 {
                0
            } else {
                (shape[i] as i64 - 1) * self.base_dilation[i] as i64 + 1
            };
            let padded = dilated + self.padding[i].0 + self.padding[i].1;
            let span = (self.dims[i] as i64 - 1) * self.window_dilation[i] as i64 + 1;
            ensure!(
                padded >= 0,
                "padding of dimension {i} leaves a negative size"
            );
            out.push(if padded < span {
                0
            } else {
                ((padded - span) / self.strides[i] as i64 + 1) as usize
            });
        }
        Ok(out)
    }

    /// The window attributes in StableHLO's property syntax.
    pub(crate) fn attrs(&self) -> String {
        let pads: Vec<String> = self
            .padding
            .iter()
            .map(|(l, h)| format!("[{l}, {h}]"))
            .collect();
        format!(
            "base_dilations = {}, padding = dense<[{}]> : tensor<{}x2xi64>, window_dilations = {}, window_dimensions = {}, window_strides = {}",
            i64_array(&self.base_dilation),
            pads.join(", "),
            self.dims.len(),
            i64_array(&self.window_dilation),
            i64_array(&self.dims),
            i64_array(&self.strides)
        )
    }
}

/// Reduces each window of the operand with a monoid, starting from a scalar `init`
/// (`stablehlo.reduce_window`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReduceWindow {
    /// The monoid.
    pub kind: ReduceKind,
    /// The window geometry.
    pub window: Window,
}

/// Reduces every window of `x` with `kind`, starting from the monoid's identity.
#[track_caller]
pub fn reduce_window(x: &Tensor, kind: ReduceKind, window: &Window) -> Tensor {
    let init = scalar_weak(kind.identity(x.dtype()), x.dtype());
    bind1(
        ReduceWindow {
            kind,
            window: window.clone(),
        },
        &[x, &init],
    )
}

impl Primitive for ReduceWindow {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        if dims[1].is_some() {
            return super::control::by_loop(Rc::new(self.clone()), ins, dims);
        }
        let x = crate::batching::batch_at(&ins[0], dims[0], crate::batching::size(ins, dims), 0);
        let prim = ReduceWindow {
            kind: self.kind,
            window: self.window.lead(),
        };
        Ok((vec![bind1(prim, &[&x, &ins[1]])], vec![Some(0)]))
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        let (x, Some(g)) = (&ins[0], &cts[0]) else {
            return Ok(vec![None, None]);
        };
        let w = &self.window;
        let n = x.rank();
        let d = match self.kind {
            ReduceKind::Sum => {
                let dil = |s: usize, d: usize| {
                    if s == 0 {
                        0
                    } else {
                        1 + d as i64 * (s as i64 - 1)
                    }
                };
                let cfg: Vec<(i64, i64, i64)> = (0..n)
                    .map(|i| {
                        let lhs = dil(x.shape()[i], w.base_dilation[i]);
                        let rhs = dil(w.dims[i], w.window_dilation[i]);
                        let out = dil(g.shape()[i], w.strides[i]);
                        let before = rhs - w.padding[i].0 - 1;
                        (
                            before,
                            lhs + rhs - 1 - out - before,
                            w.strides[i] as i64 - 1,
                        )
                    })
                    .collect();
                let zero = fill(&Aval::new([], x.dtype()), 0.0);
                let padded = crate::prim::pad(g, &zero, &cfg);
                let back = Window::new(&w.dims, &vec![1; n])
                    .with_dilation(&vec![1; n], &w.window_dilation);
                let r = reduce_window(&padded, ReduceKind::Sum, &back);
                if w.base_dilation.iter().all(|&b| b == 1) {
                    r
                } else {
                    crate::prim::slice_strided(&r, &vec![0; n], r.shape(), &w.base_dilation)
                }
            }
            ReduceKind::Max | ReduceKind::Min => {
                let undilated = w
                    .base_dilation
                    .iter()
                    .chain(&w.window_dilation)
                    .all(|&d| d == 1);
                if !undilated {
                    return Err(OpError("reverse-mode derivatives of max/min windows with dilation are not supported (as in JAX)".into()));
                }
                select_and_scatter_add(g, x, self.kind, w)
            }
            _ => return Ok(vec![None, None]),
        };
        Ok(vec![Some(d), None])
    }

    fn name(&self) -> &'static str {
        "reduce_window"
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        arity(ins, 2)?;
        let (x, init) = (ins[0], ins[1]);
        ensure!(
            init.rank() == 0 && init.dtype == x.dtype,
            "init must be a scalar of the operand's type"
        );
        Ok(vec![x.with_shape(self.window.output_shape(&x.shape)?)])
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let t = crate::emit::scalar_ty(cx.ins[0].aval);
        format!(
            "\"stablehlo.reduce_window\"({}) <{{{}}}> {} : {}",
            cx.names(),
            self.window.attrs(),
            self.kind.region(cx.scope, &t),
            cx.fn_type()
        )
    }
}
