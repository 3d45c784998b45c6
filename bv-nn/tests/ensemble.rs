//! The teacher ensemble (big_vision distill.py's `teacher_ensemble_fwd`): each member's
//! parameters under its name, output the mean of the members' softmax probabilities,
//! against that mean computed in float64 from each member's own logits.

use std::sync::Arc;

use bv_core::random::{self, Key};
use bv_core::{jit, Array, DType, Spec, Tensor};
use bv_nn::models::ensemble::Ensemble;
use bv_nn::models::ImageModel;
use bv_nn::Params;

fn vit(width: usize, patch: usize) -> Arc<dyn ImageModel> {
    let kw = serde_json::json!({"num_classes": 10, "patch_size": [patch, patch], "width": width,
        "depth": 1, "mlp_dim": 2 * width, "num_heads": 2, "head_zeroinit": false});
    bv_nn::models::build("vit", &kw).unwrap()
}

fn init(model: &Arc<dyn ImageModel>, seed: i64) -> Params<Array> {
    let (m, spec) = (model.clone(), Spec::new([4, 28, 28, 1], DType::F32));
    jit(move |k: Tensor| m.init(&k, &spec))
        .call(&Key::from_seed(seed).to_array().unwrap())
        .unwrap()
}

fn apply(model: &Arc<dyn ImageModel>, params: &Params<Array>, x: &Array) -> Vec<f32> {
    let m = model.clone();
    jit(move |(p, x): (Params<Tensor>, Tensor)| m.apply(&p, &x, false, &[]).0)
        .call(&(params.clone(), x.clone()))
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn ensemble_is_the_mean_of_member_probabilities() {
    let members = [("prof", vit(16, 7), 1), ("t2", vit(8, 4), 2)];
    let x = jit(|k: Tensor| random::normal(&k, &[4, 28, 28, 1], DType::F32))
        .call(&Key::from_seed(7).to_array().unwrap())
        .unwrap();
    let mut params = Params::new();
    let mut want = vec![0.0f64; 40];
    for (name, m, seed) in &members {
        let p = init(m, *seed);
        let logits = apply(m, &p, &x);
        for row in 0..4 {
            let z: Vec<f64> = logits[row * 10..row * 10 + 10]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let total: f64 = z.iter().map(|v| v.exp()).sum();
            for c in 0..10 {
                want[row * 10 + c] += z[c].exp() / total / members.len() as f64;
            }
        }
        for (k, v) in p.iter() {
            params.insert(format!("{name}/{k}"), v.clone());
        }
    }
    let ensemble: Arc<dyn ImageModel> = Arc::new(Ensemble::new(
        members
            .iter()
            .map(|(n, m, _)| (n.to_string(), m.clone()))
            .collect(),
    ));
    let got = apply(&ensemble, &params, &x);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (f64::from(*g) - w).abs() <= 1e-6,
            "[{i}]: got {g}, want {w}"
        );
    }
    // Its own init names every member's parameters under the member's name.
    let fresh = init(&ensemble, 3);
    let names = |p: &Params<Array>| p.names().map(String::from).collect::<Vec<_>>();
    let mut fresh_names = names(&fresh);
    let mut all = names(&params);
    fresh_names.sort();
    all.sort();
    assert_eq!(fresh_names, all);
}
