//! The `classification` evaluator: prec@1 over one- or multi-hot labels and the masked
//! loss, summed over padded batches so that every example counts once.

use bv_core::numpy as np;
use bv_core::sharding::Mesh;
use bv_core::{jit, DType, Tensor};

use super::{Context, DeviceParams, Evaluator, SumsFn};
use crate::config::Eval;
use crate::data::EvalConfig;
use crate::error::TrainError;
use crate::losses;
use crate::trainers::Predict;
use bv_core::tree::Params;

/// `prec@1` and `loss` over an eval split.
pub struct Classification {
    data: EvalConfig,
    mesh: Mesh,
    label_key: String,
    sums: SumsFn,
    predict: Predict,
    fixed: std::sync::Arc<DeviceParams>,
}

/// Builds `evals.<name>` of type `classification`.
pub fn build(name: &str, cfg: &Eval, ctx: &Context) -> Result<Box<dyn Evaluator>, TrainError> {
    let predict = ctx.single(name, cfg)?;
    let data = ctx.pipeline(name, cfg, cfg.data.as_ref(), cfg.pp_fn.as_deref())?;
    let (model, loss) = (predict.model.clone(), ctx.loss_name(name, cfg)?);
    let sums = jit(
        move |(params, x, y, mask): (Params, Tensor, Tensor, Tensor)| {
            let (logits, _) = super::apply(model.as_ref(), params, &x);
            // The loss name was checked with the config, so the sums always exist.
            batch_sums(&loss, &logits, &y, &mask)
                .unwrap_or_else(|| (logits.clone(), logits.clone(), logits))
        },
    )
    .named(&format!("eval_{name}"))
    .sharded(ctx.mesh.clone(), super::replicated);
    Ok(Box::new(Classification {
        data,
        mesh: ctx.mesh.clone(),
        label_key: cfg.label_key.clone().unwrap_or_else(|| "labels".into()),
        sums,
        predict,
        fixed: ctx.fixed.clone(),
    }))
}

impl Evaluator for Classification {
    fn run(&mut self, params: &DeviceParams, _step: u64) -> Result<Vec<(String, f64)>, TrainError> {
        let params = self.predict.params(params, &self.fixed);
        let (correct, loss, count) =
            super::sum_batches(&self.sums, &params, &self.data, &self.mesh, &self.label_key)?;
        Ok(vec![
            ("prec@1".into(), correct / count),
            ("loss".into(), loss / count),
        ])
    }
}

/// Per-example `(correct, loss)`, `[batch]` each: the label value at the arg-max logit,
/// and the loss `loss_name` (`None` for an unknown loss).
pub fn per_example(loss_name: &str, logits: &Tensor, labels: &Tensor) -> Option<(Tensor, Tensor)> {
    let top1 = np::reshape(&np::argmax(logits, -1), &[-1, 1]);
    let hit = np::reshape(&np::take_along_axis(labels, &top1, -1), &[-1]);
    Some((hit, losses::per_example(loss_name, logits, labels)?))
}

/// Per-batch sums `(correct, loss, count)` inside the jitted eval step: `logits` and
/// `labels` are `[batch, classes]`, `mask` is `[batch]` (1 for real examples).
///
/// As big_vision: an example counts as correct by the label value at the arg-max logit
/// (so a multi-hot label set counts any of its classes).
pub fn batch_sums(
    loss_name: &str,
    logits: &Tensor,
    labels: &Tensor,
    mask: &Tensor,
) -> Option<(Tensor, Tensor, Tensor)> {
    let mask = np::astype(mask, DType::F32);
    let (hit, loss) = per_example(loss_name, logits, labels)?;
    Some((
        np::sum(&(&hit * &mask), np::Axes::All, false),
        np::sum(&(&loss * &mask), np::Axes::All, false),
        np::sum(&mask, np::Axes::All, false),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bv_core::{jit, Array};

    #[test]
    fn padding_is_not_counted_and_multi_hot_counts_any_class() {
        // Row 0: argmax 1, label one-hot 1 → correct. Row 1: argmax 0, labels {0, 2} → correct.
        // Row 2: argmax 2, label 0 → wrong. Row 3: padding (mask 0), would be correct.
        let logits = [
            0.0f32, 3.0, 1.0, 5.0, 1.0, 2.0, 0.0, 0.0, 9.0, 0.0, 7.0, 0.0,
        ];
        let labels = [
            0.0f32, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0,
        ];
        let mask = [1u8, 1, 1, 0];
        let f = jit(|(z, y, m): (Tensor, Tensor, Tensor)| {
            let (c, l, n) = batch_sums("softmax_xent", &z, &y, &m).unwrap();
            (c, l, n)
        });
        let (c, l, n) = f
            .call(&(
                Array::from_slice(&logits, &[4, 3]).unwrap(),
                Array::from_slice(&labels, &[4, 3]).unwrap(),
                Array::from_slice(&mask, &[4]).unwrap(),
            ))
            .unwrap();
        assert_eq!(c.item::<f32>().unwrap(), 2.0);
        assert_eq!(n.item::<f32>().unwrap(), 3.0);
        // float64: the three real rows' softmax cross-entropy, computed by hand.
        let row = |z: [f64; 3], y: [f64; 3]| {
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            -y.iter().zip(z).map(|(y, z)| y * (z - lse)).sum::<f64>()
        };
        let want = row([0.0, 3.0, 1.0], [0.0, 1.0, 0.0])
            + row([5.0, 1.0, 2.0], [1.0, 0.0, 1.0])
            + row([0.0, 0.0, 9.0], [1.0, 0.0, 0.0]);
        assert!(
            (f64::from(l.item::<f32>().unwrap()) - want).abs() < 1e-4,
            "loss"
        );
    }
}
