//! Flax linen's layers with Flax's parameter names, shapes, initializers and arithmetic.

mod attention;
mod dense;
mod dropout;
mod embed;
mod norm;

pub use attention::{dot_product_attention, MultiHeadDotProductAttention};
pub use dense::{Conv, ConvPadding, Dense, DenseGeneral, MlpBlock};
pub use dropout::Dropout;
pub use embed::{attend, Embed};
pub use norm::{GroupNorm, LayerNorm};
