//! Runtime overheads: dispatch latency, host→device and device→host bandwidth.

use std::error::Error;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use bv_core::pjrt::{Buffer, Client, CompileOptions};
use bv_core::DType;

use crate::report::{machine, median, write_section};

const DISPATCH_CALLS: usize = 5000;
const BYTES: usize = 64 << 20;
const REPS: usize = 10;

/// One round of bv's measurements.
#[derive(Default)]
struct Figures {
    dispatch_us: Vec<f64>,
    call_wait_us: Vec<f64>,
    h2d_gbps: Vec<f64>,
    h2d_owned_gbps: Vec<f64>,
    d2h_gbps: Vec<f64>,
    d2h_view_gbps: Vec<f64>,
}

fn measure_bv(client: &Client, into: &mut Figures) -> Result<(), Box<dyn Error>> {
    let dev = &client.addressable_devices()[0];
    let add_one = client.compile(
        "func.func public @main(%x: tensor<8xf32>) -> tensor<8xf32> {
           %one = stablehlo.constant dense<1.0> : tensor<8xf32>
           %y = stablehlo.add %x, %one : tensor<8xf32>
           return %y : tensor<8xf32>
         }",
        &CompileOptions::default(),
    )?;
    let x = client.buffer_from_host(&[0f32; 8], &[8], dev)?;
    add_one.execute(&[&x])?[0].block_until_ready()?;
    let t = Instant::now();
    let mut last = Vec::new();
    for _ in 0..DISPATCH_CALLS {
        last = add_one.execute(&[&x])?;
    }
    last[0].block_until_ready()?;
    into.dispatch_us
        .push(t.elapsed().as_secs_f64() / DISPATCH_CALLS as f64 * 1e6);

    let t = Instant::now();
    for _ in 0..DISPATCH_CALLS / 5 {
        add_one.execute(&[&x])?[0].block_until_ready()?;
    }
    into.call_wait_us
        .push(t.elapsed().as_secs_f64() / (DISPATCH_CALLS / 5) as f64 * 1e6);

    let n = BYTES / 4;
    let host: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let dims = [n as i64];
    let mut h2d = Vec::new();
    let mut h2d_owned = Vec::new();
    for _ in 0..REPS {
        let t = Instant::now();
        client
            .buffer_from_host(&host, &dims, dev)?
            .block_until_ready()?;
        h2d.push(BYTES as f64 / t.elapsed().as_secs_f64() / 1e9);
        let bytes: Vec<u8> = host.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = Instant::now();
        client
            .buffer_from_host_owned(bytes, DType::F32, &dims, dev)?
            .block_until_ready()?;
        h2d_owned.push(BYTES as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    into.h2d_gbps.push(median(&h2d));
    into.h2d_owned_gbps.push(median(&h2d_owned));

    let double = client.compile(
        &format!(
            "func.func public @main(%x: tensor<{n}xf32>) -> tensor<{n}xf32> {{
               %y = stablehlo.add %x, %x : tensor<{n}xf32>
               return %y : tensor<{n}xf32>
             }}"
        ),
        &CompileOptions::default(),
    )?;
    let dev_x: Buffer = client.buffer_from_host(&host, &dims, dev)?;
    let mut d2h = Vec::new();
    let mut d2h_view = Vec::new();
    for _ in 0..REPS {
        let fresh = double.execute(&[&dev_x])?.remove(0);
        fresh.block_until_ready()?;
        let t = Instant::now();
        let view = fresh.host_view()?.ok_or("CPU buffers should be viewable")?;
        d2h_view.push(BYTES as f64 / t.elapsed().as_secs_f64() / 1e9);
        assert_eq!(view.len(), BYTES);
        let fresh = double.execute(&[&dev_x])?.remove(0);
        fresh.block_until_ready()?;
        let t = Instant::now();
        let bytes = fresh.to_host_bytes()?;
        d2h.push(BYTES as f64 / t.elapsed().as_secs_f64() / 1e9);
        assert_eq!(bytes.len(), BYTES);
    }
    into.d2h_gbps.push(median(&d2h));
    into.d2h_view_gbps.push(median(&d2h_view));
    Ok(())
}

