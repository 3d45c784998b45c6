//! Every elementwise primitive against an f64 (or exact integer) host reference on seeded
//! random inputs, per element type. Each dtype's ops are batched into one program so the
//! suite compiles few executables. Tolerances are in `support::tol`.

mod support;

use bv_core::prim::{self, BinaryOp, CompareDir, UnaryOp};
use bv_core::{jit, DType, Tensor};
use support::*;

const N: usize = 64;
const FLOATS: [DType; 4] = [DType::F32, DType::BF16, DType::F16, DType::F64];

fn unary_ref(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x == 0.0 {
                0.0
            } else {
                x.signum()
            }
        }
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => x.round_ties_even(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Expm1 => x.exp_m1(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Log1p => x.ln_1p(),
        UnaryOp::Square => x * x,
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Logistic => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Erf => libm::erf(x),
        UnaryOp::IsFinite => x.is_finite() as u8 as f64,
        UnaryOp::Not | UnaryOp::Popcnt => unreachable!("integer ops"),
    }
}

/// Input range per float op, inside its domain and away from poles.
fn domain(op: UnaryOp) -> (f64, f64) {
    match op {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => (0.05, 8.0),
        UnaryOp::Log1p => (-0.9, 4.0),
        UnaryOp::Exp | UnaryOp::Expm1 => (-5.0, 5.0),
        _ => (-4.0, 4.0),
    }
}

fn run_unary(ops: &[UnaryOp], inputs: &[Vec<f64>], dtype: DType) -> Vec<Vec<f64>> {
    let ops2 = ops.to_vec();
    let f = jit(move |xs: Vec<Tensor>| {
        xs.iter()
            .zip(&ops2)
            .map(|(x, &op)| prim::Unary(op).apply(x))
            .collect::<Vec<Tensor>>()
    });
    let args: Vec<_> = inputs.iter().map(|v| array(v, &[v.len()], dtype)).collect();
    f.call(&args).unwrap().iter().map(read).collect()
}

#[test]
fn float_unary_ops_match_f64() {
    let ops: Vec<UnaryOp> = UnaryOp::ALL
        .iter()
        .copied()
        .filter(|o| o.class() != prim::Class::Int && o.class() != prim::Class::IntOrBool)
        .collect();
    let mut r = rng(1);
    for dtype in FLOATS {
        let inputs: Vec<Vec<f64>> = ops
            .iter()
            .map(|&op| {
                let (lo, hi) = domain(op);
                let mut v = uniform(&mut r, N, lo, hi);
                if op == UnaryOp::Round {
                    v[..8].copy_from_slice(&[0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 0.0]);
                }
                quantize(&v, dtype)
            })
            .collect();
        let got = run_unary(&ops, &inputs, dtype);
        for ((op, x), g) in ops.iter().zip(&inputs).zip(&got) {
            let want: Vec<f64> = x.iter().map(|&v| unary_ref(*op, v)).collect();
            let t = if *op == UnaryOp::IsFinite {
                (0.0, 0.0)
            } else {
                tol(dtype)
            };
            assert_close(
                &format!("{}<{dtype}>", op.name()),
                g,
                &quantize(
                    &want,
                    if *op == UnaryOp::IsFinite {
                        DType::F64
                    } else {
                        dtype
                    },
                ),
                t,
            );
        }
    }
}

#[test]
fn is_finite_sees_nan_and_inf() {
    let v = vec![
        1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        3.0e38,
    ];
    let got = run_unary(&[UnaryOp::IsFinite], std::slice::from_ref(&v), DType::F32);
    assert_eq!(got[0], vec![1.0, 0.0, 0.0, 0.0, 1.0, 1.0]);
}

/// Wraps an exact integer into `dtype`'s range, as two's-complement hardware does.
fn wrap(x: i128, dtype: DType) -> f64 {
    let bits = dtype.size_in_bytes() * 8;
    let m = x.rem_euclid(1i128 << bits);
    let v = if dtype.is_signed_int() && m >= 1i128 << (bits - 1) {
        m - (1i128 << bits)
    } else {
        m
    };
    v as f64
}

