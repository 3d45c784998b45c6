//! The persistent compilation cache: a second compile of the same program loads it from
//! disk and computes what a float64 host computation says; a corrupt or truncated entry is
//! recompiled and replaced; `jit` uses the cache named by `BV_COMPILATION_CACHE_DIR`.

use std::time::Duration;

use bv_core::compile_cache::{self, Outcome};
use bv_core::pjrt::{Client, CompileOptions, OptionOverride};
use bv_core::{jit, Array, Tensor};

/// y = exp(x) * 3 - x.
const PROGRAM: &str = r#"
func.func public @main(%x: tensor<6xf32>) -> tensor<6xf32> {
  %e = stablehlo.exponential %x : tensor<6xf32>
  %three = stablehlo.constant dense<3.0> : tensor<6xf32>
  %m = stablehlo.multiply %e, %three : tensor<6xf32>
  %y = stablehlo.subtract %m, %x : tensor<6xf32>
  return %y : tensor<6xf32>
}
"#;

const X: [f32; 6] = [-2.0, -0.5, 0.0, 0.25, 1.0, 2.5];

fn run(client: &Client, exe: &bv_core::pjrt::LoadedExecutable) -> Vec<f32> {
    let dev = &client.addressable_devices()[0];
    let x = client.buffer_from_host(&X, &[6], dev).unwrap();
    exe.execute(&[&x]).unwrap()[0].to_vec::<f32>().unwrap()
}

fn assert_matches_host(got: &[f32]) {
    for (g, x) in got.iter().zip(X) {
        let want = f64::from(x).exp() * 3.0 - f64::from(x);
        assert!(
            (f64::from(*g) - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "got {g}, want {want}"
        );
    }
}

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn second_compile_is_a_hit_and_corruption_recompiles() {
    let client = Client::cpu().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = CompileOptions::default();
    let (exe, outcome) =
        compile_cache::compile_in(dir.path(), Duration::ZERO, &client, PROGRAM, &opts).unwrap();
    assert_eq!(outcome, Outcome::Compiled);
    assert_matches_host(&run(&client, &exe));
    let files = entries(dir.path());
    assert_eq!(files.len(), 1, "one entry, no temporary left: {files:?}");

    let (exe, outcome) =
        compile_cache::compile_in(dir.path(), Duration::ZERO, &client, PROGRAM, &opts).unwrap();
    assert_eq!(outcome, Outcome::Hit);
    assert_matches_host(&run(&client, &exe));
    // The loaded executable checks its arguments as a compiled one does.
    let dev = &client.addressable_devices()[0];
    let wrong = client.buffer_from_host(&[1f32; 4], &[4], dev).unwrap();
    assert!(exe.execute(&[&wrong]).is_err());

    // Truncated, then flipped: each is recompiled and the entry rewritten whole.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    let (_, outcome) =
        compile_cache::compile_in(dir.path(), Duration::ZERO, &client, PROGRAM, &opts).unwrap();
    assert_eq!(outcome, Outcome::Compiled);
    assert_eq!(std::fs::read(&files[0]).unwrap().len(), bytes.len());
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    std::fs::write(&files[0], &flipped).unwrap();
    let (exe, outcome) =
        compile_cache::compile_in(dir.path(), Duration::ZERO, &client, PROGRAM, &opts).unwrap();
    assert_eq!(outcome, Outcome::Compiled);
    assert_matches_host(&run(&client, &exe));
}

#[test]
fn key_separates_programs_and_options_and_threshold_skips_fast_compiles() {
    let client = Client::cpu().unwrap();
    let opts = CompileOptions::default();
    let other = PROGRAM.replace("3.0", "4.0");
    let k = compile_cache::key(&client, PROGRAM, &opts);
    assert_eq!(k, compile_cache::key(&client, PROGRAM, &opts));
    assert_ne!(k, compile_cache::key(&client, &other, &opts));
    let mut flagged = CompileOptions::default();
    flagged.env_option_overrides.insert(
        "xla_cpu_enable_fast_math".into(),
        OptionOverride::Bool(true),
    );
    assert_ne!(k, compile_cache::key(&client, PROGRAM, &flagged));

    let dir = tempfile::tempdir().unwrap();
    let hour = Duration::from_secs(3600);
    compile_cache::compile_in(dir.path(), hour, &client, PROGRAM, &opts).unwrap();
    assert!(
        entries(dir.path()).is_empty(),
        "a program faster to compile than the threshold is not written"
    );
}

#[test]
fn jit_loads_from_the_directory_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    // The only test in this binary that reads the environment.
    std::env::set_var(compile_cache::DIR_ENV, dir.path());
    std::env::set_var(compile_cache::MIN_SECS_ENV, "0");
    let f = || jit(|x: Tensor| &bv_core::numpy::exp(&x) * 3.0 - &x);
    let x = Array::from_slice(&X, &[6]).unwrap();

    let first = f();
    assert_matches_host(&first.call(&x).unwrap().to_vec::<f32>().unwrap());
    assert_eq!(
        (first.stats().compiles, first.stats().disk_cache_hits),
        (1, 0)
    );

    let second = f();
    assert_matches_host(&second.call(&x).unwrap().to_vec::<f32>().unwrap());
    assert_eq!(
        (second.stats().compiles, second.stats().disk_cache_hits),
        (1, 1)
    );
    assert_eq!(entries(dir.path()).len(), 1);
}
