//! Every primitive's batching rule against its definition: `vmap(f)` on a batch must equal
//! `f` applied to each batch element in turn with the results stacked (the loop uses the
//! unbatched primitive, so the two sides share nothing but the primitive). Each row names
//! the primitives it batches; `every_primitive_has_a_row` fails when a primitive of bv-core
//! has none. All rows compile into one program, in float64.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use bv_core::autodiff::{
    checkpoint, custom_jvp, custom_vjp, grad, optimization_barrier, stop_gradient, RematPolicy,
};
use bv_core::batching::{vmap, Axes, Axis};
use bv_core::control::{cond, fori_loop, scan, scan_with, switch, while_loop, ScanOptions};
use bv_core::numpy::{self as np};
use bv_core::prim::{
    self, ArgKind, CompareDir, ConvDims, Convolution, DotDims, GatherDims, Precision, ReduceKind,
    ScatterDims, ScatterKind, Window,
};
use bv_core::{jit, DType, Tensor};
use support::{array, assert_close, ints, read, rng, uniform};

type F = Box<dyn Fn(&[Tensor]) -> Vec<Tensor> + Send + Sync>;

/// The batch size of every row.
const N: usize = 3;

/// One input: its unbatched shape, element type and batch axis (`None`: shared).
struct In {
    shape: Vec<usize>,
    dtype: DType,
    axis: Option<i32>,
}

/// One row: a name, the primitives it batches, its inputs and the function.
struct Case {
    name: &'static str,
    prims: &'static [&'static str],
    ins: Vec<In>,
    f: F,
}

fn f64_in(shape: &[usize], axis: Option<i32>) -> In {
    In {
        shape: shape.to_vec(),
        dtype: DType::F64,
        axis,
    }
}

fn i32_in(shape: &[usize], axis: Option<i32>) -> In {
    In {
        shape: shape.to_vec(),
        dtype: DType::I32,
        axis,
    }
}

fn case(
    name: &'static str,
    prims: &'static [&'static str],
    ins: Vec<In>,
    f: impl Fn(&[Tensor]) -> Vec<Tensor> + Send + Sync + 'static,
) -> Case {
    Case {
        name,
        prims,
        ins,
        f: Box::new(f),
    }
}

/// The batched shape of an input.
fn batched_shape(i: &In) -> Vec<usize> {
    let mut s = i.shape.clone();
    if let Some(a) = i.axis {
        let a = if a < 0 { a + s.len() as i32 + 1 } else { a };
        s.insert(a as usize, N);
    }
    s
}

/// Batch element `k` of `x` batched at `axis`.
fn element(x: &Tensor, axis: Option<i32>, k: usize) -> Tensor {
    match axis {
        None => x.clone(),
        Some(a) => {
            let a = if a < 0 { a + x.rank() as i32 } else { a } as usize;
            prim::squeeze_dims(&prim::slice_in_dim(x, a, k, k + 1, 1), &[a])
        }
    }
}

/// The results of `f` on each batch element, stacked along a new leading axis.
fn looped(c: &Case, xs: &[Tensor]) -> Vec<Tensor> {
    let per: Vec<Vec<Tensor>> = (0..N)
        .map(|k| {
            let el: Vec<Tensor> = xs
                .iter()
                .zip(&c.ins)
                .map(|(x, i)| element(x, i.axis, k))
                .collect();
            (c.f)(&el)
        })
        .collect();
    (0..per[0].len())
        .map(|j| {
            let parts: Vec<&Tensor> = per.iter().map(|o| &o[j]).collect();
            np::stack(&parts, 0)
        })
        .collect()
}