fn int_range(dtype: DType) -> (i64, i64) {
    let bits = dtype.size_in_bytes() * 8;
    if dtype.is_signed_int() {
        let h = 1i64 << (bits.min(62) - 1);
        (-h, h)
    } else {
        (0, 1i64 << bits.min(62))
    }
}

const INTS: [DType; 6] = [
    DType::I8,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::U32,
    DType::U64,
];

#[test]
fn integer_unary_ops_are_exact() {
    let ops = [
        UnaryOp::Neg,
        UnaryOp::Sign,
        UnaryOp::Not,
        UnaryOp::Popcnt,
        UnaryOp::Abs,
    ];
    let mut r = rng(2);
    for dtype in INTS {
        let ops: Vec<UnaryOp> = ops
            .iter()
            .copied()
            .filter(|o| o.class().accepts(dtype))
            .collect();
        let (lo, hi) = int_range(dtype);
        let inputs: Vec<Vec<f64>> = ops.iter().map(|_| ints(&mut r, N, lo, hi)).collect();
        let got = run_unary(&ops, &inputs, dtype);
        let bits = dtype.size_in_bytes() * 8;
        for ((op, x), g) in ops.iter().zip(&inputs).zip(&got) {
            let want: Vec<f64> = x
                .iter()
                .map(|&v| {
                    let i = v as i128;
                    match op {
                        UnaryOp::Neg => wrap(-i, dtype),
                        UnaryOp::Abs => wrap(i.abs(), dtype),
                        UnaryOp::Sign => i.signum() as f64,
                        UnaryOp::Not => wrap(!i, dtype),
                        _ => (i.rem_euclid(1i128 << bits) as u128).count_ones() as f64,
                    }
                })
                .collect();
            assert_close(&format!("{}<{dtype}>", op.name()), g, &want, (0.0, 0.0));
        }
    }
}

fn run_binary(ops: &[BinaryOp], xs: &[Vec<f64>], ys: &[Vec<f64>], dtype: DType) -> Vec<Vec<f64>> {
    let ops2 = ops.to_vec();
    let f = jit(move |(xs, ys): (Vec<Tensor>, Vec<Tensor>)| {
        xs.iter()
            .zip(&ys)
            .zip(&ops2)
            .map(|((x, y), &op)| prim::Binary(op).apply(x, y))
            .collect::<Vec<Tensor>>()
    });
    let a: Vec<_> = xs.iter().map(|v| array(v, &[v.len()], dtype)).collect();
    let b: Vec<_> = ys.iter().map(|v| array(v, &[v.len()], dtype)).collect();
    f.call(&(a, b)).unwrap().iter().map(read).collect()
}

#[test]
fn float_binary_ops_match_f64() {
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Atan2,
    ];
    let mut r = rng(3);
    for dtype in FLOATS {
        let xs: Vec<Vec<f64>> = ops
            .iter()
            .map(|&op| {
                quantize(
                    &uniform(&mut r, N, if op == BinaryOp::Pow { 0.1 } else { -4.0 }, 4.0),
                    dtype,
                )
            })
            .collect();
        let ys: Vec<Vec<f64>> = ops
            .iter()
            .map(|&op| {
                let v = uniform(&mut r, N, if op == BinaryOp::Pow { -2.0 } else { 0.5 }, 3.0);
                let v = if op == BinaryOp::Pow {
                    v
                } else {
                    v.iter()
                        .enumerate()
                        .map(|(i, x)| if i % 2 == 0 { *x } else { -x })
                        .collect()
                };
                quantize(&v, dtype)
            })
            .collect();
        let got = run_binary(&ops, &xs, &ys, dtype);
        for (k, op) in ops.iter().enumerate() {
            let want: Vec<f64> = xs[k]
                .iter()
                .zip(&ys[k])
                .map(|(&x, &y)| match op {
                    BinaryOp::Add => x + y,
                    BinaryOp::Sub => x - y,
                    BinaryOp::Mul => x * y,
                    BinaryOp::Div => x / y,
                    BinaryOp::Rem => x % y,
                    BinaryOp::Pow => x.powf(y),
                    BinaryOp::Max => x.max(y),
                    BinaryOp::Min => x.min(y),
                    _ => x.atan2(y),
                })
                .collect();
            // Rem's result is exact, but near a multiple of y a one-ulp input difference
            // flips it by |y|; compare it in f64 and f32 only.
            if *op == BinaryOp::Rem && matches!(dtype, DType::BF16 | DType::F16) {
                continue;
            }
            assert_close(
                &format!("{}<{dtype}>", op.name()),
                &got[k],
                &quantize(&want, dtype),
                tol(dtype),
            );
        }
    }
}

