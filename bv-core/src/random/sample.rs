//! Samplers, each computed with the ops JAX emits (`jax/_src/random.py`), so XLA produces
//! the same bits: `uniform`, `normal`, `truncated_normal`, `bernoulli`, `randint`,
//! `gumbel`, `categorical`, `exponential`, `permutation`.

use half::{bf16, f16};

use crate::dtype::DType;
use crate::numpy::{self as np, bad_axis, norm_axis};
use crate::prim::{self, CompareDir};
use crate::random::erf_inv::erf_inv;
use crate::random::threefry::{bits, key_words, split2};
use crate::trace::{fail, Aval, Tensor};

/// `(bit width, mantissa bits, unsigned type of that width)` of a float type JAX samples.
fn float_layout(dtype: DType) -> Option<(u32, u32, DType)> {
    match dtype {
        DType::F32 => Some((32, 23, DType::U32)),
        DType::F16 => Some((16, 10, DType::U16)),
        DType::BF16 => Some((16, 7, DType::U16)),
        _ => None,
    }
}

#[track_caller]
fn unsupported(op: &'static str, key: &Tensor, shape: &[usize], dtype: DType) -> Tensor {
    let reason =
        format!("{op} samples float32, float16 or bfloat16 (JAX with x64 disabled), got {dtype}");
    fail(
        op,
        reason,
        &[key.aval()],
        Some(key),
        Aval::new(shape, dtype),
    )
}

/// `x` (rank 0) broadcast to `shape`.
fn bcast(x: &Tensor, shape: &[usize]) -> Tensor {
    prim::broadcast_in_dim(x, shape, &[])
}

/// Uniform floats in `[lo, hi)` with rank-0 bounds of type `dtype` (JAX's `uniform` body).
#[track_caller]
fn uniform_between(
    key: &Tensor,
    shape: &[usize],
    dtype: DType,
    lo: &Tensor,
    hi: &Tensor,
) -> Tensor {
    if float_layout(dtype).is_none() {
        return unsupported("uniform", key, shape, dtype);
    }
    bits_to_uniform(&bits(key, shape), dtype, lo, hi)
}

/// Maps random `u32` bits to uniform floats of `dtype` (float32, float16 or bfloat16) in
/// `[lo, hi)` with rank-0 bounds, as JAX's `uniform` does.
pub(crate) fn bits_to_uniform(b: &Tensor, dtype: DType, lo: &Tensor, hi: &Tensor) -> Tensor {
    let shape = b.shape().to_vec();
    let shape = &shape[..];
    let (nbits, nmant, udtype) = float_layout(dtype).unwrap_or((32, 23, DType::U32));
    let mut b = b.clone();
    if nbits == 16 {
        b = prim::convert(&b, DType::U16);
    }
    let one_bits: u64 = match dtype {
        DType::F32 => 1f32.to_bits() as u64,
        DType::F16 => f16::ONE.to_bits() as u64,
        _ => bf16::ONE.to_bits() as u64,
    };
    let float_bits = prim::or(
        &prim::shift_right_logical(&b, &prim::full(shape, nbits - nmant, udtype)),
        &prim::full(shape, one_bits, udtype),
    );
    let floats = prim::sub(
        &prim::bitcast_convert(&float_bits, dtype),
        &prim::full(shape, 1.0, dtype),
    );
    let span = prim::sub(hi, lo);
    let scaled = prim::add(&prim::mul(&floats, &bcast(&span, shape)), &bcast(lo, shape));
    prim::max(&bcast(lo, shape), &scaled)
}

/// `uniform(key, shape, dtype, minval, maxval)`: floats in `[minval, maxval)`.
#[track_caller]
pub fn uniform(key: &Tensor, shape: &[usize], dtype: DType, minval: f64, maxval: f64) -> Tensor {
    let lo = prim::full(&[], minval, dtype);
    let hi = prim::full(&[], maxval, dtype);
    uniform_between(key, shape, dtype, &lo, &hi)
}

/// The neighbour of `x` in `dtype` in the direction of `toward` (`np.nextafter`), for
/// finite `x` or infinite `x` moving inward.
pub(crate) fn next_after(x: f64, toward: f64, dtype: DType) -> f64 {
    if x == toward || x.is_nan() || toward.is_nan() {
        return x;
    }
    let up = (toward > x) == (x > 0.0);
    let step = |bits: u64| if up { bits + 1 } else { bits - 1 };
    let neg = toward < x;
    match dtype {
        DType::F32 => {
            let v = x as f32;
            if v == 0.0 {
                let tiny = f32::from_bits(1);
                return if neg { -tiny } else { tiny } as f64;
            }
            f32::from_bits(step(v.to_bits() as u64) as u32) as f64
        }
        DType::F16 => {
            let v = f16::from_f64(x);
            if v.to_f64() == 0.0 {
                let tiny = f16::from_bits(1).to_f64();
                return if neg { -tiny } else { tiny };
            }
            f16::from_bits(step(v.to_bits() as u64) as u16).to_f64()
        }
        _ => {
            let v = bf16::from_f64(x);
            if v.to_f64() == 0.0 {
                let tiny = bf16::from_bits(1).to_f64();
                return if neg { -tiny } else { tiny };
            }
            bf16::from_bits(step(v.to_bits() as u64) as u16).to_f64()
        }
    }
}

