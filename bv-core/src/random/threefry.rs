//! Threefry-2x32 (20 rounds) on the host and as traced `u32` ops, and the key operations
//! built on it with JAX's partitionable scheme: `fold_in(k, d) = threefry(k; 0, d)`,
//! `split(k, n)[i] = threefry(k; 0, i)`, `bits(k, shape)[i] = y0 ^ y1` of `threefry(k; 0, i)`.

use crate::dtype::DType;
use crate::numpy::Operand;
use crate::prim;
use crate::trace::{fail, Aval, Tensor};

const ROTATIONS: [[u32; 4]; 2] = [[13, 15, 26, 6], [17, 29, 16, 24]];
const PARITY: u32 = 0x1BD1_1BDA;

/// Threefry-2x32 of the counter pair `x` under key `k`, on the host.
pub fn threefry2x32(k: [u32; 2], x: [u32; 2]) -> [u32; 2] {
    let ks = [k[0], k[1], k[0] ^ k[1] ^ PARITY];
    let (mut x0, mut x1) = (x[0].wrapping_add(ks[0]), x[1].wrapping_add(ks[1]));
    for i in 0..5 {
        for &r in &ROTATIONS[i % 2] {
            x0 = x0.wrapping_add(x1);
            x1 = x1.rotate_left(r) ^ x0;
        }
        x0 = x0.wrapping_add(ks[(i + 1) % 3]);
        x1 = x1.wrapping_add(ks[(i + 2) % 3]).wrapping_add(i as u32 + 1);
    }
    [x0, x1]
}

fn u32s(shape: &[usize], v: u32) -> Tensor {
    prim::full(shape, v, DType::U32)
}

/// Threefry-2x32 applied elementwise to counters `x0`, `x1` (equal-shaped `u32` tensors)
/// under the key words `k0`, `k1` (`u32`, rank 0 or the counters' shape), as traced ops.
pub fn threefry2x32_traced(k0: &Tensor, k1: &Tensor, x0: &Tensor, x1: &Tensor) -> [Tensor; 2] {
    let shape = x0.shape().to_vec();
    let k2 = prim::xor(&prim::xor(k0, k1), &u32s(k0.shape(), PARITY));
    let ks: Vec<Tensor> = [k0, k1, &k2]
        .iter()
        .map(|k| {
            if k.rank() == 0 {
                prim::broadcast_in_dim(k, &shape, &[])
            } else {
                (*k).clone()
            }
        })
        .collect();
    let mut x0 = prim::add(x0, &ks[0]);
    let mut x1 = prim::add(x1, &ks[1]);
    for i in 0..5 {
        for &r in &ROTATIONS[i % 2] {
            x0 = prim::add(&x0, &x1);
            let rotated = prim::or(
                &prim::shift_left(&x1, &u32s(&shape, r)),
                &prim::shift_right_logical(&x1, &u32s(&shape, 32 - r)),
            );
            x1 = prim::xor(&rotated, &x0);
        }
        x0 = prim::add(&x0, &ks[(i + 1) % 3]);
        x1 = prim::add(
            &prim::add(&x1, &ks[(i + 2) % 3]),
            &u32s(&shape, i as u32 + 1),
        );
    }
    [x0, x1]
}

/// The two words of a traced key (`u32[2]`) as rank-0 tensors; records an error for any
/// other shape or type.
#[track_caller]
pub(crate) fn key_words(op: &'static str, key: &Tensor) -> (Tensor, Tensor) {
    if key.shape() != [2] || key.dtype() != DType::U32 {
        let reason = "a PRNG key is a uint32[2] tensor (see random::Key)".to_string();
        let bad = fail(
            op,
            reason,
            &[key.aval()],
            Some(key),
            Aval::new([], DType::U32),
        );
        return (bad.clone(), bad);
    }
    let word = |i: usize| prim::reshape(&prim::slice(key, &[i], &[i + 1]), &[]);
    (word(0), word(1))
}

fn pair(y0: &Tensor, y1: &Tensor) -> Tensor {
    let r = |t: &Tensor| prim::reshape(t, &[1]);
    prim::concatenate(&[&r(y0), &r(y1)], 0)
}

