//! Every differentiable primitive against float64 central finite differences, in a random
//! direction: the reverse-mode directional derivative ⟨grad, v⟩ and the forward-mode one
//! (jvp) must both equal (f(x + εv) - f(x - εv)) / 2ε. All cases of a table compile into
//! one program.

mod support;

use std::sync::Arc;

use bv_core::autodiff::{jvp, value_and_grad};
use bv_core::numpy::{self as np, Axes};
use bv_core::prim::{
    self, ArgKind, ConvDims, Convolution, DotDims, Precision, ReduceKind, ScatterDims, ScatterKind,
    Window,
};
use bv_core::{jit, DType, Tensor};
use support::{array, read, rng, uniform};

type F = Box<dyn Fn(&[Tensor]) -> Tensor + Send + Sync>;

/// One row: a name, input shapes with their sampling ranges, and the function.
struct Case {
    name: &'static str,
    ins: Vec<(Vec<usize>, f64, f64)>,
    f: F,
}

fn case(
    name: &'static str,
    ins: &[(&[usize], f64, f64)],
    f: impl Fn(&[Tensor]) -> Tensor + Send + Sync + 'static,
) -> Case {
    Case {
        name,
        ins: ins
            .iter()
            .map(|(s, lo, hi)| (s.to_vec(), *lo, *hi))
            .collect(),
        f: Box::new(f),
    }
}

/// A fixed, non-trivial weighting of an output, so the check sees every element.
fn weighted_sum(y: &Tensor) -> Tensor {
    let n = y.size();
    let w = np::sin(&(np::arange(n, DType::F64) * 0.37 + 0.1));
    let w = prim::reshape(&w, y.shape());
    np::sum(&(y * &w), Axes::All, false)
}

fn dot(a: &[Tensor], b: &[Tensor]) -> Tensor {
    a.iter()
        .zip(b)
        .fold(np::zeros(&[], DType::F64), |acc, (x, y)| {
            acc + np::sum(&(x * y), Axes::All, false)
        })
}

