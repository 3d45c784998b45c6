//! ViT with `dtype_mm="bfloat16"` against big_vision's own bfloat16 outputs
//! (`tests/golden/dtype_mm/`, made by `make_dtype_mm.py`): the type of every `out` entry,
//! the logits and intermediates, and the gradients of `sum(logits * ct)`. The model comes
//! from the registry with the fixture's `model_kwargs`. Tolerances (README there), as
//! fractions of each array's max |want|, in units of the type's relative spacing `s`
//! (bfloat16 `2^-8`, float16 `2^-11`): forward `s` for bfloat16 and `3 s` for float16 (see
//! `forward_tol`; on the machine that made the fixture we measure 0 for the half-precision
//! arrays, the same program runs on the same XLA, and ≤ 3.3e-7 for the float32 ones),
//! which the float32 model on the same parameters exceeds (`float32_is_told_apart`);
//! gradients `16 s` (the backward pass rounds every cotangent to half precision at a few
//! dozen places that differ between our derivative rules and JAX's; we measure ≤ 3.7e-2
//! for bfloat16, 2.7e-3 for float16).

mod common;

use bv_core::autodiff::value_and_grad_aux;
use bv_core::io::{read_npz, HostArray};
use bv_core::numpy as np;
use bv_core::{jit, Array, DType, Tensor};
use bv_nn::models::{build, Out};
use bv_nn::Params;
use common::{entry, golden, load, meta};
use serde_json::Value;

/// The relative spacing of the case's `dtype_mm` at the top of a binade: `2^-8` for
/// bfloat16 (8 significant bits), `2^-11` for float16 (11).
fn spacing(case: &str) -> f64 {
    match meta(&golden("dtype_mm", case))["model_kwargs"]["dtype_mm"].as_str() {
        Some("bfloat16") => 2f64.powi(-8),
        Some("float16") => 2f64.powi(-11),
        other => panic!("{case}: dtype_mm {other:?}"),
    }
}

/// Allowed forward difference, as a fraction of the array's max |want|: one spacing for
/// bfloat16, three for float16. XLA:CPU keeps float16 elementwise chains in float16 (rounding
/// after every op) on CPUs with native float16 arithmetic (AVX512-FP16) and computes them in
/// float32 (rounding once) elsewhere, so JAX's own float16 outputs move between machines:
/// `make_dtype_mm.py` rerun on an Intel Xeon with AVX512-FP16 differs from the committed
/// fixture (AMD EPYC) by 1.95 spacings (9.5e-4 of max |want| in `out/encoder/pre_ln`), and
/// bv there by the same amount. Three spacings cover that and still tell the float32 model
/// apart (3.6 spacings away). bfloat16 has no such path (reruns differ by ≤ 3e-7).
fn forward_tol(case: &str) -> f64 {
    let spacings = if spacing(case) < 2f64.powi(-8) {
        3.0
    } else {
        1.0
    };
    spacings * spacing(case)
}

/// Allowed gradient difference, as a fraction of the array's max |want|: 16 spacings.
fn grad_tol(case: &str) -> f64 {
    16.0 * spacing(case)
}

fn dtype(name: &str) -> DType {
    match name {
        "float32" => DType::F32,
        "bfloat16" => DType::BF16,
        "float16" => DType::F16,
        other => panic!("fixture dtype {other}"),
    }
}

/// The fixture's params, each cast to the type big_vision created it with.
fn cast_params(p: &Params<Tensor>, types: &Value) -> Params<Tensor> {
    p.iter()
        .map(|(k, v)| {
            let t = dtype(types[format!("params:{k}")].as_str().unwrap());
            (k.to_string(), np::astype(v, t))
        })
        .collect()
}

fn host(a: &Array) -> HostArray {
    HostArray::from_bytes(a.dtype(), a.shape(), a.to_bytes().unwrap()).unwrap()
}

/// `(max |got - want|, max |want|)` after checking the element type.
fn diff(what: &str, got: &Array, want: &HostArray, want_type: &Value) -> (f64, f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(
        got.dtype(),
        dtype(want_type.as_str().unwrap()),
        "{what}: type"
    );
    let (got, want) = (host(got).to_f64(), want.to_f64());
    let max = want.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max);
    (worst, max)
}