/// `normal(key, shape, dtype)`: standard normal samples, `sqrt(2) * erfinv(u)` with `u`
/// uniform in `(-1, 1)`.
#[track_caller]
pub fn normal(key: &Tensor, shape: &[usize], dtype: DType) -> Tensor {
    if float_layout(dtype).is_none() {
        return unsupported("normal", key, shape, dtype);
    }
    let u = uniform(key, shape, dtype, next_after(-1.0, 0.0, dtype), 1.0);
    prim::mul(
        &prim::full(shape, std::f64::consts::SQRT_2, dtype),
        &erf_inv(&u),
    )
}

/// `truncated_normal(key, lower, upper, shape, dtype)`: standard normal samples
/// conditioned on `lower < x < upper`, by inverting the CDF between `erf(lower / sqrt 2)`
/// and `erf(upper / sqrt 2)`.
#[track_caller]
pub fn truncated_normal(
    key: &Tensor,
    lower: f64,
    upper: f64,
    shape: &[usize],
    dtype: DType,
) -> Tensor {
    if float_layout(dtype).is_none() {
        return unsupported("truncated_normal", key, shape, dtype);
    }
    let sqrt2 = prim::full(&[], std::f64::consts::SQRT_2, dtype);
    let a = prim::erf(&prim::div(&prim::full(&[], lower, dtype), &sqrt2));
    let b = prim::erf(&prim::div(&prim::full(&[], upper, dtype), &sqrt2));
    let u = uniform_between(key, shape, dtype, &a, &b);
    let out = prim::mul(&bcast(&sqrt2, shape), &erf_inv(&u));
    let lo = prim::full(shape, next_after(lower, f64::INFINITY, dtype), dtype);
    let hi = prim::full(shape, next_after(upper, f64::NEG_INFINITY, dtype), dtype);
    prim::min(&hi, &prim::max(&lo, &out))
}

/// `bernoulli(key, p, shape)`: booleans, true with probability `p` (`uniform < p`).
#[track_caller]
pub fn bernoulli(key: &Tensor, p: f64, shape: &[usize]) -> Tensor {
    let u = uniform(key, shape, DType::F32, 0.0, 1.0);
    prim::compare(&u, &prim::full(shape, p, DType::F32), CompareDir::Lt)
}

/// `randint(key, shape, minval, maxval, dtype)`: integers in `[minval, maxval)` for `int32`
/// or `uint32`, from two 32-bit draws reduced modulo the span as JAX does (`minval` is
/// returned when `maxval <= minval`; the bounds are clipped to the type's range).
#[track_caller]
pub fn randint(key: &Tensor, shape: &[usize], minval: i64, maxval: i64, dtype: DType) -> Tensor {
    let (tmin, tmax) = match dtype {
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::U32 => (0, u32::MAX as i64),
        d => {
            let reason = format!("randint supports int32 and uint32, got {d}");
            return fail(
                "randint",
                reason,
                &[key.aval()],
                Some(key),
                Aval::new(shape, d),
            );
        }
    };
    let (lo, hi) = (minval.clamp(tmin, tmax), maxval.clamp(tmin, tmax));
    let span = if hi <= lo { 1 } else { (hi - lo) as u32 };
    let (k1, k2) = split2(key);
    let (higher, lower) = (bits(&k1, shape), bits(&k2, shape));
    let span_t = prim::full(shape, span, DType::U32);
    let multiplier = prim::rem(&prim::full(shape, 1u32 << 16, DType::U32), &span_t);
    let multiplier = prim::rem(&prim::mul(&multiplier, &multiplier), &span_t);
    let offset = prim::add(
        &prim::mul(&prim::rem(&higher, &span_t), &multiplier),
        &prim::rem(&lower, &span_t),
    );
    let offset = prim::rem(&offset, &span_t);
    prim::add(
        &prim::full(shape, lo, dtype),
        &prim::convert(&offset, dtype),
    )
}