/// Runs the table as one program and checks each row.
fn check(cases: Vec<Case>) {
    let cases = Arc::new(cases);
    let c2 = cases.clone();
    let f = jit(move |args: Vec<Tensor>| -> Vec<Tensor> {
        let mut k = 0;
        let mut outs = Vec::new();
        for c in c2.iter() {
            let n = c.ins.len();
            let xs = args[k..k + n].to_vec();
            let vs = args[k + n..k + 2 * n].to_vec();
            k += 2 * n;
            let loss = |xs: Vec<Tensor>| weighted_sum(&(c.f)(&xs));
            let (_, g) = value_and_grad(loss)(&xs);
            let eps = 1e-6;
            let shift = |s: f64| {
                xs.iter()
                    .zip(&vs)
                    .map(|(x, v)| x + &(v * (s * eps)))
                    .collect::<Vec<_>>()
            };
            let fd = (loss(shift(1.0)) - loss(shift(-1.0))) / (2.0 * eps);
            let (_, jv) = jvp(loss, &xs, &vs);
            outs.extend([fd, dot(&g, &vs), jv]);
        }
        outs
    });
    let mut r = rng(7);
    let mut args = Vec::new();
    for c in cases.iter() {
        let mut vs = Vec::new();
        for (shape, lo, hi) in &c.ins {
            let n: usize = shape.iter().product();
            args.push(array(&uniform(&mut r, n, *lo, *hi), shape, DType::F64));
            vs.push(array(&uniform(&mut r, n, -1.0, 1.0), shape, DType::F64));
        }
        args.extend(vs);
    }
    let out = f.call(&args).unwrap_or_else(|e| panic!("{e}"));
    let mut bad = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let [fd, gv, jv] = [0, 1, 2].map(|j| read(&out[3 * i + j])[0]);
        let tol = 1e-6 * (1.0 + fd.abs());
        if (fd - gv).abs() > tol || (fd - jv).abs() > tol {
            bad.push(format!(
                "{}: finite difference {fd}, vjp {gv}, jvp {jv}",
                c.name
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn c_i32(v: &[i32], shape: &[usize]) -> Tensor {
    prim::constant(v, shape)
}

#[test]
fn elementwise_rules_match_finite_differences() {
    let any = -1.0;
    check(vec![
        case("neg", &[(&[3, 4], any, 1.0)], |x| prim::neg(&x[0])),
        case("abs", &[(&[3, 4], 0.1, 1.0)], |x| {
            prim::abs(&(&x[0] * -1.0))
        }),
        case("exp", &[(&[3, 4], any, 1.0)], |x| prim::exp(&x[0])),
        case("expm1", &[(&[5], any, 1.0)], |x| prim::expm1(&x[0])),
        case("log", &[(&[5], 0.5, 2.0)], |x| prim::log(&x[0])),
        case("log1p", &[(&[5], 0.0, 2.0)], |x| prim::log1p(&x[0])),
        case("square", &[(&[3, 4], any, 1.0)], |x| prim::square(&x[0])),
        case("sqrt", &[(&[5], 0.5, 2.0)], |x| prim::sqrt(&x[0])),
        case("rsqrt", &[(&[5], 0.5, 2.0)], |x| prim::rsqrt(&x[0])),
        case("tanh", &[(&[5], any, 1.0)], |x| prim::tanh(&x[0])),
        case("logistic", &[(&[5], any, 1.0)], |x| prim::logistic(&x[0])),
        case("sin", &[(&[5], any, 1.0)], |x| prim::sin(&x[0])),
        case("cos", &[(&[5], any, 1.0)], |x| prim::cos(&x[0])),
        case("erf", &[(&[5], any, 1.0)], |x| prim::erf(&x[0])),
        case("add", &[(&[4], any, 1.0), (&[4], any, 1.0)], |x| {
            prim::add(&x[0], &x[1])
        }),
        case("sub", &[(&[4], any, 1.0), (&[4], any, 1.0)], |x| {
            prim::sub(&x[0], &x[1])
        }),
        case("mul", &[(&[4], any, 1.0), (&[4], any, 1.0)], |x| {
            prim::mul(&x[0], &x[1])
        }),
        case("mul_same", &[(&[4], any, 1.0)], |x| prim::mul(&x[0], &x[0])),
        case("div", &[(&[4], any, 1.0), (&[4], 0.5, 2.0)], |x| {
            prim::div(&x[0], &x[1])
        }),
        case("rem", &[(&[4], 2.1, 2.9), (&[4], 0.6, 0.9)], |x| {
            prim::rem(&x[0], &x[1])
        }),
        case("pow", &[(&[4], 0.5, 2.0), (&[4], any, 2.0)], |x| {
            prim::pow(&x[0], &x[1])
        }),
        case("max", &[(&[6], any, 1.0), (&[6], any, 1.0)], |x| {
            prim::max(&x[0], &x[1])
        }),
        case("min", &[(&[6], any, 1.0), (&[6], any, 1.0)], |x| {
            prim::min(&x[0], &x[1])
        }),
        case("atan2", &[(&[4], any, 1.0), (&[4], 0.5, 1.0)], |x| {
            prim::atan2(&x[0], &x[1])
        }),
        case(
            "select",
            &[(&[6], any, 1.0), (&[6], any, 1.0), (&[6], any, 1.0)],
            |x| {
                let p = prim::compare(&x[0], &np::zeros(&[6], DType::F64), prim::CompareDir::Gt);
                prim::select(&p, &x[1], &x[2])
            },
        ),
        case(
            "clamp",
            &[(&[], -0.35, -0.25), (&[8], any, 1.0), (&[8], 0.2, 0.5)],
            |x| prim::clamp(&x[0], &x[1], &x[2]),
        ),
        case("convert", &[(&[4], any, 1.0)], |x| {
            prim::convert(&x[0], DType::F64)
        }),
    ]);
}

#[test]
fn structural_rules_match_finite_differences() {
    let any = -1.0;
    check(vec![
        case("broadcast_in_dim", &[(&[3, 1], any, 1.0)], |x| {
            prim::broadcast_in_dim(&x[0], &[2, 3, 4], &[1, 2])
        }),
        case("reshape", &[(&[3, 4], any, 1.0)], |x| {
            prim::reshape(&x[0], &[2, 6])
        }),
        case("transpose", &[(&[2, 3, 4], any, 1.0)], |x| {
            prim::transpose(&x[0], &[2, 0, 1])
        }),
        case("reverse", &[(&[3, 4], any, 1.0)], |x| {
            prim::reverse(&x[0], &[1])
        }),
        case("slice", &[(&[7, 5], any, 1.0)], |x| {
            prim::slice_strided(&x[0], &[1, 0], &[7, 4], &[2, 3])
        }),
        case("pad", &[(&[3, 4], any, 1.0), (&[], any, 1.0)], |x| {
            prim::pad(&x[0], &x[1], &[(1, -1, 1), (0, 2, 0)])
        }),
        case(
            "concatenate",
            &[(&[2, 3], any, 1.0), (&[2, 2], any, 1.0)],
            |x| prim::concatenate(&[&x[0], &x[1], &x[0]], 1),
        ),
        case("reduce_sum", &[(&[3, 4], any, 1.0)], |x| {
            prim::reduce(&x[0], ReduceKind::Sum, &[0])
        }),
        case("reduce_max", &[(&[3, 4], any, 1.0)], |x| {
            prim::reduce(&x[0], ReduceKind::Max, &[1])
        }),
        case("reduce_min", &[(&[3, 4], any, 1.0)], |x| {
            prim::reduce(&x[0], ReduceKind::Min, &[0, 1])
        }),
        case("reduce_prod", &[(&[3, 4], 0.5, 1.5)], |x| {
            prim::reduce(&x[0], ReduceKind::Prod, &[1])
        }),
        case("argmax_value", &[(&[3, 5], any, 1.0)], |x| {
            prim::argreduce(&x[0], ArgKind::Max, 1, DType::I32).0
        }),
        case("dynamic_slice", &[(&[5, 4], any, 1.0)], |x| {
            prim::dynamic_slice(&x[0], &[&prim::scalar(2i32), &prim::scalar(1i32)], &[2, 3])
        }),
        case(
            "dynamic_update_slice",
            &[(&[5, 4], any, 1.0), (&[2, 2], any, 1.0)],
            |x| {
                prim::dynamic_update_slice(
                    &x[0],
                    &x[1],
                    &[&prim::scalar(1i32), &prim::scalar(2i32)],
                )
            },
        ),
        case("gather", &[(&[5, 3], any, 1.0)], |x| {
            np::take(&x[0], &c_i32(&[3, 0, 4, 3], &[4]), 0)
        }),
        case(
            "scatter_add",
            &[(&[5, 3], any, 1.0), (&[4, 3], any, 1.0)],
            |x| scatter(x, ScatterKind::Add, &[3, 0, 4, 3]),
        ),
        case(
            "scatter",
            &[(&[5, 3], any, 1.0), (&[4, 3], any, 1.0)],
            |x| scatter(x, ScatterKind::Replace, &[3, 0, 4, 1]),
        ),
        case("sort", &[(&[3, 5], any, 1.0), (&[3, 5], any, 1.0)], |x| {
            let s = prim::sort(&[&x[0], &x[1]], 1, 1, false);
            prim::add(&s[0], &prim::mul(&s[1], &s[1]))
        }),
        case("cumsum", &[(&[3, 5], any, 1.0)], |x| {
            prim::cumsum(&x[0], 1, false)
        }),
        case("cumsum_reverse", &[(&[3, 5], any, 1.0)], |x| {
            prim::cumsum(&x[0], 0, true)
        }),
        case("cummax", &[(&[3, 5], any, 1.0)], |x| {
            prim::cummax(&x[0], 1, false)
        }),
        case("cummin", &[(&[3, 5], any, 1.0)], |x| {
            prim::cummin(&x[0], 1, true)
        }),
    ]);
}

fn scatter(x: &[Tensor], kind: ScatterKind, idx: &[i32]) -> Tensor {
    let dims = ScatterDims {
        update_window_dims: vec![1],
        inserted_window_dims: vec![0],
        scatter_dims_to_operand_dims: vec![0],
        index_vector_dim: 1,
        ..ScatterDims::default()
    };
    prim::scatter(&x[0], &c_i32(idx, &[4, 1]), &x[1], dims, kind)
}

#[allow(clippy::too_many_arguments)]
fn conv(
    x: &Tensor,
    w: &Tensor,
    strides: [usize; 2],
    padding: [(i64, i64); 2],
    lhs_d: [usize; 2],
    rhs_d: [usize; 2],
    fg: usize,
    bg: usize,
) -> Tensor {
    prim::conv_general_dilated(
        x,
        w,
        Convolution {
            strides: strides.to_vec(),
            padding: padding.to_vec(),
            lhs_dilation: lhs_d.to_vec(),
            rhs_dilation: rhs_d.to_vec(),
            dims: ConvDims::from_layouts("NHWC", "HWIO", "NHWC"),
            feature_group_count: fg,
            batch_group_count: bg,
            precision: Precision::Highest,
        },
    )
}

#[test]
fn contraction_and_window_rules_match_finite_differences() {
    let any = -1.0;
    check(vec![
        case(
            "dot_general_batch",
            &[(&[2, 3, 4], any, 1.0), (&[2, 4, 5], any, 1.0)],
            |x| {
                let d = DotDims {
                    lhs_batch: vec![0],
                    rhs_batch: vec![0],
                    lhs_contracting: vec![2],
                    rhs_contracting: vec![1],
                };
                prim::dot_general(&x[0], &x[1], d, Precision::Highest, None)
            },
        ),
        case(
            "dot_general_permuted",
            &[(&[3, 4, 2], any, 1.0), (&[2, 5, 4], any, 1.0)],
            |x| {
                let d = DotDims {
                    lhs_contracting: vec![1, 2],
                    rhs_contracting: vec![2, 0],
                    ..DotDims::default()
                };
                prim::dot_general(&x[0], &x[1], d, Precision::Highest, None)
            },
        ),
        case(
            "conv_strided_padded_dilated",
            &[(&[2, 7, 7, 3], any, 1.0), (&[3, 3, 3, 4], any, 1.0)],
            |x| conv(&x[0], &x[1], [2, 1], [(1, 0), (0, 1)], [1, 1], [2, 1], 1, 1),
        ),
        case(
            "conv_lhs_dilated_feature_groups",
            &[(&[1, 5, 5, 4], any, 1.0), (&[2, 2, 2, 6], any, 1.0)],
            |x| conv(&x[0], &x[1], [1, 2], [(1, 1), (0, 0)], [2, 1], [1, 1], 2, 1),
        ),
        case(
            "conv_batch_groups",
            &[(&[4, 5, 5, 3], any, 1.0), (&[3, 3, 3, 4], any, 1.0)],
            |x| conv(&x[0], &x[1], [1, 1], [(0, 0), (1, 1)], [1, 1], [1, 1], 1, 2),
        ),
        case("reduce_window_sum", &[(&[2, 6, 6, 3], any, 1.0)], |x| {
            let w = Window::new(&[1, 3, 2, 1], &[1, 2, 1, 1]).with_padding(&[
                (0, 0),
                (1, 1),
                (0, 1),
                (0, 0),
            ]);
            prim::reduce_window(&x[0], ReduceKind::Sum, &w)
        }),
        case(
            "reduce_window_sum_dilated",
            &[(&[1, 5, 5, 2], any, 1.0)],
            |x| {
                let w = Window::new(&[1, 2, 2, 1], &[1, 1, 2, 1])
                    .with_dilation(&[1, 2, 1, 1], &[1, 1, 2, 1]);
                prim::reduce_window(&x[0], ReduceKind::Sum, &w)
            },
        ),
        case("reduce_window_max", &[(&[2, 6, 6, 3], any, 1.0)], |x| {
            let w = Window::new(&[1, 3, 3, 1], &[1, 2, 2, 1]).with_padding(&[
                (0, 0),
                (1, 1),
                (1, 1),
                (0, 0),
            ]);
            prim::reduce_window(&x[0], ReduceKind::Max, &w)
        }),
        case("reduce_window_min", &[(&[1, 4, 4, 2], any, 1.0)], |x| {
            prim::reduce_window(
                &x[0],
                ReduceKind::Min,
                &Window::new(&[1, 2, 2, 1], &[1, 2, 2, 1]),
            )
        }),
    ]);
}

#[test]
fn control_flow_remat_and_custom_rules_match_finite_differences() {
    use bv_core::autodiff::{checkpoint, custom_vjp, RematPolicy};
    use bv_core::control::{cond, fori_loop, scan, scan_with, switch, ScanOptions};
    let any = -1.0;
    check(vec![
        case(
            "scan",
            &[(&[3], any, 1.0), (&[6, 3], any, 1.0), (&[3, 3], any, 1.0)],
            |x| {
                let w = x[2].clone();
                let (c, ys) = scan(
                    move |h: Tensor, xt: Tensor| {
                        let h = np::tanh(&(np::matmul(&h, &w) + &xt));
                        (h.clone(), &h * &h)
                    },
                    x[0].clone(),
                    x[1].clone(),
                );
                prim::concatenate(&[&c, &prim::reshape(&ys, &[18])], 0)
            },
        ),
        case(
            "scan_reverse",
            &[(&[2], any, 1.0), (&[4, 2], any, 1.0)],
            |x| {
                scan_with(
                    |c: Tensor, xt: Tensor| (&c * &xt, np::sin(&c)),
                    x[0].clone(),
                    x[1].clone(),
                    ScanOptions {
                        reverse: true,
                        ..Default::default()
                    },
                )
                .1
            },
        ),
        case("cond", &[(&[4], any, 1.0), (&[4], any, 1.0)], |x| {
            let y = x[1].clone();
            let p = prim::compare(
                &np::sum(&x[0], Axes::All, false),
                &np::zeros(&[], DType::F64),
                prim::CompareDir::Gt,
            );
            let a = cond(
                &p,
                |v: Tensor| np::sin(&v) * &y,
                |v: Tensor| &v * &v,
                x[0].clone(),
            );
            let b = cond(
                &prim::not(&p),
                |v: Tensor| np::sin(&v) * &y,
                |v: Tensor| &v * &v,
                x[0].clone(),
            );
            &a + &b
        }),
        case("switch", &[(&[4], any, 1.0)], |x| {
            let f0 = |v: Tensor| np::exp(&v);
            let f1 = |v: Tensor| &v * &v;
            let f2 = |v: Tensor| np::cos(&v);
            let branches: [&dyn Fn(Tensor) -> Tensor; 3] = [&f0, &f1, &f2];
            let a = switch(&prim::scalar(1i32), &branches, x[0].clone());
            let b = switch(&prim::scalar(7i32), &branches, x[0].clone());
            &a + &b
        }),
        case("fori_loop", &[(&[3], any, 1.0), (&[3], any, 1.0)], |x| {
            let w = x[1].clone();
            fori_loop(
                0,
                5,
                move |i: &Tensor, c: Tensor| np::sin(&(&c * &w)) + prim::convert(i, DType::F64),
                x[0].clone(),
            )
        }),
        case(
            "checkpoint",
            &[(&[4], any, 1.0), (&[4, 4], any, 1.0)],
            |x| {
                let w = x[1].clone();
                let block = checkpoint(
                    move |h: Tensor| np::tanh(&np::matmul(&h, &w)),
                    RematPolicy::NothingSaveable,
                );
                block(block(x[0].clone()))
            },
        ),
        case("custom_vjp", &[(&[5], any, 1.0)], |x| {
            let f = custom_vjp(
                |v: Tensor| (np::sin(&v), np::cos(&v)),
                |cos: &Tensor, g: &Tensor| g * cos,
            );
            f(x[0].clone()) * &x[0]
        }),
    ]);
}

#[test]
fn composite_models_match_finite_differences() {
    let any = -1.0;
    check(vec![
        case(
            "mlp_softmax_cross_entropy",
            &[
                (&[6, 5], any, 1.0),
                (&[5, 8], any, 1.0),
                (&[8], any, 1.0),
                (&[8, 4], any, 1.0),
            ],
            |x| {
                let labels = np::one_hot(&c_i32(&[0, 3, 1, 2, 3, 0], &[6]), 4, DType::F64);
                let h = np::relu(&(np::matmul(&x[0], &x[1]) + &x[2]));
                let logits = np::matmul(&h, &x[3]);
                let ce = -np::sum(&(np::log_softmax(&logits, -1) * &labels), -1isize, false);
                np::mean(&ce, Axes::All, false)
            },
        ),
        case(
            "conv_stack_with_pooling",
            &[
                (&[2, 8, 8, 3], any, 1.0),
                (&[3, 3, 3, 4], any, 1.0),
                (&[3, 3, 4, 4], any, 1.0),
            ],
            |x| {
                let h = np::relu(&conv(
                    &x[0],
                    &x[1],
                    [1, 1],
                    [(1, 1), (1, 1)],
                    [1, 1],
                    [1, 1],
                    1,
                    1,
                ));
                let h = np::max_pool(&h, &[2, 2], &[2, 2], np::Padding::Valid);
                let h = np::gelu(
                    &conv(&h, &x[2], [1, 1], [(1, 1), (1, 1)], [1, 1], [1, 1], 1, 1),
                    true,
                );
                np::avg_pool(&h, &[2, 2], &[2, 2], np::Padding::Valid)
            },
        ),
        case(
            "attention_block",
            &[
                (&[2, 5, 8], any, 1.0),
                (&[8, 8], any, 1.0),
                (&[8, 8], any, 1.0),
                (&[8, 8], any, 1.0),
                (&[8, 8], any, 1.0),
            ],
            |x| {
                let (b, t, d, h) = (2isize, 5isize, 8isize, 2isize);
                let heads = |w: &Tensor| np::reshape(&np::matmul(&x[0], w), &[b, t, h, d / h]);
                let (q, k, v) = (heads(&x[1]), heads(&x[2]), heads(&x[3]));
                let att = np::softmax(
                    &(np::einsum("bqhd,bkhd->bhqk", &[&q, &k]) * (1.0 / 2.0)),
                    -1,
                );
                let o = np::reshape(&np::einsum("bhqk,bkhd->bqhd", &[&att, &v]), &[b, t, d]);
                let y = &x[0] + &np::matmul(&o, &x[4]);
                let mu = np::mean(&y, -1isize, true);
                let var = np::var(&y, -1isize, 0, true);
                (&y - &mu) * np::rsqrt(&(var + 1e-6))
            },
        ),
    ]);
}

/// The numpy layer's composite functions (built from the primitives above): their
/// derivatives come from the primitives' rules and must still match finite differences.
#[test]
fn numpy_composites_match_finite_differences() {
    use np::{Indexing, PadMode};
    let any = -1.0;
    let joined = |v: Vec<Tensor>| {
        let flat: Vec<Tensor> = v.iter().map(np::ravel).collect();
        np::concatenate(&flat.iter().collect::<Vec<_>>(), 0)
    };
    check(vec![
        case(
            "concatenate",
            &[(&[2, 3], any, 1.0), (&[2, 2], any, 1.0)],
            |x| np::concatenate(&[&x[0], &x[1]], -1),
        ),
        case("stack", &[(&[2, 3], any, 1.0), (&[2, 3], any, 1.0)], |x| {
            np::stack(&[&x[0], &x[1]], 1)
        }),
        case("expand_dims_squeeze", &[(&[3, 1], any, 1.0)], |x| {
            np::expand_dims(&np::squeeze(&x[0], -1), 0)
        }),
        case("pad_constant", &[(&[3, 4], any, 1.0)], |x| {
            np::pad(&x[0], &[(1, 2)], PadMode::Constant(0.5))
        }),
        case("pad_edge", &[(&[3, 4], any, 1.0)], |x| {
            np::pad(&x[0], &[(2, 1), (0, 3)], PadMode::Edge)
        }),
        case("pad_reflect", &[(&[3, 4], any, 1.0)], |x| {
            np::pad(&x[0], &[(2, 1), (5, 4)], PadMode::Reflect)
        }),
        case("pad_symmetric", &[(&[3, 4], any, 1.0)], |x| {
            np::pad(&x[0], &[(4, 1), (2, 6)], PadMode::Symmetric)
        }),
        case("pad_wrap", &[(&[3, 4], any, 1.0)], |x| {
            np::pad(&x[0], &[(3, 3), (1, 9)], PadMode::Wrap)
        }),
        case("split", &[(&[6, 4], any, 1.0)], move |x| {
            let mut v = np::split(&x[0], 3, 0);
            v.extend(np::array_split(&x[0], 3, 1));
            v.extend(np::split_at(&x[0], &[1, 4], 0));
            joined(v)
        }),
        case("tile", &[(&[2, 3], any, 1.0)], |x| {
            np::tile(&x[0], &[2, 1, 3])
        }),
        case("repeat", &[(&[2, 3], any, 1.0)], |x| {
            np::repeat(&x[0], 2, Some(1)) + np::reshape(&np::repeat(&x[0], 2, None), &[2, 6])
        }),
        case("flip_roll", &[(&[2, 3], any, 1.0)], |x| {
            np::flip(&np::roll(&x[0], -4, None), Axes::All) * np::roll(&x[0], 1, Some(1))
        }),
        case("swapaxes_moveaxis", &[(&[2, 3, 4], any, 1.0)], |x| {
            np::swapaxes(&np::moveaxis(&x[0], 0, -1), 0, 1)
        }),
        case("tril_triu", &[(&[2, 3, 4], any, 1.0)], |x| {
            np::tril(&x[0], 1) * np::triu(&x[0], -1)
        }),
        case("cumsum", &[(&[3, 4], any, 1.0)], |x| np::cumsum(&x[0], -1)),
        case("cumprod", &[(&[3, 5], any, 1.0)], |x| {
            np::cumprod(&x[0], -1) + np::cumprod(&x[0], 0)
        }),
        case("cumprod_with_zero", &[(&[7], any, 1.0)], |x| {
            np::cumprod(&(&x[0] * np::not_equal(np::arange(7, DType::I32), 3)), 0)
        }),
        case("outer", &[(&[3], any, 1.0), (&[2, 2], any, 1.0)], |x| {
            np::outer(&x[0], &x[1])
        }),
        case("vdot", &[(&[2, 3], any, 1.0), (&[6], any, 1.0)], |x| {
            np::vdot(&x[0], &x[1])
        }),
        case("diag", &[(&[3], any, 1.0), (&[3, 4], any, 1.0)], |x| {
            np::diag(&np::diag(&x[0], -1), -1) * np::diag(&x[1], 1)
        }),
        case("meshgrid", &[(&[3], any, 1.0), (&[2], any, 1.0)], |x| {
            let g = np::meshgrid(&[&x[0], &x[1]], Indexing::Xy);
            &g[0] * &g[1]
        }),
        case(
            "dot_inner",
            &[(&[2, 3, 4], any, 1.0), (&[4, 5], any, 1.0)],
            |x| np::dot(&x[0], &x[1]) + np::inner(&x[0], &np::transpose(&x[1], &[])),
        ),
        case("softplus_leaky_relu_elu", &[(&[2, 3], -3.0, 3.0)], |x| {
            np::softplus(&x[0]) + np::leaky_relu(&x[0], 0.1) * np::elu(&x[0], 0.5)
        }),
        case("relu6_hard_tanh_celu_selu", &[(&[2, 3], -3.0, 3.0)], |x| {
            np::relu6(&(&x[0] * 2.5)) + np::hard_tanh(&x[0]) * np::celu(&x[0], 0.5)
                - np::selu(&x[0])
        }),
        case("glu", &[(&[3, 4], any, 1.0)], |x| np::glu(&x[0], 1)),
        case("standardize", &[(&[3, 4], any, 1.0)], |x| {
            np::standardize(&x[0], -1, 1e-5)
        }),
        case("trig_and_hyperbolic", &[(&[2, 3], any, 1.0)], |x| {
            np::tan(&x[0]) + np::arctan(&x[0]) * np::sinh(&x[0]) + np::cosh(&x[0]) * np::exp2(&x[0])
        }),
        case("arcsin_arccos", &[(&[2, 3], -0.9, 0.9)], |x| {
            np::arcsin(&x[0]) * np::arccos(&x[0])
        }),
        case("diff_trace", &[(&[3, 4], any, 1.0)], |x| {
            np::diff(&x[0], 0) * np::trace(&x[0], 1)
        }),
        case("reciprocal_log2_log10", &[(&[2, 3], 0.5, 2.0)], |x| {
            np::reciprocal(&x[0]) + np::log2(&x[0]) * np::log10(&x[0])
        }),
    ]);
}
