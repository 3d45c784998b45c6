//! Optax's common optimizers as plain functions: a learning rate (a constant or a
//! [`Schedule`](super::Schedule)) and an option struct with Optax's keyword defaults. Each
//! returns the [`Chain`] Optax builds, stage for stage, so its state reads as Optax's state
//! (`adam/mu/<leaf>`, `lr/count`, ...). Weight decay is decoupled and added before the
//! learning rate, as in `optax.adamw`; `mask` picks the decayed leaves by name (all when
//! `None`).
//!
//! ```
//! use bv_core::{impl_tree, jit, Array, Tensor};
//! use bv_train::optim::{adamw, apply_updates, AdamWOptions, Optimizer, State};
//!
//! struct Linear<L> { w: L, b: L }
//! impl_tree!(Linear<L> { w, b });
//!
//! let tx = adamw(0.1, AdamWOptions { weight_decay: 0.0, ..Default::default() });
//! let step = jit(move |(p, g): (Linear<Tensor>, Linear<Tensor>)| {
//!     let s = tx.init(&p);
//!     let (u, _): (Linear<Tensor>, State) = tx.update(&g, s, &p);
//!     apply_updates(&p, &u)
//! });
//! let a = |v: f32| Array::from_slice(&[v], &[1]).unwrap();
//! let p = step.call(&(Linear { w: a(1.0), b: a(0.0) }, Linear { w: a(2.0), b: a(-3.0) })).unwrap();
//! // Adam's first step moves every leaf by lr against the sign of its gradient.
//! assert!((p.w.item::<f32>().unwrap() - 0.9).abs() < 1e-6);
//! assert!((p.b.item::<f32>().unwrap() - 0.1).abs() < 1e-6);
//! ```

use bv_core::DType;

use super::adafactor::ScaleByAdafactor;
use super::adam::ScaleByAdam;
use super::lion::ScaleByLion;
use super::momentum::MomentumHp;
pub use super::scale::LearningRate;
use super::scale::{AddDecayedWeights, Identity, ScaleByLearningRate, ScaleByTrustRatio};
use super::transform::{chain, masked, Chain, Mask, Transform};

/// `optax.adam`'s keyword arguments: those of its core, `scale_by_adam`.
pub type AdamOptions = ScaleByAdam;

/// `optax.adamw`'s keyword arguments: Adam's, the decay rate and its mask.
#[derive(Clone, Debug)]
pub struct AdamWOptions {
    pub adam: AdamOptions,
    pub weight_decay: f64,
    /// The decayed leaves (all when `None`).
    pub mask: Option<Mask>,
}

impl Default for AdamWOptions {
    fn default() -> Self {
        AdamWOptions {
            adam: AdamOptions::default(),
            weight_decay: 1e-4,
            mask: None,
        }
    }
}

/// `optax.sgd`'s keyword arguments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SgdOptions {
    /// The momentum decay (`optax.trace`); `None`: plain SGD.
    pub momentum: Option<f64>,
    pub nesterov: bool,
    /// The momentum's dtype (`None`: the parameter's).
    pub accumulator_dtype: Option<DType>,
}

/// `optax.lion`'s keyword arguments.
#[derive(Clone, Debug)]
pub struct LionOptions {
    pub b1: f64,
    pub b2: f64,
    /// The momentum's dtype (`None`: the parameter's).
    pub mu_dtype: Option<DType>,
    pub weight_decay: f64,
    /// The decayed leaves (all when `None`).
    pub mask: Option<Mask>,
}

impl Default for LionOptions {
    fn default() -> Self {
        LionOptions {
            b1: 0.9,
            b2: 0.99,
            mu_dtype: None,
            weight_decay: 1e-3,
            mask: None,
        }
    }
}

/// `optax.lamb`'s keyword arguments.
#[derive(Clone, Debug)]
pub struct LambOptions {
    pub b1: f64,
    pub b2: f64,
    pub eps: f64,
    pub eps_root: f64,
    pub weight_decay: f64,
    /// The decayed leaves (all when `None`).
    pub mask: Option<Mask>,
}

