//! MLP-Mixer and BiT (v1 `bit` and `bit_units2`, v2 `bit_paper`) against big_vision
//! (`tests/golden/mixer`, `tests/golden/bit`): forward at `params_init` and `params_step3`
//! (logits and `out/*`), the loss and the gradients at both (and at `params_step1` for
//! `bit_units2`). Models come from the registry with each fixture's
//! `model_kwargs`. Tolerances are the READMEs': forward `1e-4 + 1e-4 |ref|`; gradients
//! `10 ×` the file's measured float32-vs-float64 max abs (at least 1e-6); loss `10 ×` its
//! measured error (at least 1e-5). `init` from big_vision's seed chain gives `params_init`
//! (names in order, shapes, values within 4 ulp as in the flax_init set).

mod common;

use bv_core::io::read_npz;
use bv_core::random::Key;
use bv_core::{jit, DType, Spec, Tensor};
use bv_nn::models::{build, ImageModel};
use bv_nn::Params;
use common::{check_all, entry, forward, golden, load, loss_and_grads, meta};
use std::path::Path;
use std::sync::Arc;

/// `rng_init` of `PRNGKey(seed)` (`rng, rng_init = split(rng)`) through `model.init`
/// equals `params_init.npz`.
fn check_init(dir: &Path, model: &Arc<dyn ImageModel>, seed: i64, input: &[usize]) {
    let (_, rng_init) = Key::from_seed(seed).split2();
    let (m, spec) = (model.clone(), Spec::new(input, DType::F32));
    let f = jit(move |key: Tensor| m.init(&key, &spec));
    let params: Params<bv_core::Array> = f.call(&rng_init.to_array().unwrap()).unwrap();
    let golden = read_npz(dir.join("params_init.npz")).unwrap();
    let mut want_names: Vec<&str> = golden.iter().map(|(k, _)| k.as_str()).collect();
    let mut names: Vec<&str> = params.names().collect();
    want_names.sort_unstable();
    names.sort_unstable();
    assert_eq!(names, want_names, "{}: parameter names", dir.display());
    for (name, want) in &golden {
        let got = params.get(name).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(params.get(name).unwrap().shape(), want.shape(), "{name}");
        for (g, w) in got.iter().zip(want.to_vec::<f32>().unwrap()) {
            let ulps = (g.to_bits() as i64 - w.to_bits() as i64).abs();
            assert!(*g == w || ulps <= 4, "{name}: init {g}, want {w}");
        }
    }
}

/// A point of the fixture's run: parameters `params_<name>.npz`, gradients
/// `grads_<name>.npz`, the forward outputs when `expected_forward` exists for it, and the
/// tolerances of the gradients and the loss.
struct At {
    name: &'static str,
    forward: bool,
    grads_atol: f64,
    loss_atol: f64,
}

/// The points every fixture has: init and after step 3 (`grads_atol`, `loss_atol` for each).
fn init_and_step3(grads_atol: [f64; 2], loss_atol: [f64; 2]) -> [At; 2] {
    [
        At {
            name: "init",
            forward: true,
            grads_atol: grads_atol[0],
            loss_atol: loss_atol[0],
        },
        At {
            name: "step3",
            forward: true,
            grads_atol: grads_atol[1],
            loss_atol: loss_atol[1],
        },
    ]
}

/// One fixture at `points`.
fn check(set: &str, case: &str, model_name: &str, seed: i64, points: &[At]) {
    let dir = golden(set, case);
    let meta = meta(&dir);
    let model = build(model_name, &meta["model_kwargs"]).unwrap();
    let (b, hw) = (meta["batch"].as_u64().unwrap() as usize, &meta["image_hw"]);
    let (h, w) = (
        hw[0].as_u64().unwrap() as usize,
        hw[1].as_u64().unwrap() as usize,
    );
    check_init(&dir, &model, seed, &[b, h, w, 3]);
    let loss_name = match meta["loss"].as_str().unwrap() {
        "softmax_xent" => "softmax_xent",
        _ => "sigmoid_xent",
    };
    let inputs = dir.join("inputs.npz");
    let (image, labels) = (entry(&inputs, "image"), entry(&inputs, "labels_onehot"));
    let (forward, loss_and_grads) = (forward(&model), loss_and_grads(&model, loss_name));
    for at in points {
        let params = load(&dir.join(format!("params_{}.npz", at.name)));
        if at.forward {
            let (logits, mut out) = forward(params.clone(), &image);
            out.insert("logits", logits);
            let suffix = if at.name == "init" { "" } else { "_step3" };
            let file = dir.join(format!("expected_forward{suffix}.npz"));
            assert!(check_all(&file, &out, 1e-4, 1e-4, 0.0) >= 2);
        }
        let (loss, grads) = loss_and_grads(params, &image, &labels);
        // `loss_init`, `loss_step3`; otherwise the training loss before the next step.
        let want = match &meta[format!("loss_{}", at.name)] {
            serde_json::Value::Null => {
                let k: usize = at.name.trim_start_matches("step").parse().unwrap();
                meta["steps"][k]["training_loss"].as_f64().unwrap()
            }
            v => v.as_f64().unwrap(),
        };
        assert!(
            (loss - want).abs() <= at.loss_atol,
            "{case}: loss {loss} at {}, want {want}",
            at.name
        );
        let file = dir.join(format!("grads_{}.npz", at.name));
        let n = check_all(&file, &grads, at.grads_atol.max(1e-6), 0.0, 0.0);
        assert!(n >= 2, "{case}: {n} gradients compared");
    }
}

#[test]
fn mixer() {
    let points = init_and_step3([7.8e-7, 4.44e-6], [1e-5, 1e-5]);
    check("mixer", "mixer", "mlp_mixer", 0, &points);
}

#[test]
fn bit_v1() {
    let points = init_and_step3([1.52e-6, 1.14e-4], [1e-5, 1.34e-4]);
    check("bit", "bit", "bit", 0, &points);
}

#[test]
fn bit_paper_v2() {
    let points = init_and_step3([2.87e-6, 1.91e-5], [4.51e-6, 1.15e-4]);
    check("bit", "bit_paper", "bit_paper", 1, &points);
}

/// Two units per stage: at `params_step1` the identity units' `relu(residual + y)` sees exact
/// zeros, where JAX's relu has derivative 0 (`relu'(0) = 1` would move `grads_step1` by
/// 6.0e-4, the README's `relu_grad_at_zero`).
#[test]
fn bit_v1_two_units_per_stage() {
    let [init, step3] = init_and_step3([1.52e-6, 5.14e-4], [1e-5, 1.42e-4]);
    let step1 = At {
        name: "step1",
        forward: false,
        grads_atol: 1.93e-6,
        loss_atol: 1e-5,
    };
    check("bit", "bit_units2", "bit", 0, &[init, step1, step3]);
}
