//! The scanned ViT (`scan=True`: blocks stacked under `Transformer/encoderblock`, run by
//! `scan` with remat) against independent references:
//!
//! * big_vision's goldens (`tests/golden/vit/{ti8_d2,mu8_map}`, written with `scan=False`):
//!   the golden checkpoint loaded into a scan model (converted on load as `vit.load` does)
//!   gives the golden logits, `out` values, loss and gradients (unstacked back), with the
//!   tolerances of `vit_forward` / `vit_grads`.
//! * `tests/data/vit_scan_flax.npz`, written by Flax 0.12.8 / JAX 0.10.2 (XLA:CPU, f32):
//!   `init` of a ViT mu/8, depth 2, learned posemb, gap, `head_zeroinit=False` whose encoder
//!   is big_vision's `nn.scan(nn.remat(Encoder1DBlock), variable_axes={"params": 0},
//!   split_rngs={"params": True, "dropout": True}, in_axes=nn.broadcast, length=depth)`
//!   (`params/<name>`, from `init_key` on zeros (2, 32, 32, 3)), and `apply(train=True)` of
//!   the same model with dropout 0.1 at those parameters on `image` with the `dropout_key`
//!   rng (`logits_dropout`). Init values are compared within 4 ulp (as `flax_init`), the
//!   dropout logits with `1e-5 + 1e-4 |want|`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use bv_core::autodiff::value_and_grad_aux;
use bv_core::io::{read_npz, HostArray};
use bv_core::random::Key;
use bv_core::{jit, Array, DType, Spec, Tensor};
use bv_nn::models::vit::{pyloop_to_scan, scan_to_pyloop};
use bv_nn::models::{build, ImageModel, Out};
use bv_nn::npz::{self, NpzError};
use bv_nn::{Params, Stream};
use common::{check, check_all, entry, forward, golden, loss, loss_and_grads, meta, ulps};
use serde_json::{json, Value};

/// `kwargs` with `extra` keys set.
fn with(kwargs: &Value, extra: Value) -> Value {
    let mut k = kwargs.clone();
    for (key, v) in extra.as_object().unwrap() {
        k[key] = v.clone();
    }
    k
}

