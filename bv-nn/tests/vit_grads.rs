//! ViT loss and gradients against big_vision (`tests/golden/vit/*`: `value_and_grad` of
//! `softmax_xent` at `params_init` on `inputs.npz`). The model comes from the registry with
//! the fixture's `model_kwargs`. Tolerances from the README: loss atol 1e-5; gradients atol
//! 1e-5 + 1e-4 × the tensor's max |value|.

mod common;

use bv_nn::models::build;
use common::{check_all, entry, golden, loss_and_grads, meta};

fn check(case: &str) {
    let dir = golden("vit", case);
    let meta = meta(&dir);
    let model = build("vit", &meta["model_kwargs"]).unwrap();
    let inputs = dir.join("inputs.npz");
    let (loss, grads) = loss_and_grads(&model, "softmax_xent")(
        common::load(&dir.join("params_init.npz")),
        &entry(&inputs, "image"),
        &entry(&inputs, "labels_onehot"),
    );
    let want = meta["loss_init_softmax_xent"].as_f64().unwrap();
    assert!(
        (loss - want).abs() <= 1e-5,
        "{case}: loss {loss}, want {want}"
    );
    let n = check_all(&dir.join("grads_init.npz"), &grads, 1e-5, 0.0, 1e-4);
    assert_eq!(n, grads.len(), "{case}: every gradient compared");
}

#[test]
fn ti8_depth2_gap_grads() {
    check("ti8_d2");
}

#[test]
fn mu8_map_head_grads() {
    check("mu8_map");
}
