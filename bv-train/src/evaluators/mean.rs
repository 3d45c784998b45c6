//! The `mean` evaluator (big_vision's `evaluators/mean.py`): a predict fn returns named
//! per-example values, and each is reported as its mean over the real examples (`_mask`).

use std::collections::BTreeMap;

use bv_core::numpy as np;
use bv_core::sharding::Mesh;
use bv_core::{jit, DType, Jit, Tensor};

use super::{Context, DeviceParams, Evaluator};
use crate::config::Eval;
use crate::data::EvalConfig;
use crate::error::TrainError;
use bv_core::tree::Params;

/// The predict fns `mean` calls (`pred`, default `loss`): `loss` is train.py's
/// `eval_loss_fn` (`{"loss"}`); `classify` gives `{"loss", "prec@1"}` as `classification`
/// computes them per example.
pub const PREDS: &[&str] = &["loss", "classify"];

/// Named per-batch sums and the number of real examples.
type SumsFn = Jit<(), (Params, Tensor, Tensor, Tensor), (BTreeMap<String, Tensor>, Tensor)>;

/// Masked means of a predict fn's per-example values.
pub struct Mean {
    data: EvalConfig,
    mesh: Mesh,
    label_key: String,
    sums: SumsFn,
}

/// Builds `evals.<name>` of type `mean`.
pub fn build(name: &str, cfg: &Eval, ctx: &Context) -> Result<Box<dyn Evaluator>, TrainError> {
    let pred = super::check_pred(name, cfg, PREDS)?;
    let data = ctx.pipeline(name, cfg, cfg.data.as_ref(), cfg.pp_fn.as_deref())?;
    let (model, loss) = (ctx.model.clone(), ctx.loss_name(name, cfg)?);
    let sums = jit(
        move |(params, x, y, mask): (Params, Tensor, Tensor, Tensor)| {
            let (logits, _) = super::apply(model.as_ref(), params, &x);
            // The loss name was checked with the config, so the values always exist.
            let (hit, loss) = super::classification::per_example(&loss, &logits, &y)
                .unwrap_or_else(|| (logits.clone(), logits));
            let mut values = BTreeMap::from([("loss".to_string(), loss)]);
            if pred == "classify" {
                values.insert("prec@1".into(), hit);
            }
            masked_sums(values, &mask)
        },
    )
    .named(&format!("eval_{name}"))
    .sharded(ctx.mesh.clone(), super::replicated);
    Ok(Box::new(Mean {
        data,
        mesh: ctx.mesh.clone(),
        label_key: cfg.label_key.clone().unwrap_or_else(|| "labels".into()),
        sums,
    }))
}

/// big_vision's `_run_predict_fn`: each value summed where the mask is set (padding never
/// counts, even where its value is not finite), and the mask's sum.
pub fn masked_sums(
    values: BTreeMap<String, Tensor>,
    mask: &Tensor,
) -> (BTreeMap<String, Tensor>, Tensor) {
    let sums = values
        .into_iter()
        .map(|(k, v)| {
            let kept = np::where_(mask, &v, 0.0);
            (k, np::sum(&kept, np::Axes::All, false))
        })
        .collect();
    let count = np::sum(&np::astype(mask, DType::F32), np::Axes::All, false);
    (sums, count)
}

impl Evaluator for Mean {
    fn run(&mut self, params: &DeviceParams, _step: u64) -> Result<Vec<(String, f64)>, TrainError> {
        let mut totals: BTreeMap<String, f64> = BTreeMap::new();
        let mut count = 0.0;
        for batch in super::batches(&self.data)? {
            let batch = batch?;
            let x = super::to_device(&batch, "image", &self.mesh)?;
            let y = super::to_device(&batch, &self.label_key, &self.mesh)?;
            let mask = super::to_device(&batch, "_mask", &self.mesh)?;
            let (sums, n) = self.sums.call(&(params.clone(), x, y, mask))?;
            for (k, s) in sums {
                *totals.entry(k).or_default() += f64::from(s.item::<f32>()?);
            }
            count += f64::from(n.item::<f32>()?);
        }
        Ok(totals.into_iter().map(|(k, s)| (k, s / count)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bv_core::Array;

    /// float64 reference: the mean over the rows whose mask is set, padding ignored even
    /// where it holds a non-finite value.
    #[test]
    fn masked_means_match_a_host_mean() {
        let a: Vec<f32> = (0..8).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let mut b: Vec<f32> = (0..8).map(|i| i as f32 - 2.5).collect();
        let mask = [1u8, 0, 1, 1, 0, 1, 1, 0];
        b[7] = f32::NAN;
        let f = jit(|(a, b, m): (Tensor, Tensor, Tensor)| {
            masked_sums(BTreeMap::from([("a".into(), a), ("b".into(), b)]), &m)
        });
        let (sums, n) = f
            .call(&(
                Array::from_slice(&a, &[8]).unwrap(),
                Array::from_slice(&b, &[8]).unwrap(),
                Array::from_slice(&mask, &[8]).unwrap(),
            ))
            .unwrap();
        let n = f64::from(n.item::<f32>().unwrap());
        for (key, values) in [("a", &a), ("b", &b)] {
            let kept: Vec<f64> = values
                .iter()
                .zip(mask)
                .filter(|(_, m)| *m == 1)
                .map(|(v, _)| f64::from(*v))
                .collect();
            let want = kept.iter().sum::<f64>() / kept.len() as f64;
            let got = f64::from(sums[key].item::<f32>().unwrap()) / n;
            assert!((got - want).abs() < 1e-6, "{key}: {got} vs {want}");
        }
    }
}