fn init(model: &Arc<dyn ImageModel>, input: &[usize], key: Key) -> Params<HostArray> {
    let (m, spec) = (model.clone(), Spec::new(input, DType::F32));
    let f = jit(move |key: Tensor| m.init(&key, &spec));
    npz::to_host(&f.call(&key.to_array().unwrap()).unwrap()).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bv-nn-vit-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn to_device(p: &Params<HostArray>) -> Params<Array> {
    npz::to_device(p).unwrap()
}

/// The golden ti8 (scan=False) checkpoint.
fn golden_params() -> PathBuf {
    golden("vit", "ti8_d2").join("params_init.npz")
}

/// The golden `params_init.npz` loaded into a scan model of the fixture's config through
/// `npz::load` (the trainer's `model_init` path), which stacks the blocks.
fn scan_model_with_golden(case: &str) -> (Arc<dyn ImageModel>, Params<HostArray>, PathBuf) {
    let dir = golden("vit", case);
    let kwargs = with(&meta(&dir)["model_kwargs"], json!({"scan": true}));
    let model = build("vit", &kwargs).unwrap();
    let batch = entry(&dir.join("inputs.npz"), "image").shape().to_vec();
    let init = init(&model, &batch, Key::from_seed(1));
    let params = npz::load(model.as_ref(), &init, dir.join("params_init.npz"), &[]).unwrap();
    (model, params, dir)
}

fn golden_forward_loss_grads(case: &str) {
    let (model, params, dir) = scan_model_with_golden(case);
    assert!(params
        .names()
        .any(|n| n.starts_with("Transformer/encoderblock/")));
    assert!(!params
        .names()
        .any(|n| n.starts_with("Transformer/encoderblock_")));
    let inputs = dir.join("inputs.npz");
    let image = entry(&inputs, "image");

    let (logits, mut out) = forward(&model)(to_device(&params), &image);
    out.insert("logits", logits);
    let n = check_all(&dir.join("expected_forward.npz"), &out, 1e-5, 1e-4, 0.0);
    assert!(n > 10, "{case}: {n} forward values compared");

    let (l, grads) = loss_and_grads(&model, "softmax_xent")(
        to_device(&params),
        &image,
        &entry(&inputs, "labels_onehot"),
    );
    let want = meta(&dir)["loss_init_softmax_xent"].as_f64().unwrap();
    assert!((l - want).abs() <= 1e-5, "{case}: loss {l}, want {want}");
    let grads = scan_to_pyloop(npz::to_host(&grads).unwrap()).unwrap();
    let n = check_all(
        &dir.join("grads_init.npz"),
        &to_device(&grads),
        1e-5,
        0.0,
        1e-4,
    );
    assert_eq!(n, grads.len(), "{case}: every gradient compared");
}

#[test]
fn ti8_golden_forward_loss_grads() {
    golden_forward_loss_grads("ti8_d2");
}

#[test]
fn mu8_map_golden_forward_loss_grads() {
    golden_forward_loss_grads("mu8_map");
}

/// Loss and gradients with dropout on (so the recomputed blocks must redraw the same
/// masks) under `remat_policy` nothing_saveable and everything_saveable: the remat program
/// has the recomputation barrier, the other not, and the gradients are bitwise equal.
#[test]
fn remat_on_and_off_give_the_same_gradients() {
    let dir = golden("vit", "ti8_d2");
    let (_, params, _) = scan_model_with_golden("ti8_d2");
    let inputs = dir.join("inputs.npz");
    let (image, labels) = (entry(&inputs, "image"), entry(&inputs, "labels_onehot"));
    let run = |policy: &str| {
        let kwargs = with(
            &meta(&dir)["model_kwargs"],
            json!({"scan": true, "dropout": 0.1, "remat_policy": policy}),
        );
        let m = build("vit", &kwargs).unwrap();
        let f = jit(
            move |(p, x, y, k): (Params<Tensor>, Tensor, Tensor, Tensor)| {
                let rngs = [(Stream::DROPOUT, k)];
                let vg = value_and_grad_aux(|p: Params<Tensor>| {
                    let (logits, _): (Tensor, Out) = m.apply(&p, &x, true, &rngs);
                    (loss("softmax_xent", &logits, &y), ())
                });
                let ((l, ()), g) = vg(&p);
                (l, g)
            },
        );
        let key = Key::from_seed(3).to_array().unwrap();
        let args = (to_device(&params), image.clone(), labels.clone(), key);
        let specs = (
            params
                .iter()
                .map(|(k, v)| (k.to_string(), Spec::new(v.shape(), v.dtype())))
                .collect::<Params<Spec>>(),
            Spec::new(image.shape(), DType::F32),
            Spec::new(labels.shape(), DType::F32),
            Key::spec(),
        );
        let text = f.lower(&specs).unwrap().text;
        (
            f.call(&args).unwrap(),
            text.contains("optimization_barrier"),
        )
    };
    let ((l_on, g_on), barrier_on) = run("nothing_saveable");
    let ((l_off, g_off), barrier_off) = run("everything_saveable");
    assert!(barrier_on && !barrier_off, "remat shows in the program");
    assert_eq!(l_on.item::<f32>().unwrap(), l_off.item::<f32>().unwrap());
    for (name, a) in g_on.iter() {
        let a = a.to_vec::<f32>().unwrap();
        let b = g_off.get(name).unwrap().to_vec::<f32>().unwrap();
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name}"
        );
    }
}

fn flax_reference() -> Vec<(String, HostArray)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/vit_scan_flax.npz");
    read_npz(path).unwrap()
}

fn flax_entry(refs: &[(String, HostArray)], key: &str) -> HostArray {
    refs.iter().find(|(k, _)| k == key).unwrap().1.clone()
}

fn mu8_scan(extra: Value) -> Arc<dyn ImageModel> {
    let base = json!({"variant": "mu/8", "depth": 2, "num_classes": 10, "posemb": "learn",
                      "pool_type": "gap", "head_zeroinit": false, "scan": true});
    build("vit", &with(&base, extra)).unwrap()
}