/// `PRNGKey(seed)` from a traced integer seed: `[seed >> 32, seed & 0xFFFFFFFF]`, so a
/// 32-bit seed gives `[0, seed mod 2^32]` as JAX with x64 disabled.
#[track_caller]
pub fn key_from_seed(seed: &Tensor) -> Tensor {
    let d = seed.dtype();
    if seed.rank() != 0 || !(d.is_signed_int() || d.is_unsigned_int()) {
        let reason = "the seed must be a rank-0 integer".to_string();
        return fail(
            "key_from_seed",
            reason,
            &[seed.aval()],
            Some(seed),
            Aval::new([2], DType::U32),
        );
    }
    if d.size_in_bytes() == 8 {
        let u = prim::bitcast_convert(seed, DType::U64);
        let hi = prim::shift_right_logical(&u, &prim::scalar(32u64));
        let lo = prim::and(&u, &prim::scalar(0xFFFF_FFFFu64));
        return pair(
            &prim::convert(&hi, DType::U32),
            &prim::convert(&lo, DType::U32),
        );
    }
    pair(&prim::scalar(0u32), &prim::convert(seed, DType::U32))
}

/// `fold_in(key, data)`: a new key from `key` and an integer (a Rust integer or a traced
/// rank-0 integer, taken modulo 2^32).
#[track_caller]
pub fn fold_in(key: &Tensor, data: impl Into<Operand>) -> Tensor {
    let (k0, k1) = key_words("fold_in", key);
    let d = match data.into() {
        Operand::Scalar(s) => prim::full(&[], s, DType::U32),
        Operand::Tensor(t) if t.dtype() == DType::U32 => t,
        Operand::Tensor(t) => prim::convert(&t, DType::U32),
    };
    let [y0, y1] = threefry2x32_traced(&k0, &k1, &prim::scalar(0u32), &d);
    pair(&y0, &y1)
}

/// `split(key, n)`: `n` new keys as a `u32[n, 2]` tensor; row `i` is `fold_in(key, i)`.
#[track_caller]
pub fn split(key: &Tensor, n: usize) -> Tensor {
    let (k0, k1) = key_words("split", key);
    let [y0, y1] = threefry2x32_traced(&k0, &k1, &u32s(&[n], 0), &prim::iota(DType::U32, &[n], 0));
    let col = |t: &Tensor| prim::reshape(t, &[n, 1]);
    prim::concatenate(&[&col(&y0), &col(&y1)], 1)
}

/// Row `i` of a `u32[n, 2]` key array as a `u32[2]` key.
#[track_caller]
pub fn key_at(keys: &Tensor, i: usize) -> Tensor {
    prim::reshape(&prim::slice(keys, &[i, 0], &[i + 1, 2]), &[2])
}

/// `split(key, 2)` as two keys (`a, b = jax.random.split(key)`).
#[track_caller]
pub fn split2(key: &Tensor) -> (Tensor, Tensor) {
    let keys = split(key, 2);
    (key_at(&keys, 0), key_at(&keys, 1))
}

/// `split(key, n)` as a list of `u32[2]` keys.
#[track_caller]
pub fn split_list(key: &Tensor, n: usize) -> Vec<Tensor> {
    let keys = split(key, n);
    (0..n).map(|i| key_at(&keys, i)).collect()
}

/// `random_bits(key, 32, shape)`: uniformly random `u32`s; the element at row-major flat
/// index `i` is `y0 ^ y1` of `threefry(key; 0, i)`.
#[track_caller]
pub fn bits(key: &Tensor, shape: &[usize]) -> Tensor {
    let (k0, k1) = key_words("bits", key);
    let n: usize = shape.iter().product();
    if n > u32::MAX as usize {
        let reason = format!("{n} elements exceed the 2^32 counters of one key; split the key");
        return fail(
            "bits",
            reason,
            &[key.aval()],
            Some(key),
            Aval::new(shape, DType::U32),
        );
    }
    let counters = prim::reshape(&prim::iota(DType::U32, &[n], 0), shape);
    let [y0, y1] = threefry2x32_traced(&k0, &k1, &u32s(shape, 0), &counters);
    prim::xor(&y0, &y1)
}

#[cfg(test)]
mod tests {
    use super::threefry2x32;

    /// Known-answer vectors of the Threefry-2x32 (20 rounds) specification, which JAX's
    /// own tests use as well.
    #[test]
    fn threefry_known_answers() {
        assert_eq!(threefry2x32([0, 0], [0, 0]), [0x6b20_0159, 0x99ba_4efe]);
        assert_eq!(
            threefry2x32([u32::MAX, u32::MAX], [u32::MAX, u32::MAX]),
            [0x1cb9_96fc, 0xbb00_2be7]
        );
        assert_eq!(
            threefry2x32([0x1319_8a2e, 0x0370_7344], [0x243f_6a88, 0x85a3_08d3]),
            [0xc492_3a9c, 0x483d_f7a0]
        );
    }
}
