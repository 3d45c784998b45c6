//! The `classification` evaluator: prec@1 over one- or multi-hot labels and the masked
//! loss, summed over padded batches so that every example counts once.

use bv_core::numpy as np;
use bv_core::{DType, Tensor};

use crate::losses;

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
    let top1 = np::reshape(&np::argmax(logits, -1), &[-1, 1]);
    let hit = np::reshape(&np::take_along_axis(labels, &top1, -1), &[-1]);
    let loss = losses::per_example(loss_name, logits, labels)?;
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
