//! The soundness of the runtime's unsafe code, shown against the PJRT test plugin
//! (`pjrt-test-plugin`), which records every call and can fail or alias on request. Each
//! test failed (a crash, a leak or stale bytes) before its fix.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bv_core::distributed::{CoordinationClient, Coordinator};
use bv_core::pjrt::{Client, ClientOptions, CompileOptions, Error, Plugin};
use bv_core::DType;
use pjrt_test_plugin::record;

/// Fills freed memory with `POISON`, so that bytes read after they were freed show it.
struct Poisoning;

const POISON: u8 = 0xa5;

// SAFETY: forwards to the system allocator, writing only into blocks being freed.
unsafe impl GlobalAlloc for Poisoning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        std::ptr::write_bytes(ptr, POISON, layout.size());
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Poisoning = Poisoning;

fn plugin() -> &'static Plugin {
    Plugin::load(pjrt_test_plugin::library_path())
        .expect("the test plugin is built with bv-core's tests")
}

fn recorded(dir: &tempfile::TempDir, name: &str) -> (String, std::path::PathBuf) {
    let path = dir.path().join(name);
    (path.to_string_lossy().into_owned(), path)
}

fn names(path: &Path) -> Vec<String> {
    record::read(path).into_iter().map(|c| c.name).collect()
}

/// A 2-partition program on devices `devices` taking one replicated f32[4].
fn two_partition_program() -> &'static str {
    r#"module @jit_twice attributes {mhlo.num_partitions = 2 : i32, mhlo.num_replicas = 1 : i32} {
  sdy.mesh @mesh = <["x"=2]>
  func.func public @main(%arg0: tensor<4xf32> {sdy.sharding = #sdy.sharding<@mesh, [{}]>}) -> (tensor<4xf32> {sdy.sharding = #sdy.sharding<@mesh, [{"x"}]>}) {
    %0 = stablehlo.add %arg0, %arg0 : tensor<4xf32>
    return %0 : tensor<4xf32>
  }
}"#
}

/// A plugin that keeps the key-value callbacks calls them long after `PJRT_Client_Create`
/// returned (the GPU plugin does, to exchange collective ids): they must still reach the
/// store. Before the fix their user argument was a stack slot of `Client::new`, long gone
/// by then, and the first launch crashed.
#[test]
fn key_value_callbacks_work_after_client_creation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Coordinator::serve("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.addr();
    let nodes: Vec<_> = (0..2)
        .map(|node| {
            let (path, file) = recorded(&dir, &format!("node{node}.log"));
            std::thread::spawn(move || {
                let kv = CoordinationClient::connect(addr, Duration::from_secs(10)).unwrap();
                let options = ClientOptions::new()
                    .set("node_id", node as i64)
                    .set("num_nodes", 2i64)
                    .set("devices_per_node", 1i64)
                    .set("record_path", path.as_str())
                    .kv_store(Arc::new(kv));
                let client = Client::new(plugin(), &options).unwrap();
                assert_eq!(client.devices().len(), 2);
                assert_eq!(client.addressable_devices().len(), 1);
                let exe = client
                    .compile(
                        two_partition_program(),
                        &CompileOptions::partitioned(2).with_device_assignment(vec![0, 1]),
                    )
                    .unwrap();
                let dev = &client.addressable_devices()[0];
                let x = client.buffer_from_host(&[1f32; 4], &[4], dev).unwrap();
                for _ in 0..3 {
                    let out = exe.execute_sharded(&[vec![&x]]).unwrap();
                    // The plugin fills device d's outputs with d + 1.
                    assert_eq!(
                        out[0][0].to_vec::<f32>().unwrap(),
                        vec![node as f32 + 1.0; 2]
                    );
                }
                file
            })
        })
        .collect();
    for node in nodes {
        let calls = record::read(&node.join().unwrap());
        let created = calls
            .iter()
            .position(|c| c.name == "PJRT_Client_Create")
            .unwrap();
        let after: Vec<_> = calls[created..]
            .iter()
            .filter(|c| c.name.starts_with("kv_") && c.get("key").starts_with("pjrt_test/launch/"))
            .collect();
        // One put and one get (the other node's key) per launch, all answered.
        assert_eq!(after.len(), 6, "{calls:?}");
        assert!(after.iter().all(|c| c.get("ok") == "true"), "{after:?}");
    }
}

/// A failure after `PJRT_Client_Create` succeeded destroys the client. Before the fix the
/// error returned early and the client leaked.
#[test]
fn a_failure_after_client_creation_destroys_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = recorded(&dir, "fail.log");
    let options = ClientOptions::new()
        .set("fail", "PJRT_Client_Devices")
        .set("record_path", path.as_str());
    let err = Client::new(plugin(), &options).unwrap_err();
    assert!(
        err.to_string()
            .contains("PJRT_Client_Devices failed on request"),
        "{err}"
    );
    assert_eq!(
        names(&file),
        vec!["PJRT_Client_Create", "PJRT_Client_Destroy"],
        "the client is created once and destroyed once"
    );
}

/// Argument lists of unequal length are refused before the plugin reads `num_args`
/// buffers from each. A deserialized executable has no signature; before the fix only the
/// first list's length was checked, and the plugin read past the end of the shorter one.
#[test]
fn unequal_argument_lists_are_refused_without_a_signature() {
    let client = Client::new(
        plugin(),
        &ClientOptions::new().set("devices_per_node", 2i64),
    )
    .unwrap();
    let options = CompileOptions::partitioned(2).with_device_assignment(vec![0, 1]);
    let compiled = client.compile(two_partition_program(), &options).unwrap();
    let exe = client
        .deserialize_executable(&compiled.serialize().unwrap())
        .unwrap();
    assert!(exe.signature().is_none());
    let devs = client.addressable_devices();
    let x0 = client.buffer_from_host(&[1f32; 4], &[4], &devs[0]).unwrap();
    let err = exe.execute_sharded(&[vec![&x0], vec![]]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "execute: argument list 1 has 0 arguments, list 0 has 1; every device takes the same arguments"
    );
    // Equal lists still run.
    let x1 = client.buffer_from_host(&[1f32; 4], &[4], &devs[1]).unwrap();
    let out = exe.execute_sharded(&[vec![&x0], vec![&x1]]).unwrap();
    assert_eq!(out[1][0].to_vec::<f32>().unwrap(), vec![2.0; 2]);
}

/// Host bytes moved into a zero-copy transfer live as long as the buffer when the plugin
/// gives no done event (it may read them in place until then). Before the fix they were
/// freed on return, and reading the buffer gave freed memory (poisoned here).
#[test]
fn owned_host_bytes_outlive_a_transfer_without_done_event() {
    let options = ClientOptions::new().set("zero_copy_without_event", true);
    let client = Client::new(plugin(), &options).unwrap();
    let dev = &client.addressable_devices()[0];
    let values: Vec<f32> = (0..64).map(|i| i as f32 * 0.25 - 3.0).collect();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let buf = client
        .buffer_from_host_owned(bytes, DType::F32, &[8, 8], dev)
        .unwrap();
    // Churn the allocator so a freed block would be reused or stay poisoned.
    let noise: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 256]).collect();
    assert_eq!(buf.to_vec::<f32>().unwrap(), values);
    drop(noise);
}
