//! Every function of the numpy layer listed as tested in `docs/numpy_coverage.md`, run under
//! `jit` in float64 against NumPy's float64 results (`tests/data/numpy_ref/make.py` wrote
//! `numpy_ref.json`; each row below calls the function its case names in the script). All
//! rows compile into one program. Floats must agree within 1e-12 (relative and absolute),
//! integers and bools exactly, and the result's kind (float, integer, bool) must match.

mod support;

use std::collections::BTreeMap;

use bv_core::numpy::{self as np, Axes, Indexing, PadMode, Padding, Side};
use bv_core::{jit, DType, Spec, Tensor};
use serde_json::Value;
use support::{array, assert_close, read, tol};

type Row = (&'static str, fn(&[Tensor]) -> Vec<Tensor>);

fn rows() -> Vec<Row> {
    vec![
        ("add", |x| vec![np::add(&x[0], &x[1])]),
        ("subtract", |x| vec![np::subtract(&x[0], &x[1])]),
        ("multiply", |x| vec![np::multiply(&x[0], &x[1])]),
        ("divide", |x| vec![np::divide(&x[0], &x[1])]),
        ("floor_divide", |x| vec![np::floor_divide(&x[0], &x[1])]),
        ("remainder", |x| vec![np::remainder(&x[0], &x[1])]),
        ("power", |x| vec![np::power(&x[0], &x[1])]),
        ("power_int", |x| vec![np::power(&x[0], 3)]),
        ("maximum", |x| vec![np::maximum(&x[0], &x[1])]),
        ("minimum", |x| vec![np::minimum(&x[0], &x[1])]),
        ("exp", |x| vec![np::exp(&x[0])]),
        ("expm1", |x| vec![np::expm1(&x[0])]),
        ("log", |x| vec![np::log(&x[0])]),
        ("log1p", |x| vec![np::log1p(&x[0])]),
        ("sqrt", |x| vec![np::sqrt(&x[0])]),
        ("rsqrt", |x| vec![np::rsqrt(&x[0])]),
        ("tanh", |x| vec![np::tanh(&x[0])]),
        ("sin", |x| vec![np::sin(&x[0])]),
        ("cos", |x| vec![np::cos(&x[0])]),
        ("erf", |x| vec![np::erf(&x[0])]),
        ("round", |x| vec![np::round(&x[0])]),
        ("floor", |x| vec![np::floor(&x[0])]),
        ("ceil", |x| vec![np::ceil(&x[0])]),
        ("abs", |x| vec![np::abs(&x[0])]),
        ("sign", |x| vec![np::sign(&x[0])]),
        ("square", |x| vec![np::square(&x[0])]),
        ("negative", |x| vec![np::negative(&x[0])]),
        ("clip", |x| vec![np::clip(&x[0], -0.5, 1.0)]),
        ("where", |x| {
            vec![np::where_(&np::greater(&x[0], 0.0), &x[0], &x[1])]
        }),
        ("logaddexp", |x| vec![np::logaddexp(&x[0], &x[1])]),
        ("arctan2", |x| vec![np::arctan2(&x[0], &x[1])]),
        ("equal", |x| vec![np::equal(&x[0], &x[1])]),
        ("less", |x| vec![np::less(&x[0], &x[1])]),
        ("greater_equal", |x| vec![np::greater_equal(&x[0], &x[1])]),
        ("isfinite", |x| vec![np::isfinite(&x[0])]),
        ("bitwise", |x| {
            vec![
                &x[0] & &x[1],
                &x[0] | &x[1],
                &x[0] ^ &x[1],
                np::invert(&x[0]),
                &x[0] << &x[1],
                &x[0] >> &x[1],
            ]
        }),
        ("integer_pow", |x| {
            vec![
                np::integer_pow(&x[0], 5),
                np::integer_pow(&x[0], -2),
                np::integer_pow(&x[0], 0),
            ]
        }),
        ("astype", |x| {
            vec![
                np::astype(&x[0], DType::I32),
                np::astype(&x[0], DType::Bool),
            ]
        }),
        ("zeros_ones", |_| {
            vec![np::zeros(&[2, 3], DType::F64), np::ones(&[3], DType::F64)]
        }),
        ("isnan_isinf", |x| vec![np::isnan(&x[0]), np::isinf(&x[0])]),
        ("tan", |x| vec![np::tan(&x[0])]),
        ("arctan", |x| vec![np::arctan(&x[0])]),
        ("sinh", |x| vec![np::sinh(&x[0])]),
        ("arcsin_arccos", |x| {
            vec![np::arcsin(&x[0]), np::arccos(&x[0])]
        }),
        ("isclose", |x| {
            vec![
                np::isclose(&x[0], &x[1], 1e-5, 1e-6),
                np::isclose(&x[2], &x[3], 1e-5, 1e-8),
                np::allclose(&x[0], &(&x[0] + 1e-9), 1e-5, 1e-8),
                np::allclose(&x[0], &x[1], 1e-5, 1e-8),
            ]
        }),
        ("count_nonzero", |x| {
            vec![
                np::count_nonzero(&x[0], 1, false),
                np::count_nonzero(&x[0], Axes::All, false),
            ]
        }),
        ("cosh", |x| vec![np::cosh(&x[0])]),
        ("exp2", |x| vec![np::exp2(&x[0])]),
        ("logical_and", |x| vec![np::logical_and(&x[0], &x[1])]),
        ("logical_or", |x| vec![np::logical_or(&x[0], &x[1])]),
        ("logical_xor", |x| vec![np::logical_xor(&x[0], &x[1])]),
        ("logical_not", |x| vec![np::logical_not(&x[0])]),
        ("reciprocal", |x| vec![np::reciprocal(&x[0])]),
        ("log2", |x| vec![np::log2(&x[0])]),
        ("log10", |x| vec![np::log10(&x[0])]),
        ("sum", |x| vec![np::sum(&x[0], [0, 2], false)]),
        ("sum_all", |x| vec![np::sum(&x[0], Axes::All, false)]),
        ("mean", |x| vec![np::mean(&x[0], -1, true)]),
        ("max", |x| vec![np::max(&x[0], 1, false)]),
        ("min", |x| vec![np::min(&x[0], 0, false)]),
        ("prod", |x| vec![np::prod(&x[0], 2, false)]),
        ("var", |x| vec![np::var(&x[0], 1, 1, false)]),
        ("std", |x| vec![np::std(&x[0], [0, 1], 0, false)]),
        ("all", |x| vec![np::all(&x[0], 1, false)]),
        ("any", |x| vec![np::any(&x[0], 0, false)]),
        ("cumsum", |x| vec![np::cumsum(&x[0], 1)]),
        ("cumprod", |x| {
            let zeroed = &x[0] * np::not_equal(np::arange(5, DType::I32), 2);
            vec![
                np::cumprod(&x[0], 1),
                np::cumprod(&zeroed, -1),
                np::cumprod(&x[0], 0),
            ]
        }),
        ("cummax", |x| vec![np::cummax(&x[0], 0)]),
        ("cummin", |x| vec![np::cummin(&x[0], -1)]),
        ("argmax", |x| vec![np::argmax(&x[0], 1)]),
        ("argmin", |x| vec![np::argmin(&x[0], 0)]),
        ("sort", |x| vec![np::sort(&x[0], 1)]),
        ("searchsorted", |x| {
            vec![
                np::searchsorted(&x[0], &x[1], Side::Left),
                np::searchsorted(&x[0], &x[1], Side::Right),
            ]
        }),
        ("argsort", |x| vec![np::argsort(&x[0], 0)]),
        ("take", |x| vec![np::take(&x[0], &x[1], 1)]),
        ("take_along_axis", |x| {
            vec![np::take_along_axis(&x[0], &x[1], 1)]
        }),
        ("one_hot", |x| vec![np::one_hot(&x[0], 4, DType::F64)]),
        ("top_k", |x| {
            let (v, i) = np::top_k(&x[0], 2);
            vec![v, i]
        }),
        ("softmax", |x| vec![np::softmax(&x[0], -1)]),
        ("log_softmax", |x| vec![np::log_softmax(&x[0], -1)]),
        ("logsumexp", |x| vec![np::logsumexp(&x[0], 0, false)]),
        ("sigmoid", |x| vec![np::sigmoid(&x[0])]),
        ("log_sigmoid", |x| vec![np::log_sigmoid(&x[0])]),
        ("relu", |x| vec![np::relu(&x[0])]),
        ("silu", |x| vec![np::silu(&x[0])]),
        ("gelu_tanh", |x| vec![np::gelu(&x[0], true)]),
        ("gelu_erf", |x| vec![np::gelu(&x[0], false)]),
        ("softplus", |x| vec![np::softplus(&x[0])]),
        ("leaky_relu", |x| vec![np::leaky_relu(&x[0], 0.1)]),
        ("elu", |x| vec![np::elu(&x[0], 0.5)]),
        ("relu6", |x| vec![np::relu6(&x[0])]),
        ("hard_tanh", |x| vec![np::hard_tanh(&x[0])]),
        ("celu", |x| vec![np::celu(&x[0], 0.5)]),
        ("selu", |x| vec![np::selu(&x[0])]),
        ("glu", |x| vec![np::glu(&x[0], -1)]),
        ("standardize", |x| vec![np::standardize(&x[0], -1, 1e-5)]),
        ("max_pool", |x| {
            vec![np::max_pool(&x[0], &[2, 2], &[2, 2], Padding::Valid)]
        }),
        ("avg_pool", |x| {
            vec![np::avg_pool(&x[0], &[3, 3], &[], Padding::Same)]
        }),
        ("matmul", |x| vec![np::matmul(&x[0], &x[1])]),
        ("einsum", |x| {
            vec![np::einsum("bij,bjk->bik", &[&x[0], &x[1]])]
        }),
        ("norm", |x| vec![np::norm(&x[0], 1, false)]),
        ("dot", |x| {
            vec![
                np::dot(&x[1], &x[2]),
                np::dot(&x[0], &x[3]),
                np::dot(&x[5], &x[0]),
                np::dot(&x[1], &x[4]),
                np::dot(&x[0], &x[0]),
                np::dot(&x[6], &x[5]),
            ]
        }),
        ("inner", |x| vec![np::inner(&x[0], &x[1])]),
        ("trace", |x| {
            vec![
                np::trace(&x[0], 0),
                np::trace(&x[0], 2),
                np::trace(&x[0], -1),
            ]
        }),
        ("outer", |x| vec![np::outer(&x[0], &x[1])]),
        ("vdot", |x| vec![np::vdot(&x[0], &x[1])]),
        ("diag_vec", |x| {
            vec![np::diag(&x[0], 1), np::diag(&x[0], -2)]
        }),
        ("diag_mat", |x| {
            [0, 1, -1, 3].map(|k| np::diag(&x[0], k)).to_vec()
        }),
        ("reshape", |x| vec![np::reshape(&x[0], &[4, -1])]),
        ("ravel", |x| vec![np::ravel(&x[0])]),
        ("transpose", |x| vec![np::transpose(&x[0], &[2, 0, 1])]),
        ("broadcast_to", |x| vec![np::broadcast_to(&x[0], &[2, 3])]),
        ("arange", |_| vec![np::arange(5, DType::I32)]),
        ("full", |_| vec![np::full(&[2, 2], 2.5, DType::F64)]),
        ("concatenate", |x| vec![np::concatenate(&[&x[0], &x[1]], 1)]),
        ("stack", |x| {
            vec![
                np::stack(&[&x[0], &x[1]], 0),
                np::stack(&[&x[0], &x[1]], -1),
            ]
        }),
        ("expand_dims", |x| {
            vec![np::expand_dims(&x[0], 1), np::expand_dims(&x[0], -1)]
        }),
        ("squeeze", |x| {
            vec![np::squeeze(&x[0], Axes::All), np::squeeze(&x[0], -1)]
        }),
        ("pad_constant", |x| {
            vec![np::pad(&x[0], &[(1, 2), (0, 3)], PadMode::Constant(1.5))]
        }),
        ("pad_edge", |x| {
            vec![np::pad(&x[0], &[(2, 1), (5, 0)], PadMode::Edge)]
        }),
        ("pad_reflect", |x| {
            vec![np::pad(&x[0], &[(2, 1), (5, 4)], PadMode::Reflect)]
        }),
        ("pad_symmetric", |x| {
            vec![np::pad(&x[0], &[(4, 1), (2, 6)], PadMode::Symmetric)]
        }),
        ("pad_wrap", |x| {
            vec![np::pad(&x[0], &[(3, 3), (1, 9)], PadMode::Wrap)]
        }),
        ("split", |x| {
            let mut v = np::split(&x[0], 3, 0);
            v.extend(np::split(&x[0], 2, 1));
            v
        }),
        ("split_at", |x| np::split_at(&x[0], &[1, 4], 0)),
        ("array_split", |x| np::array_split(&x[0], 3, 0)),
        ("tile", |x| {
            vec![np::tile(&x[0], &[2, 1, 3]), np::tile(&x[0], &[2])]
        }),
        ("repeat", |x| {
            vec![np::repeat(&x[0], 2, Some(1)), np::repeat(&x[0], 3, None)]
        }),
        ("flip", |x| {
            vec![np::flip(&x[0], 0), np::flip(&x[0], Axes::All)]
        }),
        ("roll", |x| {
            vec![np::roll(&x[0], 2, Some(1)), np::roll(&x[0], -4, None)]
        }),
        ("diff", |x| vec![np::diff(&x[0], 1), np::diff(&x[0], -1)]),
        ("swapaxes", |x| vec![np::swapaxes(&x[0], 0, 2)]),
        ("moveaxis", |x| {
            vec![np::moveaxis(&x[0], 0, -1), np::moveaxis(&x[0], 2, 0)]
        }),
        ("tril", |x| vec![np::tril(&x[0], 0), np::tril(&x[0], -1)]),
        ("triu", |x| vec![np::triu(&x[0], 0), np::triu(&x[0], 2)]),
        ("full_like", |x| {
            vec![
                np::full_like(&x[0], 3.0),
                np::zeros_like(&x[0]),
                np::ones_like(&x[0]),
            ]
        }),
        ("arange_step", |_| {
            vec![
                np::arange_step(1.5, 7.0, 0.75, DType::F64),
                np::arange_step(5.0, -3.0, -2.0, DType::F64),
                np::arange_step(2.0, 11.0, 3.0, DType::I32),
            ]
        }),
        ("linspace", |_| {
            vec![
                np::linspace(-1.0, 2.0, 7, true, DType::F64),
                np::linspace(0.0, 1.0, 5, false, DType::F64),
            ]
        }),
        ("eye", |_| {
            vec![
                np::eye(3, 4, 1, DType::F64),
                np::eye(4, 3, -1, DType::F64),
                np::tri(3, 5, 0, DType::F64),
            ]
        }),
        ("meshgrid", |x| {
            let mut v = np::meshgrid(&[&x[0], &x[1], &x[2]], Indexing::Xy);
            v.extend(np::meshgrid(&[&x[0], &x[1]], Indexing::Ij));
            v
        }),
    ]
}

fn number(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().expect("nan/inf string"),
        v => v.as_f64().expect("number"),
    }
}

