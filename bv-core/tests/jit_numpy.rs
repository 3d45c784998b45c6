//! numpy-level functions against f64 host references, including promotion and
//! broadcasting edge cases (scalar and array, int and float, bf16 and f32, weak types).
//! Tolerances: `support::tol` of the result type.

mod support;

use bv_core::numpy as np;
use bv_core::{jit, DType, Spec, Tensor};
use support::*;

fn dtype_of(
    f: impl Fn(Vec<Tensor>) -> Tensor + Send + Sync + 'static,
    specs: Vec<Spec>,
) -> (DType, bool) {
    let g = jit(move |xs: Vec<Tensor>| {
        let t = f(xs);
        let weak = t.is_weak();
        (t, bv_core::prim::scalar(weak))
    });
    let l = g.lower(&specs).unwrap();
    (l.out_avals[0].dtype, l.out_avals[0].weak)
}

#[test]
fn promotion_and_weak_scalars() {
    let s = |d| vec![Spec::new([2], d)];
    let two = |a, b| vec![Spec::new([2], a), Spec::new([3, 1], b)];
    assert_eq!(dtype_of(|x| &x[0] * 2.0, s(DType::BF16)).0, DType::BF16);
    assert_eq!(dtype_of(|x| &x[0] + 1, s(DType::I8)).0, DType::I8);
    assert_eq!(dtype_of(|x| &x[0] + 1.5, s(DType::I32)), (DType::F32, true));
    assert_eq!(dtype_of(|x| &x[0] / 2, s(DType::I32)).0, DType::F32);
    assert_eq!(
        dtype_of(|x| &x[0] + &x[1], two(DType::BF16, DType::F32)).0,
        DType::F32
    );
    assert_eq!(
        dtype_of(|x| &x[0] + &x[1], two(DType::BF16, DType::F16)).0,
        DType::F32
    );
    assert_eq!(
        dtype_of(|x| &x[0] + &x[1], two(DType::U8, DType::I8)).0,
        DType::I16
    );
    assert_eq!(
        dtype_of(|x| &x[0] + &x[1], two(DType::Bool, DType::I32)).0,
        DType::I32
    );
    assert_eq!(
        dtype_of(|x| np::sum(&x[0], np::Axes::All, false), s(DType::Bool)).0,
        DType::I32
    );
    assert_eq!(dtype_of(|x| np::exp(&x[0]), s(DType::I32)).0, DType::F32);
}

