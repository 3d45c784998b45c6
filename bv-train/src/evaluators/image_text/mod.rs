//! big_vision's image-text evaluators (`evaluators/proj/image_text/`): zero-shot
//! classification (`discriminative_classifier`), image↔text retrieval (`retrieval`) and
//! in-batch contrastive accuracy and loss (`contrastive`). They call the two-tower model
//! of the run (`Context::towers`); embeddings come back to the host, where the scores are
//! computed in float64.

pub mod contrastive;
pub mod discriminative_classifier;
pub mod prompts;
pub mod retrieval;

use std::sync::Arc;

use bv_core::sharding::Mesh;
use bv_core::{jit, Jit, Tensor};
use bv_nn::models::proj::image_text::two_towers::TwoTowers;

use super::{Context, DeviceParams};
use crate::data::batch::stack_examples;
use crate::data::PipelineError;
use crate::data::{Array, Batch, Example, Value};
use crate::error::TrainError;
use bv_core::tree::Params;

/// The run's two-tower model, or an error saying which trainer and model an image-text
/// evaluator needs.
pub fn towers(name: &str, kind: &str, ctx: &Context) -> Result<Arc<TwoTowers>, TrainError> {
    ctx.towers.clone().ok_or_else(|| {
        TrainError::setting(
            format!("evals.{name}"),
            format!(
                "{kind} evaluators need a two-tower model (trainer \"proj.image_text.siglip\", \
                 model_name \"proj.image_text.two_towers\")"
            ),
        )
    })
}

/// `(params, input, mask) -> (embedding, mask)`, replicated to every process.
pub type EmbedFn = Jit<(), (Params, Tensor, Tensor), (Tensor, Tensor)>;

/// Which tower an embedder runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tower {
    /// `zimg` of `image`.
    Image,
    /// `ztxt` of token ids (`labels`).
    Text,
}

/// A jitted embedder (`predict_fn(params, {"image": x})[0]` or `[1]`): the normalized
/// embeddings of one batch, with the mask passed through.
pub fn embedder(towers: &Arc<TwoTowers>, tower: Tower, mesh: &Mesh, name: &str) -> EmbedFn {
    let m = towers.clone();
    jit(move |(params, x, mask): (Params, Tensor, Tensor)| {
        let (zimg, ztxt, _) = match tower {
            Tower::Image => m.apply_both(&params, Some(&x), None, false, &[]),
            Tower::Text => m.apply_both(&params, None, Some(&x), false, &[]),
        };
        (zimg.or(ztxt).unwrap_or(x), mask)
    })
    .named(&format!("eval_{name}_{tower:?}").to_lowercase())
    .sharded(mesh.clone(), super::replicated)
}

/// Embeddings (one row per example) and, per kept feature, each example's values.
pub type Embedded = (Vec<Vec<f32>>, Vec<Vec<Vec<i64>>>);

/// Embeddings of the real examples of `batches` (`key` is the embedded feature), in order,
/// each `dim` floats; and per integer feature of `keep`, the values of each of those
/// examples (one for a scalar feature).
pub fn embed_all(
    embed: &EmbedFn,
    params: &DeviceParams,
    mesh: &Mesh,
    batches: impl Iterator<Item = Result<Batch, TrainError>>,
    key: &str,
    keep: &[&str],
) -> Result<Embedded, TrainError> {
    let mut rows = Vec::new();
    let mut kept: Vec<Vec<Vec<i64>>> = vec![Vec::new(); keep.len()];
    for batch in batches {
        let batch = batch?;
        let x = super::to_device(&batch, key, mesh)?;
        let mask = super::to_device(&batch, "_mask", mesh)?;
        let (z, mask) = embed.call(&(params.clone(), x, mask))?;
        let (z, mask) = (z.to_vec::<f32>()?, mask.to_vec::<u8>()?);
        let dim = z.len() / mask.len().max(1);
        let ints: Vec<Vec<Vec<i64>>> = keep
            .iter()
            .map(|k| int_rows(&batch, k))
            .collect::<Result<_, _>>()?;
        for (i, &m) in mask.iter().enumerate() {
            if m == 0 {
                continue;
            }
            rows.push(z[i * dim..(i + 1) * dim].to_vec());
            for (out, v) in kept.iter_mut().zip(&ints) {
                out.push(v[i].clone());
            }
        }
    }
    Ok((rows, kept))
}

/// An integer feature of a batch: each example's values.
fn int_rows(batch: &Batch, key: &str) -> Result<Vec<Vec<i64>>, TrainError> {
    let v = batch
        .data
        .get(key)
        .ok_or_else(|| TrainError::MissingFeature {
            key: key.to_string(),
            have: batch.data.keys().cloned().collect(),
        })?;
    let n = v.shape().first().copied().unwrap_or(1).max(1);
    let all: Vec<i64> = match v {
        Value::I64(a) => a.data.clone(),
        Value::U8(a) => a.data.iter().map(|&x| i64::from(x)).collect(),
        other => {
            return Err(TrainError::FeatureType {
                key: key.to_string(),
                holds: other.dtype(),
                want: "integers",
            })
        }
    };
    let per = (all.len() / n).max(1);
    Ok(all.chunks(per).map(<[i64]>::to_vec).collect())
}

/// Examples in batches of `batch_size`, the last padded with zero examples; each batch
/// has `_mask` (1 for real examples), as the eval pipeline's.
pub fn batches_of(examples: Vec<Example>, batch_size: usize) -> Result<Vec<Batch>, TrainError> {
    let mut out = Vec::new();
    for chunk in examples.chunks(batch_size.max(1)) {
        let mut padded: Vec<Example> = chunk.to_vec();
        let zero: Example = chunk[0]
            .iter()
            .map(|(k, v)| (k.clone(), v.zeros_like()))
            .collect();
        padded.resize(batch_size, zero);
        let mut data = stack_examples(&padded).map_err(PipelineError::Batch)?;
        let mask = (0..batch_size).map(|i| u8::from(i < chunk.len())).collect();
        data.insert(
            "_mask".into(),
            Value::U8(Array::new(vec![batch_size], mask)),
        );
        out.push(Batch {
            data,
            position: None,
        });
    }
    Ok(out)
}

/// Row-wise `a · bᵀ` in float64.
pub fn similarities(a: &[Vec<f32>], b: &[Vec<f32>]) -> Vec<Vec<f64>> {
    a.iter()
        .map(|x| {
            b.iter()
                .map(|y| {
                    x.iter()
                        .zip(y)
                        .map(|(p, q)| f64::from(*p) * f64::from(*q))
                        .sum()
                })
                .collect()
        })
        .collect()
}
