//! `bv-bench`: runs a bv benchmark and the same measurement in JAX on this machine,
//! interleaved (bv, JAX, bv, JAX, ...) because this machine's speed drifts, and writes the
//! medians side by side into `docs/benchmarks.md`.
//!
//! ```text
//! benches/setup_jax.sh                       # once: a venv with the pinned JAX
//! cargo run --release -p bv-benches -- runtime --rounds 7
//! cargo run --release -p bv-benches -- plugins --rounds 5
//! cargo run --release -p bv-benches -- tracing --rounds 5
//! cargo run --release -p bv-benches -- models --rounds 3
//! cargo run --release -p bv-benches -- models --variants B/16 --platform cuda --dtype bfloat16
//! ```

mod models;
mod plugins;
mod report;
mod runtime;
mod tracing;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "bv benchmarks beside the same-machine JAX figures", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Rounds of (bv, JAX) pairs; medians are reported.
    #[arg(long, default_value_t = 7, global = true)]
    rounds: usize,
    /// The Markdown file whose section for this benchmark is rewritten.
    #[arg(long, default_value = "docs/benchmarks.md", global = true)]
    out: PathBuf,
    /// The Python interpreter with JAX installed (benches/setup_jax.sh makes one).
    #[arg(long, default_value = "benches/.venv/bin/python", global = true)]
    python: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Dispatch latency of a trivial executable, host→device and device→host bandwidth.
    Runtime,
    /// Compile and run time of a matmul- and convolution-heavy program on each CPU plugin.
    Plugins,
    /// Trace + lower time of a ViT-B/16-sized program, and jit dispatch on a cache hit.
    Tracing,
    /// ViT forward, train step and time to the first step, beside JAX/Flax.
    Models {
        /// ViT variants, comma-separated (`Ti/16`, `S/16`, `B/16`).
        #[arg(long, default_value = "Ti/16,S/16")]
        variants: String,
        /// The platform both sides run on: `cpu` or `cuda` (one GPU).
        #[arg(long, default_value = "cpu")]
        platform: String,
        /// big_vision's `dtype_mm` on both sides: `float32`, or `bfloat16` (matrix
        /// multiplications in bfloat16, parameters float32).
        #[arg(long, default_value = "float32")]
        dtype: String,
    },
    /// (internal) One model measurement in this process, printed as JSON.
    ModelProbe { variant: String, dtype: String },
    /// (internal) One plugin measurement in this process, printed as JSON.
    PluginProbe,
}

fn main() {
    bv_core::malloc::reexec_with_tuning();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Runtime => runtime::run(&cli.python, cli.rounds, &cli.out),
        Command::Plugins => plugins::run(cli.rounds, &cli.out),
        Command::Tracing => tracing::run(&cli.python, cli.rounds, &cli.out),
        Command::PluginProbe => plugins::probe(),
        Command::Models {
            variants,
            platform,
            dtype,
        } => models::run(
            &cli.python,
            cli.rounds,
            &cli.out,
            &models::Setup {
                variants: variants.split(',').map(str::to_string).collect(),
                platform,
                dtype,
            },
        ),
        Command::ModelProbe { variant, dtype } => models::probe(&variant, &dtype),
    };
    if let Err(e) = result {
        eprintln!("bv-bench: {e}");
        std::process::exit(1);
    }
}
