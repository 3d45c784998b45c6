//! big_vision's optimizer chains against `tests/golden/optim` (written by
//! `big_vision.optax.make` under `jax.jit`): parameters and updates after each of 6 steps,
//! and the optimizer state after steps 1 and 6, with each step ONE jitted executable.
//! Tolerances from the golden README: parameters and updates atol 1e-6 + rtol 1e-6;
//! bfloat16 state exact or 1 bf16 ulp; float32 state atol 1e-6 + rtol 1e-5; counts exact.
//! The `optax_*` and `bv_adafactor` cases are Optax's optimizer functions (`optax.adamw`,
//! ...) against ours ([`adamw`], ...), on a nested map rather than a flat one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bv_core::io::read_npz;
use bv_core::tree::{self, Params};
use bv_core::{jit, Array, DType, Tensor};
use bv_train::config::ScheduleConfig;
use bv_train::optim::adafactor::ScaleByAdafactor;
use bv_train::optim::schedule::ScheduleSpec;
use bv_train::optim::{
    adafactor, adam, adamw, apply_updates, lamb, lion, make, sgd, AdafactorOptions, AdamOptions,
    AdamWOptions, Chain, LambOptions, LearningRate, LionOptions, Mask, OptimSpec, Optimizer,
    Schedule, ScheduleGroups, SgdOptions, State,
};
use half::bf16;
use serde_json::Value;

const CASES: &[&str] = &[
    "adam_bf16_cosine",
    "momentum_hp_linear",
    "adafactor_rsqrt_frozen",
    "sgd_stair_groups",
    "lion_bf16_cosine",
    "lion_f32_frozen",
    "trace_nesterov",
    "trace_bf16",
];

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/optim")
}

fn npz(path: PathBuf) -> BTreeMap<String, Array> {
    read_npz(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|(k, h)| {
            (
                k,
                Array::from_bytes(h.bytes(), h.dtype(), h.shape()).unwrap(),
            )
        })
        .collect()
}

/// `prefix/<name>` entries of `all`, keyed by `<name>`.
fn under(all: &BTreeMap<String, Array>, prefix: &str) -> BTreeMap<String, Array> {
    all.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
        .collect()
}

fn values(a: &Array) -> Vec<f64> {
    match a.dtype() {
        DType::F32 => a
            .to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
        DType::BF16 => a
            .to_vec::<bf16>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
        DType::I32 => a
            .to_vec::<i32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
        d => panic!("unexpected dtype {d:?}"),
    }
}

/// Largest `|got - want|` after checking `|got - want| <= atol + rtol |want|` everywhere.
fn check(what: &str, got: &Array, want: &Array, atol: f64, rtol: f64) -> f64 {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (values(got), values(want));
    let mut worst = 0.0f64;
    for (i, (x, y)) in g.iter().zip(&w).enumerate() {
        let d = (x - y).abs();
        assert!(
            d <= atol + rtol * y.abs(),
            "{what}[{i}]: {x} vs {y} (diff {d:e})"
        );
        worst = worst.max(d);
    }
    worst
}

/// bfloat16 state: equal, or one bf16 ulp apart (the golden stores them as exact f32).
fn check_bf16(what: &str, got: &Array, want: &Array) -> usize {
    assert_eq!(got.dtype(), DType::BF16, "{what}: dtype");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let g = got.to_vec::<bf16>().unwrap();
    let w = want.to_vec::<f32>().unwrap();
    let mut off = 0;
    for (i, (x, y)) in g.iter().zip(&w).enumerate() {
        let y = bf16::from_f32(*y);
        assert_eq!(
            f32::from(y),
            f32::from(bf16::from_f32(f32::from(y))),
            "{what}: golden not bf16"
        );
        let d = (x.to_bits() as i32 - y.to_bits() as i32).abs();
        assert!(
            d <= 1 && x.is_sign_negative() == y.is_sign_negative(),
            "{what}[{i}]: {x} vs {y}"
        );
        off += d as usize;
    }
    off
}

