//! FlexiViT against big_vision's `models/proj/flexi/vit.py` (`tests/golden/flexi/`, made by
//! `make_flexi.py`): the PI-resize of patch-embedding kernels (`resample_patchemb`, ten
//! size pairs up and down), the posemb resize (`jax.image.resize(..., "linear")`), and
//! the model's forward pass and gradients at four token grids (kernel resized up, down
//! and not at all; posemb resized up, down and not at all). Tolerances as the ViT
//! fixtures': outputs atol 1e-5 + 1e-5 × max |value|, gradients 1e-5 + 1e-4 × max.

mod common;

use bv_core::io::read_npz;

use bv_core::{jit, Tensor};
use bv_nn::models::proj::flexi::resample::{
    resample_patchemb, resample_patchemb_host, resize_posemb,
};
use bv_nn::models::proj::flexi::vit::FlexiVit;
use bv_nn::models::{build, ImageModel};
use common::{check, check_all, device, entry, golden, load, loss_and_grads, meta};
use std::sync::Arc;

fn dir() -> std::path::PathBuf {
    golden("flexi", "")
}

/// Every array of an npz file by name.
fn npz(path: &std::path::Path) -> std::collections::BTreeMap<String, bv_core::io::HostArray> {
    read_npz(path).unwrap().into_iter().collect()
}

fn max_abs(a: &bv_core::io::HostArray) -> f64 {
    a.to_f64().iter().fold(0.0, |m, v| m.max(v.abs()))
}

#[test]
fn resample_patchemb_matches_big_vision() {
    let meta = meta(&dir());
    let file = npz(&dir().join("resample.npz"));
    for (i, case) in meta["resample_cases"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let new = (
            case[1][0].as_u64().unwrap() as usize,
            case[1][1].as_u64().unwrap() as usize,
        );
        let (old, want) = (&file[&format!("{i}/old")], &file[&format!("{i}/new")]);
        let (from, to) = (old.shape()[0], new.0);
        let (from_w, to_w) = (old.shape()[1], new.1);
        if (to < from) != (to_w < from_w) {
            // One axis shrinks, the other grows: the resize matrix has rank
            // min(h)·min(w), below both sides, and big_vision's pinv inverts float32
            // rounding noise in its null space (values of order 1e5 from kernels of order
            // 1). Ours is the exact pseudo-inverse there; nothing to match.
            assert!(
                max_abs(want) > 1e3,
                "{case}: big_vision's result is not the noise seen when written"
            );
            continue;
        }
        let f = jit(move |k: Tensor| resample_patchemb(&k, new).unwrap());
        let got = f.call(&device(old)).unwrap();
        let tol = 1e-5 + 1e-5 * max_abs(want);
        check(&format!("resample {case}"), &got, want, tol, 0.0);
        let host = resample_patchemb_host(old, new).unwrap();
        check(
            &format!("host resample {case}"),
            &device(&host),
            want,
            tol,
            0.0,
        );
    }
}

#[test]
fn posemb_resize_matches_jax_image_resize() {
    let meta = meta(&dir());
    let file = npz(&dir().join("resample.npz"));
    let old = device(&file["posemb/old"]);
    for case in meta["posemb_cases"].as_array().unwrap() {
        let to = (
            case[0].as_u64().unwrap() as usize,
            case[1].as_u64().unwrap() as usize,
        );
        let f = jit(move |pe: Tensor| {
            let pe = bv_core::prim::reshape(&pe, &[1, 49, 5]);
            let y = resize_posemb(&pe, (7, 7), to);
            bv_core::prim::reshape(&y, &[1, to.0, to.1, 5])
        });
        let want = &file[&format!("posemb/{}x{}", to.0, to.1)];
        check(
            &format!("posemb {to:?}"),
            &f.call(&old).unwrap(),
            want,
            1e-6,
            0.0,
        );
    }
}

/// The fixture's model kwargs (`meta.json` `model` without `module`).
fn model_kw() -> serde_json::Value {
    let mut kw = meta(&dir())["model"].clone();
    kw.as_object_mut().unwrap().remove("module");
    kw
}

#[test]
fn forward_and_grads_at_four_grids() {
    let base = FlexiVit::from_config(&model_kw()).unwrap();
    let inputs = dir().join("inputs.npz");
    let (x, y) = (entry(&inputs, "image"), entry(&inputs, "labels_onehot"));
    for s in [2usize, 3, 4, 6] {
        let m: Arc<dyn ImageModel> = Arc::new(base.at_seqhw(s));
        let params = load(&dir().join("params_init.npz"));
        let (logits, out) = common::forward(&m)(params.clone(), &x);
        let mut got = out;
        got.insert("logits", logits);
        let file = dir().join(format!("forward_seqhw{s}.npz"));
        assert_eq!(check_all(&file, &got, 1e-5, 0.0, 1e-5), 6);
        let (loss, grads) = loss_and_grads(&m, "softmax_xent")(params, &x, &y);
        let gfile = dir().join(format!("grads_seqhw{s}.npz"));
        let want = npz(&gfile)["loss"].to_f64()[0];
        assert!(
            (loss - want).abs() <= 1e-5,
            "seqhw {s}: loss {loss}, want {want}"
        );
        let mut got = grads;
        got.insert("loss", device(&npz(&gfile)["loss"]));
        let n = check_all(&gfile, &got, 1e-5, 0.0, 1e-4);
        assert_eq!(n, got.len(), "seqhw {s}: every gradient compared");
    }
}

#[test]
fn a_grid_that_does_not_divide_the_image_is_an_error() {
    let m = build("proj.flexi.vit", &model_kw()).unwrap();
    let err = FlexiVit::from_config(&serde_json::json!({"patch_size": [6, 6]}))
        .unwrap()
        .at_seqhw(5)
        .call_patch_size((24, 24))
        .unwrap_err();
    assert!(err.contains("seqhw=5") && err.contains("24x24"), "{err}");
    assert_eq!(m.model_name(), "proj.flexi.vit");
}