/// Runs the table as one program and checks each row's vmap against its loop.
fn check(cases: Vec<Case>) {
    let cases = Arc::new(cases);
    let c2 = cases.clone();
    let f = jit(move |args: Vec<Tensor>| -> Vec<Tensor> {
        let mut k = 0;
        let mut outs = Vec::new();
        for c in c2.iter() {
            let xs = args[k..k + c.ins.len()].to_vec();
            k += c.ins.len();
            let axes: Vec<Axis> = c.ins.iter().map(|i| Axis(i.axis)).collect();
            let v = vmap(|xs: Vec<Tensor>| (c.f)(&xs), Axes::tree(&axes), 0)(&xs);
            let l = looped(c, &xs);
            outs.push(prim::constant(&[v.len() as i32], &[]));
            for (a, b) in v.into_iter().zip(l) {
                outs.push(prim::convert(&a, DType::F64));
                outs.push(prim::convert(&b, DType::F64));
            }
        }
        outs
    });
    let mut r = rng(11);
    let mut args = Vec::new();
    for c in cases.iter() {
        for i in &c.ins {
            let s = batched_shape(i);
            let n: usize = s.iter().product();
            let v = if i.dtype == DType::F64 {
                uniform(&mut r, n, -2.0, 2.0)
            } else {
                ints(&mut r, n, 0, 3)
            };
            args.push(array(&v, &s, i.dtype));
        }
    }
    let out = f.call(&args).unwrap_or_else(|e| panic!("{e}"));
    let mut k = 0;
    for c in cases.iter() {
        let m = read(&out[k])[0] as usize;
        k += 1;
        for j in 0..m {
            let (v, l) = (read(&out[k]), read(&out[k + 1]));
            assert_eq!(v.len(), l.len(), "{} result {j}: sizes", c.name);
            assert_close(&format!("{} result {j}", c.name), &v, &l, (1e-12, 1e-12));
            k += 2;
        }
    }
}

fn window() -> Window {
    Window::new(&[2, 2], &[1, 2]).with_padding(&[(0, 1), (1, 0)])
}