#[test]
fn integer_binary_ops_are_exact() {
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
        BinaryOp::ShiftLeft,
        BinaryOp::ShiftRightLogical,
        BinaryOp::ShiftRightArithmetic,
    ];
    let mut r = rng(4);
    for dtype in INTS {
        let bits = (dtype.size_in_bytes() * 8) as i64;
        let (lo, hi) = int_range(dtype);
        let shift = |op: BinaryOp| {
            matches!(
                op,
                BinaryOp::ShiftLeft | BinaryOp::ShiftRightLogical | BinaryOp::ShiftRightArithmetic
            )
        };
        let xs: Vec<Vec<f64>> = ops.iter().map(|_| ints(&mut r, N, lo, hi)).collect();
        let ys: Vec<Vec<f64>> = ops
            .iter()
            .map(|&op| {
                if shift(op) {
                    ints(&mut r, N, 0, bits + 2)
                } else {
                    ints(&mut r, N, lo, hi)
                        .into_iter()
                        .map(|v| if v == 0.0 { 1.0 } else { v })
                        .collect()
                }
            })
            .collect();
        let got = run_binary(&ops, &xs, &ys, dtype);
        let ubits = |v: i128| v.rem_euclid(1i128 << bits);
        for (k, op) in ops.iter().enumerate() {
            let want: Vec<f64> = xs[k]
                .iter()
                .zip(&ys[k])
                .map(|(&x, &y)| {
                    let (x, y) = (x as i128, y as i128);
                    match op {
                        BinaryOp::Add => wrap(x + y, dtype),
                        BinaryOp::Sub => wrap(x - y, dtype),
                        BinaryOp::Mul => wrap(x.wrapping_mul(y), dtype),
                        BinaryOp::Div => wrap(x / y, dtype),
                        BinaryOp::Rem => wrap(x % y, dtype),
                        BinaryOp::Max => x.max(y) as f64,
                        BinaryOp::Min => x.min(y) as f64,
                        BinaryOp::And => wrap(x & y, dtype),
                        BinaryOp::Or => wrap(x | y, dtype),
                        BinaryOp::Xor => wrap(x ^ y, dtype),
                        BinaryOp::ShiftLeft if y >= bits as i128 => 0.0,
                        BinaryOp::ShiftLeft => wrap(ubits(x) << y, dtype),
                        BinaryOp::ShiftRightLogical if y >= bits as i128 => 0.0,
                        BinaryOp::ShiftRightLogical => wrap(ubits(x) >> y, dtype),
                        // Arithmetic shifts replicate the top bit, also of unsigned types.
                        _ => {
                            let signed = if ubits(x) >= 1i128 << (bits - 1) {
                                ubits(x) - (1i128 << bits)
                            } else {
                                ubits(x)
                            };
                            wrap(signed >> y.min(bits as i128 - 1), dtype)
                        }
                    }
                })
                .collect();
            assert_close(
                &format!("{}<{dtype}>", op.name()),
                &got[k],
                &want,
                (0.0, 0.0),
            );
        }
    }
}

