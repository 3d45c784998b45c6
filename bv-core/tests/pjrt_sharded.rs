//! One program partitioned over 8 virtual CPU devices, annotated once with GSPMD
//! (`mhlo.sharding`) and once with Shardy (`sdy`); every shard is checked against a float64
//! host computation.

use bv_core::pjrt::{Buffer, Client, CompileOptions};

const DEVICES: usize = 8;
const M: usize = 16;
const K: usize = 3;
const N: usize = 5;
const ROWS: usize = M / DEVICES;

const BODY: &str = r#"
    %t = stablehlo.tanh %a : tensor<16x3xf32>
    %p = stablehlo.multiply %t, %a : tensor<16x3xf32>
    %y = stablehlo.dot_general %p, %b, contracting_dims = [1] x [0] : (tensor<16x3xf32>, tensor<3x5xf32>) -> tensor<16x5xf32>
    %zero = stablehlo.constant dense<0.0> : tensor<f32>
    %s = stablehlo.reduce(%y init: %zero) applies stablehlo.add across dimensions = [0] : (tensor<16x5xf32>, tensor<f32>) -> tensor<5xf32>
    return %y, %s : tensor<16x5xf32>, tensor<5xf32>
  }
}
"#;

fn gspmd_program() -> String {
    let rows = "\"{devices=[8,1]<=[8]}\"";
    let rep = "\"{replicated}\"";
    format!(
        "module @sharded attributes {{mhlo.num_partitions = 8 : i32, mhlo.num_replicas = 1 : i32}} {{
  func.func public @main(%a: tensor<16x3xf32> {{mhlo.sharding = {rows}}}, %b: tensor<3x5xf32> {{mhlo.sharding = {rep}}})
      -> (tensor<16x5xf32> {{mhlo.sharding = {rows}}}, tensor<5xf32> {{mhlo.sharding = {rep}}}) {{{BODY}"
    )
}

fn shardy_program() -> String {
    let rows = r#"#sdy.sharding<@mesh, [{"x"}, {}]>"#;
    let rep2 = r#"#sdy.sharding<@mesh, [{}, {}]>"#;
    let rep1 = r#"#sdy.sharding<@mesh, [{}]>"#;
    format!(
        "module @sharded attributes {{mhlo.num_partitions = 8 : i32, mhlo.num_replicas = 1 : i32}} {{
  sdy.mesh @mesh = <[\"x\"=8]>
  func.func public @main(%a: tensor<16x3xf32> {{sdy.sharding = {rows}}}, %b: tensor<3x5xf32> {{sdy.sharding = {rep2}}})
      -> (tensor<16x5xf32> {{sdy.sharding = {rows}}}, tensor<5xf32> {{sdy.sharding = {rep1}}}) {{{BODY}"
    )
}

fn run(program: &str, options: CompileOptions) {
    let client = Client::cpu_with_devices(DEVICES).unwrap();
    assert_eq!(client.addressable_devices().len(), DEVICES);
    let exe = client.compile(program, &options).unwrap();
    let devices = exe.addressable_devices().to_vec();
    assert_eq!(devices.len(), DEVICES);

    let a: Vec<f32> = (0..M * K)
        .map(|i| ((i * 7 % 19) as f32 - 9.0) * 0.2)
        .collect();
    let b: Vec<f32> = (0..K * N)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.25)
        .collect();
    let mut args: Vec<Vec<Buffer>> = Vec::new();
    for (d, dev) in devices.iter().enumerate() {
        let shard = &a[d * ROWS * K..(d + 1) * ROWS * K];
        args.push(vec![
            client
                .buffer_from_host(shard, &[ROWS as i64, K as i64], dev)
                .unwrap(),
            client
                .buffer_from_host(&b, &[K as i64, N as i64], dev)
                .unwrap(),
        ]);
    }
    let arg_refs: Vec<Vec<&Buffer>> = args.iter().map(|v| v.iter().collect()).collect();
    let out = exe.execute_sharded(&arg_refs).unwrap();

    // float64 reference of the whole computation
    let mut y = vec![0f64; M * N];
    for i in 0..M {
        for j in 0..N {
            for k in 0..K {
                let x = f64::from(a[i * K + k]);
                y[i * N + j] += x.tanh() * x * f64::from(b[k * N + j]);
            }
        }
    }
    let s: Vec<f64> = (0..N).map(|j| (0..M).map(|i| y[i * N + j]).sum()).collect();

    assert_eq!(out.len(), DEVICES);
    for (d, outs) in out.iter().enumerate() {
        assert_eq!(
            outs[0].dims(),
            &[ROWS as i64, N as i64],
            "device {d} shard shape"
        );
        assert_eq!(outs[1].dims(), &[N as i64], "device {d} reduction shape");
        assert_eq!(outs[0].device().unwrap(), devices[d]);
        let shard = outs[0].to_vec::<f32>().unwrap();
        for (i, g) in shard.iter().enumerate() {
            let w = y[d * ROWS * N + i];
            assert!(
                (f64::from(*g) - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "device {d} y[{i}]: {g} vs {w}"
            );
        }
        let red = outs[1].to_vec::<f32>().unwrap();
        for (j, g) in red.iter().enumerate() {
            assert!(
                (f64::from(*g) - s[j]).abs() <= 1e-4 * (1.0 + s[j].abs()),
                "device {d} s[{j}]: {g} vs {}",
                s[j]
            );
        }
        // The replicated reduction is bit-identical on every device.
        assert_eq!(
            red,
            out[0][1].to_vec::<f32>().unwrap(),
            "device {d} replica differs"
        );
    }
}

#[test]
fn gspmd_partitioned_over_8_devices() {
    run(
        &gspmd_program(),
        CompileOptions::partitioned(DEVICES).with_gspmd(),
    );
}

#[test]
fn shardy_partitioned_over_8_devices() {
    run(&shardy_program(), CompileOptions::partitioned(DEVICES));
}

#[test]
fn explicit_device_assignment_orders_the_devices() {
    let client = Client::cpu_with_devices(DEVICES).unwrap();
    let mut ids: Vec<i64> = client.devices().iter().map(|d| i64::from(d.id())).collect();
    ids.reverse();
    let exe = client
        .compile(
            &shardy_program(),
            &CompileOptions::partitioned(DEVICES).with_device_assignment(ids.clone()),
        )
        .unwrap();
    let got: Vec<i64> = exe
        .addressable_devices()
        .iter()
        .map(|d| i64::from(d.id()))
        .collect();
    assert_eq!(got, ids);
}