/// The table: every primitive with a batched operand, at various batch axes.
fn table() -> Vec<Case> {
    let x34 = |a| f64_in(&[3, 4], a);
    vec![
        case(
            "unary at axis 1",
            &["Unary"],
            vec![f64_in(&[4, 2], Some(1))],
            |x| vec![prim::sin(&x[0]), prim::exp(&x[0]), prim::is_finite(&x[0])],
        ),
        case(
            "binary, both at axis 1",
            &["Binary"],
            vec![x34(Some(1)), x34(Some(1))],
            |x| vec![prim::sub(&x[0], &x[1]), prim::pow(&prim::abs(&x[0]), &x[1])],
        ),
        case(
            "binary, one shared",
            &["Binary"],
            vec![x34(Some(2)), x34(None)],
            |x| vec![prim::mul(&x[0], &x[1]), prim::atan2(&x[1], &x[0])],
        ),
        case(
            "compare and select",
            &["Compare", "Select"],
            vec![x34(Some(0)), x34(Some(1))],
            |x| {
                let lt = prim::compare(&x[0], &x[1], CompareDir::Lt);
                vec![prim::select(&lt, &x[0], &x[1])]
            },
        ),
        case(
            "select with a batched scalar predicate",
            &["Compare", "Select"],
            vec![f64_in(&[], Some(0)), x34(None), x34(Some(-1))],
            |x| {
                let p = prim::compare(&x[0], &prim::scalar(0.0f64), CompareDir::Gt);
                vec![prim::select(&p, &x[1], &x[2])]
            },
        ),
        case(
            "clamp",
            &["Clamp"],
            vec![f64_in(&[], Some(0)), x34(Some(1))],
            |x| vec![prim::clamp(&x[0], &x[1], &prim::scalar(1.0f64))],
        ),
        case(
            "convert and bitcast",
            &["Convert", "BitcastConvert"],
            vec![x34(Some(1))],
            |x| {
                let f = prim::convert(&x[0], DType::F32);
                vec![f.clone(), prim::bitcast_convert(&f, DType::I32)]
            },
        ),
        case(
            "bitcast to a narrower type",
            &["BitcastConvert"],
            vec![f64_in(&[2], Some(1))],
            |x| vec![prim::bitcast_convert(&x[0], DType::I32)],
        ),
        case(
            "broadcast_in_dim",
            &["BroadcastInDim"],
            vec![f64_in(&[4], Some(0))],
            |x| vec![prim::broadcast_in_dim(&x[0], &[2, 4, 3], &[1])],
        ),
        case("reshape", &["Reshape"], vec![x34(Some(1))], |x| {
            vec![prim::reshape(&x[0], &[2, 6])]
        }),
        case(
            "transpose and reverse",
            &["Transpose", "Reverse"],
            vec![x34(Some(2))],
            |x| vec![prim::transpose(&x[0], &[1, 0]), prim::reverse(&x[0], &[1])],
        ),
        case("slice", &["Slice"], vec![x34(Some(1))], |x| {
            vec![prim::slice_strided(&x[0], &[1, 0], &[3, 4], &[1, 2])]
        }),
        case(
            "pad with a shared value",
            &["Pad"],
            vec![x34(Some(0)), f64_in(&[], None)],
            |x| vec![prim::pad(&x[0], &x[1], &[(1, 0, 1), (-1, 2, 0)])],
        ),
        case(
            "pad with a batched value",
            &["Pad"],
            vec![x34(None), f64_in(&[], Some(0))],
            |x| vec![prim::pad(&x[0], &x[1], &[(1, 0, 0), (0, 2, 0)])],
        ),
        case(
            "pad of a batched operand with a batched value",
            &["Pad"],
            vec![x34(Some(1)), f64_in(&[], Some(0))],
            |x| vec![prim::pad(&x[0], &x[1], &[(1, -1, 1), (0, 2, 2)])],
        ),
        case(
            "concatenate",
            &["Concatenate"],
            vec![x34(Some(1)), f64_in(&[2, 4], None)],
            |x| vec![prim::concatenate(&[&x[0], &x[1]], 0)],
        ),
        case(
            "dynamic_slice",
            &["DynamicSlice", "DynamicUpdateSlice"],
            vec![x34(Some(1))],
            |x| {
                let s = [prim::scalar(1i32), prim::scalar(2i32)];
                let d = prim::dynamic_slice(&x[0], &[&s[0], &s[1]], &[2, 2]);
                let u = prim::dynamic_update_slice(&x[0], &prim::neg(&d), &[&s[1], &s[0]]);
                vec![d, u]
            },
        ),
        case(
            "dynamic_slice at batched starts",
            &["DynamicSlice", "DynamicUpdateSlice"],
            vec![x34(None), i32_in(&[], Some(0)), f64_in(&[2, 2], Some(0))],
            |x| {
                let z = prim::scalar(0i32);
                let d = prim::dynamic_slice(&x[0], &[&x[1], &z], &[2, 3]);
                let u = prim::dynamic_update_slice(&x[0], &x[2], &[&z, &x[1]]);
                vec![d, u]
            },
        ),
        case(
            "dynamic_slice of a batched operand at batched, clamped starts",
            &["DynamicSlice", "DynamicUpdateSlice"],
            vec![x34(Some(2)), i32_in(&[], Some(0)), f64_in(&[2, 3], Some(1))],
            |x| {
                let d = prim::dynamic_slice(&x[0], &[&x[1], &x[1]], &[2, 3]);
                let u = prim::dynamic_update_slice(&x[0], &x[2], &[&x[1], &x[1]]);
                vec![d, u]
            },
        ),
        case(
            "reductions",
            &["Reduce", "ArgReduce"],
            vec![x34(Some(1))],
            |x| {
                let (v, i) = prim::argreduce(&x[0], ArgKind::Max, 1, DType::I32);
                vec![
                    prim::reduce(&x[0], ReduceKind::Sum, &[0]),
                    prim::reduce(&x[0], ReduceKind::Min, &[0, 1]),
                    v,
                    i,
                ]
            },
        ),
        case("sort", &["Sort"], vec![x34(Some(2)), x34(None)], |x| {
            prim::sort(&[&x[0], &x[1]], 1, 1, true)
        }),
        case(
            "reduce_window and its gradient ops",
            &["ReduceWindow", "SelectAndScatterAdd", "SelectAndGatherAdd"],
            vec![f64_in(&[4, 5], Some(1)), f64_in(&[4, 5], None)],
            |x| {
                let w = window();
                let y = prim::reduce_window(&x[0], ReduceKind::Max, &w);
                let s = prim::select_and_scatter_add(&y, &x[0], ReduceKind::Max, &w);
                let g = prim::select_and_gather_add(&x[1], &x[0], ReduceKind::Max, &w);
                vec![y, s, g]
            },
        ),
        case(
            "dot_general, both batched",
            &["DotGeneral"],
            vec![x34(Some(0)), f64_in(&[2, 4, 5], Some(2))],
            |x| vec![dot(&x[0], &x[1])],
        ),
        case(
            "dot_general, lhs batched",
            &["DotGeneral"],
            vec![x34(Some(1)), f64_in(&[2, 4, 5], None)],
            |x| vec![dot(&x[0], &x[1])],
        ),
        case(
            "dot_general, rhs batched",
            &["DotGeneral"],
            vec![x34(None), f64_in(&[2, 4, 5], Some(3))],
            |x| vec![dot(&x[0], &x[1])],
        ),
        case(
            "convolution, input batched",
            &["Convolution"],
            vec![f64_in(&[2, 5, 5, 3], Some(1)), f64_in(&[3, 3, 3, 4], None)],
            |x| vec![conv(&x[0], &x[1], 1)],
        ),
        case(
            "convolution, both batched",
            &["Convolution"],
            vec![
                f64_in(&[2, 5, 5, 3], Some(3)),
                f64_in(&[3, 3, 3, 4], Some(2)),
            ],
            |x| vec![conv(&x[0], &x[1], 1)],
        ),
        case(
            "grouped convolution, kernel batched",
            &["Convolution"],
            vec![
                f64_in(&[2, 5, 5, 3], Some(0)),
                f64_in(&[3, 3, 1, 3], Some(4)),
            ],
            |x| vec![conv(&x[0], &x[1], 3)],
        ),
        case(
            "convolution, kernel batched",
            &["Convolution"],
            vec![f64_in(&[2, 5, 5, 3], None), f64_in(&[3, 3, 3, 4], Some(0))],
            |x| vec![conv(&x[0], &x[1], 1)],
        ),
        case(
            "gather, indices batched",
            &["Gather"],
            vec![f64_in(&[5, 4], None), i32_in(&[2, 1], Some(0))],
            |x| vec![rows(&x[0], &x[1])],
        ),
        case(
            "gather, operand batched",
            &["Gather"],
            vec![f64_in(&[5, 4], Some(2)), i32_in(&[2, 1], None)],
            |x| vec![rows(&x[0], &x[1])],
        ),
        case(
            "gather, both batched",
            &["Gather"],
            vec![f64_in(&[5, 4], Some(0)), i32_in(&[2, 1], Some(1))],
            |x| vec![rows(&x[0], &x[1])],
        ),
        case(
            "scatter",
            &["Scatter"],
            vec![
                f64_in(&[5, 4], Some(1)),
                i32_in(&[2, 1], Some(0)),
                f64_in(&[2, 4], None),
            ],
            |x| {
                let d = ScatterDims {
                    update_window_dims: vec![1],
                    inserted_window_dims: vec![0],
                    scatter_dims_to_operand_dims: vec![0],
                    index_vector_dim: 1,
                    ..ScatterDims::default()
                };
                vec![
                    prim::scatter(&x[0], &x[1], &x[2], d.clone(), ScatterKind::Add),
                    prim::scatter(&x[0], &x[1], &x[2], d, ScatterKind::Replace),
                ]
            },
        ),
        case(
            "constants, iota and grad's identity",
            &["Constant", "Iota", "Identity"],
            vec![f64_in(&[4], Some(0))],
            |x| {
                let i = prim::convert(&prim::iota(DType::I32, &[4], 0), DType::F64);
                let c = prim::constant(&[2.0f64, 1.0, 0.5, 3.0], &[4]);
                let g = grad(|x: Tensor| np::sum(&(&x * &x * &c), np::Axes::All, false))(&x[0]);
                vec![&x[0] * &i, g]
            },
        ),
        case(
            "stop_gradient, barrier and checkpoint",
            &["StopGradient", "Barrier", "Remat"],
            vec![f64_in(&[4], Some(0)), f64_in(&[4], None)],
            |x| {
                let s = stop_gradient(&x[0]);
                let b = optimization_barrier(&[s.clone(), x[1].clone()]);
                let r = checkpoint(
                    |(a, b): (Tensor, Tensor)| prim::sin(&(&a * &b)),
                    RematPolicy::NothingSaveable,
                )((b[0].clone(), b[1].clone()));
                let g = grad(|x: Tensor| {
                    let r = checkpoint(|x: Tensor| prim::sin(&x), RematPolicy::NothingSaveable)(x);
                    np::sum(&r, np::Axes::All, false)
                })(&x[0]);
                vec![r, g]
            },
        ),
        case(
            "custom_vjp and custom_jvp, with their rules under grad",
            &["CustomVjp", "CustomJvp"],
            vec![f64_in(&[4], Some(0)), f64_in(&[4], None)],
            |x| {
                let w = x[1].clone();
                let scaled = move || {
                    let w = w.clone();
                    custom_vjp(
                        move |x: Tensor| (prim::mul(&x, &w), x.clone()),
                        |x: &Tensor, g: &Tensor| prim::mul(g, &prim::cos(x)),
                    )
                };
                let soft = custom_jvp(
                    |x: Tensor| prim::tanh(&x),
                    |x: &Tensor, _: &Tensor, t: &Tensor| prim::mul(t, &prim::exp(x)),
                );
                let y = scaled()(x[0].clone());
                let z = soft(x[0].clone());
                let s2 = scaled();
                let gy = grad(move |x: Tensor| np::sum(&s2(x), np::Axes::All, false))(&x[0]);
                let gz = grad(|x: Tensor| np::sum(&soft(x), np::Axes::All, false))(&x[0]);
                vec![y, z, gy, gz]
            },
        ),
        case(
            "cond with a shared and a batched predicate",
            &["Case"],
            vec![
                f64_in(&[], None),
                f64_in(&[], Some(0)),
                f64_in(&[4], Some(0)),
            ],
            |x| {
                let zero = prim::scalar(0.0f64);
                let p1 = prim::compare(&x[0], &zero, CompareDir::Gt);
                let p2 = prim::compare(&x[1], &zero, CompareDir::Gt);
                let a = cond(
                    &p1,
                    |v: Tensor| prim::sin(&v),
                    |v: Tensor| prim::neg(&v),
                    x[2].clone(),
                );
                let b = cond(
                    &p2,
                    |v: Tensor| prim::sin(&v),
                    |v: Tensor| prim::neg(&v),
                    x[2].clone(),
                );
                let k = prim::convert(
                    &prim::clamp(&zero, &x[1], &prim::scalar(2.0f64)),
                    DType::I32,
                );
                let b0: &dyn Fn(Tensor) -> Tensor = &|v: Tensor| prim::exp(&v);
                let b1: &dyn Fn(Tensor) -> Tensor = &|v: Tensor| prim::cos(&v);
                let b2: &dyn Fn(Tensor) -> Tensor = &|v: Tensor| v;
                let s = switch(&k, &[b0, b1, b2], x[2].clone());
                vec![a, b, s]
            },
        ),
        case(
            "while with a shared and a batched condition",
            &["While"],
            vec![f64_in(&[], Some(0)), f64_in(&[3], Some(0))],
            |x| {
                let f = fori_loop(0, 4, |_, v: Tensor| &prim::sin(&v) + &v, x[1].clone());
                let (n, y) = while_loop(
                    |(n, _): &(Tensor, Tensor)| {
                        prim::compare(n, &prim::scalar(8.0f64), CompareDir::Lt)
                    },
                    |(n, y): (Tensor, Tensor)| (&n + &prim::abs(&n) + 1.0, prim::cos(&y)),
                    (x[0].clone(), x[1].clone()),
                );
                vec![f, n, y]
            },
        ),
        case(
            "scan over batched xs and a shared init",
            &["Scan"],
            vec![
                f64_in(&[5, 2], Some(1)),
                f64_in(&[2], None),
                f64_in(&[2], Some(0)),
            ],
            |x| {
                let w = x[2].clone();
                let (c, ys) = scan(
                    move |c: Tensor, x: Tensor| {
                        let h = prim::tanh(&(&(&c * &w) + &x));
                        (h.clone(), &h * 2.0)
                    },
                    x[1].clone(),
                    x[0].clone(),
                );
                vec![c, ys]
            },
        ),
        case(
            "reverse scan over xs batched in front, batched init",
            &["Scan"],
            vec![f64_in(&[4, 2], Some(0)), f64_in(&[2], Some(0))],
            |x| {
                let (c, ys) = scan_with(
                    |c: Tensor, x: Tensor| (&c * &prim::cos(&x), prim::sin(&(&c + &x))),
                    x[1].clone(),
                    x[0].clone(),
                    ScanOptions {
                        reverse: true,
                        ..Default::default()
                    },
                );
                vec![c, ys]
            },
        ),
    ]
}

