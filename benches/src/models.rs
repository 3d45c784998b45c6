//! ViT at 224, batch 8 (Ti/16 and S/16 by default; B/16 on a GPU): forward time, train-step
//! time and the time from process start to the first finished training step, bv beside
//! JAX/Flax, in float32 or bfloat16, on the CPU or one GPU.

use std::error::Error;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bv_core::autodiff::value_and_grad;
use bv_core::numpy as np;
use bv_core::random::Key;
use bv_core::tree::Params;
use bv_core::{jit, Array, DType, Spec, Tensor};
use bv_train::optim::{apply_updates, make, OptimSpec, Optimizer, ScheduleGroups, State};
use serde_json::json;

use crate::report::{machine, median, write_section};

/// What one `models` run measures.
pub struct Setup {
    /// ViT variants (`Ti/16`, `S/16`, `B/16`).
    pub variants: Vec<String>,
    /// `cpu` or `cuda`, for both sides.
    pub platform: String,
    /// `float32` or `bfloat16`.
    pub dtype: String,
}

/// Checks a `--dtype`: big_vision's `dtype_mm`, the dtype of the model's matrix
/// multiplications (parameters stay float32).
fn check_dtype(name: &str) -> Result<(), Box<dyn Error>> {
    match name {
        "float32" | "bfloat16" => Ok(()),
        other => Err(format!("--dtype {other:?}: use float32 or bfloat16").into()),
    }
}

const BATCH: usize = 8;
const REPS: usize = 3;

