//! Choosing the default CPU plugin: compile and run time of a matmul- and
//! convolution-heavy program on each plugin package, each measured in its own process.

use std::error::Error;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use bv_core::pjrt::provision::{CPU_PACKAGES, CPU_PACKAGE_ENV};
use bv_core::pjrt::{Buffer, Client, CompileOptions};

use crate::report::{machine, median, write_section};

/// Two 3×3 convolutions (16→32→32 channels on 8×32×32 images) with ReLU, then a dense
/// layer over the flattened features.
const PROGRAM: &str = r#"
func.func public @main(%x: tensor<8x32x32x16xf32>, %w1: tensor<3x3x16x32xf32>, %w2: tensor<3x3x32x32xf32>, %d: tensor<32768x256xf32>) -> tensor<8x256xf32> {
  %c1 = stablehlo.convolution(%x, %w1) dim_numbers = [b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f], window = {stride = [1, 1], pad = [[1, 1], [1, 1]]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64} : (tensor<8x32x32x16xf32>, tensor<3x3x16x32xf32>) -> tensor<8x32x32x32xf32>
  %zero = stablehlo.constant dense<0.0> : tensor<8x32x32x32xf32>
  %r1 = stablehlo.maximum %c1, %zero : tensor<8x32x32x32xf32>
  %c2 = stablehlo.convolution(%r1, %w2) dim_numbers = [b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f], window = {stride = [1, 1], pad = [[1, 1], [1, 1]]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64} : (tensor<8x32x32x32xf32>, tensor<3x3x32x32xf32>) -> tensor<8x32x32x32xf32>
  %r2 = stablehlo.maximum %c2, %zero : tensor<8x32x32x32xf32>
  %flat = stablehlo.reshape %r2 : (tensor<8x32x32x32xf32>) -> tensor<8x32768xf32>
  %y = stablehlo.dot_general %flat, %d, contracting_dims = [1] x [0] : (tensor<8x32768xf32>, tensor<32768x256xf32>) -> tensor<8x256xf32>
  return %y : tensor<8x256xf32>
}
"#;

/// A transformer MLP block at ViT-B width on 256 tokens: dense 768→3072, tanh, 3072→768.
const MLP: &str = r#"
func.func public @main(%x: tensor<256x768xf32>, %w1: tensor<768x3072xf32>, %w2: tensor<3072x768xf32>) -> tensor<256x768xf32> {
  %h = stablehlo.dot_general %x, %w1, contracting_dims = [1] x [0] : (tensor<256x768xf32>, tensor<768x3072xf32>) -> tensor<256x3072xf32>
  %a = stablehlo.tanh %h : tensor<256x3072xf32>
  %y = stablehlo.dot_general %a, %w2, contracting_dims = [1] x [0] : (tensor<256x3072xf32>, tensor<3072x768xf32>) -> tensor<256x768xf32>
  return %y : tensor<256x768xf32>
}
"#;

const COMPILES: usize = 3;
const RUNS: usize = 20;

/// Median compile time (ms) and run time (ms) of `program` on arguments of `shapes`.
fn time_program(
    client: &Client,
    program: &str,
    shapes: &[&[i64]],
) -> Result<(f64, f64), Box<dyn Error>> {
    let dev = &client.addressable_devices()[0];
    let mut compile_ms = Vec::new();
    let mut exe = None;
    for _ in 0..COMPILES {
        let t = Instant::now();
        exe = Some(client.compile(program, &CompileOptions::default())?);
        compile_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let exe = exe.ok_or("no compile")?;
    let args: Vec<Buffer> = shapes
        .iter()
        .map(|dims| {
            let n = dims.iter().product::<i64>() as usize;
            let data: Vec<f32> = (0..n).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
            client.buffer_from_host(&data, dims, dev)
        })
        .collect::<Result<_, _>>()?;
    let refs: Vec<&Buffer> = args.iter().collect();
    exe.execute(&refs)?[0].block_until_ready()?;
    let mut run_ms = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        exe.execute(&refs)?[0].block_until_ready()?;
        run_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(&compile_ms), median(&run_ms)))
}

/// Measures the plugin chosen by `BV_CPU_PLUGIN` and prints JSON.
pub fn probe() -> Result<(), Box<dyn Error>> {
    let client = Client::cpu()?;
    let (conv_compile, conv_run) = time_program(
        &client,
        PROGRAM,
        &[
            &[8, 32, 32, 16],
            &[3, 3, 16, 32],
            &[3, 3, 32, 32],
            &[32768, 256],
        ],
    )?;
    let (mlp_compile, mlp_run) =
        time_program(&client, MLP, &[&[256, 768], &[768, 3072], &[3072, 768]])?;
    let (major, minor) = client.plugin().api_version();
    println!(
        "{}",
        serde_json::json!({
            "conv_compile_ms": conv_compile,
            "conv_run_ms": conv_run,
            "mlp_compile_ms": mlp_compile,
            "mlp_run_ms": mlp_run,
            "api": format!("{major}.{minor}"),
            "stablehlo": client.plugin().stablehlo_current_version(),
        })
    );
    Ok(())
}

/// Runs both plugins interleaved, each in a fresh process, and writes the `plugins` section.
pub fn run(rounds: usize, out: &Path) -> Result<(), Box<dyn Error>> {
    let exe = std::env::current_exe()?;
    let mut results: Vec<Vec<serde_json::Value>> = vec![Vec::new(); CPU_PACKAGES.len()];
    for r in 0..rounds {
        for (i, p) in CPU_PACKAGES.iter().enumerate() {
            let o = Command::new(&exe)
                .arg("plugin-probe")
                .env(CPU_PACKAGE_ENV, p.name)
                .output()?;
            if !o.status.success() {
                return Err(format!(
                    "probe of {} failed: {}",
                    p.name,
                    String::from_utf8_lossy(&o.stderr)
                )
                .into());
            }
            results[i].push(serde_json::from_slice(&o.stdout)?);
        }
        eprintln!("round {}/{rounds} done", r + 1);
    }
    let mut body = format!(
        "## CPU plugin choice\n\n\
         `cargo run --release -p bv-benches -- plugins --rounds {rounds}` on {}. *conv*: two 3×3 \
         convolutions (8×32×32, 16→32→32 channels) with ReLU and a 32768×256 dense layer; *mlp*: a \
         ViT-B MLP block on 256 tokens (768→3072→768). Compile time is the median of {COMPILES} \
         compiles, run time the median of {RUNS} runs, each plugin in its own process, medians over \
         {rounds} interleaved rounds.\n\n\
         | package | PJRT API | StableHLO | conv compile (ms) | conv run (ms) | mlp compile (ms) | mlp run (ms) |\n\
         |---|---|---|---|---|---|---|\n",
        machine()
    );
    for (p, rs) in CPU_PACKAGES.iter().zip(&results) {
        let m = |k: &str| median(&rs.iter().filter_map(|v| v[k].as_f64()).collect::<Vec<_>>());
        let first = &rs[0];
        body.push_str(&format!(
            "| {}=={} | {} | {} | {:.1} | {:.2} | {:.1} | {:.2} |\n",
            p.name,
            p.version,
            first["api"].as_str().unwrap_or("?"),
            first["stablehlo"].as_str().unwrap_or("?"),
            m("conv_compile_ms"),
            m("conv_run_ms"),
            m("mlp_compile_ms"),
            m("mlp_run_ms")
        ));
    }
    print!("{body}");
    write_section(out, "plugins", &body)?;
    Ok(())
}
