//! Our shard placement (which device holds which slice) agrees with XLA's reading of the
//! same sharding, written both as Shardy and as GSPMD, on a 4×2 mesh of CPU devices: inputs
//! are split by `NamedSharding::shard_slices`, outputs reassembled the same way, and the
//! whole is compared with a float64 host computation.

use bv_core::pjrt::{Buffer, Client, CompileOptions};
use bv_core::sharding::{Mesh, NamedSharding, PartitionSpec};

const R: i64 = 8;
const C: i64 = 6;

fn take(host: &[f32], slices: &[std::ops::Range<i64>]) -> Vec<f32> {
    let mut out = Vec::new();
    for r in slices[0].clone() {
        for c in slices[1].clone() {
            out.push(host[(r * C + c) as usize]);
        }
    }
    out
}

fn program(x: &NamedSharding, out: &NamedSharding, shardy: bool) -> String {
    let (xa, oa, ra, mesh) = if shardy {
        (
            format!("sdy.sharding = {}", x.to_sdy("mesh", 2)),
            format!("sdy.sharding = {}", out.to_sdy("mesh", 2)),
            format!(
                "sdy.sharding = {}",
                NamedSharding::replicated(x.mesh.clone()).to_sdy("mesh", 0)
            ),
            x.mesh.to_sdy("mesh"),
        )
    } else {
        (
            format!("mhlo.sharding = \"{}\"", x.to_gspmd(2)),
            format!("mhlo.sharding = \"{}\"", out.to_gspmd(2)),
            "mhlo.sharding = \"{replicated}\"".to_string(),
            String::new(),
        )
    };
    format!(
        r#"module @m attributes {{mhlo.num_partitions = 8 : i32, mhlo.num_replicas = 1 : i32}} {{
  {mesh}
  func.func public @main(%x: tensor<8x6xf32> {{{xa}}}) -> (tensor<8x6xf32> {{{oa}}}, tensor<f32> {{{ra}}}) {{
    %two = stablehlo.constant dense<2.0> : tensor<8x6xf32>
    %s = stablehlo.sine %x : tensor<8x6xf32>
    %y = stablehlo.multiply %s, %two : tensor<8x6xf32>
    %zero = stablehlo.constant dense<0.0> : tensor<f32>
    %t = stablehlo.reduce(%x init: %zero) applies stablehlo.add across dimensions = [0, 1] : (tensor<8x6xf32>, tensor<f32>) -> tensor<f32>
    return %y, %t : tensor<8x6xf32>, tensor<f32>
  }}
}}"#
    )
}

fn check(x_spec: PartitionSpec, out_spec: PartitionSpec, shardy: bool) {
    let client = Client::cpu_with_devices(8).unwrap();
    let ids: Vec<i64> = client.devices().iter().map(|d| i64::from(d.id())).collect();
    let mesh = Mesh::new(&[("data", 4), ("model", 2)], &ids).unwrap();
    let xs = NamedSharding::new(mesh.clone(), x_spec).unwrap();
    let os = NamedSharding::new(mesh.clone(), out_spec).unwrap();
    let mut options = CompileOptions::partitioned(8).with_device_assignment(ids.clone());
    if !shardy {
        options = options.with_gspmd();
    }
    let exe = client
        .compile(&program(&xs, &os, shardy), &options)
        .unwrap();
    let devices = exe.addressable_devices().to_vec();
    let order: Vec<i64> = devices.iter().map(|d| i64::from(d.id())).collect();
    assert_eq!(
        order,
        mesh.device_ids(),
        "the executable runs partition p on mesh device p"
    );

    let host: Vec<f32> = (0..R * C).map(|i| (i as f32) * 0.37 - 5.0).collect();
    let shape = [R / xs.parts(0) as i64, C / xs.parts(1) as i64];
    let args: Vec<Vec<Buffer>> = xs
        .shard_slices(&[R, C])
        .unwrap()
        .iter()
        .zip(&devices)
        .map(|(sl, d)| {
            vec![client
                .buffer_from_host(&take(&host, sl), &shape, d)
                .unwrap()]
        })
        .collect();
    let refs: Vec<Vec<&Buffer>> = args.iter().map(|v| v.iter().collect()).collect();
    let out = exe.execute_sharded(&refs).unwrap();

    let total: f64 = host.iter().map(|v| f64::from(*v)).sum();
    for (p, (outs, sl)) in out
        .iter()
        .zip(os.shard_slices(&[R, C]).unwrap())
        .enumerate()
    {
        assert_eq!(
            outs[0].dims(),
            os.shard_shape(&[R, C]).unwrap().as_slice(),
            "device {p}"
        );
        let want: Vec<f64> = take(&host, &sl)
            .iter()
            .map(|v| 2.0 * f64::from(*v).sin())
            .collect();
        let got = outs[0].to_vec::<f32>().unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((f64::from(*g) - w).abs() < 1e-5, "device {p}: {g} vs {w}");
        }
        let t = outs[1].to_vec::<f32>().unwrap()[0];
        assert!(
            (f64::from(t) - total).abs() < 1e-3 * total.abs().max(1.0),
            "device {p}: sum {t} vs {total}"
        );
    }
}

#[test]
fn two_axis_split_resharded_to_one_axis_shardy() {
    check(
        PartitionSpec::of(&[Some("data"), Some("model")]),
        PartitionSpec::of(&[Some("model"), None]),
        true,
    );
}

#[test]
fn two_axis_split_resharded_to_one_axis_gspmd() {
    check(
        PartitionSpec::of(&[Some("data"), Some("model")]),
        PartitionSpec::of(&[Some("model"), None]),
        false,
    );
}

#[test]
fn partially_replicated_columns_shardy_and_gspmd() {
    for shardy in [true, false] {
        check(
            PartitionSpec::of(&[None, Some("model")]),
            PartitionSpec::of(&[Some("data"), None]),
            shardy,
        );
    }
}

#[test]
fn both_axes_on_one_dimension() {
    let spec = PartitionSpec(vec![vec!["model".into(), "data".into()], vec![]]);
    check(spec.clone(), spec, true);
}
