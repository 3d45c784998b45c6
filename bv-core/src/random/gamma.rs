//! `loggamma` and `beta` (big_vision's mixup) as JAX computes them: element `i` of a
//! sample of `N` elements uses key `split(key, N)[i]` and Marsaglia–Tsang rejection in log
//! space (`jax.random._gamma_one` with `log_space=True`).
//!
//! JAX runs the two rejection loops as `while_loop`s. Their key chains do not depend on
//! the values drawn, so here every element draws [`OUTER_TRIES`] proposals of
//! [`INNER_TRIES`] normals each at once and takes the first accepted proposal: the same
//! draws and the same result as JAX's loops whenever they end within those bounds. An
//! element that would need more (probability below 1e-15) is NaN rather than a different
//! value.

use crate::dtype::DType;
use crate::prim::{self, CompareDir, ReduceKind};
use crate::random::erf_inv::erf_inv;
use crate::random::sample::{bits_to_uniform, next_after};
use crate::random::threefry::{key_words, split, threefry2x32_traced};
use crate::trace::{fail, Aval, Tensor};

/// Proposals per element (each is accepted with probability above 0.95).
pub const OUTER_TRIES: usize = 12;
/// Normal draws per proposal (each is redrawn with probability below 0.01).
pub const INNER_TRIES: usize = 8;

/// Keys of any shape: the two key words, each of that shape.
#[derive(Clone)]
struct Keys(Tensor, Tensor);

impl Keys {
    fn shape(&self) -> Vec<usize> {
        self.0.shape().to_vec()
    }

    /// `fold_in(key, d)` of every key.
    fn fold_in(&self, d: u32) -> Keys {
        let shape = self.shape();
        let [y0, y1] = threefry2x32_traced(
            &self.0,
            &self.1,
            &prim::full(&shape, 0u32, DType::U32),
            &prim::full(&shape, d, DType::U32),
        );
        Keys(y0, y1)
    }

    /// One `u32` of `random_bits(key, 32, ())` per key.
    fn scalar_bits(&self) -> Tensor {
        let zeros = prim::full(&self.shape(), 0u32, DType::U32);
        let [y0, y1] = threefry2x32_traced(&self.0, &self.1, &zeros, &zeros);
        prim::xor(&y0, &y1)
    }

    /// Stacks keys of equal shape along a new leading dimension.
    fn stack(keys: &[Keys]) -> Keys {
        let stack = |w: Vec<&Tensor>| {
            let mut shape = w[0].shape().to_vec();
            shape.insert(0, 1);
            let parts: Vec<Tensor> = w.iter().map(|t| prim::reshape(t, &shape)).collect();
            prim::concatenate(&parts.iter().collect::<Vec<_>>(), 0)
        };
        Keys(
            stack(keys.iter().map(|k| &k.0).collect()),
            stack(keys.iter().map(|k| &k.1).collect()),
        )
    }
}

fn uniform_scalars(keys: &Keys) -> Tensor {
    let lo = prim::full(&[], 0.0, DType::F32);
    let hi = prim::full(&[], 1.0, DType::F32);
    bits_to_uniform(&keys.scalar_bits(), DType::F32, &lo, &hi)
}

fn normal_scalars(keys: &Keys) -> Tensor {
    let lo = prim::full(&[], next_after(-1.0, 0.0, DType::F32), DType::F32);
    let hi = prim::full(&[], 1.0, DType::F32);
    let u = bits_to_uniform(&keys.scalar_bits(), DType::F32, &lo, &hi);
    prim::mul(
        &prim::full(&keys.shape(), std::f64::consts::SQRT_2, DType::F32),
        &erf_inv(&u),
    )
}

/// Along dimension 0: true at the first index where `pred` holds, and whether any does.
fn first_true(pred: &Tensor) -> (Tensor, Tensor) {
    let count = prim::cumsum(&prim::convert(pred, DType::I32), 0, false);
    let one = prim::full(pred.shape(), 1, DType::I32);
    let first = prim::and(pred, &prim::compare(&count, &one, CompareDir::Eq));
    let any = prim::reduce(pred, ReduceKind::Or, &[0]);
    (first, any)
}

/// The value of `x` where `mask` (true once along dimension 0) holds.
fn pick(mask: &Tensor, x: &Tensor) -> Tensor {
    let zeros = prim::full(x.shape(), 0.0, x.dtype());
    prim::reduce(&prim::select(mask, x, &zeros), ReduceKind::Sum, &[0])
}

/// `loggamma(key, alpha, shape)` (float32): the log of Gamma(alpha) samples.
#[track_caller]
pub fn loggamma(key: &Tensor, alpha: f64, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    if alpha.is_nan() || alpha <= 0.0 {
        let reason = format!("alpha must be positive, got {alpha}");
        return fail(
            "loggamma",
            reason,
            &[key.aval()],
            Some(key),
            Aval::new(shape, DType::F32),
        );
    }
    key_words("loggamma", key);
    if n == 0 {
        return prim::full(shape, 0.0, DType::F32);
    }
    let keys = split(key, n);
    let word = |j: usize| prim::reshape(&prim::slice(&keys, &[0, j], &[n, j + 1]), &[n]);
    let keys = Keys(word(0), word(1));
    prim::reshape(&gamma_one(&keys, alpha), shape)
}