#[test]
fn compare_select_clamp() {
    let dirs = [
        CompareDir::Eq,
        CompareDir::Ne,
        CompareDir::Lt,
        CompareDir::Le,
        CompareDir::Gt,
        CompareDir::Ge,
    ];
    let mut r = rng(5);
    for dtype in [DType::F32, DType::I32, DType::U32, DType::Bool, DType::BF16] {
        let (lo, hi) = if dtype == DType::Bool {
            (0, 2)
        } else if dtype.is_unsigned_int() {
            (0, 5)
        } else {
            (-3, 3)
        };
        let mut x = ints(&mut r, N, lo, hi);
        let y = ints(&mut r, N, lo, hi);
        if dtype == DType::F32 {
            x[0] = f64::NAN;
        }
        let f = jit(move |(x, y, lo, hi): (Tensor, Tensor, Tensor, Tensor)| {
            let mut outs: Vec<Tensor> = dirs.iter().map(|&d| prim::compare(&x, &y, d)).collect();
            let p = prim::compare(&x, &y, CompareDir::Lt);
            outs.push(prim::select(&p, &x, &y));
            if x.dtype() != DType::Bool {
                outs.push(prim::clamp(&lo, &x, &hi));
            }
            outs
        });
        let (lo_v, hi_v) = (if dtype.is_unsigned_int() { 1.0 } else { -1.0 }, 2.0);
        let args = (
            array(&x, &[N], dtype),
            array(&y, &[N], dtype),
            array(&[lo_v], &[], dtype),
            array(&[hi_v], &[], dtype),
        );
        let got: Vec<Vec<f64>> = f.call(&args).unwrap().iter().map(read).collect();
        for (k, d) in dirs.iter().enumerate() {
            let want: Vec<f64> = x
                .iter()
                .zip(&y)
                .map(|(&a, &b)| {
                    (match d {
                        CompareDir::Eq => a == b,
                        CompareDir::Ne => a != b,
                        CompareDir::Lt => a < b,
                        CompareDir::Le => a <= b,
                        CompareDir::Gt => a > b,
                        CompareDir::Ge => a >= b,
                    }) as u8 as f64
                })
                .collect();
            assert_close(
                &format!("compare {d:?}<{dtype}>"),
                &got[k],
                &want,
                (0.0, 0.0),
            );
        }
        let sel: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| if a < b { a } else { b })
            .collect();
        assert_close(&format!("select<{dtype}>"), &got[6], &sel, (0.0, 0.0));
        if dtype != DType::Bool {
            // XLA's CPU clamp maps NaN to the lower bound (the spec's max/min would keep
            // NaN), so the NaN element is left out.
            let cl: Vec<f64> = x.iter().map(|&a| a.max(lo_v).min(hi_v)).collect();
            let skip = usize::from(dtype == DType::F32);
            assert_close(
                &format!("clamp<{dtype}>"),
                &got[7][skip..],
                &cl[skip..],
                (0.0, 0.0),
            );
        }
    }
}

#[test]
fn convert_and_bitcast() {
    let x = vec![1.5, -2.7, 0.0, 3.99, -0.4, 100.25, 65504.0, -128.5];
    let f = jit(|x: Tensor| {
        vec![
            prim::convert(&x, DType::I32),
            prim::convert(&x, DType::BF16),
            prim::convert(&x, DType::Bool),
            prim::convert(&prim::convert(&x, DType::I32), DType::F64),
            prim::bitcast_convert(&x, DType::I32),
            prim::convert(&prim::convert(&x, DType::I32), DType::U8),
        ]
    });
    let got: Vec<Vec<f64>> = f
        .call(&array(&x, &[8], DType::F32))
        .unwrap()
        .iter()
        .map(read)
        .collect();
    assert_eq!(
        got[0],
        vec![1.0, -2.0, 0.0, 3.0, 0.0, 100.0, 65504.0, -128.0]
    );
    assert_eq!(got[1], quantize(&x, DType::BF16));
    assert_eq!(got[2], vec![1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    assert_eq!(got[3], got[0]);
    let bits: Vec<f64> = x
        .iter()
        .map(|&v| (v as f32).to_bits() as i32 as f64)
        .collect();
    assert_eq!(got[4], bits);
    assert_eq!(
        got[5],
        got[0]
            .iter()
            .map(|&v| wrap(v as i128, DType::U8))
            .collect::<Vec<_>>()
    );
}
