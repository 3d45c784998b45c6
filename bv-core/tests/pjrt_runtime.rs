//! Plugin attributes, client facts, executable metadata, cost analysis, memory statistics,
//! and serialization.

use bv_core::pjrt::{Client, CompileOptions};
use bv_core::DType;

const MATMUL: &str = r#"
func.func public @main(%a: tensor<16x32xf32>, %b: tensor<32x8xf32>) -> (tensor<16x8xf32>, tensor<8xi32>) {
  %y = stablehlo.dot_general %a, %b, contracting_dims = [1] x [0] : (tensor<16x32xf32>, tensor<32x8xf32>) -> tensor<16x8xf32>
  %i = stablehlo.iota dim = 0 : tensor<8xi32>
  return %y, %i : tensor<16x8xf32>, tensor<8xi32>
}
"#;

#[test]
fn plugin_and_client_describe_themselves() {
    let client = Client::cpu_with_devices(4).unwrap();
    let plugin = client.plugin();
    let (major, minor) = plugin.api_version();
    assert_eq!(major, 0);
    assert!(minor >= 81, "API 0.{minor}");
    let current = plugin
        .stablehlo_current_version()
        .expect("stablehlo_current_version");
    assert!(current.starts_with("1."), "{current}");
    assert!(plugin.stablehlo_minimum_version().is_some());
    assert!(plugin.xla_version().is_some());
    assert_eq!(client.platform_name(), "cpu");
    assert_eq!(client.process_index(), 0);
    assert_eq!(client.devices().len(), 4);
    let ids: Vec<i32> = client
        .addressable_devices()
        .iter()
        .map(|d| d.id())
        .collect();
    assert_eq!(ids, vec![0, 1, 2, 3]);
    assert!(client
        .devices()
        .iter()
        .all(|d| d.is_addressable() && d.process_index() == 0));
    assert!(!client.devices()[0].kind().is_empty());
    // Loading the same file again returns the same, once-initialised plugin.
    let again = bv_core::pjrt::Plugin::load(plugin.path()).unwrap();
    assert!(std::ptr::eq(again, plugin));
}

#[test]
fn executable_metadata_and_statistics() {
    let client = Client::cpu().unwrap();
    let exe = client.compile(MATMUL, &CompileOptions::default()).unwrap();
    assert_eq!(exe.num_outputs(), 2);
    assert_eq!(exe.output_dtypes().unwrap(), vec![DType::F32, DType::I32]);
    assert_eq!(exe.output_dims().unwrap(), vec![vec![16, 8], vec![8]]);
    // XLA's CPU plugins answer UNIMPLEMENTED for cost analysis; where a plugin has it,
    // the matmul's 2·M·N·K flops must be counted.
    if let Some(cost) = exe.cost_analysis().unwrap() {
        let flops = cost.get("flops").and_then(|v| v.as_f64()).expect("flops");
        assert!(flops >= 2.0 * 16.0 * 8.0 * 32.0, "flops {flops}");
    }
    let mem = exe
        .memory_stats()
        .unwrap()
        .expect("the CPU plugins report memory stats");
    assert_eq!(mem.argument_size, (16 * 32 + 32 * 8) * 4);
    // Outputs: both arrays, plus the plugin's small table of pointers to them.
    let outputs = 16 * 8 * 4 + 8 * 4;
    assert!(
        (outputs..outputs + 64).contains(&mem.output_size),
        "{mem:?}"
    );
}

#[test]
fn serialized_executable_runs_after_reload() {
    let client = Client::cpu().unwrap();
    let dev = &client.addressable_devices()[0];
    let exe = client.compile(MATMUL, &CompileOptions::default()).unwrap();
    let bytes = exe.serialize().unwrap();
    assert!(!bytes.is_empty());
    let reloaded = client.deserialize_executable(&bytes).unwrap();
    let a: Vec<f32> = (0..16 * 32).map(|i| (i % 7) as f32).collect();
    let b: Vec<f32> = (0..32 * 8).map(|i| (i % 5) as f32 - 2.0).collect();
    let ab = client.buffer_from_host(&a, &[16, 32], dev).unwrap();
    let bb = client.buffer_from_host(&b, &[32, 8], dev).unwrap();
    let want = exe.execute(&[&ab, &bb]).unwrap();
    let got = reloaded.execute(&[&ab, &bb]).unwrap();
    // Integer-valued inputs: the float sums are exact, so both runs agree bit for bit
    // with the integer host product.
    let host: Vec<f32> = (0..16)
        .flat_map(|i| {
            let (a, b) = (&a, &b);
            (0..8).map(move |j| (0..32).map(|k| a[i * 32 + k] * b[k * 8 + j]).sum::<f32>())
        })
        .collect();
    assert_eq!(got[0].to_vec::<f32>().unwrap(), host);
    assert_eq!(want[0].to_vec::<f32>().unwrap(), host);
    assert_eq!(
        got[1].to_vec::<i32>().unwrap(),
        (0..8).collect::<Vec<i32>>()
    );
}