/// Timed repetitions per measurement: `BV_BENCH_REPS`, else [`REPS`] (profiling wants more).
fn reps() -> usize {
    std::env::var("BV_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(REPS)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One variant in this process, timed from `BV_T0` (the parent's clock at spawn); prints JSON.
pub fn probe(variant: &str, dtype: &str) -> Result<(), Box<dyn Error>> {
    let t0: f64 = std::env::var("BV_T0")?.parse()?;
    check_dtype(dtype)?;
    let model = bv_nn::models::build(
        "vit",
        &json!({"variant": variant, "num_classes": 1000, "pool_type": "gap", "posemb": "sincos2d", "rep_size": true, "dtype_mm": dtype}),
    )?;
    let spec = Spec::new([BATCH, 224, 224, 3], DType::F32);
    let m = model.clone();
    let init = jit(move |key: Tensor| m.init(&key, &spec).sorted());
    let params = init.call(&Key::from_seed(0).to_array()?)?;
    let names: Vec<&str> = params.names().collect();
    let optim: OptimSpec = serde_json::from_value(json!({
        "optax_name": "scale_by_adam", "optax": {"mu_dtype": "bfloat16"},
        "lr": 0.001, "wd": 0.0001, "grad_clip_norm": 1.0}))?;
    let sched = serde_json::from_value(json!({"decay_type": "cosine", "warmup_steps": 100}))?;
    let groups = ScheduleGroups::new(Some(&sched), 1000, None, None)?;
    let tx = Arc::new(make(&optim, &groups, &names)?);
    let t = tx.clone();
    let opt = jit(move |p: Params| t.init(&p)).call(&params)?;
    let m = model.clone();
    let step = jit(move |((p, s), x, y): ((Params, State), Tensor, Tensor)| {
        let loss = |p: Params| {
            let (logits, _) = m.apply(&p, &x, true, &[]);
            np::mean(
                &-np::sum(&(np::log_softmax(&logits, -1) * &y), -1, false),
                np::Axes::All,
                false,
            )
        };
        let (l, g) = value_and_grad(loss)(&p);
        let (u, s) = tx.update(&g, s, &p);
        ((apply_updates(&p, &u), s), l)
    })
    .donate_argnums(&[0]);
    let images: Vec<f32> = (0..BATCH * 224 * 224 * 3)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let mut labels = vec![0f32; BATCH * 1000];
    for b in 0..BATCH {
        labels[b * 1000 + b] = 1.0;
    }
    let x = Array::from_slice(&images, &[BATCH, 224, 224, 3])?;
    let y = Array::from_slice(&labels, &[BATCH, 1000])?;
    let (mut state, loss) = step.call(&((params, opt), x.clone(), y.clone()))?;
    loss.item::<f32>()?;
    let first_step_s = now() - t0;
    let mut steps = Vec::new();
    for _ in 0..reps() {
        let t = Instant::now();
        let (s, loss) = step.call(&(state, x.clone(), y.clone()))?;
        loss.item::<f32>()?;
        steps.push(t.elapsed().as_secs_f64() * 1e3);
        state = s;
    }
    let m = model.clone();
    let forward = jit(move |(p, x): (Params, Tensor)| m.apply(&p, &x, false, &[]).0);
    forward
        .call(&(state.0.clone(), x.clone()))?
        .block_until_ready()?;
    let mut fwds = Vec::new();
    for _ in 0..reps() {
        let t = Instant::now();
        forward
            .call(&(state.0.clone(), x.clone()))?
            .block_until_ready()?;
        fwds.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "{}",
        json!({"first_step_s": first_step_s, "forward_ms": median(&fwds), "step_ms": median(&steps)})
    );
    Ok(())
}

fn spawn(mut cmd: Command, platform: &str) -> Result<serde_json::Value, Box<dyn Error>> {
    let out = cmd
        .env("BV_T0", now().to_string())
        .env("JAX_PLATFORMS", platform)
        .env("BV_PLATFORM", platform)
        .output()?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Runs both variants, bv and JAX interleaved, and writes the `models` section.
pub fn run(python: &Path, rounds: usize, out: &Path, setup: &Setup) -> Result<(), Box<dyn Error>> {
    let exe = std::env::current_exe()?;
    check_dtype(&setup.dtype)?;
    let (platform, dtype) = (setup.platform.as_str(), setup.dtype.as_str());
    let default = platform == "cpu" && dtype == "float32";
    let (title, flags, section) = if default {
        (String::new(), String::new(), "models".to_string())
    } else {
        (
            format!(", {platform}, {dtype}"),
            format!(
                " --variants {} --platform {platform} --dtype {dtype}",
                setup.variants.join(",")
            ),
            format!("models-{platform}-{dtype}"),
        )
    };
    let mut body = format!(
        "## ViT at 224, batch 8{title}: forward, train step, first step\n\n\
         `cargo run --release -p bv-benches -- models --rounds {rounds}{flags}` on {}. big_vision's ViT \
         (gap, sincos2d posemb, rep_size, 1000 classes) and its optimizer chain (clip 1.0, Adam \
         with bfloat16 mu, lr 1e-3, wd 1e-4 on kernels, cosine schedule), one donating jitted \
         step. JAX side: the same architecture written with Flax and optax (`benches/jax/models.py`), \
         JAX's own client for the platform (`JAX_PLATFORMS`). *First step*: seconds from starting the process to the \
         first finished training step, once with an empty persistent compilation cache (compiles \
         included) and once more with the cache the first run filled (bv: its default cache, \
         `BV_COMPILATION_CACHE_DIR`; JAX: `jax_compilation_cache_dir`, default thresholds). Forward and step: medians of {REPS} after warm-up. Medians over {rounds} \
         interleaved rounds, each side in a fresh process; ratio > 1 means bv is faster. \
         Allocator: bv-bench, like bv-train, restarts itself once with glibc tunables that \
         keep freed memory for reuse (`bv_core::malloc`; `BV_MALLOC_TUNING=0` turns it off), \
         so XLA's per-step buffers are not faulted in again every step; JAX runs with its defaults.\n\n\
         | model | measure | bv | JAX | ratio |\n|---|---|---|---|---|\n",
        machine()
    );
    for variant in setup.variants.iter().map(String::as_str) {
        let (mut bv, mut jx, mut bv_warm, mut jx_warm) = (vec![], vec![], vec![], vec![]);
        for r in 0..rounds {
            // Fresh, empty compilation caches each round: the first process of each side
            // compiles (and fills its cache), the second loads.
            let bv_cache = tempfile::tempdir()?;
            let jax_cache = tempfile::tempdir()?;
            for out in [&mut bv, &mut bv_warm] {
                let mut c = Command::new(&exe);
                c.args(["model-probe", variant, dtype])
                    .env("BV_COMPILATION_CACHE_DIR", bv_cache.path());
                out.push(spawn(c, platform)?);
            }
            for out in [&mut jx, &mut jx_warm] {
                let mut c = Command::new(python);
                c.args(["benches/jax/models.py", variant, dtype])
                    .env("BV_JAX_CACHE_DIR", jax_cache.path());
                out.push(spawn(c, platform)?);
            }
            // Each round's figures as they come, so a run cut short still reports them.
            eprintln!(
                "{variant}: round {}/{rounds}: bv {} | bv cached {} | JAX {} | JAX cached {}",
                r + 1,
                bv[r],
                bv_warm[r],
                jx[r],
                jx_warm[r]
            );
        }
        let m = |v: &[serde_json::Value], k: &str| {
            median(&v.iter().filter_map(|x| x[k].as_f64()).collect::<Vec<_>>())
        };
        for (a, b, k, label) in [
            (&bv, &jx, "forward_ms", "forward (ms)"),
            (&bv, &jx, "step_ms", "train step (ms)"),
            (
                &bv,
                &jx,
                "first_step_s",
                "process start to first step, empty compile cache (s)",
            ),
            (
                &bv_warm,
                &jx_warm,
                "first_step_s",
                "process start to first step, warm compile cache (s)",
            ),
        ] {
            let (a, b) = (m(a, k), m(b, k));
            body.push_str(&format!(
                "| ViT-{variant} | {label} | {a:.1} | {b:.1} | {:.2}× |\n",
                b / a
            ));
        }
    }
    print!("{body}");
    write_section(out, &section, &body)?;
    Ok(())
}
