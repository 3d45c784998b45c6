//! The two-tower (SigLIP) model against big_vision: `init` from the trainer's seed
//! reproduces `params_init.npz` (within 4 ulp, as the Flax init fixtures), and `apply` at
//! those parameters gives `zimg`, `ztxt` and every `out/*` within atol 1e-5 (the README's
//! forward tolerance). `tests/golden/siglip/siglip_s` is the SigLIP fixture;
//! `tests/golden/siglip_options/*` cover the other text pools (first, gap, max, map),
//! scanned text blocks, image pools tok/gap/map and `out_dim` pairs without a head.

mod common;

use std::path::{Path, PathBuf};

use bv_core::io::read_npz;
use bv_core::random::Key;
use bv_core::{jit, Array, DType, Spec, Tensor};
use bv_nn::models::proj::image_text::two_towers::TwoTowers;
use bv_nn::Params;
use common::{check, entry, golden, meta, ulps};

/// `init_both` from `split(PRNGKey(seed))[1]` against `params_init.npz`.
fn check_init(dir: &Path, model: TwoTowers, seed: i64) {
    let inputs = read_npz(dir.join("inputs.npz")).unwrap();
    let shape = |k: &str| {
        inputs
            .iter()
            .find(|(n, _)| n == k)
            .unwrap()
            .1
            .shape()
            .to_vec()
    };
    let (image, text) = (
        Spec::new(shape("image"), DType::F32),
        Spec::new(shape("text"), DType::I32),
    );
    let f = jit(move |key: Tensor| model.init_both(&key, &image, &text));
    let (_, rng_init) = Key::from_seed(seed).split2();
    let params: Params<Array> = f.call(&rng_init.to_array().unwrap()).unwrap();
    let want = read_npz(dir.join("params_init.npz")).unwrap();
    assert_eq!(
        params.len(),
        want.len(),
        "{}: number of parameters",
        dir.display()
    );
    for (name, w) in &want {
        let got = params
            .get(name)
            .unwrap_or_else(|| panic!("we have no `{name}`"));
        assert_eq!(got.shape(), w.shape(), "shape of {name}");
        let (g, w) = (got.to_vec::<f32>().unwrap(), w.to_vec::<f32>().unwrap());
        let worst = g
            .iter()
            .zip(&w)
            .map(|(&a, &b)| ulps(a, b))
            .max()
            .unwrap_or(0);
        assert!(
            worst <= 4,
            "{}: {name} differs by {worst} ulp",
            dir.display()
        );
    }
}

/// `apply_both` at `params_init` against `expected_forward.npz` (its `loss`, if any, is the
/// trainer's and is checked in bv-train).
fn check_forward(dir: &Path, model: TwoTowers) {
    let params = common::load(&dir.join("params_init.npz"));
    let inputs = dir.join("inputs.npz");
    let f = jit(move |(p, x, t): (Params<Tensor>, Tensor, Tensor)| {
        let (zimg, ztxt, out) = model.apply_both(&p, Some(&x), Some(&t), false, &[]);
        (zimg.unwrap(), ztxt.unwrap(), out)
    });
    let (zimg, ztxt, out) = f
        .call(&(params, entry(&inputs, "image"), entry(&inputs, "text")))
        .unwrap();
    let mut compared = 0;
    for (key, want) in read_npz(dir.join("expected_forward.npz")).unwrap() {
        let got = match key.as_str() {
            "zimg" => &zimg,
            "ztxt" => &ztxt,
            "loss" => continue,
            k => {
                let short = k.strip_prefix("out/").unwrap_or(k);
                compared += 1;
                out.get(short)
                    .unwrap_or_else(|| panic!("we have no out `{short}`"))
            }
        };
        check(&key, got, &want, 1e-5, 0.0);
    }
    assert_eq!(
        compared,
        out.len(),
        "every out/* entry compared, and only those"
    );
}

fn siglip_s() -> (PathBuf, TwoTowers) {
    let dir = golden("siglip", "siglip_s");
    let kw = &meta(&dir)["model_kwargs (big_vision.models.proj.image_text.two_towers.Model)"];
    let model = TwoTowers::from_config(kw).unwrap();
    (dir, model)
}

fn option(case: &str) -> (PathBuf, TwoTowers, i64) {
    let dir = golden("siglip_options", case);
    let meta = meta(&dir);
    let model = TwoTowers::from_config(&meta["model_kwargs"]).unwrap();
    (dir, model, meta["seed"].as_i64().unwrap())
}

#[test]
fn siglip_s_init_from_the_trainer_seed() {
    let (dir, m) = siglip_s();
    check_init(&dir, m, 3);
}

#[test]
fn siglip_s_forward_embeddings_and_every_out() {
    let (dir, m) = siglip_s();
    check_forward(&dir, m);
}

#[test]
fn text_pools_scan_and_heads() {
    for case in ["first_tok_nohead", "gap_scan", "max_notxthead", "map"] {
        let (dir, m, seed) = option(case);
        check_init(&dir, m.clone(), seed);
        check_forward(&dir, m);
    }
}