fn measure_jax(python: &Path) -> Result<serde_json::Value, Box<dyn Error>> {
    let out = Command::new(python)
        .arg("benches/jax/runtime.py")
        .env("JAX_PLATFORMS", platform())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{} benches/jax/runtime.py failed (run benches/setup_jax.sh first?):\n{}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The platform both sides measure: `BV_PLATFORM` (default `cpu`), as JAX names it.
fn platform() -> String {
    std::env::var("BV_PLATFORM").unwrap_or_else(|_| "cpu".into())
}

/// Runs `rounds` interleaved rounds and writes the `runtime` section.
pub fn run(python: &Path, rounds: usize, out: &Path) -> Result<(), Box<dyn Error>> {
    let client = Client::from_env()?;
    let mut bv = Figures::default();
    let mut jax: Vec<serde_json::Value> = Vec::new();
    for r in 0..rounds {
        measure_bv(&client, &mut bv)?;
        jax.push(measure_jax(python)?);
        eprintln!("round {}/{rounds} done", r + 1);
    }
    let j = |k: &str| median(&jax.iter().filter_map(|v| v[k].as_f64()).collect::<Vec<_>>());
    let version = jax
        .first()
        .and_then(|v| v["jax"].as_str())
        .unwrap_or("?")
        .to_string();
    let rows = [
        (
            "dispatch, async, per call (µs, lower is better)",
            median(&bv.dispatch_us),
            j("dispatch_us"),
            false,
        ),
        (
            "call + wait for result (µs, lower is better)",
            median(&bv.call_wait_us),
            j("call_wait_us"),
            false,
        ),
        (
            "host→device 64 MiB, borrowed slice (GB/s)",
            median(&bv.h2d_gbps),
            j("h2d_gbps"),
            true,
        ),
        (
            "host→device 64 MiB, owned Vec (GB/s)",
            median(&bv.h2d_owned_gbps),
            j("h2d_gbps"),
            true,
        ),
        (
            "device→host 64 MiB, copy (GB/s)",
            median(&bv.d2h_gbps),
            j("d2h_gbps"),
            true,
        ),
        (
            "device→host 64 MiB, in-place view (GB/s)",
            median(&bv.d2h_view_gbps),
            j("d2h_gbps"),
            true,
        ),
    ];
    let mut body = format!(
        "## Runtime overheads (CPU plugin)\n\n\
         `cargo run --release -p bv-benches -- runtime --rounds {rounds}` on {}; plugin {} (PJRT API {}.{}); \
         JAX {version} (jaxlib's built-in CPU client). Medians of {rounds} interleaved rounds (bv, JAX, bv, JAX, ...); \
         ratio > 1 means bv is better.\n\n\
         | measure | bv | JAX | ratio |\n|---|---|---|---|\n",
        machine(),
        client.plugin().path().file_name().map_or(String::new(), |f| f.to_string_lossy().into_owned()),
        client.plugin().api_version().0,
        client.plugin().api_version().1,
    );
    for (name, ours, theirs, higher_better) in rows {
        let ratio = if higher_better {
            ours / theirs
        } else {
            theirs / ours
        };
        body.push_str(&format!(
            "| {name} | {ours:.2} | {theirs:.2} | {ratio:.2}× |\n"
        ));
    }
    body.push_str(
        "\nJAX's `device_put` of a NumPy array and `np.asarray` of a CPU array may alias host \
         memory instead of copying: JAX's device→host figure is such a view, to be compared with \
         bv's `Buffer::host_view` row; `Buffer::to_host_bytes` always copies. bv's owned-`Vec` \
         transfer asks for the same aliasing (`kImmutableZeroCopy`), which the plugin grants \
         only for suitably aligned memory.\n",
    );
    print!("{body}");
    write_section(out, "runtime", &body)?;
    Ok(())
}