struct Case {
    meta: Value,
    tx: Arc<Chain>,
}

fn case(name: &str) -> Case {
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(golden().join(name).join("meta.json")).unwrap(),
    )
    .unwrap();
    let mut config = meta["config"].clone();
    let schedule = config.as_object_mut().unwrap().remove("schedule");
    let spec: OptimSpec = serde_json::from_value(config).unwrap();
    let schedule: Option<ScheduleConfig> = schedule.map(|s| serde_json::from_value(s).unwrap());
    let total = meta["sched_kw"]["total_steps"].as_u64().unwrap();
    let groups = ScheduleGroups::new(schedule.as_ref(), total, None, None).unwrap();
    let names = npz(golden().join("params_init.npz")).into_keys();
    let tx = Arc::new(make(&spec, &groups, names).unwrap());
    Case { meta, tx }
}

/// Our state entry for a golden opt_state path `<chain index>/inner_state/[<sub index>/]rest`;
/// `skipped` stages of the golden chain (big_vision's identity clip) are not in ours.
fn our_key(tx: &Chain, skipped: usize, path: &str) -> String {
    let (index, rest) = path.split_once('/').unwrap();
    let rest = rest.strip_prefix("inner_state/").unwrap_or(rest);
    let index: usize = index.parse::<usize>().unwrap() - skipped;
    let stage = tx.stage_names().nth(index).unwrap();
    // Adafactor is itself a chain (factored rms, clip, ema): drop its index.
    let rest = match rest.split_once('/') {
        Some((i, r)) if i.parse::<usize>().is_ok() => r,
        _ => rest,
    };
    format!("{stage}/{rest}")
}

fn compare_state(
    name: &str,
    tx: &Chain,
    step: usize,
    state: &BTreeMap<String, Array>,
    want: &BTreeMap<String, Array>,
) {
    // big_vision's chain always has a clip stage (identity when grad_clip_norm is unset).
    let skipped = match name.starts_with("optax_") || name.starts_with("bv_") {
        true => 0,
        false => usize::from(!tx.stage_names().any(|s| s == "clip")),
    };
    let mut seen = std::collections::BTreeSet::new();
    let (mut bf16_off, mut worst) = (0, 0.0f64);
    for (path, w) in under(want, &format!("step{step}/")) {
        let (path, is_bf16) = match path.strip_suffix("@bf16") {
            Some(p) => (p.to_string(), true),
            None => (path, false),
        };
        let key = our_key(tx, skipped, &path);
        let what = format!("{name} step {step} state {key} ({path})");
        let Some(got) = state.get(&key) else {
            // optax keeps (1,)-shaped zero placeholders for the unused adafactor moments.
            assert_eq!(w.shape(), [1], "{what}: missing");
            assert_eq!(values(&w), [0.0], "{what}: missing");
            continue;
        };
        seen.insert(key.clone());
        if is_bf16 {
            bf16_off += check_bf16(&what, got, &w);
        } else if w.dtype() == DType::I32 {
            assert_eq!(values(got), values(&w), "{what}");
        } else {
            worst = worst.max(check(&what, got, &w, 1e-6, 1e-5));
        }
    }
    let ours: Vec<_> = state.keys().filter(|k| !seen.contains(*k)).collect();
    assert!(
        ours.is_empty(),
        "{name}: state entries not in the golden: {ours:?}"
    );
    println!(
        "{name} step {step}: {} state entries, {bf16_off} bf16 ulp off, f32 max |diff| {worst:.2e}",
        seen.len()
    );
}

