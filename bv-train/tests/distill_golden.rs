//! Distillation against big_vision (`tests/golden/distill/`, made by `make_distill.py` with
//! big_vision's `distance.dist` and distill.py's own `loss_fn` / `update_fn`): every
//! distance kind on random logits (atol 1e-5 + 1e-5 × max |value|, `agree` exact).

use std::collections::BTreeMap;
use std::path::PathBuf;

use bv_core::io::{read_npz, HostArray};
use bv_core::{jit, Array, Tensor};
use bv_train::evals::distance::Distance;
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/distill")
}

fn npz(name: &str) -> BTreeMap<String, HostArray> {
    read_npz(dir().join(name)).unwrap().into_iter().collect()
}

fn meta() -> Value {
    serde_json::from_slice(&std::fs::read(dir().join("meta.json")).unwrap()).unwrap()
}

fn device(h: &HostArray) -> Array {
    Array::from_bytes(h.bytes(), h.dtype(), h.shape()).unwrap()
}

#[test]
fn every_distance_kind_matches_big_vision() {
    let file = npz("distances.npz");
    let (s, t) = (device(&file["student"]), device(&file["teacher"]));
    let cases = meta()["distances"].as_object().unwrap().clone();
    assert_eq!(cases.len(), 9);
    for (name, kw) in cases {
        let d = Distance::from_entry(&name, &kw).unwrap();
        let f = jit(move |(s, t): (Tensor, Tensor)| d.per_example(&s, &t));
        let got = f.call(&(s.clone(), t.clone())).unwrap();
        let want = file[&name].to_f64();
        let got: Vec<f64> = match got.dtype() {
            bv_core::DType::I32 => got.to_vec::<i32>().unwrap().into_iter().map(f64::from).collect(),
            _ => got.to_vec::<f32>().unwrap().into_iter().map(f64::from).collect(),
        };
        let max = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-5 + 1e-5 * max, "{name}[{i}]: got {g}, want {w}");
        }
    }
}

#[test]
fn distance_config_errors_name_the_key() {
    let kw = serde_json::json!({"t": 0.0}).as_object().unwrap().clone();
    let e = Distance::new("distance_kw", "kl", &kw).unwrap_err().to_string();
    assert!(e.contains("distance_kw.t") && e.contains("positive"), "{e}");
    let e = Distance::new("distance", "cosine", &Default::default()).unwrap_err().to_string();
    assert!(e.contains("unknown distance \"cosine\""), "{e}");
    let kw = serde_json::json!({"k": 2}).as_object().unwrap().clone();
    let e = Distance::new("distance_kw", "kl", &kw).unwrap_err().to_string();
    assert!(e.contains("takes [\"t\"]"), "{e}");
}