fn values(v: &Value) -> (String, Vec<usize>, Vec<f64>) {
    let kind = v["dtype"].as_str().unwrap().to_string();
    let shape = v["shape"].as_array().unwrap();
    let shape = shape.iter().map(|d| d.as_u64().unwrap() as usize);
    let data = v["data"].as_array().unwrap().iter().map(number).collect();
    (kind, shape.collect(), data)
}

fn kind(d: DType) -> &'static str {
    match d {
        DType::Bool => "bool",
        d if d.is_float() => "f64",
        _ => "int",
    }
}

#[test]
fn numpy_layer_matches_numpy_f64() {
    let text = include_str!("data/numpy_ref/numpy_ref.json");
    let cases: BTreeMap<String, Value> = serde_json::from_str(text).unwrap();
    let table = rows();
    let names: Vec<&str> = table.iter().map(|r| r.0).collect();
    let missing: Vec<&String> = cases
        .keys()
        .filter(|k| !names.contains(&k.as_str()))
        .collect();
    assert!(missing.is_empty(), "cases without a row: {missing:?}");
    let mut args = Vec::new();
    let mut arity = Vec::new();
    for (name, _) in &table {
        let case = cases
            .get(*name)
            .unwrap_or_else(|| panic!("no reference for {name}"));
        let ins = case["inputs"].as_array().unwrap();
        arity.push(ins.len());
        for v in ins {
            let (k, shape, data) = values(v);
            let dtype = if k == "f64" { DType::F64 } else { DType::I32 };
            args.push(array(&data, &shape, dtype));
        }
    }
    let arity2 = arity.clone();
    let f = jit(move |xs: Vec<Tensor>| -> Vec<Tensor> {
        let mut at = 0;
        let mut outs = Vec::new();
        for ((_, row), n) in rows().iter().zip(&arity2) {
            outs.extend(row(&xs[at..at + n]));
            at += n;
        }
        outs
    });
    let out = f.call(&args).unwrap_or_else(|e| panic!("{e}"));
    let mut at = 0;
    for (name, _) in &table {
        let want = cases[*name]["outputs"].as_array().unwrap();
        for (j, w) in want.iter().enumerate() {
            let got = &out[at];
            at += 1;
            let what = format!("{name}[{j}]");
            let (k, shape, data) = values(w);
            assert_eq!(
                kind(got.dtype()),
                k,
                "{what}: result kind ({})",
                got.dtype()
            );
            assert_eq!(got.shape(), &shape[..], "{what}: shape");
            assert_close(&what, &read(got), &data, tol(DType::F64));
        }
    }
    assert_eq!(at, out.len(), "rows returned more outputs than NumPy");
}

