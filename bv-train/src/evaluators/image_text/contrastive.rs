//! `proj.image_text.contrastive`: in-batch image↔text accuracy and loss, for training
//! health (depends on the batch size). Per batch, `logits = zimg · ztxtᵀ · t` with padded
//! examples masked out; the loss is big_vision's `bidirectional_contrastive_loss`, the
//! mean of the image→text and text→image cross-entropies on the diagonal, and an image is
//! correct when its own text has the largest logit. Reports `ncorrect_minibatch` and
//! `loss`, averaged over examples. With `use_global_batch=False` each device's share of the
//! batch is its own minibatch, as big_vision's pmapped evaluator.

use bv_core::numpy as np;
use bv_core::sharding::Mesh;
use bv_core::{jit, DType, Tensor};

use super::towers;
use crate::config::Eval;
use crate::data::EvalConfig;
use crate::error::TrainError;
use crate::evaluators::{Context, DeviceParams, Evaluator, SumsFn};
use bv_core::tree::Params;

/// The contrastive evaluator.
pub struct Contrastive {
    data: EvalConfig,
    mesh: Mesh,
    label_key: String,
    sums: SumsFn,
}

/// Per-example `(loss, correct)` of `bidirectional_contrastive_loss(zimg, ztxt, t, mask)`
/// within each of `blocks` equal minibatches of the batch; masked examples give 0.
pub fn bidirectional(
    zimg: &Tensor,
    ztxt: &Tensor,
    t: &Tensor,
    mask: &Tensor,
    blocks: usize,
) -> (Tensor, Tensor) {
    let (n, d) = (zimg.shape()[0], zimg.shape()[1]);
    let m = n / blocks;
    let split = |z: &Tensor| np::reshape(z, &[blocks as isize, m as isize, d as isize]);
    let logits = np::einsum("bid,bjd->bij", &[&split(zimg), &split(ztxt)]) * np::reshape(t, &[]);
    let keep = np::reshape(
        &np::astype(mask, DType::Bool),
        &[blocks as isize, m as isize],
    );
    let rows = np::reshape(&keep, &[blocks as isize, m as isize, 1]);
    let cols = np::reshape(&keep, &[blocks as isize, 1, m as isize]);
    let both = np::bitwise_and(
        np::broadcast_to(&rows, &[blocks, m, m]),
        np::broadcast_to(&cols, &[blocks, m, m]),
    );
    let logits = np::where_(&both, &logits, f64::NEG_INFINITY);
    let ids = np::arange(m, DType::I32);
    let eye = np::equal(
        np::reshape(&ids, &[m as isize, 1]),
        np::reshape(&ids, &[1, m as isize]),
    );
    let eye = np::broadcast_to(&eye, &[blocks, m, m]);
    let diag = |x: &Tensor| np::sum(&np::where_(&eye, x, 0.0), -1, false);
    let l1 = -diag(&np::log_softmax(&logits, 2));
    let l2 = -diag(&np::transpose(&np::log_softmax(&logits, 1), &[0, 2, 1]));
    let l = np::reshape(&((l1 + l2) * 0.5), &[n as isize]);
    let keep = np::reshape(&keep, &[n as isize]);
    let best = np::argmax(&logits, 2);
    let own = np::broadcast_to(&np::reshape(&ids, &[1, m as isize]), &[blocks, m]);
    let hit = np::astype(&np::equal(np::astype(&best, DType::I32), &own), DType::F32);
    let hit = np::reshape(&hit, &[n as isize]);
    (np::where_(&keep, &l, 0.0), np::where_(&keep, &hit, 0.0))
}

