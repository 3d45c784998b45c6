//! Shape, indexing, reduction, contraction, convolution and sort primitives against host
//! references (ndarray or direct loops in f64), batched into a few programs.

mod support;

use bv_core::prim::{
    self, ArgKind, ConvDims, Convolution, DotDims, GatherDims, Precision, ReduceKind, ScatterDims,
    ScatterKind, Window,
};
use bv_core::{jit, DType, Tensor};
use ndarray::{s, Array, ArrayD, Axis, IxDyn};
use support::*;

fn nd(v: Vec<f64>, shape: &[usize]) -> ArrayD<f64> {
    Array::from_shape_vec(IxDyn(shape), v).unwrap()
}

fn flat(a: &ArrayD<f64>) -> Vec<f64> {
    a.iter().copied().collect()
}

#[test]
fn shape_ops_match_ndarray() {
    let xv: Vec<f64> = (0..24).map(|i| i as f64).collect();
    let f = jit(|(x, y, i): (Tensor, Tensor, Tensor)| {
        let k = prim::scalar(5i32);
        let neg = prim::scalar(-1f32);
        vec![
            prim::broadcast_in_dim(&y, &[2, 3], &[1]),
            prim::reshape(&x, &[6, 4]),
            prim::transpose(&x, &[2, 0, 1]),
            prim::slice_strided(&x, &[0, 1, 0], &[2, 3, 4], &[1, 1, 2]),
            prim::dynamic_slice(&x, &[&i, &k, &i], &[1, 2, 2]),
            prim::dynamic_update_slice(&x, &prim::full(&[1, 2, 2], 7.0, DType::F32), &[&i, &k, &i]),
            prim::concatenate(&[&x, &x], 1),
            prim::pad(&x, &neg, &[(1, 0, 0), (-1, 1, 1), (0, 0, 0)]),
            prim::reverse(&x, &[0, 2]),
            prim::convert(&prim::iota(DType::I32, &[2, 3], 1), DType::F32),
            prim::constant(&[1.5f32, -2.0, 3.25], &[3]),
        ]
    });
    let args = (
        array(&xv, &[2, 3, 4], DType::F32),
        array(&[1.0, 2.0, 3.0], &[3], DType::F32),
        array(&[1.0], &[], DType::I32),
    );
    let got: Vec<Vec<f64>> = f.call(&args).unwrap().iter().map(read).collect();
    let x = nd(xv.clone(), &[2, 3, 4]);
    assert_eq!(got[0], vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    assert_eq!(got[1], xv);
    assert_eq!(
        got[2],
        flat(
            &x.clone()
                .permuted_axes(IxDyn(&[2, 0, 1]))
                .as_standard_layout()
                .to_owned()
        )
    );
    assert_eq!(
        got[3],
        x.slice(s![0..2, 1..3, 0..4;2])
            .iter()
            .copied()
            .collect::<Vec<_>>()
    );
    // Start (1, 5, 1) is clamped to (1, 1, 1) so the window fits.
    assert_eq!(
        got[4],
        x.slice(s![1..2, 1..3, 1..3])
            .iter()
            .copied()
            .collect::<Vec<_>>()
    );
    let mut upd = x.clone();
    upd.slice_mut(s![1..2, 1..3, 1..3]).fill(7.0);
    assert_eq!(got[5], flat(&upd));
    assert_eq!(
        got[6],
        flat(&ndarray::concatenate(Axis(1), &[x.view(), x.view()]).unwrap())
    );
    // pad: one row before dim 0; dim 1 drops its first element, interleaves 1 and adds 1.
    let mut p = ArrayD::from_elem(IxDyn(&[3, 5, 4]), -1.0);
    for a in 0..2 {
        for b in 0..3 {
            let nb = 2 * b as i64 - 1;
            if nb >= 0 {
                for c in 0..4 {
                    p[[a + 1, nb as usize, c]] = x[[a, b, c]];
                }
            }
        }
    }
    assert_eq!(got[7], flat(&p));
    assert_eq!(
        got[8],
        x.slice(s![..;-1, .., ..;-1])
            .iter()
            .copied()
            .collect::<Vec<_>>()
    );
    assert_eq!(got[9], vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
    assert_eq!(got[10], vec![1.5, -2.0, 3.25]);
}

#[test]
fn reductions_and_windows() {
    let mut r = rng(7);
    let xv = quantize(&uniform(&mut r, 24, -3.0, 3.0), DType::F32);
    let mut av = xv.clone();
    av[5] = f64::NAN; // row 1 of [4,6] has a NaN: argmax and argmin pick it
    av[13] = av[12]; // a tie in row 2
    let f = jit(|(x, a, b): (Tensor, Tensor, Tensor)| {
        let w = Window::new(&[2, 3], &[2, 1])
            .with_padding(&[(0, 1), (1, 1)])
            .with_dilation(&[1, 1], &[1, 2]);
        vec![
            prim::reduce(&x, ReduceKind::Sum, &[1]),
            prim::reduce(&x, ReduceKind::Prod, &[0]),
            prim::reduce(&x, ReduceKind::Max, &[0, 1]),
            prim::reduce(&x, ReduceKind::Min, &[1]),
            prim::convert(&prim::reduce(&b, ReduceKind::And, &[1]), DType::F32),
            prim::convert(&prim::reduce(&b, ReduceKind::Or, &[1]), DType::F32),
            prim::convert(
                &prim::argreduce(&a, ArgKind::Max, 1, DType::I32).1,
                DType::F32,
            ),
            prim::convert(
                &prim::argreduce(&a, ArgKind::Min, 1, DType::I32).1,
                DType::F32,
            ),
            prim::reduce_window(&x, ReduceKind::Max, &w),
            prim::reduce_window(&x, ReduceKind::Sum, &w),
            prim::cumsum(&x, 1, false),
            prim::cummax(&x, 0, true),
        ]
    });
    let bv: Vec<f64> = (0..24)
        .map(|i| ((i % 5) != 0 || i >= 18) as u8 as f64)
        .collect();
    let args = (
        array(&xv, &[4, 6], DType::F32),
        array(&av, &[4, 6], DType::F32),
        array(&bv, &[4, 6], DType::Bool),
    );
    let got: Vec<Vec<f64>> = f.call(&args).unwrap().iter().map(read).collect();
    let x = nd(xv.clone(), &[4, 6]);
    let t = tol(DType::F32);
    assert_close(
        "sum",
        &got[0],
        &(x.sum_axis(Axis(1))).iter().copied().collect::<Vec<_>>(),
        t,
    );
    assert_close(
        "prod",
        &got[1],
        &(x.map_axis(Axis(0), |c| c.product()))
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        t,
    );
    assert_close("max", &got[2], &[x.fold(f64::MIN, |m, &v| m.max(v))], t);
    assert_close(
        "min",
        &got[3],
        &(x.map_axis(Axis(1), |c| c.fold(f64::MAX, |m, &v| m.min(v))))
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        t,
    );
    let b = nd(bv, &[4, 6]);
    assert_eq!(
        got[4],
        (b.map_axis(Axis(1), |c| c.iter().all(|&v| v != 0.0) as u8 as f64))
            .iter()
            .copied()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        got[5],
        (b.map_axis(Axis(1), |c| c.iter().any(|&v| v != 0.0) as u8 as f64))
            .iter()
            .copied()
            .collect::<Vec<_>>()
    );
    let arg = |better: fn(f64, f64) -> bool| -> Vec<f64> {
        (0..4)
            .map(|i| {
                let row = &av[i * 6..i * 6 + 6];
                let mut k = 0;
                for j in 1..6 {
                    if !row[k].is_nan() && (row[j].is_nan() || better(row[j], row[k])) {
                        k = j;
                    }
                }
                k as f64
            })
            .collect()
    };
    assert_eq!(got[6], arg(|a, b| a > b));
    assert_eq!(got[7], arg(|a, b| a < b));
    // reduce_window reference: windows of 2x3 taps (dim 1 dilated by 2), strides (2, 1),
    // padding (0,1) x (1,1) with the identity.
    let window = |init: f64, op: fn(f64, f64) -> f64| -> Vec<f64> {
        let mut out = Vec::new();
        for i in (0..=(4 + 1 - 2)).step_by(2) {
            for j in 0..=(6 + 2 - 5) {
                let mut acc = init;
                for di in 0..2 {
                    for dj in 0..3 {
                        let (pi, pj) = (i + di, (j + 2 * dj) as i64 - 1);
                        if pi < 4 && (0..6).contains(&pj) {
                            acc = op(acc, x[[pi, pj as usize]]);
                        }
                    }
                }
                out.push(acc);
            }
        }
        out
    };
    assert_close(
        "reduce_window max",
        &got[8],
        &window(f64::NEG_INFINITY, f64::max),
        t,
    );
    assert_close("reduce_window sum", &got[9], &window(0.0, |a, b| a + b), t);
    let mut cs = x.clone();
    for i in 0..4 {
        for j in 1..6 {
            cs[[i, j]] += cs[[i, j - 1]];
        }
    }
    assert_close("cumsum", &got[10], &flat(&cs), t);
    let mut cm = x.clone();
    for i in (0..3).rev() {
        for j in 0..6 {
            cm[[i, j]] = cm[[i, j]].max(cm[[i + 1, j]]);
        }
    }
    assert_close("cummax reverse", &got[11], &flat(&cm), t);
}

/// Direct 2-D NHWC x HWIO convolution with strides, padding, dilations and groups.
#[allow(clippy::too_many_arguments)]
fn conv_ref(
    x: &ArrayD<f64>,
    w: &ArrayD<f64>,
    stride: [usize; 2],
    pad: [(i64, i64); 2],
    ld: [usize; 2],
    rd: [usize; 2],
    groups: usize,
) -> ArrayD<f64> {
    let (n, h, wd, c) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (kh, kw, ci, co) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
    let size = |i: usize, k: usize, d: usize| {
        let xd = ((i - 1) * ld[d] + 1) as i64 + pad[d].0 + pad[d].1;
        let kd = ((k - 1) * rd[d] + 1) as i64;
        ((xd - kd) / stride[d] as i64 + 1) as usize
    };
    let (oh, ow) = (size(h, kh, 0), size(wd, kw, 1));
    let mut out = ArrayD::zeros(IxDyn(&[n, oh, ow, co]));
    let per = co / groups;
    for b in 0..n {
        for i in 0..oh {
            for j in 0..ow {
                for o in 0..co {
                    let g = o / per;
                    let mut acc = 0.0;
                    for p in 0..kh {
                        for q in 0..kw {
                            let yi = (i * stride[0] + p * rd[0]) as i64 - pad[0].0;
                            let yj = (j * stride[1] + q * rd[1]) as i64 - pad[1].0;
                            if yi < 0 || yj < 0 || yi % ld[0] as i64 != 0 || yj % ld[1] as i64 != 0
                            {
                                continue;
                            }
                            let (si, sj) =
                                ((yi / ld[0] as i64) as usize, (yj / ld[1] as i64) as usize);
                            if si >= h || sj >= wd {
                                continue;
                            }
                            for k in 0..ci {
                                acc += x[[b, si, sj, g * ci + k]] * w[[p, q, k, o]];
                            }
                        }
                    }
                    out[[b, i, j, o]] = acc;
                }
            }
        }
    }
    let _ = c;
    out
}

#[test]
fn dot_conv_gather_scatter_sort() {
    let mut r = rng(9);
    let (av, bv) = (
        quantize(&uniform(&mut r, 2 * 3 * 4, -1.0, 1.0), DType::F32),
        quantize(&uniform(&mut r, 2 * 4 * 5, -1.0, 1.0), DType::F32),
    );
    let xv = quantize(&uniform(&mut r, 2 * 5 * 6 * 4, -1.0, 1.0), DType::F32);
    let wv = quantize(&uniform(&mut r, 3 * 3 * 2 * 6, -1.0, 1.0), DType::F32);
    let tv: Vec<f64> = (0..15).map(|i| i as f64).collect();
    let keys = vec![3.0, 1.0, 2.0, 1.0, f64::NAN, -0.0, 3.0, 0.0];
    type Inputs = ((Tensor, Tensor, Tensor), (Tensor, Tensor, Tensor, Tensor));
    let f = jit(|((a, b, x), (w, t, idx, keys)): Inputs| {
        let dot = prim::dot_general(
            &a,
            &b,
            DotDims {
                lhs_batch: vec![0],
                rhs_batch: vec![0],
                lhs_contracting: vec![2],
                rhs_contracting: vec![1],
            },
            Precision::Highest,
            None,
        );
        let conv = prim::conv_general_dilated(
            &x,
            &w,
            Convolution {
                strides: vec![2, 1],
                padding: vec![(1, 1), (0, 2)],
                lhs_dilation: vec![1, 2],
                rhs_dilation: vec![2, 1],
                dims: ConvDims::from_layouts("NHWC", "HWIO", "NHWC"),
                feature_group_count: 2,
                batch_group_count: 1,
                precision: Precision::Highest,
            },
        );
        // Rows 4, 0, 2 of a [5, 3] table.
        let rows = prim::gather(
            &t,
            &idx,
            GatherDims {
                offset_dims: vec![1],
                collapsed_slice_dims: vec![0],
                start_index_map: vec![0],
                index_vector_dim: 1,
                ..GatherDims::default()
            },
            &[1, 3],
        );
        let sdims = ScatterDims {
            update_window_dims: vec![1],
            inserted_window_dims: vec![0],
            scatter_dims_to_operand_dims: vec![0],
            index_vector_dim: 1,
            ..ScatterDims::default()
        };
        let ones = prim::full(&[3, 3], 1.0, DType::F32);
        let added = prim::scatter(&t, &idx, &ones, sdims.clone(), ScatterKind::Add);
        let replaced = prim::scatter(&t, &idx, &ones, sdims, ScatterKind::Replace);
        let pos = prim::iota(DType::I32, &[8], 0);
        let sorted = prim::sort(&[&keys, &pos], 0, 1, false);
        let desc = prim::sort(&[&keys], 0, 1, true);
        vec![
            dot,
            conv,
            rows,
            added,
            replaced,
            sorted[0].clone(),
            prim::convert(&sorted[1], DType::F32),
            desc[0].clone(),
        ]
    });
    let args = (
        (
            array(&av, &[2, 3, 4], DType::F32),
            array(&bv, &[2, 4, 5], DType::F32),
            array(&xv, &[2, 5, 6, 4], DType::F32),
        ),
        (
            array(&wv, &[3, 3, 2, 6], DType::F32),
            array(&tv, &[5, 3], DType::F32),
            array(&[4.0, 0.0, 2.0], &[3, 1], DType::I32),
            array(&keys, &[8], DType::F32),
        ),
    );
    let got: Vec<Vec<f64>> = f.call(&args).unwrap().iter().map(read).collect();
    let (a, b) = (nd(av, &[2, 3, 4]), nd(bv, &[2, 4, 5]));
    let mut dot = Vec::new();
    for k in 0..2 {
        let p = a
            .index_axis(Axis(0), k)
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap()
            .dot(
                &b.index_axis(Axis(0), k)
                    .into_dimensionality::<ndarray::Ix2>()
                    .unwrap(),
            );
        dot.extend(p.iter().copied());
    }
    assert_close("dot_general", &got[0], &dot, (1e-5, 1e-5));
    let conv = conv_ref(
        &nd(xv, &[2, 5, 6, 4]),
        &nd(wv, &[3, 3, 2, 6]),
        [2, 1],
        [(1, 1), (0, 2)],
        [1, 2],
        [2, 1],
        2,
    );
    assert_close("convolution", &got[1], &flat(&conv), (1e-5, 1e-5));
    assert_eq!(got[2], vec![12.0, 13.0, 14.0, 0.0, 1.0, 2.0, 6.0, 7.0, 8.0]);
    let mut added = tv.clone();
    let mut replaced = tv.clone();
    for row in [4usize, 0, 2] {
        for c in 0..3 {
            added[row * 3 + c] += 1.0;
            replaced[row * 3 + c] = 1.0;
        }
    }
    assert_eq!(got[3], added);
    assert_eq!(got[4], replaced);
    // Total order: -0 < 0, NaN last; equal keys keep their positions (stable).
    let sorted_keys = [-0.0, 0.0, 1.0, 1.0, 2.0, 3.0, 3.0, f64::NAN];
    assert_close("sort keys", &got[5], &sorted_keys, (0.0, 0.0));
    assert_eq!(got[6], vec![5.0, 7.0, 1.0, 3.0, 2.0, 0.0, 6.0, 4.0]);
    assert!(got[7][0].is_nan() && got[7][1..3] == [3.0, 3.0]);
}
