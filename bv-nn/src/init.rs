//! Parameter initializers with `jax.nn.initializers` semantics, computed with the same ops
//! JAX emits so that a key gives Flax's values (see `bv_core::random`).

use bv_core::random;
use bv_core::{numpy as np, prim, DType, Tensor};

/// Which fan a variance-scaling initializer divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// Inputs (`lecun_*`, `he_*`).
    In,
    /// Outputs.
    Out,
    /// The mean of both (`xavier_*`, `glorot_*`).
    Avg,
}

/// The distribution a variance-scaling initializer samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Normal truncated to two standard deviations, rescaled to the target variance.
    TruncatedNormal,
    /// Normal.
    Normal,
    /// Uniform on a symmetric interval.
    Uniform,
}

/// An initializer: how a parameter's first value is drawn from its key.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Every element `value`.
    Constant(f64),
    /// `normal(key) * stddev`.
    Normal {
        /// Standard deviation.
        stddev: f64,
    },
    /// `uniform(key) * scale`, in `[0, scale)`.
    Uniform {
        /// Upper bound.
        scale: f64,
    },
    /// `truncated_normal(key, -2, 2) * stddev`.
    TruncatedNormal {
        /// Scale of the standard truncated normal.
        stddev: f64,
    },
    /// `jax.nn.initializers.variance_scaling`: variance `scale / fan` with fans computed
    /// from `in_axis` and `out_axis` (the other dimensions form the receptive field).
    VarianceScaling {
        /// Numerator of the variance.
        scale: f64,
        /// Which fan to divide by.
        mode: FanMode,
        /// What to sample.
        distribution: Distribution,
        /// The input dimension (negative counts from the end).
        in_axis: isize,
        /// The output dimension (negative counts from the end).
        out_axis: isize,
    },
}

impl Init {
    /// `variance_scaling(scale, mode, distribution)` with `in_axis=-2, out_axis=-1`.
    pub fn variance_scaling(scale: f64, mode: FanMode, distribution: Distribution) -> Init {
        Init::VarianceScaling {
            scale,
            mode,
            distribution,
            in_axis: -2,
            out_axis: -1,
        }
    }

    /// Flax's default Dense/Conv kernel initializer: `(1, fan_in, truncated_normal)`.
    pub fn lecun_normal() -> Init {
        Init::variance_scaling(1.0, FanMode::In, Distribution::TruncatedNormal)
    }

    /// `(1, fan_avg, uniform)` (Glorot).
    pub fn xavier_uniform() -> Init {
        Init::variance_scaling(1.0, FanMode::Avg, Distribution::Uniform)
    }

    /// `(2, fan_in, truncated_normal)`.
    pub fn he_normal() -> Init {
        Init::variance_scaling(2.0, FanMode::In, Distribution::TruncatedNormal)
    }

    /// `normal(stddev)`.
    pub fn normal(stddev: f64) -> Init {
        Init::Normal { stddev }
    }

    /// Draws a value of `shape` and `dtype` from `key`.
    #[track_caller]
    pub fn sample(&self, key: &Tensor, shape: &[usize], dtype: DType) -> Tensor {
        let times = |x: Tensor, s: Tensor| prim::mul(&x, &prim::broadcast_in_dim(&s, shape, &[]));
        let c = |v: f64| prim::full(&[], v, dtype);
        match *self {
            Init::Zeros => prim::full(shape, 0, dtype),
            Init::Ones => prim::full(shape, 1, dtype),
            Init::Constant(v) => prim::full(shape, v, dtype),
            Init::Normal { stddev } => times(random::normal(key, shape, dtype), c(stddev)),
            Init::Uniform { scale } => {
                times(random::uniform(key, shape, dtype, 0.0, 1.0), c(scale))
            }
            Init::TruncatedNormal { stddev } => times(
                random::truncated_normal(key, -2.0, 2.0, shape, dtype),
                c(stddev),
            ),
            Init::VarianceScaling {
                scale,
                mode,
                distribution,
                in_axis,
                out_axis,
            } => {
                let (fan_in, fan_out) = fans(shape, in_axis, out_axis);
                let denominator = match mode {
                    FanMode::In => fan_in,
                    FanMode::Out => fan_out,
                    FanMode::Avg => (fan_in + fan_out) / 2.0,
                };
                let variance = c(scale / denominator);
                match distribution {
                    Distribution::TruncatedNormal => {
                        let stddev = prim::div(&prim::sqrt(&variance), &c(0.879_625_661_034_239_8));
                        times(
                            random::truncated_normal(key, -2.0, 2.0, shape, dtype),
                            stddev,
                        )
                    }
                    Distribution::Normal => {
                        times(random::normal(key, shape, dtype), prim::sqrt(&variance))
                    }
                    Distribution::Uniform => times(
                        random::uniform(key, shape, dtype, -1.0, 1.0),
                        np::sqrt(&prim::mul(&c(3.0), &variance)),
                    ),
                }
            }
        }
    }
}

/// `(fan_in, fan_out)` as `jax.nn.initializers` computes them: the in/out dimensions times
/// the product of the others. JAX rejects rank < 2; here the size serves as both fans.
fn fans(shape: &[usize], in_axis: isize, out_axis: isize) -> (f64, f64) {
    let dim = |a: isize| {
        let i = if a < 0 { a + shape.len() as isize } else { a };
        usize::try_from(i)
            .ok()
            .and_then(|i| shape.get(i))
            .map_or(1.0, |&d| d as f64)
    };
    match shape.len() {
        0 => (1.0, 1.0),
        1 => (shape[0] as f64, shape[0] as f64),
        _ => {
            let total: f64 = shape.iter().map(|&d| d as f64).product();
            let receptive = total / dim(in_axis) / dim(out_axis);
            (dim(in_axis) * receptive, dim(out_axis) * receptive)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fans;

    #[test]
    fn fans_of_dense_and_conv_kernels() {
        assert_eq!(fans(&[32, 128], -2, -1), (32.0, 128.0));
        assert_eq!(fans(&[8, 8, 3, 32], -2, -1), (192.0, 2048.0));
        assert_eq!(fans(&[1, 1, 32], -2, -1), (1.0, 32.0));
    }
}