/// Init of the scanned model gives Flax's `nn.scan` parameters: per layer `i` the keys
/// `fold_in(split(params_key, depth)[i], hash(path, counter))`, with the counters Flax's
/// two traces of the scan body leave; every parameter within 4 ulp, same names and shapes.
#[test]
fn init_matches_flax_nn_scan() {
    let refs = flax_reference();
    let key = flax_entry(&refs, "init_key").to_vec::<u32>().unwrap();
    let got = init(&mu8_scan(json!({})), &[2, 32, 32, 3], Key([key[0], key[1]]));
    let want: Vec<(&str, &HostArray)> = refs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("params/")?, v)))
        .collect();
    assert_eq!(got.len(), want.len(), "number of parameters");
    for (name, w) in want {
        let g = got
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` in our init"));
        assert_eq!(g.shape(), w.shape(), "shape of {name}");
        let (g, w) = (g.to_vec::<f32>().unwrap(), w.to_vec::<f32>().unwrap());
        let worst = g.iter().zip(&w).map(|(&a, &b)| ulps(a, b)).max().unwrap();
        eprintln!("{name}: max {worst} ulp");
        assert!(worst <= 4, "{name} differs by {worst} ulp");
    }
}

/// `apply(train=True)` with dropout draws each layer's masks from its split `dropout` key
/// as Flax does: the logits equal Flax's at the reference parameters.
#[test]
fn dropout_matches_flax_nn_scan() {
    let refs = flax_reference();
    let params: Params<Array> = refs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("params/")?.to_string(), common::device(v))))
        .collect();
    let m = mu8_scan(json!({"dropout": 0.1}));
    let f = jit(move |(p, x, k): (Params<Tensor>, Tensor, Tensor)| {
        m.apply(&p, &x, true, &[(Stream::DROPOUT, k)]).0
    });
    let image = common::device(&flax_entry(&refs, "image"));
    let key = common::device(&flax_entry(&refs, "dropout_key"));
    let logits = f.call(&(params, image, key)).unwrap();
    check(
        "logits_dropout",
        &logits,
        &flax_entry(&refs, "logits_dropout"),
        1e-5,
        1e-4,
    );
}

/// The scan model's parameters are big_vision's: the golden (scan=False) names with
/// `encoderblock_{i}` replaced by `encoderblock` and a leading `depth` axis on the shapes.
#[test]
fn stacked_names_and_shapes_are_big_vision_s() {
    let dir = golden("vit", "ti8_d2");
    let (model, _, _) = scan_model_with_golden("ti8_d2");
    let got = init(&model, &[8, 32, 32, 3], Key::from_seed(0));
    let mut want: Vec<(String, Vec<usize>)> = Vec::new();
    for (k, v) in read_npz(dir.join("params_init.npz")).unwrap() {
        match k.strip_prefix("Transformer/encoderblock_") {
            Some(rest) if rest.starts_with("0/") => {
                let mut shape = vec![2];
                shape.extend_from_slice(v.shape());
                want.push((format!("Transformer/encoderblock/{}", &rest[2..]), shape));
            }
            Some(_) => {}
            None => want.push((k, v.shape().to_vec())),
        }
    }
    let mut got: Vec<(String, Vec<usize>)> = got
        .iter()
        .map(|(k, v)| (k.to_string(), v.shape().to_vec()))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(got.contains(&(
        "Transformer/encoderblock/MlpBlock_0/Dense_0/kernel".to_string(),
        vec![2, 192, 768]
    )));
}

#[test]
fn pyloop_scan_round_trip_is_identity() {
    let pyloop = npz::read(golden_params()).unwrap();
    let scan = pyloop_to_scan(pyloop.clone()).unwrap();
    let stacked = scan
        .get("Transformer/encoderblock/MultiHeadDotProductAttention_0/query/kernel")
        .unwrap();
    assert_eq!(stacked.shape(), &[2, 192, 3, 64]);
    for i in 0..2 {
        let block = pyloop
            .get(&format!(
                "Transformer/encoderblock_{i}/MultiHeadDotProductAttention_0/query/kernel"
            ))
            .unwrap();
        let n = block.bytes().len();
        assert_eq!(
            &stacked.bytes()[i * n..(i + 1) * n],
            block.bytes(),
            "slice {i}"
        );
    }
    let back = scan_to_pyloop(scan).unwrap();
    let mut names: Vec<&str> = back.names().collect();
    let mut want: Vec<&str> = pyloop.names().collect();
    names.sort();
    want.sort();
    assert_eq!(names, want);
    for (k, v) in pyloop.iter() {
        let b = back.get(k).unwrap();
        assert_eq!(
            (b.shape(), b.dtype(), b.bytes()),
            (v.shape(), v.dtype(), v.bytes())
        );
    }
    let again = scan_to_pyloop(pyloop.clone()).unwrap();
    assert_eq!(
        again.len(),
        pyloop.len(),
        "a pyloop checkpoint stays as it is"
    );
}

/// The golden ti8 checkpoint with `edit` applied, written to a file.
fn edited(name: &str, edit: impl FnOnce(&mut Params<HostArray>)) -> PathBuf {
    let mut p = npz::read(golden_params()).unwrap();
    edit(&mut p);
    let path = tmp(name);
    npz::write(&path, &p).unwrap();
    path
}

/// Adds `encoderblock_2`, a copy of `encoderblock_1`.
fn third_block(p: &mut Params<HostArray>) {
    let copies: Vec<(String, HostArray)> = p
        .iter()
        .filter(|(k, _)| k.starts_with("Transformer/encoderblock_1/"))
        .map(|(k, v)| (k.replace("encoderblock_1", "encoderblock_2"), v.clone()))
        .collect();
    for (k, v) in copies {
        p.insert(k, v);
    }
}

#[test]
fn wrong_depth_or_block_shapes_are_clear_errors() {
    let (model, init, _) = scan_model_with_golden("ti8_d2");

    let path = edited("depth3.npz", third_block);
    let err = npz::load(model.as_ref(), &init, &path, &[]).unwrap_err();
    let NpzError::Shape {
        name,
        expected,
        found,
        ..
    } = &err
    else {
        panic!("{err}");
    };
    assert!(name.starts_with("Transformer/encoderblock/"), "{err}");
    assert_eq!((expected[0], found[0]), (2, 3), "{err}");
    assert!(err.to_string().contains(&format!("{found:?}")), "{err}");

    let bad = HostArray::from_slice(&[0f32; 5], &[5]).unwrap();
    let path = edited("bad_block.npz", |p| {
        p.insert("Transformer/encoderblock_1/MlpBlock_0/Dense_1/bias", bad)
    });
    let err = npz::load(model.as_ref(), &init, &path, &[]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, NpzError::Convert { .. }), "{msg}");
    for part in [
        "Transformer/encoderblock_1/MlpBlock_0/Dense_1/bias",
        "[5]",
        "[192]",
        "bad_block.npz",
    ] {
        assert!(msg.contains(part), "{part} not in: {msg}");
    }

    let path = edited("gap.npz", |p| {
        third_block(p);
        let kept: Params<HostArray> = std::mem::take(p)
            .into_iter()
            .filter(|(k, _)| !k.starts_with("Transformer/encoderblock_1/"))
            .collect();
        *p = kept;
    });
    let msg = npz::load(model.as_ref(), &init, &path, &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("Transformer/encoderblock_2") && msg.contains("Transformer/encoderblock_1"),
        "{msg}"
    );

    let mut ragged = pyloop_to_scan(npz::read(golden_params()).unwrap()).unwrap();
    ragged.insert(
        "Transformer/encoderblock/LayerNorm_0/bias",
        HostArray::from_slice(&[0f32; 3 * 192], &[3, 192]).unwrap(),
    );
    let msg = scan_to_pyloop(ragged).unwrap_err();
    assert!(
        msg.contains("Transformer/encoderblock/LayerNorm_0/bias") && msg.contains("[3, 192]"),
        "{msg}"
    );
}

/// A scan checkpoint loads into a scan=False model with the golden values; one of depth 3
/// into that depth-2 model names its third block as unexpected.
#[test]
fn scan_checkpoint_into_pyloop_model() {
    let dir = golden("vit", "ti8_d2");
    let model = build("vit", &meta(&dir)["model_kwargs"]).unwrap();
    let init = init(&model, &[8, 32, 32, 3], Key::from_seed(0));
    let mut p = npz::read(golden_params()).unwrap();
    let path = tmp("scan2.npz");
    npz::write(&path, &pyloop_to_scan(p.clone()).unwrap()).unwrap();
    let loaded = npz::load(model.as_ref(), &init, &path, &[]).unwrap();
    for (k, v) in npz::read(golden_params()).unwrap().iter() {
        assert_eq!(loaded.get(k).unwrap().bytes(), v.bytes(), "{k}");
    }
    third_block(&mut p);
    npz::write(&path, &pyloop_to_scan(p).unwrap()).unwrap();
    let msg = npz::load(model.as_ref(), &init, &path, &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("+ Transformer/encoderblock_2/LayerNorm_0/bias"),
        "{msg}"
    );
}

/// Stacked parameters of the wrong depth handed to `apply` directly: the jit error names
/// the parameter and its shape.
#[test]
fn apply_with_wrong_depth_names_the_parameter() {
    let (model, mut params, dir) = scan_model_with_golden("mu8_map");
    let name = "Transformer/encoderblock/LayerNorm_1/scale";
    params.insert(name, HostArray::from_slice(&[1f32; 64], &[2, 32]).unwrap());
    let m = model.clone();
    let f = jit(move |(p, x): (Params<Tensor>, Tensor)| m.apply(&p, &x, false, &[]).0);
    let image = entry(&dir.join("inputs.npz"), "image");
    let err = f
        .call(&(to_device(&params), image))
        .unwrap_err()
        .to_string();
    eprintln!("{err}");
    assert!(err.contains(name) && err.contains("2,32"), "{err}");
}

#[test]
fn scan_and_remat_config_keys() {
    let base = json!({"variant": "mu/8", "num_classes": 10});
    for (extra, bad_key) in [
        (json!({"scan": true}), None),
        (
            json!({"scan": true, "remat_policy": "everything_saveable"}),
            None,
        ),
        (json!({"scan": "yes"}), Some("model.scan")),
        (
            json!({"scan": true, "remat_policy": "dots_saveable"}),
            Some("model.remat_policy"),
        ),
    ] {
        match (build("vit", &with(&base, extra.clone())), bad_key) {
            (Ok(_), None) => {}
            (Err(e), Some(key)) => assert!(e.to_string().contains(key), "{e}"),
            (r, _) => panic!("{extra}: {:?}", r.map(|_| ())),
        }
    }
}
