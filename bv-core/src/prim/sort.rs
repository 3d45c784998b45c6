//! `sort`: several same-shaped operands sorted together along one dimension, by the first
//! `num_keys` of them (lexicographically), stably.

use crate::batching::{self as b};
use crate::dtype::DType;
use crate::emit::{literal, region, scalar_ty, EmitCx};
use crate::prim::constant::Scalar;
use crate::prim::BatchResult;
use crate::prim::VjpResult;
use crate::prim::{compare_type, Primitive};
use crate::trace::error::ensure;
use crate::trace::{bind, Aval, OpError, Tensor};

/// See [`sort`]. Ascending, floats compare as `lax.sort`'s comparator does: `-inf < ... < inf
/// < NaN` with `-0 == 0` and all NaNs equal, so a stable sort keeps those in index order.
/// Descending, they compare in total order (`NaN > inf > ... > 0 > -0 > ... > -NaN`) as
/// XLA's TopK behind `lax.top_k`, equal bits in index order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sort {
    /// The sorted dimension.
    pub dim: usize,
    /// How many leading operands are keys.
    pub num_keys: usize,
    /// Largest first.
    pub descending: bool,
    /// How many operands are sorted (the result count).
    pub num_operands: usize,
}

/// Sorts `xs` together along `dim` by the first `num_keys` operands, stably
/// (`stablehlo.sort`). Returns the sorted operands.
#[track_caller]
pub fn sort(xs: &[&Tensor], dim: usize, num_keys: usize, descending: bool) -> Vec<Tensor> {
    bind(
        Sort {
            dim,
            num_keys,
            descending,
            num_operands: xs.len(),
        },
        xs,
    )
}

impl Primitive for Sort {
    fn batch(&self, ins: &[Tensor], dims: &[Option<usize>]) -> BatchResult {
        let prim = Sort {
            dim: self.dim + 1,
            ..self.clone()
        };
        b::leading(prim, ins, dims)
    }

    fn vjp(&self, ins: &[Tensor], _: &[Tensor], cts: &[Option<Tensor>]) -> VjpResult {
        // The permutation: sort an iota along with the keys, then invert it by sorting it.
        let shape = ins[0].shape();
        let iota = crate::prim::iota(DType::I32, shape, self.dim);
        let mut ops: Vec<&Tensor> = ins[..self.num_keys].iter().collect();
        ops.push(&iota);
        let perm = sort(&ops, self.dim, self.num_keys, self.descending).swap_remove(self.num_keys);
        let inv = sort(&[&perm, &iota], self.dim, 1, false).swap_remove(1);
        Ok(cts
            .iter()
            .map(|c| c.as_ref().map(|g| super::take_along(g, &inv, self.dim)))
            .collect())
    }

    fn name(&self) -> &'static str {
        "sort"
    }

    fn num_outputs(&self) -> usize {
        self.num_operands.max(1)
    }

    fn infer(&self, ins: &[&Aval]) -> Result<Vec<Aval>, OpError> {
        ensure!(!ins.is_empty(), "needs at least one operand");
        ensure!(
            self.num_keys >= 1 && self.num_keys <= ins.len(),
            "num_keys must be between 1 and the operand count"
        );
        for a in ins {
            ensure!(a.shape == ins[0].shape, "operands must have equal shapes");
        }
        ensure!(
            self.dim < ins[0].rank(),
            "dimension {} is out of range for rank {}",
            self.dim,
            ins[0].rank()
        );
        Ok(ins.iter().map(|a| (*a).clone()).collect())
    }

    fn emit(&self, cx: &EmitCx) -> String {
        let s = cx.scope;
        let mut args = Vec::new();
        for (i, o) in cx.ins.iter().enumerate() {
            args.push((format!("%{s}_a{i}"), scalar_ty(o.aval)));
            args.push((format!("%{s}_b{i}"), scalar_ty(o.aval)));
        }
        let dir = if self.descending { "GT" } else { "LT" };
        let mut body = Vec::new();
        // result = lt0 or (eq0 and (lt1 or (eq1 and ...))), built from the last key outwards.
        let mut acc: Option<String> = None;
        for k in (0..self.num_keys).rev() {
            let t = scalar_ty(cx.ins[k].aval);
            let ct = match compare_type(cx.ins[k].aval.dtype) {
                "FLOAT" => "TOTALORDER",
                other => other,
            };
            let (mut a, mut b) = (format!("%{s}_a{k}"), format!("%{s}_b{k}"));
            if ct == "TOTALORDER" && !self.descending {
                a = canonical(&mut body, &a, cx.ins[k].aval.dtype, &t);
                b = canonical(&mut body, &b, cx.ins[k].aval.dtype, &t);
            }
            let lt = format!("%{s}_lt{k}");
            body.push(format!(
                "{lt} = stablehlo.compare {dir}, {a}, {b}, {ct} : ({t}, {t}) -> tensor<i1>"
            ));
            acc = Some(match acc {
                None => lt,
                Some(inner) => {
                    let (eq, both, any) = (
                        format!("%{s}_eq{k}"),
                        format!("%{s}_and{k}"),
                        format!("%{s}_or{k}"),
                    );
                    body.push(format!(
                        "{eq} = stablehlo.compare EQ, {a}, {b}, {ct} : ({t}, {t}) -> tensor<i1>"
                    ));
                    body.push(format!("{both} = stablehlo.and {eq}, {inner} : tensor<i1>"));
                    body.push(format!("{any} = stablehlo.or {lt}, {both} : tensor<i1>"));
                    any
                }
            });
        }
        let ret = acc.unwrap_or_default();
        let reg = region(&args, &body, &[(ret, "tensor<i1>".into())]);
        format!(
            "\"stablehlo.sort\"({}) <{{dimension = {} : i64, is_stable = true}}> {reg} : {}",
            cx.names(),
            self.dim,
            cx.fn_type()
        )
    }
}

/// Emits `x` with -0 made +0 and every NaN the positive quiet NaN (JAX's
/// `_canonicalize_float_for_sort`); returns the new name.
fn canonical(body: &mut Vec<String>, x: &str, dtype: DType, t: &str) -> String {
    let c = |v: f64| literal::dense(dtype, &Scalar::Float(v).encode(dtype), &[]);
    let n = |suffix: &str| format!("{x}_{suffix}");
    body.push(format!(
        "{} = stablehlo.constant {} : {t}",
        n("zero"),
        c(0.0)
    ));
    body.push(format!(
        "{} = stablehlo.constant {} : {t}",
        n("nan"),
        c(f64::NAN)
    ));
    body.push(format!(
        "{} = stablehlo.compare EQ, {x}, {}, FLOAT : ({t}, {t}) -> tensor<i1>",
        n("is0"),
        n("zero")
    ));
    body.push(format!(
        "{} = stablehlo.select {}, {}, {x} : tensor<i1>, {t}",
        n("z"),
        n("is0"),
        n("zero")
    ));
    body.push(format!(
        "{} = stablehlo.compare NE, {x}, {x}, FLOAT : ({t}, {t}) -> tensor<i1>",
        n("isnan")
    ));
    body.push(format!(
        "{} = stablehlo.select {}, {}, {} : tensor<i1>, {t}",
        n("c"),
        n("isnan"),
        n("nan"),
        n("z")
    ));
    n("c")
}