#[test]
fn arithmetic_with_broadcasting_matches_f64() {
    let mut r = rng(11);
    let a = quantize(&uniform(&mut r, 6, -3.0, 3.0), DType::BF16);
    let b = quantize(&uniform(&mut r, 3, 0.5, 2.0), DType::F32);
    let ia = ints(&mut r, 6, -7, 8);
    let f = jit(|(a, b, ia): (Tensor, Tensor, Tensor)| {
        vec![
            &a + &b,      // bf16[2,3] + f32[3] -> f32[2,3]
            2.0 * &a - 1, // weak scalars keep bf16
            &ia % 3,      // floor-mod with the divisor's sign
            np::floor_divide(&ia, -2),
            &ia / 4, // true division of ints
            np::clip(&a, -1.0, 0.5),
            np::where_(&np::greater(&a, 0.0), &a, &b),
            np::power(&b, 2),
            np::maximum(&a, &b),
        ]
    });
    let args = (
        array(&a, &[2, 3], DType::BF16),
        array(&b, &[3], DType::F32),
        array(&ia, &[2, 3], DType::I32),
    );
    let out = f.call(&args).unwrap();
    let got: Vec<Vec<f64>> = out.iter().map(read).collect();
    assert_eq!(out[0].dtype(), DType::F32);
    assert_eq!(out[1].dtype(), DType::BF16);
    let bb = |i: usize| b[i % 3];
    let want_add: Vec<f64> = (0..6).map(|i| a[i] + bb(i)).collect();
    assert_close("bf16 + f32", &got[0], &want_add, tol(DType::F32));
    assert_close(
        "2a - 1",
        &got[1],
        &quantize(
            &a.iter().map(|x| 2.0 * x - 1.0).collect::<Vec<_>>(),
            DType::BF16,
        ),
        tol(DType::BF16),
    );
    assert_eq!(
        got[2],
        ia.iter().map(|x| x.rem_euclid(3.0)).collect::<Vec<_>>()
    );
    assert_eq!(
        got[3],
        ia.iter().map(|x| (x / -2.0).floor()).collect::<Vec<_>>()
    );
    assert_close(
        "int / int",
        &got[4],
        &ia.iter().map(|x| x / 4.0).collect::<Vec<_>>(),
        tol(DType::F32),
    );
    assert_close(
        "clip",
        &got[5],
        &a.iter().map(|x| x.clamp(-1.0, 0.5)).collect::<Vec<_>>(),
        tol(DType::BF16),
    );
    let wh: Vec<f64> = (0..6)
        .map(|i| if a[i] > 0.0 { a[i] } else { bb(i) })
        .collect();
    assert_close("where", &got[6], &wh, tol(DType::F32));
    assert_close(
        "power",
        &got[7],
        &b.iter().map(|x| x * x).collect::<Vec<_>>(),
        tol(DType::F32),
    );
    assert_close(
        "maximum",
        &got[8],
        &(0..6).map(|i| a[i].max(bb(i))).collect::<Vec<_>>(),
        tol(DType::F32),
    );
}