/// The result type of `f` on `specs`, from lowering alone.
fn dtype_of(f: fn(&[Tensor]) -> Tensor, specs: Vec<Spec>) -> DType {
    let g = jit(move |xs: Vec<Tensor>| f(&xs));
    g.lower(&specs).unwrap().out_avals[0].dtype
}

#[test]
fn new_functions_promote_as_jnp() {
    let s = |d: &[DType]| d.iter().map(|&d| Spec::new([2, 3], d)).collect::<Vec<_>>();
    let cat = |x: &[Tensor]| np::concatenate(&[&x[0], &x[1]], 0);
    let stack = |x: &[Tensor]| np::stack(&[&x[0], &x[1]], 0);
    assert_eq!(dtype_of(cat, s(&[DType::BF16, DType::F32])), DType::F32);
    assert_eq!(dtype_of(cat, s(&[DType::BF16, DType::F16])), DType::F32);
    assert_eq!(dtype_of(stack, s(&[DType::I8, DType::U8])), DType::I16);
    assert_eq!(dtype_of(stack, s(&[DType::Bool, DType::I32])), DType::I32);
    let outer = |x: &[Tensor]| np::outer(&x[0], &x[1]);
    assert_eq!(dtype_of(outer, s(&[DType::I32, DType::BF16])), DType::BF16);
    let land = |x: &[Tensor]| np::logical_and(&x[0], 2.5);
    assert_eq!(dtype_of(land, s(&[DType::F32])), DType::Bool);
    let cumsum = |x: &[Tensor]| np::cumsum(&x[0], 0);
    assert_eq!(dtype_of(cumsum, s(&[DType::Bool])), DType::I32);
    assert_eq!(dtype_of(cumsum, s(&[DType::U8])), DType::U32);
    let recip = |x: &[Tensor]| np::reciprocal(&x[0]);
    assert_eq!(dtype_of(recip, s(&[DType::I32])), DType::F32);
    let pad = |x: &[Tensor]| np::pad(&x[0], &[(1, 1)], PadMode::Reflect);
    assert_eq!(dtype_of(pad, s(&[DType::BF16])), DType::BF16);
}

