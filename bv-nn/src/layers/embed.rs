//! Flax's `nn.Embed`: a `(num_embeddings, features)` table looked up by integer ids, and
//! `attend`, the product with the transposed table (tied output logits).

use bv_core::numpy as np;
use bv_core::{DType, Tensor};

use crate::init::{Distribution, FanMode, Init};
use crate::scope::{Module, Scope};

/// `nn.Embed(num_embeddings, features)`; its parameter is `embedding`, initialized as Flax's
/// `default_embed_init` (`variance_scaling(1, "fan_in", "normal", out_axis=0)`: standard
/// deviation `1/sqrt(features)`).
#[derive(Clone, Debug)]
pub struct Embed {
    /// Rows of the table (the vocabulary size).
    pub num_embeddings: usize,
    /// Width of each row.
    pub features: usize,
}

impl Embed {
    /// The table, created at init and read at apply.
    pub fn table(&self, s: &mut Scope) -> Tensor {
        let init = Init::VarianceScaling {
            scale: 1.0,
            mode: FanMode::In,
            distribution: Distribution::Normal,
            in_axis: -2,
            out_axis: 0,
        };
        s.param(
            "embedding",
            &init,
            &[self.num_embeddings, self.features],
            DType::F32,
        )
    }
}

/// `embedding.attend(x)`: `x · tableᵀ`, logits over the vocabulary.
pub fn attend(table: &Tensor, x: &Tensor) -> Tensor {
    np::matmul(x, &np::transpose(table, &[1, 0]))
}

impl Module for Embed {
    const NAME: &'static str = "Embed";
    /// Integer ids of any shape.
    type In = Tensor;
    /// `(rows, table)`: the looked-up rows (`ids.shape + [features]`) and the table itself,
    /// for [`attend`] under the same scope.
    type Out = (Tensor, Tensor);

    fn apply(&self, s: &mut Scope, ids: Tensor) -> (Tensor, Tensor) {
        let table = self.table(s);
        (np::take(&table, &ids, 0), table)
    }
}
