//! MLP-Mixer and BiT (v1 `bit`, v2 `bit_paper`) against big_vision (`tests/golden/mixer`,
//! `tests/golden/bit`): forward at `params_init` and `params_step3` (logits and `out/*`),
//! the loss and the gradients at both. Models come from the registry with each fixture's
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

/// One fixture: `grads_atol` for `grads_init` and `grads_step3`.
fn check(
    set: &str,
    case: &str,
    model_name: &str,
    seed: i64,
    grads_atol: [f64; 2],
    loss_atol: [f64; 2],
) {
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
    let steps = [
        ("init", "", grads_atol[0], loss_atol[0]),
        ("step3", "_step3", grads_atol[1], loss_atol[1]),
    ];
    let (forward, loss_and_grads) = (forward(&model), loss_and_grads(&model, loss_name));
    for (params_name, suffix, g_atol, l_atol) in steps {
        let params = load(&dir.join(format!("params_{params_name}.npz")));
        let (logits, mut out) = forward(params.clone(), &image);
        out.insert("logits", logits);
        let file = dir.join(format!("expected_forward{suffix}.npz"));
        assert!(check_all(&file, &out, 1e-4, 1e-4, 0.0) >= 2);

        let (loss, grads) = loss_and_grads(params, &image, &labels);
        let want = meta[format!("loss_{params_name}")].as_f64().unwrap();
        assert!(
            (loss - want).abs() <= l_atol,
            "{case}: loss {loss} at {params_name}, want {want}"
        );
        let file = dir.join(format!("grads_{params_name}.npz"));
        let n = check_all(&file, &grads, g_atol.max(1e-6), 0.0, 0.0);
        assert!(n >= 2, "{case}: {n} gradients compared");
    }
}

#[test]
fn mixer() {
    check(
        "mixer",
        "mixer",
        "mlp_mixer",
        0,
        [7.8e-7, 4.44e-6],
        [1e-5, 1e-5],
    );
}

#[test]
fn bit_v1() {
    check("bit", "bit", "bit", 0, [1.52e-6, 1.14e-4], [1e-5, 1.34e-4]);
}

#[test]
fn bit_paper_v2() {
    check(
        "bit",
        "bit_paper",
        "bit_paper",
        1,
        [2.87e-6, 1.91e-5],
        [4.51e-6, 1.15e-4],
    );
}