#[test]
fn big_vision_chains_match_golden_in_one_executable_per_step() {
    let params0 = npz(golden().join("params_init.npz"));
    let grads = npz(golden().join("grads.npz"));
    for name in CASES {
        let Case { meta, tx } = case(name);
        let want_params = npz(golden().join(name).join("params.npz"));
        let want_updates = npz(golden().join(name).join("updates.npz"));
        let want_state = npz(golden().join(name).join("opt_state.npz"));
        let t = tx.clone();
        let init = jit(move |p: Params| t.init(&p));
        let t = tx.clone();
        let step = jit(move |(p, g, s): (Params, Params, State)| {
            let (u, s) = t.update(&g, s, &p);
            (apply_updates(&p, &u), u, s)
        });
        let mut params: Params<Array> = params0.clone().into_iter().collect();
        let mut state = init.call(&params).unwrap();
        let (mut worst_p, mut worst_u) = (0.0f64, 0.0f64);
        for t in 1..=6 {
            let g: Params<Array> = under(&grads, &format!("step{t}/")).into_iter().collect();
            let (p, u, s) = step
                .call(&(params, g, state))
                .unwrap_or_else(|e| panic!("{e}"));
            for (k, want) in under(&want_params, &format!("step{t}/")) {
                worst_p = worst_p.max(check(
                    &format!("{name} step {t} params {k}"),
                    &p[&k],
                    &want,
                    1e-6,
                    1e-6,
                ));
            }
            for (k, want) in under(&want_updates, &format!("step{t}/")) {
                worst_u = worst_u.max(check(
                    &format!("{name} step {t} update {k}"),
                    &u[&k],
                    &want,
                    1e-6,
                    1e-6,
                ));
            }
            if t == 1 || t == 6 {
                compare_state(name, &tx, t, &s, &want_state);
            }
            (params, state) = (p, s);
        }
        assert_eq!(
            step.stats().compiles,
            1,
            "{name}: one executable for 6 steps"
        );
        println!(
            "{name}: params max |diff| {worst_p:.3e}, updates {worst_u:.3e} (numpy re-impl. {})",
            meta["numpy_reference_max_abs_dev"]
        );
    }
}

const OPTAX_CASES: &[&str] = &[
    "optax_adamw_mask",
    "optax_adam_nesterov_cosine",
    "optax_sgd",
    "optax_sgd_nesterov",
    "optax_lion",
    "optax_lamb",
    "bv_adafactor",
];

/// The optimizer of an Optax case's `meta.json` (`optimizer`, `kwargs`, `total_steps`),
/// built by our function of the same name; absent keywords take our defaults, which are
/// Optax's.
fn optax_optimizer(meta: &Value) -> Chain {
    let kw = meta["kwargs"].as_object().unwrap();
    let total = meta["total_steps"].as_u64().unwrap();
    let num = |k: &str, default: f64| kw.get(k).map_or(default, |v| v.as_f64().unwrap());
    let lr: LearningRate = match &kw["learning_rate"] {
        Value::Object(m) => {
            let mut m = m.clone();
            let peak = m.remove("peak").unwrap().as_f64();
            let mut spec: ScheduleSpec = serde_json::from_value(Value::Object(m)).unwrap();
            spec.mult = peak;
            Schedule::new(&spec, total, None, None).unwrap().into()
        }
        v => v.as_f64().unwrap().into(),
    };
    let mask = kw
        .get("mask")
        .map(|m| Mask::regex(m.as_str().unwrap()).unwrap());
    let adam_options = |d: AdamOptions| AdamOptions {
        b1: num("b1", d.b1),
        b2: num("b2", d.b2),
        eps: num("eps", d.eps),
        nesterov: kw.get("nesterov").is_some_and(|v| v.as_bool().unwrap()),
        ..d
    };
    match meta["optimizer"].as_str().unwrap() {
        "adam" => adam(lr, adam_options(AdamOptions::default())),
        "adamw" => {
            let d = AdamWOptions::default();
            let o = AdamWOptions {
                adam: adam_options(d.adam),
                weight_decay: num("weight_decay", d.weight_decay),
                mask,
            };
            adamw(lr, o)
        }
        "sgd" => {
            let o = SgdOptions {
                momentum: kw.get("momentum").map(|v| v.as_f64().unwrap()),
                nesterov: kw.get("nesterov").is_some_and(|v| v.as_bool().unwrap()),
                accumulator_dtype: None,
            };
            sgd(lr, o)
        }
        "lion" => {
            let d = LionOptions::default();
            let o = LionOptions {
                b1: num("b1", d.b1),
                b2: num("b2", d.b2),
                weight_decay: num("weight_decay", d.weight_decay),
                mask,
                ..d
            };
            lion(lr, o)
        }
        "lamb" => {
            let d = LambOptions::default();
            let o = LambOptions {
                weight_decay: num("weight_decay", d.weight_decay),
                mask,
                ..d
            };
            lamb(lr, o)
        }
        "adafactor" => {
            let o = AdafactorOptions {
                core: ScaleByAdafactor {
                    clipping_threshold: kw.get("clipping_threshold").map(|v| v.as_f64().unwrap()),
                    ..ScaleByAdafactor::default()
                },
                weight_decay: num("weight_decay", 0.0),
                mask,
            };
            adafactor(lr, o)
        }
        other => panic!("no optimizer {other}"),
    }
}