/// Forward `out` and gradients of the case, with `dtype_mm` overridden if given.
fn run(case: &str, dtype_mm: Option<&'static str>) -> (Params<Array>, Params<Array>) {
    let dir = golden("dtype_mm", case);
    let meta = meta(&dir);
    let mut kwargs = meta["model_kwargs"].clone();
    if let Some(d) = dtype_mm {
        kwargs["dtype_mm"] = d.into();
    }
    let model = build("vit", &kwargs).unwrap();
    let types = meta["dtypes"].clone();
    let inputs = dir.join("inputs.npz");
    let f = jit(move |(p, x, ct): (Params<Tensor>, Tensor, Tensor)| {
        let p = match dtype_mm {
            Some(_) => p,
            None => cast_params(&p, &types),
        };
        let (logits, mut out): (Tensor, Out) = model.apply(&p, &x, false, &[]);
        out.insert("logits", logits);
        let vg = value_and_grad_aux(|p: Params<Tensor>| {
            let (logits, _): (Tensor, Out) = model.apply(&p, &x, false, &[]);
            (
                np::sum(
                    &(np::astype(&logits, DType::F32) * &ct),
                    np::Axes::All,
                    false,
                ),
                (),
            )
        });
        let (_, g) = vg(&p);
        (out, g)
    });
    let args = (
        load(&dir.join("params.npz")),
        entry(&inputs, "image"),
        entry(&inputs, "ct"),
    );
    f.call(&args).expect("forward and gradients run")
}

/// The worst relative differences of a case: forward arrays and gradients (each as a
/// fraction of the array's max |want|), and the attention key biases' gradients as a
/// fraction of their kernels' (exactly 0: softmax over keys ignores a shift common to all
/// keys, so both sides hold rounding noise there).
fn worst(case: &str, dtype_mm: Option<&'static str>) -> [f64; 3] {
    let dir = golden("dtype_mm", case);
    let types = &meta(&dir)["dtypes"];
    let (out, grads) = run(case, dtype_mm);
    let mut worst = [0.0f64; 3];
    for (file, got) in [("forward", &out), ("grads", &grads)] {
        let want = read_npz(dir.join(format!("{file}.npz"))).unwrap();
        assert!(
            want.len() >= got.len(),
            "{case}: {file}: each of ours compared"
        );
        let mut kernel_max = std::collections::HashMap::new();
        let mut key_bias = Vec::new();
        for (key, w) in want {
            let short = key.strip_prefix("out/").unwrap_or(&key);
            let g = got
                .get(short)
                .unwrap_or_else(|| panic!("{case}: no `{short}`"));
            let t = match dtype_mm {
                Some(_) => g.dtype().name().into(),
                None => types[format!("{file}:{key}")].clone(),
            };
            let (d, max) = diff(&format!("{case}:{file}:{key}"), g, &w, &t);
            if let Some(block) = key.strip_suffix("key/bias") {
                key_bias.push((block.to_string(), d));
                continue;
            }
            if let Some(block) = key.strip_suffix("key/kernel") {
                kernel_max.insert(block.to_string(), max);
            }
            let i = usize::from(file == "grads");
            worst[i] = worst[i].max(d / max.max(f64::MIN_POSITIVE));
        }
        for (block, d) in key_bias {
            worst[2] = worst[2].max(d / kernel_max[&block]);
        }
    }
    eprintln!(
        "{case} (dtype_mm {}): worst forward {:.2e}, gradients {:.2e}, key biases {:.2e}",
        dtype_mm.unwrap_or("from the fixture"),
        worst[0],
        worst[1],
        worst[2]
    );
    worst
}

fn check(case: &str) {
    let [fwd, grads, key_bias] = worst(case, None);
    let (ft, gt) = (forward_tol(case), grad_tol(case));
    assert!(fwd <= ft, "{case}: forward {fwd:.2e} > {ft:.2e}");
    assert!(grads <= gt, "{case}: gradients {grads:.2e} > {gt:.2e}");
    assert!(
        key_bias <= gt,
        "{case}: key biases {key_bias:.2e} > {gt:.2e}"
    );
}

#[test]
fn gap_pool_learned_posemb_pre_logits() {
    check("vit_gap");
}

#[test]
fn cls_token_sincos_posemb() {
    check("vit_tok");
}

#[test]
fn map_head_scanned_blocks() {
    check("vit_map_scan");
}

#[test]
fn float16() {
    check("vit_f16");
}

/// The same parameters in a float32 model land outside the forward tolerance (besides
/// giving float32 where big_vision has bfloat16): the check sees whether the matmuls ran
/// in bfloat16. (Its gradients are as close as ours: bfloat16 gradients are that noisy.)
#[test]
fn float32_is_told_apart() {
    for case in ["vit_gap", "vit_tok", "vit_map_scan", "vit_f16"] {
        let [fwd, ..] = worst(case, Some("float32"));
        let tol = forward_tol(case);
        assert!(
            fwd > tol,
            "{case}: float32 within {fwd:.2e} of dtype_mm's {tol:.2e}"
        );
    }
}
