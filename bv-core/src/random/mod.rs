//! JAX's PRNG, bit for bit: threefry2x32 keys with the partitionable `split`, `fold_in` and
//! `random_bits` (`jax_threefry_partitionable = True`), and the samplers computed as JAX
//! computes them, so a seed means the same thing as in big_vision.
//!
//! Keys are `u32[2]` tensors inside traced functions; [`Key`] is the same key on the host,
//! for the key chain a trainer keeps between steps. Floats use the same StableHLO ops as
//! JAX emits, so XLA rounds them the same way.
//!
//! ```
//! use bv_core::random::{self, Key};
//! use bv_core::{jit, DType, Tensor};
//! let (rng, rng_init) = Key::from_seed(0).split2();
//! assert_eq!(rng_init, Key::from_seed(0).fold_in(1));
//! let f = jit(|key: Tensor| random::normal(&key, &[4, 3], DType::F32));
//! let text = f.lower(&Key::spec())?.text;
//! assert!(text.contains("stablehlo.log_plus_one"));
//! # let _ = rng;
//! # Ok::<(), bv_core::JitError>(())
//! ```

mod erf_inv;
mod gamma;
mod sample;
mod threefry;

pub use erf_inv::erf_inv;
pub use gamma::{beta, loggamma};
pub use sample::{
    bernoulli, categorical, exponential, gumbel, normal, permutation, permute, randint,
    truncated_normal, uniform,
};
pub use threefry::{
    bits, fold_in, key_at, key_from_seed, split, split2, split_list, threefry2x32,
    threefry2x32_traced,
};

use crate::array::{Array, ArrayError};
use crate::dtype::DType;
use crate::prim;
use crate::trace::{Spec, Tensor};

/// A PRNG key on the host: the raw key data `[k0, k1]` of `jax.random.PRNGKey`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key(pub [u32; 2]);

impl Key {
    /// `PRNGKey(seed)` as JAX computes it with x64 disabled (big_vision's setting): the seed
    /// is reduced to 32 bits, giving `[0, seed mod 2^32]` (`-1` gives `[0, 4294967295]`).
    pub fn from_seed(seed: i64) -> Key {
        Key([0, seed as u32])
    }

    /// `PRNGKey(seed)` with `jax_enable_x64`: `[seed >> 32, seed & 0xFFFFFFFF]` of the seed
    /// as a 64-bit integer.
    pub fn from_seed_x64(seed: i64) -> Key {
        let u = seed as u64;
        Key([(u >> 32) as u32, u as u32])
    }

    /// `fold_in(key, data)`.
    pub fn fold_in(self, data: u32) -> Key {
        Key(threefry2x32(self.0, [0, data]))
    }

    /// `split(key, n)`: key `i` is `fold_in(key, i)`.
    pub fn split(self, n: usize) -> Vec<Key> {
        (0..n).map(|i| self.fold_in(i as u32)).collect()
    }

    /// `a, b = split(key)`.
    pub fn split2(self) -> (Key, Key) {
        (self.fold_in(0), self.fold_in(1))
    }

    /// The key as a constant `u32[2]` tensor in the function being traced.
    #[track_caller]
    pub fn tensor(self) -> Tensor {
        prim::constant(&self.0, &[2])
    }

    /// The key as a `u32[2]` array on the default device, to pass into a jitted function.
    pub fn to_array(self) -> Result<Array, ArrayError> {
        Array::from_slice(&self.0, &[2])
    }

    /// The shape and type of a key (`u32[2]`), for lowering without data.
    pub fn spec() -> Spec {
        Spec::new([2], DType::U32)
    }
}

impl From<[u32; 2]> for Key {
    fn from(k: [u32; 2]) -> Key {
        Key(k)
    }
}
