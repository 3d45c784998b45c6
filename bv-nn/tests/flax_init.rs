//! `init` against Flax's `model.init` (`tests/golden/flax_init/`, Flax 0.12.8, JAX 0.10.2):
//! parameter names in creation order, shapes, per-parameter keys (exact: path hash and
//! `fold_in` on the host) and values (within 4 ulp, the README's tolerance; most are exact).

mod common;

use std::path::{Path, PathBuf};

use bv_core::io::read_npz;
use bv_core::random::Key;
use bv_core::{jit, numpy as np, Tensor};
use bv_nn::layers::{Conv, Dense};
use bv_nn::models::vit::{Pool, Posemb, Vit};
use bv_nn::scope::path_hash;
use bv_nn::{Module, Params, Scope};
use common::ulps;
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/flax_init")
        .join(name)
}

/// The test module of the golden set: `Dense(f)` for each `f`, relu in between.
struct Mlp {
    features: Vec<usize>,
}

impl Module for Mlp {
    const NAME: &'static str = "MLP";
    type In = Tensor;
    type Out = Tensor;
    fn apply(&self, s: &mut Scope, mut x: Tensor) -> Tensor {
        for (i, &f) in self.features.iter().enumerate() {
            if i > 0 {
                x = np::relu(&x);
            }
            x = s.call(&Dense::new(f), x);
        }
        x
    }
}

fn check<M>(name: &str, model: M, input_shape: &[usize])
where
    M: Module<In = Tensor> + Send + Sync + 'static,
{
    let keys: Value =
        serde_json::from_slice(&std::fs::read(dir(name).join("param_keys.json")).unwrap()).unwrap();
    let root = &keys["root_key"];
    let root = Key([
        root[0].as_u64().unwrap() as u32,
        root[1].as_u64().unwrap() as u32,
    ]);
    let records = keys["params"].as_array().unwrap();

    for r in records {
        let path: Vec<String> = r["scope_path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        let counter = r["counter"].as_u64().unwrap() as u32;
        let h = path_hash(&path, counter);
        assert_eq!(
            h as u64,
            r["hash_uint32"].as_u64().unwrap(),
            "{name}: hash of {}",
            r["name"]
        );
        let k = root.fold_in(h);
        let want: Vec<u32> = r["key"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(k.0.to_vec(), want, "{name}: key of {}", r["name"]);
    }

    let f = jit(move |(key, x): (Tensor, Tensor)| bv_nn::init(&model, &key, x).1);
    let params: Params<bv_core::Array> = f
        .call(&(
            root.to_array().unwrap(),
            bv_core::Array::from_slice(&vec![0f32; input_shape.iter().product()], input_shape)
                .unwrap(),
        ))
        .unwrap();
    let golden = read_npz(dir(name).join("params.npz")).unwrap();

    let names: Vec<&str> = params.names().collect();
    let want_names: Vec<&str> = records
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, want_names, "{name}: names in creation order");
    for (pname, want) in &golden {
        let got = params
            .get(pname)
            .unwrap_or_else(|| panic!("{name}: missing {pname}"));
        assert_eq!(got.shape(), want.shape(), "{name}: shape of {pname}");
        let got = got.to_vec::<f32>().unwrap();
        let want = want.to_vec::<f32>().unwrap();
        let worst = got
            .iter()
            .zip(&want)
            .map(|(&g, &w)| ulps(g, w))
            .max()
            .unwrap_or(0);
        let exact = got.iter().zip(&want).filter(|(g, w)| g == w).count();
        eprintln!(
            "{name}: {pname}: max {worst} ulp, {exact}/{} exact",
            want.len()
        );
        assert!(worst <= 4, "{name}: {pname} differs by {worst} ulp");
    }
}

#[test]
fn dense_root() {
    check("dense_root", Dense::new(4), &[1, 6]);
}

#[test]
fn mlp() {
    check(
        "mlp",
        Mlp {
            features: vec![8, 3],
        },
        &[2, 5],
    );
}

#[test]
fn conv() {
    check("conv", Conv::new(6, &[3, 3]), &[1, 8, 8, 4]);
}

#[test]
fn vit_mu8() {
    let vit = Vit {
        depth: 2,
        posemb: Posemb::Learn,
        pool: Pool::Gap,
        ..Vit::from_variant("mu/8", Some(10)).unwrap()
    };
    check("vit", VitInit(vit), &[2, 32, 32, 3]);
}

/// The ViT with only its logits as output (init needs no `out` dict).
struct VitInit(Vit);

impl Module for VitInit {
    const NAME: &'static str = "_Model";
    type In = Tensor;
    type Out = Tensor;
    fn apply(&self, s: &mut Scope, x: Tensor) -> Tensor {
        self.0.apply(s, (x, false)).0
    }
}