/// `gumbel(key, shape, dtype)`: standard Gumbel samples, `-log(-log(u))` with `u` uniform
/// in `[tiny, 1)`.
#[track_caller]
pub fn gumbel(key: &Tensor, shape: &[usize], dtype: DType) -> Tensor {
    let tiny = match dtype {
        DType::F16 => f16::MIN_POSITIVE.to_f64(),
        DType::BF16 => bf16::MIN_POSITIVE.to_f64(),
        _ => f32::MIN_POSITIVE as f64,
    };
    let u = uniform(key, shape, dtype, tiny, 1.0);
    prim::neg(&prim::log(&prim::neg(&prim::log(&u))))
}

/// `exponential(key, shape, dtype)`: standard exponential samples, `-log1p(-u)`.
#[track_caller]
pub fn exponential(key: &Tensor, shape: &[usize], dtype: DType) -> Tensor {
    let u = uniform(key, shape, dtype, 0.0, 1.0);
    prim::neg(&prim::log1p(&prim::neg(&u)))
}

/// `categorical(key, logits, axis, shape)`: class indices (int32) drawn with probabilities
/// `softmax(logits)` along `axis`, as `argmax(logits + gumbel)`. `shape` defaults to the
/// logits' shape without `axis`; it may add leading sample dimensions.
#[track_caller]
pub fn categorical(key: &Tensor, logits: &Tensor, axis: isize, shape: Option<&[usize]>) -> Tensor {
    let Some(a) = norm_axis(axis, logits.rank()) else {
        return bad_axis("categorical", logits, axis);
    };
    let mut batch = logits.shape().to_vec();
    let k = batch.remove(a);
    let shape = shape.map_or_else(|| batch.clone(), <[usize]>::to_vec);
    if shape.len() < batch.len() || shape[shape.len() - batch.len()..] != batch[..] {
        let reason = format!("shape {shape:?} must end with the logits' batch shape {batch:?}");
        let out = Aval::new(shape, DType::I32);
        return fail("categorical", reason, &[logits.aval()], Some(logits), out);
    }
    let prefix = shape.len() - batch.len();
    let mut noise_shape = shape.clone();
    noise_shape.insert(prefix + a, k);
    let noise = gumbel(key, &noise_shape, logits.dtype());
    let dims: Vec<usize> = (prefix..noise_shape.len()).collect();
    let logits = prim::broadcast_in_dim(logits, &noise_shape, &dims);
    np::argmax(&prim::add(&noise, &logits), (prefix + a) as isize)
}

/// JAX's number of sort rounds for shuffling `n` elements: `ceil(3 ln n / ln(2^32 - 1))`.
fn shuffle_rounds(n: usize) -> usize {
    (3.0 * (n.max(1) as f64).ln() / (u32::MAX as f64).ln()).ceil() as usize
}

/// Shuffles `x` along `axis` by sorting on random keys, once per round.
#[track_caller]
fn shuffle(key: &Tensor, x: &Tensor, axis: usize) -> Tensor {
    let mut key = key.clone();
    let mut x = x.clone();
    for _ in 0..shuffle_rounds(x.size()) {
        let (next, sub) = split2(&key);
        key = next;
        let sort_keys = bits(&sub, x.shape());
        x = prim::sort(&[&sort_keys, &x], axis, 1, false).swap_remove(1);
    }
    x
}

/// `permutation(key, n)`: a random permutation of `0..n` (int32).
#[track_caller]
pub fn permutation(key: &Tensor, n: usize) -> Tensor {
    key_words("permutation", key);
    shuffle(key, &np::arange(n, DType::I32), 0)
}

/// `permutation(key, x, axis)`: `x` with its slices along `axis` in a random order (the
/// same order for every slice, as JAX's `independent=False`).
#[track_caller]
pub fn permute(key: &Tensor, x: &Tensor, axis: isize) -> Tensor {
    let Some(a) = norm_axis(axis, x.rank()) else {
        return bad_axis("permute", x, axis);
    };
    if x.rank() == 1 {
        return shuffle(key, x, a);
    }
    let ind = shuffle(key, &np::arange(x.shape()[a], DType::I32), 0);
    np::take(x, &ind, a as isize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_after_matches_numpy() {
        assert_eq!(next_after(-1.0, 0.0, DType::F32), -0.99999994f32 as f64);
        assert_eq!(
            next_after(-2.0, f64::INFINITY, DType::F32),
            -1.9999999f32 as f64
        );
        assert_eq!(
            next_after(2.0, f64::NEG_INFINITY, DType::F32),
            1.9999999f32 as f64
        );
        assert_eq!(next_after(-1.0, 0.0, DType::BF16), -0.99609375);
        assert_eq!(next_after(0.0, 1.0, DType::F32), f32::from_bits(1) as f64);
    }

    #[test]
    fn shuffle_rounds_match_jax() {
        assert_eq!(shuffle_rounds(1), 0);
        assert_eq!(shuffle_rounds(10), 1);
        assert_eq!(shuffle_rounds(1625), 1);
        assert_eq!(shuffle_rounds(1626), 2);
    }
}
