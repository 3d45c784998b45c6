//! A SigLIP training step (the trainer's own `init` and `update`) on 8 CPU devices, data
//! parallel (parameters replicated) and FSDP (large parameters split), against the same
//! step on one device: equal measurements and parameters after two steps. The sigmoid
//! loss sees the whole global batch, so the text embeddings cross devices.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bv_core::pjrt::Client;
use bv_core::random::Key;

use bv_core::sharding::Mesh;
use bv_core::tree::Params;
use bv_core::{jit, set_default_client, Array, Spec, Tensor};
use bv_train::config::{Config, Plan};
use bv_train::data::{Batch, Example};
use bv_train::optim::{make_for_config, Optimizer};
use bv_train::train::{batch_sharding, layout_rule, out_specs, update_fn, update_rule};
use bv_train::trainers::siglip::Siglip;
use bv_train::trainers::Trainer;

const BATCH: usize = 16;
const FSDP: &str = "fsdp(axis='data', min_size_to_shard_mb=0.01)";

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

fn config() -> Config {
    let ron = r#"(
        trainer: "proj.image_text.siglip", total_steps: 10,
        input: (data: (name: "none", split: "train"), batch_size: 16, pp: ""),
        init_shapes: [[16, 16, 16, 3], [16, 6]],
        model_name: "proj.image_text.two_towers",
        model: {"image": {"variant": "mu/4", "pool_type": "map", "head_zeroinit": false},
                "text": {"width": 32, "depth": 1, "num_heads": 2, "mlp_dim": 64, "vocab_size": 20},
                "out_dim": 16, "temperature_init": 10.0, "bias_init": -10.0},
        optax_name: "big_vision.momentum_hp", lr: 0.1, wd: 0.001, grad_clip_norm: 1.0,
    )"#;
    Config::from_str(ron, "siglip_sharding.ron", &[]).unwrap()
}

type Arrays = BTreeMap<String, Array>;

/// Init and two steps; `strategy` None means one device.
fn train(strategy: Option<&'static str>) -> (Vec<BTreeMap<String, f32>>, Arrays) {
    let mesh = mesh();
    let config = config();
    let probe = Batch {
        data: Example::new(),
        position: None,
    };
    let trainer = Arc::new(Siglip::new(&config, &probe).unwrap());
    let tr = trainer.clone();
    let init = jit(move |key: Tensor| tr.init(&key));
    let names: Vec<String> = out_specs::<Params<Spec>>(&init.lower(&Key::spec()).unwrap())
        .unwrap()
        .names()
        .map(str::to_string)
        .collect();
    let plan = Plan::new(&config, 160).unwrap();
    let tx = Arc::new(make_for_config(&config, &plan, &names).unwrap());
    let t = tx.clone();
    let opt_init = jit(move |p: Params| t.init(&p));
    let step = update_fn(trainer.clone(), tx.clone(), Vec::new(), 0).donate_argnums(&[0]);
    let x: Vec<f32> = (0..BATCH * 16 * 16 * 3)
        .map(|i| ((i * 7919 % 255) as f32 / 127.5) - 1.0)
        .collect();
    let y: Vec<i32> = (0..BATCH * 6)
        .map(|i| ((i * 13 + i / 6) % 18 + 2) as i32)
        .collect();
    let (init, opt_init, step, xa, ya) = match strategy {
        None => (
            init,
            opt_init,
            step,
            Array::from_slice(&x, &[BATCH, 16, 16, 3]).unwrap(),
            Array::from_slice(&y, &[BATCH, 6]).unwrap(),
        ),
        Some(s) => {
            let batch = |rank| batch_sharding(&mesh, "data", rank).unwrap();
            let strategy = [(".*".to_string(), s.to_string())];
            (
                init.sharded(mesh.clone(), layout_rule(&strategy, &mesh, "params")),
                opt_init.sharded(mesh.clone(), layout_rule(&strategy, &mesh, "opt")),
                step.sharded(mesh.clone(), update_rule(&strategy, &mesh)),
                Array::from_slice_sharded(&x, &[BATCH, 16, 16, 3], &batch(4)).unwrap(),
                Array::from_slice_sharded(&y, &[BATCH, 6], &batch(2)).unwrap(),
            )
        }
    };
    let params = init.call(&Key::from_seed(0).to_array().unwrap()).unwrap();
    let opt = opt_init.call(&params).unwrap();
    let mut state = (params, opt);
    let mut measured = Vec::new();
    let rng = Key::from_seed(1).to_array().unwrap();
    for k in 0..2u32 {
        let (s, m) = step
            .call(&(
                state,
                (
                    rng.clone(),
                    Array::scalar(k).unwrap(),
                    xa.clone(),
                    ya.clone(),
                ),
                (Params::new(), Params::new()),
            ))
            .unwrap();
        measured.push(
            m.iter()
                .map(|(n, a)| (n.clone(), a.item::<f32>().unwrap()))
                .collect(),
        );
        state = s;
    }
    assert_eq!(step.stats().compiles, 1);
    (measured, state.0.into_iter().collect())
}

fn check(strategy: &'static str) {
    let (m1, p1) = train(None);
    let (m8, p8) = train(Some(strategy));
    for (a, b) in m8.iter().zip(&m1) {
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (name, x) in a {
            assert!(
                (x - b[name]).abs() <= 1e-5 * (1.0 + b[name].abs()),
                "{strategy} {name}: {x} vs {}",
                b[name]
            );
        }
    }
    for (name, x) in &p8 {
        let (x, y) = (
            x.to_vec::<f32>().unwrap(),
            p1[name].to_vec::<f32>().unwrap(),
        );
        for (i, (p, q)) in x.iter().zip(&y).enumerate() {
            assert!(
                (p - q).abs() <= 2e-6 + 1e-5 * q.abs(),
                "{strategy} {name}[{i}]: {p} vs {q}"
            );
        }
    }
    if strategy == FSDP {
        let k = "img/Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel";
        assert_eq!(
            p8[k].shard_shapes().unwrap(),
            vec![vec![32, 16]; 8],
            "{k} split over 8 devices"
        );
    }
}

#[test]
fn data_parallel_step_on_8_devices_equals_one_device() {
    check("replicate()");
}

#[test]
fn fsdp_step_on_8_devices_equals_one_device() {
    check(FSDP);
}