fn dot(x: &Tensor, y: &Tensor) -> Tensor {
    // (3, 4) x (2, 4, 5) contracting 4, no batch dimensions: (3, 2, 5).
    let d = DotDims {
        lhs_contracting: vec![1],
        rhs_contracting: vec![1],
        ..DotDims::default()
    };
    prim::dot_general(x, y, d, Precision::Highest, None)
}

fn conv(x: &Tensor, k: &Tensor, groups: usize) -> Tensor {
    let c = Convolution {
        strides: vec![1, 2],
        padding: vec![(1, 1), (0, 1)],
        lhs_dilation: vec![1, 1],
        rhs_dilation: vec![1, 1],
        dims: ConvDims::from_layouts("NHWC", "HWIO", "NHWC"),
        feature_group_count: groups,
        batch_group_count: 1,
        precision: Precision::Highest,
    };
    prim::conv_general_dilated(x, k, c)
}

fn rows(x: &Tensor, idx: &Tensor) -> Tensor {
    let d = GatherDims {
        offset_dims: vec![1],
        collapsed_slice_dims: vec![0],
        start_index_map: vec![0],
        index_vector_dim: 1,
        ..GatherDims::default()
    };
    prim::gather(x, idx, d, &[1, 4])
}

#[test]
fn batching_rules_match_a_loop_over_the_batch() {
    check(table());
}