impl Default for LambOptions {
    fn default() -> Self {
        LambOptions {
            b1: 0.9,
            b2: 0.999,
            eps: 1e-6,
            eps_root: 0.0,
            weight_decay: 0.0,
            mask: None,
        }
    }
}

/// big_vision's Adafactor (`big_vision.scale_by_adafactor`, its arguments and defaults in
/// `core`), with decoupled weight decay.
#[derive(Clone, Debug)]
pub struct AdafactorOptions {
    pub core: ScaleByAdafactor,
    pub weight_decay: f64,
    /// The decayed leaves (all when `None`).
    pub mask: Option<Mask>,
}

impl Default for AdafactorOptions {
    fn default() -> Self {
        AdafactorOptions {
            core: ScaleByAdafactor::default(),
            weight_decay: 0.0,
            mask: None,
        }
    }
}

type Stage = (String, Box<dyn Transform>);

fn stage(name: &str, t: impl Transform + 'static) -> Stage {
    (name.to_string(), Box::new(t))
}

/// `add_decayed_weights(weight_decay, mask)` as a stage named `wd`.
fn decay(weight_decay: f64, mask: Option<Mask>) -> Stage {
    match mask {
        None => stage("wd", AddDecayedWeights(weight_decay)),
        Some(m) => stage("wd", masked(Box::new(AddDecayedWeights(weight_decay)), m)),
    }
}

fn lr(learning_rate: impl Into<LearningRate>) -> Stage {
    stage("lr", ScaleByLearningRate(learning_rate.into()))
}

/// `optax.adam`: stages `adam`, `lr`.
pub fn adam(learning_rate: impl Into<LearningRate>, o: AdamOptions) -> Chain {
    chain(vec![stage("adam", o), lr(learning_rate)])
}

/// `optax.adamw`: stages `adam`, `wd`, `lr`.
pub fn adamw(learning_rate: impl Into<LearningRate>, o: AdamWOptions) -> Chain {
    chain(vec![
        stage("adam", o.adam),
        decay(o.weight_decay, o.mask),
        lr(learning_rate),
    ])
}

/// `optax.sgd`: stages `momentum` (`optax.trace`; `sgd`, the identity, without momentum),
/// `lr`.
pub fn sgd(learning_rate: impl Into<LearningRate>, o: SgdOptions) -> Chain {
    let first = match o.momentum {
        Some(momentum) => stage(
            "momentum",
            MomentumHp {
                momentum,
                dtype: o.accumulator_dtype,
                nesterov: o.nesterov,
            },
        ),
        None => stage("sgd", Identity),
    };
    chain(vec![first, lr(learning_rate)])
}

/// `optax.lion`: stages `lion`, `wd`, `lr`.
pub fn lion(learning_rate: impl Into<LearningRate>, o: LionOptions) -> Chain {
    let core = ScaleByLion {
        b1: o.b1,
        b2: o.b2,
        mu_dtype: o.mu_dtype,
    };
    chain(vec![
        stage("lion", core),
        decay(o.weight_decay, o.mask),
        lr(learning_rate),
    ])
}

/// `optax.lamb`: stages `adam`, `wd`, `trust_ratio` (`scale_by_trust_ratio`), `lr`.
pub fn lamb(learning_rate: impl Into<LearningRate>, o: LambOptions) -> Chain {
    let core = ScaleByAdam {
        b1: o.b1,
        b2: o.b2,
        eps: o.eps,
        eps_root: o.eps_root,
        mu_dtype: None,
        nesterov: false,
    };
    chain(vec![
        stage("adam", core),
        decay(o.weight_decay, o.mask),
        stage("trust_ratio", ScaleByTrustRatio),
        lr(learning_rate),
    ])
}

/// big_vision's Adafactor as an optimizer: stages `adafactor`, `wd`, `lr`.
pub fn adafactor(learning_rate: impl Into<LearningRate>, o: AdafactorOptions) -> Chain {
    chain(vec![
        stage("adafactor", o.core),
        decay(o.weight_decay, o.mask),
        lr(learning_rate),
    ])
}
