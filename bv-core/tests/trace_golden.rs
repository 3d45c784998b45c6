//! Golden StableHLO text for representative functions: the emitted module must stay stable
//! and readable. The golden files were checked by hand against the StableHLO spec's op
//! syntax; each is also compiled by the CPU plugin here. Set `BV_BLESS=1` to rewrite them
//! after an intended change, and review the diff.

use bv_core::numpy as np;
use bv_core::prim;
use bv_core::{jit, DType, Lowered, Spec, Tensor};

fn check(name: &str, lowered: Lowered) {
    let path = format!("{}/tests/golden/{name}.mlir", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("BV_BLESS").is_some() {
        std::fs::write(&path, &lowered.text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        lowered.text, want,
        "{name}: emitted text differs from {path}"
    );
    let client = bv_core::default_client().unwrap();
    client.compile(&lowered.text, &Default::default()).unwrap();
}

#[test]
fn mlp_block() {
    let f = jit(|(x, w1, b1, w2): (Tensor, Tensor, Tensor, Tensor)| {
        let h = np::gelu(&(np::matmul(&x, &w1) + &b1), true);
        np::matmul(&h, &w2) + &x
    })
    .named("mlp");
    let s = |d: &[usize]| Spec::new(d, DType::F32);
    check(
        "mlp_block",
        f.lower(&(s(&[4, 8]), s(&[8, 16]), s(&[16]), s(&[16, 8])))
            .unwrap(),
    );
}

#[test]
fn attention_weights_bf16() {
    let f = jit(|(q, k): (Tensor, Tensor)| {
        let logits = np::einsum("bqhd,bkhd->bhqk", &[&q, &k]) * 0.125;
        np::softmax(&np::astype(&logits, DType::F32), -1)
    })
    .named("attention");
    let s = Spec::new([2, 3, 4, 8], DType::BF16);
    check("attention_weights", f.lower(&(s.clone(), s)).unwrap());
}

#[test]
fn classifier_head_with_structure() {
    let f = jit(|(logits, labels): (Tensor, Tensor)| {
        let onehot = np::one_hot(&labels, 5, DType::F32);
        let loss = -np::mean(
            &np::sum(&(&onehot * np::log_softmax(&logits, -1)), -1, false),
            np::Axes::All,
            false,
        );
        (loss, np::argmax(&logits, -1))
    })
    .named("head");
    check(
        "classifier_head",
        f.lower(&(Spec::new([3, 5], DType::F32), Spec::new([3], DType::I32)))
            .unwrap(),
    );
}

#[test]
fn conv_pool_and_sort() {
    let f = jit(|(x, w): (Tensor, Tensor)| {
        let conv = prim::Convolution {
            strides: vec![1, 1],
            padding: vec![(1, 1), (1, 1)],
            lhs_dilation: vec![1, 1],
            rhs_dilation: vec![1, 1],
            dims: prim::ConvDims::from_layouts("NHWC", "HWIO", "NHWC"),
            feature_group_count: 1,
            batch_group_count: 1,
            precision: prim::Precision::Default,
        };
        let y = np::max_pool(
            &prim::conv_general_dilated(&x, &w, conv),
            &[2, 2],
            &[2, 2],
            np::Padding::Valid,
        );
        let (v, i) = np::top_k(&np::ravel(&y), 3);
        (v, i)
    })
    .named("conv");
    check(
        "conv_pool_topk",
        f.lower(&(
            Spec::new([1, 4, 4, 2], DType::F32),
            Spec::new([3, 3, 2, 4], DType::F32),
        ))
        .unwrap(),
    );
}
