//! The model registry: building models by `model_name` from big_vision config maps, and
//! its errors for unknown names, unknown keys and ill-typed values.

use bv_core::random::Key;
use bv_core::{jit, DType, Spec, Tensor};
use bv_nn::models::{build, ModelError};
use serde_json::json;

/// Parameter count of a built model, from lowering its `init` (not run).
fn count(name: &str, config: serde_json::Value, input: &[usize]) -> usize {
    let model = build(name, &config).unwrap();
    let spec = Spec::new(input, DType::F32);
    let f = jit(move |key: Tensor| model.init(&key, &spec));
    f.lower(&Key::spec())
        .unwrap()
        .out_avals
        .iter()
        .map(|a| a.shape.iter().product::<usize>())
        .sum()
}

/// big_vision's `vit_s16_i1k` model config: ViT-S/16 with gap, sincos2d and rep_size
/// (spec §2.1: 22,122,472 parameters).
#[test]
fn vit_from_big_vision_config() {
    let config = json!({
        "variant": "S/16", "rep_size": true, "pool_type": "gap",
        "posemb": "sincos2d", "num_classes": 1000,
    });
    assert_eq!(count("vit", config, &[1, 224, 224, 3]), 22_122_472);
}

#[test]
fn unknown_model_name() {
    let e = build("resnet", &json!({})).unwrap_err();
    assert_eq!(
        e,
        ModelError::UnknownModel {
            name: "resnet".into()
        }
    );
    assert!(
        e.to_string()
            .contains("known: vit, mlp_mixer, bit, bit_paper"),
        "{e}"
    );
}

#[test]
fn unknown_key_is_named() {
    let e = build("vit", &json!({"variant": "S/16", "pool": "gap"})).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("`pool`") && msg.contains("pool_type"), "{msg}");
}

#[test]
fn bad_values_are_named() {
    for (config, key) in [
        (json!({"variant": "Q/16"}), "variant"),
        (json!({"pool_type": "max"}), "pool_type"),
        (json!({"depth": -1}), "depth"),
        (json!({"patch_size": [1, 2, 3]}), "patch_size"),
        (json!({"rep_size": "yes"}), "rep_size"),
        (json!({"dtype_mm": "float64"}), "dtype_mm"),
    ] {
        let e = build("vit", &config).unwrap_err();
        assert!(
            matches!(&e, ModelError::BadValue { key: k, .. } if k == key),
            "{config}: {e}"
        );
        assert!(e.to_string().contains(&format!("model.{key}")), "{e}");
    }
    let e = build("vit", &json!([1])).unwrap_err();
    assert!(matches!(e, ModelError::NotAnObject { .. }), "{e}");
}

/// `dtype_mm` as big_vision spells it; only ViT takes it, as in big_vision's models.
#[test]
fn dtype_mm_names() {
    for (name, dtype) in [
        ("float32", DType::F32),
        ("bfloat16", DType::BF16),
        ("float16", DType::F16),
    ] {
        let vit = bv_nn::models::vit::Vit::from_config(&json!({ "dtype_mm": name })).unwrap();
        assert_eq!(vit.dtype_mm, dtype, "{name}");
    }
    for model in ["mlp_mixer", "bit", "proj.flexi.vit"] {
        let e = build(model, &json!({"dtype_mm": "bfloat16"})).unwrap_err();
        assert!(e.to_string().contains("`dtype_mm`"), "{model}: {e}");
    }
}

/// Mixer-B/16 and BiT-R50x1 at 224 with 1000 classes against the published sizes, within
/// 0.5%: 59.9M (`mixer_b16_224`) and 25.5M (`resnetv2_50x1_bit`), as timm's model cards give
/// them (the MLP-Mixer paper rounds to 59M).
#[test]
fn mixer_and_bit_counts_match_published() {
    let mixer = count(
        "mlp_mixer",
        json!({"variant": "B/16", "num_classes": 1000}),
        &[1, 224, 224, 3],
    );
    let r50 = |name| {
        count(
            name,
            json!({"depth": 50, "num_classes": 1000}),
            &[1, 224, 224, 3],
        )
    };
    let (v1, v2) = (r50("bit"), r50("bit_paper"));
    eprintln!("Mixer-B/16 {mixer}, BiT-R50x1 v1 {v1}, v2 {v2}");
    for (n, published) in [(mixer, 59.9e6), (v1, 25.5e6), (v2, 25.5e6)] {
        assert!(
            (n as f64 / published - 1.0).abs() < 0.005,
            "{n} vs {published}"
        );
    }
}

/// `config.init_head_bias` fills `head/bias` inside the jitted init.
#[test]
fn init_head_bias_fills_the_head_bias() {
    let model = build("vit", &json!({"variant": "mu/8", "num_classes": 3})).unwrap();
    let spec = Spec::new([1, 16, 16, 3], DType::F32);
    let f = jit(move |key: Tensor| {
        let mut p = model.init(&key, &spec);
        assert!(bv_nn::models::init_head_bias(&mut p, -6.9));
        p
    });
    let p = f.call(&Key::from_seed(0).to_array().unwrap()).unwrap();
    assert_eq!(
        p.get("head/bias").unwrap().to_vec::<f32>().unwrap(),
        vec![-6.9f32; 3]
    );
}
