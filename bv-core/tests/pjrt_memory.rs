//! Creating and dropping buffers and running executables leaves memory flat.

use bv_core::pjrt::{Client, CompileOptions};

/// Resident set size of this process, in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

const MIB: usize = 1 << 20;

#[test]
fn buffers_and_executions_do_not_leak() {
    let client = Client::cpu().unwrap();
    let dev = &client.addressable_devices()[0];
    let exe = client
        .compile(
            "func.func public @main(%x: tensor<1024xf32>) -> tensor<1024xf32> {
               %y = stablehlo.multiply %x, %x : tensor<1024xf32>
               return %y : tensor<1024xf32>
             }",
            &CompileOptions::default(),
        )
        .unwrap();
    let data = vec![1.5f32; 1024];
    let work = |n_buffers: usize, n_runs: usize| {
        for _ in 0..n_buffers {
            let b = client.buffer_from_host(&data, &[1024], dev).unwrap();
            drop(b);
        }
        let x = client.buffer_from_host(&data, &[1024], dev).unwrap();
        for _ in 0..n_runs {
            let out = exe.execute(&[&x]).unwrap();
            out[0].block_until_ready().unwrap();
        }
    };
    // Warm up allocator pools and the plugin's thread pools first.
    work(1_000, 100);
    let before = rss();
    work(10_000, 1_000);
    let after = rss();
    // 10,000 leaked 4 KiB buffers alone would add ~40 MiB.
    assert!(
        after < before + 16 * MIB,
        "RSS grew from {} MiB to {} MiB",
        before / MIB,
        after / MIB
    );
}
