//! `jit` over a mesh of 8 CPU devices: inputs keep their layouts, outputs take the layouts
//! asked for, every shard has the expected shape, and values and gradients equal the same
//! function run on one device (the reference), for FSDP-style split parameters and a
//! data-parallel batch.

use bv_core::autodiff::value_and_grad;
use bv_core::numpy as np;
use bv_core::pjrt::Client;
use bv_core::prim::sharding_constraint;
use bv_core::sharding::{Mesh, NamedSharding, PartitionSpec};
use bv_core::{jit, set_default_client, Array, Tensor};

/// One 8-device default client for every test of this binary (tests run in parallel).
fn setup() -> Mesh {
    static MESH: std::sync::OnceLock<Mesh> = std::sync::OnceLock::new();
    MESH.get_or_init(|| {
        let client = Client::cpu_with_devices(8).unwrap();
        let ids: Vec<i64> = client.devices().iter().map(|d| i64::from(d.id())).collect();
        set_default_client(client);
        Mesh::new(&[("data", 8)], &ids).unwrap()
    })
    .clone()
}

fn spec(dims: &[Option<&str>]) -> PartitionSpec {
    PartitionSpec::of(dims)
}

fn data(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) * scale)
        .collect()
}

fn loss(x: &Tensor, w: &Tensor) -> Tensor {
    let h = np::tanh(&np::matmul(x, w));
    np::mean(&(&h * &h), np::Axes::All, false)
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

#[test]
fn fsdp_params_and_sharded_batch_match_one_device() {
    let mesh = setup();
    let xs = data(16 * 12, 0.1);
    let ws = data(12 * 64, 0.05);
    let batch = NamedSharding::new(mesh.clone(), spec(&[Some("data"), None])).unwrap();
    let fsdp = NamedSharding::new(mesh.clone(), spec(&[None, Some("data")])).unwrap();
    let x8 = Array::from_slice_sharded(&xs, &[16, 12], &batch).unwrap();
    let w8 = Array::from_slice_sharded(&ws, &[12, 64], &fsdp).unwrap();
    assert_eq!(x8.shard_shapes().unwrap(), vec![vec![2, 12]; 8]);
    assert_eq!(w8.shard_shapes().unwrap(), vec![vec![12, 8]; 8]);
    assert_eq!(
        w8.to_vec::<f32>().unwrap(),
        ws,
        "assembling the shards gives the array back"
    );

    let step = |(x, w): (Tensor, Tensor)| {
        let vg = value_and_grad(|w: Tensor| loss(&x, &w));
        let (l, g) = vg(&w);
        (l, &w - &(g * 0.5))
    };
    let keep_w = |path: &str, _: &bv_core::Aval| {
        if path == "1" {
            spec(&[None, Some("data")])
        } else {
            PartitionSpec::replicated()
        }
    };
    let sharded = jit(step).named("step8").sharded(mesh.clone(), keep_w);
    let (l8, w_next8) = sharded.call(&(x8, w8)).unwrap();
    assert_eq!(
        w_next8.shard_shapes().unwrap(),
        vec![vec![12, 8]; 8],
        "updated params stay split"
    );
    assert_eq!(
        l8.shard_shapes().unwrap(),
        vec![Vec::<usize>::new(); 8],
        "the loss is replicated"
    );

    let x1 = Array::from_slice(&xs, &[16, 12]).unwrap();
    let w1 = Array::from_slice(&ws, &[12, 64]).unwrap();
    let (l1, w_next1) = jit(step).named("step1").call(&(x1, w1)).unwrap();
    close(
        &l8.to_vec::<f32>().unwrap(),
        &l1.to_vec::<f32>().unwrap(),
        "loss",
    );
    close(
        &w_next8.to_vec::<f32>().unwrap(),
        &w_next1.to_vec::<f32>().unwrap(),
        "params",
    );
    assert!(sharded
        .lower(&(x1_spec(), w1_spec()))
        .unwrap()
        .text
        .contains("sdy.mesh @mesh = <[\"data\"=8]>"));
}

fn x1_spec() -> bv_core::Spec {
    bv_core::Spec::new([16, 12], bv_core::DType::F32)
}
fn w1_spec() -> bv_core::Spec {
    bv_core::Spec::new([12, 64], bv_core::DType::F32)
}

#[test]
fn replicated_params_data_parallel_and_constraints() {
    let mesh = setup();
    let xs = data(16 * 12, 0.1);
    let ws = data(12 * 64, 0.05);
    let batch = NamedSharding::new(mesh.clone(), spec(&[Some("data"), None])).unwrap();
    let x8 = Array::from_slice_sharded(&xs, &[16, 12], &batch).unwrap();
    // A single-device array is replicated onto the mesh.
    let w = Array::from_slice(&ws, &[12, 64]).unwrap();
    let constrained = batch.clone();
    let f = move |(x, w): (Tensor, Tensor)| {
        let h = sharding_constraint(&np::matmul(&x, &w), &constrained);
        np::sum(&np::tanh(&h), 1, false)
    };
    let out = jit(f)
        .sharded(mesh.clone(), |_, _| spec(&[Some("data")]))
        .call(&(x8, w.clone()))
        .unwrap();
    assert_eq!(out.shard_shapes().unwrap(), vec![vec![2]; 8]);
    let one =
        jit(move |(x, w): (Tensor, Tensor)| np::sum(&np::tanh(&np::matmul(&x, &w)), 1, false))
            .call(&(Array::from_slice(&xs, &[16, 12]).unwrap(), w))
            .unwrap();
    close(
        &out.to_vec::<f32>().unwrap(),
        &one.to_vec::<f32>().unwrap(),
        "rows",
    );
}

#[test]
fn indivisible_output_layout_is_explained() {
    let mesh = setup();
    let f = jit(|x: Tensor| &x * 2.0).sharded(mesh, |_, _| spec(&[Some("data")]));
    let x = Array::from_slice(&[1f32; 6], &[6]).unwrap();
    let err = f.call(&x).unwrap_err().to_string();
    assert!(err.contains("output ``: cannot shard [6] with P('data'): dimension 0 of size 6 is not divisible by 8"), "{err}");
}
