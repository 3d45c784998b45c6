//! ViT forward against big_vision's own outputs (`tests/golden/vit/`: `model.apply` under
//! `jax.jit` at `params_init`): the logits and every `out/*` intermediate. Tolerance: the
//! golden values are float32 with errors up to ~7e-7 against float64 (f64_check.json);
//! ours are float32 too, with a different summation order, so we allow
//! `|got - want| <= 1e-5 + 1e-4 |want|`.

use std::path::{Path, PathBuf};

use bv_core::io::{read_npz, HostArray};
use bv_core::{jit, Array, Tensor};
use bv_nn::models::vit::{Pool, Vit};
use bv_nn::Params;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/vit")
        .join(name)
}

fn device(a: &HostArray) -> Array {
    Array::from_bytes(a.bytes(), a.dtype(), a.shape()).expect("host to device")
}

fn check(name: &str, vit: Vit) {
    let params: Params<Array> = read_npz(dir(name).join("params_init.npz"))
        .unwrap()
        .iter()
        .map(|(k, a)| (k.clone(), device(a)))
        .collect();
    let inputs = read_npz(dir(name).join("inputs.npz")).unwrap();
    let image = inputs
        .iter()
        .find(|(k, _)| k == "image")
        .map(|(_, a)| device(a))
        .unwrap();
    let f = jit(move |(p, x): (Params<Tensor>, Tensor)| bv_nn::apply(&vit, &p, &[], (x, false)).1);
    let out = f.call(&(params, image)).unwrap();
    let expected = read_npz(dir(name).join("expected_forward.npz")).unwrap();
    let mut checked = 0;
    for (key, want) in &expected {
        let short = key.strip_prefix("out/").unwrap_or(key);
        let got = out
            .get(short)
            .unwrap_or_else(|| panic!("{name}: no `{short}` in out"));
        assert_eq!(got.shape(), want.shape(), "{name}: shape of {key}");
        let got: Vec<f64> = got
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|&x| x as f64)
            .collect();
        let want = want.to_f64();
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f64::max);
        eprintln!("{name}: {key}: max abs diff {worst:.2e}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
                "{name}: {key}[{i}]: got {g}, want {w}"
            );
        }
        checked += 1;
    }
    assert!(checked > 5, "{name}: only {checked} arrays compared");
}

#[test]
fn ti8_depth2_gap() {
    let vit = Vit {
        depth: 2,
        head_zeroinit: false,
        ..Vit::from_variant("Ti/8", Some(10)).unwrap()
    };
    check("ti8_d2", vit);
}

#[test]
fn mu8_map_head() {
    let vit = Vit {
        pool: Pool::Map,
        head_zeroinit: false,
        ..Vit::from_variant("mu/8", Some(10)).unwrap()
    };
    check("mu8_map", vit);
}

/// Parameter counts from spec §2.1: ViT-S/16 (gap, sincos2d, rep_size, 1000 classes) and
/// ViT-B/16 (tok, learn, rep_size, 1000 classes); traced and lowered only, not run.
#[test]
fn param_counts_match_big_vision() {
    use bv_core::random::Key;
    use bv_core::{DType, Spec};
    use bv_nn::models::vit::Posemb;
    let count = |vit: Vit| {
        let f = jit(move |(key, x): (Tensor, Tensor)| bv_nn::init(&vit, &key, (x, false)).1);
        let lowered = f
            .lower(&(Key::spec(), Spec::new([1, 224, 224, 3], DType::F32)))
            .unwrap();
        lowered
            .out_avals
            .iter()
            .map(|a| a.shape.iter().product::<usize>())
            .sum::<usize>()
    };
    let s16 = Vit {
        posemb: Posemb::Sincos2d,
        rep_size: Some(384),
        ..Vit::from_variant("S/16", Some(1000)).unwrap()
    };
    assert_eq!(count(s16), 22_122_472);
    let b16 = Vit {
        pool: Pool::Tok,
        rep_size: Some(768),
        ..Vit::from_variant("B/16", Some(1000)).unwrap()
    };
    assert_eq!(count(b16), 87_157_480);
}