#[test]
fn bad_shapes_name_the_op_the_shapes_and_the_callers_line() {
    type Bad = (
        fn(&[Tensor]) -> Tensor,
        Vec<usize>,
        Vec<usize>,
        &'static str,
    );
    let cases: Vec<Bad> = vec![
        (
            |x| np::concatenate(&[&x[0], &x[1]], 1),
            vec![2, 3],
            vec![3, 3],
            "concatenate: shapes [2, 3] and [3, 3] differ outside axis 1",
        ),
        (
            |_| np::concatenate(&[], 0),
            vec![2],
            vec![],
            "concatenate: needs at least one array",
        ),
        (
            |x| np::stack(&[&x[0], &x[1]], 0),
            vec![2, 3],
            vec![3, 2],
            "stack: shapes [2, 3] and [3, 2] must be equal",
        ),
        (
            |x| np::squeeze(&x[0], 0),
            vec![2, 3],
            vec![],
            "squeeze: axis 0 of shape [2, 3] is not of size 1",
        ),
        (
            |x| np::split(&x[0], 2, 0).swap_remove(0),
            vec![5, 2],
            vec![],
            "split: axis 0 of shape [5, 2] does not split into 2 equal sections",
        ),
        (
            |x| np::pad(&x[0], &[(1, 1); 3], PadMode::Edge),
            vec![2, 3],
            vec![],
            "pad: 3 (before, after) pairs for shape [2, 3]",
        ),
        (
            |x| np::pad(&x[0], &[(1, 1), (0, 0)], PadMode::Reflect),
            vec![0, 3],
            vec![],
            "pad: cannot pad the empty axis 0 of [0, 3] with Reflect",
        ),
        (
            |x| np::tril(&x[0], 0),
            vec![4],
            vec![],
            "tril: needs at least 2 dimensions, got shape [4]",
        ),
        (
            |x| np::expand_dims(&x[0], 3),
            vec![2, 3],
            vec![],
            "expand_dims: axis 3 is out of range for rank 2",
        ),
        (
            |x| np::roll(&x[0], 1, Some(-3)),
            vec![2, 3],
            vec![],
            "roll: axis -3 is out of range for rank 2",
        ),
        (
            |x| np::vdot(&x[0], &x[1]),
            vec![2, 3],
            vec![5],
            "vdot: sizes of [2, 3] and [5] differ",
        ),
        (
            |x| np::dot(&x[0], &x[1]),
            vec![2, 3],
            vec![2, 3],
            "dot: axis 1 of [2, 3] and axis 0 of [2, 3] differ in length",
        ),
        (
            |x| np::searchsorted(&x[0], &x[1], Side::Left),
            vec![2, 3],
            vec![2],
            "searchsorted: needs a 1-D sorted array, got shape [2, 3]",
        ),
        (
            |x| np::diag(&x[0], 0),
            vec![2, 3, 4],
            vec![],
            "diag: needs a 1-D or 2-D input, got shape [2, 3, 4]",
        ),
        (
            |x| np::meshgrid(&[&x[0]], Indexing::Ij).swap_remove(0),
            vec![2, 3],
            vec![],
            "meshgrid: needs 1-D inputs, got shape [2, 3]",
        ),
        (
            |x| np::logical_or(&x[0], &x[1]),
            vec![2, 3],
            vec![2],
            "logical_or: cannot broadcast shapes [2, 3] and [2]",
        ),
    ];
    for (f, a, b, want) in cases {
        let mut specs = vec![Spec::new(a, DType::F32)];
        if !b.is_empty() {
            specs.push(Spec::new(b, DType::F32));
        }
        let g = jit(move |xs: Vec<Tensor>| f(&xs));
        let err = g.lower(&specs).unwrap_err().to_string();
        assert!(err.starts_with(want), "{err}\nwant: {want}");
        assert!(err.contains("numpy_reference.rs:"), "no caller line: {err}");
    }
}