/// Marsaglia–Tsang in log space for every key at once (`_gamma_one`, `log_space=True`).
fn gamma_one(keys: &Keys, alpha: f64) -> Tensor {
    let n = keys.shape()[0];
    let (t, j) = (OUTER_TRIES, INNER_TRIES);
    let full = |shape: &[usize], v: f64| prim::full(shape, v, DType::F32);
    let c1 = |v: f64| full(&[n], v);
    let alpha_orig = c1(alpha);
    let boost = alpha < 1.0;
    let alpha_b = if boost {
        prim::add(&alpha_orig, &c1(1.0))
    } else {
        alpha_orig.clone()
    };
    let d = prim::sub(&alpha_b, &c1(1.0 / 3.0));
    let c = prim::div(&c1(1.0 / 3.0), &prim::sqrt(&d));

    // Proposal keys: key_0 from the first split, key_{i+1} = fold_in(key_i, 0).
    let (mut key, subkey) = (keys.fold_in(0), keys.fold_in(1));
    let mut chain = Vec::with_capacity(t);
    for _ in 0..t {
        chain.push(key.clone());
        key = key.fold_in(0);
    }
    let proposals = Keys::stack(&chain);
    let (x_keys, u_keys) = (proposals.fold_in(1), proposals.fold_in(2));

    // Normal draws of each proposal: s_k = fold_in(xk_k, 1), xk_{k+1} = fold_in(xk_k, 0).
    let mut xk = x_keys;
    let mut draws = Vec::with_capacity(j);
    for _ in 0..j {
        draws.push(xk.fold_in(1));
        xk = xk.fold_in(0);
    }
    let x = normal_scalars(&Keys::stack(&draws));
    let bc = |v: &Tensor, shape: &[usize]| prim::broadcast_in_dim(v, shape, &[shape.len() - 1]);
    let v = prim::add(&full(&[j, t, n], 1.0), &prim::mul(&x, &bc(&c, &[j, t, n])));
    let (first_v, found) = first_true(&prim::compare(&v, &full(&[j, t, n], 0.0), CompareDir::Gt));
    let (x, v) = (pick(&first_v, &x), pick(&first_v, &v));

    let x2 = prim::mul(&x, &x);
    let v3 = prim::mul(&prim::mul(&v, &v), &v);
    let u = uniform_scalars(&u_keys);
    let one = full(&[t, n], 1.0);
    let squeeze = prim::sub(
        &one,
        &prim::mul(&full(&[t, n], 0.0331), &prim::mul(&x2, &x2)),
    );
    let log_bound = prim::add(
        &prim::mul(&x2, &full(&[t, n], 0.5)),
        &prim::mul(
            &bc(&d, &[t, n]),
            &prim::add(&prim::sub(&one, &v3), &prim::log(&v3)),
        ),
    );
    let reject = prim::and(
        &prim::compare(&u, &squeeze, CompareDir::Ge),
        &prim::compare(&prim::log(&u), &log_bound, CompareDir::Ge),
    );
    // The loop stops at the first accepted proposal, or gives up at one whose normal
    // draws ran out.
    let stop = prim::or(&prim::not(&found), &prim::not(&reject));
    let (first_stop, stopped) = first_true(&stop);
    let v3 = pick(&first_stop, &v3);
    let ok = prim::and(
        &stopped,
        &prim::reduce(&prim::and(&first_stop, &found), ReduceKind::Or, &[0]),
    );

    let mut out = prim::add(&prim::log(&d), &prim::log(&v3));
    if boost {
        let log_samples = prim::neg(&prim::neg(&prim::log1p(&prim::neg(&uniform_scalars(
            &subkey,
        )))));
        let zero = prim::compare(&log_samples, &c1(0.0), CompareDir::Eq);
        let scaled = prim::mul(&log_samples, &prim::div(&c1(1.0), &alpha_orig));
        out = prim::add(&out, &prim::select(&zero, &c1(0.0), &scaled));
    }
    prim::select(&ok, &out, &c1(f64::NAN))
}

/// `beta(key, a, b, shape)` (float32): Beta(a, b) samples as
/// `Ga / (Ga + Gb)` computed from `loggamma` draws on `split(key)`, without overflow.
#[track_caller]
pub fn beta(key: &Tensor, a: f64, b: f64, shape: &[usize]) -> Tensor {
    let keys = split(key, 2);
    let row = |i: usize| prim::reshape(&prim::slice(&keys, &[i, 0], &[i + 1, 2]), &[2]);
    let la = loggamma(&row(0), a, shape);
    let lb = loggamma(&row(1), b, shape);
    let m = prim::max(&la, &lb);
    let ea = prim::exp(&prim::sub(&la, &m));
    let eb = prim::exp(&prim::sub(&lb, &m));
    prim::div(&ea, &prim::add(&ea, &eb))
}
