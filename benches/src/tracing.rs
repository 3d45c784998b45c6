//! Tracing costs: trace + lower a ViT-B/16-sized forward program to StableHLO text, and
//! `jit` dispatch on a cache hit.

use std::error::Error;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use bv_core::numpy as np;
use bv_core::{jit, Array, DType, Spec, Tensor};

use crate::report::{machine, median, write_section};

const WIDTH: usize = 768;
const MLP: usize = 3072;
const HEADS: usize = 12;
const DEPTH: usize = 12;
const TOKENS: usize = 197;
const BATCH: usize = 8;
const LOWERS: usize = 5;
const CALLS: usize = 5000;

/// Parameters per block: q, k, v, out projections and the two MLP layers (kernel, bias),
/// plus the two LayerNorm scales and biases.
const PER_BLOCK: usize = 16;

fn layer_norm(x: &Tensor, scale: &Tensor, bias: &Tensor) -> Tensor {
    let mu = np::mean(x, -1, true);
    let var = np::var(x, -1, 0, true);
    (x - mu) * np::rsqrt(&(var + 1e-6)) * scale + bias
}

fn dense(x: &Tensor, k: &Tensor, b: &Tensor) -> Tensor {
    np::matmul(x, k) + b
}

/// A stack of pre-LN attention + MLP blocks, as in big_vision's ViT encoder.
fn encoder((x, p): (Tensor, Vec<Tensor>)) -> Tensor {
    let heads = |t: Tensor| {
        np::reshape(
            &t,
            &[
                BATCH as isize,
                TOKENS as isize,
                HEADS as isize,
                (WIDTH / HEADS) as isize,
            ],
        )
    };
    let mut x = x;
    for w in p.chunks(PER_BLOCK) {
        let y = layer_norm(&x, &w[0], &w[1]);
        let q = heads(dense(&y, &w[2], &w[3]));
        let k = heads(dense(&y, &w[4], &w[5]));
        let v = heads(dense(&y, &w[6], &w[7]));
        let logits =
            np::einsum("bqhd,bkhd->bhqk", &[&q, &k]) * (1.0 / ((WIDTH / HEADS) as f64).sqrt());
        let att = np::einsum("bhqk,bkhd->bqhd", &[&np::softmax(&logits, -1), &v]);
        let att = np::reshape(&att, &[BATCH as isize, TOKENS as isize, WIDTH as isize]);
        x = x + dense(&att, &w[8], &w[9]);
        let y = layer_norm(&x, &w[10], &w[11]);
        let h = np::gelu(&dense(&y, &w[12], &w[13]), true);
        x = x + dense(&h, &w[14], &w[15]);
    }
    x
}

fn param_specs() -> Vec<Spec> {
    let shapes: [&[usize]; PER_BLOCK] = [
        &[WIDTH],
        &[WIDTH],
        &[WIDTH, WIDTH],
        &[WIDTH],
        &[WIDTH, WIDTH],
        &[WIDTH],
        &[WIDTH, WIDTH],
        &[WIDTH],
        &[WIDTH, WIDTH],
        &[WIDTH],
        &[WIDTH],
        &[WIDTH],
        &[WIDTH, MLP],
        &[MLP],
        &[MLP, WIDTH],
        &[WIDTH],
    ];
    (0..DEPTH)
        .flat_map(|_| shapes.iter().map(|s| Spec::new(s.to_vec(), DType::F32)))
        .collect()
}

struct Figures {
    lower_ms: f64,
    dispatch_us: f64,
    lines: usize,
}