/// Derivatives at the kinks of the new activations, as JAX 0.10.2 gives them:
/// `jax.grad(lambda x: jax.nn.relu6(x).sum())(jnp.array([0., 6., 3., -1., 7.]))` is
/// `[0, 0, 1, 0, 0]`; `hard_tanh` at `[-1, 1, 0.5, 2, -2]` is `[1, 1, 1, 0, 0]`;
/// `leaky_relu(x, 0.1)`, `elu` and `celu` at 0 are 1.
#[test]
fn activation_kinks_match_jax() {
    use bv_core::autodiff::grad;
    let total = |f: fn(&Tensor) -> Tensor| move |x: Tensor| np::sum(&f(&x), Axes::All, false);
    let f = jit(move |x: Vec<Tensor>| {
        vec![
            grad(total(np::relu6))(&x[0]),
            grad(total(np::hard_tanh))(&x[1]),
            grad(total(|x| np::leaky_relu(x, 0.1)))(&x[2]),
            grad(total(|x| np::elu(x, 1.0)))(&x[2]),
            grad(total(|x| np::celu(x, 1.0)))(&x[2]),
        ]
    });
    let args = vec![
        array(&[0.0, 6.0, 3.0, -1.0, 7.0], &[5], DType::F32),
        array(&[-1.0, 1.0, 0.5, 2.0, -2.0], &[5], DType::F32),
        array(&[0.0], &[1], DType::F32),
    ];
    let out = f.call(&args).unwrap_or_else(|e| panic!("{e}"));
    let want: [&[f64]; 5] = [
        &[0.0, 0.0, 1.0, 0.0, 0.0],
        &[1.0, 1.0, 1.0, 0.0, 0.0],
        &[1.0],
        &[1.0],
        &[1.0],
    ];
    for (i, w) in want.iter().enumerate() {
        assert_close(&format!("kink {i}"), &read(&out[i]), w, (0.0, 0.0));
    }
}