#[test]
fn reductions_linalg_and_nn_match_f64() {
    let mut r = rng(12);
    let x = quantize(&uniform(&mut r, 24, -2.0, 2.0), DType::F32);
    let w = quantize(&uniform(&mut r, 6 * 5, -1.0, 1.0), DType::F32);
    let f = jit(|(x, w): (Tensor, Tensor)| {
        vec![
            np::mean(&x, [0, 1], false), // [4,6] -> ... x is [2,2,6]
            np::var(&x, -1, 1, true),
            np::std(&x, np::Axes::All, 0, false),
            np::matmul(&x, &w), // [2,2,6] @ [6,5]
            np::einsum("abi,ij->ba", &[&x, &w]),
            np::softmax(&x, -1),
            np::log_softmax(&x, 0),
            np::logsumexp(&x, [1, 2], false),
            np::gelu(&x, true),
            np::gelu(&x, false),
            np::silu(&x),
            np::relu(&x),
            np::max(&x, 1, false),
            np::prod(&x, -1, false),
        ]
    });
    let got: Vec<Vec<f64>> = f
        .call(&(
            array(&x, &[2, 2, 6], DType::F32),
            array(&w, &[6, 5], DType::F32),
        ))
        .unwrap()
        .iter()
        .map(read)
        .collect();
    let (x, w) = (&x, &w);
    let xi = |a: usize, b: usize, c: usize| x[a * 12 + b * 6 + c];
    let t = (1e-5, 1e-5);
    let mean: Vec<f64> = (0..6)
        .map(|c| (0..4).map(|k| x[k * 6 + c]).sum::<f64>() / 4.0)
        .collect();
    assert_close("mean", &got[0], &mean, t);
    let var: Vec<f64> = (0..4)
        .map(|k| {
            let row = &x[k * 6..k * 6 + 6];
            let m = row.iter().sum::<f64>() / 6.0;
            row.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 5.0
        })
        .collect();
    assert_close("var ddof=1", &got[1], &var, t);
    let m = x.iter().sum::<f64>() / 24.0;
    assert_close(
        "std",
        &got[2],
        &[(x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 24.0).sqrt()],
        t,
    );
    let mm: Vec<f64> = (0..4)
        .flat_map(|k| (0..5).map(move |j| (0..6).map(|i| x[k * 6 + i] * w[i * 5 + j]).sum::<f64>()))
        .collect();
    assert_close("matmul", &got[3], &mm, t);
    let es: Vec<f64> = (0..2)
        .flat_map(|b| {
            (0..2).map(move |a| {
                (0..6)
                    .flat_map(|i| (0..5).map(move |j| (i, j)))
                    .map(|(i, j)| xi(a, b, i) * w[i * 5 + j])
                    .sum::<f64>()
            })
        })
        .collect();
    assert_close("einsum", &got[4], &es, t);
    let sm: Vec<f64> = (0..4)
        .flat_map(|k| {
            let row = x[k * 6..k * 6 + 6].to_vec();
            let z: f64 = row.iter().map(|v| v.exp()).sum();
            row.into_iter().map(move |v| v.exp() / z)
        })
        .collect();
    assert_close("softmax", &got[5], &sm, t);
    let lsm: Vec<f64> = (0..24)
        .map(|i| x[i] - (x[i % 12].exp() + x[i % 12 + 12].exp()).ln())
        .collect();
    assert_close("log_softmax axis 0", &got[6], &lsm, t);
    let lse: Vec<f64> = (0..2)
        .map(|a| {
            x[a * 12..a * 12 + 12]
                .iter()
                .map(|v| v.exp())
                .sum::<f64>()
                .ln()
        })
        .collect();
    assert_close("logsumexp", &got[7], &lse, t);
    let gt: Vec<f64> = x
        .iter()
        .map(|&v| {
            0.5 * v
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
        })
        .collect();
    assert_close("gelu tanh", &got[8], &gt, t);
    assert_close(
        "gelu exact",
        &got[9],
        &x.iter()
            .map(|&v| 0.5 * v * (1.0 + libm::erf(v / 2f64.sqrt())))
            .collect::<Vec<_>>(),
        t,
    );
    assert_close(
        "silu",
        &got[10],
        &x.iter()
            .map(|&v| v / (1.0 + (-v).exp()))
            .collect::<Vec<_>>(),
        t,
    );
    assert_close(
        "relu",
        &got[11],
        &x.iter().map(|&v| v.max(0.0)).collect::<Vec<_>>(),
        t,
    );
    let mx: Vec<f64> = (0..2)
        .flat_map(|a| (0..6).map(move |c| xi(a, 0, c).max(xi(a, 1, c))))
        .collect();
    assert_close("max", &got[12], &mx, t);
    assert_close(
        "prod",
        &got[13],
        &(0..4)
            .map(|k| x[k * 6..k * 6 + 6].iter().product())
            .collect::<Vec<f64>>(),
        t,
    );
}