/// Primitives no row can batch: they take no operands. The collectives and `shard_map` need
/// a device mesh and are checked in `batching_transforms.rs`.
const NO_OPERANDS: &[&str] = &["PartitionId"];
const ELSEWHERE: &[&str] = &[
    "Psum",
    "AllGather",
    "PsumScatter",
    "Ppermute",
    "ShardMap",
    "ShardingConstraint",
];

/// Every `impl Primitive for X` in bv-core's sources.
fn primitives() -> BTreeSet<String> {
    let re = regex::Regex::new(r"impl Primitive for (\w+)").unwrap();
    let mut found = BTreeSet::new();
    let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                found.extend(re.captures_iter(&text).map(|c| c[1].to_string()));
            }
        }
    }
    found
}

#[test]
fn every_primitive_has_a_row() {
    let covered: BTreeSet<String> = table()
        .iter()
        .flat_map(|c| c.prims.iter())
        .chain(NO_OPERANDS)
        .chain(ELSEWHERE)
        .map(|s| s.to_string())
        .collect();
    let all = primitives();
    assert!(all.len() > 40, "found only {} primitives", all.len());
    let missing: Vec<&String> = all.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "primitives without a batching row: {missing:?}"
    );
    let stale: Vec<&String> = covered.difference(&all).collect();
    assert!(
        stale.is_empty(),
        "rows name primitives that do not exist: {stale:?}"
    );
}