fn measure_bv() -> Result<Figures, Box<dyn Error>> {
    let specs = (Spec::new([BATCH, TOKENS, WIDTH], DType::F32), param_specs());
    let mut times = Vec::new();
    let mut lines = 0;
    for _ in 0..LOWERS {
        let f = jit(encoder).named("vit_b16_encoder");
        let t = Instant::now();
        let lowered = f.lower(&specs)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        lines = lowered.text.lines().count();
    }

    let add_one = jit(|x: Tensor| x + 1.0);
    let x = Array::from_slice(&[0f32; 8], &[8])?;
    add_one.call(&x)?.to_vec::<f32>()?;
    let t = Instant::now();
    let mut last = None;
    for _ in 0..CALLS {
        last = Some(add_one.call(&x)?);
    }
    if let Some(y) = last {
        y.to_vec::<f32>()?;
    }
    let dispatch_us = t.elapsed().as_secs_f64() / CALLS as f64 * 1e6;
    Ok(Figures {
        lower_ms: median(&times),
        dispatch_us,
        lines,
    })
}

fn measure_jax(python: &Path) -> Result<serde_json::Value, Box<dyn Error>> {
    let out = Command::new(python)
        .arg("benches/jax/tracing.py")
        .env("JAX_PLATFORMS", "cpu")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "benches/jax/tracing.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The sentence on the goal (10× JAX at both), written from the numbers.
fn verdict(lower: f64, dispatch: f64) -> String {
    let says = |r: f64| if r >= 10.0 { "meets it" } else { "falls short" };
    format!(
        "The goal is 10× JAX at both: trace + lower {} ({lower:.1}×); dispatch {} ({dispatch:.1}×). \
         A cache-hit dispatch is mostly the XLA CPU runtime that both share (compare the bare PJRT \
         dispatch in \"Runtime overheads\"), so a 10× margin there is out of reach on CPU.",
        says(lower),
        says(dispatch)
    )
}

/// Runs `rounds` interleaved rounds and writes the `tracing` section.
pub fn run(python: &Path, rounds: usize, out: &Path) -> Result<(), Box<dyn Error>> {
    let (mut bv_lower, mut bv_dispatch, mut jax_lower, mut jax_dispatch) =
        (vec![], vec![], vec![], vec![]);
    let mut lines = 0;
    let mut jax_lines = 0.0;
    for r in 0..rounds {
        let b = measure_bv()?;
        bv_lower.push(b.lower_ms);
        bv_dispatch.push(b.dispatch_us);
        lines = b.lines;
        let j = measure_jax(python)?;
        jax_lower.push(j["lower_ms"].as_f64().unwrap_or(f64::NAN));
        jax_dispatch.push(j["dispatch_us"].as_f64().unwrap_or(f64::NAN));
        jax_lines = j["lines"].as_f64().unwrap_or(f64::NAN);
        eprintln!("round {}/{rounds} done", r + 1);
    }
    let (bl, jl, bd, jd) = (
        median(&bv_lower),
        median(&jax_lower),
        median(&bv_dispatch),
        median(&jax_dispatch),
    );
    let body = format!(
        "## Tracing and jit dispatch\n\n\
         `cargo run --release -p bv-benches -- tracing --rounds {rounds}` on {}. *Trace + lower*: a \
         ViT-B/16-sized encoder (12 pre-LN blocks of attention and MLP, width 768, 12 heads, MLP 3072, \
         batch 8 × 197 tokens, parameters as 192 arguments) written with the numpy-level API, traced \
         and printed as StableHLO text (bv: `jit(f).lower(specs)`, {lines} lines; JAX: \
         `jax.jit(f).lower(*specs).as_text()`, {jax_lines} lines), a fresh function each time, median \
         of {LOWERS}. *Dispatch*: a jitted `x + 1` on `f32[8]`, {CALLS} calls on a cache hit, time per \
         call until the last result is ready. Medians over {rounds} interleaved rounds; ratio > 1 \
         means bv is faster.\n\n\
         | measure | bv | JAX | ratio |\n|---|---|---|---|\n\
         | trace + lower ViT-B/16 encoder (ms) | {bl:.1} | {jl:.1} | {:.1}× |\n\
         | jit dispatch on a cache hit (µs) | {bd:.2} | {jd:.2} | {:.1}× |\n\n{}\n",
        machine(),
        jl / bl,
        jd / bd,
        verdict(jl / bl, jd / bd),
    );
    print!("{body}");
    write_section(out, "tracing", &body)?;
    Ok(())
}