#[test]
fn indexing_and_pooling() {
    let tv: Vec<f64> = (0..12).map(|i| i as f64).collect();
    let f = jit(|(t, idx, img): (Tensor, Tensor, Tensor)| {
        let (vals, pos) = np::top_k(&t, 2);
        vec![
            np::take(&t, &idx, 0),
            np::take(&t, &idx, -1),
            np::take_along_axis(&t, &(3 - bv_core::prim::iota(DType::I32, &[3, 4], 1)), 1),
            np::one_hot(&idx, 4, DType::F32),
            np::astype(&np::argmax(&t, 0), DType::F32),
            np::astype(&np::argmin(&t, 1), DType::F32),
            vals,
            np::astype(&pos, DType::F32),
            np::max_pool(&img, &[2, 2], &[2, 2], np::Padding::Valid),
            np::avg_pool(&img, &[3, 3], &[1, 1], np::Padding::Same),
        ]
    });
    let img: Vec<f64> = (0..16).map(|i| ((i * 7) % 16) as f64).collect();
    let args = (
        array(&tv, &[3, 4], DType::F32),
        array(&[2.0, -1.0, 0.0], &[3], DType::I32),
        array(&img, &[1, 4, 4, 1], DType::F32),
    );
    let got: Vec<Vec<f64>> = f.call(&args).unwrap().iter().map(read).collect();
    assert_eq!(
        got[0],
        vec![8.0, 9.0, 10.0, 11.0, 8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0]
    );
    assert_eq!(got[1], vec![2.0, 3.0, 0.0, 6.0, 7.0, 4.0, 10.0, 11.0, 8.0]);
    assert_eq!(
        got[2],
        vec![3.0, 2.0, 1.0, 0.0, 7.0, 6.0, 5.0, 4.0, 11.0, 10.0, 9.0, 8.0]
    );
    assert_eq!(
        got[3],
        vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(got[4], vec![2.0; 4]);
    assert_eq!(got[5], vec![0.0; 3]);
    assert_eq!(got[6], vec![3.0, 2.0, 7.0, 6.0, 11.0, 10.0]);
    assert_eq!(got[7], vec![3.0, 2.0, 3.0, 2.0, 3.0, 2.0]);
    let at = |i: i64, j: i64| {
        if (0..4).contains(&i) && (0..4).contains(&j) {
            img[(i * 4 + j) as usize]
        } else {
            0.0
        }
    };
    let mp: Vec<f64> = (0..2)
        .flat_map(|i| {
            (0..2).map(move |j| {
                (0..4)
                    .map(|k| at(2 * i + k / 2, 2 * j + k % 2))
                    .fold(f64::MIN, f64::max)
            })
        })
        .collect();
    assert_eq!(got[8], mp);
    let ap: Vec<f64> = (0..4i64)
        .flat_map(|i| {
            (0..4i64).map(move |j| {
                (0..9)
                    .map(|k| at(i - 1 + k / 3, j - 1 + k % 3))
                    .sum::<f64>()
                    / 9.0
            })
        })
        .collect();
    assert_close("avg_pool SAME", &got[9], &ap, (1e-6, 1e-6));
}

/// `jnp.sum`, `jnp.mean` and `jax.nn.softmax` reduce float16/bfloat16 in float32 and return
/// the input's type (`upcast_f16_for_computation`): 1000 ones sum to 1000 (a bfloat16
/// accumulator stops at 256, a float16 one at 2048 for 3000 ones). XLA's CPU backend
/// widens half-precision reductions by itself, so the program must also say it: every
/// `add` reduction in it runs over f32.
#[test]
fn half_precision_reductions_accumulate_in_f32() {
    for (dtype, n) in [(DType::BF16, 1000), (DType::F16, 3000)] {
        let f = jit(|x: Tensor| {
            vec![
                np::sum(&x, np::Axes::All, false),
                np::mean(&(&x * 0.5), np::Axes::All, false),
                np::softmax(&x, -1),
                np::log_softmax(&x, -1),
            ]
        });
        let text = f.lower(&Spec::new([n], dtype)).unwrap().text;
        let adds: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("stablehlo.reduce") && l.contains("stablehlo.add"))
            .collect();
        assert_eq!(adds.len(), 4, "{dtype}: {text}");
        for l in adds {
            assert!(
                l.ends_with("tensor<f32>"),
                "{dtype}: reduces in half precision: {l}"
            );
        }
        let out = f.call(&array(&vec![1.0; n], &[n], dtype)).unwrap();
        for o in &out {
            assert_eq!(o.dtype(), dtype);
        }
        assert_eq!(read(&out[0]), vec![n as f64], "{dtype} sum");
        assert_eq!(read(&out[1]), vec![0.5], "{dtype} mean");
        let p = quantize(&[1.0 / n as f64], dtype)[0];
        assert!(read(&out[2]).iter().all(|&v| v == p), "{dtype} softmax");
        let lp = quantize(&[-(n as f64).ln()], dtype)[0];
        assert!(
            read(&out[3]).iter().all(|&v| v == lp),
            "{dtype} log_softmax"
        );
    }
}