/// Parameters as the Optax script holds them: `{"a": {"bias": .., "kernel": ..}, ...}`.
type Nested<L> = BTreeMap<String, BTreeMap<String, L>>;

fn nest(flat: BTreeMap<String, Array>) -> Nested<Array> {
    let mut out = Nested::new();
    for (k, v) in flat {
        let (outer, inner) = k.split_once('/').unwrap();
        out.entry(outer.to_string())
            .or_default()
            .insert(inner.to_string(), v);
    }
    out
}

#[test]
fn optax_optimizer_functions_match_optax_on_a_nested_tree() {
    let params0 = npz(golden().join("params_init.npz"));
    let grads = npz(golden().join("grads.npz"));
    for name in OPTAX_CASES {
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(golden().join(name).join("meta.json")).unwrap(),
        )
        .unwrap();
        let tx = Arc::new(optax_optimizer(&meta));
        let want_params = npz(golden().join(name).join("params.npz"));
        let want_updates = npz(golden().join(name).join("updates.npz"));
        let want_state = npz(golden().join(name).join("opt_state.npz"));
        let t = tx.clone();
        let init = jit(move |p: Nested<Tensor>| t.init(&p));
        let t = tx.clone();
        let step = jit(move |(p, g, s): (Nested<Tensor>, Nested<Tensor>, State)| {
            let (u, s) = t.update(&g, s, &p);
            (apply_updates(&p, &u), u, s)
        });
        let mut params = nest(params0.clone());
        let mut state = init.call(&params).unwrap();
        let (mut worst_p, mut worst_u) = (0.0f64, 0.0f64);
        for t in 1..=6 {
            let g = nest(under(&grads, &format!("step{t}/")));
            let (p, u, s) = step
                .call(&(params, g, state))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let (got_p, got_u) = (tree::flatten(&p).1, tree::flatten(&u).1);
            for (what, got, want, worst) in [
                ("params", &got_p, &want_params, &mut worst_p),
                ("update", &got_u, &want_updates, &mut worst_u),
            ] {
                let want = under(want, &format!("step{t}/"));
                assert_eq!(got.len(), want.len(), "{name} step {t} {what}: leaves");
                for (k, g) in got {
                    let what = format!("{name} step {t} {what} {k}");
                    *worst = worst.max(check(&what, g, &want[k], 1e-6, 1e-6));
                }
            }
            if t == 1 || t == 6 {
                compare_state(name, &tx, t, &s, &want_state);
            }
            (params, state) = (p, s);
        }
        assert_eq!(
            step.stats().compiles,
            1,
            "{name}: one executable for 6 steps"
        );
        println!("{name}: params max |diff| {worst_p:.3e}, updates {worst_u:.3e}");
    }
}