/// Builds `evals.<name>` of type `proj.image_text.contrastive`.
pub fn build(name: &str, cfg: &Eval, ctx: &Context) -> Result<Box<dyn Evaluator>, TrainError> {
    let towers = towers(name, "proj.image_text.contrastive", ctx)?;
    let data = ctx.pipeline(name, cfg, cfg.data.as_ref(), cfg.pp_fn.as_deref())?;
    let blocks = if cfg.use_global_batch.unwrap_or(true) {
        1
    } else {
        ctx.mesh.size()
    };
    let sums = jit(
        move |(params, x, y, mask): (Params, Tensor, Tensor, Tensor)| {
            let (zimg, ztxt, out) = towers.apply_both(&params, Some(&x), Some(&y), false, &[]);
            let (zimg, ztxt) = (zimg.unwrap_or(x.clone()), ztxt.unwrap_or(x));
            let t = out
                .get("t")
                .cloned()
                .unwrap_or_else(|| np::ones(&[1], DType::F32));
            let (l, c) = bidirectional(&zimg, &ztxt, &t, &mask, blocks);
            let n = np::astype(&mask, DType::F32);
            let all = |v: &Tensor| np::sum(v, np::Axes::All, false);
            (all(&c), all(&l), all(&n))
        },
    )
    .named(&format!("eval_{name}"))
    .sharded(ctx.mesh.clone(), crate::evaluators::replicated);
    Ok(Box::new(Contrastive {
        data,
        mesh: ctx.mesh.clone(),
        label_key: cfg.label_key.clone().unwrap_or_else(|| "labels".into()),
        sums,
    }))
}

impl Evaluator for Contrastive {
    fn run(&mut self, params: &DeviceParams, _step: u64) -> Result<Vec<(String, f64)>, TrainError> {
        let (c, l, n) = crate::evaluators::sum_batches(
            &self.sums,
            params,
            &self.data,
            &self.mesh,
            &self.label_key,
        )?;
        Ok(vec![
            ("ncorrect_minibatch".into(), c / n),
            ("loss".into(), l / n),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bv_core::Array;

    /// float64 reference: per minibatch of real examples, logits `t·zimg·ztxtᵀ`, the mean
    /// of the two diagonal cross-entropies, and argmax over texts.
    fn reference(
        z1: &[f64],
        z2: &[f64],
        d: usize,
        t: f64,
        mask: &[u8],
        blocks: usize,
    ) -> (f64, f64) {
        let n = mask.len();
        let m = n / blocks;
        let (mut loss, mut hits) = (0.0, 0.0);
        for b in 0..blocks {
            let real: Vec<usize> = (b * m..(b + 1) * m).filter(|&i| mask[i] == 1).collect();
            let logit =
                |i: usize, j: usize| t * (0..d).map(|k| z1[i * d + k] * z2[j * d + k]).sum::<f64>();
            for &i in &real {
                let lse_row = real.iter().map(|&j| logit(i, j).exp()).sum::<f64>().ln();
                let lse_col = real.iter().map(|&j| logit(j, i).exp()).sum::<f64>().ln();
                loss += 0.5 * ((lse_row - logit(i, i)) + (lse_col - logit(i, i)));
                let best = real.iter().copied().fold(real[0], |a, j| {
                    if logit(i, j) > logit(i, a) {
                        j
                    } else {
                        a
                    }
                });
                hits += f64::from(u8::from(best == i));
            }
        }
        (loss, hits)
    }

    #[test]
    fn masked_bidirectional_loss_against_float64() {
        let (n, d) = (8, 5);
        let mut rng = crate::pp::Rng::new(3, 0);
        let z1: Vec<f32> = (0..n * d).map(|_| rng.range(-1.0, 1.0)).collect();
        let z2: Vec<f32> = (0..n * d).map(|_| rng.range(-1.0, 1.0)).collect();
        let mask = [1u8, 1, 1, 0, 1, 1, 0, 0];
        for blocks in [1, 2] {
            let f = jit(move |(a, b, t, m): (Tensor, Tensor, Tensor, Tensor)| {
                let (l, c) = bidirectional(&a, &b, &t, &m, blocks);
                (
                    np::sum(&l, np::Axes::All, false),
                    np::sum(&c, np::Axes::All, false),
                )
            });
            let (l, c) = f
                .call(&(
                    Array::from_slice(&z1, &[n, d]).unwrap(),
                    Array::from_slice(&z2, &[n, d]).unwrap(),
                    Array::from_slice(&[2.5f32], &[1]).unwrap(),
                    Array::from_slice(&mask, &[n]).unwrap(),
                ))
                .unwrap();
            let f64s = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
            let (want_l, want_c) = reference(&f64s(&z1), &f64s(&z2), d, 2.5, &mask, blocks);
            let got_l = f64::from(l.item::<f32>().unwrap());
            assert!(
                (got_l - want_l).abs() < 1e-4 * (1.0 + want_l.abs()),
                "{blocks}: {got_l} vs {want_l}"
            );
            assert_eq!(
                f64::from(c.item::<f32>().unwrap()),
                want_c,
                "blocks {blocks}"
            );
        }
    }
}
