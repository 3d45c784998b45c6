//! A ViT training step on 8 CPU devices, with FSDP-split parameters and with replicated
//! (data-parallel) parameters, against the same step on one device: equal losses and
//! parameters, and the parameters really split (per-device buffer shapes).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bv_core::autodiff::value_and_grad;
use bv_core::numpy::{self as np, Axes};
use bv_core::pjrt::Client;
use bv_core::random::Key;

use bv_core::sharding::Mesh;
use bv_core::tree::Params;
use bv_core::{jit, set_default_client, Array, DType, Spec, Tensor};
use bv_nn::models::{build, ImageModel};
use bv_train::optim::{apply_updates, make, OptimSpec, Optimizer, ScheduleGroups, State};
use bv_train::train::{batch_sharding, layout_rule, out_specs, update_rule};
use serde_json::json;

const BATCH: usize = 16;
/// 0.03 MiB: the 64×256 MLP kernels (64 KiB) are split, everything smaller is replicated.
const FSDP: &str = "fsdp(axis='data', min_size_to_shard_mb=0.03)";

fn mesh() -> Mesh {
    static MESH: OnceLock<Mesh> = OnceLock::new();
    MESH.get_or_init(|| {
        let client = Client::cpu_with_devices(8).unwrap();
        let ids: Vec<i64> = client.devices().iter().map(|d| i64::from(d.id())).collect();
        set_default_client(client);
        Mesh::new(&[("data", 8)], &ids).unwrap()
    })
    .clone()
}

fn model() -> Arc<dyn ImageModel> {
    build(
        "vit",
        &json!({"patch_size": [4, 4], "width": 64, "depth": 2, "mlp_dim": 256, "num_heads": 4,
                "num_classes": 10, "pool_type": "gap"}),
    )
    .unwrap()
}

/// A batch of images and one-hot labels.
fn inputs() -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..BATCH * 28 * 28)
        .map(|i| ((i * 7919 % 255) as f32 / 127.5) - 1.0)
        .collect();
    let mut y = vec![0f32; BATCH * 10];
    for b in 0..BATCH {
        y[b * 10 + (b * 3) % 10] = 1.0;
    }
    (x, y)
}

type Arrays = BTreeMap<String, Array>;

/// Runs init and two momentum steps; `strategy` None means one device. (Momentum, not Adam:
/// Adam divides by the root of tiny second moments, so summation-order noise in near-zero
/// gradients becomes ±lr in the parameters; momentum's update is linear in the gradient.)
fn train(strategy: Option<&'static str>) -> (Vec<f32>, Arrays, Arrays) {
    let mesh = mesh();
    let m = model();
    let spec = Spec::new([BATCH, 28, 28, 1], DType::F32);
    let mi = m.clone();
    let init = jit(move |key: Tensor| mi.init(&key, &spec).sorted());
    let names: Vec<String> = out_specs::<Params<Spec>>(&init.lower(&Key::spec()).unwrap())
        .unwrap()
        .names()
        .map(str::to_string)
        .collect();
    let spec: OptimSpec = serde_json::from_value(json!({"optax_name": "big_vision.momentum_hp", "lr": 0.1, "wd": 0.001, "grad_clip_norm": 1.0})).unwrap();
    let groups = ScheduleGroups::new(None, 10, None, None).unwrap();
    let tx = Arc::new(make(&spec, &groups, &names).unwrap());
    let t = tx.clone();
    let opt_init = jit(move |p: Params| t.init(&p));
    let t = tx.clone();
    let step = jit(move |((p, s), x, y): ((Params, State), Tensor, Tensor)| {
        let loss = |p: Params| {
            let (logits, _) = m.apply(&p, &x, true, &[]);
            np::mean(
                &-np::sum(&(np::log_softmax(&logits, -1) * &y), -1, false),
                Axes::All,
                false,
            )
        };
        let (l, g) = value_and_grad(loss)(&p);
        let (u, s) = t.update(&g, s, &p);
        ((apply_updates(&p, &u), s), l)
    })
    .donate_argnums(&[0]);
    let (x, y) = inputs();
    let key = Key::from_seed(0).to_array().unwrap();
    let (init, opt_init, step, xa, ya) = match strategy {
        None => (
            init,
            opt_init,
            step,
            Array::from_slice(&x, &[BATCH, 28, 28, 1]).unwrap(),
            Array::from_slice(&y, &[BATCH, 10]).unwrap(),
        ),
        Some(s) => {
            let batch = |rank| batch_sharding(&mesh, "data", rank).unwrap();
            let strategy = [(".*".to_string(), s.to_string())];
            (
                init.sharded(mesh.clone(), layout_rule(&strategy, &mesh, "params")),
                opt_init.sharded(mesh.clone(), layout_rule(&strategy, &mesh, "opt")),
                step.sharded(mesh.clone(), update_rule(&strategy, &mesh)),
                Array::from_slice_sharded(&x, &[BATCH, 28, 28, 1], &batch(4)).unwrap(),
                Array::from_slice_sharded(&y, &[BATCH, 10], &batch(2)).unwrap(),
            )
        }
    };
    let params = init.call(&key).unwrap();
    let opt = opt_init.call(&params).unwrap();
    let mut state = (params, opt);
    let mut losses = Vec::new();
    for _ in 0..2 {
        let (s, l) = step.call(&(state, xa.clone(), ya.clone())).unwrap();
        losses.push(l.item::<f32>().unwrap());
        state = s;
    }
    assert_eq!(step.stats().compiles, 1);
    (losses, state.0.into_iter().collect(), state.1)
}

fn f32s(a: &Array) -> Vec<f32> {
    match a.dtype() {
        DType::BF16 => a
            .to_vec::<half::bf16>()
            .unwrap()
            .iter()
            .map(|v| v.to_f32())
            .collect(),
        DType::I32 => a
            .to_vec::<i32>()
            .unwrap()
            .iter()
            .map(|v| *v as f32)
            .collect(),
        _ => a.to_vec::<f32>().unwrap(),
    }
}

fn assert_close(a: &Arrays, b: &Arrays, what: &str) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, x) in a {
        // bfloat16 state (momentum_hp's trace) may round to a neighbouring value: 2^-7.
        let rtol = if x.dtype() == DType::BF16 {
            1.0 / 128.0
        } else {
            1e-5
        };
        let (x, y) = (f32s(x), f32s(&b[name]));
        for (i, (p, q)) in x.iter().zip(&y).enumerate() {
            assert!(
                (p - q).abs() <= 2e-6 + rtol * q.abs(),
                "{what} {name}[{i}]: {p} vs {q}"
            );
        }
    }
}

#[test]
fn fsdp_step_on_8_devices_equals_one_device() {
    let (l1, p1, o1) = train(None);
    let (l8, p8, o8) = train(Some(FSDP));
    for (a, b) in l8.iter().zip(&l1) {
        assert!((a - b).abs() < 1e-5, "loss {a} vs {b}");
    }
    assert_close(&p8, &p1, "params");
    assert_close(&o8, &o1, "opt");
    let mlp = "Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel";
    assert_eq!(p8[mlp].shape(), &[64, 256]);
    assert_eq!(
        p8[mlp].shard_shapes().unwrap(),
        vec![vec![64, 32]; 8],
        "split on its largest dimension"
    );
    assert_eq!(
        o8[&format!("momentum/trace/{mlp}")].shard_shapes().unwrap(),
        vec![vec![64, 32]; 8],
        "optimizer state split alike"
    );
    let small = "Transformer/encoderblock_0/LayerNorm_0/scale";
    assert_eq!(
        p8[small].shard_shapes().unwrap(),
        vec![vec![64]; 8],
        "small parameters are replicated"
    );
    let split = p8
        .values()
        .filter(|a| a.shard_shapes().unwrap()[0] != a.shape())
        .count();
    assert!(
        split >= 4,
        "the MLP and qkv/out kernels of both blocks are split ({split})"
    );
}

#[test]
fn data_parallel_step_on_8_devices_equals_one_device() {
    let (l1, p1, _) = train(None);
    let (l8, p8, _) = train(Some("replicate()"));
    for (a, b) in l8.iter().zip(&l1) {
        assert!((a - b).abs() < 1e-5, "loss {a} vs {b}");
    }
    assert_close(&p8, &p1, "params");
    assert!(p8
        .values()
        .all(|a| a.shard_shapes().unwrap().iter().all(|s| s == a.shape())));
}
